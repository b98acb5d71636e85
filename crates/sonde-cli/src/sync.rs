//! `sonde sync`: agent CLI transcripts into the store or another target.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use sonde::store::redact_url;
use sonde::sync::{
    CursorFile, SinkTarget, Source, StoreTarget, SyncOptions, SyncProgress, SyncResult, SyncTarget,
    Syncer,
};
use sonde_langfuse::{LangfuseConfig, LangfuseSink};

use crate::exit;
use crate::out::outln;
use crate::progress::Progress;
use crate::table::{count, thousands};

/// Which agent's logs to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Agent {
    /// Claude Code (`~/.claude/projects`, or `$CLAUDE_CONFIG_DIR/projects`).
    Claude,
    /// Codex CLI (`~/.codex/sessions`, or `$CODEX_HOME/sessions`).
    Codex,
    /// Both.
    All,
}

/// `sonde sync` arguments.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Whose logs: claude, codex or all; with --path, told from the files when not
    /// named.
    #[arg(value_enum, required_unless_present = "path")]
    agent: Option<Agent>,
    /// Read this folder (walked recursively) or file instead of the agent's own;
    /// repeat for several. Not with `all`.
    #[arg(long)]
    path: Vec<PathBuf>,
    /// Send elsewhere than the database: `-` (record JSONL on stdout), `langfuse`
    /// (LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY), or an OTLP/HTTP
    /// endpoint such as http://127.0.0.1:4318.
    #[arg(long)]
    to: Option<String>,
    /// Where a target other than the database keeps its sync cursors (default: a file
    /// per target in the data folder).
    #[arg(long)]
    state: Option<PathBuf>,
    /// With --to URL: send no content (prompts, replies, messages, tool arguments and
    /// results), only counts, timings, names and statuses.
    #[arg(long)]
    no_content: bool,
    /// With --to URL: the most bytes one content attribute holds; a longer value is
    /// cut and ends with a marker naming its size.
    #[arg(long, default_value_t = sonde_otlp::DEFAULT_MAX_ATTRIBUTE_BYTES, value_parser = crate::attribute_cap)]
    max_attribute_bytes: usize,
    /// With --to URL: how long a transcript must not have grown before what it left
    /// open (its last response, tool calls without a result, its session and turn) is
    /// sent as it is. OTLP backends keep the first copy of a span, so only final spans
    /// are sent.
    #[arg(long, value_parser = crate::time::parse_span, default_value = "10m")]
    quiet_period: std::time::Duration,
    /// Read and count, but send and save nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep following the logs, shipping new turns as they are written.
    #[arg(long)]
    watch: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

fn target(
    args: &SyncArgs,
    db: &str,
    handle: tokio::runtime::Handle,
    store: Option<Arc<dyn sonde::store::TraceStore>>,
) -> anyhow::Result<Box<dyn SyncTarget>> {
    let cursors = || {
        CursorFile::new(args.state.clone().unwrap_or_else(|| {
            let to = args.to.as_deref().unwrap_or(db);
            sonde::store::StoreUrl::data_dir()
                .join("sync-state")
                .join(format!("{}.json", sonde::derived_id(&["sync", to])))
        }))
    };
    Ok(match args.to.as_deref() {
        None => Box::new(StoreTarget::new(
            store.context("no database to sync into")?,
            handle,
        )),
        Some("-") => Box::new(SinkTarget::stdout(cursors())),
        Some("langfuse") => {
            let config = LangfuseConfig::from_env()?;
            let name = format!("langfuse {}", config.host);
            let sink = LangfuseSink::new(config).with_context(|| name.clone())?;
            Box::new(SinkTarget::new(name, Box::new(sink), cursors()))
        }
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            let sink = sonde_otlp::OtlpSink::new(url)
                .with_context(|| url.to_owned())?
                .with_options(sonde_otlp::ExportOptions {
                    content: !args.no_content,
                    max_attribute_bytes: args.max_attribute_bytes,
                });
            // An OTLP backend keeps the first span of an id: final spans only.
            Box::new(SinkTarget::new(format!("otlp {url}"), Box::new(sink), cursors()).final_only())
        }
        Some(other) => {
            return Err(exit::usage(format!(
                "--to {other}: expected -, langfuse, or an http:// or https:// OTLP endpoint"
            )));
        }
    })
}

/// The summary of a run, for people.
fn summary(result: &SyncResult) -> String {
    let mut line = format!(
        "{}: {} scanned ({} with new lines), {:.1} MB, {}",
        result.source,
        count(result.files_scanned, "file"),
        thousands(result.files_updated),
        result.bytes_read as f64 / 1e6,
        count(result.spans_synced, "span"),
    );
    if result.spans_replaced > 0 {
        line.push_str(&format!(
            " ({} updating earlier runs' records)",
            thousands(result.spans_replaced)
        ));
    }
    line.push_str(&format!(
        ", {} in {:.2} s → {}{}",
        count(result.errors, "error"),
        result.duration_ms as f64 / 1000.0,
        result.target,
        if result.dry_run { " (dry run)" } else { "" }
    ));
    if !result.skipped.is_empty() {
        let skipped: Vec<String> = result
            .skipped
            .iter()
            .map(|(what, n)| format!("{what} {}", thousands(*n)))
            .collect();
        line.push_str(&format!("\n  skipped: {}", skipped.join(", ")));
    }
    for message in &result.error_messages {
        line.push_str(&format!("\n  error: {message}"));
    }
    if result.interrupted {
        line.push_str("\n  interrupted: the files not yet read are read by the next run");
    }
    // The target may be an endpoint with credentials in its URL.
    redact_url(&line)
}

/// The sources to sync and their folders, and whether those were named (`--path`)
/// rather than the agents' own: from the agent named, or with `--path` alone, from
/// what the files under each path hold.
fn sources(args: &SyncArgs) -> anyhow::Result<Vec<(Source, Vec<PathBuf>, bool)>> {
    let one = |source: Source| {
        if args.path.is_empty() {
            vec![(source, source.default_roots(), false)]
        } else {
            vec![(source, args.path.clone(), true)]
        }
    };
    Ok(match args.agent {
        Some(Agent::All) if !args.path.is_empty() => {
            return Err(exit::usage(
                "--path needs one agent: sonde sync claude --path DIR, or codex, or none to tell from the files",
            ));
        }
        Some(Agent::Claude) => one(Source::Claude),
        Some(Agent::Codex) => one(Source::Codex),
        Some(Agent::All) => [Source::Claude, Source::Codex]
            .into_iter()
            .map(|s| (s, s.default_roots(), false))
            .collect(),
        None => {
            let mut found: Vec<(Source, Vec<PathBuf>, bool)> = Vec::new();
            for path in &args.path {
                let Some(source) = sonde::sync::detect(path)? else {
                    return Err(exit::usage(format!(
                        "cannot tell whose logs {} holds: name the agent (sonde sync claude --path DIR, or codex)",
                        path.display()
                    )));
                };
                match found.iter_mut().find(|(s, _, _)| *s == source) {
                    Some((_, paths, _)) => paths.push(path.clone()),
                    None => found.push((source, vec![path.clone()], true)),
                }
            }
            found
        }
    })
}

/// Runs `sonde sync`.
pub async fn run(args: SyncArgs, db: &str) -> anyhow::Result<ExitCode> {
    let sources = sources(&args)?;
    // Default folders that do not exist are skipped; a --path that does not is an error.
    let sources: Vec<(Source, Vec<PathBuf>)> = sources
        .into_iter()
        .map(|(source, roots, explicit)| {
            let roots: Vec<PathBuf> = if explicit {
                roots
            } else {
                let found: Vec<PathBuf> = roots.iter().filter(|r| r.exists()).cloned().collect();
                if found.is_empty() {
                    let looked: Vec<String> =
                        roots.iter().map(|r| r.display().to_string()).collect();
                    eprintln!(
                        "no {} logs in {} (set {} or pass --path)",
                        source.name(),
                        looked.join(" or "),
                        source.home_variable(),
                    );
                }
                found
            };
            (source, roots)
        })
        .collect();
    let store = if args.to.is_none() {
        Some(crate::open_store(db, crate::Open::OrCreate, false).await?)
    } else {
        None
    };
    let handle = tokio::runtime::Handle::current();
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        let signalled = sonde_server::shutdown_signal();
        tokio::spawn(async move {
            signalled.await;
            cancel.store(true, Ordering::SeqCst);
            // A second Ctrl-C does not wait for the file in hand.
            sonde_server::shutdown_signal().await;
            std::process::exit(i32::from(exit::INTERRUPTED));
        });
    }
    let records_on_stdout = args.to.as_deref() == Some("-");
    let json = args.json;
    let watching = args.watch;
    let db = db.to_owned();
    let results = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<SyncResult>> {
        let mut target = target(&args, &db, handle, store)?;
        let bar = (!args.watch).then(|| Arc::new(Progress::bytes("sync", 0)));
        let options = SyncOptions {
            dry_run: args.dry_run,
            on_progress: bar.clone().map(|bar| -> sonde::sync::ProgressCallback {
                Arc::new(move |p: &SyncProgress| {
                    bar.set(p.bytes_read, p.bytes_total, || {
                        format!(
                            "{} files {}/{}",
                            p.source.name(),
                            p.files_done,
                            p.files_total
                        )
                    });
                })
            }),
            cancel,
            quiet_period: args.quiet_period,
            ..SyncOptions::default()
        };
        let mut syncer = Syncer::new(target.as_mut(), options);
        if args.watch {
            watch(&mut syncer, &sources)
        } else {
            let mut results = Vec::new();
            for (source, roots) in &sources {
                let result = syncer.run(*source, roots)?;
                let interrupted = result.interrupted;
                results.push(result);
                if interrupted {
                    break;
                }
            }
            if let Some(bar) = bar {
                bar.finish();
            }
            Ok(results)
        }
    })
    .await??;
    if json {
        let mut results = results.clone();
        for result in &mut results {
            result.target = redact_url(&result.target);
            for message in &mut result.error_messages {
                *message = redact_url(message);
            }
        }
        let value = match results.as_slice() {
            [one] => serde_json::to_value(one)?,
            many => serde_json::to_value(many)?,
        };
        let text = serde_json::to_string_pretty(&value)?;
        if records_on_stdout {
            eprintln!("{text}");
        } else {
            outln!("{text}")?;
        }
    } else {
        for result in &results {
            let line = summary(result);
            if records_on_stdout {
                eprintln!("{line}");
            } else {
                outln!("{line}")?;
            }
        }
    }
    Ok(if results.iter().any(|r| r.interrupted) && !watching {
        ExitCode::from(exit::INTERRUPTED)
    } else if results.iter().any(|r| r.errors > 0) {
        ExitCode::from(exit::ERRORS)
    } else {
        ExitCode::SUCCESS
    })
}

/// `sonde sync --watch`: syncs until cancelled, printing each round that found
/// something on standard error; returns each source's totals over the rounds.
fn watch(
    syncer: &mut Syncer<'_>,
    sources: &[(Source, Vec<PathBuf>)],
) -> anyhow::Result<Vec<SyncResult>> {
    let started = std::time::Instant::now();
    if std::io::stderr().is_terminal() {
        let folders = sources.iter().map(|(_, roots)| roots.len()).sum::<usize>();
        eprintln!("watching {folders} folders; Ctrl-C stops");
    }
    let mut totals: Vec<SyncResult> = Vec::new();
    let mut on_run = |result: &SyncResult| {
        if result.files_updated > 0 || result.errors > 0 {
            eprintln!("{}", summary(result));
        }
        match totals.iter_mut().find(|t| t.source == result.source) {
            Some(total) => total.add(result),
            None => totals.push(result.clone()),
        }
    };
    sonde::sync::watch(syncer, sources, &mut on_run)?;
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    for total in &mut totals {
        total.duration_ms = elapsed;
    }
    Ok(totals)
}
