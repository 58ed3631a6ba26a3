//! Server time as the seed shows it: `YYYY-MM-DD HH:MM:SS` in the
//! server's local zone.

use std::cell::Cell;

use chrono::{DateTime, Datelike, FixedOffset, Local, TimeZone, Timelike, Utc};

/// Formats server time as the seed does (`YYYY-MM-DD HH:MM:SS`, local).
pub fn format_time(ms: i64) -> String {
    let Some(utc) = DateTime::from_timestamp_millis(ms) else {
        return String::new();
    };
    let t = utc.naive_utc() + local_offset(ms.div_euclid(60_000), &utc);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The local UTC offset at `utc`, remembered per thread for the minute
/// `minute` (UTC). Every frame with a time needs it, and asking the system
/// zone each time (an environment read and a file check in chrono) cost
/// more than encoding the rest of the frame; zone transitions fall on whole
/// minutes, so a minute's offset holds for all of it.
fn local_offset(minute: i64, utc: &DateTime<Utc>) -> FixedOffset {
    thread_local! {
        static CACHED: Cell<Option<(i64, FixedOffset)>> = const { Cell::new(None) };
    }
    CACHED.with(|cached| match cached.get() {
        Some((m, offset)) if m == minute => offset,
        _ => {
            let offset = Local.offset_from_utc_datetime(&utc.naive_utc());
            cached.set(Some((minute, offset)));
            offset
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::{Local, TimeZone};

    use super::format_time;

    #[test]
    fn time_is_formatted_in_the_local_zone_like_chrono_does() {
        // Spread over years, seasons (both sides of any DST change) and
        // minute boundaries, each twice so the second hits the cache.
        let samples = [
            0,
            1_700_000_000_123,
            1_711_846_799_999,
            1_711_846_800_000,
            1_730_000_000_000,
        ];
        for ms in samples.into_iter().chain(samples) {
            let expected = Local
                .timestamp_millis_opt(ms)
                .single()
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            assert_eq!(format_time(ms), expected, "at {ms} ms");
        }
    }

    #[test]
    fn out_of_range_times_format_as_empty() {
        assert_eq!(format_time(i64::MAX), "");
    }
}
