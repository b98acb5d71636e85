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

use crate::formats::{Format, SNIFFED_LINES};
use crate::out::outln;
use crate::progress::{self, Progress};
use crate::table::{count, thousands};

/// Records written per transaction.
const IMPORT_BATCH: usize = 5_000;

/// Batches parsed ahead of the writer.
const BATCHES_AHEAD: usize = 4;

/// One input: a file, stdin, or stdin's text read earlier (`--strict` reads it twice).
fn open_input(
    path: &Path,
    stdin_text: Option<&Arc<Vec<u8>>>,
    progress: Option<Arc<Progress>>,
) -> anyhow::Result<Box<dyn BufRead + Send>> {
    if path == Path::new("-") {
        return Ok(match stdin_text {
            Some(text) => Box::new(std::io::Cursor::new(text.as_ref().clone())),
            None => Box::new(BufReader::new(std::io::stdin())),
        });
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(match progress {
        Some(progress) => Box::new(BufReader::with_capacity(
            1 << 20,
            progress::Counted::new(file, progress),
        )),
        None => Box::new(BufReader::with_capacity(1 << 20, file)),
    })
}

/// The lines of `input` without their newlines, each held only up to `max` bytes: a
/// longer line is read through, never held whole, and comes as `None`. Each byte is
/// looked at once.
struct BoundedLines<R> {
    input: R,
    max: usize,
}

impl<R: BufRead> Iterator for BoundedLines<R> {
    type Item = std::io::Result<Option<Vec<u8>>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = Vec::new();
        let mut too_long = false;
        let mut any = false;
        loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(e)),
            };
            if buf.is_empty() {
                return any.then(|| Ok((!too_long).then_some(line)));
            }
            any = true;
            let (part, used, ends) = match buf.iter().position(|b| *b == b'\n') {
                Some(at) => (&buf[..at], at + 1, true),
                None => (buf, buf.len(), false),
            };
            if !too_long && line.len() + part.len() <= self.max {
                line.extend_from_slice(part);
            } else {
                too_long = true;
                line = Vec::new();
            }
            self.input.consume(used);
            if ends {
                return Some(Ok((!too_long).then_some(line)));
            }
        }
    }
}

/// What reading an input yields: batches of records, and bad lines; or, when its
/// first lines are clearly of another format, what to do instead (and nothing else).
enum Parsed {
    Batch(Vec<Record>),
    Bad { line: usize, reason: String },
    OtherFormat(String),
}

/// A non-empty input line: its number, its text (kept while the format is judged) and
/// what it parses to.
type InputLine = (usize, String, Result<Record, String>);

/// Parses every line of `input` (blank lines skipped) on the calling thread, sending
/// batches and bad lines to `out`. With `keep` false, records are checked and dropped.
/// When none of the first [`SNIFFED_LINES`] lines is a record and they are clearly
/// another format, that is the one thing sent.
fn scan(
    name: &str,
    input: Box<dyn BufRead + Send>,
    keep: bool,
    out: &mpsc::Sender<Parsed>,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    // The first lines' outcomes wait until they tell whether this is record JSONL.
    let mut first: Vec<InputLine> = Vec::new();
    let mut lines = BoundedLines {
        input,
        max: sonde::sync::MAX_LINE_BYTES,
    }
    .enumerate();
    // The next non-empty line, its text kept when `sniffing`.
    let mut next = |sniffing: bool| -> anyhow::Result<Option<InputLine>> {
        for (index, line) in lines.by_ref() {
            let line = line.with_context(|| format!("cannot read {name}"))?;
            let Some(line) = line else {
                let reason = format!(
                    "a line longer than {} MiB was skipped",
                    sonde::sync::MAX_LINE_BYTES / (1024 * 1024)
                );
                return Ok(Some((index + 1, String::new(), Err(reason))));
            };
            let (text, parsed) = match std::str::from_utf8(&line) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => (
                    if sniffing {
                        text.trim().to_owned()
                    } else {
                        String::new()
                    },
                    Record::from_json_line(text.trim()).map_err(|e| e.to_string()),
                ),
                Err(e) => (String::new(), Err(format!("invalid utf-8: {e}"))),
            };
            return Ok(Some((index + 1, text, parsed)));
        }
        Ok(None)
    };
    while first.len() < SNIFFED_LINES {
        match next(true)? {
            Some(line) => first.push(line),
            None => break,
        }
    }
    if first.iter().all(|(_, _, parsed)| parsed.is_err()) {
        let texts: Vec<&str> = first.iter().map(|(_, text, _)| text.as_str()).collect();
        if let Some(hint) =
            Format::of_lines(&texts).and_then(|f| f.hint(Format::Records, &hint_path(name)))
        {
            out.blocking_send(Parsed::OtherFormat(hint))
                .context("import stopped")?;
            return Ok(());
        }
    }
    let mut first = first.into_iter();
    loop {
        let line = match first.next() {
            Some(line) => Some(line),
            None => next(false)?,
        };
        let Some((number, _, parsed)) = line else {
            break;
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
    progress: Option<Arc<Progress>>,
) -> (
    mpsc::Receiver<Parsed>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (tx, rx) = mpsc::channel(BATCHES_AHEAD);
    let reader = tokio::task::spawn_blocking(move || {
        let input = open_input(&path, stdin_text.as_ref(), progress)?;
        scan(&display_name(&path), input, keep, &tx)
    });
    (rx, reader)
}

/// How long an import waits, at the end, for the database to take what is queued and
/// spooled.
const IMPORT_DRAIN_DEADLINE: Duration = Duration::from_secs(300);

/// At most this many bad lines (or spans) of an import are printed.
const PRINTED_PROBLEMS: usize = 20;

/// The bad lines (or spans) of an import, and the inputs of another format: the first
/// [`PRINTED_PROBLEMS`] printed, every one written to the `--errors` file.
struct Problems {
    bad: usize,
    other_format: usize,
    file: Option<(PathBuf, BufWriter<std::fs::File>)>,
}

impl Problems {
    fn new(errors: Option<&Path>) -> anyhow::Result<Self> {
        let file = errors
            .map(|path| {
                std::fs::File::create(path)
                    .map(|f| (path.to_path_buf(), BufWriter::new(f)))
                    .with_context(|| format!("cannot write {}", path.display()))
            })
            .transpose()?;
        Ok(Self {
            bad: 0,
            other_format: 0,
            file,
        })
    }

    /// One bad line or span, `place: reason`.
    fn bad(&mut self, problem: &str) -> anyhow::Result<()> {
        if self.bad < PRINTED_PROBLEMS {
            eprintln!("{problem}");
        }
        self.bad += 1;
        if let Some((path, file)) = &mut self.file {
            writeln!(file, "{problem}")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }

    /// An input of another format, not imported; `hint` says what to do instead.
    fn other_format(&mut self, name: &str, hint: &str) {
        eprintln!("sonde: {name}: {hint}");
        self.other_format += 1;
    }

    /// Says how many bad lines were not printed, and closes the `--errors` file.
    fn close(&mut self) -> anyhow::Result<()> {
        let unprinted = self.bad.saturating_sub(PRINTED_PROBLEMS);
        if let Some((path, file)) = &mut self.file {
            file.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        if unprinted > 0 {
            let all = match &self.file {
                Some((path, _)) => format!("every one is in {}", path.display()),
                None => "--errors FILE writes every one".to_owned(),
            };
            eprintln!("… and {} more ({all})", thousands(unprinted as u64));
        }
        Ok(())
    }

    fn any(&self) -> bool {
        self.bad > 0 || self.other_format > 0
    }
}

/// How a hint names an input: its path, or `FILE` for stdin.
fn hint_path(name: &str) -> String {
    if name == "<stdin>" {
        "FILE".to_owned()
    } else {
        name.to_owned()
    }
}

pub async fn import(
    store: Arc<dyn TraceStore>,
    config: WriterConfig,
    files: &[PathBuf],
    strict: bool,
    errors: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut problems = Problems::new(errors)?;
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
            let name = display_name(path);
            let (mut rx, reader) = spawn_scan(path.clone(), stdin_text.clone(), false, None);
            while let Some(parsed) = rx.recv().await {
                match parsed {
                    Parsed::Bad { line, reason } => {
                        problems.bad(&format!("{name}:{line}: {reason}"))?
                    }
                    Parsed::OtherFormat(hint) => problems.other_format(&name, &hint),
                    Parsed::Batch(_) => {}
                }
            }
            reader.await??;
        }
        problems.close()?;
        if problems.any() {
            eprintln!(
                "sonde: nothing imported: {} (--strict)",
                nothing_imported_because(&problems, "line")
            );
            return Ok(ExitCode::FAILURE);
        }
        problems = Problems::new(errors)?;
    }
    let (writer, spool_dir) = start_writer(store, config)?;
    // The files' bytes (standard input's are not known ahead).
    let total = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok().filter(|m| m.is_file()))
        .map(|m| m.len())
        .sum();
    let bar = Arc::new(Progress::bytes("import", total));
    for path in files {
        let name = display_name(path);
        let (mut rx, reader) =
            spawn_scan(path.clone(), stdin_text.clone(), true, Some(bar.clone()));
        while let Some(parsed) = rx.recv().await {
            match parsed {
                Parsed::Batch(batch) => {
                    writer.enqueue(batch);
                }
                Parsed::Bad { line, reason } => {
                    problems.bad(&format!("{name}:{line}: {reason}"))?
                }
                Parsed::OtherFormat(hint) => problems.other_format(&name, &hint),
            }
        }
        reader.await??;
    }
    bar.finish();
    problems.close()?;
    finish(
        &writer,
        spool_dir.as_deref(),
        (&problems, "line"),
        files.len(),
        json,
        None,
    )
    .await
}

/// What stopped a `--strict` import: its bad lines (or spans) and inputs of another
/// format.
fn nothing_imported_because(problems: &Problems, what: &str) -> String {
    let mut reasons = Vec::new();
    if problems.bad > 0 {
        reasons.push(count(problems.bad as u64, &format!("bad {what}")));
    }
    if problems.other_format > 0 {
        reasons.push(count(
            problems.other_format as u64,
            "file of another format",
        ));
    }
    reasons.join(" and ")
}

/// Starts the writer for an import, reporting a damaged spool left by an earlier one.
fn start_writer(
    store: Arc<dyn TraceStore>,
    config: WriterConfig,
) -> anyhow::Result<(Writer, Option<PathBuf>)> {
    let spool_dir = config.spool_dir.clone();
    let writer = Writer::start(store, config).context("cannot start the writer")?;
    if let Some(damage) = &writer.opened_with_damage {
        let file = writer
            .diagnostics()
            .spool_dir
            .unwrap_or_default()
            .join(sonde::store::SPOOL_FILE);
        eprintln!("sonde: {}", sonde::store::damage_line(&file, damage));
    }
    Ok((writer, spool_dir))
}

/// Drains the writer and reports what the import did; `extra` is one more field of
/// the `--json` summary (what a format's reader found).
async fn finish(
    writer: &Writer,
    spool_dir: Option<&Path>,
    problems: (&Problems, &str),
    files: usize,
    json: bool,
    extra: Option<(&str, serde_json::Value)>,
) -> anyhow::Result<ExitCode> {
    let (problems, what) = problems;
    let report = writer.shutdown(IMPORT_DRAIN_DEADLINE).await;
    let d = writer.diagnostics();
    let mut skipped = String::new();
    if problems.bad > 0 {
        skipped += &format!(
            "; {} skipped",
            count(problems.bad as u64, &format!("bad {what}"))
        );
    }
    if problems.other_format > 0 {
        skipped += &format!(
            "; {} of another format skipped",
            count(problems.other_format as u64, "file")
        );
    }
    if json {
        let mut summary = serde_json::json!({
            "files": files,
            "records_written": d.written,
            "already_stored": d.duplicates,
            "bad": problems.bad,
            "other_format_files": problems.other_format,
            "lost": d.total_dropped_total,
            "refused": d.rejected,
            "left_in_spool_bytes": report.left_in_spool_bytes,
        });
        if let (Some((key, value)), Some(map)) = (extra, summary.as_object_mut()) {
            map.insert(key.to_owned(), value);
        }
        crate::json::print(&summary)?;
    } else {
        eprintln!(
            "imported {} ({} already stored) from {}{skipped}",
            count(d.written, "record"),
            thousands(d.duplicates),
            count(files as u64, "file"),
        );
    }
    let spool = spool_dir.map_or_else(String::new, |s| s.display().to_string());
    let mut failed = problems.any();
    if d.total_dropped_total > 0 || d.rejected > 0 {
        eprintln!(
            "sonde: {} lost (spool full) and {} refused by the database (kept in {spool}/{})",
            count(d.total_dropped_total, "record"),
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

/// `sonde export --to URL`: the sessions as OTLP spans (see
/// [`sonde_otlp::record_spans_with`]), each session whole: one trace under its root.
pub async fn export_otlp(
    store: &dyn TraceStore,
    session: Option<&str>,
    endpoint: &str,
    options: sonde_otlp::ExportOptions,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let ids = match session {
        Some(id) => vec![id.to_owned()],
        None => all_session_ids(store).await?,
    };
    let sink = Arc::new(sonde_otlp::OtlpSink::new(endpoint)?.with_options(options));
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
    let to = sonde::store::redact_url(endpoint);
    if json {
        crate::json::print(&serde_json::json!({
            "sessions": ids.len(), "spans": spans, "to": to,
        }))?;
    } else {
        eprintln!(
            "exported {} of {} to {to}",
            count(spans as u64, "span"),
            count(ids.len() as u64, "session"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What an OTLP/JSON input holds.
enum OtlpInput {
    /// Records from the spans, and the spans or requests that were bad.
    Decoded(Vec<Record>, Vec<String>),
    /// No span, and the first lines are clearly another format: what to do instead.
    OtherFormat(String),
}

/// Records from OTLP/JSON files: one request per file (pretty-printed or not), or one
/// per line as the OpenTelemetry file exporters write them.
fn otlp_records(path: &Path) -> anyhow::Result<OtlpInput> {
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
    let first: Vec<&str> = lines.iter().take(SNIFFED_LINES).map(|(_, l)| *l).collect();
    let other = Format::of_lines(&first).and_then(|f| f.hint(Format::OtlpJson, &hint_path(&name)));
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
    Ok(match other {
        Some(hint) if records.is_empty() => OtlpInput::OtherFormat(hint),
        _ => OtlpInput::Decoded(records, problems),
    })
}

/// `sonde import --format otlp-json`.
pub async fn import_otlp(
    store: Arc<dyn TraceStore>,
    config: WriterConfig,
    files: &[PathBuf],
    strict: bool,
    errors: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    let mut problems = Problems::new(errors)?;
    for path in files {
        let name = display_name(path);
        let path = path.clone();
        match tokio::task::spawn_blocking(move || otlp_records(&path)).await?? {
            OtlpInput::Decoded(records, bad) => {
                all.extend(records);
                for problem in &bad {
                    problems.bad(problem)?;
                }
            }
            OtlpInput::OtherFormat(hint) => problems.other_format(&name, &hint),
        }
    }
    problems.close()?;
    let read = WholeRead {
        records: all,
        problems,
        what: ("span or request", "span"),
        files: files.len(),
    };
    write_read(store, config, read, strict, json, None).await
}

/// What an import that reads each input whole before writing (OTLP/JSON, lash) read.
struct WholeRead {
    records: Vec<Record>,
    problems: Problems,
    /// What a bad input part is called: for `--strict`'s refusal, and in the summary.
    what: (&'static str, &'static str),
    files: usize,
}

/// Writes what was read through the writer and reports it; with `strict`, nothing
/// when anything was bad.
async fn write_read(
    store: Arc<dyn TraceStore>,
    config: WriterConfig,
    read: WholeRead,
    strict: bool,
    json: bool,
    extra: Option<(&str, serde_json::Value)>,
) -> anyhow::Result<ExitCode> {
    if strict && read.problems.any() {
        eprintln!(
            "sonde: nothing imported: {} (--strict)",
            nothing_imported_because(&read.problems, read.what.0)
        );
        return Ok(ExitCode::FAILURE);
    }
    let (writer, spool_dir) = start_writer(store, config)?;
    for chunk in read.records.chunks(IMPORT_BATCH) {
        writer.enqueue(chunk.to_vec());
    }
    finish(
        &writer,
        spool_dir.as_deref(),
        (&read.problems, read.what.1),
        read.files,
        json,
        extra,
    )
    .await
}

/// What a lash trace input holds.
enum LashInput {
    /// Its records, report and bad lines.
    Read(sonde_lash::LashImport),
    /// No lash record, and the first lines are clearly another format: what to do
    /// instead.
    OtherFormat(String),
}

/// Reads one lash trace (see [`sonde_lash`]), line by line, each line held only up to
/// the bound every import keeps.
fn lash_records(path: &Path) -> anyhow::Result<LashInput> {
    let name = display_name(path);
    let input = open_input(path, None, None)?;
    let mut reader = sonde_lash::LashReader::new(&name);
    let mut problems = Vec::new();
    let mut first: Vec<String> = Vec::new();
    let mut read_any = false;
    let other_format = |first: &[String]| {
        let texts: Vec<&str> = first.iter().map(String::as_str).collect();
        Format::of_lines(&texts).and_then(|f| f.hint(Format::Lash, &hint_path(&name)))
    };
    let lines = BoundedLines {
        input,
        max: sonde::sync::MAX_LINE_BYTES,
    };
    for (index, line) in lines.enumerate() {
        let line = line.with_context(|| format!("cannot read {name}"))?;
        let bad = |reason: String| sonde_lash::LineError {
            file: name.clone(),
            line: index + 1,
            reason,
        };
        let Some(bytes) = line else {
            problems.push(bad(format!(
                "a line longer than {} MiB was skipped",
                sonde::sync::MAX_LINE_BYTES / (1024 * 1024)
            )));
            continue;
        };
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => text.trim(),
            Err(e) => {
                problems.push(bad(format!("invalid utf-8: {e}")));
                continue;
            }
        };
        if first.len() < SNIFFED_LINES {
            first.push(text.to_owned());
        }
        match reader.read_line(index + 1, text) {
            Ok(()) => read_any = true,
            Err(problem) => problems.push(problem),
        }
        if !read_any
            && first.len() == SNIFFED_LINES
            && let Some(hint) = other_format(&first)
        {
            return Ok(LashInput::OtherFormat(hint));
        }
    }
    if !read_any && let Some(hint) = other_format(&first) {
        return Ok(LashInput::OtherFormat(hint));
    }
    let (records, report) = reader.finish();
    Ok(LashInput::Read(sonde_lash::LashImport {
        records,
        report,
        problems,
    }))
}

/// `sonde import --format lash`: lash traces, each lash session a Sonde session.
pub async fn import_lash(
    store: Arc<dyn TraceStore>,
    config: WriterConfig,
    files: &[PathBuf],
    strict: bool,
    errors: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    let mut problems = Problems::new(errors)?;
    let mut found = sonde_lash::Report::default();
    for path in files {
        let name = display_name(path);
        let path = path.clone();
        match tokio::task::spawn_blocking(move || lash_records(&path)).await?? {
            LashInput::Read(import) => {
                for problem in &import.problems {
                    problems.bad(&problem.to_string())?;
                }
                for warning in &import.report.warnings {
                    eprintln!("sonde: {warning}");
                }
                found.merge(import.report);
                all.extend(import.records);
            }
            LashInput::OtherFormat(hint) => problems.other_format(&name, &hint),
        }
    }
    problems.close()?;
    if found.unknown_total() > 0 {
        let kinds: Vec<String> = found
            .unknown_kinds
            .iter()
            .map(|(kind, n)| format!("{kind} ({n})"))
            .collect();
        eprintln!(
            "sonde: {} of kinds this reader does not know kept as custom events: {}",
            count(found.unknown_total() as u64, "lash record"),
            kinds.join(", ")
        );
    }
    if !json {
        let versions: Vec<String> = found.versions.keys().map(u32::to_string).collect();
        eprintln!(
            "read {} of {} (lash schema {}): {}, {}",
            count(found.records_read as u64, "lash record"),
            count(found.sessions.len() as u64, "session"),
            if versions.is_empty() {
                "-".to_owned()
            } else {
                versions.join(", ")
            },
            count(found.llm_calls as u64, "LLM call"),
            count(found.tool_calls as u64, "tool call"),
        );
    }
    let lash = serde_json::json!({
        "records_read": found.records_read,
        "sessions": found.sessions.len(),
        "llm_calls": found.llm_calls,
        "tool_calls": found.tool_calls,
        "schema_versions": found.versions,
        "unknown_kinds": found.unknown_kinds,
        "warnings": found.warnings,
    });
    let read = WholeRead {
        records: all,
        problems,
        what: ("line", "line"),
        files: files.len(),
    };
    write_read(store, config, read, strict, json, Some(("lash", lash))).await
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
    json: bool,
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
    let mut written = 0u64;
    // By sessions: their sizes are not known before they are read.
    let bar = Progress::count("export", "sessions", ids.len() as u64);
    for id in &ids {
        let Some(trace) = store.get_session(id, &Scope::All).await? else {
            anyhow::bail!("no session {id}");
        };
        bar.advance(1);
        for record in trace.to_records() {
            serde_json::to_writer(&mut writer, &record)?;
            writer.write_all(b"\n")?;
            written += 1;
        }
    }
    writer.flush().context("cannot write the export")?;
    drop(writer);
    bar.finish();
    if json {
        let summary = crate::json::text(&serde_json::json!({
            "sessions": ids.len(),
            "records": written,
            "to": out.map_or_else(|| "stdout".to_owned(), |p| p.display().to_string()),
        }))?;
        // With the records on standard output, the summary goes beside them.
        if out.is_some() {
            outln!("{summary}")?;
        } else {
            eprintln!("{summary}");
        }
    } else if let Some(path) = out {
        eprintln!(
            "exported {} of {} to {}",
            count(written, "record"),
            count(ids.len() as u64, "session"),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_over_the_bound_come_as_none_and_the_others_whole() {
        // A reader that hands out 3 bytes at a time: lines cross its buffers.
        let input = BufReader::with_capacity(3, &b"ab\ncdefgh\n\nxy\r\nz"[..]);
        let lines: Vec<Option<Vec<u8>>> = BoundedLines { input, max: 4 }
            .map(|l| l.unwrap_or_default())
            .collect();
        assert_eq!(
            lines,
            vec![
                Some(b"ab".to_vec()),
                None,
                Some(Vec::new()),
                Some(b"xy\r".to_vec()),
                Some(b"z".to_vec()),
            ]
        );
        let empty = BoundedLines {
            input: &b""[..],
            max: 4,
        };
        assert_eq!(empty.count(), 0);
    }
}
