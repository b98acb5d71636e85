//! `sonde`: record, import, export, inspect and query agent traces.
// Standard output goes through `out!` / `outln!`, which end quietly on a closed pipe.
#![deny(clippy::print_stdout)]

mod calls;
mod exit;
mod filters;
mod formats;
mod help;
mod json;
mod out;
mod progress;
mod records;
mod serve;
mod sessions;
mod stats;
mod status;
mod sync;
mod table;
mod time;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{FromArgMatches as _, Parser, Subcommand};
use sonde::store::{OpenError, StoreUrl, TraceStore, redact_url};

use crate::out::{ERROR, out, outln};

/// mimalloc instead of the system allocator: ingest builds and drops many small JSON
/// values per span; `cargo bench -p sonde-server --bench ingest` measured the server's
/// CPU per span at 22.6 µs with it against 30 µs with glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Record, store and analyse the traces of LLM agents.
#[derive(Parser)]
#[command(name = "sonde", version, about, long_about = None, after_help = examples(&[
    "sonde sync all && sonde stats models",
    "sonde sessions --since 7d",
    "sonde show SESSION_ID",
    "sonde --db postgres://me@host/traces stats cost --bucket week",
]))]
struct Cli {
    /// Database URL: sqlite://PATH, sqlite::memory:, postgres://USER@HOST/DB (default:
    /// sqlite:// in the user's data folder, e.g. ~/.local/share/sonde/sonde.db).
    #[arg(long, env = "SONDE_DB", hide_env_values = true, global = true)]
    db: Option<String>,

    /// Model prices overriding the shipped table (TOML or JSON, USD per million tokens).
    #[arg(long, env = "SONDE_PRICES", hide_env_values = true, global = true)]
    prices: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// `sonde keys ...`.
#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once and only its hash is stored.
    #[command(after_help = examples(&[
        "sonde keys create --org acme --workspace prod --name ci",
        "sonde keys create --org acme --workspace ops --admin --json",
    ]))]
    Create {
        /// The tenant's organisation.
        #[arg(long)]
        org: String,
        /// The tenant's workspace.
        #[arg(long)]
        workspace: String,
        /// A name to recognise the key by.
        #[arg(long)]
        name: Option<String>,
        /// The key may read every tenant and run raw SQL.
        #[arg(long)]
        admin: bool,
        /// Print the key (its secret included) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    #[command(after_help = examples(&["sonde keys list", "sonde keys list --json"]))]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    #[command(after_help = examples(&["sonde keys revoke KEY_ID"]))]
    Revoke {
        /// The key's id (from `sonde keys list`).
        id: String,
        /// Print {"revoked": ID} as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `sonde import` reads.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ImportFormat {
    /// Sonde record JSONL.
    Records,
    /// OTLP/JSON trace requests.
    OtlpJson,
    /// lash trace JSONL (every lash-trace schema version, 1 to 7).
    Lash,
}

#[derive(Subcommand)]
enum Command {
    /// Record a demo agent session (two turns, LLM calls, a tool call, messages,
    /// rewards) into the database and list the sessions there; with --open, then serve
    /// the dashboard on it (as `sonde serve` does) and open it in the browser.
    #[command(after_help = examples(&[
        "sonde demo",
        "sonde demo --open",
        "sonde --db sqlite:///tmp/demo.db demo --json",
    ]))]
    Demo {
        /// Print the sessions as `sonde sessions --json` does.
        #[arg(long)]
        json: bool,
        /// Then serve the dashboard (and OTLP) until Ctrl-C, and open it in the browser.
        #[arg(long)]
        open: bool,
        /// With --open: where to listen.
        #[arg(long, default_value = "127.0.0.1:4318", requires = "open")]
        addr: std::net::SocketAddr,
    },
    /// Import record JSONL files (`-` reads stdin), OTLP/JSON trace requests
    /// (--format otlp-json) or lash traces (--format lash). Bad lines are reported as
    /// FILE:LINE and skipped; the rest is imported unless --strict. Records go through
    /// the writer: when the database cannot take them, they wait in the spool and are
    /// written by the next import into the same database.
    #[command(after_help = examples(&[
        "sonde import traces.jsonl",
        "sonde export | sonde --db other.db import -",
        "sonde import --format otlp-json spans.json --errors bad.txt",
        "sonde import --format lash .lash-data/trace.jsonl",
    ]))]
    Import {
        /// Files to import; `-` for stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Import nothing if any line is bad.
        #[arg(long)]
        strict: bool,
        /// The input format: Sonde's record JSONL, OTLP/JSON trace requests (one per
        /// file, or one per line as OpenTelemetry file exporters write them), or lash's
        /// trace JSONL.
        #[arg(long, value_enum, default_value_t = ImportFormat::Records)]
        format: ImportFormat,
        /// The writer's spool folder (default: spool/DATABASE in the data folder).
        #[arg(long, env = "SONDE_SPOOL", hide_env_values = true)]
        spool: Option<PathBuf>,
        /// Write every bad line (or span) to this file; only the first 20 are printed.
        #[arg(long, value_name = "FILE")]
        errors: Option<PathBuf>,
        /// Records the writer queues before spooling (tests use a small queue).
        #[arg(long, hide = true, default_value_t = sonde::store::DEFAULT_QUEUE_CAPACITY)]
        queue_capacity: usize,
        /// Print the summary as JSON on standard output.
        #[arg(long)]
        json: bool,
    },
    /// Export records as JSONL (every session, oldest first, or one).
    #[command(after_help = examples(&[
        "sonde export > all.jsonl",
        "sonde export --session SESSION_ID --out one.jsonl --json",
        "sonde export --to http://127.0.0.1:4318",
    ]))]
    Export {
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long, conflicts_with = "to")]
        out: Option<PathBuf>,
        /// Send the sessions as OTLP/HTTP spans to this OpenTelemetry endpoint instead
        /// (e.g. http://127.0.0.1:4318 — a collector, Phoenix, Jaeger, another sonde):
        /// one trace per session, under a root span for the session and a span per turn.
        #[arg(long)]
        to: Option<String>,
        /// With --to: send no content (prompts, replies, messages, tool arguments and
        /// results), only counts, timings, names and statuses.
        #[arg(long, requires = "to")]
        no_content: bool,
        /// With --to: the most bytes one content attribute holds; a longer value is cut
        /// and ends with a marker naming its size.
        #[arg(long, requires = "to", default_value_t = sonde_otlp::DEFAULT_MAX_ATTRIBUTE_BYTES, value_parser = attribute_cap)]
        max_attribute_bytes: usize,
        /// Print the summary as JSON (on standard error when the records go to
        /// standard output).
        #[arg(long)]
        json: bool,
    },
    /// List sessions, newest first.
    #[command(after_help = examples(&[
        "sonde sessions",
        "sonde sessions --since 2026-01-01 --until 7d --model gpt-5",
        "sonde sessions --meta project=sonde --json",
        "sonde sessions --search 'cargo test' --errors",
    ]))]
    Sessions(sessions::ListArgs),
    /// List LLM calls, newest first: tokens with the cache split, cost, latency,
    /// status, filtered as `sonde stats` filters.
    #[command(after_help = examples(&[
        "sonde calls --since 1d --model claude-sonnet-4-5",
        "sonde calls --failed --min-latency 10000",
        "sonde calls --session SESSION_ID --json",
    ]))]
    Calls(calls::ListArgs),
    /// Show one session: steps, events, messages and rewards.
    #[command(after_help = examples(&["sonde show SESSION_ID", "sonde show SESSION_ID --tz UTC", "sonde show SESSION_ID --json"]))]
    Show {
        /// The session id.
        session_id: String,
        /// Print the whole session as JSON.
        #[arg(long)]
        json: bool,
        /// The time zone of the times printed: an IANA name or UTC (default: the
        /// local one).
        #[arg(long)]
        tz: Option<String>,
    },
    /// Run a read-only SQL query (statements that write are refused); `sonde schema`
    /// lists the tables and columns.
    #[command(after_help = examples(&[
        "sonde query 'SELECT model, count(*) FROM events WHERE event_type = ?1 GROUP BY model' -p llm",
        "sonde query 'SELECT session_id, cost_usd FROM sessions' --json",
    ]))]
    Query {
        /// One SELECT / WITH / EXPLAIN / VALUES statement; `?1`, `?2`... are parameters.
        sql: String,
        /// A parameter value (JSON, or else a string); repeat for ?1, ?2, ...
        #[arg(long = "param", short = 'p')]
        params: Vec<String>,
        /// Print rows as a JSON array of objects.
        #[arg(long)]
        json: bool,
    },
    /// Receive OpenTelemetry traces over OTLP/HTTP (POST /v1/traces, protobuf or JSON,
    /// gzip) and store them; /healthz and /metrics too. Ctrl-C or SIGTERM drains the
    /// writer before exiting.
    #[command(after_help = examples(&[
        "sonde serve",
        "sonde serve --open",
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python agent.py",
    ]))]
    Serve(serve::ServeArgs),
    /// How a running server is doing (--addr): version, uptime, store, writer
    /// pressure, drops, failures by class, spool, ingest rates. Without --addr: the
    /// local database (size, sessions, calls, oldest and newest event) and its spool.
    #[command(after_help = examples(&[
        "sonde status --addr 127.0.0.1:4318",
        "sonde status --addr http://sonde.internal:4318 --key $SONDE_API_KEY --json",
        "sonde status",
    ]))]
    Status {
        /// The server to ask (host:port or URL); without it, the local database.
        #[arg(long)]
        addr: Option<String>,
        /// An admin API key, when the server has keys.
        #[arg(long, env = "SONDE_API_KEY", hide_env_values = true)]
        key: Option<String>,
        /// The spool folder to report on (default: spool/DATABASE in the data folder).
        #[arg(long, env = "SONDE_SPOOL", hide_env_values = true)]
        spool: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Usage, cost, latency and error analytics of LLM calls.
    #[command(subcommand, after_help = examples(&[
        "sonde stats summary --since 7d",
        "sonde stats cost --bucket week --group-by model",
        "sonde stats latency --group-by provider --json",
    ]))]
    Stats(stats::Report),
    /// API keys for `sonde serve`: each writes into and reads from one tenant.
    #[command(subcommand, after_help = examples(&[
        "sonde keys create --org acme --workspace prod",
        "sonde keys list",
        "sonde keys revoke KEY_ID",
    ]))]
    Keys(KeysCommand),
    /// Show the price that applies to a model, and where it comes from.
    #[command(after_help = examples(&["sonde pricing claude-sonnet-4-5", "sonde --prices ours.toml pricing our-finetune --json"]))]
    Pricing {
        /// The model name, as recorded.
        model: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply pending database migrations (every command also does when it opens the
    /// database) and print the schema version.
    #[command(after_help = examples(&["sonde migrate", "sonde --db postgres://me@host/traces migrate --json"]))]
    Migrate {
        /// Print {"backend", "version"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the tables and columns `sonde query` can read, how to read payloads, and
    /// which cost column is which.
    #[command(after_help = examples(&["sonde schema", "sonde schema --json"]))]
    Schema {
        /// Print the tables and their columns as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Turn Claude Code and Codex CLI transcripts into traces: one LLM call per API
    /// response (tokens and cost), tool calls with their results, subagents nested
    /// under the call that spawned them. Incremental: a second run reads only what
    /// was appended.
    #[command(after_help = examples(&[
        "sonde sync all",
        "sonde sync --path ~/backup/claude-projects",
        "sonde sync codex --watch",
        "sonde sync claude --to langfuse --dry-run --json",
    ]))]
    Sync(sync::SyncArgs),
    /// Copy the SQLite database into a new file, consistently, while it is being
    /// written (SQLite's online backup). For PostgreSQL, use pg_dump (docs/operations.md).
    #[command(after_help = examples(&["sonde backup ~/sonde-2026-12-02.db"]))]
    Backup {
        /// The copy to make (a new file).
        path: PathBuf,
    },
    /// Delete every session whose last record is older than a limit, one session at a
    /// time (ingest goes on meanwhile); the analytics stay equal to what is kept.
    #[command(after_help = examples(&[
        "sonde prune --older-than 30d --yes",
        "sonde --db postgres://sonde@db/sonde prune --older-than 90d --yes --json",
    ]))]
    Prune {
        /// Sessions whose last record is older than this (`30d`, `12h`).
        #[arg(long, value_parser = time::parse_span)]
        older_than: std::time::Duration,
        /// Do not ask; needed when standard input is not a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print what was deleted as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a session and everything in it (asks first on a terminal).
    #[command(after_help = examples(&["sonde rm SESSION_ID", "sonde rm SESSION_ID --yes --json"]))]
    Rm {
        /// The session id.
        session_id: String,
        /// Do not ask; needed when standard input is not a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print {"deleted": ID} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = examples(&[
        "sonde completions bash > ~/.local/share/bash-completion/completions/sonde",
        "sonde completions zsh > ~/.zfunc/_sonde",
        "sonde completions fish > ~/.config/fish/completions/sonde.fish",
    ]))]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff), made from the command's definition: sonde's own, or one
    /// subcommand's; or write them all into a folder.
    #[command(after_help = examples(&[
        "sonde man | man -l -",
        "sonde man sync | man -l -",
        "sonde man --dir ~/.local/share/man/man1",
    ]))]
    Man {
        /// The subcommand whose page to print (`sync`, `stats`...; default: sonde's own
        /// page, which lists them all).
        subcommand: Option<String>,
        /// Write every page (sonde.1, sonde-sync.1, ...) into this folder instead.
        #[arg(long, value_name = "DIR", conflicts_with = "subcommand")]
        dir: Option<PathBuf>,
    },
}

/// An EXAMPLES section for a command's help, one command a line.
pub fn examples(lines: &[&str]) -> String {
    let mut text = "EXAMPLES:".to_owned();
    for line in lines {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

/// How a command opens the database.
#[derive(Clone, Copy)]
enum Open {
    /// Creating it (and its folder) when it does not exist: commands that store.
    OrCreate,
    /// Only when it exists: a command that reads or deletes must not turn a mistyped
    /// path into an empty database.
    Existing,
}

impl Command {
    /// How this command opens the database (`pricing` opens none).
    fn open(&self) -> Open {
        match self {
            Command::Demo { .. }
            | Command::Import { .. }
            | Command::Serve(_)
            | Command::Migrate { .. }
            | Command::Sync(_)
            | Command::Keys(KeysCommand::Create { .. }) => Open::OrCreate,
            Command::Export { .. }
            | Command::Sessions(_)
            | Command::Calls(_)
            | Command::Show { .. }
            | Command::Query { .. }
            | Command::Stats(_)
            | Command::Keys(KeysCommand::List { .. } | KeysCommand::Revoke { .. })
            | Command::Pricing { .. }
            | Command::Schema { .. }
            | Command::Completions { .. }
            | Command::Man { .. }
            | Command::Rm { .. }
            | Command::Prune { .. }
            | Command::Backup { .. }
            | Command::Status { .. } => Open::Existing,
        }
    }
}

/// Why `sonde backup` does not copy the database `url` names: it is not SQLite.
fn backup_refused(url: &str) -> anyhow::Error {
    exit::usage(format!(
        "sonde backup copies SQLite databases; for {} use pg_dump (see docs/operations.md)",
        redact_url(url)
    ))
}

/// Opens the database `url` names; `default` says it is the default one (neither
/// --db nor SONDE_DB), for the error a newcomer sees before anything is recorded.
async fn open_store(url: &str, open: Open, default: bool) -> anyhow::Result<Arc<dyn TraceStore>> {
    // The store's errors name the database and the cause already.
    let parsed = StoreUrl::parse(url)?;
    // The store computes each call's cost by the price table (with --prices overrides).
    let prices = sonde::shipped_prices();
    let opened = match open {
        Open::OrCreate => parsed.open_with(Some(prices)).await,
        Open::Existing => parsed.open_existing_with(Some(prices)).await,
    };
    match opened {
        Ok(store) => Ok(store),
        Err(OpenError::NotFound { path }) if default => Err(anyhow::anyhow!(
            "nothing recorded yet (no database at {path}): record with `sonde sync all` \
             (Claude Code and Codex CLI sessions), `sonde serve` (OpenTelemetry traces) or \
             `sonde import FILE`"
        )),
        Err(OpenError::NotFound { path }) => Err(anyhow::anyhow!(
            "no database at {path} (commands that read do not create one; check --db or SONDE_DB)"
        )),
        Err(e) => Err(e.into()),
    }
}

/// The spool folder of a database: `spool/<id of the url>` in the data folder.
/// Parses `--max-attribute-bytes`: at least 256 bytes, room for a cut value's marker.
fn attribute_cap(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 256 => Ok(n),
        _ => Err(format!(
            "invalid byte count {text:?}: expected a whole number of at least 256"
        )),
    }
}

fn default_spool(url: &str) -> PathBuf {
    StoreUrl::data_dir()
        .join("spool")
        .join(sonde::derived_id(&["spool", url]))
}

/// Installs the user's price overrides as the process's price table.
fn install_prices(path: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table =
        sonde_pricing::PriceTable::shipped().with_overrides(&path.display().to_string(), &text)?;
    table.install();
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(path) = &cli.prices {
        install_prices(path)?;
    }
    match &cli.command {
        Command::Pricing { model, json } => return stats::pricing(model, *json),
        Command::Completions { shell } => return help::completions(*shell),
        Command::Man { subcommand, dir } => {
            return help::man(subcommand.as_deref(), dir.as_deref());
        }
        _ => {}
    }
    let url = cli.db.clone().unwrap_or_else(StoreUrl::default_url);
    if let Command::Sync(args) = cli.command {
        return sync::run(args, &url).await;
    }
    if let Command::Status {
        addr: Some(addr),
        key,
        json,
        ..
    } = &cli.command
    {
        return status::remote(addr, key.as_deref(), *json).await;
    }
    if let Command::Backup { .. } = cli.command
        && !matches!(StoreUrl::parse(&url)?, StoreUrl::Sqlite(_))
    {
        // Said before connecting: a PostgreSQL server that is down would hide the hint.
        return Err(backup_refused(&url));
    }
    let store = open_store(&url, cli.command.open(), cli.db.is_none()).await?;
    match cli.command {
        Command::Demo { json, open, addr } => {
            let tracer = sonde::SessionTracer::new(store.clone())?;
            let trace = sonde::demo::record(&tracer).await?;
            let db = redact_url(&url);
            let option = if cli.db.is_some() {
                format!("--db {db} ")
            } else {
                String::new()
            };
            eprintln!(
                "recorded the demo session {id} into {db}; see it with `sonde {option}show {id}`",
                id = trace.session_id,
            );
            let listed = sessions::list(
                store.as_ref(),
                sessions::ListArgs::newest(json),
                cli.db.as_deref(),
            )
            .await?;
            if !open {
                return Ok(listed);
            }
            let args = serve::ServeArgs {
                open: true,
                addr,
                // The dashboard is what the demo is for; OTLP/gRPC on any free port.
                grpc_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                ..serve::ServeArgs::defaults()?
            };
            serve::run(store, &url, args).await
        }
        Command::Import {
            files,
            strict,
            format,
            spool,
            errors,
            queue_capacity,
            json,
        } => {
            let writer = sonde::store::WriterConfig {
                spool_dir: Some(spool.unwrap_or_else(|| default_spool(&url))),
                queue_capacity,
                ..Default::default()
            };
            match format {
                ImportFormat::Records => {
                    records::import(store, writer, &files, strict, errors.as_deref(), json).await
                }
                ImportFormat::OtlpJson => {
                    records::import_otlp(store, writer, &files, strict, errors.as_deref(), json)
                        .await
                }
                ImportFormat::Lash => {
                    records::import_lash(store, writer, &files, strict, errors.as_deref(), json)
                        .await
                }
            }
        }
        Command::Export {
            session,
            out,
            to,
            no_content,
            max_attribute_bytes,
            json,
        } => match to {
            Some(endpoint) => {
                let options = sonde_otlp::ExportOptions {
                    content: !no_content,
                    max_attribute_bytes,
                };
                records::export_otlp(store.as_ref(), session.as_deref(), &endpoint, options, json)
                    .await
            }
            None => records::export(store.as_ref(), session.as_deref(), out.as_deref(), json).await,
        },
        Command::Sessions(args) => sessions::list(store.as_ref(), args, cli.db.as_deref()).await,
        Command::Calls(args) => calls::list(store.as_ref(), args).await,
        Command::Show {
            session_id,
            json,
            tz,
        } => {
            let zone = time::Zone::parse(tz.as_deref())?;
            sessions::show(store.as_ref(), &session_id, json, &zone).await
        }
        Command::Query { sql, params, json } => {
            sessions::query(store.as_ref(), &sql, &params, json).await
        }
        Command::Rm {
            session_id,
            yes,
            json,
        } => sessions::remove(store.as_ref(), &session_id, yes, json).await,
        Command::Backup { path } => match StoreUrl::parse(&url)? {
            StoreUrl::Sqlite(db) => {
                let dest = path.clone();
                tokio::task::spawn_blocking(move || sonde::store::backup_sqlite(&db, &dest))
                    .await??;
                eprintln!("backed up {} to {}", redact_url(&url), path.display());
                Ok(ExitCode::SUCCESS)
            }
            _ => Err(backup_refused(&url)),
        },
        Command::Prune {
            older_than,
            yes,
            json,
        } => sessions::prune(store.as_ref(), older_than, yes, json).await,
        Command::Schema { json } => sessions::schema(store.as_ref(), json).await,
        Command::Stats(report) => stats::report(store.as_ref(), report).await,
        Command::Status { spool, json, .. } => {
            let spool = spool.unwrap_or_else(|| default_spool(&url));
            status::local(store.as_ref(), &spool, json).await
        }
        Command::Keys(command) => keys(store.as_ref(), command).await,
        Command::Serve(args) => serve::run(store, &url, args).await,
        Command::Pricing { .. }
        | Command::Sync(_)
        | Command::Completions { .. }
        | Command::Man { .. } => Ok(ExitCode::SUCCESS),
        Command::Migrate { json } => {
            let version = sonde::schema::version(store.as_ref()).await?;
            if json {
                let value = serde_json::json!({"backend": store.backend(), "version": version});
                outln!("{}", serde_json::to_string_pretty(&value)?)?;
            } else {
                outln!("{} database at schema version {version}", store.backend())?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn keys(store: &dyn TraceStore, command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create {
            org,
            workspace,
            name,
            admin,
            json,
        } => {
            let (key, secret) = sonde::store::ApiKey::generate(&org, &workspace, name, admin);
            store.create_api_key(&key).await?;
            if json {
                let mut value = serde_json::to_value(&key)?;
                if let Some(object) = value.as_object_mut() {
                    object.insert("secret".into(), secret.into());
                }
                outln!("{}", serde_json::to_string_pretty(&value)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "created key {} for {org}/{workspace}{}; its secret (shown once):",
                key.id,
                if admin { " (admin)" } else { "" }
            );
            outln!("{secret}")?;
        }
        KeysCommand::List { json } => {
            let keys = store.api_keys().await?;
            if json {
                json::print(&keys)?;
            } else if keys.is_empty() {
                outln!("no keys")?;
            } else {
                let zone = time::Zone::default();
                let mut t = table::Table::new(&[
                    "ID",
                    "NAME",
                    "ORG",
                    "WORKSPACE",
                    "ADMIN",
                    "CREATED",
                    "REVOKED",
                ]);
                for k in &keys {
                    t.row(vec![
                        k.id.clone(),
                        k.name.clone().unwrap_or_default(),
                        k.org.clone(),
                        k.workspace.clone(),
                        if k.admin { "yes" } else { "no" }.to_owned(),
                        zone.when(k.created_at),
                        k.revoked_at.map(|t| zone.when(t)).unwrap_or_default(),
                    ]);
                }
                out!("{}", t.render())?;
            }
        }
        KeysCommand::Revoke { id, json } => {
            if !store.revoke_api_key(&id).await? {
                eprintln!("sonde: no active key {id}");
                return Ok(ExitCode::FAILURE);
            }
            if json {
                outln!("{}", serde_json::json!({ "revoked": id }))?;
            } else {
                eprintln!("revoked key {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = match help::command().try_get_matches() {
        Ok(matches) => Cli::from_arg_matches(&matches),
        Err(e) => Err(e),
    };
    let cli = cli.unwrap_or_else(|e| e.exit());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SONDE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(|| RedactingStderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            anstream::eprintln!("{ERROR}sonde:{ERROR:#} cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // Its reader has gone (`sonde sessions | head -1`): nothing to say, and no one
        // to say it to.
        Err(e) if exit::is_closed_pipe(&e) => exit::code_of(&e),
        Err(e) => {
            // Drivers and HTTP clients may echo a connection string or an endpoint
            // with its credentials.
            anstream::eprintln!("{ERROR}sonde:{ERROR:#} {}", redact_url(&format!("{e:#}")));
            exit::code_of(&e)
        }
    }
}

/// Standard error for log lines, through [`redact_url`]: a dependency that logs a
/// connection string or a credential header shows it redacted at any SONDE_LOG level.
/// The formatter writes each event at once, so a line is never redacted in halves.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = redact_url(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
