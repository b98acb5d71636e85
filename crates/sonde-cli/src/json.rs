//! `--json` output: pretty JSON on standard output, costs without float noise.

use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use crate::out::outln;

/// `value` with every cost (a number under a key ending in `cost_usd`) rounded to
/// 1e-9 USD: `0.30000000000000004` becomes `0.3` (as the Python package returns it).
pub fn rounded(value: Value) -> Value {
    sonde::json::round_costs(value)
}

/// `value` as pretty JSON, costs rounded, on standard output.
pub fn print(value: &impl Serialize) -> anyhow::Result<ExitCode> {
    outln!("{}", text(value)?)?;
    Ok(ExitCode::SUCCESS)
}

/// `value` as pretty JSON, costs rounded.
pub fn text(value: &impl Serialize) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&rounded(
        serde_json::to_value(value)?,
    ))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_lose_their_float_noise_and_nothing_else_changes() {
        let value = serde_json::json!({
            "cost_usd": 0.1 + 0.2,
            "models": [{"reported_cost_usd": 1.0000000004, "latency_ms": 0.1 + 0.2}],
        });
        assert_eq!(
            rounded(value).to_string(),
            r#"{"cost_usd":0.3,"models":[{"latency_ms":0.30000000000000004,"reported_cost_usd":1.0}]}"#
        );
    }
}
