//! The read helpers: `load_session`, `sessions`, `stats` and `sync`, returning plain
//! Python data (the JSON the CLI prints with `--json`), or a `SessionTrace`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use serde_json::Value;
use sonde::store::{AnalyticsFilter, Bucket, GroupBy, Scope, SessionFilter, StoreUrl, TraceStore};
use sonde::sync::{Source, StoreTarget, SyncOptions, Syncer};
use sonde::{Record, Timestamp};

use crate::convert::{metadata_from, timestamp_from};
use crate::errors::Failure;
use crate::runtime::{block_on, runtime};
use crate::tracer::Trace;

/// Adds the read helpers to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load_session, m)?)?;
    m.add_function(wrap_pyfunction!(sessions, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    m.add_function(wrap_pyfunction!(sync, m)?)?;
    Ok(())
}

/// Opens an existing store as the CLI's reading commands do (never creating one).
async fn open_existing(db: &str) -> Result<Arc<dyn TraceStore>, Failure> {
    Ok(StoreUrl::parse(db)?
        .open_existing_with(Some(sonde::shipped_prices()))
        .await?)
}

/// A report as the CLI's `--json` prints it (costs rounded to 1e-9 USD).
fn to_json(value: impl serde::Serialize) -> Result<Value, Failure> {
    serde_json::to_value(value)
        .map(sonde::json::round_costs)
        .map_err(|e| Failure::Runtime(e.to_string()))
}

/// Reads every session of a JSONL file of records.
fn jsonl_sessions(path: &Path) -> Result<Vec<sonde::SessionTrace>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", path.display())))?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record = Record::from_json_line(line)
            .map_err(|e| Failure::Value(format!("{}:{}: {e}", path.display(), n + 1)))?;
        records.push(record);
    }
    Ok(sonde::SessionTrace::from_records(records))
}

/// The session `session_id` of database `db` (a URL as the CLI's `--db` takes, or a
/// JSONL file of records) as a `SessionTrace`, whatever recorded it.
#[pyfunction]
fn load_session(py: Python<'_>, db: String, session_id: String) -> PyResult<Py<PyAny>> {
    block_on(py, async move {
        let jsonl = db.strip_prefix("jsonl://").map(PathBuf::from).or_else(|| {
            (db.ends_with(".jsonl") && !db.contains("://")).then(|| PathBuf::from(&db))
        });
        let found = match jsonl {
            Some(path) => jsonl_sessions(&path)?
                .into_iter()
                .find(|s| s.session_id == session_id),
            None => {
                open_existing(&db)
                    .await?
                    .get_session(&session_id, &Scope::All)
                    .await?
            }
        };
        match found {
            Some(trace) => Ok(Trace(Some(trace))),
            None => Err(Failure::SessionNotFound(format!(
                "no session {session_id} in {}",
                sonde::store::redact_url(&db)
            ))),
        }
    })
}

/// A time argument: a `datetime`, seconds since the epoch, a span back from now
/// (`"30m"`, `"12h"`, `"7d"`, `"2w"`) or an RFC 3339 time.
fn time_arg(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Timestamp>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let Ok(text) = obj.cast::<PyString>() else {
        return timestamp_from(obj, what).map(Some);
    };
    let text = text.to_cow()?;
    let text = text.trim();
    let unit = |c: char| match c {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3_600),
        'd' => Some(86_400),
        'w' => Some(604_800),
        _ => None,
    };
    if let Some((last, number)) = text
        .chars()
        .last()
        .zip(text.get(..text.len().saturating_sub(1)))
        && let (Some(seconds), Ok(n)) = (unit(last), number.parse::<u32>())
    {
        let back = i64::from(n) * seconds * 1_000_000;
        return Ok(Some(Timestamp::from_micros(
            Timestamp::now().as_micros() - back,
        )));
    }
    Timestamp::from_str(text).map(Some).map_err(|_| {
        PyValueError::new_err(format!(
            "{what}: {text:?} is neither a span (30m, 12h, 7d, 2w) nor an RFC 3339 time"
        ))
    })
}

/// Sessions of database `db`, newest first, as dicts (`sonde sessions --json`).
#[pyfunction]
#[pyo3(signature = (db, *, limit=50, since=None, until=None, model=None, provider=None, search=None, has_errors=false, metadata=None))]
#[allow(clippy::too_many_arguments)]
fn sessions(
    py: Python<'_>,
    db: String,
    limit: usize,
    since: Option<&Bound<'_, PyAny>>,
    until: Option<&Bound<'_, PyAny>>,
    model: Option<String>,
    provider: Option<String>,
    search: Option<String>,
    has_errors: bool,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let filter = SessionFilter {
        since: time_arg(since, "sessions since")?,
        until: time_arg(until, "sessions until")?,
        model,
        provider,
        search,
        has_errors,
        metadata: metadata_from(metadata, "sessions metadata")?
            .into_iter()
            .collect(),
        limit: limit.clamp(1, SessionFilter::MAX_LIMIT),
        ..Default::default()
    };
    block_on(py, async move {
        let page = open_existing(&db).await?.list_sessions(&filter).await?;
        to_json(page.sessions)
    })
}

fn group_by(name: Option<&str>) -> PyResult<GroupBy> {
    let name = name.unwrap_or("none");
    GroupBy::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "stats group_by: {name:?} is not one of {}",
            GroupBy::NAMES.join(", ")
        ))
    })
}

fn bucket(name: &str) -> PyResult<Bucket> {
    Bucket::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "stats bucket: {name:?} is not one of {}",
            Bucket::NAMES.join(", ")
        ))
    })
}

/// A report of `sonde stats` as the JSON it prints with `--json`: `summary`, `usage`,
/// `cost`, `models`, `keys`, `latency` or `errors`.
#[pyfunction]
#[pyo3(signature = (db, report="summary", *, since=None, until=None, model=None, provider=None, session_id=None, group_by=None, bucket="day"))]
#[allow(clippy::too_many_arguments)]
fn stats(
    py: Python<'_>,
    db: String,
    report: &str,
    since: Option<&Bound<'_, PyAny>>,
    until: Option<&Bound<'_, PyAny>>,
    model: Option<String>,
    provider: Option<String>,
    session_id: Option<String>,
    group_by: Option<&str>,
    bucket: &str,
) -> PyResult<Py<PyAny>> {
    let filter = AnalyticsFilter {
        since: time_arg(since, "stats since")?,
        until: time_arg(until, "stats until")?,
        model,
        provider,
        session_id,
        ..Default::default()
    };
    let (groups, width) = (self::group_by(group_by)?, self::bucket(bucket)?);
    let report = report.to_owned();
    if ![
        "summary", "usage", "cost", "models", "keys", "latency", "errors",
    ]
    .contains(&report.as_str())
    {
        return Err(PyValueError::new_err(format!(
            "stats: {report:?} is not a report (summary, usage, cost, models, keys, latency, errors)"
        )));
    }
    block_on(py, async move {
        let store = open_existing(&db).await?;
        match report.as_str() {
            "summary" => to_json(store.usage_summary(&filter).await?),
            "usage" | "cost" => to_json(store.usage_series(&filter, groups, width).await?),
            "models" => to_json(store.model_stats(&filter).await?),
            "keys" => to_json(store.key_stats(&filter).await?),
            "latency" => to_json(store.latency_percentiles(&filter, groups).await?),
            _ => to_json(store.error_rates(&filter, groups).await?),
        }
    })
}

/// Syncs Claude Code and Codex transcripts into database `db`, as `sonde sync`
/// does; returns its summary (`sonde sync --json`), a list when several agents ran.
#[pyfunction]
#[pyo3(signature = (agent="all", *, db=None, paths=None, dry_run=false))]
fn sync(
    py: Python<'_>,
    agent: &str,
    db: Option<String>,
    paths: Option<Vec<PathBuf>>,
    dry_run: bool,
) -> PyResult<Py<PyAny>> {
    let sources = match agent {
        "claude" => vec![Source::Claude],
        "codex" => vec![Source::Codex],
        "all" => vec![Source::Claude, Source::Codex],
        other => {
            return Err(PyValueError::new_err(format!(
                "sync: agent {other:?} is not one of claude, codex, all"
            )));
        }
    };
    let paths = paths.unwrap_or_default();
    if !paths.is_empty() && sources.len() > 1 {
        return Err(PyTypeError::new_err(
            "sync: paths need one agent (sync(\"claude\", paths=[...]), or \"codex\")",
        ));
    }
    let db = db.unwrap_or_else(StoreUrl::default_url);
    let runtime = runtime()?;
    let results = py.detach(|| -> Result<Value, Failure> {
        let store = runtime.block_on(async {
            Ok::<_, Failure>(
                StoreUrl::parse(&db)?
                    .open_with(Some(sonde::shipped_prices()))
                    .await?,
            )
        })?;
        let mut target = StoreTarget::new(store, runtime.handle().clone());
        let options = SyncOptions {
            dry_run,
            ..Default::default()
        };
        let mut syncer = Syncer::new(&mut target, options);
        let mut results = Vec::new();
        for source in sources {
            let roots = if paths.is_empty() {
                source
                    .default_roots()
                    .into_iter()
                    .filter(|r| r.exists())
                    .collect()
            } else {
                paths.clone()
            };
            let result = syncer
                .run(source, &roots)
                .map_err(|e| Failure::Sync(e.to_string()))?;
            results.push(to_json(result)?);
        }
        Ok(match results.len() {
            1 => results.remove(0),
            _ => Value::Array(results),
        })
    })?;
    Ok(crate::convert::to_py(py, &results)?.unbind())
}
