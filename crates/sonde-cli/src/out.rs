//! Standard output that reports a closed pipe as an error instead of panicking as
//! `print!` does, so that `sonde sessions | head -1` ends quietly (see [`crate::exit`]).
//! The crate denies `clippy::print_stdout`: everything goes through [`out!`] and
//! [`outln!`].

use std::io::Write as _;

/// Writes `text` to standard output.
pub fn write(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
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
