//! Test support for Funnel: real `nats-server` processes (one server, or a 3-node JetStream cluster
//! on loopback) that tests can start, kill with SIGKILL and restart on the same ports and store
//! directories. Never used in release builds.
//!
//! The binary is found through env `FUNNEL_NATS_SERVER`, then `<workspace>/.tools/bin/nats-server`
//! (installed by `scripts/install-nats-server.sh`), then `PATH`.
//!
//! Starting and restarting block the calling thread until the server is healthy (a bounded wait), so
//! they work from sync and async tests alike.

mod cluster;
mod process;

pub use cluster::NatsCluster;
pub use process::{free_port, nats_server_binary, workspace_root};

/// Waits until `done` holds, asking at most `polls` times, `every` apart; panics naming `what`
/// when it never does (a bound on a hang, not a timing assertion).
pub async fn eventually(
    what: &str,
    polls: u32,
    every: std::time::Duration,
    mut done: impl AsyncFnMut() -> bool,
) {
    for _ in 0..polls {
        if done().await {
            return;
        }
        tokio::time::sleep(every).await;
    }
    panic!("timed out waiting for {what}");
}

use process::ServerProcess;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A single JetStream-enabled `nats-server` on an ephemeral loopback port with its own temporary
/// store directory. Killed on drop; the directory is removed then too.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    store_dir: PathBuf,
    process: ServerProcess,
    // Declared last so the process is killed before its directory goes.
    dir: TempDir,
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections and JetStream is ready. Ports are
    /// picked free and released before the server binds them, so a server that exits early is
    /// started again on fresh ports (a few times) before giving up.
    pub fn start() -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start() {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("{last}");
    }

    fn try_start() -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("funnel-nats-")
            .tempdir()
            .expect("create a temporary directory");
        let port = free_port();
        let monitor_port = free_port();
        let store_dir = dir.path().join("store");
        let args = vec![
            "-js".to_string(),
            "-a".to_string(),
            "127.0.0.1".to_string(),
            "-p".to_string(),
            port.to_string(),
            "-m".to_string(),
            monitor_port.to_string(),
            "-sd".to_string(),
            store_dir.display().to_string(),
        ];
        let mut process = ServerProcess::new(args, monitor_port, dir.path().join("server.log"));
        process.spawn();
        process.try_wait_ready()?;
        Ok(Self {
            port,
            store_dir,
            process,
            dir,
        })
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (`-sd`), kept across restarts.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The temporary directory holding the store and the server log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server with SIGKILL: no clean shutdown, as in a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again (killing it first if it runs) on the same port and store directory,
    /// and waits until it is ready.
    pub fn restart(&mut self) {
        self.process.kill();
        self.process.spawn();
        self.process.wait_ready();
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// The tail of the server's log, for diagnosing a failed test.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}
