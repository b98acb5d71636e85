use serde_json::Value;

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("{path}.{k} dropped ({v})")),
                }
            }
            for k in y.keys() {
                if !x.contains_key(k) {
                    out.push(format!("{path}.{k} added"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: {a} != {b}")),
    }
}

macro_rules! check {
    ($krate:ident, $line:expr) => {{
        match serde_json::from_str::<$krate::TraceRecord>($line) {
            Ok(r) => serde_json::to_value(&r).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }};
}

fn main() {
    let mut bad = 0;
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(line).unwrap();
            let session = v["context"]["session_id"].as_str().unwrap_or("");
            let back = match session {
                "lash-v1" => check!(lash_trace_v1, line),
                "lash-v2-may" => check!(lash_trace_v2may, line),
                "lash-v2-june" => check!(lash_trace_v2jun, line),
                "lash-v2" => check!(lash_trace_v2, line),
                "lash-v3" => check!(lash_trace_v3, line),
                "lash-v4" => check!(lash_trace_v4, line),
                "lash-v5" => check!(lash_trace_v5, line),
                "lash-v6" => check!(lash_trace_v6, line),
                "lash-v7" => check!(lash_trace_v7, line),
                other => Err(format!("no reader for session {other}")),
            };
            match back {
                Err(e) => {
                    bad += 1;
                    println!("{path}:{}: {} {}: {e}", i + 1, session, v["type"]);
                }
                Ok(back) => {
                    let mut out = Vec::new();
                    diff("", &v, &back, &mut out);
                    if !out.is_empty() {
                        bad += 1;
                        println!("{path}:{}: {} {}: {}", i + 1, session, v["type"], out.join("; "));
                    }
                }
            }
        }
    }
    println!("{bad} lines differ");
}
