//! Go-compatible spellings shared by settings, output and the commands: durations (`2s`,
//! `1m30s`, as Go's `time.ParseDuration` and `Duration.String`), booleans (`strconv.ParseBool`),
//! sizes (go-humanize `Bytes`) and etcd's hex IDs. Times are `timestamp`'s, quoting is
//! `text`'s. A leaf: it imports nothing of the crate.

use std::time::Duration;

use anyhow::{bail, Result};

/// Go's `strconv.ParseBool` spellings.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parse a duration as Go's `time.ParseDuration` does (`2s`, `1m30s`, `500ms`, `1.5h`), the
/// spelling etcdctl users already type. A bare number is taken as seconds.
pub fn parse_go_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    if s.is_empty() {
        bail!("empty duration");
    }
    if let Ok(secs) = s.parse::<f64>() {
        return seconds(secs, s);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            bail!("invalid duration {s:?}: expected a number");
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => bail!("invalid duration {s:?}: missing unit (ns, us, ms, s, m, h)"),
            unit => bail!("invalid duration {s:?}: unknown unit {unit:?}"),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    seconds(total, s)
}

/// Go's durations, and whole days (`1d`, `7d`): retention windows and schedules.
pub fn parse_duration_days(text: &str) -> Result<Duration> {
    if let Some(days) = text
        .trim()
        .strip_suffix('d')
        .and_then(|d| d.parse::<u64>().ok())
    {
        if days == 0 {
            bail!("invalid duration {text:?}: must be positive");
        }
        return Ok(Duration::from_secs(days.saturating_mul(86_400)));
    }
    parse_go_duration(text)
}

fn seconds(secs: f64, original: &str) -> Result<Duration> {
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        bail!("invalid duration {original:?}: must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Bytes in SI units exactly as etcd prints them (go-humanize `Bytes`): `20 kB`, `1.2 MB`.
pub fn humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let f = n as f64;
    let e = (f.ln() / 1000f64.ln()).floor();
    let unit = UNITS[(e as usize).min(UNITS.len() - 1)];
    let val = (f / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {unit}")
    } else {
        // Rust's `{:.0}` rounds ties to even, as Go's `%.0f` does.
        format!("{val:.0} {unit}")
    }
}

/// A duration as Go's `time.Duration.String()` writes it (`2.064643ms`, `844.495µs`, `1m2.5s`),
/// the format etcdctl users know from `took`.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let frac = |value: u128, digits: u32| -> String {
        let scale = 10u128.pow(digits);
        let (int, rem) = (value / scale, value % scale);
        if rem == 0 {
            return int.to_string();
        }
        let s = format!("{rem:0width$}", width = digits as usize);
        format!("{int}.{}", s.trim_end_matches('0'))
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", frac(nanos, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", frac(nanos, 6));
    }
    let total_secs = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let (h, m, s) = (total_secs / 3600, (total_secs / 60) % 60, total_secs % 60);
    let secs = frac(s * 1_000_000_000 + sub, 9);
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

/// Lower-case hex of `bytes` (digests, signatures).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An etcd ID as etcdctl prints it: lower-case hex without leading zeros.
pub fn hex_id(id: u64) -> String {
    format!("{id:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_go_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_go_duration("3").unwrap(), Duration::from_secs(3));
        for bad in ["", "abc", "5x", "s", "-1s", "0s", "1e400"] {
            assert!(
                parse_go_duration(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn humanize_matches_go_humanize() {
        for (n, want) in [
            (0, "0 B"),
            (9, "9 B"),
            (10, "10 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (20480, "20 kB"),
            (21500, "22 kB"),
            (913408, "913 kB"),
            (999_999, "1000 kB"),
            (1_500_000, "1.5 MB"),
            (1_073_741_824, "1.1 GB"),
        ] {
            assert_eq!(humanize_bytes(n), want, "{n}");
        }
    }

    #[test]
    fn go_duration_strings() {
        assert_eq!(go_duration(Duration::from_nanos(2_064_643)), "2.064643ms");
        assert_eq!(go_duration(Duration::from_nanos(844_495)), "844.495µs");
        assert_eq!(go_duration(Duration::from_nanos(500)), "500ns");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(62)), "1m2s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_millis(2)), "2ms");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }
}
