//! `deploy/local-cluster.sh` end to end: it starts three JetStream nodes and two `funnel serve`
//! processes (this build's binary) in a temporary folder, `status` shows both answering with one
//! of them holding the `sagas` lease and one the `webhooks` lease, and `clean` stops every process it started and deletes the
//! folder. The script uses fixed offsets from two base ports; every port it will bind is checked free,
//! below the ephemeral range so that other tests running at the same time do not take them.

use std::path::Path;
use std::process::Command;

fn script(dir: &Path, nats_port: u16, funnel_port: u16, args: &[&str]) -> (bool, String) {
    let root = funnel_testkit::workspace_root();
    let out = Command::new("bash")
        .arg(root.join("deploy/local-cluster.sh"))
        .args(args)
        .env("FUNNEL_CLUSTER_DIR", dir)
        .env("NATS_PORT", nats_port.to_string())
        .env("FUNNEL_PORT", funnel_port.to_string())
        .env("FUNNEL_BIN", env!("CARGO_BIN_EXE_funnel"))
        .env("NATS_SERVER", funnel_testkit::nats_server_binary())
        .env("FUNNEL__STORE__LEASE_TTL_MS", "2000")
        .env_remove("FUNNEL_STORE")
        .output()
        .expect("run deploy/local-cluster.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every port the script binds for NATS base `nats` and HTTP base `http` with `n` funnels: three
/// client, route and monitoring ports, and an HTTP and a metrics port per funnel.
fn ports_used(nats: u16, http: u16, n: u16) -> Vec<u16> {
    let mut ports: Vec<u16> = (0..3)
        .flat_map(|i| [nats + i, nats + 2000 + i, nats + 4000 + i])
        .collect();
    ports.extend((0..n).flat_map(|i| [http + i, http + 1000 + i]));
    ports
}

/// Base ports for the script whose every port is free now, all of them below the kernel's
/// ephemeral range (32768 and up on Linux), where the ports other tests open (`free_port`,
/// outgoing connections) come from: a port found free here is not taken by them a moment later.
fn base_ports(n: u16) -> (u16, u16) {
    let free = |p: u16| std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, p)).is_ok();
    // A different start for every run, so that two runs at once try different ports.
    let mut next = 10_000 + (std::process::id() as u16 % 100) * 100;
    loop {
        // NATS from `next` (up to next + 4002), HTTP from next + 5000 (up to next + 6001).
        let (nats, http) = (next, next + 5000);
        if ports_used(nats, http, n).into_iter().all(free) {
            return (nats, http);
        }
        next += 10;
        if next > 26_000 {
            next = 10_000;
        }
    }
}

#[test]
fn the_local_cluster_script_starts_reports_and_cleans_up() {
    if which_curl().is_none() {
        eprintln!("SKIPPED: the script needs curl");
        return;
    }
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("cluster");
    let (nats, http) = base_ports(2);
    let (ok, text) = script(&dir, nats, http, &["start", "2"]);
    // Whatever happens next, stop what was started.
    struct Clean<'a>(&'a Path, u16, u16);
    impl Drop for Clean<'_> {
        fn drop(&mut self) {
            let _ = script(self.0, self.1, self.2, &["clean"]);
        }
    }
    let clean = Clean(&dir, nats, http);
    assert!(ok, "start failed: {text}");
    assert!(text.contains(&format!("http://127.0.0.1:{http}")), "{text}");

    // Both answer (the second shares the first's webhook key); exactly one holds the sagas and
    // one the webhooks (bounded wait for the first acquisitions).
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (ok, status) = script(&dir, nats, http, &["status"]);
        assert!(ok, "{status}");
        let funnels: Vec<&str> = status
            .lines()
            .filter(|l| l.starts_with("funnel-"))
            .collect();
        assert_eq!(funnels.len(), 2, "{status}");
        assert!(
            funnels
                .iter()
                .all(|l| l.contains("running") && l.contains("\"status\":\"ready\"")),
            "{status}"
        );
        let holders = |lease: &str| {
            let held = format!("\"{lease}\":{{\"held\":true");
            funnels.iter().filter(|l| l.contains(&held)).count()
        };
        let (sagas, webhooks) = (holders("sagas"), holders("webhooks"));
        assert!(sagas <= 1 && webhooks <= 1, "{status}");
        if sagas == 1 && webhooks == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "nobody holds the sagas or the webhooks: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let pids: Vec<u32> = std::fs::read_dir(dir.join("pids"))
        .expect("pids")
        .filter_map(|e| {
            std::fs::read_to_string(e.ok()?.path())
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(pids.len(), 5, "three NATS nodes and two servers");

    drop(clean);
    assert!(!dir.exists(), "clean deletes the folder");
    for pid in pids {
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(!alive, "process {pid} still runs after clean");
    }
}

fn which_curl() -> Option<()> {
    Command::new("curl")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| ())
}
