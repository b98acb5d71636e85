//! lash's token usage (`TraceTokenUsage`) in both of the shapes it has had.
//!
//! - Until July 2026 (schema 1 and early 2): `input_tokens` (cached ones included,
//!   the OpenAI way), `output_tokens`, `cached_input_tokens`, `reasoning_tokens`.
//! - Since lash's "normalize token usage buckets" (later schema 2 to 7): separate
//!   buckets `input_tokens` (uncached), `output_tokens` (reasoning included),
//!   `cache_read_input_tokens`, `cache_write_input_tokens`, `reasoning_output_tokens`
//!   — Sonde's own convention.

use serde_json::{Map, Value};
use sonde_model::LlmCall;

use crate::wire::{Reason, type_name};

/// Token counts in Sonde's convention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

impl Usage {
    /// Reads a usage object; `path` names it in errors.
    pub(crate) fn read(object: &Map<String, Value>, path: &str) -> Result<Self, Reason> {
        let count = |name: &str| -> Result<Option<u64>, Reason> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_i64() {
                    Some(n) if n >= 0 => Ok(Some(n.unsigned_abs())),
                    Some(n) => Err(format!("invalid field `{path}.{name}`: {n} is negative")),
                    None => Err(format!(
                        "invalid field `{path}.{name}`: expected an integer, found {}",
                        type_name(v)
                    )),
                },
            }
        };
        let input = count("input_tokens")?.unwrap_or(0);
        let output = count("output_tokens")?.unwrap_or(0);
        if let Some(cached) = count("cached_input_tokens")? {
            // The older shape: cached input counted inside `input_tokens`.
            return Ok(Self {
                input: input.saturating_sub(cached),
                output,
                cache_read: cached,
                cache_write: 0,
                reasoning: count("reasoning_tokens")?.unwrap_or(0),
            });
        }
        Ok(Self {
            input,
            output,
            cache_read: count("cache_read_input_tokens")?.unwrap_or(0),
            cache_write: count("cache_write_input_tokens")?.unwrap_or(0),
            reasoning: count("reasoning_output_tokens")?
                .or(count("reasoning_tokens")?)
                .unwrap_or(0),
        })
    }

    /// Sets these counts on an LLM call.
    pub(crate) fn apply(self, call: &mut LlmCall) {
        call.input_tokens = self.input;
        call.output_tokens = self.output;
        call.cache_read_tokens = self.cache_read;
        call.cache_write_tokens = self.cache_write;
        call.reasoning_tokens = self.reasoning;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn read(value: Value) -> Result<Usage, Reason> {
        let Value::Object(map) = value else {
            unreachable!()
        };
        Usage::read(&map, "usage")
    }

    #[test]
    fn the_older_shape_counts_cached_input_inside_input() {
        let usage = read(json!({"input_tokens": 13, "output_tokens": 17,
            "cached_input_tokens": 2, "reasoning_tokens": 4}))
        .unwrap();
        assert_eq!(
            usage,
            Usage {
                input: 11,
                output: 17,
                cache_read: 2,
                cache_write: 0,
                reasoning: 4
            }
        );
    }

    #[test]
    fn the_bucketed_shape_is_sondes_convention() {
        let usage = read(json!({"input_tokens": 12, "output_tokens": 13,
            "cache_read_input_tokens": 5, "cache_write_input_tokens": 4,
            "reasoning_output_tokens": 3}))
        .unwrap();
        let mut call = LlmCall::default();
        usage.apply(&mut call);
        assert_eq!(call.total_tokens(), 34);
        assert_eq!(call.reasoning_tokens, 3);
    }

    #[test]
    fn bad_counts_name_the_field() {
        assert_eq!(
            read(json!({"input_tokens": -1})).unwrap_err(),
            "invalid field `usage.input_tokens`: -1 is negative"
        );
        assert_eq!(
            read(json!({"output_tokens": "9"})).unwrap_err(),
            "invalid field `usage.output_tokens`: expected an integer, found a string"
        );
    }
}
