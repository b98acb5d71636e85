//! Human output: aligned tables, thousands separators, dollars to the cent.

use std::fmt::Write;

use crate::out::HEADER;

/// A table printed with aligned columns; numeric-looking cells align right.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table with its last column cut (`…`) so that no line is wider than `width`
    /// (the last column keeps at least 20 characters).
    pub fn render_within(&self, width: usize) -> String {
        let Some(last) = self.headers.len().checked_sub(1) else {
            return self.render();
        };
        let others: usize = (0..last)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .chain([&self.headers[i]])
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
                    + 2
            })
            .sum();
        let room = width.saturating_sub(others).max(20);
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let mut row = row.clone();
                if let Some(cell) = row.get_mut(last) {
                    *cell = preview(cell, room);
                }
                row
            })
            .collect();
        Table {
            headers: self.headers.clone(),
            rows,
        }
        .render()
    }

    /// The table as text: columns two spaces apart, numbers aligned right, the header
    /// bold (shown as such where colour is, see [`crate::out`]), no trailing spaces.
    pub fn render(&self) -> String {
        use comfy_table::{CellAlignment, ColumnConstraint, Width, presets};
        let columns = self.headers.len();
        let mut table = comfy_table::Table::new();
        table.load_style(presets::NOTHING);
        table.set_header(&self.headers);
        for row in &self.rows {
            table.add_row(row.iter().take(columns));
        }
        for (i, column) in table.column_iter_mut().enumerate() {
            column.set_padding((u16::from(i > 0), u16::from(i + 1 < columns)));
            let numeric = !self.rows.is_empty()
                && self
                    .rows
                    .iter()
                    .all(|r| r.get(i).is_none_or(|c| looks_numeric(c)));
            if numeric {
                column.set_cell_alignment(CellAlignment::Right);
            }
            // Never wrapped: a table is as wide as its cells.
            column.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(0)));
        }
        let mut out = String::new();
        for (n, line) in table.lines().enumerate() {
            let line = line.trim_end();
            let _ = if n == 0 {
                writeln!(out, "{HEADER}{line}{HEADER:#}")
            } else {
                writeln!(out, "{line}")
            };
        }
        out
    }
}

/// Whether a cell reads as a number (`1,234`, `-$0.50`, `12.5%`, `850ms`, `5m 26s`),
/// to align right; a date (`2026-01-01 ...`) does not.
fn looks_numeric(cell: &str) -> bool {
    let body = cell.trim_start_matches(['-', '$']);
    cell.is_empty()
        || cell == "-"
        || (body.starts_with(|c: char| c.is_ascii_digit())
            && body.chars().all(|c| {
                c.is_ascii_digit() || matches!(c, ',' | '.' | '%' | ' ' | 'm' | 's' | 'h' | 'd')
            }))
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count and its noun, singular for one: `1 record`, `1,234 records`.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n))
    }
}

/// Dollars to the cent; `-` when unknown.
pub fn dollars(value: Option<f64>) -> String {
    match value {
        Some(v) => {
            let cents = (v * 100.0).round() as i64;
            let sign = if cents < 0 { "-" } else { "" };
            let cents = cents.unsigned_abs();
            format!("{sign}${}.{:02}", thousands(cents / 100), cents % 100)
        }
        None => "-".to_owned(),
    }
}

/// The columns output may use: the terminal's width, or 100 when standard output is
/// not a terminal.
pub fn output_width() -> usize {
    terminal_size::terminal_size_of(std::io::stdout())
        .map_or(100, |(terminal_size::Width(w), _)| usize::from(w))
}

/// `text` wrapped at spaces into lines of at most `width` characters (a longer word
/// stays whole), each starting with `indent`.
pub fn wrapped(text: &str, width: usize, indent: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut line = indent.to_owned();
    for word in text.split(' ') {
        let fits = line.chars().count() + 1 + word.chars().count() <= width;
        if line.len() > indent.len() && !fits {
            lines.push(std::mem::replace(&mut line, indent.to_owned()));
        } else if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines.join("\n")
}

/// The first line of `text`, cut to `max` characters.
pub fn preview(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > max || text.lines().nth(1).is_some() {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(dollars(Some(1234.565)), "$1,234.57");
        assert_eq!(dollars(Some(0.004)), "$0.00");
        assert_eq!(dollars(None), "-");
    }

    #[test]
    fn one_thing_is_singular() {
        assert_eq!(count(1, "record"), "1 record");
        assert_eq!(count(0, "record"), "0 records");
        assert_eq!(count(1234, "file"), "1,234 files");
    }

    /// The text without its colour, as a pipe or `NO_COLOR` gets it.
    fn plain(text: String) -> String {
        anstream::adapter::strip_str(&text).to_string()
    }

    #[test]
    fn the_header_is_bold_where_colour_is_shown() {
        let t = Table::new(&["NAME"]);
        assert_eq!(t.render(), "\u{1b}[1mNAME\u{1b}[0m\n");
    }

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let mut t = Table::new(&["NAME", "TOKENS"]);
        t.row(vec!["a".into(), "1,000".into()]);
        t.row(vec!["longer".into(), "5".into()]);
        assert_eq!(
            plain(t.render()),
            "NAME    TOKENS\na        1,000\nlonger       5\n"
        );
    }

    #[test]
    fn dates_align_left_and_durations_right() {
        let mut t = Table::new(&["STARTED", "DURATION"]);
        t.row(vec!["2026-01-01 10:00:00 UTC".into(), "5m 26s".into()]);
        t.row(vec!["2026-01-02".into(), "850ms".into()]);
        assert_eq!(
            plain(t.render()),
            "STARTED                  DURATION\n2026-01-01 10:00:00 UTC    5m 26s\n2026-01-02                  850ms\n"
        );
    }

    #[test]
    fn a_table_within_a_width_cuts_its_last_column() {
        let mut t = Table::new(&["KIND", "DETAIL"]);
        t.row(vec!["message".into(), "x".repeat(200)]);
        let text = plain(t.render_within(40));
        assert!(text.lines().all(|l| l.chars().count() <= 40), "{text}");
        assert!(text.contains('…'));
    }

    #[test]
    fn previews_cut_long_or_multiline_text() {
        assert_eq!(preview("short", 10), "short");
        assert_eq!(preview("two\nlines", 10), "two…");
        assert_eq!(preview("abcdefghijkl", 5), "abcd…");
    }
}
