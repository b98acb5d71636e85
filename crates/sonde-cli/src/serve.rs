//! `sonde serve`: the receivers, the REST API and the dashboard over one database, until
//! Ctrl-C or SIGTERM drains the writer. `sonde demo --open` serves the same way.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, FromArgMatches as _};
use sonde::store::{TraceStore, redact_url};

use crate::{default_spool, table, time};

/// `sonde serve`'s options.
#[derive(Args)]
pub struct ServeArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:4318")]
    pub addr: std::net::SocketAddr,
    /// The writer's spool folder (default: spool/DATABASE in the data folder).
    #[arg(long, env = "SONDE_SPOOL", hide_env_values = true)]
    pub spool: Option<PathBuf>,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = sonde_server::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Where to listen for OTLP/gRPC.
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub grpc_addr: std::net::SocketAddr,
    /// How long a POST /api/v1/query statement may run before it is stopped.
    #[arg(long, default_value = "5s", value_parser = time::parse_span)]
    pub statement_timeout: std::time::Duration,
    /// The most rows a POST /api/v1/query answer may hold.
    #[arg(long, default_value_t = sonde::store::DEFAULT_MAX_ROWS)]
    pub max_result_rows: usize,
    /// The most bytes of values a POST /api/v1/query answer may hold.
    #[arg(long, default_value_t = sonde::store::DEFAULT_MAX_RESULT_BYTES)]
    pub max_result_bytes: usize,
    /// How long a client has to send a request's headers; also how long an idle
    /// keep-alive connection is kept.
    #[arg(long, default_value = "10s", value_parser = time::parse_span)]
    pub header_timeout: std::time::Duration,
    /// The longest pause while a request body arrives.
    #[arg(long, default_value = "10s", value_parser = time::parse_span)]
    pub body_timeout: std::time::Duration,
    /// How long a whole request may take.
    #[arg(long, default_value = "60s", value_parser = time::parse_span)]
    pub request_timeout: std::time::Duration,
    /// Connections open at once, per listener (OTLP/HTTP and OTLP/gRPC each); more
    /// wait until one closes.
    #[arg(long, default_value_t = sonde_server::DEFAULT_MAX_CONNECTIONS as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Open the dashboard in the browser once listening.
    #[arg(long)]
    pub open: bool,
    /// When a sender hears "accepted": `durable`, once its spans are committed to
    /// the database or fsynced in the spool (a crash loses none of them); or
    /// `queued`, as soon as they are in memory (faster; a crash loses what was
    /// queued). See docs/operations.md.
    #[arg(long, value_enum, default_value_t = AckMode::Durable)]
    pub ack: AckMode,
    /// Delete sessions whose last record is older than this (`30d`), at start and then
    /// every [`RETENTION_EVERY`], one session at a time (as `sonde prune` does).
    #[arg(long, value_parser = time::parse_span)]
    pub retention: Option<std::time::Duration>,
    /// Where the LLM proxy's /openai/v1/* goes (OpenAI or any OpenAI-compatible API):
    /// set OPENAI_BASE_URL=http://ADDR/openai/v1 in the client. See docs/proxy.md.
    #[arg(long, default_value = sonde_proxy::routes::OPENAI_DEFAULT)]
    pub openai_upstream: String,
    /// Where the LLM proxy's /anthropic/v1/* goes: set
    /// ANTHROPIC_BASE_URL=http://ADDR/anthropic in the client.
    #[arg(long, default_value = sonde_proxy::routes::ANTHROPIC_DEFAULT)]
    pub anthropic_upstream: String,
    /// Another OpenAI-compatible upstream, as NAME=URL: /NAME/v1/* goes to URL
    /// (vLLM, Ollama, OpenRouter, DeepSeek...). Repeatable.
    #[arg(long = "upstream", value_name = "NAME=URL", value_parser = sonde_proxy::RouteTable::parse_upstream)]
    pub upstreams: Vec<sonde_proxy::Upstream>,
    /// Record no request or response content of proxied calls (tokens, cost, timing
    /// and status still are).
    #[arg(long)]
    pub no_content: bool,
    /// How long the proxy waits for an upstream's answer to begin (502/504 after).
    #[arg(long, default_value = "10m", value_parser = time::parse_span)]
    pub upstream_timeout: std::time::Duration,
    /// Requests per minute each Sonde key may make through the proxy (429 beyond).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub proxy_rate_limit: Option<u32>,
}

/// How often `--retention` prunes.
pub const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl ServeArgs {
    /// The options `sonde serve` runs with when given none.
    pub fn defaults() -> anyhow::Result<Self> {
        let command = Self::augment_args(clap::Command::new("serve"));
        Ok(Self::from_arg_matches(
            &command.try_get_matches_from(["serve"])?,
        )?)
    }
}

/// When `sonde serve` answers a sender (see [`sonde::store::Ack`]).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckMode {
    /// Once committed to the database or fsynced in the spool.
    Durable,
    /// Once queued in memory (a crash loses what was queued).
    Queued,
}

impl From<AckMode> for sonde::store::Ack {
    fn from(mode: AckMode) -> Self {
        match mode {
            AckMode::Durable => sonde::store::Ack::Durable,
            AckMode::Queued => sonde::store::Ack::Queued,
        }
    }
}

/// Serves `store` (opened from `url`) as `args` say, until a shutdown signal.
pub async fn run(
    store: Arc<dyn TraceStore>,
    url: &str,
    args: ServeArgs,
) -> anyhow::Result<ExitCode> {
    let ServeArgs {
        addr,
        spool,
        body_limit,
        grpc_addr,
        statement_timeout,
        max_result_rows,
        max_result_bytes,
        header_timeout,
        body_timeout,
        request_timeout,
        max_connections,
        open,
        ack,
        retention,
        openai_upstream,
        anthropic_upstream,
        upstreams,
        no_content,
        upstream_timeout,
        proxy_rate_limit,
    } = args;
    let mut routes =
        sonde_proxy::RouteTable::with_providers(&openai_upstream, &anthropic_upstream)?;
    for upstream in upstreams {
        routes.add(upstream)?;
    }
    let config = sonde_server::ServeConfig {
        addr,
        body_limit,
        header_timeout,
        body_timeout,
        request_timeout,
        max_connections: max_connections as usize,
        query_limits: sonde::store::QueryLimits {
            timeout: statement_timeout,
            max_rows: max_result_rows,
            max_bytes: max_result_bytes,
        },
        proxy: sonde_server::ProxyConfig {
            routes,
            record_content: !no_content,
            upstream_timeout,
            rate_limit_per_minute: proxy_rate_limit,
        },
    };
    let writer = Arc::new(sonde::store::Writer::start(
        store,
        sonde::store::WriterConfig {
            ack: ack.into(),
            ..sonde_server::writer_config(spool.unwrap_or_else(|| default_spool(url)))
        },
    )?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    if let Some(older_than) = retention {
        let (store, mut stopped) = (writer.store().clone(), stop.subscribe());
        tokio::spawn(async move {
            loop {
                let cutoff = crate::sessions::cutoff(older_than);
                match sonde::retention::prune(store.as_ref(), &sonde::store::Scope::All, cutoff)
                    .await
                {
                    Ok(p) => {
                        tracing::info!(sessions = p.sessions, events = p.events, %cutoff, "retention pruned")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "retention could not prune; trying again later")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(RETENTION_EVERY) => {}
                    _ = stopped.wait_for(|s| *s) => return,
                }
            }
        });
    }
    let signalled = sonde_server::shutdown_signal();
    tokio::spawn(async move {
        signalled.await;
        let _ = stop.send(true);
    });
    let grpc_listener = tokio::net::TcpListener::bind(grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {grpc_addr}"))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let grpc_config = config.clone();
    let grpc_writer = writer.clone();
    let grpc_stopped = wait();
    let grpc = tokio::spawn(async move {
        sonde_server::serve_grpc_with(grpc_listener, &grpc_config, grpc_writer, grpc_stopped).await
    });
    eprintln!(
        "sonde: listening on http://{addr} (OTLP/HTTP: POST /v1/traces) and {grpc_addr} (OTLP/gRPC), storing into {}",
        redact_url(url)
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let dashboard = dashboard_url(listener.local_addr()?);
    eprintln!("sonde: the dashboard is at {dashboard}");
    for upstream in config.proxy.routes.upstreams() {
        eprintln!(
            "sonde: proxying {dashboard}{}/v1/* to {}",
            upstream.name, upstream.base
        );
    }
    if open && let Err(e) = open::that_detached(&dashboard) {
        eprintln!("sonde: cannot open a browser ({e}); open {dashboard}");
    }
    sonde_server::serve_on_with(listener, &config, writer.clone(), wait()).await?;
    grpc.await??;
    let report = writer.shutdown(std::time::Duration::from_secs(30)).await;
    eprintln!(
        "sonde: stopped; {} written{}",
        table::count(report.written, "record"),
        if report.complete {
            String::new()
        } else {
            format!(
                ", {} left in the spool for the next start",
                table::count(report.left_in_spool_bytes, "byte")
            )
        }
    );
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The dashboard's address for a server listening on `addr` (an unspecified address
/// is reached on loopback).
fn dashboard_url(addr: std::net::SocketAddr) -> String {
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("http://{host}:{}/", addr.port())
}
