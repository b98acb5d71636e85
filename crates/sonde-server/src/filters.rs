//! Query parameters as store filters, for the REST API and the dashboard alike: the
//! same names mean the same thing in both (so a dashboard URL's query works on the
//! API).
//!
//! Empty values count as absent (an HTML form sends its empty fields). Times are
//! RFC 3339, or a form's `YYYY-MM-DDTHH:MM` taken as UTC; `range=1h|24h|7d|30d` sets
//! `since` to that long ago.

use axum::http::StatusCode;
use serde_json::Value;
use sonde_model::{Status, Timestamp};
use sonde_store::{AnalyticsFilter, CallFilter, Scope, SessionFilter};

use crate::refusal::Refusal;

/// The query parameters of a request, in order, repeats kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

fn bad(name: &str, expected: &str, got: &str) -> Refusal {
    Refusal(
        StatusCode::BAD_REQUEST,
        "bad_parameter",
        format!("{name}: expected {expected}, got {got:?}"),
    )
}

/// The presets of `range`, and how far back each reaches.
pub(crate) const RANGES: [(&str, i64); 4] = [
    ("1h", 3_600),
    ("24h", 86_400),
    ("7d", 7 * 86_400),
    ("30d", 30 * 86_400),
];

impl Params {
    /// The last non-empty value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    fn time(&self, name: &str) -> Result<Option<Timestamp>, Refusal> {
        self.get(name)
            .map(|v| {
                v.parse::<Timestamp>()
                    .or_else(|_| format!("{v}:00Z").parse::<Timestamp>())
                    .map_err(|_| bad(name, "an RFC 3339 time", v))
            })
            .transpose()
    }

    fn number(&self, name: &str) -> Result<Option<f64>, Refusal> {
        self.get(name)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| bad(name, "a number", v))
            })
            .transpose()
    }

    fn flag(&self, name: &str) -> Result<bool, Refusal> {
        match self.get(name) {
            None | Some("0" | "false" | "no") => Ok(false),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some(other) => Err(bad(name, "true or false", other)),
        }
    }

    fn limit(&self, default: usize) -> Result<usize, Refusal> {
        self.get("limit")
            .map(|v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("limit", "a positive integer", v))
            })
            .transpose()
            .map(|l| l.unwrap_or(default))
    }

    /// `since`, or the start of `range` before `now`.
    fn since(&self, now: Timestamp) -> Result<Option<Timestamp>, Refusal> {
        if let Some(range) = self.get("range") {
            let Some((_, seconds)) = RANGES.iter().find(|(name, _)| *name == range) else {
                return Err(bad("range", "1h, 24h, 7d or 30d", range));
            };
            return Ok(Some(Timestamp::from_micros(
                now.as_micros() - seconds * 1_000_000,
            )));
        }
        self.time("since")
    }

    /// `meta=KEY=VALUE` pairs (VALUE as JSON, or else a string).
    fn metadata(&self) -> Result<Vec<(String, Value)>, Refusal> {
        self.0
            .iter()
            .filter(|(k, v)| k == "meta" && !v.trim().is_empty())
            .map(|(_, kv)| {
                let (key, value) = kv
                    .split_once('=')
                    .ok_or_else(|| bad("meta", "KEY=VALUE", kv))?;
                let value = serde_json::from_str(value.trim())
                    .unwrap_or_else(|_| Value::String(value.trim().to_owned()));
                Ok((key.trim().to_owned(), value))
            })
            .collect()
    }

    fn status(&self) -> Result<Option<Status>, Refusal> {
        match self.get("status") {
            None => Ok(None),
            Some("ok") => Ok(Some(Status::Ok)),
            Some("error") => Ok(Some(Status::Error)),
            Some(other) => Err(bad("status", "ok or error", other)),
        }
    }

    /// `source=claude-code|codex|...`: sessions whose metadata `source` is that.
    fn source(&self) -> Option<(String, Value)> {
        self.text("source")
            .map(|s| ("source".to_owned(), Value::String(s)))
    }

    /// The sessions filter: since / until / range, model, provider, source, meta, q,
    /// errors, min_cost, limit, cursor.
    pub(crate) fn sessions(&self, scope: Scope, now: Timestamp) -> Result<SessionFilter, Refusal> {
        let mut metadata = self.metadata()?;
        metadata.extend(self.source());
        Ok(SessionFilter {
            scope,
            since: self.since(now)?,
            until: self.time("until")?,
            metadata,
            model: self.text("model"),
            provider: self.text("provider"),
            search: self.text("q"),
            has_errors: self.flag("errors")?,
            min_cost_usd: self.number("min_cost")?,
            limit: self.limit(SessionFilter::DEFAULT_LIMIT)?,
            cursor: self.text("cursor"),
        })
    }

    /// The analytics filter: since / until / range, provider, model, key, gateway_key,
    /// session, meta, status.
    pub(crate) fn analytics(
        &self,
        scope: Scope,
        now: Timestamp,
    ) -> Result<AnalyticsFilter, Refusal> {
        Ok(AnalyticsFilter {
            scope,
            since: self.since(now)?,
            until: self.time("until")?,
            provider: self.text("provider"),
            model: self.text("model"),
            api_key_hash: self.text("key"),
            gateway_key_id: self.text("gateway_key"),
            session_id: self.text("session"),
            metadata: self.metadata()?,
            status: self.status()?,
        })
    }

    /// The calls filter: the analytics filter's, and failed, min_latency_ms,
    /// max_latency_ms, min_cost, max_cost, limit, cursor.
    pub(crate) fn calls(&self, scope: Scope, now: Timestamp) -> Result<CallFilter, Refusal> {
        Ok(CallFilter {
            calls: self.analytics(scope, now)?,
            failed: self.flag("failed")?,
            min_latency_ms: self.number("min_latency_ms")?,
            max_latency_ms: self.number("max_latency_ms")?,
            min_cost_usd: self.number("min_cost")?,
            max_cost_usd: self.number("max_cost")?,
            limit: self.limit(CallFilter::DEFAULT_LIMIT)?,
            cursor: self.text("cursor"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn empty_form_fields_filter_nothing() {
        let now = Timestamp::from_micros(0);
        let f = params(&[("model", ""), ("q", " "), ("min_cost", ""), ("errors", "")])
            .sessions(Scope::All, now)
            .map_err(|r| r.2);
        assert_eq!(f, Ok(SessionFilter::default()));
    }

    #[test]
    fn a_range_preset_sets_since_and_form_times_are_utc() {
        let now: Timestamp = "2026-01-02T00:00:00Z"
            .parse()
            .unwrap_or(Timestamp::from_micros(0));
        let f = params(&[("range", "24h"), ("until", "2026-01-01T12:30")])
            .calls(Scope::All, now)
            .map_err(|r| r.2);
        let f = f.unwrap_or_default();
        assert_eq!(
            f.calls.since.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            f.calls.until.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T12:30:00.000000Z")
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_parameter() {
        let now = Timestamp::from_micros(0);
        for (pairs, message) in [
            (
                vec![("range", "2y")],
                "range: expected 1h, 24h, 7d or 30d, got \"2y\"",
            ),
            (
                vec![("min_cost", "cheap")],
                "min_cost: expected a number, got \"cheap\"",
            ),
            (
                vec![("meta", "novalue")],
                "meta: expected KEY=VALUE, got \"novalue\"",
            ),
            (
                vec![("status", "meh")],
                "status: expected ok or error, got \"meh\"",
            ),
            (
                vec![("limit", "0")],
                "limit: expected a positive integer, got \"0\"",
            ),
        ] {
            let got = params(&pairs)
                .calls(Scope::All, now)
                .map(|_| ())
                .map_err(|r| r.2);
            assert_eq!(got, Err(message.to_owned()));
        }
    }

    #[test]
    fn metadata_and_source_become_metadata_filters() {
        let f = params(&[
            ("meta", "experiment=7"),
            ("meta", "user=u-1"),
            ("source", "codex"),
        ])
        .sessions(Scope::All, Timestamp::from_micros(0))
        .map_err(|r| r.2)
        .unwrap_or_default();
        assert_eq!(
            f.metadata,
            vec![
                ("experiment".to_owned(), Value::from(7)),
                ("user".to_owned(), Value::from("u-1")),
                ("source".to_owned(), Value::from("codex")),
            ]
        );
    }
}
