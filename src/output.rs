//! Rendering of command results: `-w table|json|simple`. Commands build typed reports; this
//! module is the only place that writes results to stdout.
//!
//! Tables follow etcdctl's look (upper-case headers, `+---+` borders); JSON is one document
//! with stable field names; simple is etcdctl's comma-joined rows. Text that came from a file
//! or a server is escaped before it reaches a terminal.

use std::io::{self, Write};

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use crate::text::escape;

/// `-w/--write-out`, etcdctl's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Simple,
}

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
    /// Lines printed above the table (the line a guide tells people to look for).
    fn headline(&self) -> Vec<String> {
        Vec::new()
    }
    /// Notes and next steps for the operator, printed on stderr in every format.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The `-w json` document of a report whose serde shape is its JSON.
pub fn serialized(report: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(report).unwrap_or_default()
}

/// Write `report` to stdout in `format`, and its notes to stderr.
pub fn emit(format: OutputFormat, report: &dyn Report) -> io::Result<()> {
    let mut err = io::stderr().lock();
    for note in report.notes() {
        writeln!(err, "{}", escape(&note))?;
    }
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
            for line in report.headline() {
                writeln!(out, "{}", escape(&line))?;
            }
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
            // Names, URLs and paths came from files and servers: no raw control characters.
            for line in report.simple() {
                writeln!(out, "{}", escape(&line))?;
            }
            Ok(())
        }
    }
}

/// Bytes done of a total, the rate and the percentage, on one stderr line rewritten at most five
/// times a second; only when stderr is a terminal (a pipe or a journal gets nothing).
pub struct Progress {
    enabled: bool,
    start: std::time::Instant,
    last: std::time::Instant,
    shown: bool,
}

impl Progress {
    pub fn on_terminal() -> Progress {
        use std::io::IsTerminal;
        Progress::new(io::stderr().is_terminal())
    }

    fn new(enabled: bool) -> Progress {
        let now = std::time::Instant::now();
        Progress {
            enabled,
            start: now,
            last: now,
            shown: false,
        }
    }

    pub fn update(&mut self, done: u64, total: u64) {
        let due = !self.shown || self.last.elapsed() >= std::time::Duration::from_millis(200);
        if !self.enabled || !due {
            return;
        }
        self.last = std::time::Instant::now();
        self.shown = true;
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let pct = (done * 100).checked_div(total).unwrap_or(100).min(100);
        let _ = write!(
            io::stderr().lock(),
            "\r{} / {} ({pct}%), {}/s   ",
            crate::units::humanize_bytes(done),
            crate::units::humanize_bytes(total),
            crate::units::humanize_bytes((done as f64 / secs) as u64)
        );
    }

    /// End the line, if one was drawn.
    pub fn finish(&self) {
        if self.shown {
            let _ = writeln!(io::stderr().lock());
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

/// Write bytes exactly as they are (`snapshot get --print-value-only`).
pub fn emit_bytes(bytes: &[u8]) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    out.write_all(bytes)?;
    out.flush()
}

/// comfy-table's ASCII_FULL_CONDENSED with `-` and `+` under the header, as etcdctl's
/// tablewriter draws it.
const ETCDCTL_STYLE: &str = "||--+-++|    ++++++";

/// An etcdctl-looking table (cells escaped).
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_looks_like_etcdctl() {
        let t = render_table(&["endpoint", "health"], &[vec!["a".into(), "true".into()]]);
        assert!(t.starts_with("+"), "{t}");
        assert!(t.contains("ENDPOINT"), "{t}");
    }
}
