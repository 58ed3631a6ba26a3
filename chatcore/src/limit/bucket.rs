//! A token bucket for the requests of one connection.

use tokio::time::Instant;

/// Requests per second a connection may send on average, and how many it
/// may send at once after a quiet spell. `per_second == 0` turns the limit
/// off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// No limit at all.
    pub const OFF: RateLimit = RateLimit {
        per_second: 0,
        burst: 0,
    };
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 200,
            burst: 400,
        }
    }
}

/// Holds up to `burst` tokens, refilled at `per_second`; each request takes
/// one. Plain numbers and one `Instant`, so checking costs no allocation.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket as of `now`. A burst below one would refuse everything,
    /// so it is raised to one.
    pub(crate) fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        let capacity = f64::from(limit.burst.max(1));
        TokenBucket {
            per_second: f64::from(limit.per_second),
            capacity,
            tokens: capacity,
            refilled_at: now,
        }
    }

    /// Takes one token if there is one; `false` means the request is over
    /// the limit. Always `true` when the limit is off.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        if self.per_second == 0.0 {
            return true;
        }
        // `saturating_duration_since`: an `Instant` older than the last one
        // (callers that read the clock before us) adds nothing.
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.refilled_at = self.refilled_at.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limit(per_second: u32, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }

    #[test]
    fn a_full_bucket_allows_the_burst_then_refuses() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit(10, 5), start);
        for i in 0..5 {
            assert!(bucket.try_take(start), "request {i} of the burst");
        }
        assert!(!bucket.try_take(start));
        assert!(!bucket.try_take(start));
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit(10, 5), start);
        while bucket.try_take(start) {}
        // 10/s: one token per 100 ms.
        assert!(!bucket.try_take(start + Duration::from_millis(50)));
        assert!(bucket.try_take(start + Duration::from_millis(101)));
        assert!(!bucket.try_take(start + Duration::from_millis(101)));
        let later = start + Duration::from_millis(302);
        assert!(bucket.try_take(later));
        assert!(bucket.try_take(later));
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn a_long_pause_refills_no_more_than_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit(100, 3), start);
        while bucket.try_take(start) {}
        let later = start + Duration::from_secs(3600);
        let allowed = (0..10).filter(|_| bucket.try_take(later)).count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn a_steady_rate_below_the_limit_is_never_refused() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit(200, 400), start);
        // 150/s for ten seconds.
        for i in 0..1500u64 {
            let now = start + Duration::from_micros(i * 1_000_000 / 150);
            assert!(bucket.try_take(now), "request {i}");
        }
    }

    #[test]
    fn a_flood_gets_about_the_rate_through() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit(100, 10), start);
        // 1000 requests a second for two seconds.
        let allowed = (0..2000u64)
            .filter(|i| bucket.try_take(start + Duration::from_millis(*i)))
            .count();
        assert!((200..=215).contains(&allowed), "{allowed} allowed");
    }

    #[test]
    fn off_allows_everything() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit::OFF, start);
        assert!((0..10_000).all(|_| bucket.try_take(start)));
    }

    #[test]
    fn an_earlier_instant_does_not_break_the_bucket() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(limit(10, 1), start);
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start - Duration::from_secs(5)));
        assert!(bucket.try_take(start + Duration::from_millis(100)));
    }
}
