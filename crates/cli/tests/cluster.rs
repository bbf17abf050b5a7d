//! Failover under load: a three-node JetStream cluster, the real `funnel serve` with replicas 3,
//! four HTTP clients registering leads, and `kill -9` of the node leading the `FUNNEL` stream, then
//! of the node leading `FUNNEL_NOTIFY`.
//!
//! What must hold: while a killed node is still down, writes are acknowledged again (a new leader
//! is elected and `funnel serve` uses it without a restart); a write that failed meanwhile is
//! answered with a retryable 503 and `Retry-After`, and its retry with the same Idempotency-Key
//! is applied once; after the node returns every acknowledged write is in the log exactly once,
//! the pipeline read model equals a replay of the log, and every event of the log is in the
//! notification stream exactly once (read by a consumer of `funnel.notify.>`).
//!
//! The figures (how long no write was acknowledged after each kill, how many were acknowledged
//! while the node was down) are printed, not asserted: timings depend on the machine. Every wait is
//! bounded; the load is bounded in count. `FUNNEL_SOAK=1` runs a longer load.

mod common;

use async_nats::jetstream::{self, consumer, stream};
use funnel_app::StoreUrl;
use funnel_domain::Policy;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Engine, Who};
use funnel_store::{EventStore, Filter};
use funnel_testkit::NatsCluster;
use funnel_types::{OfficeId, Position, Role, StaffId, SystemClock};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A guard against hanging, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);
/// Concurrent HTTP clients.
const CLIENTS: usize = 4;

fn soak() -> bool {
    std::env::var_os("FUNNEL_SOAK").is_some_and(|v| v == "1")
}

/// Writes each client makes at most (the load is bounded in count; it normally stops earlier).
fn writes_per_client() -> usize {
    if soak() { 20_000 } else { 1_000 }
}

/// The pause between two writes of a client.
const PAUSE: Duration = Duration::from_millis(25);

/// One acknowledged registration.
#[derive(Clone, Debug)]
struct Ack {
    /// When the attempt that was acknowledged was sent.
    sent: Instant,
    /// Attempts it took (more than one: the earlier ones were answered 503 or not at all).
    attempts: usize,
    acked: Instant,
    lead: String,
    position: u64,
}

#[derive(Default)]
struct Load {
    acks: Mutex<Vec<Ack>>,
    /// 503 answers (each carried `Retry-After`).
    unavailable: AtomicUsize,
    /// Attempts whose connection failed or timed out before an answer.
    failed_attempts: AtomicUsize,
    stop: AtomicBool,
}

impl Load {
    fn acks(&self) -> Vec<Ack> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn acked_sent_after(&self, t: Instant) -> Vec<Ack> {
        self.acks().into_iter().filter(|a| a.sent > t).collect()
    }
}

struct Response {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    text: String,
}

/// One HTTP/1.1 request over a fresh connection; `Err` when no answer came (within `timeout`).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    key: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
) -> std::io::Result<Response> {
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
    let retry_after = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("retry-after")
            .then(|| v.trim().to_string())
    });
    Ok(Response {
        status,
        retry_after,
        body: serde_json::from_str(text).unwrap_or(Value::Null),
        text: text.to_string(),
    })
}

/// A client: registers leads until told to stop or `writes_per_client` are acknowledged; a write
/// that is not acknowledged (503, or no answer) is sent again with the same Idempotency-Key.
fn client(n: usize, addr: String, token: String, load: Arc<Load>) {
    for i in 0..writes_per_client() {
        if load.stop.load(Ordering::Relaxed) {
            return;
        }
        let body = json!({
            "customer_name": format!("客户{n}-{i}"), "project_name": "楼宇对讲", "industry": "real_estate",
            "purchase_mode": "independent", "channel": "building_sweep", "office": OfficeId::derived("SH"),
            "location": "上海市浦东新区", "contact": { "name": "李经理", "phone": "13800000000" },
            "need": "需要楼宇对讲系统",
        });
        let key = format!("failover-{n}-{i}");
        let first_sent = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(
                first_sent.elapsed() < PATIENCE,
                "write {key} not acknowledged within {PATIENCE:?}"
            );
            let sent = Instant::now();
            match http(
                &addr,
                "POST",
                "/leads",
                &token,
                Some(&key),
                Some(&body),
                Duration::from_secs(30),
            ) {
                Ok(r) if r.status == 200 => {
                    let ack = Ack {
                        sent,
                        attempts,
                        acked: Instant::now(),
                        lead: r.body["id"].as_str().expect("lead id").to_string(),
                        position: r.body["position"].as_u64().expect("position"),
                    };
                    load.acks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(ack);
                    break;
                }
                Ok(r) if r.status == 503 => {
                    assert_eq!(r.body["code"], "server.unavailable", "{}", r.text);
                    assert!(r.retry_after.is_some(), "a 503 without Retry-After");
                    load.unavailable.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) => panic!("write {key}: {} {}", r.status, r.text),
                Err(_) => {
                    load.failed_attempts.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Shorter than Retry-After, so the figures show when writes work again.
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(PAUSE);
    }
}

/// A running `funnel serve`, killed on drop.
struct Server {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
    _lines: Receiver<String>,
}

impl Server {
    fn start(store: &str, dir: &Path, args: &[&str]) -> Self {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_funnel"))
            .current_dir(dir)
            .env_remove("FUNNEL_STORE")
            .env_remove("FUNNEL_PROJECTIONS")
            .env("RUST_LOG", "warn")
            .args(["--store", store, "serve", "--listen", "127.0.0.1:0"])
            .args(args)
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

    /// A read, retried as its `503` and `Retry-After` ask (after a failover the read models may
    /// take longer than one `at_least` wait to catch up), for up to `PATIENCE`.
    fn get(&self, path: &str, token: &str) -> Value {
        let give_up = Instant::now() + PATIENCE;
        loop {
            let r = http(&self.addr, "GET", path, token, None, None, PATIENCE).expect("GET");
            if r.status == 503 && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            assert_eq!(r.status, 200, "GET {path}: {}", r.text);
            return r.body;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An office, an engineer and a manager, written before the server starts (this creates the log
/// stream with three replicas).
async fn bootstrap(url: &StoreUrl) {
    let store = funnel_app::open_store_with_replicas(url, Some(3))
        .await
        .expect("store");
    let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
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
    for (name, role) in [
        ("王工", Role::SalesEngineer),
        ("陈经理", Role::OfficeManager),
    ] {
        let id = StaffId::derived(name);
        let join = StaffCommand::Join {
            staff_id: id,
            name: name.into(),
            role,
            office: Some(office),
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

/// The stream's info, retried while the cluster elects leaders (bounded).
async fn stream_info(js: &jetstream::Context, name: &str) -> stream::Info {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let attempt = async {
            let mut s = js.get_stream(name).await.map_err(|e| e.to_string())?;
            s.info().await.cloned().map_err(|e| e.to_string())
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(info)) => return info,
            Ok(Err(e)) if Instant::now() > give_up => panic!("stream {name}: {e}"),
            Err(_) if Instant::now() > give_up => panic!("stream {name}: no answer"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The node leading `name`, waiting (bounded) until it has one.
async fn leader(js: &jetstream::Context, cluster: &Mutex<NatsCluster>, name: &str) -> usize {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let info = stream_info(js, name).await;
        if let Some(i) = info.cluster.and_then(|c| c.leader).and_then(|l| {
            cluster
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .node_named(&l)
        }) {
            return i;
        }
        assert!(Instant::now() < give_up, "stream {name} has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every event of the log (lead streams and all others).
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

/// Every message of the notification stream, read by a consumer of `funnel.notify.>`: event id
/// (`Nats-Msg-Id`) → how often it arrived.
async fn notifications(js: &jetstream::Context) -> BTreeMap<String, usize> {
    let mut s = js.get_stream("FUNNEL_NOTIFY").await.expect("notify stream");
    let total = s.info().await.expect("info").state.messages;
    let consumer = s
        .create_consumer(consumer::pull::Config {
            filter_subject: "funnel.notify.>".into(),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut seen = BTreeMap::new();
    let mut got = 0;
    while got < total {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("a notification within 10 s")
            .expect("the consumer ended")
            .expect("a message");
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_string())
            .expect("Nats-Msg-Id");
        *seen.entry(id).or_insert(0) += 1;
        got += 1;
    }
    seen
}

/// Kills the leader of `stream_name` while the load runs and waits until writes are acknowledged
/// again with the node still down; restarts it. Returns (seconds until the first acknowledged
/// write sent after the kill, writes acknowledged while the node was down, of which retried,
/// seconds until the notification stream grew again; the last one is seen by polling).
async fn kill_leader_under_load(
    cluster: &Arc<Mutex<NatsCluster>>,
    js: &jetstream::Context,
    load: &Load,
    stream_name: &str,
) -> (f64, usize, usize, f64) {
    let node = leader(js, cluster, stream_name).await;
    let notify_before = stream_info(js, "FUNNEL_NOTIFY").await.state.last_sequence;
    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.lock().unwrap_or_else(|e| e.into_inner()).kill(node));
    // Writes must be acknowledged again while the node is down: a new leader took over.
    let give_up = Instant::now() + PATIENCE;
    let mut notified_again = None;
    loop {
        let after = load.acked_sent_after(killed);
        let notified = stream_info(js, "FUNNEL_NOTIFY").await.state.last_sequence;
        if notified > notify_before && notified_again.is_none() {
            notified_again = Some(killed.elapsed().as_secs_f64());
        }
        if after.len() >= 10 && notified_again.is_some() {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "no writes acknowledged ({} of {}) or notified ({notify_before} → {notified}) within \
             {PATIENCE:?} of killing the leader of {stream_name}",
            after.len(),
            load.acks().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let down = tokio::task::block_in_place(|| {
        let mut c = cluster.lock().unwrap_or_else(|e| e.into_inner());
        assert!(!c.is_running(node), "the killed node is still down");
        c.restart(node);
        Instant::now()
    });
    let acks = load.acks();
    let gap = acks
        .iter()
        .filter(|a| a.sent > killed)
        .map(|a| a.acked)
        .min()
        .expect("acknowledged after the kill")
        .duration_since(killed)
        .as_secs_f64();
    let during = acks
        .iter()
        .filter(|a| a.acked > killed && a.acked < down)
        .count();
    let retried = acks
        .iter()
        .filter(|a| a.acked > killed && a.attempts > 1)
        .count();
    (gap, during, retried, notified_again.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_while_a_stream_leader_is_down_and_nothing_is_lost_or_doubled() {
    let cluster = tokio::task::block_in_place(|| NatsCluster::start(3));
    let store = cluster.url_list();
    let cluster = Arc::new(Mutex::new(cluster));
    let dir = tempfile::tempdir().expect("tempdir");
    let url: StoreUrl = store.parse().expect("url");
    bootstrap(&url).await;
    let (wang, manager) = tokio::task::block_in_place(|| {
        (
            common::staff_token(&store, dir.path(), "王工"),
            common::staff_token(&store, dir.path(), "陈经理"),
        )
    });
    let server = tokio::task::block_in_place(|| {
        Server::start(&store, dir.path(), &["--replicas", "3", "--no-workflows"])
    });

    let addrs = funnel_store_nats::server_addrs(&store).expect("addrs");
    let nc = async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .connect(addrs)
        .await
        .expect("connect");
    let js = jetstream::new(nc);
    // Both streams are replicated three times: the log by the bootstrap, notifications by serve.
    let give_up = Instant::now() + PATIENCE;
    while js.get_stream("FUNNEL_NOTIFY").await.is_err() {
        assert!(
            Instant::now() < give_up,
            "no FUNNEL_NOTIFY: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in ["FUNNEL", "FUNNEL_NOTIFY"] {
        let info = stream_info(&js, name).await;
        assert_eq!(info.config.num_replicas, 3, "{name}");
    }

    let load = Arc::new(Load::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (addr, token, load) = (server.addr.clone(), wang.clone(), load.clone());
            std::thread::spawn(move || client(n, addr, token, load))
        })
        .collect();
    let give_up = Instant::now() + PATIENCE;
    while load.acks().len() < 20 {
        assert!(Instant::now() < give_up, "no load: {}", server.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let rounds = if soak() { 5 } else { 1 };
    for round in 1..=rounds {
        for stream_name in ["FUNNEL", "FUNNEL_NOTIFY"] {
            let (gap, during, retried, notified) =
                kill_leader_under_load(&cluster, &js, &load, stream_name).await;
            eprintln!(
                "FIGURES round {round}: leader of {stream_name} killed: first write sent after \
                 the kill acknowledged {gap:.1} s after it; {during} writes acknowledged while \
                 the node was down ({retried} of them after a 503 or no answer); notifications \
                 published again after {notified:.1} s"
            );
        }
    }
    load.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client failed");
    }
    let acks = load.acks();
    eprintln!(
        "FIGURES: {} writes acknowledged in all, {} answers 503 (with Retry-After), {} attempts \
         without an answer",
        acks.len(),
        load.unavailable.load(Ordering::Relaxed),
        load.failed_attempts.load(Ordering::Relaxed),
    );

    // Every acknowledged write is in the log exactly once, and nothing else was registered.
    let reader = funnel_app::open_store(&url).await.expect("store");
    let events = whole_log(reader.as_ref()).await;
    let mut registered: BTreeMap<String, usize> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e.meta.event_type == "lead.registered")
    {
        *registered.entry(e.meta.stream.to_string()).or_insert(0) += 1;
    }
    let acked: BTreeSet<String> = acks.iter().map(|a| format!("lead-{}", a.lead)).collect();
    assert_eq!(acked.len(), acks.len(), "two writes answered with one lead");
    assert!(
        registered.values().all(|n| *n == 1),
        "a lead registered twice"
    );
    assert_eq!(
        registered.keys().cloned().collect::<BTreeSet<_>>(),
        acked,
        "the log's registrations differ from the acknowledged writes"
    );

    // The served pipeline equals a replay of the log up to the same position.
    let head = acks.iter().map(|a| a.position).max().expect("writes");
    let live = server.get(&format!("/pipeline?at_least={head}"), &manager);
    let position = live["position"].as_u64().expect("position");
    let replayed = server.get(&format!("/pipeline?as_of={position}"), &manager);
    assert_eq!(live["offices"], replayed["offices"], "pipeline ≠ replay");

    // Every event reaches a consumer of funnel.notify.> exactly once.
    let ids: BTreeSet<String> = events
        .iter()
        .map(|e| e.meta.event_id.as_uuid().to_string())
        .collect();
    let give_up = Instant::now() + PATIENCE;
    loop {
        let seen = notifications(&js).await;
        let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(doubled.is_empty(), "notified twice: {doubled:?}");
        let missing: Vec<_> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
        if missing.is_empty() {
            assert_eq!(
                seen.len(),
                ids.len(),
                "notifications of events not in the log"
            );
            break;
        }
        assert!(
            Instant::now() < give_up,
            "{} events never notified (of {}), e.g. {:?}; stderr:\n{}",
            missing.len(),
            ids.len(),
            &missing[..missing.len().min(3)],
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A log created with one replica on a three-node cluster: `funnel serve` (asking for three by
/// default) says so at start and leaves it; `funnel store set-replicas 3` moves it, with progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_keeps_its_replicas_until_the_operator_changes_them() {
    let cluster = tokio::task::block_in_place(|| NatsCluster::start(3));
    let store = cluster.url_list();
    let dir = tempfile::tempdir().expect("tempdir");
    let url: StoreUrl = store.parse().expect("url");
    funnel_app::open_store_with_replicas(&url, Some(1))
        .await
        .expect("a log with one replica");
    let server =
        tokio::task::block_in_place(|| Server::start(&store, dir.path(), &["--no-workflows"]));
    let give_up = Instant::now() + PATIENCE;
    while !server.stderr().contains("set-replicas 3 --stream FUNNEL`") {
        assert!(
            Instant::now() < give_up,
            "no warning about the log's replicas: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let addrs = funnel_store_nats::server_addrs(&store).expect("addrs");
    let js = jetstream::new(async_nats::connect(addrs).await.expect("connect"));
    assert_eq!(stream_info(&js, "FUNNEL").await.config.num_replicas, 1);
    drop(server);

    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_funnel"))
            .current_dir(dir.path())
            .env_remove("FUNNEL_STORE")
            .args([
                "--store",
                &store,
                "store",
                "set-replicas",
                "3",
                "--wait",
                "60",
            ])
            .output()
            .expect("run funnel store set-replicas")
    });
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("replicas current"), "no progress: {stderr}");
    assert!(
        stdout.contains("FUNNEL: 3 replicas, all current"),
        "{stdout}"
    );
    let info = stream_info(&js, "FUNNEL").await;
    assert_eq!(info.config.num_replicas, 3);
    assert_eq!(info.cluster.expect("cluster").replicas.len(), 2);

    let status = tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_funnel"))
            .current_dir(dir.path())
            .env_remove("FUNNEL_STORE")
            .args(["--store", &store, "store", "status", "--json"])
            .output()
            .expect("run funnel store status")
    });
    let list: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(list[0]["stream"], "FUNNEL");
    assert_eq!(list[0]["replicas"], 3);
}
