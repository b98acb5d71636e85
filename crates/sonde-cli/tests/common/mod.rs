//! What more than one test binary needs.
// Each test binary uses its own part of this.
#![allow(dead_code)]

pub mod http;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A spool folder of the test's own for `db`, outside the user's data folder.
pub fn spool_for(db: &str) -> PathBuf {
    std::env::temp_dir()
        .join("sonde-cli-tests")
        .join(sonde::derived_id(&[db]))
}

/// The `sonde` under test: this build's, or the one `SONDE_TEST_BIN` names (to run the
/// specifications against another build, such as the one before a fix).
pub fn sonde_bin() -> PathBuf {
    std::env::var_os("SONDE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sonde")))
}

/// `sonde --db DB`, with neither the user's SONDE_DB nor their spool folder.
pub fn sonde_on(db: &str) -> Command {
    let mut command = Command::new(sonde_bin());
    command
        .arg("--db")
        .arg(db)
        .env_remove("SONDE_DB")
        .env("SONDE_SPOOL", spool_for(db));
    command
}

/// Runs `command` (`sonde` with the caller's environment and output set) as
/// `--db DB serve` on two free loopback ports and waits until both listen; returns the
/// server, its OTLP/HTTP address and its OTLP/gRPC address.
pub fn spawn_serve(command: Command, db: &str) -> (Child, String, String) {
    spawn_serve_with(command, db, &[])
}

/// [`spawn_serve`] with more `serve` flags.
pub fn spawn_serve_with(mut command: Command, db: &str, flags: &[&str]) -> (Child, String, String) {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (addr, grpc_addr) = (
        format!("127.0.0.1:{}", free()),
        format!("127.0.0.1:{}", free()),
    );
    let server = command
        .args([
            "--db",
            db,
            "serve",
            "--addr",
            &addr,
            "--grpc-addr",
            &grpc_addr,
        ])
        .args(flags)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err()
        || std::net::TcpStream::connect(&grpc_addr).is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, addr, grpc_addr)
}

/// A `sonde serve` process, killed when the test ends however it ends.
pub struct Served(pub Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sonde --db DB serve` with `flags` (its output but errors dropped): the server, its
/// OTLP/HTTP address and its OTLP/gRPC address.
pub fn serve(db: &str, flags: &[&str]) -> (Served, String, String) {
    let mut command = Command::new(sonde_bin());
    command
        .env_remove("SONDE_DB")
        .env("SONDE_SPOOL", spool_for(db))
        .stdout(std::process::Stdio::null());
    let (child, addr, grpc) = spawn_serve_with(command, db, flags);
    (Served(child), addr, grpc)
}

/// A new key's secret, of tenant acme/prod (`sonde keys create --json`).
pub fn create_key(db: &str, admin: bool) -> String {
    let mut command = sonde_on(db);
    command.args([
        "keys",
        "create",
        "--org",
        "acme",
        "--workspace",
        "prod",
        "--json",
    ]);
    if admin {
        command.arg("--admin");
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    key["secret"].as_str().unwrap().to_owned()
}
