//! Model prices and the cost of an LLM call.
//!
//! The shipped table is built from LiteLLM's `model_prices_and_context_window.json`
//! (MIT, Copyright (c) 2023 Berri AI; see `data/SOURCE.txt`) by
//! `scripts/update-prices.py`. User overrides come from a TOML or JSON file of prices
//! in USD per million tokens.
//!
//! Cost is the sum, over each token kind, of its count times its price — the token
//! convention makes the kinds disjoint: uncached input, cache reads, cache writes (the
//! one-hour part at its own price), output other than reasoning, and reasoning.
//!
//! ```
//! use sonde_model::LlmCall;
//! let prices = sonde_pricing::PriceTable::shipped();
//! let call = LlmCall { model_name: "claude-sonnet-4-5-20250929".into(), input_tokens: 1_000, output_tokens: 100, ..Default::default() };
//! let cost = prices.cost(&call).unwrap();
//! assert!((cost - (1_000.0 * 3e-6 + 100.0 * 15e-6)).abs() < 1e-12);
//! ```

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sonde_model::LlmCall;

/// Per-token prices of one model, in USD.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// The provider, when known.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Uncached input.
    #[serde(rename = "i", default)]
    pub input: Option<f64>,
    /// Output (and reasoning, unless priced apart).
    #[serde(rename = "o", default)]
    pub output: Option<f64>,
    /// Cache reads (default: the input price).
    #[serde(rename = "cr", default)]
    pub cache_read: Option<f64>,
    /// Cache writes, five-minute lifetime (default: the input price).
    #[serde(rename = "cw", default)]
    pub cache_write: Option<f64>,
    /// Cache writes, one-hour lifetime (default: the cache write price).
    #[serde(rename = "cw1h", default)]
    pub cache_write_1h: Option<f64>,
    /// Reasoning tokens (default: the output price).
    #[serde(rename = "r", default)]
    pub reasoning: Option<f64>,
    /// Prompts above this many tokens (input + cache read + cache write) are priced at
    /// the long-context prices, for every token of the call.
    #[serde(rename = "t", default)]
    pub long_context_threshold: Option<u64>,
    /// Long-context input price.
    #[serde(rename = "ti", default)]
    pub long_input: Option<f64>,
    /// Long-context output price.
    #[serde(rename = "to", default)]
    pub long_output: Option<f64>,
    /// Long-context cache read price.
    #[serde(rename = "tcr", default)]
    pub long_cache_read: Option<f64>,
    /// Long-context cache write price.
    #[serde(rename = "tcw", default)]
    pub long_cache_write: Option<f64>,
}

impl ModelPrice {
    /// The cost of `call` at these prices.
    ///
    /// ```
    /// let price = sonde_pricing::ModelPrice { input: Some(1e-6), output: Some(2e-6), ..Default::default() };
    /// let call = sonde_model::LlmCall { input_tokens: 10, output_tokens: 5, cache_read_tokens: 100, ..Default::default() };
    /// assert!((price.cost(&call) - (10.0 * 1e-6 + 5.0 * 2e-6 + 100.0 * 1e-6)).abs() < 1e-15);
    /// ```
    pub fn cost(&self, call: &LlmCall) -> f64 {
        let prompt = call
            .input_tokens
            .saturating_add(call.cache_read_tokens)
            .saturating_add(call.cache_write_tokens);
        let long = self.long_context_threshold.is_some_and(|t| prompt > t);
        let pick = |base: Option<f64>, tier: Option<f64>| if long { tier.or(base) } else { base };
        let input = pick(self.input, self.long_input).unwrap_or(0.0);
        let output = pick(self.output, self.long_output).unwrap_or(0.0);
        let cache_read = pick(self.cache_read, self.long_cache_read).unwrap_or(input);
        let cache_write = pick(self.cache_write, self.long_cache_write).unwrap_or(input);
        let cache_write_1h = self.cache_write_1h.unwrap_or(cache_write);
        let reasoning = self.reasoning.unwrap_or(output);
        let one_hour = call.cache_write_1h_tokens.min(call.cache_write_tokens);
        let reasoning_tokens = call.reasoning_tokens.min(call.output_tokens);
        call.input_tokens as f64 * input
            + call.cache_read_tokens as f64 * cache_read
            + (call.cache_write_tokens - one_hour) as f64 * cache_write
            + one_hour as f64 * cache_write_1h
            + (call.output_tokens - reasoning_tokens) as f64 * output
            + reasoning_tokens as f64 * reasoning
    }
}

/// Where a price came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum PriceSource {
    /// The user's price file.
    Override {
        /// The entry's name.
        entry: String,
    },
    /// The shipped table.
    Shipped {
        /// The entry's name.
        entry: String,
        /// How the model name led to it: `exact`, `prefix`, `without provider`,
        /// `provider-qualified entry`, `without date`.
        matched_by: &'static str,
    },
}

/// A matched price.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceMatch<'a> {
    /// The prices.
    pub price: &'a ModelPrice,
    /// The entry and how it was found.
    pub source: PriceSource,
}

/// Why a price file could not be read.
///
/// ```
/// let err = sonde_pricing::PriceTable::shipped().with_overrides("prices.toml", "[models.x]\ninput = \"cheap\"").unwrap_err();
/// assert!(err.to_string().starts_with("prices.toml: "));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct OverrideError {
    /// The file.
    pub file: String,
    /// What is wrong (with the line, for TOML).
    pub reason: String,
}

/// One override: prices in USD per **million** tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    provider: Option<String>,
    input: Option<f64>,
    output: Option<f64>,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    cache_write_1h: Option<f64>,
    reasoning: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideFile {
    models: HashMap<String, Override>,
}

/// Prices by model name, with the matching rules of [`PriceTable::find`].
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    shipped: HashMap<String, ModelPrice>,
    /// Provider-qualified entries by their bare model name:
    /// `anthropic.claude-opus-4-1-20250805-v1:0` and `bedrock/…` as `claude-opus-4-1-20250805`.
    aliases: HashMap<String, String>,
    overrides: HashMap<String, ModelPrice>,
}

/// The bare model name of a provider-qualified entry, if it is one.
fn bare_name(entry: &str) -> Option<String> {
    let mut bare = entry.rsplit('/').next().unwrap_or(entry);
    // Region and vendor qualifiers: `us.anthropic.claude-…`, `anthropic.claude-…`.
    for vendor in [
        "anthropic.",
        "openai.",
        "meta.",
        "mistral.",
        "cohere.",
        "amazon.",
    ] {
        if let Some(at) = bare.find(vendor) {
            bare = &bare[at + vendor.len()..];
        }
    }
    // Version suffixes: `-v1:0`, `-v1`.
    let bare = match bare.rfind("-v") {
        Some(at)
            if bare[at + 2..]
                .chars()
                .all(|c| c.is_ascii_digit() || c == ':')
                && at + 2 < bare.len() =>
        {
            &bare[..at]
        }
        _ => bare,
    };
    (bare != entry).then(|| bare.to_owned())
}

static SHIPPED: OnceLock<PriceTable> = OnceLock::new();
static GLOBAL: OnceLock<PriceTable> = OnceLock::new();

/// Cuts a dated snapshot suffix: `-20250514`, `-2024-08-06`, `@20250929`.
fn without_date(name: &str) -> Option<&str> {
    let bytes = name.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if bytes.len() > 9
        && (bytes[bytes.len() - 9] == b'-' || bytes[bytes.len() - 9] == b'@')
        && digits(&bytes[bytes.len() - 8..])
    {
        return Some(&name[..name.len() - 9]);
    }
    if bytes.len() > 11 {
        let tail = &bytes[bytes.len() - 11..];
        if tail[0] == b'-'
            && digits(&tail[1..5])
            && tail[5] == b'-'
            && digits(&tail[6..8])
            && tail[8] == b'-'
            && digits(&tail[9..])
        {
            return Some(&name[..name.len() - 11]);
        }
    }
    None
}

impl PriceTable {
    /// The shipped table (parsed once).
    pub fn shipped() -> &'static PriceTable {
        SHIPPED.get_or_init(|| {
            let shipped: HashMap<String, ModelPrice> =
                serde_json::from_str(include_str!("../data/prices.json")).unwrap_or_default();
            let mut entries: Vec<&String> = shipped.keys().collect();
            // Shorter (less qualified) entries win an alias.
            entries.sort_by(|a, b| (a.len(), *a).cmp(&(b.len(), *b)));
            let mut aliases = HashMap::new();
            for entry in entries {
                if let Some(bare) = bare_name(entry)
                    && !shipped.contains_key(&bare)
                {
                    aliases.entry(bare).or_insert_with(|| entry.clone());
                }
            }
            PriceTable {
                shipped,
                aliases,
                overrides: HashMap::new(),
            }
        })
    }

    /// The table the process uses: the shipped one, unless [`PriceTable::install`]
    /// set another first.
    pub fn global() -> &'static PriceTable {
        GLOBAL.get().unwrap_or_else(|| Self::shipped())
    }

    /// Makes `self` the process's table; false if a table was already installed.
    pub fn install(self) -> bool {
        GLOBAL.set(self).is_ok()
    }

    /// The shipped table plus the overrides in `text` (TOML, or JSON when it starts
    /// with `{`): `[models."name"]` with `input`, `output`, `cache_read`, `cache_write`,
    /// `cache_write_1h`, `reasoning` in USD per million tokens, and `provider`.
    pub fn with_overrides(&self, file: &str, text: &str) -> Result<PriceTable, OverrideError> {
        let fail = |reason: String| OverrideError {
            file: file.to_owned(),
            reason: reason.lines().next().unwrap_or_default().trim().to_owned(),
        };
        let parsed: OverrideFile = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| fail(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| {
                let line = e.span().map(|s| {
                    text.as_bytes()[..s.start.min(text.len())]
                        .iter()
                        .filter(|b| **b == b'\n')
                        .count()
                        + 1
                });
                fail(match line {
                    Some(line) => format!("line {line}: {}", e.message()),
                    None => e.message().to_owned(),
                })
            })?
        };
        let mut table = self.clone();
        for (name, o) in parsed.models {
            let per_token = |v: Option<f64>| v.map(|per_million| per_million / 1_000_000.0);
            table.overrides.insert(
                name,
                ModelPrice {
                    provider: o.provider,
                    input: per_token(o.input),
                    output: per_token(o.output),
                    cache_read: per_token(o.cache_read),
                    cache_write: per_token(o.cache_write),
                    cache_write_1h: per_token(o.cache_write_1h),
                    reasoning: per_token(o.reasoning),
                    ..Default::default()
                },
            );
        }
        Ok(table)
    }

    /// The price of `model`: a user override of that exact name; else in the shipped
    /// table the exact name, then the longest entry the name starts with (ending at a
    /// `-`, `.`, `:`, `@` or `/`), then the name without its provider prefix
    /// (`anthropic/claude-…`), then without a dated snapshot suffix (`-20250514`). Never
    /// the first entry that merely contains the name.
    ///
    /// ```
    /// let prices = sonde_pricing::PriceTable::shipped();
    /// let m = prices.find("anthropic/claude-sonnet-4-5").unwrap();
    /// assert_eq!(m.price.input, Some(3e-6));
    /// assert!(prices.find("no-such-model").is_none());
    /// ```
    pub fn find(&self, model: &str) -> Option<PriceMatch<'_>> {
        if let Some(price) = self.overrides.get(model) {
            return Some(PriceMatch {
                price,
                source: PriceSource::Override {
                    entry: model.to_owned(),
                },
            });
        }
        let shipped = |entry: &str, matched_by| {
            self.shipped
                .get_key_value(entry)
                .map(|(entry, price)| PriceMatch {
                    price,
                    source: PriceSource::Shipped {
                        entry: entry.clone(),
                        matched_by,
                    },
                })
        };
        if let Some(m) = shipped(model, "exact") {
            return Some(m);
        }
        let mut cut = model.len();
        while let Some(boundary) = model[..cut].rfind(['-', '.', ':', '@', '/']) {
            if let Some(m) = shipped(&model[..boundary], "prefix") {
                return Some(m);
            }
            cut = boundary;
        }
        if let Some((_, bare)) = model.split_once('/')
            && let Some(m) = self.find(bare)
        {
            let entry = match &m.source {
                PriceSource::Override { entry } | PriceSource::Shipped { entry, .. } => {
                    entry.clone()
                }
            };
            return Some(PriceMatch {
                price: m.price,
                source: match m.source {
                    PriceSource::Override { .. } => PriceSource::Override { entry },
                    PriceSource::Shipped { .. } => PriceSource::Shipped {
                        entry,
                        matched_by: "without provider",
                    },
                },
            });
        }
        let alias = |name: &str| {
            self.aliases.get(name).and_then(|entry| {
                self.shipped.get(entry).map(|price| PriceMatch {
                    price,
                    source: PriceSource::Shipped {
                        entry: entry.clone(),
                        matched_by: "provider-qualified entry",
                    },
                })
            })
        };
        if let Some(m) = alias(model) {
            return Some(m);
        }
        if let Some(undated) = without_date(model) {
            return shipped(undated, "without date").or_else(|| alias(undated));
        }
        None
    }

    /// The cost of `call` from its model's price; `None` when the model is unknown.
    pub fn cost(&self, call: &LlmCall) -> Option<f64> {
        self.find(&call.model_name).map(|m| m.price.cost(call))
    }

    /// How many models the table prices.
    pub fn len(&self) -> usize {
        self.shipped.len() + self.overrides.len()
    }

    /// Whether the table prices nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static PriceTable {
        PriceTable::shipped()
    }

    fn entry(m: Option<PriceMatch<'_>>) -> (String, &'static str) {
        match m.map(|m| m.source) {
            Some(PriceSource::Shipped { entry, matched_by }) => (entry, matched_by),
            Some(PriceSource::Override { entry }) => (entry, "override"),
            None => (String::new(), "none"),
        }
    }

    #[test]
    fn the_shipped_table_is_loaded() {
        assert!(table().len() > 3_000);
    }

    #[test]
    fn matching_prefers_exact_then_longest_prefix_then_aliases() {
        assert_eq!(entry(table().find("gpt-5")), ("gpt-5".into(), "exact"));
        assert_eq!(
            entry(table().find("gpt-5-mini")),
            ("gpt-5-mini".into(), "exact")
        );
        // The longest known prefix, not the first or shortest one.
        assert_eq!(
            entry(table().find("gpt-5-mini-some-future-suffix")).0,
            "gpt-5-mini"
        );
        assert_eq!(
            entry(table().find("claude-sonnet-4-5-20250929")),
            ("claude-sonnet-4-5-20250929".into(), "exact")
        );
        assert_eq!(
            entry(table().find("claude-opus-4-1-20250805")),
            (
                "anthropic.claude-opus-4-1-20250805-v1:0".into(),
                "provider-qualified entry"
            )
        );
        assert_eq!(
            entry(table().find("anthropic/claude-sonnet-4-5")),
            ("claude-sonnet-4-5".into(), "without provider")
        );
        // A name that merely contains a known one is not matched.
        assert_eq!(entry(table().find("my-gpt-5")).1, "none");
        assert_eq!(entry(table().find("<synthetic>")).1, "none");
    }

    #[test]
    fn dated_suffixes_are_recognised() {
        assert_eq!(without_date("claude-x-20250514"), Some("claude-x"));
        assert_eq!(without_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(without_date("model@20250929"), Some("model"));
        assert_eq!(without_date("gpt-5"), None);
    }

    #[test]
    fn every_token_kind_is_priced_once() {
        let price = ModelPrice {
            input: Some(1.0),
            output: Some(10.0),
            cache_read: Some(0.1),
            cache_write: Some(1.25),
            cache_write_1h: Some(2.0),
            reasoning: Some(20.0),
            ..Default::default()
        };
        let call = LlmCall {
            input_tokens: 3,
            cache_read_tokens: 100,
            cache_write_tokens: 40,
            cache_write_1h_tokens: 10,
            output_tokens: 7,
            reasoning_tokens: 2,
            ..Default::default()
        };
        let expected = 3.0 + 100.0 * 0.1 + 30.0 * 1.25 + 10.0 * 2.0 + 5.0 * 10.0 + 2.0 * 20.0;
        assert!((price.cost(&call) - expected).abs() < 1e-9);
    }

    #[test]
    fn long_prompts_use_the_long_context_prices() {
        let price = ModelPrice {
            input: Some(1.0),
            output: Some(2.0),
            long_context_threshold: Some(200_000),
            long_input: Some(3.0),
            long_output: Some(4.0),
            ..Default::default()
        };
        let short = LlmCall {
            input_tokens: 200_000,
            output_tokens: 1,
            ..Default::default()
        };
        let long = LlmCall {
            input_tokens: 150_000,
            cache_read_tokens: 50_001,
            output_tokens: 1,
            ..Default::default()
        };
        assert_eq!(price.cost(&short), 200_000.0 + 2.0);
        // cache reads have no long price of their own: they fall back to the long input price
        assert_eq!(price.cost(&long), 150_000.0 * 3.0 + 50_001.0 * 3.0 + 4.0);
    }

    #[test]
    fn overrides_win_and_bad_files_name_the_line() {
        let t = table()
            .with_overrides("p.toml", "[models.\"gpt-5\"]\ninput = 2.0\noutput = 8.0\n\n[models.\"in-house\"]\ninput = 0.5\n")
            .unwrap();
        let m = t.find("gpt-5").unwrap();
        assert_eq!(
            m.source,
            PriceSource::Override {
                entry: "gpt-5".into()
            }
        );
        assert_eq!(m.price.input, Some(2e-6));
        assert_eq!(t.find("in-house").unwrap().price.input, Some(5e-7));
        let json = table()
            .with_overrides("p.json", r#"{"models": {"x": {"output": 1}}}"#)
            .unwrap();
        assert_eq!(json.find("x").unwrap().price.output, Some(1e-6));
        let err = table()
            .with_overrides("p.toml", "[models.a]\ninput = 1\n\n[models.b]\nimput = 2\n")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("p.toml: line 5: unknown field `imput`"),
            "{err}"
        );
    }
}
