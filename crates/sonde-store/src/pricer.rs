//! What a call costs, as the caller prices it.

use std::sync::Arc;

use sonde_model::LlmCall;

/// The cost in US dollars of an LLM call by the caller's price table (`None` for a model
/// it does not price). A store given one at open time keeps each call's cost as
/// `computed_cost_usd` (used where the call reports none); a store without one computes
/// no cost. The store knows no prices itself: `sonde` passes sonde-pricing's table.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use sonde_model::*;
/// use sonde_store::{AnalyticsFilter, CallPricer, StoreUrl};
/// let per_token: CallPricer = Arc::new(|call: &LlmCall| Some(call.input_tokens as f64 * 1e-6));
/// let store = StoreUrl::SqliteMemory.open_with(Some(per_token)).await?;
/// let call = LlmCall { model_name: "m".into(), input_tokens: 1000, ..Default::default() };
/// store.write(&[Record::new(Context::session("s"), Body::Event(Event::Llm(call)))]).await?;
/// let summary = store.usage_summary(&AnalyticsFilter::default()).await?;
/// assert!((summary.computed_cost_usd - 0.001).abs() < 1e-12);
/// # Ok(()) }
/// ```
pub type CallPricer = Arc<dyn Fn(&LlmCall) -> Option<f64> + Send + Sync>;
