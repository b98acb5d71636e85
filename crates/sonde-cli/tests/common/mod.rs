//! What more than one test binary needs.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Runs `command` (`sonde` with the caller's environment and output set) as
/// `--db DB serve` on two free loopback ports and waits until both listen; returns the
/// server, its OTLP/HTTP address and its OTLP/gRPC address.
pub fn spawn_serve(mut command: Command, db: &str) -> (Child, String, String) {
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
