//! Several `funnel serve` processes on one JetStream cluster: three NATS nodes, three servers,
//! commands through all three, and `kill -9` of the process holding the `sagas` lease while its
//! saga runtime is working through a backlog of overdue visit-plan deadlines (engineers who joined
//! eight weeks ago, so every weekly and monthly deadline since has a timer that fires at once and
//! sends a `MarkOverdue` command).
//!
//! What must hold: exactly one process holds each lease at a time; after the kill another process
//! takes the `sagas` lease under a greater term (fencing token) and finishes the backlog; every
//! acknowledged command is in the log exactly once; every saga command was sent once (one
//! `workflow.command_sent` per command id, and that command's events in one commit), none parked;
//! and the surviving processes report the same pipeline at the same position. Outcomes only, with
//! bounded waits; `FUNNEL_SOAK=1` runs a longer load and more engineers.
//!
//! The same with the holder paused (`SIGSTOP`) instead of killed, until another process holds
//! the lease, then resumed: it wakes with a reaction in flight, and the same outcomes show that
//! it did not act (no saga command twice, nothing parked), and it reports the lease as not held.

mod common;

use chrono::Utc;
use funnel_app::StoreUrl;
use funnel_domain::Policy;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Engine, Who};
use funnel_store::{EventStore, Filter};
use funnel_testkit::NatsCluster;
use funnel_types::{Actor, ManualClock, OfficeId, Position, Role, StaffId};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A guard against hanging, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);
/// The leases' time to live in this test (the smallest the settings allow is 1 s).
const LEASE_TTL_MS: &str = "3000";

fn soak() -> bool {
    std::env::var_os("FUNNEL_SOAK").is_some_and(|v| v == "1")
}

fn engineers() -> usize {
    if soak() { 60 } else { 12 }
}

fn writes_per_client() -> usize {
    if soak() { 2_000 } else { 60 }
}

struct Response {
    status: u16,
    body: Value,
    text: String,
}

fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<Response> {
    let timeout = Duration::from_secs(30);
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n");
    if let Some(k) = key {
        req.push_str(&format!("Idempotency-Key: {k}\r\n"));
    }
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, text) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(Response {
        status,
        body: serde_json::from_str(text).unwrap_or(Value::Null),
        text: text.to_string(),
    })
}

/// A running `funnel serve` in its own folder (its own read models and checkpoints), killed on drop.
struct Server {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
    _lines: Receiver<String>,
}

impl Server {
    /// `key` is the webhook key file every process of the cluster is given.
    fn start(store: &str, dir: &Path, key: &Path) -> Self {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_funnel"))
            .current_dir(dir)
            .env_remove("FUNNEL_STORE")
            .env_remove("FUNNEL_PROJECTIONS")
            .env("RUST_LOG", "warn,funnel_store::lease=info")
            .env("FUNNEL__STORE__LEASE_TTL_MS", LEASE_TTL_MS)
            .env("FUNNEL__NOTIFY__WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
            .env("FUNNEL__NOTIFY__WEBHOOK_KEY_FILE", key)
            .env("FUNNEL__NOTIFY__WEBHOOK_BACKOFF_INITIAL_MS", "50")
            .env("FUNNEL__NOTIFY__WEBHOOK_BACKOFF_MAX_MS", "500")
            .args(["--store", store, "serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start funnel serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&text);
            }
        });
        let first = lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("funnel serve did not start: {}", stderr.lock().unwrap()));
        let addr = first
            .strip_prefix("funnel serve listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_string();
        Self {
            child,
            addr,
            stderr,
            _lines: lines,
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A read, retried as its `503` and `Retry-After` ask (a process that started late may need
    /// longer than one `at_least` wait to project the log), for up to `PATIENCE`.
    fn get(&self, path: &str, token: &str) -> Value {
        let give_up = Instant::now() + PATIENCE;
        loop {
            let r = http(&self.addr, "GET", path, token, None, None).expect("GET");
            if r.status == 503 && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            assert_eq!(r.status, 200, "GET {path}: {}", r.text);
            return r.body;
        }
    }

    /// The `sagas` lease as `/readyz` reports it: (held, term).
    fn sagas(&self) -> Option<(bool, Option<u64>)> {
        self.lease("sagas")
    }

    /// The lease `name` as `/readyz` reports it: (held, term).
    fn lease(&self, name: &str) -> Option<(bool, Option<u64>)> {
        let r = http(&self.addr, "GET", "/readyz", "", None, None).ok()?;
        let l = &r.body["leases"][name];
        Some((l["held"].as_bool()?, l["term"].as_u64()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An office, an executive, an engineer who registers leads, and `engineers()` more, all written
/// eight weeks ago (on a clock set back), so the sagas start with weeks of overdue plan deadlines.
async fn bootstrap(url: &StoreUrl) {
    let store = funnel_app::open_store_with_replicas(url, Some(3))
        .await
        .expect("store");
    let past = Utc::now() - chrono::Duration::weeks(8);
    let engine = Engine::new(store, Policy::default(), Arc::new(ManualClock::new(past)));
    let sys = || CommandMeta::new(Who::System("bootstrap".into()));
    let office = OfficeId::derived("SH");
    let open = OfficeCommand::Open {
        office_id: office,
        name: "上海办事处".into(),
        code: "SH".into(),
        timezone: "Asia/Shanghai".into(),
        region: String::new(),
    };
    engine
        .execute(
            sys(),
            Command::Office {
                office_id: office,
                cmd: open,
            },
        )
        .await
        .expect("office");
    let mut people = vec![
        ("王总".to_string(), Role::Executive, None),
        ("王工".to_string(), Role::SalesEngineer, Some(office)),
    ];
    for i in 0..engineers() {
        people.push((format!("工程师{i}"), Role::SalesEngineer, Some(office)));
    }
    for (name, role, office) in people {
        let id = StaffId::derived(&name);
        let join = StaffCommand::Join {
            staff_id: id,
            name,
            role,
            office,
        };
        engine
            .execute(
                sys(),
                Command::Staff {
                    staff_id: id,
                    cmd: join,
                },
            )
            .await
            .expect("staff");
    }
}

/// The process holding the `webhooks` lease and its term; never two.
fn webhooks_holder(servers: &[Option<Server>]) -> Option<(usize, u64)> {
    let held: Vec<_> = servers
        .iter()
        .enumerate()
        .filter_map(
            |(i, s)| match s.as_ref().and_then(|s| s.lease("webhooks")) {
                Some((true, Some(t))) => Some((i, t)),
                _ => None,
            },
        )
        .collect();
    assert!(
        held.len() <= 1,
        "two processes hold the webhooks lease: {held:?}"
    );
    held.first().copied()
}

/// What a webhook receiver got: (log position, `webhook-id`) of every request, in arrival order.
type Received = Arc<Mutex<Vec<(u64, String)>>>;

/// A webhook receiver on 127.0.0.1 answering every request `204`, over kept-alive connections.
fn receiver() -> (String, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
    let addr = listener.local_addr().expect("address").to_string();
    let got: Received = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut write = conn.try_clone().expect("clone");
                let mut read = BufReader::new(conn);
                loop {
                    let mut headers = BTreeMap::new();
                    let mut line = String::new();
                    if read.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if read.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let Some((k, v)) = line.trim_end().split_once(':') else {
                            break;
                        };
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    if read.read_exact(&mut body).is_err() {
                        return;
                    }
                    let position = headers
                        .get("funnel-position")
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0);
                    let id = headers.get("webhook-id").cloned().unwrap_or_default();
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((position, id));
                    if write
                        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, got)
}

/// Acknowledged registrations: idempotency key → lead id.
type Acks = Arc<Mutex<BTreeMap<String, String>>>;

/// A client registering leads through the servers in `addrs`, starting with its own; a write that
/// gets no answer (its server was killed) is sent again, with the same key, to the next one.
fn client(n: usize, addrs: Vec<String>, token: String, acks: Acks, stop: Arc<AtomicBool>) {
    let mut at = n % addrs.len();
    for i in 0..writes_per_client() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let body = json!({
            "customer_name": format!("客户{n}-{i}"), "project_name": "楼宇对讲", "industry": "real_estate",
            "purchase_mode": "independent", "channel": "building_sweep", "office": OfficeId::derived("SH"),
            "location": "上海市浦东新区", "contact": { "name": "李经理", "phone": "13800000000" },
            "need": "需要楼宇对讲系统",
        });
        let key = format!("lease-{n}-{i}");
        let give_up = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < give_up, "write {key} never acknowledged");
            match http(
                &addrs[at],
                "POST",
                "/leads",
                &token,
                Some(&key),
                Some(&body),
            ) {
                Ok(r) if r.status == 200 => {
                    let lead = r.body["id"].as_str().expect("lead id").to_string();
                    acks.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, lead);
                    break;
                }
                Ok(r) if r.status == 503 => std::thread::sleep(Duration::from_millis(200)),
                // 0: the connection closed without an answer (its server was killed).
                Ok(r) if r.status != 0 => panic!("write {key}: {} {}", r.status, r.text),
                _ => {
                    at = (at + 1) % addrs.len();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn whole_log(store: &dyn EventStore) -> Vec<funnel_store::RecordedEvent> {
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let page = store
            .read_all(after, &Filter::All, 1000)
            .await
            .expect("read the log");
        let Some(last) = page.last() else {
            return all;
        };
        after = last.meta.position;
        all.extend(page);
    }
}

fn count_commands_sent(log: &[funnel_store::RecordedEvent]) -> usize {
    log.iter()
        .filter(|r| r.meta.event_type == "workflow.command_sent")
        .count()
}

/// A gauge of a Prometheus text exposition.
fn gauge(metrics: &str, name_and_labels: &str) -> Option<i64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name_and_labels)?;
        rest.trim().parse().ok()
    })
}

/// How the holder of the sagas lease is taken out mid-backlog.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outage {
    /// `kill -9`: it never comes back.
    Kill,
    /// `kill -STOP` until another process holds the lease, then `kill -CONT`: a paused holder
    /// wakes up with work in flight and must not act.
    Pause,
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sagas_move_to_another_process_when_their_holder_is_killed() {
    scenario(Outage::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_of_the_sagas_does_not_act_after_another_took_over() {
    scenario(Outage::Pause).await;
}

async fn scenario(outage: Outage) {
    let mut cluster = tokio::task::block_in_place(|| NatsCluster::start(3));
    let store_url = cluster.url_list();
    let url: StoreUrl = store_url.parse().expect("url");
    bootstrap(&url).await;
    let log = funnel_app::open_store_with_replicas(&url, Some(3))
        .await
        .expect("store");
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let (wang, boss) = tokio::task::block_in_place(|| {
        (
            common::staff_token(&store_url, dirs[0].path(), "王工"),
            common::staff_token(&store_url, dirs[0].path(), "王总"),
        )
    });
    let key_dir = tempfile::tempdir().expect("tempdir");
    let key = key_dir.path().join("webhooks.key");
    let mut servers: Vec<Option<Server>> = tokio::task::block_in_place(|| {
        dirs.iter()
            .map(|d| Some(Server::start(&store_url, d.path(), &key)))
            .collect()
    });
    let addrs: Vec<String> = servers
        .iter()
        .map(|s| s.as_ref().expect("started").addr.clone())
        .collect();

    // Exactly one holds the sagas lease.
    let give_up = Instant::now() + PATIENCE;
    let (holder, first_term) = loop {
        let seen: Vec<_> = servers
            .iter()
            .map(|s| s.as_ref().and_then(Server::sagas))
            .collect();
        let held: Vec<_> = seen
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Some((true, Some(t))) => Some((i, *t)),
                _ => None,
            })
            .collect();
        assert!(
            held.len() <= 1,
            "two processes hold the sagas lease: {seen:?}"
        );
        if let [(i, t)] = held[..] {
            break (i, t);
        }
        assert!(
            Instant::now() < give_up,
            "nobody took the sagas lease: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A webhook subscription to every registration, made through one process: whichever holds
    // the `webhooks` lease delivers it.
    let (receiver_addr, received) = receiver();
    let made = http(
        &addrs[(holder + 1) % 3],
        "POST",
        "/webhooks",
        &boss,
        None,
        Some(&json!({
            "url": format!("http://{receiver_addr}/hook"),
            "kinds": ["lead.registered"],
            "from": 0,
        })),
    )
    .expect("make a subscription");
    assert_eq!(made.status, 201, "{}", made.text);
    let give_up = Instant::now() + PATIENCE;
    let first_webhooks = loop {
        if let Some(h) = webhooks_holder(&servers) {
            break h;
        }
        assert!(Instant::now() < give_up, "nobody took the webhooks lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Commands through all three.
    let acks: Acks = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|n| {
            let (addrs, token, acks, stop) =
                (addrs.clone(), wang.clone(), acks.clone(), stop.clone());
            std::thread::spawn(move || client(n, addrs, token, acks, stop))
        })
        .collect();

    // Kill the holder once its runtime has sent its first saga commands (mid-backlog).
    let give_up = Instant::now() + PATIENCE;
    loop {
        let sent = count_commands_sent(&whole_log(log.as_ref()).await);
        if sent > 0 {
            break;
        }
        let stderr = servers[holder]
            .as_ref()
            .map(Server::stderr)
            .unwrap_or_default();
        assert!(
            Instant::now() < give_up,
            "the holder sent no saga command: {stderr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at_kill = log.head().await.expect("head");
    let mut paused = None;
    match outage {
        Outage::Kill => {
            let mut killed = servers[holder].take().expect("holder");
            killed.child.kill().expect("kill -9 the holder");
            let _ = killed.child.wait();
            // And one of the three NATS nodes (the log and the lease bucket keep a quorum).
            tokio::task::block_in_place(|| cluster.kill(2));
        }
        Outage::Pause => {
            let s = servers[holder].take().expect("holder");
            signal(&s.child, "-STOP");
            paused = Some(s);
        }
    }

    // Another process takes the sagas over under a greater term.
    let give_up = Instant::now() + PATIENCE;
    let (new_holder, new_term) = loop {
        let held: Vec<_> = servers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.as_ref().and_then(Server::sagas) {
                Some((true, Some(t))) => Some((i, t)),
                _ => None,
            })
            .collect();
        assert!(
            held.len() <= 1,
            "two processes hold the sagas lease: {held:?}"
        );
        if let [(i, t)] = held[..] {
            break (i, t);
        }
        assert!(Instant::now() < give_up, "nobody took the sagas over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(new_term > first_term, "term {new_term} after {first_term}");
    if let Some(s) = paused.take() {
        // The former holder wakes up with its runtime mid-reaction: its fence refuses its writes
        // and it gives the lease up; it goes on serving.
        signal(&s.child, "-CONT");
        let give_up = Instant::now() + PATIENCE;
        loop {
            match s.sagas() {
                Some((false, None)) => break,
                seen => assert!(
                    Instant::now() < give_up,
                    "the former holder still reports {seen:?}: {}",
                    s.stderr()
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for line in s
            .stderr()
            .lines()
            .filter(|l| l.contains("lease") || l.contains("fenced"))
        {
            eprintln!("FORMER HOLDER: {line}");
        }
        servers[holder] = Some(s);
    }

    for c in clients {
        c.join().expect("client");
    }
    stop.store(true, Ordering::Relaxed);

    // The webhook subscription received every registration, in log order, with no gap, from
    // whichever process held its lease (another one, under a greater term, if the outage hit
    // its holder).
    let registrations: Vec<u64> = whole_log(log.as_ref())
        .await
        .iter()
        .filter(|r| r.meta.event_type == "lead.registered")
        .map(|r| r.meta.position.0)
        .collect();
    let give_up = Instant::now() + PATIENCE;
    let firsts = loop {
        let got = received.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut seen = BTreeSet::new();
        let firsts: Vec<u64> = got
            .iter()
            .filter(|(_, id)| seen.insert(id.clone()))
            .map(|(p, _)| *p)
            .collect();
        if firsts.len() >= registrations.len() {
            break firsts;
        }
        assert!(
            Instant::now() < give_up,
            "the subscription received {} of {} registrations",
            firsts.len(),
            registrations.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        firsts[..registrations.len()],
        registrations[..],
        "every registration once at least, in log order"
    );
    let mut now_webhooks = webhooks_holder(&servers);
    if first_webhooks.0 == holder {
        // The registrations may all have been delivered before the kill: the lease then moves
        // once it expires, which may be after they arrived.
        let give_up = Instant::now() + PATIENCE;
        let (_, term) = loop {
            now_webhooks = webhooks_holder(&servers);
            if let Some(h) = now_webhooks {
                break h;
            }
            assert!(Instant::now() < give_up, "no new webhooks holder");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            term > first_webhooks.1,
            "webhooks term {term} after {}",
            first_webhooks.1
        );
    }

    // The new holder works the backlog off: no timer overdue, nothing parked, caught up.
    let holder_server = servers[new_holder].as_ref().expect("new holder");
    let give_up = Instant::now() + PATIENCE;
    loop {
        let r = http(&holder_server.addr, "GET", "/metrics", &boss, None, None).expect("metrics");
        assert_eq!(r.status, 200, "{}", r.text);
        let m = r.text;
        assert_eq!(
            gauge(&m, "funnel_lease_held{lease=\"sagas\"}"),
            Some(1),
            "{m}"
        );
        let overdue = gauge(&m, "funnel_saga_backlog{what=\"timers_overdue\"}");
        let lag = gauge(&m, "funnel_saga_backlog{what=\"lag_positions\"}");
        let parked = gauge(&m, "funnel_saga_backlog{what=\"reactions_parked\"}");
        if overdue == Some(0) && lag == Some(0) && parked == Some(0) {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "the new holder did not finish the backlog: overdue {overdue:?}, lag {lag:?}, parked {parked:?}: {}",
            holder_server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let all = whole_log(log.as_ref()).await;
    // Every acknowledged registration is in the log exactly once.
    let acks = acks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(acks.len(), 3 * writes_per_client());
    let mut registered: BTreeMap<String, usize> = BTreeMap::new();
    for r in all
        .iter()
        .filter(|r| r.meta.event_type == "lead.registered")
    {
        *registered
            .entry(r.meta.stream.id_part().to_string())
            .or_default() += 1;
    }
    for (key, lead) in &acks {
        assert_eq!(registered.get(lead), Some(&1), "{key} → {lead}");
    }
    // Every saga command once. A saga command is a commit by a `workflow:*` actor outside the
    // workflow streams: each command id is in exactly one commit. The instances record each
    // command they sent once (`workflow.command_sent`), and every recorded command that was
    // accepted (or found already applied) is in the log. A command whose holder died after it
    // was applied and before its instance recorded it is in the log without that record: the
    // next holder sees its effect first and does not send it again.
    let mut applied: BTreeMap<uuid::Uuid, BTreeSet<(String, u64)>> = BTreeMap::new();
    for r in &all {
        let by_saga =
            matches!(&r.meta.actor, Actor::System { name } if name.starts_with("workflow:"));
        if by_saga && r.meta.stream.category() != "workflow" {
            applied
                .entry(r.meta.command_id.0)
                .or_default()
                .insert((r.meta.stream.to_string(), r.meta.position.0 >> 10));
        }
    }
    assert!(!applied.is_empty(), "no saga command in the log");
    for (id, c) in &applied {
        assert_eq!(
            c.len(),
            1,
            "saga command {id} appended more than once: {c:?}"
        );
    }
    let mut sent: BTreeMap<uuid::Uuid, usize> = BTreeMap::new();
    let mut sent_after_kill = 0;
    for r in all
        .iter()
        .filter(|r| r.meta.event_type == "workflow.command_sent")
    {
        let v: Value = serde_json::from_slice(&r.payload).expect("json");
        let id: uuid::Uuid = v["command_id"].as_str().expect("id").parse().expect("uuid");
        *sent.entry(id).or_default() += 1;
        if matches!(v["outcome"].as_str(), Some("accepted" | "duplicate")) {
            assert!(
                applied.contains_key(&id),
                "saga command {id} recorded as {} but not in the log",
                v["outcome"]
            );
        }
        if r.meta.position > at_kill {
            sent_after_kill += 1;
        }
    }
    for (id, n) in &sent {
        assert_eq!(*n, 1, "saga command {id} recorded {n} times");
    }
    assert!(sent_after_kill > 0, "the new holder sent no saga command");
    let unrecorded = applied.keys().filter(|id| !sent.contains_key(id)).count();
    // And none is missing: every plan deadline a visit-plans instance fired (no plan was ever
    // submitted here) has exactly one `plan.overdue` for that engineer and period, and no
    // `plan.overdue` is without its fired deadline.
    use funnel_domain::Event;
    use funnel_domain::events::{TimerPurpose, WorkflowKind};
    let mut fired: BTreeMap<(funnel_types::WorkflowId, String), usize> = BTreeMap::new();
    let mut marked: BTreeMap<(funnel_types::WorkflowId, String), usize> = BTreeMap::new();
    for r in &all {
        match funnel_codec::decode_recorded(r).map(|e| e.payload) {
            Ok(Event::TimerFired(t)) => {
                if let TimerPurpose::PlanDeadline { period } = t.purpose {
                    *fired.entry((t.workflow_id, period.key())).or_default() += 1;
                }
            }
            Ok(Event::VisitPlanOverdue(o)) => {
                let instance = funnel_types::WorkflowId::derived(&format!(
                    "{}:{}",
                    WorkflowKind::VisitPlans.as_str(),
                    o.engineer
                ));
                *marked.entry((instance, o.period.key())).or_default() += 1;
            }
            _ => {}
        }
    }
    assert!(!fired.is_empty());
    assert_eq!(
        fired, marked,
        "fired plan deadlines and plans marked overdue differ"
    );
    assert!(
        !all.iter()
            .any(|r| r.meta.event_type == "workflow.reaction_parked"),
        "a reaction was parked"
    );
    // The surviving processes report the same pipeline at the same position.
    let head = log.head().await.expect("head").0;
    let pipelines: Vec<Value> = servers
        .iter()
        .flatten()
        .map(|s| s.get(&format!("/pipeline?at_least={head}"), &boss))
        .collect();
    let survivors = if outage == Outage::Kill { 2 } else { 3 };
    assert_eq!(pipelines.len(), survivors);
    for p in &pipelines[1..] {
        assert_eq!(&pipelines[0], p, "two processes disagree");
    }
    // A retry of a workflow is for the holder; another process names it.
    let workflow = all
        .iter()
        .find(|r| r.meta.stream.category() == "workflow")
        .map(|r| r.meta.stream.id_part().to_string())
        .expect("a workflow instance");
    let other = servers
        .iter()
        .enumerate()
        .find_map(|(i, s)| s.as_ref().filter(|_| i != new_holder))
        .expect("a process not holding the sagas");
    let path = format!("/workflows/{workflow}/retry");
    let r = http(&other.addr, "POST", &path, &boss, None, Some(&json!({}))).expect("retry");
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["code"], "workflows.elsewhere", "{}", r.text);
    let r = http(
        &holder_server.addr,
        "POST",
        &path,
        &boss,
        None,
        Some(&json!({})),
    )
    .expect("retry");
    assert_eq!(r.status, 200, "{}", r.text);
    // Nor may `funnel workflows run` start a second runtime beside the holder's.
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_funnel"))
            .current_dir(dirs[0].path())
            .env_remove("FUNNEL_STORE")
            .args(["--store", &store_url, "workflows", "run"])
            .output()
            .expect("run funnel")
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "workflows run beside the holder: {err}"
    );
    assert!(err.contains("holds their lease"), "{err}");
    eprintln!(
        "OUTCOME {outage:?}: {} registrations, {} saga commands ({sent_after_kill} recorded after the outage, {unrecorded} applied but not recorded by their instance), sagas lease term {first_term} → {new_term}, webhooks lease {first_webhooks:?} → {now_webhooks:?}, {} requests to the receiver for {} registrations",
        acks.len(),
        applied.len(),
        received.lock().unwrap_or_else(|e| e.into_inner()).len(),
        registrations.len()
    );
}

/// Three NATS nodes with the bootstrapped organisation, folders for two processes, and the
/// executive's token.
struct Cluster {
    cluster: NatsCluster,
    store_url: String,
    url: StoreUrl,
    dirs: Vec<tempfile::TempDir>,
    boss: String,
}

async fn two_process_cluster() -> Cluster {
    let cluster = tokio::task::block_in_place(|| NatsCluster::start(3));
    let store_url = cluster.url_list();
    let url: StoreUrl = store_url.parse().expect("url");
    bootstrap(&url).await;
    let dirs: Vec<_> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let boss =
        tokio::task::block_in_place(|| common::staff_token(&store_url, dirs[0].path(), "王总"));
    Cluster {
        cluster,
        store_url,
        url,
        dirs,
        boss,
    }
}

/// A password set through one process signs in through another, and failed sign-ins counted by
/// both lock the sign-in together: on JetStream the credentials live in the cluster, not beside one
/// process's read models.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_failed_sign_ins_are_shared_by_the_processes_of_a_cluster() {
    let Cluster {
        cluster,
        store_url,
        dirs,
        boss,
        ..
    } = two_process_cluster().await;
    let key = dirs[0].path().join("webhooks.key");
    let servers: Vec<Server> = tokio::task::block_in_place(|| {
        dirs.iter()
            .map(|d| Server::start(&store_url, d.path(), &key))
            .collect()
    });
    let (a, b) = (&servers[0].addr, &servers[1].addr);
    let wang = StaffId::derived("王工");
    let call = |addr: &str, method: &str, path: &str, body: Value| {
        tokio::task::block_in_place(|| {
            http(addr, method, path, &boss, None, Some(&body)).expect("http")
        })
    };
    let invited = call(a, "POST", &format!("/staff/{wang}/invitation"), json!({}));
    assert_eq!(invited.status, 201, "{}", invited.text);
    let path = invited.body["accept_path"]
        .as_str()
        .expect("accept_path")
        .to_string();
    let accepted = call(a, "POST", &path, json!({ "password": "Shanghai-2026!" }));
    assert_eq!(accepted.status, 200, "{}", accepted.text);

    // The other process knows the password (waiting for its read models to know the person).
    let give_up = Instant::now() + PATIENCE;
    loop {
        let r = call(
            b,
            "POST",
            "/session",
            json!({ "login": "王工", "password": "Shanghai-2026!" }),
        );
        if r.status == 201 {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "sign-in through the other process: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Five wrong passwords, alternately through each process: one lock for both.
    for i in 0..5 {
        let addr = if i % 2 == 0 { a } else { b };
        let r = call(
            addr,
            "POST",
            "/session",
            json!({ "login": "王工", "password": "not the password 1" }),
        );
        assert_eq!(r.status, 401, "attempt {i}: {}", r.text);
    }
    let give_up = Instant::now() + PATIENCE;
    for addr in [a, b] {
        loop {
            let r = call(
                addr,
                "POST",
                "/session",
                json!({ "login": "王工", "password": "Shanghai-2026!" }),
            );
            if r.status == 403 {
                assert_eq!(r.body["code"], "auth.sign_in_locked", "{}", r.text);
                break;
            }
            assert!(
                Instant::now() < give_up,
                "not locked through {addr}: {}",
                r.text
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    drop(servers);
    drop(cluster);
}

/// A process that kept webhook subscriptions in its own file (before they were shared) moves them
/// into the cluster's buckets at its first start: the same subscription, cursor and secret key,
/// served by every process; the file is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_kept_in_a_process_file_move_into_the_cluster() {
    use funnel_notify::webhooks::{NewSubscription, Targets, Webhooks};
    let Cluster {
        cluster: _cluster,
        store_url,
        url,
        dirs,
        boss,
    } = two_process_cluster().await;
    // What the first process's folder held: its subscriptions beside its read models.
    let models = dirs[0].path().join(funnel_server::projections_path(&url));
    let file = models.with_file_name(format!(
        "{}.webhooks.db",
        models.file_stem().expect("stem").to_string_lossy()
    ));
    std::fs::create_dir_all(file.parent().expect("folder")).expect("folder");
    let old = Webhooks::open(&file).expect("the old file");
    old.set_targets(Targets::new(&["127.0.0.1".into()]).expect("targets"));
    let (made, _) = old
        .create(NewSubscription {
            url: "http://127.0.0.1:9/hook".into(),
            description: "CRM".into(),
            selector: Default::default(),
            after: Position(1),
            created_by: "王总".into(),
            owner: Some(StaffId::derived("王总")),
            owner_since: Position(1),
        })
        .await
        .expect("a subscription");
    let paused = old.pause(made.id).await.expect("paused");
    drop(old);
    let key = file.with_extension("key");
    let servers: Vec<Server> = tokio::task::block_in_place(|| {
        dirs.iter()
            .map(|d| Server::start(&store_url, d.path(), &key))
            .collect()
    });
    assert!(!file.exists(), "the old file is deleted once moved");
    for s in &servers {
        let got = s.get(&format!("/webhooks/{}", made.id), &boss);
        assert_eq!(got["cursor"], json!(1), "{got}");
        assert_eq!(got["paused"], json!(true), "{got}");
        assert_eq!(got["revision"], json!(paused.revision), "{got}");
        assert_eq!(got["description"], "CRM", "{got}");
    }
}
