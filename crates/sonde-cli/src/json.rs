//! `--json` output: pretty JSON on standard output, costs without float noise.

use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use crate::out::outln;

/// Costs are rounded to this many decimals of a dollar (a billionth of a USD).
const COST_DECIMALS: i32 = 9;

/// `value` with every cost (a number under a key ending in `cost_usd`) rounded to
/// 1e-9 USD: `0.30000000000000004` becomes `0.3`.
pub fn rounded(mut value: Value) -> Value {
    round_costs(&mut value, false);
    value
}

fn round_costs(value: &mut Value, is_cost: bool) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                round_costs(v, key.ends_with("cost_usd"));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| round_costs(v, is_cost)),
        Value::Number(n) if is_cost => {
            if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                let scale = 10f64.powi(COST_DECIMALS);
                let text = format!("{:.*}", COST_DECIMALS as usize, (f * scale).round() / scale);
                if let Some(rounded) = text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    *n = rounded;
                }
            }
        }
        _ => {}
    }
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
