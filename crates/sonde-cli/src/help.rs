//! The command's definition as people see it: `--help` with the global options shown
//! only where they apply, shell completions and the man page.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use clap::CommandFactory as _;

use crate::out::out;

/// Commands that open no database: `--db` is hidden from their help.
const NO_DATABASE: [&str; 3] = ["pricing", "completions", "man"];
/// Commands that price nothing: `--prices` is hidden from their help (the stored
/// costs were computed when the calls were written).
const NO_PRICES: [&str; 12] = [
    "sessions",
    "prune",
    "backup",
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

/// `sonde man [SUBCOMMAND]`: a man page (roff) on standard output — sonde's own (the
/// options, every subcommand and the examples) or one subcommand's (`sonde-sync(1)`);
/// with `--dir`, every page written into that folder.
pub fn man(subcommand: Option<&str>, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let command = command().name("sonde");
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(command, dir)
            .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let page = match subcommand {
        None => command,
        Some(name) => {
            // Built as generate_to builds it, a subcommand's page is named sonde-sync(1).
            let mut command = command.disable_help_subcommand(true);
            command.build();
            let names: Vec<String> = command
                .get_subcommands()
                .map(|c| c.get_name().to_owned())
                .collect();
            let Some(sub) = command.find_subcommand(name) else {
                return Err(crate::exit::usage(format!(
                    "no subcommand {name}: expected one of {}",
                    names.join(", ")
                )));
            };
            sub.clone()
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    out!("{}", String::from_utf8_lossy(&roff))?;
    Ok(ExitCode::SUCCESS)
}
