//! `sonde calls`: LLM calls, newest first, with every filter analytics takes.

use std::process::ExitCode;

use clap::Args;
use sonde::store::{CallFilter, TraceStore};

use crate::filters::CallArgs;
use crate::out::{out, outln};
use crate::table::{Table, dollars, thousands};
use crate::time::duration;

/// Filters and output of `sonde calls`.
#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    calls: CallArgs,
    /// Only failed calls (status error, or HTTP 4xx / 5xx).
    #[arg(long)]
    failed: bool,
    /// Calls that took at least this many milliseconds.
    #[arg(long, value_name = "MS")]
    min_latency: Option<f64>,
    /// Calls that took at most this many milliseconds.
    #[arg(long, value_name = "MS")]
    max_latency: Option<f64>,
    /// Calls that cost at least this much (USD).
    #[arg(long, value_name = "USD")]
    min_cost: Option<f64>,
    /// Calls that cost at most this much (USD).
    #[arg(long, value_name = "USD")]
    max_cost: Option<f64>,
    /// At most this many calls (1 or more).
    #[arg(long, default_value_t = CallFilter::DEFAULT_LIMIT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    limit: usize,
    /// Continue after a previous page (its next_cursor).
    #[arg(long)]
    cursor: Option<String>,
    /// Print JSON: {"calls": [...], "next_cursor": ...}.
    #[arg(long)]
    json: bool,
}

/// The command that lists the page after `cursor`: this one's arguments, its
/// `--cursor` replaced, each shell-quoted (a `--db` redacted).
fn next_page_command(cursor: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--cursor" {
            args.next();
        } else if !arg.starts_with("--cursor=") {
            words.push(crate::sessions::shell_quoted(&sonde::store::redact_url(
                &arg,
            )));
        }
    }
    format!(
        "sonde {} --cursor {}",
        words.join(" "),
        crate::sessions::shell_quoted(cursor)
    )
}

pub async fn list(store: &dyn TraceStore, args: ListArgs) -> anyhow::Result<ExitCode> {
    let zone = args.calls.zone()?;
    let filter = CallFilter {
        calls: args.calls.filter()?,
        failed: args.failed,
        min_latency_ms: args.min_latency,
        max_latency_ms: args.max_latency,
        min_cost_usd: args.min_cost,
        max_cost_usd: args.max_cost,
        limit: args.limit,
        cursor: args.cursor.clone(),
    };
    let page = store.list_calls(&filter).await?;
    if args.json {
        return crate::json::print(&page);
    }
    if page.calls.is_empty() {
        outln!("no LLM calls")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "TIME",
        "MODEL",
        "INPUT",
        "CACHE READ",
        "CACHE WRITE",
        "OUTPUT",
        "COST",
        "LATENCY",
        "STATUS",
        "SESSION",
        "CALL",
    ]);
    for c in &page.calls {
        table.row(vec![
            zone.when(c.ts),
            c.model.clone().unwrap_or_default(),
            thousands(c.input_tokens),
            thousands(c.cache_read_tokens),
            thousands(c.cache_write_tokens),
            thousands(c.output_tokens),
            dollars(c.cost_usd),
            c.latency_ms.map_or_else(|| "-".to_owned(), duration),
            match c.response_status {
                Some(status) if c.failed() => format!("{} {status}", c.status),
                _ => c.status.clone(),
            },
            c.session_id.clone(),
            c.id.clone(),
        ]);
    }
    out!("{}", table.render())?;
    if let Some(cursor) = page.next_cursor {
        outln!("more: {}", next_page_command(&cursor))?;
    }
    Ok(ExitCode::SUCCESS)
}
