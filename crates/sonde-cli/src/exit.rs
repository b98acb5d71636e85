//! How `sonde` ends: its exit codes, and the errors that choose one.
//!
//! 0 success; 1 an error (after storing what was good); 2 a usage error; 130 a one-shot
//! command cut short by Ctrl-C or SIGTERM; 141 standard output closed by its reader
//! (`sonde sessions | head -1`), quietly, as a command killed by SIGPIPE ends.

use std::process::ExitCode;

/// The command line asked for something impossible (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error saying `message`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// A run that had errors: exit code 1.
pub const ERRORS: u8 = 1;
/// A usage error: exit code 2 (as clap's own).
pub const USAGE: u8 = 2;
/// Cut short by SIGINT or SIGTERM: 128 + SIGINT's number, as shells report Ctrl-C.
pub const INTERRUPTED: u8 = 130;
/// Standard output closed by its reader: 128 + SIGPIPE's number, as shells report a
/// command that SIGPIPE ended.
pub const CLOSED_PIPE: u8 = 141;

/// Whether `error` comes from writing to a pipe whose reader has gone.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<sonde::sync::SyncError>()
                .is_some_and(sonde::sync::SyncError::is_closed_pipe)
    })
}

/// The exit code of a command that failed with `error`.
pub fn code_of(error: &anyhow::Error) -> ExitCode {
    if is_closed_pipe(error) {
        ExitCode::from(CLOSED_PIPE)
    } else if error.downcast_ref::<UsageError>().is_some() {
        ExitCode::from(USAGE)
    } else {
        ExitCode::from(ERRORS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_found_under_context() {
        let error = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("cannot write the listing");
        assert!(is_closed_pipe(&error));
        assert!(!is_closed_pipe(&anyhow::anyhow!("broken pipe")));
    }

    #[test]
    fn usage_errors_exit_2_and_others_1() {
        assert_eq!(code_of(&usage("--path needs one agent")), ExitCode::from(2));
        assert_eq!(
            code_of(&anyhow::anyhow!("no session s-1")),
            ExitCode::from(1)
        );
    }
}
