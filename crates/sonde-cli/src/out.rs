//! Standard output that reports a closed pipe as an error instead of panicking as
//! `print!` does, so that `sonde sessions | head -1` ends quietly (see [`crate::exit`]).
//! The crate denies `clippy::print_stdout`: everything goes through [`out!`] and
//! [`outln!`].
//!
//! Output may carry colour ([`HEADER`], [`ERROR`]); `anstream` strips it when the
//! stream is not a terminal or when `NO_COLOR` is set (`CLICOLOR_FORCE=1` keeps it),
//! so pipes, files and tests see plain text.

use std::io::Write as _;

/// Table headers: bold.
pub const HEADER: anstyle::Style = anstyle::Style::new().bold();
/// The `sonde:` before an error: bold red.
pub const ERROR: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();

/// Writes `text` to standard output.
pub fn write(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut stdout = anstream::stdout().lock();
    stdout.write_fmt(text)?;
    stdout.flush()
}

/// `print!` that returns the write's `std::io::Result` (use with `?`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

/// `println!` that returns the write's `std::io::Result` (use with `?`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};
