//! What a run counts while it runs: live counters (for the progress bar),
//! latency histograms, and per-stream records of which numbered messages
//! arrived, from which loss, duplicates and reordering are computed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Counters every connection task adds to.
#[derive(Debug, Default)]
pub struct Counters {
    pub connected: AtomicU64,
    pub logged_in: AtomicU64,
    pub setup_failed: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub refused: AtomicU64,
    pub delivered: AtomicU64,
    /// Deliveries owed for the messages acked (legacy: sent) so far.
    pub owed: AtomicU64,
    /// When the latest delivery arrived, µs since the Unix epoch.
    pub last_delivery_us: AtomicU64,
    pub pings: AtomicU64,
    pub logins: AtomicU64,
    pub closed: AtomicU64,
    pub kicked: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A latency histogram shared by the connection tasks, in microseconds
/// (1 µs to 10 minutes, 3 significant digits).
#[derive(Debug)]
pub struct Latency(Mutex<Histogram<u64>>);

impl Default for Latency {
    fn default() -> Self {
        let histogram = Histogram::new_with_bounds(1, 600_000_000, 3)
            .expect("static histogram bounds are valid");
        Latency(Mutex::new(histogram))
    }
}

impl Latency {
    pub fn record(&self, latency: Duration) {
        self.record_us(latency.as_micros() as u64);
    }

    pub fn record_us(&self, us: u64) {
        let mut histogram = self.0.lock().unwrap_or_else(|p| p.into_inner());
        histogram.saturating_record(us.max(1));
    }

    /// The percentiles of what was recorded, in milliseconds.
    pub fn summary(&self) -> Percentiles {
        let histogram = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |us: u64| us as f64 / 1000.0;
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            mean: histogram.mean() / 1000.0,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    pub max: f64,
}

/// A set of sequence numbers from 1, dense, as bits.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    /// Adds `seq`; false if it was already there.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let was = self.words[word] & (1 << bit) != 0;
        self.words[word] |= 1 << bit;
        !was
    }

    pub fn contains(&self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        self.words.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    pub fn len(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// How many members of `self` are missing from `other`.
    pub fn missing_from(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let theirs = other.words.get(i).copied().unwrap_or(0);
                u64::from((w & !theirs).count_ones())
            })
            .sum()
    }
}

/// What one receiving connection saw, per sender.
#[derive(Debug, Default)]
pub struct Received {
    /// Sequence numbers received from each sender (by client index).
    pub from: HashMap<u32, SeqSet>,
    /// Highest sequence number so far from each sender.
    highest: HashMap<u32, u64>,
    pub duplicated: u64,
    pub reordered: u64,
}

impl Received {
    /// Records the arrival of `seq` from `sender`.
    pub fn record(&mut self, sender: u32, seq: u64) {
        if !self.from.entry(sender).or_default().insert(seq) {
            self.duplicated += 1;
            return;
        }
        let highest = self.highest.entry(sender).or_insert(0);
        if seq < *highest {
            self.reordered += 1;
        } else {
            *highest = seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_tells_duplicates_from_reordering() {
        let mut received = Received::default();
        for seq in [1, 2, 4, 3, 4, 5] {
            received.record(7, seq);
        }
        assert_eq!(received.duplicated, 1);
        assert_eq!(received.reordered, 1);
        assert_eq!(received.from[&7].len(), 5);
    }

    #[test]
    fn missing_counts_what_the_other_set_lacks() {
        let mut acked = SeqSet::default();
        let mut seen = SeqSet::default();
        for seq in 1..=200 {
            acked.insert(seq);
            if seq % 50 != 0 {
                seen.insert(seq);
            }
        }
        assert_eq!(acked.missing_from(&seen), 4);
        assert_eq!(seen.missing_from(&acked), 0);
        assert!(seen.contains(49) && !seen.contains(50));
    }

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let latency = Latency::default();
        for ms in 1..=100 {
            latency.record(Duration::from_millis(ms));
        }
        let p = latency.summary();
        assert_eq!(p.count, 100);
        assert!((p.p50 - 50.0).abs() < 0.1, "{p:?}");
        assert!((p.max - 100.0).abs() < 0.1, "{p:?}");
    }
}
