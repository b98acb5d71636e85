//! The call-level API and the dashboard behind the gate, over HTTP, on SQLite and on
//! PostgreSQL: `GET /api/v1/calls` (filters, cursors, tenants), `GET
//! /api/v1/calls/{id}`, `GET /api/v1/sessions?q=`, and the dashboard's pages for a
//! tenant's key.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::Value;
use sonde_model::*;
use sonde_store::*;

struct Server {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(store: Arc<dyn TraceStore>) -> Server {
    let writer = Arc::new(Writer::start(store, WriterConfig::default()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sonde_server::serve_on(
        listener,
        sonde_server::DEFAULT_BODY_LIMIT,
        writer,
        async move {
            let _ = stopped.await;
        },
    ));
    Server { url, _stop: stop }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_micros(1_767_225_600_000_000 + seconds * 1_000_000)
}

/// Session `id` of a tenant: a prompt saying `words`, and LLM calls (model, cost,
/// latency, failed).
fn session(id: &str, org: &str, words: &str, calls: &[(&str, f64, f64, bool)]) -> Vec<Record> {
    let ctx = Context::session(id).with_tenant(org, "prod");
    let mut records = vec![
        Record {
            id: format!("{id}-start"),
            timestamp: at(0),
            context: ctx.clone(),
            body: Body::SessionStarted(SessionStarted::default()),
        },
        Record {
            id: format!("{id}-prompt"),
            timestamp: at(1),
            context: ctx.clone(),
            body: Body::Message(Message {
                content: MessageContent::text(words),
                message_type: "user_prompt".into(),
                ..Default::default()
            }),
        },
    ];
    for (i, (model, cost, latency, failed)) in calls.iter().enumerate() {
        records.push(Record {
            id: format!("{id}-call-{i}"),
            timestamp: at(10 + i as i64),
            context: ctx.clone(),
            body: Body::Event(Event::Llm(LlmCall {
                model_name: (*model).into(),
                input_tokens: 100,
                cost_usd: Some(*cost),
                latency_ms: Some(*latency),
                stop_reason: Some("end_turn".into()),
                status: if *failed { Status::Error } else { Status::Ok },
                ..Default::default()
            })),
        });
    }
    records
}

async fn calls_and_pages_answer_each_tenant_its_own(store: Arc<dyn TraceStore>) {
    store
        .write(&session(
            "a",
            "acme",
            "rotate the keys",
            &[
                ("gpt-5", 0.01, 900.0, false),
                ("gpt-5", 0.02, 2500.0, false),
            ],
        ))
        .await
        .unwrap();
    store
        .write(&session(
            "g",
            "globex",
            "rotate the logs",
            &[("claude-opus-4-1", 0.5, 100.0, true)],
        ))
        .await
        .unwrap();
    let (admin, admin_secret) = ApiKey::generate("ops", "all", None, true);
    let (acme, acme_secret) = ApiKey::generate("acme", "prod", None, false);
    store.create_api_key(&admin).await.unwrap();
    store.create_api_key(&acme).await.unwrap();
    let server = start(store).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (client, base) = (&client, server.url.as_str());
    let get = |path: String, key: Option<&str>| {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move { request.send().await.unwrap() }
    };
    let json = |path: &str, key: &str| {
        let response = get(path.to_owned(), Some(key));
        async move {
            let r = response.await;
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (admin_secret, acme_secret) = (admin_secret.as_str(), acme_secret.as_str());
    let ids = |page: &Value| -> Vec<String> {
        page["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let (status, all) = json("/api/v1/calls", admin_secret).await;
    assert_eq!(status, 200);
    // Newest first; calls of the same time by id, last first.
    assert_eq!(ids(&all), ["a-call-1", "g-call-0", "a-call-0"]);
    assert_eq!(all["calls"][0]["cost_usd"], 0.02);
    assert_eq!(all["next_cursor"], Value::Null);
    let (_, first) = json("/api/v1/calls?limit=2", admin_secret).await;
    assert_eq!(ids(&first), ["a-call-1", "g-call-0"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let r = get(
        format!("/api/v1/calls?limit=2&cursor={cursor}"),
        Some(admin_secret),
    )
    .await;
    assert_eq!(ids(&r.json::<Value>().await.unwrap()), ["a-call-0"]);
    for (query, want) in [
        ("model=gpt-5", vec!["a-call-1", "a-call-0"]),
        ("failed=true", vec!["g-call-0"]),
        ("status=ok&min_latency_ms=1000", vec!["a-call-1"]),
        ("min_cost=0.015&max_cost=0.1", vec!["a-call-1"]),
        ("session=g", vec!["g-call-0"]),
        ("model=&provider=", vec!["a-call-1", "g-call-0", "a-call-0"]),
    ] {
        let r = get(format!("/api/v1/calls?{query}"), Some(admin_secret)).await;
        assert_eq!(ids(&r.json::<Value>().await.unwrap()), want, "{query}");
    }
    let (status, bad) = json("/api/v1/calls?cursor=nonsense", admin_secret).await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    let (status, bad) = json("/api/v1/calls?min_cost=cheap", admin_secret).await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("min_cost: expected a number, got \"cheap\""))
    );

    // A tenant's key: its calls, its call, its sessions; another tenant's are not found.
    let (_, mine) = json("/api/v1/calls", acme_secret).await;
    assert_eq!(ids(&mine), ["a-call-1", "a-call-0"]);
    let (status, call) = json("/api/v1/calls/a-call-0", acme_secret).await;
    assert_eq!(status, 200);
    assert_eq!(call["call"]["stop_reason"], "end_turn");
    assert_eq!(call["session_id"], "a");
    let (status, other) = json("/api/v1/calls/g-call-0", acme_secret).await;
    assert_eq!((status, other["code"].as_str()), (404, Some("not_found")));
    let (_, found) = json("/api/v1/sessions?q=ROTATE", acme_secret).await;
    assert_eq!(found["sessions"].as_array().unwrap().len(), 1);
    let (_, found) = json("/api/v1/sessions?q=rotate", admin_secret).await;
    assert_eq!(found["sessions"].as_array().unwrap().len(), 2);
    let (_, found) = json("/api/v1/sessions?q=rotate%20logs", admin_secret).await;
    assert_eq!(found["sessions"][0]["session_id"], "g");

    // The dashboard: a page without a key goes to the login form; with the tenant's
    // key, its pages carry the policy, and another tenant's session is a 404 page.
    let r = get("/sessions/a?x=1".into(), None).await;
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        "/login?next=%2Fsessions%2Fa%3Fx%3D1"
    );
    let r = get("/api/v1/calls".into(), None).await;
    assert_eq!(r.status().as_u16(), 401, "the API still answers JSON");
    for (path, status) in [
        ("/", 200),
        ("/sessions/a", 200),
        ("/calls", 200),
        ("/stats", 200),
        ("/sessions/g", 404),
        ("/calls/g-call-0", 404),
    ] {
        let r = get(path.into(), Some(acme_secret)).await;
        assert_eq!(r.status().as_u16(), status, "{path}");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let body = r.text().await.unwrap();
        assert!(!body.contains("globex"), "{path} shows another tenant");
    }
    let cookie = client
        .get(format!("{base}/"))
        .header("cookie", format!("sonde_key={acme_secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cookie.status().as_u16(), 200, "the login cookie is a key");
    let login = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={acme_secret}&next=%2Fcalls"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    assert_eq!(login.headers()["location"], "/calls");
    let set = login.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_calls_and_pages_answer_each_tenant_its_own() {
    let store = StoreUrl::SqliteMemory.open().await.unwrap();
    calls_and_pages_answer_each_tenant_its_own(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_calls_and_pages_answer_each_tenant_its_own() {
    let (server, url) = sonde_pgtest::PgServer::with_fresh_database().await;
    let store: Arc<dyn TraceStore> = Arc::new(PostgresStore::open(&url).await.unwrap());
    calls_and_pages_answer_each_tenant_its_own(store).await;
    drop(server);
}
