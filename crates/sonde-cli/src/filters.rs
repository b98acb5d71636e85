//! The filters of LLM calls every command that reads them takes (`sonde stats ...`,
//! `sonde calls`): the analytics filter of the library, flag for field.

use clap::{Args, ValueEnum};
use serde_json::Value;
use sonde::store::{AnalyticsFilter, Scope};

use crate::time::{Zone, parse_time};

/// A parameter or metadata value: JSON if it parses, else the text itself.
pub fn json_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// `--meta KEY=VALUE` flags as metadata pairs; the error names the bad one.
pub fn metadata(pairs: &[String]) -> anyhow::Result<Vec<(String, Value)>> {
    pairs
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), json_or_text(v)))
                .ok_or_else(|| {
                    crate::exit::usage(format!("invalid --meta {kv:?}: expected KEY=VALUE"))
                })
        })
        .collect()
}

/// A call's status.
#[derive(Clone, Copy, ValueEnum)]
pub enum CallStatus {
    /// Succeeded.
    Ok,
    /// Failed.
    Error,
}

/// Which LLM calls.
#[derive(Args)]
pub struct CallArgs {
    /// Calls at or after this time: a date (2026-01-01), a date-time
    /// (2026-01-01T10:00, RFC 3339) or a span back from now (30m, 12h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Calls before this time (as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// The time zone of times printed and of dates without an offset: an IANA name or
    /// UTC (default: the local one). Buckets are UTC.
    #[arg(long)]
    pub tz: Option<String>,
    /// Only this provider.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only this model.
    #[arg(long)]
    pub model: Option<String>,
    /// Only this API key hash.
    #[arg(long)]
    pub key: Option<String>,
    /// Only this gateway key.
    #[arg(long)]
    pub gateway_key: Option<String>,
    /// Only this session.
    #[arg(long)]
    pub session: Option<String>,
    /// Only calls of sessions whose metadata has KEY=VALUE (VALUE as JSON, or else a
    /// string); repeat for more.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// Only calls with this status.
    #[arg(long, value_enum)]
    pub status: Option<CallStatus>,
}

impl CallArgs {
    /// The zone of `--tz`.
    pub fn zone(&self) -> anyhow::Result<Zone> {
        Zone::parse(self.tz.as_deref())
    }

    /// The library's filter of these flags.
    pub fn filter(&self) -> anyhow::Result<AnalyticsFilter> {
        let zone = self.zone()?;
        let time =
            |text: &Option<String>| text.as_deref().map(|t| parse_time(t, &zone)).transpose();
        Ok(AnalyticsFilter {
            scope: Scope::All,
            since: time(&self.since)?,
            until: time(&self.until)?,
            provider: self.provider.clone(),
            model: self.model.clone(),
            api_key_hash: self.key.clone(),
            gateway_key_id: self.gateway_key.clone(),
            session_id: self.session.clone(),
            metadata: metadata(&self.metadata)?,
            status: self.status.map(|s| match s {
                CallStatus::Ok => sonde::Status::Ok,
                CallStatus::Error => sonde::Status::Error,
            }),
        })
    }
}
