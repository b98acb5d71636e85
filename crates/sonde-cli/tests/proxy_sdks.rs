//! The recording LLM proxy with the real OpenAI and Anthropic Python SDKs: they call a
//! local upstream that speaks the providers' wire formats (`sonde-server`'s
//! `tests/upstream`) through a real `sonde serve`, configured by nothing but their
//! base-URL settings. Afterwards `sonde calls`, `sonde stats models` and `sonde
//! sessions` show exactly the tokens the upstream reported, the cost from the price
//! table, the time to first token of streams; the provider keys are nowhere in the
//! database. The SDKs come from `./scripts/test` (`target/proxy-venv`) or
//! `SONDE_TEST_PROXY_PYTHON`; without them the test fails, it never skips.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
#[path = "../../sonde-server/tests/upstream/mod.rs"]
mod upstream;

const OPENAI_KEY: &str = "sk-proj-SECRET-openai-key-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-api03-SECRET-anthropic-key-0123456789";

fn python() -> PathBuf {
    common::test_python(
        "SONDE_TEST_PROXY_PYTHON",
        "proxy-venv",
        "the OpenAI and Anthropic Python SDKs are",
    )
}

/// A sum of doubles depends on the order it is added in: costs are compared to the
/// nano-dollar.
fn nano_dollars(cost: f64) -> i64 {
    (cost * 1e9).round() as i64
}

/// Uncached input, cache read, cache write, output, reasoning.
type Tokens = (u64, u64, u64, u64, u64);

fn tokens(call: &Value) -> Tokens {
    let n = |k: &str| call[k].as_u64().unwrap_or(0);
    (
        n("input_tokens"),
        n("cache_read_tokens"),
        n("cache_write_tokens"),
        n("output_tokens"),
        n("reasoning_tokens"),
    )
}

fn expected_cost(model: &str, (input, read, write, output, reasoning): Tokens) -> Option<f64> {
    let call = sonde_model_call(model, input, read, write, output, reasoning);
    sonde_pricing::PriceTable::shipped().cost(&call)
}

fn sonde_model_call(
    model: &str,
    input: u64,
    read: u64,
    write: u64,
    output: u64,
    reasoning: u64,
) -> sonde::LlmCall {
    sonde::LlmCall {
        model_name: model.into(),
        input_tokens: input,
        cache_read_tokens: read,
        cache_write_tokens: write,
        output_tokens: output,
        reasoning_tokens: reasoning,
        ..Default::default()
    }
}

#[test]
fn the_openai_and_anthropic_sdks_are_recorded_by_changing_their_base_url() {
    let python = python();
    let up = upstream::start_in_thread();
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("proxy.db");
    let db = format!("sqlite://{}", db_file.display());
    let mut command = Command::new(common::sonde_bin());
    command
        .env_remove("SONDE_DB")
        .env("SONDE_SPOOL", dir.path().join("spool"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (mut server, addr, _) = common::spawn_serve_with(
        command,
        &db,
        &[
            "--openai-upstream",
            &up.base(),
            "--anthropic-upstream",
            &up.base(),
        ],
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/proxy_sdks.py");
    let out = Command::new(&python)
        .arg(&script)
        .env("OPENAI_BASE_URL", format!("http://{addr}/openai/v1"))
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .env("ANTHROPIC_BASE_URL", format!("http://{addr}/anthropic"))
        .env("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        .env_remove("OPENAI_ORG_ID")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the SDKs got back: the upstream's answers, unchanged.
    let got: BTreeMap<String, Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (v["call"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    let text = upstream::TEXT_CHUNKS.concat();
    assert_eq!(got["chat"]["text"], text.as_str());
    assert_eq!(got["chat_stream"]["text"], text.as_str());
    assert_eq!(
        got["chat_stream"]["completion_tokens"],
        upstream::CHAT_USAGE.2
    );
    assert_eq!(got["chat_tools"]["arguments"], json!({"city": "Paris"}));
    assert_eq!(got["responses"]["text"], text.as_str());
    assert_eq!(got["responses_stream"]["text"], text.as_str());
    assert_eq!(got["embeddings"]["dimensions"], 3);
    assert_eq!(got["rate_limited"]["status"], 429);
    assert_eq!(got["messages"]["text"], text.as_str());
    assert_eq!(got["messages_stream"]["text"], text.as_str());
    assert_eq!(
        got["messages_stream"]["output_tokens"],
        upstream::MESSAGES_USAGE.3
    );
    assert_eq!(got["messages_tools"]["input"], json!({"city": "Paris"}));
    // The key reached the upstream as the SDK sent it (this SDK sends it as a bearer
    // token, older ones in x-api-key).
    let seen = up.seen.last_headers.lock().unwrap().clone().unwrap();
    let bearer = format!("Bearer {ANTHROPIC_KEY}");
    assert!(
        seen.get("x-api-key").is_some_and(|v| v == ANTHROPIC_KEY)
            || seen.get("authorization").is_some_and(|v| *v == *bearer),
        "{seen:?}"
    );
    assert!(seen.keys().all(|n| !n.as_str().starts_with("x-sonde-")));

    let started = Instant::now();
    let calls = loop {
        let page = common::sonde_json(&db, &["calls", "--json", "--limit", "100"]);
        let calls = page["calls"].as_array().unwrap().clone();
        if calls.len() >= 10 || started.elapsed() > Duration::from_secs(30) {
            break calls;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(calls.len(), 10, "{calls:#?}");
    let (prompt, cached, completion, reasoning) = upstream::CHAT_USAGE;
    let chat = (prompt - cached, cached, 0, completion, reasoning);
    let (r_in, r_cached, r_out, r_reasoning) = upstream::RESPONSES_USAGE;
    let responses = (r_in - r_cached, r_cached, 0, r_out, r_reasoning);
    let (m_in, m_read, m_write, m_out) = upstream::MESSAGES_USAGE;
    let messages = (m_in, m_read, m_write, m_out, 0);
    // (path, model, streamed, tokens, status), oldest first.
    let expected: [(&str, &str, bool, Tokens, u16); 10] = [
        (
            "/v1/chat/completions",
            "gpt-4o-mini-2024-07-18",
            false,
            chat,
            200,
        ),
        (
            "/v1/chat/completions",
            "gpt-4o-mini-2024-07-18",
            true,
            chat,
            200,
        ),
        (
            "/v1/chat/completions",
            "gpt-4o-mini-2024-07-18",
            false,
            chat,
            200,
        ),
        (
            "/v1/responses",
            "gpt-4o-mini-2024-07-18",
            false,
            responses,
            200,
        ),
        (
            "/v1/responses",
            "gpt-4o-mini-2024-07-18",
            true,
            responses,
            200,
        ),
        (
            "/v1/embeddings",
            "text-embedding-3-small",
            false,
            (upstream::EMBEDDING_TOKENS, 0, 0, 0, 0),
            200,
        ),
        (
            "/v1/chat/completions",
            "error-429",
            false,
            (0, 0, 0, 0, 0),
            429,
        ),
        (
            "/v1/messages",
            "claude-sonnet-4-5-20250929",
            false,
            messages,
            200,
        ),
        (
            "/v1/messages",
            "claude-sonnet-4-5-20250929",
            true,
            messages,
            200,
        ),
        (
            "/v1/messages",
            "claude-sonnet-4-5-20250929",
            false,
            messages,
            200,
        ),
    ];
    let mut calls = calls;
    calls.sort_by(|a, b| a["ts"].as_str().cmp(&b["ts"].as_str()));
    for (call, (path, model, streamed, tokens_expected, status)) in calls.iter().zip(&expected) {
        assert_eq!(call["request_path"], *path, "{call}");
        assert_eq!(call["model"], *model, "{call}");
        assert_eq!(tokens(call), *tokens_expected, "{call}");
        assert_eq!(call["response_status"], *status, "{call}");
        assert_eq!(call["ttft_ms"].is_number(), *streamed, "{call}");
        assert_eq!(call["status"], if *status == 200 { "ok" } else { "error" });
        let key = if path.ends_with("messages") {
            ANTHROPIC_KEY
        } else {
            OPENAI_KEY
        };
        assert_eq!(
            call["api_key_hash"],
            sonde_proxy::headers::sha256_hex(key.as_bytes()).as_str()
        );
        if let Some(cost) = expected_cost(model, *tokens_expected).filter(|c| *c > 0.0) {
            assert_eq!(
                nano_dollars(call["cost_usd"].as_f64().unwrap()),
                nano_dollars(cost),
                "{call}"
            );
        }
    }
    assert!(calls[0]["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(calls[7]["cost_usd"].as_f64().unwrap() > 0.0);

    let models = common::sonde_json(&db, &["stats", "models", "--json"]);
    let rows = models.as_array().or(models["models"].as_array()).unwrap();
    let row = |model: &str| rows.iter().find(|r| r["model"] == model).unwrap().clone();
    let gpt = row("gpt-4o-mini-2024-07-18");
    assert_eq!(gpt["calls"], 5);
    assert_eq!(gpt["input_tokens"], 3 * chat.0 + 2 * responses.0);
    assert_eq!(gpt["cache_read_tokens"], 3 * chat.1 + 2 * responses.1);
    assert_eq!(gpt["output_tokens"], 3 * chat.3 + 2 * responses.3);
    let claude = row("claude-sonnet-4-5-20250929");
    assert_eq!(claude["calls"], 3);
    assert_eq!(
        (
            claude["input_tokens"].as_u64(),
            claude["cache_read_tokens"].as_u64(),
            claude["cache_write_tokens"].as_u64(),
            claude["output_tokens"].as_u64()
        ),
        (
            Some(3 * m_in),
            Some(3 * m_read),
            Some(3 * m_write),
            Some(3 * m_out)
        )
    );

    // The sessions: the day's proxy bucket, and the one the header named.
    let sessions = common::sonde_json(&db, &["sessions", "--json"]);
    let ids: Vec<&str> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"sdk-session"), "{ids:?}");
    assert!(ids.iter().any(|id| id.starts_with("proxy-")), "{ids:?}");

    // A clean stop, then not a byte of either key in the database.
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for key in [OPENAI_KEY, ANTHROPIC_KEY] {
                assert!(
                    !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                    "{} holds a provider key",
                    path.display()
                );
            }
        }
    }
    assert!(db_file.exists());
}
