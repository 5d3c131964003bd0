//! Time stamps: RFC 3339 (sidecars, reports, `--to-time`), and the compact UTC form of S3's
//! signatures and our generated names (`20261207T031400Z`). A leaf: it imports nothing of the
//! crate.

use anyhow::Result;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// RFC 3339 in UTC, seconds precision (`2026-11-22T03:01:41Z`).
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `YYYYMMDDTHHMMSSZ` in UTC: SigV4's `x-amz-date` and the timestamp in generated snapshot names.
pub fn amz_date(t: std::time::SystemTime) -> String {
    let unix = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    compact_utc(unix)
}

/// [`amz_date`] of a Unix time.
pub fn compact_utc(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "19700101T000000Z".to_string(),
    }
}

/// The Unix time of a [`compact_utc`] string.
pub fn parse_compact_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        num(0..4)? as i32,
        time::Month::try_from(num(4..6)? as u8).ok()?,
        num(6..8)? as u8,
    )
    .ok()?;
    let t = time::Time::from_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8).ok()?;
    Some(date.with_time(t).assume_utc().unix_timestamp())
}

/// Parse an RFC 3339 time into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64> {
    Ok(OffsetDateTime::parse(s, &Rfc3339)?.unix_timestamp())
}

/// Parse an RFC 3339 time, fractions of a second included, into Unix nanoseconds.
pub fn parse_rfc3339_ns(s: &str) -> Result<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339)?;
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| anyhow::anyhow!("{s} is out of range"))
}

/// RFC 3339 in UTC with as many fraction digits as the time has (`2026-12-07T03:14:00.25Z`).
pub fn rfc3339_ns(unix_ns: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ns))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix_ns.to_string())
}

/// Now, in Unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_of_a_second_round_trip() {
        let ns = parse_rfc3339_ns("2026-12-07T03:14:00.25Z").unwrap();
        assert_eq!(ns % 1_000_000_000, 250_000_000);
        assert_eq!(rfc3339_ns(ns), "2026-12-07T03:14:00.25Z");
        assert_eq!(
            parse_rfc3339_ns("2026-12-07T04:14:00+01:00").unwrap(),
            parse_rfc3339_ns("2026-12-07T03:14:00Z").unwrap()
        );
        assert!(parse_rfc3339_ns("03:14").is_err());
    }

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_rfc3339("2026-11-22T03:01:41Z").unwrap(),
            1_795_316_501
        );
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
