//! No secret in any output: with a credential in every environment variable and flag
//! `sonde` reads, no help text, error, log line (at every SONDE_LOG level), startup line
//! or JSON output shows one.
//!
//! Every secret contains [`MARK`]; a test fails when `MARK` appears in anything a
//! command printed. What `sonde` reads: `SONDE_DB` / `--db`, `SONDE_PRICES` /
//! `--prices`, `SONDE_SPOOL` / `--spool`, `SONDE_LOG`, `XDG_DATA_HOME`, `HOME`,
//! `CLAUDE_CONFIG_DIR`, `CODEX_HOME`, `LANGFUSE_HOST`, `LANGFUSE_PUBLIC_KEY`,
//! `LANGFUSE_SECRET_KEY`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, and the endpoints of `--to`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sonde::*;

mod common;

/// In every secret; never in any output.
const MARK: &str = "S3cretZ";

/// A secret named `what`, the mark at both ends so that any part of it shown is caught.
fn secret(what: &str) -> String {
    format!("{MARK}{what}{MARK}")
}

/// A PostgreSQL URL with a password that nothing listens on.
fn unreachable_db() -> String {
    format!("postgres://bob:{}@127.0.0.1:1/db", secret("db"))
}

/// Every environment variable sonde reads that holds a credential (its paths are the
/// caller's), plus `SONDE_LOG`.
fn credentials<'a>(command: &'a mut Command, log: Option<&str>) -> &'a mut Command {
    command
        .env("SONDE_DB", unreachable_db())
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("Authorization=Bearer%20{}", secret("otlp")),
        )
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            format!(
                "Authorization=Bearer%20{},x-api-key={}",
                secret("traces"),
                secret("apikey")
            ),
        )
        .env(
            "LANGFUSE_HOST",
            format!("http://lf:{}@127.0.0.1:1", secret("lfhost")),
        )
        .env("LANGFUSE_PUBLIC_KEY", format!("pk-lf-{}", secret("lfpub")))
        .env("LANGFUSE_SECRET_KEY", format!("sk-lf-{}", secret("lfsec")));
    match log {
        Some(level) => command.env("SONDE_LOG", level),
        None => command.env_remove("SONDE_LOG"),
    }
}

/// `sonde` with the credentials set, its data, spool and agent folders under `home`.
fn sonde(home: &Path, log: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sonde"));
    credentials(&mut command, log)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("SONDE_SPOOL", home.join("spool"))
        .env("CLAUDE_CONFIG_DIR", home.join("claude"))
        .env("CODEX_HOME", home.join("codex"))
        .env_remove("SONDE_PRICES")
        // A connection string taken for a file name lands here, not in the source tree.
        .current_dir(home)
        .stdin(Stdio::null());
    command
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `command`, asserts nothing it printed holds a secret, and returns what it printed.
fn run_clean(command: &mut Command) -> (Output, String) {
    let out = command.output().unwrap();
    let printed = text(&out);
    assert!(
        !printed.contains(MARK),
        "a secret was printed by sonde {:?}:\n{printed}",
        command.get_args().collect::<Vec<_>>()
    );
    (out, printed)
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn no_help_text_shows_an_environment_value() {
    let home = tempfile::tempdir().unwrap();
    // Every variable set, paths too: a help text shows no value at all.
    let every_var = |args: &[&str]| {
        let mut command = sonde(home.path(), Some(&secret("log")));
        command
            .env("SONDE_PRICES", format!("/{}/prices.toml", secret("prices")))
            .env("SONDE_SPOOL", format!("/{}/spool", secret("spool")))
            .env("XDG_DATA_HOME", format!("/{}/data", secret("xdg")))
            .env("CLAUDE_CONFIG_DIR", format!("/{}/claude", secret("claude")))
            .env("CODEX_HOME", format!("/{}/codex", secret("codex")))
            .args(args);
        command
    };
    // Every command, nested ones too, found from the help texts themselves.
    let mut pending: Vec<Vec<String>> = vec![vec![]];
    let mut seen = Vec::new();
    while let Some(path) = pending.pop() {
        for help in ["--help", "-h"] {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push(help);
            let (out, printed) = run_clean(&mut every_var(&args));
            assert!(out.status.success(), "{path:?}: {printed}");
            if help == "--help" {
                for sub in subcommands(&printed) {
                    let mut deeper = path.clone();
                    deeper.push(sub);
                    pending.push(deeper);
                }
            }
        }
        seen.push(path.join(" "));
    }
    for expected in [
        "import",
        "sessions",
        "serve",
        "stats summary",
        "keys create",
        "sync",
    ] {
        assert!(seen.iter().any(|s| s == expected), "{expected} in {seen:?}");
    }
    // The help still names the variables, just not their values.
    let (_, import_help) = run_clean(&mut every_var(&["import", "--help"]));
    for name in [
        "[env: SONDE_DB]",
        "[env: SONDE_PRICES]",
        "[env: SONDE_SPOOL]",
    ] {
        assert!(import_help.contains(name), "{import_help}");
    }
    run_clean(&mut every_var(&["help", "keys", "create"]));
    run_clean(&mut every_var(&["--version"]));
    // A usage error prints the usage.
    let (out, _) = run_clean(&mut every_var(&["sessions", "--no-such-flag"]));
    assert_eq!(out.status.code(), Some(2));
}

/// Record JSONL of one session with one LLM call, in `dir`.
fn one_session(dir: &Path) -> PathBuf {
    let step = Context::session("s-1").with_step("t-1");
    let lines = [
        Record::new(
            Context::session("s-1"),
            Body::SessionStarted(SessionStarted::default()),
        ),
        Record::new(
            step,
            Body::Event(Event::Llm(LlmCall {
                model_name: "gpt-5".into(),
                input_tokens: 10,
                output_tokens: 2,
                ..Default::default()
            })),
        ),
    ]
    .map(|r| r.to_json_line());
    let path = dir.join("in.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn a_database_that_cannot_be_reached_is_named_without_its_password() {
    let home = tempfile::tempdir().unwrap();
    let input = one_session(home.path());
    let codex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sonde-sync/tests/data/codex");
    let input = input.to_str().unwrap();
    let codex = codex.to_str().unwrap();
    let commands: [&[&str]; 12] = [
        &["sessions"],
        &["sessions", "--json"],
        &["show", "s-1", "--json"],
        &["query", "SELECT 1", "--json"],
        &["export"],
        &["stats", "summary", "--json"],
        &["keys", "list"],
        &["rm", "s-1", "--yes"],
        &["migrate"],
        &["import", input],
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--grpc-addr",
            "127.0.0.1:0",
        ],
        &["sync", "codex", "--path", codex, "--json"],
    ];
    for log in [None, Some("trace")] {
        for args in commands {
            // From SONDE_DB, and from --db.
            for flag in [false, true] {
                let mut command = sonde(home.path(), log);
                if flag {
                    command.args(["--db", &unreachable_db()]);
                }
                let (out, printed) = run_clean(command.args(args));
                assert_eq!(out.status.code(), Some(1), "{args:?}: {printed}");
                assert!(
                    printed.contains("postgres://bob:***@127.0.0.1:1/db"),
                    "the database is named, its password redacted: {args:?}: {printed}"
                );
            }
        }
    }
    // The password as a query parameter, a connection string taken as a file name, an
    // unsupported scheme.
    let db = format!("postgres://bob@127.0.0.1:1/db?password={}", secret("query"));
    let (_, printed) = run_clean(sonde(home.path(), Some("trace")).args(["--db", &db, "sessions"]));
    assert!(printed.contains("?password=***"), "{printed}");
    let db = format!("host=127.0.0.1 port=1 password={}", secret("conninfo"));
    let (out, printed) = run_clean(sonde(home.path(), None).args(["--db", &db, "sessions"]));
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(printed.contains("password=***"), "{printed}");
    let db = format!("mysql://root:{}@127.0.0.1/db", secret("mysql"));
    let (out, printed) = run_clean(sonde(home.path(), None).args(["--db", &db, "stats", "models"]));
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(printed.contains("unsupported database url"), "{printed}");
    // A command that needs no database.
    let (out, _) =
        run_clean(sonde(home.path(), Some("trace")).args(["pricing", "gpt-5", "--json"]));
    assert!(out.status.success());
}

/// A SQLite database in `home` holding one session.
fn database_with_a_session(home: &Path) -> String {
    let db = format!("sqlite://{}", home.join("t.db").display());
    let input = one_session(home);
    let (out, printed) = run_clean(sonde(home, None).args(["--db", &db, "import"]).arg(&input));
    assert!(out.status.success(), "{printed}");
    db
}

#[test]
fn endpoints_and_headers_are_never_shown() {
    let home = tempfile::tempdir().unwrap();
    let db = database_with_a_session(home.path());
    let codex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sonde-sync/tests/data/codex");
    let to = format!("http://user:{}@127.0.0.1:1", secret("endpoint"));
    let (out, printed) =
        run_clean(sonde(home.path(), Some("trace")).args(["--db", &db, "export", "--to", &to]));
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(printed.contains("user:***@127.0.0.1:1"), "{printed}");
    for target in [to.as_str(), "langfuse"] {
        let (out, printed) = run_clean(
            sonde(home.path(), Some("trace"))
                .args([
                    "--db", &db, "sync", "codex", "--json", "--to", target, "--path",
                ])
                .arg(&codex)
                .arg("--state")
                .arg(home.path().join("state.json")),
        );
        assert!(!out.status.success(), "{printed}");
        assert!(printed.contains(":***@127.0.0.1:1"), "{printed}");
    }
    // Malformed header variables are named, their values not quoted.
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", secret("noequals")),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            format!("Authorization=Bearer%2{}", secret("escape")),
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            format!("={}", secret("nokey")),
        ),
    ] {
        let (out, printed) = run_clean(sonde(home.path(), None).env(var, value).args([
            "--db",
            &db,
            "export",
            "--to",
            "http://127.0.0.1:1",
        ]));
        assert_eq!(out.status.code(), Some(1), "{printed}");
        assert!(printed.contains(var), "{printed}");
    }
}

/// Sends `request` to `addr` and returns the answer.
fn http(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// `sonde serve` on `db` at SONDE_LOG=trace: it is sent a wrong key over OTLP/HTTP by
/// `sonde export` and by hand, and asked for /metrics; returns its startup line.
fn serve_and_send_a_wrong_key(home: &Path, db: &str) -> String {
    let (out, printed) = run_clean(sonde(home, None).args([
        "--db",
        db,
        "keys",
        "create",
        "--org=acme",
        "--workspace=prod",
    ]));
    assert!(out.status.success(), "{printed}");
    // What it prints goes to files: at trace level its log fills a pipe's buffer
    // before it listens, and a server blocked writing its log answers nothing.
    let (stdout, stderr) = (home.join("serve.out"), home.join("serve.err"));
    let mut command = sonde(home, Some("trace"));
    command
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let (mut server, addr, _) = common::spawn_serve(command, db);
    let source = database_with_a_session(home);
    let (out, printed) = run_clean(sonde(home, Some("trace")).args([
        "--db",
        &source,
        "export",
        "--to",
        &format!("http://{addr}"),
    ]));
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(printed.contains("401"), "{printed}");
    let token = secret("bearer");
    let request = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    let refused = http(&addr, &request);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(!refused.contains(MARK), "{refused}");
    let metrics = http(
        &addr,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(!metrics.contains(MARK), "{metrics}");
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let status = server.wait().unwrap();
    let out = std::process::Output {
        status,
        stdout: std::fs::read(&stdout).unwrap(),
        stderr: std::fs::read(&stderr).unwrap(),
    };
    let printed = text(&out);
    assert!(
        !printed.contains(MARK),
        "a secret was printed by sonde serve:\n{printed}"
    );
    assert!(out.status.success(), "{printed}");
    printed
        .lines()
        .find(|l| l.starts_with("sonde: listening on"))
        .unwrap_or_else(|| panic!("no startup line: {printed}"))
        .to_owned()
}

#[test]
fn sonde_serve_shows_neither_the_keys_it_is_sent_nor_a_database_password() {
    let home = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", home.path().join("served.db").display());
    let line = serve_and_send_a_wrong_key(home.path(), &db);
    assert!(line.contains("served.db"), "{line}");

    // PostgreSQL (it trusts local connections: the password is accepted, unused).
    let server = sonde_pgtest::PgServer::running();
    let pg = server.fresh_database().unwrap_or_else(|e| panic!("{e}"));
    let pg = if server.is_local() {
        pg.replacen("postgres@", &format!("postgres:{}@", secret("pg")), 1)
    } else {
        pg
    };
    for args in [
        &["migrate"][..],
        &["sessions", "--json"],
        &["stats", "models"],
    ] {
        let (out, printed) = run_clean(
            sonde(home.path(), Some("trace"))
                .arg("--db")
                .arg(&pg)
                .args(args),
        );
        assert!(out.status.success(), "{args:?}: {printed}");
    }
    let line = serve_and_send_a_wrong_key(home.path(), &pg);
    assert!(line.contains("storing into postgres://"), "{line}");
    if server.is_local() {
        assert!(line.contains("postgres:***@127.0.0.1"), "{line}");
    }
}
