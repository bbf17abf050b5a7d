//! One `nats-server` child process: finding the binary, picking free ports, spawning with a fixed
//! argument list (so a restart reuses the same ports and store directory), waiting until it is
//! healthy, and killing it.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to become healthy before the testkit gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds the `nats-server` binary: env `FUNNEL_NATS_SERVER`, then the workspace's
/// `.tools/bin/nats-server`, then `PATH`. Panics with install instructions when none exists.
pub fn nats_server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FUNNEL_NATS_SERVER") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "FUNNEL_NATS_SERVER points at {}, which is not a file",
            p.display()
        );
        return p;
    }
    let local = workspace_root().join(".tools/bin/nats-server");
    if local.is_file() {
        return local;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "nats-server not found: run `scripts/install-nats-server.sh` (installs it into {}), \
         or set FUNNEL_NATS_SERVER to a nats-server binary",
        local.display()
    );
}

/// The workspace root, two levels above this crate's manifest.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A loopback port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral loopback port");
    listener
        .local_addr()
        .expect("local address of an ephemeral listener")
        .port()
}

/// A `nats-server` process with a fixed command line.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    binary: PathBuf,
    args: Vec<String>,
    monitor_port: u16,
    log_path: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// Prepares (does not start) a server whose output goes to `log_path`.
    pub(crate) fn new(args: Vec<String>, monitor_port: u16, log_path: PathBuf) -> Self {
        Self {
            binary: nats_server_binary(),
            args,
            monitor_port,
            log_path,
            child: None,
        }
    }

    /// Spawns the process; does not wait for it to be ready.
    pub(crate) fn spawn(&mut self) {
        assert!(self.child.is_none(), "nats-server is already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("open log file {}: {e}", self.log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("clone log file handle: {e}"));
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// Waits until the server's `/healthz` answers 200 (client port open, JetStream current).
    pub(crate) fn wait_ready(&mut self) {
        if let Err(e) = self.try_wait_ready() {
            panic!("{e}");
        }
    }

    /// Waits until the server is healthy; an `Err` when it exited early (for example because a port
    /// picked as free was taken by another process in the meantime) or never got healthy.
    pub(crate) fn try_wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(format!(
                    "nats-server exited early with {status}; log:\n{}",
                    self.log_tail()
                ));
            }
            if healthz_ok(self.monitor_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nats-server not healthy after {READY_TIMEOUT:?}; log:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Kills the process with SIGKILL (no clean shutdown) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The process may already have exited; either way it is reaped below.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last few kilobytes of the server's log, for panic messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One plain HTTP/1.0 GET of `/healthz` on the monitoring port; true on status 200.
fn healthz_ok(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    if stream.read_to_string(&mut response).is_err() {
        return false;
    }
    response
        .lines()
        .next()
        .is_some_and(|status| status.split_whitespace().nth(1) == Some("200"))
}
