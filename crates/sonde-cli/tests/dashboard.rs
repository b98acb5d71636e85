//! The dashboard as a person uses it: a real `sonde serve` filled by real Claude Code
//! and Codex transcripts (`sonde sync`), OpenTelemetry spans and the tracer's
//! quickstart (`sonde demo`), driven in headless Chromium through chromedriver
//! (WebDriver). Screenshots of each page go to `target/dashboard-screenshots/`.
//!
//! Chromium and chromedriver are needed (`chromium`, `chromium-driver` in Debian;
//! `./scripts/test` installs them): missing, the test fails. `SONDE_TEST_CHROMIUM` and
//! `SONDE_TEST_CHROMEDRIVER` name other binaries.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sonde::*;

fn binary(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: install chromium and chromium-driver (./scripts/test does), or set {variable}",
        path.display()
    );
    path
}

/// Ends a child process when dropped (the test may fail half way).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sonde(db: &str, args: &[&str]) -> std::process::Output {
    let out = common::sonde_on(db).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "sonde {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_of(db: &str, args: &[&str]) -> Value {
    serde_json::from_slice(&sonde(db, args).stdout).unwrap()
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// A session whose text is markup and a `javascript:` URL, and a failed call whose
/// error is markup: all must show as text.
fn hostile_records() -> Vec<String> {
    let ctx = Context::session("xss-session");
    let t = |s: i64| Timestamp::from_micros(1_767_225_600_000_000 + s * 1_000_000);
    let record = |id: &str, s: i64, body: Body| {
        Record {
            id: id.into(),
            timestamp: t(s),
            context: ctx.clone(),
            body,
        }
        .to_json_line()
    };
    vec![
        record(
            "xss-start",
            0,
            Body::SessionStarted(SessionStarted::default()),
        ),
        record(
            "xss-message",
            1,
            Body::Message(Message {
                content: MessageContent::text(
                    "<script>window.__pwned = 1</script><a href=\"javascript:window.__pwned=2\">click</a>",
                ),
                message_type: "user_prompt".into(),
                from_role: Some("human".into()),
                to_role: Some("agent".into()),
                ..Default::default()
            }),
        ),
        record(
            "xss-call",
            2,
            Body::Event(Event::Llm(LlmCall {
                model_name: "<img src=x onerror=window.__pwned=3>".into(),
                status: Status::Error,
                error: Some("<b onmouseover=window.__pwned=4>boom</b>".into()),
                input_tokens: 5,
                ..Default::default()
            })),
        ),
    ]
}

/// A session of tenant acme/prod.
fn tenant_records() -> Vec<String> {
    let ctx = Context::session("acme-session").with_tenant("acme", "prod");
    vec![
        Record::new(ctx.clone(), Body::SessionStarted(SessionStarted::default())).to_json_line(),
        Record::new(
            ctx,
            Body::Message(Message {
                content: MessageContent::text("tenant work"),
                message_type: "user_prompt".into(),
                ..Default::default()
            }),
        )
        .to_json_line(),
    ]
}

async fn browser(driver_port: u16, profile: &Path) -> Client {
    let chromium = binary("SONDE_TEST_CHROMIUM", "/usr/bin/chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--window-size=1440,1000",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let started = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
        {
            Ok(client) => return client,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot start chromium through chromedriver: {e}"),
        }
    }
}

/// The browser's console messages since the last call, as chromedriver keeps them.
async fn console(client: &Client, driver_port: u16) -> Vec<Value> {
    let session = client.session_id().await.unwrap().unwrap();
    let response: Value = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{driver_port}/session/{session}/se/log"
        ))
        .json(&json!({"type": "browser"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["value"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("chromedriver gave no log: {response}"))
}

async fn screenshot(client: &Client, name: &str) {
    let dir = repo("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn text(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Clicks the element `css` names, waiting for it to be there.
async fn click(client: &Client, css: &str) {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Types `text` into the element `css` names.
async fn type_into(client: &Client, css: &str, text: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

/// Waits until the browser's URL, as (path, query), is what `ok` wants (a form's
/// submission navigates after the click returns).
async fn wait_for_url(client: &Client, ok: impl Fn(&str, &str) -> bool) {
    let started = Instant::now();
    loop {
        let url = client.current_url().await.unwrap();
        if ok(url.path(), url.query().unwrap_or_default()) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the browser stayed at {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(client: &Client, css: &str) -> usize {
    client.find_all(Locator::Css(css)).await.unwrap().len()
}

/// `$1,234.56` or `$0.0123`, as the dashboard prints a cost.
fn dollars(cost: f64) -> String {
    if cost.abs() < 1.0 {
        format!("${cost:.4}")
    } else {
        format!("${cost:.2}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_browses_sessions_calls_and_stats_and_logs_in_with_a_tenant_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("dash.db").display());
    let fixtures = repo("crates/sonde-sync/tests/data");
    sonde(
        &db,
        &[
            "sync",
            "claude",
            "--path",
            fixtures.join("claude-code").to_str().unwrap(),
        ],
    );
    sonde(
        &db,
        &[
            "sync",
            "codex",
            "--path",
            fixtures.join("codex").to_str().unwrap(),
        ],
    );
    sonde(&db, &["demo"]);
    let hostile = dir.path().join("hostile.jsonl");
    std::fs::write(&hostile, hostile_records().join("\n")).unwrap();
    sonde(&db, &["import", hostile.to_str().unwrap()]);

    let mut command = Command::new(env!("CARGO_BIN_EXE_sonde"));
    command
        .env_remove("SONDE_DB")
        .env("SONDE_SPOOL", common::spool_for(&db))
        .stderr(Stdio::null());
    let (server, addr, _) = common::spawn_serve(command, &db);
    let _server = Killed(server);
    let base = format!("http://{addr}");
    let spans = std::fs::read(repo("crates/sonde-otlp/tests/data/spec_trace.json")).unwrap();
    let posted = reqwest::Client::new()
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/json")
        .body(spans)
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success(), "{:?}", posted.text().await);

    let driver_port = common::free_port();
    let driver = Command::new(binary("SONDE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _driver = Killed(driver);
    let profile = tempfile::tempdir().unwrap();
    let client = browser(driver_port, profile.path()).await;

    // The sessions page: newest first, as `sonde sessions` lists them, each a link.
    let listed = json_of(&db, &["sessions", "--json", "--limit", "100"]);
    let sessions = listed["sessions"].as_array().unwrap();
    client.goto(&format!("{base}/")).await.unwrap();
    let rows = client
        .find_all(Locator::Css("#sessions tbody tr td:first-child a"))
        .await
        .unwrap();
    assert_eq!(rows.len(), sessions.len().min(50));
    let first = rows[0].attr("href").await.unwrap().unwrap();
    assert_eq!(
        first,
        format!("/sessions/{}", sessions[0]["session_id"].as_str().unwrap())
    );
    screenshot(&client, "sessions").await;
    assert_eq!(
        count(&client, "form.logout").await,
        0,
        "open loopback access has no key to log out of"
    );
    // The first load stays light: the page, its script and its stylesheet.
    let weight = client
        .execute(
            "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
                .reduce((n, e) => n + e.transferSize, 0)",
            vec![],
        )
        .await
        .unwrap();
    assert!(weight.as_f64().unwrap() < 300_000.0, "{weight}");

    // Filter by words through the form: the URL holds the filter, the rows are the
    // CLI's.
    let search = client.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("Bash").await.unwrap();
    click(&client, "form.filters button[type=submit]").await;
    wait_for_url(&client, |_, query| query.contains("q=Bash")).await;
    let found = json_of(&db, &["sessions", "--json", "--search", "Bash"]);
    let found = found["sessions"].as_array().unwrap();
    assert!(!found.is_empty());
    assert_eq!(count(&client, "#sessions tbody tr").await, found.len());

    // Pages: two at a time, the next page link continues where the first ended.
    client.goto(&format!("{base}/?limit=2")).await.unwrap();
    click(&client, "nav.pages a.next").await;
    wait_for_url(&client, |_, query| query.contains("cursor=")).await;
    let second: Vec<String> = {
        let mut ids = Vec::new();
        for a in client
            .find_all(Locator::Css("#sessions tbody tr td:first-child a"))
            .await
            .unwrap()
        {
            ids.push(a.attr("href").await.unwrap().unwrap());
        }
        ids
    };
    let expected: Vec<String> = sessions[2..4]
        .iter()
        .map(|s| format!("/sessions/{}", s["session_id"].as_str().unwrap()))
        .collect();
    assert_eq!(second, expected);

    // A session: its tree, an LLM call's tokens and cost, a tool call's input.
    let busiest = sessions
        .iter()
        .filter(|s| s["tool_calls"].as_u64().unwrap_or(0) > 0)
        .max_by_key(|s| s["llm_calls"].as_u64().unwrap_or(0))
        .unwrap();
    let id = busiest["session_id"].as_str().unwrap();
    client.goto(&format!("{base}/sessions/{id}")).await.unwrap();
    click(&client, ".row.kind-llm").await;
    let selected_id = client
        .find(Locator::Css(".row.selected"))
        .await
        .unwrap()
        .attr("data-id")
        .await
        .unwrap()
        .unwrap();
    let calls = json_of(
        &db,
        &["calls", "--json", "--session", id, "--limit", "1000"],
    );
    let call = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == selected_id.as_str())
        .unwrap();
    let field = |name: &str| format!("#detail dd[data-field='{name}']");
    assert_eq!(
        text(&client, &field("input tokens")).await.replace(',', ""),
        call["input_tokens"].to_string()
    );
    assert_eq!(
        text(&client, &field("cache read tokens"))
            .await
            .replace(',', ""),
        call["cache_read_tokens"].to_string()
    );
    assert_eq!(
        text(&client, &field("cost")).await,
        dollars(call["cost_usd"].as_f64().unwrap())
    );
    screenshot(&client, "session").await;
    // j moves to the next row.
    let rows = client.find(Locator::Css("#rows")).await.unwrap();
    rows.send_keys("j").await.unwrap();
    let next_id = client
        .find(Locator::Css(".row.selected"))
        .await
        .unwrap()
        .attr("data-id")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(next_id, selected_id);
    click(&client, ".row.kind-tool").await;
    assert!(!text(&client, &field("tool")).await.is_empty());
    assert!(
        count(&client, "#detail section.block").await > 0,
        "a tool call shows its input or output"
    );

    // The calls page and a call's page.
    client.goto(&format!("{base}/calls")).await.unwrap();
    let all_calls = json_of(&db, &["calls", "--json"]);
    assert_eq!(
        count(&client, "#calls tbody tr").await,
        all_calls["calls"].as_array().unwrap().len()
    );
    screenshot(&client, "calls").await;
    client
        .goto(&format!("{base}/calls/{}", call["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        text(&client, &field("output tokens"))
            .await
            .replace(',', ""),
        call["output_tokens"].to_string()
    );
    screenshot(&client, "call").await;

    // The stats page says what `sonde stats --json` says.
    client.goto(&format!("{base}/stats")).await.unwrap();
    let summary = json_of(&db, &["stats", "summary", "--json"]);
    let value = |id: &str| {
        let client = client.clone();
        let css = format!("#{id}");
        async move {
            client
                .find(Locator::Css(&css))
                .await
                .unwrap()
                .attr("data-value")
                .await
                .unwrap()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        }
    };
    assert_eq!(
        value("summary-calls").await,
        summary["calls"].as_f64().unwrap()
    );
    assert_eq!(
        value("summary-input").await,
        summary["input_tokens"].as_f64().unwrap()
    );
    assert!((value("summary-cost").await - summary["cost_usd"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(
        value("summary-errors").await,
        summary["errors"].as_f64().unwrap()
    );
    // The same filters give the same numbers.
    for (query, args) in [
        ("model=claude-opus-4-6", ["--model", "claude-opus-4-6"]),
        ("range=30d", ["--since", "30d"]),
    ] {
        client.goto(&format!("{base}/stats?{query}")).await.unwrap();
        let cli = json_of(&db, &[&["stats", "summary", "--json"], &args[..]].concat());
        assert!(cli["calls"].as_u64().unwrap() > 0, "{query}");
        assert_eq!(value("summary-calls").await, cli["calls"].as_f64().unwrap());
        assert!((value("summary-cost").await - cli["cost_usd"].as_f64().unwrap()).abs() < 1e-9);
    }
    client.goto(&format!("{base}/stats")).await.unwrap();
    let models = json_of(&db, &["stats", "models", "--json"]);
    assert_eq!(
        count(&client, "#models tbody tr").await,
        models.as_array().unwrap().len()
    );
    screenshot(&client, "stats").await;

    // Markup in a trace is text: shown, never run.
    client
        .goto(&format!("{base}/sessions/xss-session"))
        .await
        .unwrap();
    click(&client, ".row.kind-message").await;
    assert!(
        text(&client, "#detail pre.text")
            .await
            .contains("<script>window.__pwned = 1</script>")
    );
    click(&client, ".row.kind-llm").await;
    assert!(
        text(&client, &field("error"))
            .await
            .contains("<b onmouseover")
    );
    assert!(text(&client, "#detail h2").await.contains("<img src=x"));
    let pwned = client.execute("return window.__pwned === undefined && document.querySelectorAll('a[href^=\"javascript:\"], #detail img, #detail b').length === 0", vec![]).await.unwrap();
    assert_eq!(pwned, json!(true));
    client.goto(&format!("{base}/calls")).await.unwrap();
    let pwned = client
        .execute("return window.__pwned === undefined", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, json!(true));

    // No page logged an error (a script error, a refused resource, a CSP violation).
    let errors: Vec<Value> = console(&client, driver_port)
        .await
        .into_iter()
        .filter(|m| m["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // Live: a session recorded while the sessions page is open appears without a reload.
    client.goto(&format!("{base}/")).await.unwrap();
    let live = dir.path().join("live.jsonl");
    let record = Record::new(
        Context::session("live-session"),
        Body::SessionStarted(SessionStarted::default()),
    );
    std::fs::write(&live, record.to_json_line()).unwrap();
    sonde(&db, &["import", live.to_str().unwrap()]);
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#sessions a[href='/sessions/live-session']"))
        .await
        .unwrap_or_else(|e| panic!("the new session never appeared: {e}"));
    // And an open session shows its new records.
    client
        .goto(&format!("{base}/sessions/live-session"))
        .await
        .unwrap();
    assert_eq!(count(&client, ".row.kind-message").await, 0);
    let said = Record::new(
        Context::session("live-session"),
        Body::Message(Message {
            content: MessageContent::text("a new turn"),
            message_type: "user_prompt".into(),
            ..Default::default()
        }),
    );
    std::fs::write(&live, said.to_json_line()).unwrap();
    sonde(&db, &["import", live.to_str().unwrap()]);
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(".row.kind-message"))
        .await
        .unwrap_or_else(|e| panic!("the new record never appeared: {e}"));

    // With a tenant key, the dashboard asks for it once, then shows only its tenant.
    let tenant = dir.path().join("tenant.jsonl");
    std::fs::write(&tenant, tenant_records().join("\n")).unwrap();
    sonde(&db, &["import", tenant.to_str().unwrap()]);
    let key = common::create_key(&db, false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.goto(&format!("{base}/")).await.unwrap();
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "{url}");
    type_into(&client, "input[name=key]", "not-a-key").await;
    click(&client, "form.login button").await;
    assert!(text(&client, "#login-problem").await.contains("unknown"));
    screenshot(&client, "login").await;
    type_into(&client, "input[name=key]", &key).await;
    click(&client, "form.login button").await;
    wait_for_url(&client, |path, _| path == "/").await;
    assert_eq!(
        client
            .find(Locator::Css("#sessions tbody tr td:first-child a"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .as_deref(),
        Some("/sessions/acme-session")
    );
    assert_eq!(count(&client, "#sessions tbody tr").await, 1);
    assert_eq!(
        count(&client, "form.logout").await,
        1,
        "signed in with a key"
    );
    let cookie_visible = client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(cookie_visible, json!(""), "the key's cookie is HttpOnly");
    client.goto(&format!("{base}/sessions/{id}")).await.unwrap();
    assert_eq!(text(&client, "h1").await, "Not found");
    client
        .goto(&format!("{base}/sessions/acme-session"))
        .await
        .unwrap();
    assert!(text(&client, "h1").await.contains("acme-session"));

    client.close().await.unwrap();
}

#[test]
fn serve_open_hands_the_dashboards_address_to_the_browser() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let opened = dir.path().join("opened");
    // The desktop's opener, standing in for the browser: it writes down what it opens.
    let opener = bin.join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$1\" > '{}'\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = format!("sqlite://{}", dir.path().join("open.db").display());
    let port = common::free_port();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let server = common::sonde_on(&db)
        .args([
            "serve",
            "--open",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--grpc-addr",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .env("PATH", path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Killed(server);
    let started = Instant::now();
    while !opened.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the browser was never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        std::fs::read_to_string(&opened).unwrap().trim(),
        format!("http://127.0.0.1:{port}/")
    );
}
