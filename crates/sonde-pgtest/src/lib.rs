//! A throwaway PostgreSQL server for tests: `initdb` + `pg_ctl` into a temporary folder,
//! listening on a free loopback port, stopped when dropped. When the tests run as root
//! (CI does) the server runs as the `postgres` user through `runuser`, since `initdb`
//! refuses root. With `SONDE_TEST_POSTGRES_URL` set, that server is used instead.
//!
//! When PostgreSQL cannot be found, [`PgServer::start`] fails with a message saying how
//! to install it: tests that need PostgreSQL fail, they never pass by skipping.
//!
//! ```no_run
//! let server = sonde_pgtest::PgServer::start().unwrap();
//! let url = server.fresh_database().unwrap();
//! assert!(url.starts_with("postgres://"));
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

/// The user the server runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// Why a throwaway server could not be had.
#[derive(Debug)]
pub struct PgError(pub String);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgError {}

/// A PostgreSQL server for one test (or one test process).
pub struct PgServer {
    kind: Kind,
}

enum Kind {
    External {
        url: String,
    },
    Local {
        _dir: tempfile::TempDir,
        data: PathBuf,
        log: PathBuf,
        bin: PathBuf,
        port: u16,
        as_postgres: bool,
        running: AtomicBool,
    },
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The folder holding `initdb`, `pg_ctl` and `postgres`.
fn find_bin() -> Result<PathBuf, PgError> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").exists());
    versions.sort();
    versions.pop().ok_or_else(|| {
        PgError(
            "PostgreSQL not found: install it (apt-get install -y postgresql), set PG_BIN to the folder \
             holding initdb and pg_ctl, or set SONDE_TEST_POSTGRES_URL"
                .into(),
        )
    })
}

fn free_port() -> Result<u16, PgError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| PgError(format!("no free port: {e}")))
}

fn run(mut command: Command, what: &str) -> Result<Output, PgError> {
    let out = command
        .output()
        .map_err(|e| PgError(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(PgError(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(out)
}

impl PgServer {
    /// [`PgServer::start`] for a test: a test that needs PostgreSQL fails when none
    /// can be had, with the reason; it never skips.
    #[allow(clippy::panic)] // test support: the panic is the test's failure
    pub fn running() -> Self {
        Self::start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`PgServer::running`] from an async test, on a blocking thread.
    #[allow(clippy::panic)] // test support: the panic is the test's failure
    pub async fn started() -> Self {
        tokio::task::spawn_blocking(Self::running)
            .await
            .unwrap_or_else(|e| panic!("starting postgres: {e}"))
    }

    /// [`PgServer::started`], and the URL of a fresh database in it.
    #[allow(clippy::panic)] // test support: the panic is the test's failure
    pub async fn with_fresh_database() -> (Self, String) {
        let server = Self::started().await;
        match server.fresh_database() {
            Ok(url) => (server, url),
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts a fresh server (or connects to `SONDE_TEST_POSTGRES_URL`).
    pub fn start() -> Result<Self, PgError> {
        if let Ok(url) = std::env::var("SONDE_TEST_POSTGRES_URL") {
            return Ok(Self {
                kind: Kind::External { url },
            });
        }
        let bin = find_bin()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("sonde-pg-")
            .tempdir()
            .map_err(|e| PgError(format!("temp dir: {e}")))?;
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        if as_postgres {
            // The server user must reach and own its folder.
            run(
                {
                    let mut c = Command::new("chmod");
                    c.arg("755").arg(dir.path());
                    c
                },
                "chmod",
            )?;
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg(format!("{SERVER_USER}:")).arg(dir.path());
                    c
                },
                "chown",
            )?;
        }
        let server = Self {
            kind: Kind::Local {
                _dir: dir,
                data,
                log,
                bin,
                port: free_port()?,
                as_postgres,
                running: AtomicBool::new(false),
            },
        };
        server.initdb()?;
        server.start_again()?;
        Ok(server)
    }

    fn command(&self, program: &str) -> Command {
        match &self.kind {
            Kind::Local {
                bin, as_postgres, ..
            } => {
                let program = bin.join(program);
                if *as_postgres {
                    let mut c = Command::new("runuser");
                    c.args(["-u", SERVER_USER, "--"]).arg(program);
                    c
                } else {
                    Command::new(program)
                }
            }
            Kind::External { .. } => Command::new(program),
        }
    }

    fn initdb(&self) -> Result<(), PgError> {
        let Kind::Local { data, .. } = &self.kind else {
            return Ok(());
        };
        let mut c = self.command("initdb");
        c.arg("-D").arg(data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(c, "initdb").map(|_| ())
    }

    /// Starts the server again after [`PgServer::stop_immediate`] (same data, same port).
    pub fn start_again(&self) -> Result<(), PgError> {
        let Kind::Local {
            data,
            log,
            port,
            running,
            ..
        } = &self.kind
        else {
            return Ok(());
        };
        let socket_dir = data
            .parent()
            .map_or_else(|| PathBuf::from("/tmp"), Path::to_path_buf);
        // fsync is off (tests do not survive an OS crash), but commits stay synchronous:
        // with synchronous_commit=off an immediate stop loses acknowledged transactions,
        // which the fault tests would rightly report as lost records.
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off \
             -c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB",
            socket_dir.display()
        );
        let mut c = self.command("pg_ctl");
        c.arg("-D")
            .arg(data)
            .arg("-l")
            .arg(log)
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        run(c, "pg_ctl start").map_err(|e| {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            PgError(format!("{e}\n{log}"))
        })?;
        running.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the server like a crash (`pg_ctl stop -m immediate`).
    pub fn stop_immediate(&self) -> Result<(), PgError> {
        let Kind::Local { data, running, .. } = &self.kind else {
            return Err(PgError("cannot stop an external server".into()));
        };
        let mut c = self.command("pg_ctl");
        c.arg("-D")
            .arg(data)
            .args(["-m", "immediate", "-w", "stop"]);
        run(c, "pg_ctl stop")?;
        running.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Whether the server can be stopped and restarted by the test (not an external one).
    pub fn is_local(&self) -> bool {
        matches!(self.kind, Kind::Local { .. })
    }

    /// The URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        match &self.kind {
            Kind::External { url } => url.clone(),
            Kind::Local { port, .. } => format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        }
    }

    /// Creates an empty database and returns its URL.
    pub fn fresh_database(&self) -> Result<String, PgError> {
        let name = format!("sonde_{}", uuid::Uuid::now_v7().simple());
        let url = self.url();
        let mut c = match &self.kind {
            Kind::Local { .. } => self.command("psql"),
            Kind::External { .. } => Command::new("psql"),
        };
        c.arg(&url)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"));
        run(c, "create database")?;
        Ok(match url.rfind('/') {
            Some(slash)
                if url[..slash].contains('@')
                    || url[..slash].ends_with(':')
                    || url[..slash].contains("//") =>
            {
                let (base, rest) = url.split_at(slash);
                let query = rest.find('?').map_or("", |q| &rest[q..]);
                format!("{base}/{name}{query}")
            }
            _ => format!("{url}/{name}"),
        })
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Kind::Local { running, .. } = &self.kind
            && running.load(Ordering::SeqCst)
        {
            let _ = self.stop_immediate();
        }
    }
}
