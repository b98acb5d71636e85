//! The command's definition as people see it: `--help` with the global options shown
//! only where they apply, shell completions and the man page.

use std::process::ExitCode;

use clap::CommandFactory as _;

use crate::out::out;

/// Commands that open no database: `--db` is hidden from their help.
const NO_DATABASE: [&str; 3] = ["pricing", "completions", "man"];
/// Commands that price nothing: `--prices` is hidden from their help (the stored
/// costs were computed when the calls were written).
const NO_PRICES: [&str; 10] = [
    "sessions",
    "query",
    "rm",
    "stats",
    "keys",
    "migrate",
    "schema",
    "export",
    "completions",
    "man",
];

/// `sonde`'s definition, global options hidden where they do not apply: those
/// subcommands get a hidden copy of the option, which clap then does not propagate
/// over (it still parses, as everywhere).
pub fn command() -> clap::Command {
    let mut command = crate::Cli::command();
    for (id, names) in [("db", &NO_DATABASE[..]), ("prices", &NO_PRICES[..])] {
        let Some(arg) = command.get_arguments().find(|a| a.get_id() == id).cloned() else {
            continue;
        };
        for name in names {
            let hidden = arg.clone().hide(true);
            command = command.mut_subcommand(name, |sub| sub.arg(hidden));
        }
    }
    command
}

/// `sonde completions SHELL`: the completion script on standard output.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(), "sonde", &mut script);
    out!("{}", String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}

/// `sonde man`: the man page (roff) on standard output: the options, every
/// subcommand and the examples.
pub fn man() -> anyhow::Result<ExitCode> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command()).render(&mut page)?;
    out!("{}", String::from_utf8_lossy(&page))?;
    Ok(ExitCode::SUCCESS)
}
