//! What a session's events add up to: calls, tool calls, errors, tokens and cost.

use serde::{Deserialize, Serialize};

use crate::Event;

/// What a session's events add up to, in Sonde's token convention (input without the
/// cache). An export's session span carries them; a sync that sends a session's end
/// after its events counts them as they pass.
///
/// ```
/// use sonde_model::{Event, LlmCall, SessionTotals};
/// let mut totals = SessionTotals::default();
/// totals.add(&Event::Llm(LlmCall { input_tokens: 3, cost_usd: Some(0.5), ..Default::default() }));
/// assert_eq!((totals.llm_calls, totals.input_tokens, totals.cost_usd), (1, 3, Some(0.5)));
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionTotals {
    /// LLM calls.
    pub llm_calls: u64,
    /// Tool calls (runtime events).
    pub tool_calls: u64,
    /// Events that failed.
    pub errors: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Input tokens read from the cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the cache.
    pub cache_write_tokens: u64,
    /// The part of those written with a one-hour lifetime.
    pub cache_write_1h_tokens: u64,
    /// The reasoning part of the output.
    pub reasoning_tokens: u64,
    /// Cost in US dollars, when any call reported one.
    pub cost_usd: Option<f64>,
}

impl SessionTotals {
    /// Counts one event.
    pub fn add(&mut self, event: &Event) {
        match event {
            Event::Llm(c) => {
                self.llm_calls += 1;
                self.input_tokens = self.input_tokens.saturating_add(c.input_tokens);
                self.output_tokens = self.output_tokens.saturating_add(c.output_tokens);
                self.cache_read_tokens = self.cache_read_tokens.saturating_add(c.cache_read_tokens);
                self.cache_write_tokens =
                    self.cache_write_tokens.saturating_add(c.cache_write_tokens);
                self.cache_write_1h_tokens = self
                    .cache_write_1h_tokens
                    .saturating_add(c.cache_write_1h_tokens);
                self.reasoning_tokens = self.reasoning_tokens.saturating_add(c.reasoning_tokens);
                if let Some(cost) = c.cost_usd {
                    self.cost_usd = Some(self.cost_usd.unwrap_or(0.0) + cost);
                }
            }
            Event::Runtime(_) => self.tool_calls += 1,
            _ => {}
        }
        if !event.status().is_ok() {
            self.errors += 1;
        }
    }
}
