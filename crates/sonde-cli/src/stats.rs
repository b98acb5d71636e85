//! `sonde stats ...` and `sonde pricing MODEL`.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use sonde::store::{AnalyticsFilter, Bucket, GroupBy, SeriesPoint, TraceStore};
use sonde_pricing::{PriceSource, PriceTable};

use crate::examples;
use crate::filters::CallArgs;
use crate::out::{out, outln};
use crate::table::{Table, dollars, thousands};
use crate::time::duration;

/// Which report.
#[derive(Subcommand)]
pub enum Report {
    /// Totals: calls, tokens by kind, cost, errors.
    #[command(after_help = examples(&["sonde stats summary --since 7d", "sonde stats summary --session SESSION_ID --json"]))]
    Summary(StatsArgs),
    /// Tokens and cost per time bucket (and group).
    #[command(after_help = examples(&["sonde stats usage --since 30d", "sonde stats usage --bucket hour --since 12h --group-by model"]))]
    Usage(StatsArgs),
    /// Cost per time bucket (and group).
    #[command(after_help = examples(&["sonde stats cost --bucket week --since 2026-01-01", "sonde stats cost --group-by provider --json"]))]
    Cost(StatsArgs),
    /// Per provider and model: calls, tokens, cost, latency, error rate.
    #[command(after_help = examples(&["sonde stats models", "sonde stats models --since 7d --json"]))]
    Models(StatsArgs),
    /// Per API key hash: calls, tokens, cost.
    #[command(after_help = examples(&["sonde stats keys --since 30d"]))]
    Keys(StatsArgs),
    /// Exact latency and time-to-first-token percentiles per group.
    #[command(after_help = examples(&["sonde stats latency --group-by model", "sonde stats latency --model gpt-5 --json"]))]
    Latency(StatsArgs),
    /// Failed calls and HTTP 4xx / 5xx per group.
    #[command(after_help = examples(&["sonde stats errors --group-by provider --since 1d"]))]
    Errors(StatsArgs),
}

/// What every report takes.
#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    calls: CallArgs,
    /// Group by (usage, cost, latency, errors).
    #[arg(long, value_enum, default_value_t = Grouping::None)]
    group_by: Grouping,
    /// Bucket width (usage, cost).
    #[arg(long, value_enum, default_value_t = Width::Day)]
    bucket: Width,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Grouping {
    None,
    Provider,
    Model,
    Key,
    Route,
}

#[derive(Clone, Copy, ValueEnum)]
enum Width {
    Hour,
    Day,
    Week,
}

impl StatsArgs {
    fn filter(&self) -> anyhow::Result<AnalyticsFilter> {
        self.calls.filter()
    }

    fn group_by(&self) -> GroupBy {
        match self.group_by {
            Grouping::None => GroupBy::None,
            Grouping::Provider => GroupBy::Provider,
            Grouping::Model => GroupBy::Model,
            Grouping::Key => GroupBy::Key,
            Grouping::Route => GroupBy::Route,
        }
    }

    /// `hour`, `day` or `week`.
    fn bucket_name(&self) -> &'static str {
        match self.bucket {
            Width::Hour => "hour",
            Width::Day => "day",
            Width::Week => "week",
        }
    }

    fn bucket(&self) -> Bucket {
        match self.bucket {
            Width::Hour => Bucket::Hour,
            Width::Day => Bucket::Day,
            Width::Week => Bucket::Week,
        }
    }
}

fn print_json(value: &impl Serialize) -> anyhow::Result<ExitCode> {
    crate::json::print(value)
}

/// What a report over no call says.
const NO_CALLS: &str = "no LLM calls in this range";

/// Which series `usage` or `cost` prints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Series {
    /// Calls, tokens and cost.
    Usage,
    /// Calls and cost.
    Cost,
}

/// The table of a usage or cost series (a GROUP column only when grouped), then, on
/// a terminal, a bar chart of its tokens or cost per bucket.
fn series(points: &[SeriesPoint], a: &StatsArgs, kind: Series) -> anyhow::Result<()> {
    if points.is_empty() {
        outln!("{NO_CALLS}")?;
        return Ok(());
    }
    let grouped = !matches!(a.group_by, Grouping::None);
    let mut headers = vec!["BUCKET"];
    if grouped {
        headers.push("GROUP");
    }
    headers.push("CALLS");
    if kind == Series::Usage {
        headers.extend(["INPUT", "OUTPUT", "TOTAL TOKENS"]);
    }
    headers.push("COST");
    let mut t = Table::new(&headers);
    for p in points {
        let mut row = vec![bucket_label(p.bucket, a.bucket())];
        if grouped {
            row.push(group(&p.group));
        }
        row.push(thousands(p.calls));
        if kind == Series::Usage {
            row.extend([
                thousands(p.input_tokens),
                thousands(p.output_tokens),
                thousands(p.total_tokens),
            ]);
        }
        row.push(dollars(Some(p.cost_usd)));
        t.row(row);
    }
    out!("{}", t.render())?;
    if std::io::stdout().is_terminal() {
        // One bar per bucket, the groups summed.
        let mut buckets: Vec<(String, f64)> = Vec::new();
        for p in points {
            let label = bucket_label(p.bucket, a.bucket());
            let value = match kind {
                Series::Usage => p.total_tokens as f64,
                Series::Cost => p.cost_usd,
            };
            match buckets.last_mut() {
                Some((last, sum)) if *last == label => *sum += value,
                _ => buckets.push((label, value)),
            }
        }
        let values: Vec<f64> = buckets.iter().map(|(_, v)| *v).collect();
        let what = match kind {
            Series::Usage => "tokens",
            Series::Cost => "cost",
        };
        outln!("\n{what} per {}: {}", a.bucket_name(), sparkline(&values))?;
    }
    Ok(())
}

/// `values` as a line of unicode blocks, the highest a full block.
fn sparkline(values: &[f64]) -> String {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().fold(0.0, f64::max);
    values
        .iter()
        .map(|v| {
            if max <= 0.0 {
                BLOCKS[0]
            } else {
                let i = ((v / max) * (BLOCKS.len() - 1) as f64).round() as usize;
                BLOCKS[i.min(BLOCKS.len() - 1)]
            }
        })
        .collect()
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), duration)
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

fn group(g: &Option<String>) -> String {
    g.clone().unwrap_or_else(|| "-".to_owned())
}

pub async fn report(store: &dyn TraceStore, report: Report) -> anyhow::Result<ExitCode> {
    match report {
        Report::Summary(a) => {
            let s = store.usage_summary(&a.filter()?).await?;
            if a.json {
                return print_json(&s);
            }
            let mut t = Table::new(&["", ""]);
            for (k, v) in [
                ("calls", thousands(s.calls)),
                ("input tokens", thousands(s.input_tokens)),
                ("output tokens", thousands(s.output_tokens)),
                ("cache read tokens", thousands(s.cache_read_tokens)),
                ("cache write tokens", thousands(s.cache_write_tokens)),
                ("reasoning tokens", thousands(s.reasoning_tokens)),
                ("total tokens", thousands(s.total_tokens)),
                ("cost", dollars(Some(s.cost_usd))),
                ("  reported by sources", dollars(Some(s.reported_cost_usd))),
                ("  computed from prices", dollars(Some(s.computed_cost_usd))),
                (
                    "errors",
                    format!("{} ({})", thousands(s.errors), percent(s.error_rate)),
                ),
            ] {
                t.row(vec![k.to_owned(), v]);
            }
            out!(
                "{}",
                t.render().split_once('\n').map_or("", |(_, rest)| rest)
            )?;
            outln!(
                "cost = the source's reported cost where there is one, else the one computed from the price table"
            )?;
        }
        Report::Usage(a) | Report::Cost(a) if a.json => {
            return print_json(
                &store
                    .usage_series(&a.filter()?, a.group_by(), a.bucket())
                    .await?,
            );
        }
        Report::Usage(a) => {
            let points = store
                .usage_series(&a.filter()?, a.group_by(), a.bucket())
                .await?;
            series(&points, &a, Series::Usage)?;
        }
        Report::Cost(a) => {
            let points = store
                .usage_series(&a.filter()?, a.group_by(), a.bucket())
                .await?;
            series(&points, &a, Series::Cost)?;
        }
        Report::Models(a) => {
            let models = store.model_stats(&a.filter()?).await?;
            if a.json {
                return print_json(&models);
            }
            if models.is_empty() {
                outln!("{NO_CALLS}")?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new(&[
                "PROVIDER",
                "MODEL",
                "CALLS",
                "INPUT",
                "OUTPUT",
                "CACHE READ",
                "CACHE WRITE",
                "COST",
                "AVG LATENCY",
                "P95 LATENCY",
                "ERRORS",
            ]);
            for m in &models {
                t.row(vec![
                    group(&m.provider),
                    m.model.clone(),
                    thousands(m.calls),
                    thousands(m.input_tokens),
                    thousands(m.output_tokens),
                    thousands(m.cache_read_tokens),
                    thousands(m.cache_write_tokens),
                    dollars(Some(m.cost_usd)),
                    ms(m.avg_latency_ms),
                    ms(m.p95_latency_ms),
                    percent(m.error_rate),
                ]);
            }
            out!("{}", t.render())?;
        }
        Report::Keys(a) => {
            let keys = store.key_stats(&a.filter()?).await?;
            if a.json {
                return print_json(&keys);
            }
            if keys.is_empty() {
                outln!("{NO_CALLS}")?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new(&["API KEY HASH", "CALLS", "TOKENS", "COST"]);
            for k in &keys {
                t.row(vec![
                    k.api_key_hash.clone(),
                    thousands(k.calls),
                    thousands(k.total_tokens),
                    dollars(Some(k.cost_usd)),
                ]);
            }
            out!("{}", t.render())?;
        }
        Report::Latency(a) => {
            let stats = store
                .latency_percentiles(&a.filter()?, a.group_by())
                .await?;
            if a.json {
                return print_json(&stats);
            }
            if stats.is_empty() {
                outln!("{NO_CALLS}")?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new(&[
                "GROUP", "COUNT", "P50", "P90", "P95", "P99", "TTFT P50", "TTFT P95",
            ]);
            for l in &stats {
                t.row(vec![
                    group(&l.group),
                    thousands(l.count),
                    ms(l.p50_ms),
                    ms(l.p90_ms),
                    ms(l.p95_ms),
                    ms(l.p99_ms),
                    ms(l.ttft_p50_ms),
                    ms(l.ttft_p95_ms),
                ]);
            }
            out!("{}", t.render())?;
        }
        Report::Errors(a) => {
            let stats = store.error_rates(&a.filter()?, a.group_by()).await?;
            if a.json {
                return print_json(&stats);
            }
            if stats.is_empty() {
                outln!("{NO_CALLS}")?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new(&["GROUP", "CALLS", "ERRORS", "HTTP 4XX", "HTTP 5XX", "RATE"]);
            for e in &stats {
                t.row(vec![
                    group(&e.group),
                    thousands(e.calls),
                    thousands(e.errors),
                    thousands(e.http_4xx),
                    thousands(e.http_5xx),
                    percent(e.error_rate),
                ]);
            }
            out!("{}", t.render())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bucket_label(t: sonde::Timestamp, bucket: Bucket) -> String {
    let format = if bucket == Bucket::Hour {
        "%Y-%m-%d %H:00"
    } else {
        "%Y-%m-%d"
    };
    t.to_datetime().format(format).to_string()
}

/// What `sonde pricing MODEL --json` prints.
#[derive(Serialize)]
struct Pricing<'a> {
    model: &'a str,
    #[serde(flatten)]
    source: PriceSource,
    /// USD per million tokens.
    per_million_tokens: PerMillion,
}

#[derive(Serialize)]
struct PerMillion {
    input: Option<f64>,
    output: Option<f64>,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
    reasoning: Option<f64>,
    long_context_threshold: Option<u64>,
    long_input: Option<f64>,
    long_output: Option<f64>,
}

/// How a model name led to its shipped entry, as the end of a sentence ("matched by
/// ...").
fn how_matched(matched_by: &str) -> &str {
    match matched_by {
        "exact" => "its exact name",
        "prefix" => "the longest known prefix of its name",
        "without provider" => "its name without the provider prefix",
        "provider-qualified entry" => "a provider-qualified entry of the same model",
        "without date" => "its name without the date suffix",
        other => other,
    }
}

pub fn pricing(model: &str, json: bool) -> anyhow::Result<ExitCode> {
    let Some(m) = PriceTable::global().find(model) else {
        eprintln!("sonde: no price for {model:?}: add one with --prices FILE (see README)");
        return Ok(ExitCode::FAILURE);
    };
    let per_m = |v: Option<f64>| v.map(|p| (p * 1e6 * 1e6).round() / 1e6);
    let p = m.price;
    let out = Pricing {
        model,
        source: m.source.clone(),
        per_million_tokens: PerMillion {
            input: per_m(p.input),
            output: per_m(p.output),
            cache_read: per_m(p.cache_read.or(p.input)),
            cache_write: per_m(p.cache_write.or(p.input)),
            cache_write_1h: per_m(p.cache_write_1h.or(p.cache_write).or(p.input)),
            reasoning: per_m(p.reasoning.or(p.output)),
            long_context_threshold: p.long_context_threshold,
            long_input: per_m(p.long_input),
            long_output: per_m(p.long_output),
        },
    };
    if json {
        return print_json(&out);
    }
    let source = match &m.source {
        PriceSource::Override { entry } => format!("your price file, entry {entry:?}"),
        PriceSource::Shipped { entry, matched_by } => format!(
            "the shipped table (LiteLLM), entry {entry:?}, matched by {}",
            how_matched(matched_by)
        ),
    };
    outln!("{model}: {source}")?;
    let price = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("${v}"));
    let mut t = Table::new(&["TOKENS", "USD PER MILLION"]);
    let pm = &out.per_million_tokens;
    for (k, v) in [
        ("input", pm.input),
        ("output", pm.output),
        ("cache read", pm.cache_read),
        ("cache write (5 min)", pm.cache_write),
        ("cache write (1 hour)", pm.cache_write_1h),
        ("reasoning", pm.reasoning),
    ] {
        t.row(vec![k.to_owned(), price(v)]);
    }
    if let Some(threshold) = pm.long_context_threshold {
        t.row(vec![
            format!("input, prompts over {} tokens", thousands(threshold)),
            price(pm.long_input),
        ]);
        t.row(vec![
            format!("output, prompts over {} tokens", thousands(threshold)),
            price(pm.long_output),
        ]);
    }
    out!("{}", t.render())?;
    Ok(ExitCode::SUCCESS)
}
