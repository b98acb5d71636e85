//! `sonde import` and `sonde export`: record JSONL in and out.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use sonde::Record;
use std::time::Duration;

use sonde::store::{Scope, SessionFilter, TraceStore, Writer, WriterConfig};
use tokio::sync::mpsc;

use crate::table::thousands;

/// Records written per transaction.
const IMPORT_BATCH: usize = 5_000;

/// Batches parsed ahead of the writer.
const BATCHES_AHEAD: usize = 4;

/// One input: a file, stdin, or stdin's text read earlier (`--strict` reads it twice).
fn open_input(
    path: &Path,
    stdin_text: Option<&Arc<Vec<u8>>>,
) -> anyhow::Result<Box<dyn BufRead + Send>> {
    if path == Path::new("-") {
        return Ok(match stdin_text {
            Some(text) => Box::new(std::io::Cursor::new(text.as_ref().clone())),
            None => Box::new(BufReader::new(std::io::stdin())),
        });
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// What reading an input yields: batches of records, and bad lines.
enum Parsed {
    Batch(Vec<Record>),
    Bad { line: usize, reason: String },
}

/// Parses every line of `input` (blank lines skipped) on the calling thread, sending
/// batches and bad lines to `out`. With `keep` false, records are checked and dropped.
fn scan(
    name: &str,
    input: Box<dyn BufRead + Send>,
    keep: bool,
    out: &mpsc::Sender<Parsed>,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("cannot read {name}"))?;
        let number = index + 1;
        let parsed = match std::str::from_utf8(&line) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => Record::from_json_line(text.trim()).map_err(|e| e.to_string()),
            Err(e) => Err(format!("invalid utf-8: {e}")),
        };
        match parsed {
            Ok(record) if keep => {
                batch.push(record);
                if batch.len() == IMPORT_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(IMPORT_BATCH));
                    out.blocking_send(Parsed::Batch(full))
                        .context("import stopped")?;
                }
            }
            Ok(_) => {}
            Err(reason) => out
                .blocking_send(Parsed::Bad {
                    line: number,
                    reason,
                })
                .context("import stopped")?,
        }
    }
    if !batch.is_empty() {
        out.blocking_send(Parsed::Batch(batch))
            .context("import stopped")?;
    }
    Ok(())
}

/// Reads `path` on a thread of its own; the caller receives what it parsed.
fn spawn_scan(
    path: PathBuf,
    stdin_text: Option<Arc<Vec<u8>>>,
    keep: bool,
) -> (
    mpsc::Receiver<Parsed>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (tx, rx) = mpsc::channel(BATCHES_AHEAD);
    let reader = tokio::task::spawn_blocking(move || {
        let input = open_input(&path, stdin_text.as_ref())?;
        scan(&display_name(&path), input, keep, &tx)
    });
    (rx, reader)
}

/// How long an import waits, at the end, for the database to take what is queued and
/// spooled.
const IMPORT_DRAIN_DEADLINE: Duration = Duration::from_secs(300);

pub async fn import(
    store: Arc<dyn TraceStore>,
    config: WriterConfig,
    files: &[PathBuf],
    strict: bool,
) -> anyhow::Result<ExitCode> {
    let mut rejected = 0usize;
    let report = |name: &str, line: usize, reason: &str| {
        eprintln!("{name}:{line}: {reason}");
        1
    };
    let mut stdin_text = None;
    if strict {
        if files.iter().any(|f| f == Path::new("-")) {
            let text = tokio::task::spawn_blocking(|| {
                let mut text = Vec::new();
                std::io::stdin().read_to_end(&mut text).map(|_| text)
            })
            .await?
            .context("cannot read stdin")?;
            stdin_text = Some(Arc::new(text));
        }
        for path in files {
            let (mut rx, reader) = spawn_scan(path.clone(), stdin_text.clone(), false);
            while let Some(parsed) = rx.recv().await {
                if let Parsed::Bad { line, reason } = parsed {
                    rejected += report(&display_name(path), line, &reason);
                }
            }
            reader.await??;
        }
        if rejected > 0 {
            eprintln!(
                "sonde: nothing imported: {} bad line{} (--strict)",
                thousands(rejected as u64),
                plural(rejected)
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    let (writer, spool_dir) = start_writer(store, config)?;
    for path in files {
        let name = display_name(path);
        let (mut rx, reader) = spawn_scan(path.clone(), stdin_text.clone(), true);
        while let Some(parsed) = rx.recv().await {
            match parsed {
                Parsed::Batch(batch) => {
                    writer.enqueue(batch);
                }
                Parsed::Bad { line, reason } => rejected += report(&name, line, &reason),
            }
        }
        reader.await??;
    }
    finish(
        &writer,
        spool_dir.as_deref(),
        (rejected, "line"),
        files.len(),
    )
    .await
}

/// Starts the writer for an import, reporting a damaged spool left by an earlier one.
fn start_writer(
    store: Arc<dyn TraceStore>,
    config: WriterConfig,
) -> anyhow::Result<(Writer, Option<PathBuf>)> {
    let spool_dir = config.spool_dir.clone();
    let writer = Writer::start(store, config).context("cannot start the writer")?;
    if let Some(damage) = &writer.opened_with_damage {
        eprintln!(
            "sonde: the spool had a damaged tail ({}); {} bytes moved to {}",
            damage.reason,
            thousands(damage.bytes),
            damage.quarantined_to.display()
        );
    }
    Ok((writer, spool_dir))
}

/// Drains the writer and reports what the import did.
async fn finish(
    writer: &Writer,
    spool_dir: Option<&Path>,
    rejected: (usize, &str),
    files: usize,
) -> anyhow::Result<ExitCode> {
    let (rejected, what) = rejected;
    let report = writer.shutdown(IMPORT_DRAIN_DEADLINE).await;
    let d = writer.diagnostics();
    let skipped = if rejected > 0 {
        format!(
            "; {} bad {what}{} skipped",
            thousands(rejected as u64),
            plural(rejected)
        )
    } else {
        String::new()
    };
    eprintln!(
        "imported {} records ({} already stored) from {} file{}{skipped}",
        thousands(d.written),
        thousands(d.duplicates),
        files,
        plural(files),
    );
    let spool = spool_dir.map_or_else(String::new, |s| s.display().to_string());
    let mut failed = rejected > 0;
    if d.dropped > 0 || d.rejected > 0 {
        eprintln!(
            "sonde: {} records lost (spool full) and {} refused by the database (kept in {spool}/{})",
            thousands(d.dropped),
            thousands(d.rejected),
            sonde::store::REJECTED_FILE
        );
        failed = true;
    }
    if !report.complete {
        let last = d
            .last_failure
            .as_ref()
            .map_or_else(String::new, |f| format!(": {}", f.message));
        eprintln!(
            "sonde: the database did not take everything{last}; {} bytes wait in the spool {spool} and are written by the next import into this database",
            thousands(report.left_in_spool_bytes),
        );
        failed = true;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `sonde export --to URL`: the sessions as OTLP spans (see [`sonde_otlp::record_spans`]).
pub async fn export_otlp(
    store: &dyn TraceStore,
    session: Option<&str>,
    endpoint: &str,
) -> anyhow::Result<ExitCode> {
    let ids = match session {
        Some(id) => vec![id.to_owned()],
        None => all_session_ids(store).await?,
    };
    let sink = Arc::new(sonde_otlp::OtlpSink::new(endpoint)?);
    let mut spans = 0usize;
    for id in &ids {
        let Some(trace) = store.get_session(id, &Scope::All).await? else {
            anyhow::bail!("no session {id}");
        };
        let records = trace.to_records();
        let sink = sink.clone();
        spans += tokio::task::spawn_blocking(move || sink.send_records(&records)).await??;
    }
    // The HTTP client must not be dropped on the async runtime's thread.
    tokio::task::spawn_blocking(move || drop(sink)).await?;
    eprintln!(
        "exported {} spans of {} session{} to {}",
        thousands(spans as u64),
        thousands(ids.len() as u64),
        plural(ids.len()),
        sonde::store::redact_url(endpoint)
    );
    Ok(ExitCode::SUCCESS)
}

/// Records from OTLP/JSON files: one request per file (pretty-printed or not), or one
/// per line as the OpenTelemetry file exporters write them.
fn otlp_records(path: &Path) -> anyhow::Result<(Vec<Record>, Vec<String>)> {
    let name = display_name(path);
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?
    };
    let mut records = Vec::new();
    let mut problems = Vec::new();
    let mut take = |decoded: sonde_otlp::Decoded, place: &str, problems: &mut Vec<String>| {
        records.extend(
            decoded
                .spans
                .into_iter()
                .flat_map(sonde_otlp::span_to_records),
        );
        for r in decoded.rejected {
            problems.push(format!("{place}: span {:?}: {}", r.name, r.reason));
        }
    };
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    match sonde_otlp::decode_json(&text) {
        Ok(decoded) => take(decoded, &name, &mut problems),
        // One line that is not a request: that is the error.
        Err(e) if lines.len() <= 1 => problems.push(format!("{name}: {e}")),
        // Else one request per line.
        Err(_) => {
            for (index, line) in lines {
                match sonde_otlp::decode_json(line) {
                    Ok(decoded) => take(decoded, &format!("{name}:{}", index + 1), &mut problems),
                    Err(e) => problems.push(format!("{name}:{}: {e}", index + 1)),
                }
            }
        }
    }
    Ok((records, problems))
}

/// `sonde import --format otlp-json`.
pub async fn import_otlp(
    store: Arc<dyn TraceStore>,
    config: WriterConfig,
    files: &[PathBuf],
    strict: bool,
) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let path = path.clone();
        let (records, bad) = tokio::task::spawn_blocking(move || otlp_records(&path)).await??;
        all.extend(records);
        problems.extend(bad);
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    if strict && !problems.is_empty() {
        eprintln!(
            "sonde: nothing imported: {} bad span{} or request{} (--strict)",
            thousands(problems.len() as u64),
            plural(problems.len()),
            plural(problems.len())
        );
        return Ok(ExitCode::FAILURE);
    }
    let (writer, spool_dir) = start_writer(store, config)?;
    for chunk in all.chunks(IMPORT_BATCH) {
        writer.enqueue(chunk.to_vec());
    }
    finish(
        &writer,
        spool_dir.as_deref(),
        (problems.len(), "span"),
        files.len(),
    )
    .await
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Every session id in the store, oldest first.
async fn all_session_ids(store: &dyn TraceStore) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut filter = SessionFilter {
        limit: SessionFilter::MAX_LIMIT,
        ..Default::default()
    };
    loop {
        let page = store.list_sessions(&filter).await?;
        ids.extend(page.sessions.into_iter().map(|s| s.session_id));
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }
    ids.reverse();
    Ok(ids)
}

pub async fn export(
    store: &dyn TraceStore,
    session: Option<&str>,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let ids = match session {
        Some(id) => vec![id.to_owned()],
        None => all_session_ids(store).await?,
    };
    let mut writer: Box<dyn Write> = match out {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            Box::new(BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot write {}", path.display()))?,
            ))
        }
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut count = 0u64;
    for id in &ids {
        let Some(trace) = store.get_session(id, &Scope::All).await? else {
            anyhow::bail!("no session {id}");
        };
        for record in trace.to_records() {
            serde_json::to_writer(&mut writer, &record)?;
            writer.write_all(b"\n")?;
            count += 1;
        }
    }
    writer.flush().context("cannot write the export")?;
    if let Some(path) = out {
        eprintln!(
            "exported {} records of {} session{} to {}",
            thousands(count),
            thousands(ids.len() as u64),
            plural(ids.len()),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
