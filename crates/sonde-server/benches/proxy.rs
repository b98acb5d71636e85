//! The recording LLM proxy against a local upstream (`tests/upstream`, the one the
//! tests use), in the same run: requests straight to the upstream (the baseline) and
//! through the proxy, recording every call into SQLite.
//!
//! - Added latency: one client, requests one after another, direct and proxied in
//!   alternating blocks; p50 and p99 of each, non-streaming and streaming, over
//!   `SONDE_BENCH_LATENCY_RUNS` (3) runs of `SONDE_BENCH_LATENCY_REQUESTS` (2,000).
//! - Throughput: `SONDE_BENCH_CLIENTS` (64) concurrent clients send
//!   `SONDE_BENCH_REQUESTS` (40,000) non-streaming requests, direct then proxied; then
//!   the time until every proxied call is stored; the CPU per request of the proxy's
//!   process and of this one (the load generator and the upstream). Then the same
//!   load with a Sonde key in `X-Sonde-Key` (a key is created in the proxy's store
//!   after the open runs: once one exists every call needs one), for the cost of the
//!   key lookup. Every request carries a provider key (`Authorization: Bearer`), as
//!   real ones do, so its hash is part of the cost.
//! - Memory: 1,000 streams open at once through the proxy (each receiving a chunk every
//!   50 ms), the server's resident memory.
//!
//! `cargo bench -p sonde-server --bench proxy`. Prints Markdown. The server runs in a
//! child process (this benchmark again) so that its memory is its own; the load
//! generator and the upstream share the machine with it, as they do in the baseline.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[path = "../tests/upstream/mod.rs"]
mod upstream;

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sonde_store::{SqliteStore, TraceStore, Writer};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Set in the server process: its folder.
const SERVE_ENV: &str = "SONDE_BENCH_PROXY_DIR";
/// Set in the server process: the upstream's base URL.
const UPSTREAM_ENV: &str = "SONDE_BENCH_UPSTREAM";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if let Some(dir) = std::env::var_os(SERVE_ENV) {
        serve(
            std::path::Path::new(&dir),
            &std::env::var(UPSTREAM_ENV).unwrap(),
        );
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let up = rt.block_on(upstream::start());
    let dir = tempfile::tempdir().unwrap();
    let mut server = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--bench")
        .env(SERVE_ENV, dir.path())
        .env(UPSTREAM_ENV, up.base())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_server = server.stdin.take().unwrap();
    let mut from_server = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut ask = |command: &str| -> String {
        writeln!(to_server, "{command}").unwrap();
        to_server.flush().unwrap();
        let mut line = String::new();
        from_server.read_line(&mut line).unwrap();
        line.trim().to_owned()
    };
    let proxy_base = ask("url");
    let direct = format!("{}/chat/completions", up.base());
    let proxied = format!("{proxy_base}/openai/v1/chat/completions");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let plain = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}).to_string();
    let streamed = serde_json::json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "Say hello"}]}).to_string();
    let mut stored = 0usize;

    println!("## The recording LLM proxy (`cargo bench -p sonde-server --bench proxy`)");
    println!();

    // Memory: 1,000 streams open at once.
    let idle_mb: f64 = ask("rss").parse().unwrap();
    let streams = knob("SONDE_BENCH_STREAMS", 1_000);
    let endless =
        serde_json::json!({"model": "endless", "stream": true, "messages": []}).to_string();
    let open = rt.block_on(async {
        let mut open = Vec::new();
        for _ in 0..streams {
            let response = client
                .post(&proxied)
                .header("content-type", "application/json")
                .body(endless.clone())
                .send()
                .await
                .unwrap();
            let mut body = response.bytes_stream();
            body.next().await.unwrap().unwrap();
            open.push(body);
        }
        // Every stream keeps flowing for a while.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for body in &mut open {
            body.next().await.unwrap().unwrap();
        }
        open
    });
    let open_mb: f64 = ask("rss").parse().unwrap();
    drop(open);
    stored += streams;

    // Added latency: one client, alternating blocks; several runs.
    let rounds = knob("SONDE_BENCH_LATENCY_REQUESTS", 2_000);
    let latency_runs = knob("SONDE_BENCH_LATENCY_RUNS", 3);
    let latencies = |body: &str| {
        rt.block_on(async {
            let (mut d, mut p) = (Vec::new(), Vec::new());
            for block in 0..(rounds / 100) {
                for (url, into) in [(&direct, &mut d), (&proxied, &mut p)] {
                    let _ = block;
                    for _ in 0..100 {
                        let started = Instant::now();
                        let response = client
                            .post(url.as_str())
                            .header("content-type", "application/json")
                            .body(body.to_owned())
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(response.status(), 200);
                        response.bytes().await.unwrap();
                        into.push(started.elapsed().as_secs_f64() * 1000.0);
                    }
                }
            }
            (d, p)
        })
    };
    let quantile = |values: &mut Vec<f64>, q: f64| {
        values.sort_by(|a, b| a.total_cmp(b));
        values[((values.len() - 1) as f64 * q).round() as usize]
    };
    println!(
        "### Added latency (one client, {rounds} requests each way per run, alternating blocks of 100; {latency_runs} runs)"
    );
    println!();
    println!(
        "| request | run | direct p50 | proxied p50 | **added p50** | direct p99 | proxied p99 | **added p99** |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, body) in [
        ("chat completion", &plain),
        ("streamed chat completion", &streamed),
    ] {
        for run in 1..=latency_runs {
            let (mut d, mut p) = latencies(body);
            stored += p.len();
            let (d50, p50) = (quantile(&mut d, 0.5), quantile(&mut p, 0.5));
            let (d99, p99) = (quantile(&mut d, 0.99), quantile(&mut p, 0.99));
            println!(
                "| {name} | {run} | {d50:.3} ms | {p50:.3} ms | **{:.3} ms** | {d99:.3} ms | {p99:.3} ms | **{:.3} ms** |",
                p50 - d50,
                p99 - d99
            );
        }
    }
    println!();

    // Throughput.
    let clients = knob("SONDE_BENCH_CLIENTS", 64);
    let requests = knob("SONDE_BENCH_REQUESTS", 40_000);
    let throughput = |url: &str, key: Option<&str>| {
        let client = client.clone();
        let url = Arc::new(url.to_owned());
        let body = plain.clone();
        let key = key.map(str::to_owned);
        rt.block_on(async move {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (client, url, body, key) =
                    (client.clone(), url.clone(), body.clone(), key.clone());
                let n = requests / clients + usize::from(c < requests % clients);
                tasks.push(tokio::spawn(async move {
                    for _ in 0..n {
                        let mut request = client
                            .post(url.as_str())
                            .header("content-type", "application/json")
                            .header("authorization", "Bearer sk-bench-provider-key");
                        if let Some(key) = &key {
                            request = request.header("x-sonde-key", key);
                        }
                        let response = request.body(body.clone()).send().await.unwrap();
                        assert_eq!(response.status(), 200);
                        response.bytes().await.unwrap();
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            started.elapsed()
        })
    };
    let own_before = cpu_seconds();
    let direct_time = throughput(&direct, None);
    let own_direct = cpu_seconds() - own_before;
    let cpu_before: f64 = ask("cpu").parse().unwrap();
    let own_before = cpu_seconds();
    let proxied_time = throughput(&proxied, None);
    let own_proxied = cpu_seconds() - own_before;
    let cpu_after: f64 = ask("cpu").parse().unwrap();
    stored += requests;
    // The same load with a Sonde key (`X-Sonde-Key`): once a key exists every call
    // needs one, so this comes after the open runs.
    let secret = ask("key");
    std::thread::sleep(Duration::from_millis(1_200));
    let cpu_before_keyed: f64 = ask("cpu").parse().unwrap();
    let keyed_time = throughput(&proxied, Some(&secret));
    let cpu_after_keyed: f64 = ask("cpu").parse().unwrap();
    stored += requests;
    let started = Instant::now();
    let count: usize = ask(&format!("wait {stored}")).parse().unwrap();
    let drain = started.elapsed();
    let peak_mb: f64 = ask("peak").parse().unwrap();
    let rate = |t: Duration| requests as f64 / t.as_secs_f64();
    println!("### Throughput ({clients} clients, {requests} non-streaming requests, recording on)");
    println!();
    println!("| | time | requests/s |");
    println!("|---|---|---|");
    println!(
        "| direct to the upstream (baseline) | {:.2} s | {:.0} |",
        direct_time.as_secs_f64(),
        rate(direct_time)
    );
    for (name, time) in [
        ("through the proxy, open (loopback, no keys)", proxied_time),
        (
            "through the proxy with a Sonde key (`X-Sonde-Key`)",
            keyed_time,
        ),
    ] {
        println!(
            "| {name} | {:.2} s | {:.0} ({:.0} % of the baseline) |",
            time.as_secs_f64(),
            rate(time),
            100.0 * rate(time) / rate(direct_time)
        );
    }
    println!();
    let per_request = |seconds: f64| seconds * 1e6 / requests as f64;
    for (name, cpu) in [
        ("open", cpu_after - cpu_before),
        ("keyed", cpu_after_keyed - cpu_before_keyed),
    ] {
        let proxy_us = per_request(cpu);
        println!(
            "- proxy server CPU during the {name} proxied run: {cpu:.2} s (**{proxy_us:.0} µs per request**, recording included: {:.0} requests/s per core of the proxy's own)",
            1e6 / proxy_us
        );
    }
    println!(
        "- load generator and upstream CPU (this process): {:.0} µs per request direct, {:.0} µs per request proxied",
        per_request(own_direct),
        per_request(own_proxied)
    );
    println!(
        "- every call stored: {count} LLM calls in the database ({stored} expected), the last {:.2} s after the last answer",
        drain.as_secs_f64()
    );
    println!();
    println!("### Memory ({streams} streams open at once through the proxy)");
    println!();
    println!(
        "- server resident memory: {idle_mb:.1} MB idle, {open_mb:.1} MB with {streams} open streams ({:.1} KB per stream); peak over the run {peak_mb:.1} MB",
        (open_mb - idle_mb) * 1024.0 / streams as f64
    );
    ask("quit");
    let _ = server.wait();
}

/// CPU seconds this process has used so far (user and system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The server half: `sonde serve`'s proxy into a SQLite store in `dir`, answering one
/// line per command from stdin: `url`, `rss` (resident MB), `peak` (peak resident MB),
/// `cpu` (CPU seconds so far), `wait N` (until N calls are stored; prints how many),
/// `quit`.
fn serve(dir: &std::path::Path, upstream: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (store, writer, url) = rt.block_on(async {
        let store: Arc<dyn TraceStore> =
            Arc::new(SqliteStore::open(dir.join("proxy.db")).await.unwrap());
        let writer = Arc::new(
            Writer::start(
                store.clone(),
                sonde_server::writer_config(dir.join("spool")),
            )
            .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = sonde_server::ServeConfig {
            max_connections: 4096,
            proxy: sonde_server::ProxyConfig {
                routes: sonde_proxy::RouteTable::with_providers(upstream, upstream).unwrap(),
                ..Default::default()
            },
            ..Default::default()
        };
        let serving = writer.clone();
        tokio::spawn(async move {
            sonde_server::serve_on_with(listener, &config, serving, std::future::pending()).await
        });
        (store, writer, url)
    });
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let answer = match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["url"] => url.clone(),
            ["rss"] => format!("{:.1}", status_mb("VmRSS")),
            ["peak"] => format!("{:.1}", status_mb("VmHWM")),
            ["cpu"] => format!("{:.2}", cpu_seconds()),
            ["pid"] => std::process::id().to_string(),
            ["key"] => rt.block_on(async {
                let (key, secret) = sonde_store::ApiKey::generate("bench", "proxy", None, false);
                store.create_api_key(&key).await.unwrap();
                secret
            }),
            ["wait", n] => {
                let expect: u64 = n.parse().unwrap();
                rt.block_on(async {
                    let until = Instant::now() + Duration::from_secs(120);
                    loop {
                        writer.flush().await;
                        let n = store
                            .query("SELECT count(*) FROM events WHERE event_type = 'llm'", &[])
                            .await
                            .unwrap()
                            .rows[0][0]
                            .as_u64()
                            .unwrap();
                        if n >= expect || Instant::now() > until {
                            return n.to_string();
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            }
            _ => break,
        };
        println!("{answer}");
        std::io::stdout().flush().unwrap();
    }
}
