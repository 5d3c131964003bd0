//! Rendering of command results: `-w table|json|simple`. Commands build typed reports; this
//! module is the only place that writes results to stdout.
//!
//! Tables follow etcdctl's look (upper-case headers, `+---+` borders); JSON is one document
//! with stable field names; simple is etcdctl's comma-joined rows. Text that came from a file
//! or a server is escaped before it reaches a terminal.

use std::io::{self, Write};
use std::time::Duration;

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use crate::cli::OutputFormat;

/// A result that can be shown in every output format.
pub trait Report {
    /// Column headers and rows for `-w table`.
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>);
    /// The document for `-w json`.
    fn json(&self) -> serde_json::Value;
    /// Lines for `-w simple`.
    fn simple(&self) -> Vec<String>;
    /// Lines printed under the table, for what does not fit etcdctl's columns.
    fn details(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Write `report` to stdout in `format`.
pub fn emit(format: OutputFormat, report: &dyn Report) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    write_report(&mut out, format, report)?;
    out.flush()
}

pub fn write_report(
    out: &mut dyn Write,
    format: OutputFormat,
    report: &dyn Report,
) -> io::Result<()> {
    match format {
        OutputFormat::Table => {
            let (headers, rows) = report.table();
            writeln!(out, "{}", render_table(&headers, &rows))?;
            let details = report.details();
            if !details.is_empty() {
                writeln!(out)?;
                for line in details {
                    writeln!(out, "{}", escape(&line))?;
                }
            }
            Ok(())
        }
        OutputFormat::Json => {
            let text = serde_json::to_string(&report.json()).map_err(io::Error::other)?;
            writeln!(out, "{text}")
        }
        OutputFormat::Simple => {
            for line in report.simple() {
                writeln!(out, "{line}")?;
            }
            Ok(())
        }
    }
}

/// Write plain lines (for commands whose output is a script or a message).
pub fn emit_text(text: &str) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// comfy-table's ASCII_FULL_CONDENSED with `-` and `+` under the header, as etcdctl's
/// tablewriter draws it.
const ETCDCTL_STYLE: &str = "||--+-++|    ++++++";

fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = Table::new();
    table
        .load_preset(ETCDCTL_STYLE)
        .set_content_arrangement(ContentArrangement::Disabled);
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| escape(c)).collect())
        .collect();
    // tablewriter centres headers with the odd space on the right; comfy-table puts it on the
    // left, so pad them ourselves.
    let header_cells = headers.iter().enumerate().map(|(i, h)| {
        let h = h.to_uppercase();
        let width = rows
            .iter()
            .filter_map(|r| r.get(i))
            .map(|c| c.chars().count())
            .chain([h.chars().count()])
            .max()
            .unwrap_or(0);
        let gap = width - h.chars().count();
        let text = format!("{}{h}{}", " ".repeat(gap / 2), " ".repeat(gap - gap / 2));
        Cell::new(text).set_alignment(CellAlignment::Left)
    });
    table.set_header(header_cells);
    for row in rows {
        table.add_row(row);
    }
    // etcd right-aligns every cell (tablewriter ALIGN_RIGHT).
    for column in table.column_iter_mut() {
        column.set_cell_alignment(CellAlignment::Right);
    }
    table.to_string()
}

/// Make text from a file or a server safe to print: control characters become escapes.
pub fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Quote a value for a POSIX shell when it needs it.
pub fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/.,:=_-@+".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
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

/// An etcd ID as etcdctl prints it: lower-case hex without leading zeros.
pub fn hex_id(id: u64) -> String {
    format!("{id:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn escape_control_characters() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a\x1b[31mb\n"), "a\\u{1b}[31mb\\n");
    }

    #[test]
    fn table_looks_like_etcdctl() {
        let t = render_table(&["endpoint", "health"], &[vec!["a".into(), "true".into()]]);
        assert!(t.starts_with("+"), "{t}");
        assert!(t.contains("ENDPOINT"), "{t}");
    }
}
