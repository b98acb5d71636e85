//! Analytics over LLM calls: usage, cost, per-model and per-key stats, exact latency
//! percentiles and error rates — written once, run natively in each backend's SQL.
//!
//! Each query is SQL in the backend's dialect, run through [`SqlQuery::query`]
//! (read-only). Sums read the roll-ups for the whole hours (days, for keys) of a range
//! and the events for the partial ones at its edges. Percentiles are exact: the values
//! come from the latency runs (see [`crate::latency_runs`]) and the edge events through
//! [`SqlQuery::read_values`], and the ranks around `rank = p·(n−1)` are selected and
//! interpolated here, so every backend returns the same number (the definition of
//! PostgreSQL's `percentile_cont`). Results are sorted here too, so that collations
//! cannot make backends disagree.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use sonde_model::{Status, Timestamp};

use crate::{QueryError, ReadError, Scope, SqlQuery};

/// The SQL dialect of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: `ts` is microseconds since the epoch.
    Sqlite,
    /// PostgreSQL: `ts` is `TIMESTAMPTZ`.
    Postgres,
}

impl Dialect {
    /// `e.ts` as microseconds since the epoch.
    pub(crate) fn ts_micros(self) -> &'static str {
        match self {
            Dialect::Sqlite => "e.ts",
            Dialect::Postgres => "(EXTRACT(EPOCH FROM e.ts) * 1000000)::int8",
        }
    }

    /// A time column of `sessions s` as microseconds since the epoch.
    pub(crate) fn session_micros(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("s.{column}"),
            Dialect::Postgres => format!("(EXTRACT(EPOCH FROM s.{column}) * 1000000)::int8"),
        }
    }

    /// Text compared byte by byte (PostgreSQL's default collation is the locale's).
    pub(crate) fn bytewise(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => expr.to_owned(),
            Dialect::Postgres => format!("{expr} COLLATE \"C\""),
        }
    }

    /// `expr`'s values joined by U+001F (the unit separator).
    pub(crate) fn joined(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("group_concat({expr}, char(31))"),
            Dialect::Postgres => format!("string_agg({expr}, chr(31))"),
        }
    }

    /// A time parameter (bound as microseconds since the epoch).
    pub(crate) fn ts_param(self, placeholder: &str) -> String {
        match self {
            Dialect::Sqlite => placeholder.to_owned(),
            Dialect::Postgres => {
                format!("(TIMESTAMPTZ 'epoch' + {placeholder}::int8 * INTERVAL '1 microsecond')")
            }
        }
    }

    pub(crate) fn metadata_match(self, path_or_key: &str, value: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract(s.metadata, {path_or_key}) = {value}"),
            Dialect::Postgres => format!("s.metadata -> {path_or_key}::text = {value}::jsonb"),
        }
    }

    /// An aggregate packing the non-null values of `expr` as the latency runs hold them
    /// (see [`crate::latency_runs`]).
    pub(crate) fn packed(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("sonde_packed({expr})"),
            Dialect::Postgres => format!("string_agg(float8send({expr}), ''::bytea)"),
        }
    }

    /// `events e`, read by session: for the per-session probes of a session listing
    /// (SQLite would otherwise probe through `events_model`, reading every call of the
    /// model for each session: 33 s instead of milliseconds for 100,000 sessions).
    pub(crate) fn events_of_session(self) -> &'static str {
        match self {
            Dialect::Sqlite => "events e INDEXED BY events_session",
            Dialect::Postgres => "events e",
        }
    }

    /// A floating-point parameter.
    pub(crate) fn real(self, placeholder: &str) -> String {
        match self {
            Dialect::Sqlite => placeholder.to_owned(),
            Dialect::Postgres => format!("{placeholder}::float8"),
        }
    }

    /// The payload column `expr` as JSON text (SQLite may keep it compressed).
    pub(crate) fn payload(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("sonde_payload({expr})"),
            Dialect::Postgres => expr.to_owned(),
        }
    }

    pub(crate) fn text(self, placeholder: &str) -> String {
        match self {
            Dialect::Sqlite => placeholder.to_owned(),
            Dialect::Postgres => format!("{placeholder}::text"),
        }
    }

    /// The backend's name: `sqlite` or `postgres`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// A text parameter stored as the dialect's JSON column.
    pub(crate) fn json(self, placeholder: &str) -> String {
        match self {
            Dialect::Sqlite => placeholder.to_owned(),
            Dialect::Postgres => format!("CAST({placeholder}::text AS jsonb)"),
        }
    }

    /// The `n`th positional parameter of a statement the backend prepares itself.
    pub(crate) fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }
}

/// Which LLM calls an analytics query covers. Every field narrows it.
///
/// ```
/// let f = sonde_store::AnalyticsFilter { model: Some("gpt-5".into()), ..Default::default() };
/// assert!(f.since.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalyticsFilter {
    /// Tenant visibility.
    pub scope: Scope,
    /// Calls at or after this instant.
    pub since: Option<Timestamp>,
    /// Calls before this instant.
    pub until: Option<Timestamp>,
    /// This provider.
    pub provider: Option<String>,
    /// This model.
    pub model: Option<String>,
    /// This API key hash.
    pub api_key_hash: Option<String>,
    /// This gateway key.
    pub gateway_key_id: Option<String>,
    /// This session.
    pub session_id: Option<String>,
    /// Sessions whose metadata has these key = value pairs.
    pub metadata: Vec<(String, Value)>,
    /// Calls with this status.
    pub status: Option<Status>,
}

/// What a breakdown groups by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GroupBy {
    /// One group of everything (`group` is null).
    #[default]
    None,
    /// The provider.
    Provider,
    /// The model.
    Model,
    /// The API key hash.
    Key,
    /// The request path (gateways).
    Route,
}

impl GroupBy {
    /// The names [`GroupBy::from_name`] takes, as the CLI and the REST API spell them.
    pub const NAMES: [&str; 5] = ["none", "provider", "model", "key", "route"];

    /// The grouping named `name` (one of [`GroupBy::NAMES`]).
    ///
    /// ```
    /// use sonde_store::GroupBy;
    /// assert_eq!(GroupBy::from_name("model"), Some(GroupBy::Model));
    /// assert_eq!(GroupBy::from_name("colour"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "none" => GroupBy::None,
            "provider" => GroupBy::Provider,
            "model" => GroupBy::Model,
            "key" => GroupBy::Key,
            "route" => GroupBy::Route,
            _ => return None,
        })
    }

    /// The group in the hourly roll-up `h` (empty strings stand for none).
    fn rollup_expr(self) -> &'static str {
        match self {
            GroupBy::None => "CAST(NULL AS TEXT)",
            GroupBy::Provider => "NULLIF(h.provider, '')",
            GroupBy::Model => "NULLIF(h.model, '')",
            GroupBy::Key => "NULLIF(h.api_key_hash, '')",
            GroupBy::Route => "NULLIF(h.request_path, '')",
        }
    }

    /// The dimension column grouped by, if any.
    fn column(self) -> Option<&'static str> {
        match self {
            GroupBy::None => None,
            GroupBy::Provider => Some("provider"),
            GroupBy::Model => Some("model"),
            GroupBy::Key => Some("api_key_hash"),
            GroupBy::Route => Some("request_path"),
        }
    }

    fn expr(self) -> &'static str {
        match self {
            GroupBy::None => "CAST(NULL AS TEXT)",
            GroupBy::Provider => "e.provider",
            GroupBy::Model => "e.model",
            GroupBy::Key => "e.api_key_hash",
            GroupBy::Route => "e.request_path",
        }
    }
}

/// The width of a time bucket. Weeks start on Monday, UTC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Bucket {
    /// One hour.
    Hour,
    /// One day (UTC).
    #[default]
    Day,
    /// One week, from Monday 00:00 UTC.
    Week,
}

impl Bucket {
    /// The names [`Bucket::from_name`] takes.
    pub const NAMES: [&str; 3] = ["hour", "day", "week"];

    /// The width named `name` (`hour`, `day` or `week`).
    ///
    /// ```
    /// assert_eq!(sonde_store::Bucket::from_name("week"), Some(sonde_store::Bucket::Week));
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "hour" => Bucket::Hour,
            "day" => Bucket::Day,
            "week" => Bucket::Week,
            _ => return None,
        })
    }

    /// `(width, offset)` in microseconds: a bucket starts at `offset + k·width`.
    fn span(self) -> (i64, i64) {
        const HOUR: i64 = 3_600_000_000;
        match self {
            Bucket::Hour => (HOUR, 0),
            Bucket::Day => (24 * HOUR, 0),
            // 1970-01-01 was a Thursday: Mondays are 4 days after it, modulo 7.
            Bucket::Week => (7 * 24 * HOUR, 4 * 24 * HOUR),
        }
    }

    /// The start of the bucket holding `t`.
    ///
    /// ```
    /// use sonde_store::Bucket;
    /// use sonde_model::Timestamp;
    /// let sunday_night: Timestamp = "2026-11-22T23:59:59.999999Z".parse().unwrap();
    /// assert_eq!(Bucket::Week.start_of(sunday_night).to_string(), "2026-11-16T00:00:00.000000Z");
    /// assert_eq!(Bucket::Day.start_of(sunday_night).to_string(), "2026-11-22T00:00:00.000000Z");
    /// ```
    pub fn start_of(self, t: Timestamp) -> Timestamp {
        let (width, offset) = self.span();
        let x = t.as_micros() - offset;
        Timestamp::from_micros(x - x.rem_euclid(width) + offset)
    }
}

/// Totals over the filtered calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageSummary {
    /// LLM calls.
    pub calls: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// All tokens (input + cache read + cache write + output).
    pub total_tokens: u64,
    /// Cache read tokens.
    pub cache_read_tokens: u64,
    /// Cache write tokens.
    pub cache_write_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Cost: the source's reported cost where there is one, else the one computed from
    /// the price table.
    pub cost_usd: f64,
    /// The sum of reported costs alone.
    pub reported_cost_usd: f64,
    /// The sum of computed costs alone.
    pub computed_cost_usd: f64,
    /// Calls that failed (status error, or HTTP 4xx / 5xx).
    pub errors: u64,
    /// `errors / calls` (0 when there are no calls).
    pub error_rate: f64,
}

/// One bucket (and group) of a usage or cost series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// The start of the bucket.
    pub bucket: Timestamp,
    /// The group, or null when not grouped.
    pub group: Option<String>,
    /// LLM calls.
    pub calls: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// All tokens.
    pub total_tokens: u64,
    /// Cost (reported, else computed).
    pub cost_usd: f64,
}

/// Per provider and model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelStats {
    /// The provider.
    pub provider: Option<String>,
    /// The model.
    pub model: String,
    /// LLM calls.
    pub calls: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache read tokens.
    pub cache_read_tokens: u64,
    /// Cache write tokens.
    pub cache_write_tokens: u64,
    /// All tokens.
    pub total_tokens: u64,
    /// Cost (reported, else computed).
    pub cost_usd: f64,
    /// Mean latency over calls that have one.
    pub avg_latency_ms: Option<f64>,
    /// Exact 95th percentile latency.
    pub p95_latency_ms: Option<f64>,
    /// Failed calls over calls.
    pub error_rate: f64,
}

/// Per API key hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyStats {
    /// The key's hash.
    pub api_key_hash: String,
    /// LLM calls.
    pub calls: u64,
    /// All tokens.
    pub total_tokens: u64,
    /// Cost (reported, else computed).
    pub cost_usd: f64,
}

/// Exact latency percentiles of one group (over calls that have a latency; `None`
/// when none has).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyStats {
    /// The group, or null when not grouped.
    pub group: Option<String>,
    /// Calls with a latency.
    pub count: u64,
    /// Median latency.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Median time to first token.
    pub ttft_p50_ms: Option<f64>,
    /// 95th percentile time to first token.
    pub ttft_p95_ms: Option<f64>,
}

/// Exact latency percentiles of one time bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyPoint {
    /// The bucket's start.
    pub bucket: Timestamp,
    /// The bucket's percentiles (`group` is null).
    pub latency: LatencyStats,
}

/// What a stats page shows of models and latency, read at once
/// ([`Analytics::latency_overview`](crate::Analytics::latency_overview)): each part
/// equals what its own query answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyOverview {
    /// Per provider and model, most calls first, as
    /// [`Analytics::model_stats`](crate::Analytics::model_stats).
    pub models: Vec<ModelStats>,
    /// Percentiles per model, as
    /// [`Analytics::latency_percentiles`](crate::Analytics::latency_percentiles) by
    /// [`GroupBy::Model`].
    pub by_model: Vec<LatencyStats>,
    /// Percentiles per bucket, oldest first, as
    /// [`Analytics::latency_series`](crate::Analytics::latency_series).
    pub series: Vec<LatencyPoint>,
}

/// Failures of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorStats {
    /// The group, or null when not grouped.
    pub group: Option<String>,
    /// LLM calls.
    pub calls: u64,
    /// Failed calls: status error, or HTTP 4xx / 5xx.
    pub errors: u64,
    /// Calls answered with HTTP 4xx.
    pub http_4xx: u64,
    /// Calls answered with HTTP 5xx.
    pub http_5xx: u64,
    /// `errors / calls`.
    pub error_rate: f64,
}

/// SQL text with its parameters.
pub(crate) struct Sql {
    pub(crate) dialect: Dialect,
    pub(crate) params: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            params: Vec::new(),
        }
    }

    /// Adds a parameter; returns its placeholder.
    pub(crate) fn param(&mut self, value: impl Into<Value>) -> String {
        self.params.push(value.into());
        format!("?{}", self.params.len())
    }

    /// "The session's metadata has `key` = `value`", over `sessions s`.
    pub(crate) fn metadata_clause(&mut self, key: &str, value: &Value) -> String {
        let d = self.dialect;
        let key = match d {
            Dialect::Sqlite => self.param(format!("$.\"{}\"", key.replace('"', "\\\""))),
            Dialect::Postgres => self.param(key.to_owned()),
        };
        let value = match d {
            // SQLite's json_extract gives booleans as 0 / 1.
            Dialect::Sqlite => self.param(match value {
                Value::Bool(b) => Value::from(i64::from(*b)),
                other => other.clone(),
            }),
            Dialect::Postgres => self.param(value.clone()),
        };
        d.metadata_match(&key, &value)
    }

    /// The daily and hourly roll-ups as the row source `h` of `f`'s calls, when they
    /// can answer `f` (no key filter; see [`Sql::rollup_source`]); `bucket` is the
    /// finest time the rows are grouped by (hourly buckets leave the daily roll-up out).
    fn hourly_source(&mut self, f: &AnalyticsFilter, bucket: Option<Bucket>) -> Option<String> {
        if f.api_key_hash.is_some() {
            return None;
        }
        let rollup = match bucket {
            Some(Bucket::Hour) => Rollup::Hourly,
            _ => Rollup::DailyAndHourly,
        };
        self.rollup_source(f, rollup)
    }

    /// The daily per-key roll-up as the row source `h` of `f`'s calls that have a key,
    /// when it can answer `f` (no provider or model filter).
    fn key_daily_source(&mut self, f: &AnalyticsFilter) -> Option<String> {
        if f.provider.is_some() || f.model.is_some() {
            return None;
        }
        self.rollup_source(f, Rollup::KeyDaily)
    }

    /// `(…) h`: the roll-up's rows for the whole granules of `f`'s range (days, then
    /// hours at the edges, for the daily and hourly roll-ups), and for the partial
    /// granules at its edges the events themselves, shaped as roll-up rows (one per call).
    /// `None` when the roll-ups record too little for `f` (see [`rollups_answer`]) or the
    /// range holds no whole granule.
    fn rollup_source(&mut self, f: &AnalyticsFilter, rollup: Rollup) -> Option<String> {
        if !rollups_answer(f) {
            return None;
        }
        let (granules, edges) = split_into_tiers(f, rollup.tiers())?;
        let mut parts = Vec::new();
        for (table, granule_range) in granules {
            let mut conditions = vec!["h.calls > 0".to_owned()];
            conditions.extend(self.rollup_key_conditions(&granule_range));
            parts.push(format!(
                "SELECT {} FROM {table} h WHERE {}",
                crate::rows::ROLLUP_COLUMNS.join(", "),
                conditions.join(" AND ")
            ));
        }
        for edge in edges {
            let filter = self.filter(&edge);
            parts.push(format!(
                "SELECT {} FROM events e WHERE {filter}{}",
                rollup.event_row(self.dialect),
                match rollup {
                    Rollup::Hourly | Rollup::DailyAndHourly => "",
                    Rollup::KeyDaily => " AND e.api_key_hash IS NOT NULL",
                }
            ));
        }
        Some(format!("({}) h", parts.join(" UNION ALL ")))
    }

    /// Conditions on the key columns of a roll-up or run table `h`: tenant, hours,
    /// provider, model, API key.
    fn rollup_key_conditions(&mut self, f: &AnalyticsFilter) -> Vec<String> {
        let d = self.dialect;
        let mut clauses = Vec::new();
        if let Scope::Tenant { org, workspace } = &f.scope {
            let (o, w) = (self.param(org.clone()), self.param(workspace.clone()));
            clauses.push(format!(
                "h.org = {} AND h.workspace = {}",
                d.text(&o),
                d.text(&w)
            ));
        }
        if let Some(since) = f.since {
            let p = self.param(since.as_micros());
            clauses.push(format!("h.hour >= {p}"));
        }
        if let Some(until) = f.until {
            let p = self.param(until.as_micros());
            clauses.push(format!("h.hour < {p}"));
        }
        for (column, value) in [
            ("provider", &f.provider),
            ("model", &f.model),
            ("api_key_hash", &f.api_key_hash),
        ] {
            if let Some(value) = value {
                let p = self.param(value.clone());
                clauses.push(format!("h.{column} = {}", d.text(&p)));
            }
        }
        clauses
    }

    /// The filter as a WHERE condition over `events e`.
    pub(crate) fn filter(&mut self, f: &AnalyticsFilter) -> String {
        let d = self.dialect;
        let mut clauses = vec!["e.event_type = 'llm'".to_owned()];
        if let Scope::Tenant { org, workspace } = &f.scope {
            let (o, w) = (self.param(org.clone()), self.param(workspace.clone()));
            clauses.push(format!(
                "e.org = {} AND e.workspace = {}",
                d.text(&o),
                d.text(&w)
            ));
        }
        if let Some(since) = f.since {
            let p = self.param(since.as_micros());
            clauses.push(format!("e.ts >= {}", d.ts_param(&p)));
        }
        if let Some(until) = f.until {
            let p = self.param(until.as_micros());
            clauses.push(format!("e.ts < {}", d.ts_param(&p)));
        }
        for (column, value) in [
            ("provider", &f.provider),
            ("model", &f.model),
            ("api_key_hash", &f.api_key_hash),
            ("gateway_key_id", &f.gateway_key_id),
            ("session_id", &f.session_id),
        ] {
            if let Some(value) = value {
                let p = self.param(value.clone());
                clauses.push(format!("e.{column} = {}", d.text(&p)));
            }
        }
        if let Some(status) = f.status {
            let p = self.param(status.as_str());
            clauses.push(format!("e.status = {}", d.text(&p)));
        }
        for (key, value) in &f.metadata {
            let matches = self.metadata_clause(key, value);
            clauses.push(format!(
                "EXISTS (SELECT 1 FROM sessions s
                  WHERE s.tenant = e.tenant AND s.session_id = e.session_id AND {matches})"
            ));
        }
        clauses.join(" AND ")
    }
}

/// The roll-up tables a query reads.
#[derive(Clone, Copy)]
enum Rollup {
    /// `llm_hourly`: hour × tenant × provider × model × route.
    Hourly,
    /// `llm_daily` for whole days, `llm_hourly` for the whole hours around them: the
    /// same rows by day and by hour.
    DailyAndHourly,
    /// `llm_key_daily`: day × tenant × API key, calls with a key only.
    KeyDaily,
}

/// The daily and hourly roll-ups, coarsest first.
const DAILY_AND_HOURLY: &[Tier] = &[
    ("llm_daily", crate::rows::DAY_MICROS),
    ("llm_hourly", crate::rows::HOUR_MICROS),
];

/// The daily and hourly latency runs, coarsest first.
const RUN_TIERS: &[Tier] = &[
    ("llm_daily_runs", crate::rows::DAY_MICROS),
    ("llm_hourly_runs", crate::rows::HOUR_MICROS),
];

/// A range split for tiers: the ranges each table answers (whole granules), then those
/// the events answer (partial granules at the edges).
type TieredRange = (Vec<(&'static str, AnalyticsFilter)>, Vec<AnalyticsFilter>);

/// A roll-up (or run) table and the granule its rows are of.
type Tier = (&'static str, i64);

impl Rollup {
    /// The tables it reads, coarsest first.
    fn tiers(self) -> &'static [Tier] {
        match self {
            Rollup::Hourly => &DAILY_AND_HOURLY[1..],
            Rollup::DailyAndHourly => DAILY_AND_HOURLY,
            Rollup::KeyDaily => &[("llm_key_daily", crate::rows::DAY_MICROS)],
        }
    }

    /// An event `e` as a row of this roll-up (the columns of `ROLLUP_COLUMNS`), its
    /// granule column the start of its granule in the finest of the tiers.
    fn event_row(self, d: Dialect) -> String {
        let granule = self
            .tiers()
            .last()
            .map_or(crate::rows::HOUR_MICROS, |t| t.1);
        let m = d.ts_micros();
        let (provider, model, key, route) = match self {
            Rollup::Hourly | Rollup::DailyAndHourly => (
                "coalesce(e.provider, '')",
                "coalesce(e.model, '')",
                "''",
                "coalesce(e.request_path, '')",
            ),
            Rollup::KeyDaily => ("''", "''", "coalesce(e.api_key_hash, '')", "''"),
        };
        format!(
            "{m} - ((({m}) % {granule}) + {granule}) % {granule}, coalesce(e.org, ''),
             coalesce(e.workspace, ''), {provider}, {model}, {key}, {route}, 1,
             coalesce(e.input_tokens, 0), coalesce(e.output_tokens, 0),
             coalesce(e.cache_read_tokens, 0), coalesce(e.cache_write_tokens, 0),
             coalesce(e.reasoning_tokens, 0), coalesce(e.total_tokens, 0),
             coalesce(e.cost_usd, 0), coalesce(e.reported_cost_usd, 0),
             coalesce(e.computed_cost_usd, 0), CASE WHEN {FAILED} THEN 1 ELSE 0 END,
             CASE WHEN e.response_status >= 400 AND e.response_status < 500 THEN 1 ELSE 0 END,
             CASE WHEN e.response_status >= 500 THEN 1 ELSE 0 END, coalesce(e.latency_ms, 0),
             CASE WHEN e.latency_ms IS NOT NULL THEN 1 ELSE 0 END"
        )
    }
}

/// `f` split into the ranges that `tiers` (tables, coarsest first) answer: the whole
/// granules of the first tier inside the range, the whole granules of the next tier at
/// its edges, and so on; last, the partial granules at the edges that no tier answers,
/// for the events. `None` when no tier holds a whole granule of the range.
fn split_into_tiers(f: &AnalyticsFilter, tiers: &[Tier]) -> Option<TieredRange> {
    let ((table, granule), finer) = tiers.split_first()?;
    let Some((middle, edges)) = split_at_granules(f, *granule) else {
        return split_into_tiers(f, finer);
    };
    let mut granules = vec![(*table, middle)];
    let mut events = Vec::new();
    for edge in edges {
        match split_into_tiers(&edge, finer) {
            Some((g, e)) => {
                granules.extend(g);
                events.extend(e);
            }
            None => events.push(edge),
        }
    }
    Some((granules, events))
}

/// `f` split at granule boundaries: the whole granules inside its range (from the first
/// granule start at or after `since` to the last one at or before `until`; unbounded
/// where `f` is), and the partial granules at its edges. `None` when the range holds no
/// whole granule.
fn split_at_granules(
    f: &AnalyticsFilter,
    granule: i64,
) -> Option<(AnalyticsFilter, Vec<AnalyticsFilter>)> {
    let first = f.since.map(|t| {
        let x = t.as_micros();
        Timestamp::from_micros(x + (granule - x.rem_euclid(granule)) % granule)
    });
    let end = f
        .until
        .map(|t| Timestamp::from_micros(t.as_micros() - t.as_micros().rem_euclid(granule)));
    if let (Some(a), Some(b)) = (first, end)
        && a >= b
    {
        return None;
    }
    let mut edges = Vec::new();
    if let (Some(since), Some(first)) = (f.since, first)
        && since < first
    {
        edges.push(AnalyticsFilter {
            until: Some(first),
            ..f.clone()
        });
    }
    if let (Some(until), Some(end)) = (f.until, end)
        && end < until
    {
        edges.push(AnalyticsFilter {
            since: Some(end),
            ..f.clone()
        });
    }
    let middle = AnalyticsFilter {
        since: first,
        until: end,
        ..f.clone()
    };
    Some((middle, edges))
}

/// True when the roll-ups (and their latency runs) can answer `f` for whole granules:
/// no session, metadata, status or gateway-key filter, which they do not record.
fn rollups_answer(f: &AnalyticsFilter) -> bool {
    f.session_id.is_none()
        && f.metadata.is_empty()
        && f.status.is_none()
        && f.gateway_key_id.is_none()
}

/// "The event failed" over `events e`: status error, or HTTP 4xx / 5xx.
pub(crate) const FAILED: &str = "(e.status = 'error' OR e.response_status >= 400)";

fn int(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
        .unwrap_or(0)
}

fn float(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn opt_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn rate(errors: u64, calls: u64) -> f64 {
    if calls == 0 {
        0.0
    } else {
        errors as f64 / calls as f64
    }
}

pub(crate) fn read_error(e: QueryError) -> ReadError {
    match e {
        QueryError::Closed => ReadError::Closed,
        QueryError::Unavailable(e) => ReadError::Backend(e),
        other => ReadError::Backend(crate::BackendError::new(
            crate::ErrorClass::Unknown,
            other.to_string(),
        )),
    }
}

/// Sorts groups: null first, then by bytes (not by any collation).
fn group_order(a: &Option<String>, b: &Option<String>) -> std::cmp::Ordering {
    a.as_deref()
        .map(str::as_bytes)
        .cmp(&b.as_deref().map(str::as_bytes))
}

/// A group's key: the values of its grouping columns.
type GroupKey = Vec<Option<String>>;

/// How values are grouped: by a time bucket (its start in microseconds, as text, is
/// the group key's first part), then by dimension columns.
struct ValueGroups<'a> {
    bucket: Option<Bucket>,
    dims: &'a [&'a str],
}

impl ValueGroups<'_> {
    /// The select list of the groups over `alias.time_column`, ending with ", ".
    fn select(&self, time: &str, alias: &str) -> String {
        let bucket = self.bucket.map(|b| {
            let (width, offset) = b.span();
            format!("CAST({time} - ((({time} - {offset}) % {width}) + {width}) % {width} AS TEXT) AS b, ")
        });
        let dims: String = self
            .dims
            .iter()
            .enumerate()
            .map(|(i, dim)| match (alias, *dim) {
                ("h", "model") => format!("h.model AS g{i}, "),
                ("h", other) => format!("NULLIF(h.{other}, '') AS g{i}, "),
                (_, other) => format!("{alias}.{other} AS g{i}, "),
            })
            .collect();
        bucket.unwrap_or_default() + &dims
    }

    fn len(&self) -> usize {
        self.dims.len() + usize::from(self.bucket.is_some())
    }
}

/// The values of `column` (`latency_ms` or `ttft_ms`) per group `by`; groups without
/// a value are left out.
async fn values(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
    by: &ValueGroups<'_>,
    column: &str,
) -> Result<HashMap<GroupKey, crate::SortedRuns>, ReadError> {
    let mut by_group: HashMap<GroupKey, crate::SortedRuns> = HashMap::new();
    for sql in value_queries(store.dialect(), f, by, column) {
        let rows = store
            .read_values(&sql.text, &sql.params)
            .await
            .map_err(read_error)?;
        for (group, values) in rows {
            by_group.entry(group).or_default().append(values);
        }
    }
    by_group.retain(|_, values| !values.is_empty());
    Ok(by_group)
}

/// Exact percentiles `ps` (in percent) of each group's values: the group's count and
/// its percentiles.
fn percentiles_of(groups: &RunGroups<'_>, ps: &[u64]) -> HashMap<GroupKey, (u64, Vec<f64>)> {
    groups
        .iter()
        .map(|(key, runs)| {
            let n = runs.iter().map(|run| run.len()).sum::<usize>() as u64;
            let percentiles = crate::latency_runs::percentiles_of_runs(runs, ps);
            (key.clone(), (n, percentiles))
        })
        .collect()
}

/// Groups of sorted runs, borrowed from what [`values`] read: a group's runs can be
/// gathered from several groups read (a model's from every bucket) without copying.
type RunGroups<'a> = HashMap<GroupKey, Vec<&'a [f64]>>;

/// The runs of `groups` regrouped by the key parts at `parts` of each key.
fn regroup<'a>(groups: &'a HashMap<GroupKey, crate::SortedRuns>, parts: &[usize]) -> RunGroups<'a> {
    let mut out: RunGroups<'a> = HashMap::new();
    for (key, runs) in groups {
        let key: GroupKey = parts
            .iter()
            .map(|i| key.get(*i).cloned().flatten())
            .collect();
        out.entry(key).or_default().extend(runs.runs());
    }
    out
}

/// A statement with its parameters.
struct Statement {
    text: String,
    params: Vec<Value>,
}

/// The statements whose rows are (group…, packed values of `column`) and whose union is
/// every value `f` selects. When the latency runs can answer `f`, the whole granules
/// of the range come from the runs (days, then hours at the edges; hours only for
/// hourly buckets; days when grouping or filtering by key) and only the partial
/// granules at its edges from the events; otherwise everything comes from the events.
fn value_queries(
    d: Dialect,
    f: &AnalyticsFilter,
    by: &ValueGroups<'_>,
    column: &str,
) -> Vec<Statement> {
    let by_key = by.dims.contains(&"api_key_hash") || f.api_key_hash.is_some();
    let (tiers, answers): (&[Tier], bool) = if by_key {
        let only_keys = by.dims.iter().all(|d| *d == "api_key_hash");
        // Daily runs cannot say which hour a value is of.
        let answers = only_keys
            && f.provider.is_none()
            && f.model.is_none()
            && by.bucket != Some(Bucket::Hour);
        (&[("llm_key_daily_runs", crate::rows::DAY_MICROS)], answers)
    } else if by.bucket == Some(Bucket::Hour) {
        (&RUN_TIERS[1..], true)
    } else {
        (RUN_TIERS, true)
    };
    let Some((granules, edges)) =
        split_into_tiers(f, tiers).filter(|_| answers && rollups_answer(f))
    else {
        return vec![event_values(d, f, by, column)];
    };
    let values = if column == "ttft_ms" {
        "ttfts"
    } else {
        "latencies"
    };
    let mut statements: Vec<Statement> = granules
        .into_iter()
        .map(|(table, granule_range)| {
            let mut sql = Sql::new(d);
            let conditions = sql.rollup_key_conditions(&granule_range);
            Statement {
                text: format!(
                    "SELECT {}h.{values} FROM {table} h{}",
                    by.select("h.hour", "h"),
                    if conditions.is_empty() {
                        String::new()
                    } else {
                        format!(" WHERE {}", conditions.join(" AND "))
                    }
                ),
                params: sql.params,
            }
        })
        .collect();
    statements.extend(edges.iter().map(|edge| event_values(d, edge, by, column)));
    statements
}

/// The values of `column` per group `by`, packed, straight from the events.
fn event_values(d: Dialect, f: &AnalyticsFilter, by: &ValueGroups<'_>, column: &str) -> Statement {
    let mut sql = Sql::new(d);
    let filter = sql.filter(f);
    let group_by = if by.len() == 0 {
        String::new()
    } else {
        format!(
            " GROUP BY {}",
            (1..=by.len())
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Statement {
        text: format!(
            "SELECT {}{} FROM events e WHERE {filter} AND e.{column} IS NOT NULL{group_by}",
            by.select(d.ts_micros(), "e"),
            d.packed(&format!("e.{column}"))
        ),
        params: sql.params,
    }
}

/// Usage and cost totals.
pub(crate) async fn usage_summary(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
) -> Result<UsageSummary, ReadError> {
    let mut sql = Sql::new(store.dialect());
    let rollup = match f.api_key_hash {
        None => sql.hourly_source(f, None),
        Some(_) => sql.key_daily_source(f),
    };
    let statement = if let Some(source) = rollup {
        format!(
            "SELECT sum(h.calls) AS c0, sum(h.input_tokens) AS c1, sum(h.output_tokens) AS c2,
                    sum(h.total_tokens) AS c3, sum(h.cache_read_tokens) AS c4,
                    sum(h.cache_write_tokens) AS c5, sum(h.reasoning_tokens) AS c6,
                    sum(h.cost_usd) AS c7, sum(h.reported_cost_usd) AS c8,
                    sum(h.computed_cost_usd) AS c9, sum(h.errors) AS c10
             FROM {source}"
        )
    } else {
        let filter = sql.filter(f);
        format!(
            "SELECT count(*) AS c0, sum(e.input_tokens) AS c1, sum(e.output_tokens) AS c2,
                sum(e.total_tokens) AS c3, sum(e.cache_read_tokens) AS c4,
                sum(e.cache_write_tokens) AS c5, sum(e.reasoning_tokens) AS c6,
                sum(e.cost_usd) AS c7, sum(e.reported_cost_usd) AS c8, sum(e.computed_cost_usd) AS c9,
                sum(CASE WHEN {FAILED} THEN 1 ELSE 0 END) AS c10
         FROM events e WHERE {filter}"
        )
    };
    let r = store
        .query(&statement, &sql.params)
        .await
        .map_err(read_error)?;
    let row = r.rows.first().cloned().unwrap_or_default();
    let get = |i: usize| row.get(i).cloned().unwrap_or(Value::Null);
    let calls = int(&get(0));
    let errors = int(&get(10));
    Ok(UsageSummary {
        calls,
        input_tokens: int(&get(1)),
        output_tokens: int(&get(2)),
        total_tokens: int(&get(3)),
        cache_read_tokens: int(&get(4)),
        cache_write_tokens: int(&get(5)),
        reasoning_tokens: int(&get(6)),
        cost_usd: float(&get(7)),
        reported_cost_usd: float(&get(8)),
        computed_cost_usd: float(&get(9)),
        errors,
        error_rate: rate(errors, calls),
    })
}

/// Usage and cost per time bucket (and group), oldest first. (Integer sums are cast to
/// `BIGINT`: PostgreSQL sums them as `numeric`, which would send the many rows of an
/// hourly series through `row_to_json`.)
pub(crate) async fn usage_series(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
    group_by: GroupBy,
    bucket: Bucket,
) -> Result<Vec<SeriesPoint>, ReadError> {
    let d = store.dialect();
    let mut sql = Sql::new(d);
    let (width, offset) = bucket.span();
    let rollup = match group_by {
        // The hourly roll-up has no key, and the daily one no hours and no calls
        // without a key (a group of their own here).
        GroupBy::Key => None,
        _ => sql.hourly_source(f, Some(bucket)),
    };
    let statement = if let Some(source) = rollup {
        format!(
            "SELECT h.hour - (((h.hour - {offset}) % {width}) + {width}) % {width} AS b, {g} AS g,
                    CAST(sum(h.calls) AS BIGINT) AS c2,
                    CAST(sum(h.input_tokens) AS BIGINT) AS c3,
                    CAST(sum(h.output_tokens) AS BIGINT) AS c4,
                    CAST(sum(h.total_tokens) AS BIGINT) AS c5, sum(h.cost_usd) AS c6
             FROM {source} GROUP BY 1, 2",
            g = group_by.rollup_expr(),
        )
    } else {
        let filter = sql.filter(f);
        let ts = d.ts_micros();
        format!(
            "SELECT {ts} - ((({ts} - {offset}) % {width}) + {width}) % {width} AS b, {g} AS g,
                count(*) AS c2, CAST(sum(e.input_tokens) AS BIGINT) AS c3,
                CAST(sum(e.output_tokens) AS BIGINT) AS c4,
                CAST(sum(e.total_tokens) AS BIGINT) AS c5, sum(e.cost_usd) AS c6
         FROM events e WHERE {filter} GROUP BY 1, 2",
            g = group_by.expr(),
        )
    };
    let r = store
        .query(&statement, &sql.params)
        .await
        .map_err(read_error)?;
    let mut points: Vec<SeriesPoint> = r
        .rows
        .iter()
        .map(|row| SeriesPoint {
            bucket: Timestamp::from_micros(row[0].as_i64().unwrap_or_default()),
            group: opt_text(&row[1]),
            calls: int(&row[2]),
            input_tokens: int(&row[3]),
            output_tokens: int(&row[4]),
            total_tokens: int(&row[5]),
            cost_usd: float(&row[6]),
        })
        .collect();
    points.sort_by(|a, b| {
        a.bucket
            .cmp(&b.bucket)
            .then_with(|| group_order(&a.group, &b.group))
    });
    Ok(points)
}

/// Per provider and model, most calls first.
pub(crate) async fn model_stats(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
) -> Result<Vec<ModelStats>, ReadError> {
    let by = ValueGroups {
        bucket: None,
        dims: &["provider", "model"],
    };
    let (mut stats, latency) =
        tokio::try_join!(model_totals(store, f), values(store, f, &by, "latency_ms"),)?;
    set_p95(&mut stats, &regroup(&latency, &[0, 1]));
    Ok(stats)
}

/// Sets each model's p95 latency from `latency` grouped by (provider, model).
fn set_p95(stats: &mut [ModelStats], latency: &RunGroups<'_>) {
    let p95 = percentiles_of(latency, &[95]);
    for m in stats {
        m.p95_latency_ms = p95
            .get(&vec![m.provider.clone(), Some(m.model.clone())])
            .map(|(_, v)| v[0]);
    }
}

/// Per provider and model, most calls first, without percentiles (`p95_latency_ms`
/// left `None`).
async fn model_totals(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
) -> Result<Vec<ModelStats>, ReadError> {
    let mut sql = Sql::new(store.dialect());
    let statement = if let Some(source) = sql.hourly_source(f, None) {
        format!(
            "SELECT NULLIF(h.provider, '') AS c0, h.model AS c1, sum(h.calls) AS c2,
                    sum(h.input_tokens) AS c3, sum(h.output_tokens) AS c4,
                    sum(h.cache_read_tokens) AS c5, sum(h.cache_write_tokens) AS c6,
                    sum(h.total_tokens) AS c7, sum(h.cost_usd) AS c8, sum(h.latency_sum) AS c9,
                    sum(h.latency_count) AS c10, sum(h.errors) AS c11
             FROM {source} GROUP BY h.provider, h.model"
        )
    } else {
        let filter = sql.filter(f);
        format!(
            "SELECT e.provider AS c0, e.model AS c1, count(*) AS c2, sum(e.input_tokens) AS c3,
                sum(e.output_tokens) AS c4, sum(e.cache_read_tokens) AS c5,
                sum(e.cache_write_tokens) AS c6, sum(e.total_tokens) AS c7, sum(e.cost_usd) AS c8,
                sum(e.latency_ms) AS c9, count(e.latency_ms) AS c10,
                sum(CASE WHEN {FAILED} THEN 1 ELSE 0 END) AS c11
         FROM events e WHERE {filter} GROUP BY e.provider, e.model"
        )
    };
    let r = store
        .query(&statement, &sql.params)
        .await
        .map_err(read_error)?;
    let mut stats: Vec<ModelStats> = r
        .rows
        .iter()
        .map(|row| {
            let (provider, model) = (opt_text(&row[0]), opt_text(&row[1]).unwrap_or_default());
            let calls = int(&row[2]);
            let with_latency = int(&row[10]);
            ModelStats {
                p95_latency_ms: None,
                provider,
                model,
                calls,
                input_tokens: int(&row[3]),
                output_tokens: int(&row[4]),
                cache_read_tokens: int(&row[5]),
                cache_write_tokens: int(&row[6]),
                total_tokens: int(&row[7]),
                cost_usd: float(&row[8]),
                avg_latency_ms: (with_latency > 0).then(|| float(&row[9]) / with_latency as f64),
                error_rate: rate(int(&row[11]), calls),
            }
        })
        .collect();
    stats.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| group_order(&a.provider, &b.provider))
            .then_with(|| a.model.as_bytes().cmp(b.model.as_bytes()))
    });
    Ok(stats)
}

/// Per API key hash (calls without a key left out), most calls first.
pub(crate) async fn key_stats(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
) -> Result<Vec<KeyStats>, ReadError> {
    let mut sql = Sql::new(store.dialect());
    let statement = if let Some(source) = sql.key_daily_source(f) {
        format!(
            "SELECT h.api_key_hash AS c0, sum(h.calls) AS c1, sum(h.total_tokens) AS c2, sum(h.cost_usd) AS c3
             FROM {source} GROUP BY h.api_key_hash"
        )
    } else {
        let filter = sql.filter(f);
        format!(
            "SELECT e.api_key_hash AS c0, count(*) AS c1, sum(e.total_tokens) AS c2, sum(e.cost_usd) AS c3
             FROM events e WHERE {filter} AND e.api_key_hash IS NOT NULL GROUP BY e.api_key_hash"
        )
    };
    let r = store
        .query(&statement, &sql.params)
        .await
        .map_err(read_error)?;
    let mut stats: Vec<KeyStats> = r
        .rows
        .iter()
        .map(|row| KeyStats {
            api_key_hash: opt_text(&row[0]).unwrap_or_default(),
            calls: int(&row[1]),
            total_tokens: int(&row[2]),
            cost_usd: float(&row[3]),
        })
        .collect();
    stats.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| a.api_key_hash.as_bytes().cmp(b.api_key_hash.as_bytes()))
    });
    Ok(stats)
}

/// Exact latency and time-to-first-token percentiles per group.
pub(crate) async fn latency_percentiles(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
    group_by: GroupBy,
) -> Result<Vec<LatencyStats>, ReadError> {
    let dims: Vec<&str> = group_by.column().into_iter().collect();
    let by = ValueGroups {
        bucket: None,
        dims: &dims,
    };
    Ok(grouped_stats(latency_groups(store, f, &by).await?))
}

/// Exact latency and time-to-first-token percentiles per time bucket, oldest first
/// (buckets without a call with a latency or a time to first token left out): one
/// read of the values, where asking for each bucket would read them once per bucket.
pub(crate) async fn latency_series(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
    bucket: Bucket,
) -> Result<Vec<LatencyPoint>, ReadError> {
    let by = ValueGroups {
        bucket: Some(bucket),
        dims: &[],
    };
    Ok(latency_points(latency_groups(store, f, &by).await?))
}

/// Buckets' points, oldest first, from percentiles grouped by bucket alone.
fn latency_points(groups: Vec<(GroupKey, LatencyStats)>) -> Vec<LatencyPoint> {
    let mut points: Vec<LatencyPoint> = groups
        .into_iter()
        .filter_map(|(key, latency)| latency_point(&key, latency))
        .collect();
    points.sort_by_key(|p| p.bucket);
    points
}

/// Groups' stats keyed by their one key part, as [`latency_percentiles`] answers them.
fn grouped_stats(groups: Vec<(GroupKey, LatencyStats)>) -> Vec<LatencyStats> {
    groups
        .into_iter()
        .map(|(key, stats)| LatencyStats {
            group: key.first().cloned().flatten(),
            ..stats
        })
        .collect()
}

/// The stats page's models, latency by model and latency over time, from one read of
/// the latencies and one of the times to first token grouped by bucket, provider and
/// model (the three answers alone read them five times).
pub(crate) async fn latency_overview(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
    bucket: Bucket,
) -> Result<LatencyOverview, ReadError> {
    let by = ValueGroups {
        bucket: Some(bucket),
        dims: &["provider", "model"],
    };
    let (mut models, latency, ttft) = tokio::try_join!(
        model_totals(store, f),
        values(store, f, &by, "latency_ms"),
        values(store, f, &by, "ttft_ms"),
    )?;
    set_p95(&mut models, &regroup(&latency, &[1, 2]));
    let by_model = latency_stats(&regroup(&latency, &[2]), &regroup(&ttft, &[2]));
    let series = latency_stats(&regroup(&latency, &[0]), &regroup(&ttft, &[0]));
    Ok(LatencyOverview {
        models,
        by_model: grouped_stats(by_model),
        series: latency_points(series),
    })
}

/// The percentiles of latency and time to first token, the two column's values
/// asked for.
const LATENCY_PERCENTILES: [u64; 4] = [50, 90, 95, 99];
const TTFT_PERCENTILES: [u64; 2] = [50, 95];

/// Latency and time-to-first-token percentiles per group `by` (the stats' `group` left
/// empty), in group order.
async fn latency_groups(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
    by: &ValueGroups<'_>,
) -> Result<Vec<(GroupKey, LatencyStats)>, ReadError> {
    // Two reads at once: each backend serves them on connections of their own.
    let (latency, ttft) = tokio::try_join!(
        values(store, f, by, "latency_ms"),
        values(store, f, by, "ttft_ms"),
    )?;
    let all: Vec<usize> = (0..by.len()).collect();
    Ok(latency_stats(
        &regroup(&latency, &all),
        &regroup(&ttft, &all),
    ))
}

/// Latency and time-to-first-token percentiles of groups of values (the stats' `group`
/// left empty), in group order.
fn latency_stats(latency: &RunGroups<'_>, ttft: &RunGroups<'_>) -> Vec<(GroupKey, LatencyStats)> {
    let latency = percentiles_of(latency, &LATENCY_PERCENTILES);
    let ttft = percentiles_of(ttft, &TTFT_PERCENTILES);
    let mut keys: Vec<GroupKey> = latency.keys().chain(ttft.keys()).cloned().collect();
    keys.sort_by(|a, b| {
        a.iter()
            .zip(b.iter())
            .map(|(x, y)| group_order(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    keys.dedup();
    keys.into_iter()
        .map(|key| {
            let l = latency.get(&key);
            let t = ttft.get(&key);
            let at = |v: Option<&(u64, Vec<f64>)>, i: usize| v.map(|(_, values)| values[i]);
            let stats = LatencyStats {
                group: None,
                count: l.map_or(0, |(n, _)| *n),
                p50_ms: at(l, 0),
                p90_ms: at(l, 1),
                p95_ms: at(l, 2),
                p99_ms: at(l, 3),
                ttft_p50_ms: at(t, 0),
                ttft_p95_ms: at(t, 1),
            };
            (key, stats)
        })
        .collect()
}

/// A bucket's point: its key holds the bucket's start in microseconds, as text.
fn latency_point(key: &GroupKey, latency: LatencyStats) -> Option<LatencyPoint> {
    let start = key.first().cloned().flatten()?.parse::<i64>().ok()?;
    Some(LatencyPoint {
        bucket: Timestamp::from_micros(start),
        latency,
    })
}

/// Failures per group.
pub(crate) async fn error_rates(
    store: &(impl SqlQuery + ?Sized),
    f: &AnalyticsFilter,
    group_by: GroupBy,
) -> Result<Vec<ErrorStats>, ReadError> {
    let mut sql = Sql::new(store.dialect());
    let rollup = match group_by {
        // Calls without a key are a group of their own, which the per-key roll-up lacks.
        GroupBy::Key => None,
        _ => sql.hourly_source(f, None),
    };
    let statement = if let Some(source) = rollup {
        format!(
            "SELECT {g} AS c0, sum(h.calls) AS c1, sum(h.errors) AS c2, sum(h.http_4xx) AS c3,
                    sum(h.http_5xx) AS c4
             FROM {source} GROUP BY 1",
            g = group_by.rollup_expr()
        )
    } else {
        let filter = sql.filter(f);
        format!(
        "SELECT {g} AS c0, count(*) AS c1, sum(CASE WHEN {FAILED} THEN 1 ELSE 0 END) AS c2,
                sum(CASE WHEN e.response_status >= 400 AND e.response_status < 500 THEN 1 ELSE 0 END) AS c3,
                sum(CASE WHEN e.response_status >= 500 THEN 1 ELSE 0 END) AS c4
         FROM events e WHERE {filter} GROUP BY 1",
        g = group_by.expr()
        )
    };
    let r = store
        .query(&statement, &sql.params)
        .await
        .map_err(read_error)?;
    let mut stats: Vec<ErrorStats> = r
        .rows
        .iter()
        .map(|row| {
            let (calls, errors) = (int(&row[1]), int(&row[2]));
            ErrorStats {
                group: opt_text(&row[0]),
                calls,
                errors,
                http_4xx: int(&row[3]),
                http_5xx: int(&row[4]),
                error_rate: rate(errors, calls),
            }
        })
        .collect();
    stats.sort_by(|a, b| group_order(&a.group, &b.group));
    Ok(stats)
}
