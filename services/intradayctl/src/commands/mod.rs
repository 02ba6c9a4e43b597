//! One module per command; each returns a [`crate::output::Report`].

pub mod ack;
pub mod cluster;
pub mod dlq;
pub mod migrate;
pub mod reap;
pub mod replay;
pub mod runs;
pub mod status;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::CtlError;

pub fn now_ms() -> u64 {
    intraday_aws::jobs::now_ms()
}

/// An instant given as RFC 3339 (`2024-03-01T00:00:00Z`) or epoch milliseconds.
pub fn parse_time(flag: &str, text: &str) -> Result<u64, CtlError> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
        .ok_or_else(|| {
            CtlError::Invalid(format!(
                "{flag} `{text}` is not a time: use RFC 3339 (2024-03-01T00:00:00Z) or epoch milliseconds"
            ))
        })
}

/// `--since`: a duration back from now (`90m`, `24h`, `7d`) or an instant.
pub fn parse_since(text: &str, now: u64) -> Result<u64, CtlError> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "m" => Some(60),
        "h" => Some(3600),
        "d" => Some(86_400),
        _ => None,
    };
    if let (Some(seconds), Ok(n)) = (seconds, number.parse::<u64>()) {
        return Ok(now.saturating_sub(n * seconds * 1000));
    }
    parse_time("--since", text)
}

/// Epoch milliseconds for people: RFC 3339 in UTC, always with milliseconds, so times line up
/// in a column and a watermark (`…:00.001Z`) reads exactly. JSON keeps epoch milliseconds.
pub fn show_time(ms: u64) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// A window `[start, end)` for people.
pub fn show_window(start_ms: u64, end_ms: u64) -> String {
    format!("[{}, {})", show_time(start_ms), show_time(end_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_and_durations() {
        assert_eq!(
            parse_time("--start", "2024-03-11T10:30:00Z").expect("rfc3339"),
            1_710_153_000_000
        );
        assert_eq!(
            parse_time("--start", "1710153000000").expect("ms"),
            1_710_153_000_000
        );
        assert_eq!(
            parse_time("--end", "yesterday").unwrap_err().to_string(),
            "--end `yesterday` is not a time: use RFC 3339 (2024-03-01T00:00:00Z) or epoch milliseconds"
        );
        assert_eq!(
            parse_since("2h", 10_000_000).expect("duration"),
            10_000_000 - 7_200_000
        );
        assert_eq!(
            parse_since("7d", 1_000_000_000_000).expect("days"),
            1_000_000_000_000 - 604_800_000
        );
        assert_eq!(show_time(1_710_153_000_000), "2024-03-11T10:30:00.000Z");
        assert_eq!(show_time(1_710_153_000_001), "2024-03-11T10:30:00.001Z");
        assert_eq!(
            show_window(0, 1_710_153_000_000),
            "[1970-01-01T00:00:00.000Z, 2024-03-11T10:30:00.000Z)"
        );
    }
}
