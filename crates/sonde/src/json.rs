//! Reports as JSON, as `--json` prints them and the Python package returns them: costs
//! without float noise.

use serde_json::Value;

/// Costs are rounded to this many decimals of a dollar (a billionth of a USD).
pub const COST_DECIMALS: i32 = 9;

/// `value` with every cost (a number under a key ending in `cost_usd`) rounded to
/// 1e-9 USD: `0.30000000000000004` becomes `0.3`.
///
/// ```
/// let v = sonde::json::round_costs(serde_json::json!({"cost_usd": 0.1 + 0.2, "n": 0.1 + 0.2}));
/// assert_eq!(v, serde_json::json!({"cost_usd": 0.3, "n": 0.30000000000000004}));
/// ```
pub fn round_costs(mut value: Value) -> Value {
    round(&mut value, false);
    value
}

fn round(value: &mut Value, is_cost: bool) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                round(v, key.ends_with("cost_usd"));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| round(v, is_cost)),
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
