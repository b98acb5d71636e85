//! `sonde status`: how a running server is doing (`--addr`), or — without it — the local
//! database and its spool.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use sonde::store::TraceStore;

use crate::out::outln;
use crate::table::{count, thousands};
use crate::time::duration;

/// How long `sonde status --addr` waits for the server.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the server at `addr` for its diagnostics and prints them; a server that cannot
/// be reached is one line and exit code 1.
pub async fn remote(addr: &str, key: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let base = if addr.contains("://") {
        addr.trim_end_matches('/').to_owned()
    } else {
        format!("http://{}", addr.trim_end_matches('/'))
    };
    let url = format!("{base}/api/v1/diagnostics");
    let client = reqwest::Client::builder()
        .timeout(STATUS_TIMEOUT)
        .build()
        .context("cannot make an HTTP client")?;
    let mut request = client.get(&url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            let cause =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), |c| c.to_string());
            eprintln!("sonde: cannot reach the server at {base}: {cause}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let status = response.status();
    let body: Value = match response.json().await {
        Ok(body) => body,
        Err(e) => {
            eprintln!("sonde: the server at {base} answered {status} with no diagnostics: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if !status.is_success() {
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("no reason given");
        eprintln!("sonde: the server at {base} answered {status}: {message}");
        return Ok(ExitCode::FAILURE);
    }
    if json {
        return crate::json::print(&body);
    }
    for line in remote_lines(&base, &body) {
        outln!("{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn n(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

/// Seconds, as people read them.
fn seconds(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "-".to_owned(), |s| duration(s * 1_000.0))
}

/// The failures by class, `none` when there were none.
fn failures(by_class: &Value) -> String {
    let classes: Vec<String> = by_class
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
        .map(|(class, n)| format!("{class} {}", thousands(n.as_u64().unwrap_or(0))))
        .collect();
    if classes.is_empty() {
        "none".to_owned()
    } else {
        classes.join(", ")
    }
}

/// What `sonde status --addr` prints for the diagnostics `d` of the server at `base`.
fn remote_lines(base: &str, d: &Value) -> Vec<String> {
    let (store, w, ingest) = (&d["store"], &d["writer"], &d["ingest"]);
    let reachable = if store["reachable"].as_bool() == Some(true) {
        "reachable".to_owned()
    } else {
        format!(
            "NOT reachable: {}",
            store["error"].as_str().unwrap_or("no answer")
        )
    };
    let schema = store["schema_version"]
        .as_u64()
        .map_or_else(String::new, |v| format!(" (schema {v})"));
    let spool = match w["spool_dir"].as_str() {
        Some(dir) => format!(
            "{dir}: {} waiting, {} bytes{}; damaged batches set aside: {} ({})",
            count(n(&w["spool_files"]), "file"),
            thousands(n(&w["spool_pending_bytes"])),
            w["spool_oldest_age_seconds"]
                .as_f64()
                .map_or_else(String::new, |s| format!(
                    ", oldest {}",
                    duration(s * 1_000.0)
                )),
            thousands(n(&w["spool_damaged"])),
            count(n(&w["records_set_aside"]), "record"),
        ),
        None => "none".to_owned(),
    };
    vec![
        format!(
            "server   sonde {} at {base}, up {}",
            text(&d["version"]),
            seconds(&d["uptime_seconds"])
        ),
        format!(
            "store    {} {}{schema}, {reachable}",
            text(&store["driver"]),
            store["url"].as_str().unwrap_or("")
        ),
        format!(
            "writer   pressure {} (queue {} of {}, high watermark {} = {}), acknowledgement {}",
            text(&w["queue_pressure_state"]),
            thousands(n(&w["queue_depth"])),
            thousands(n(&w["queue_capacity"])),
            thousands(n(&w["queue_depth_high_watermark"])),
            text(&w["queue_high_watermark_pressure_state"]),
            text(&w["ack"]),
        ),
        format!(
            "         accepted {} ({:.0}/s over the last minute), written {} ({:.0}/s), {} already stored",
            thousands(n(&w["enqueue_accepted_total"])),
            w["accepted_per_second"].as_f64().unwrap_or(0.0),
            thousands(n(&w["written"])),
            w["written_per_second"].as_f64().unwrap_or(0.0),
            thousands(n(&w["duplicates"])),
        ),
        format!(
            "         spooled {}, replayed {}, refused for good {}",
            thousands(n(&w["spooled"])),
            thousands(n(&w["replayed"])),
            thousands(n(&w["rejected"])),
        ),
        format!(
            "         dropped {} (at hand-over {}, after a failed write {}); failures: {}",
            thousands(n(&w["total_dropped_total"])),
            thousands(n(&w["enqueue_dropped_total"])),
            thousands(n(&w["write_dropped_total"])),
            failures(&w["write_failures_by_class"]),
        ),
        format!(
            "         store write latency p50 {}, p99 {} (last minute)",
            seconds(&w["store_latency_p50_seconds"]),
            seconds(&w["store_latency_p99_seconds"]),
        ),
        format!("spool    {spool}"),
        format!(
            "ingest   {} OTLP/HTTP requests ({} refused), {} spans accepted, {} rejected",
            thousands(n(&ingest["otlp_requests_total"])),
            thousands(n(&ingest["otlp_bad_requests_total"])),
            thousands(n(&ingest["spans_accepted_total"])),
            thousands(n(&ingest["spans_rejected_total"])),
        ),
    ]
}

/// A record time as stored (microseconds in SQLite, a time in PostgreSQL), as RFC 3339.
fn record_time(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_i64().map_or(Value::Null, |micros| {
            Value::String(sonde::Timestamp::from_micros(micros).to_string())
        }),
        other => other.clone(),
    }
}

/// Records and bytes waiting in the spool folder `dir` and its lanes.
fn pending_spool(dir: &Path) -> anyhow::Result<(u64, u64, Vec<String>)> {
    let mut lanes = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir.join(sonde::store::LANES_DIR)) {
        lanes.extend(entries.filter_map(|e| Some(e.ok()?.path())));
    }
    let (mut records, mut bytes, mut damage) = (0, 0, Vec::new());
    for lane in lanes {
        let (waiting, damaged) = sonde::store::read_spool(&lane)?;
        records += waiting.len() as u64;
        bytes += waiting
            .iter()
            .map(|r| r.to_json_line().len() as u64 + 1)
            .sum::<u64>();
        if let Some(reason) = damaged {
            damage.push(format!("{}: {reason}", lane.display()));
        }
    }
    Ok((records, bytes, damage))
}

/// Reports on the local database `store` and its spool folder `spool`.
pub async fn local(store: &dyn TraceStore, spool: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let identity = store.database().cloned();
    let inventory = sonde::schema::inventory(store).await?;
    let size = inventory
        .size_bytes
        .or_else(|| identity.as_ref().and_then(|i| sqlite_size(&i.url)));
    let schema = inventory.schema_version;
    let (sessions, calls, events) = (inventory.sessions, inventory.llm_calls, inventory.events);
    let oldest = record_time(&inventory.oldest_event);
    let newest = record_time(&inventory.newest_event);
    let (pending, pending_bytes, damage) = pending_spool(spool)?;
    let value = json!({
        "store": {
            "driver": store.backend(),
            "url": identity.as_ref().map(|i| i.url.clone()),
            "database_id": identity.as_ref().map(|i| i.id.clone()),
            "schema_version": schema,
            "size_bytes": size,
        },
        "sessions": sessions,
        "calls": calls,
        "events": events,
        "oldest_event": oldest,
        "newest_event": newest,
        "spool": {
            "dir": spool,
            "pending_records": pending,
            "pending_bytes": pending_bytes,
            "damaged": damage,
        },
    });
    if json {
        return crate::json::print(&value);
    }
    let size = size.map_or_else(
        || "size unknown".to_owned(),
        |b| format!("{} bytes", thousands(b)),
    );
    outln!(
        "store    {} {} (schema {}), {size}",
        store.backend(),
        identity.map(|i| i.url).unwrap_or_default(),
        schema
    )?;
    outln!(
        "records  {}, {} ({}), events from {} to {}",
        count(sessions, "session"),
        count(calls, "LLM call"),
        count(events, "event"),
        oldest.as_str().unwrap_or("-"),
        newest.as_str().unwrap_or("-"),
    )?;
    outln!(
        "spool    {}: {} waiting to be written ({} bytes){}",
        spool.display(),
        count(pending, "record"),
        thousands(pending_bytes),
        if damage.is_empty() {
            String::new()
        } else {
            format!("; damaged: {}", damage.join("; "))
        }
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The bytes of a SQLite database and its write-ahead log.
fn sqlite_size(url: &str) -> Option<u64> {
    let path = PathBuf::from(url.strip_prefix("sqlite://")?);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let size = std::fs::metadata(&path).ok()?.len();
    Some(size + std::fs::metadata(wal).map_or(0, |m| m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_list_the_classes_that_failed() {
        assert_eq!(failures(&json!({"connection": 0})), "none");
        assert_eq!(
            failures(&json!({"connection": 3, "timeout": 0, "constraint": 1200})),
            "connection 3, constraint 1,200"
        );
    }
}
