//! The numbered chat text every message carries, so that receivers can
//! tell loss, duplicates and reordering and time the delivery without any
//! state shared with the sender: `L<sender>:<seq>:<due µs since epoch>:`
//! followed by padding up to the requested size.

use std::time::{SystemTime, UNIX_EPOCH};

/// What a receiver reads back from a message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sending client's index in this run.
    pub sender: u32,
    /// The sender's own sequence number, from 1.
    pub seq: u64,
    /// When the send was due, in microseconds since the Unix epoch (a wall
    /// clock, so that it means the same in every process on the machine).
    pub due_us: u64,
}

/// Microseconds since the Unix epoch now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Stamp {
    /// The message text: the stamp, then `.` padding up to `size` bytes.
    pub fn text(&self, size: usize) -> String {
        let mut text = format!("L{}:{}:{}:", self.sender, self.seq, self.due_us);
        if text.len() < size {
            text.extend(std::iter::repeat_n('.', size - text.len()));
        }
        text
    }

    /// The stamp of a text written by [`Stamp::text`]; `None` for any
    /// other text (someone else's message).
    pub fn parse(text: &str) -> Option<Stamp> {
        let rest = text.strip_prefix('L')?;
        let mut fields = rest.splitn(4, ':');
        let sender = fields.next()?.parse().ok()?;
        let seq = fields.next()?.parse().ok()?;
        let due_us = fields.next()?.parse().ok()?;
        fields.next()?;
        Some(Stamp {
            sender,
            seq,
            due_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_survives_its_text_at_any_size() {
        let stamp = Stamp {
            sender: 17,
            seq: 123_456,
            due_us: 1_790_000_000_123_456,
        };
        for size in [0, 10, 64, 1000] {
            let text = stamp.text(size);
            assert!(text.len() >= size);
            assert_eq!(Stamp::parse(&text), Some(stamp));
        }
    }

    #[test]
    fn foreign_texts_have_no_stamp() {
        assert_eq!(Stamp::parse("hello"), None);
        assert_eq!(Stamp::parse("L1:2"), None);
        assert_eq!(Stamp::parse("Lx:2:3:"), None);
    }
}
