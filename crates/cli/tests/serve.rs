//! End to end: the real `funnel serve` binary on an ephemeral port, driven over HTTP, on both
//! backends (a SQLite file, and a real `nats-server` started with `funnel-testkit`).
//!
//! - The API scenario: tokens issued with `funnel staff token`, a registration, a visit (retried
//!   with the same Idempotency-Key), a refused touch by another engineer that shows in the lead's
//!   audit, `/pipeline` read with `at_least` the write's position, the probes, SIGTERM stopping
//!   the server cleanly, and a restart that still serves all of it; a webhook subscription made by
//!   the office manager receives every lead event of the office, signed and in log order, and on
//!   JetStream the same events arrive on `funnel.notify.SH.lead.*`.
//! - `serve --demo`: the printed tokens and curl commands work against the API, the tokens file is
//!   private, and a restart writes no demo events and reuses the same tokens.
//!
//! Waits are bounded (a test fails instead of hanging); nothing asserts on wall-clock time.
//!
//! This test lives in the CLI package (not `tests/it`) because `env!("CARGO_BIN_EXE_funnel")`, the
//! reliable way to find the freshly built binary, is only set for the binary's own package.

use funnel_app::StoreUrl;
use funnel_domain::Policy;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Engine, Who};
use funnel_testkit::NatsServer;
use funnel_types::{OfficeId, Role, StaffId, SystemClock};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any one wait may take before the test gives up: a guard against hanging, not a timing
/// assertion (the first start of a debug build on a busy machine can be slow).
const PATIENCE: Duration = Duration::from_secs(120);

/// A store to run against, with the directory the processes run in (read models and the demo
/// tokens file go there) and, for NATS, the server (killed on drop).
struct Backend {
    store: String,
    dir: tempfile::TempDir,
    _nats: Option<NatsServer>,
}

impl Backend {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = format!("sqlite:{}", dir.path().join("funnel.db").display());
        Self {
            store,
            dir,
            _nats: None,
        }
    }

    fn nats() -> Self {
        let nats = NatsServer::start();
        Self {
            store: nats.url(),
            dir: tempfile::tempdir().expect("tempdir"),
            _nats: Some(nats),
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn url(&self) -> StoreUrl {
        self.store.parse().expect("store url")
    }

    /// `funnel --store … --projections …` run inside the backend's directory.
    fn funnel(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_funnel"));
        c.current_dir(self.dir())
            .env_remove("FUNNEL_STORE")
            .env_remove("FUNNEL_PROJECTIONS")
            .env("NO_COLOR", "1")
            .args(["--store", &self.store])
            .arg("--projections")
            .arg(self.dir().join("read-models.db"));
        c
    }

    /// Runs `funnel …` to completion and returns its standard output.
    fn run(&self, args: &[&str]) -> String {
        let out = self.funnel().args(args).output().expect("run funnel");
        assert!(
            out.status.success(),
            "funnel {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn token(&self, staff: &str) -> String {
        let text = self.run(&["staff", "token", staff]);
        text.lines()
            .find_map(|l| l.strip_prefix("token:").map(|t| t.trim().to_string()))
            .unwrap_or_else(|| panic!("no token in {text}"))
    }
}

/// An office, two engineers and their manager, written through the engine before the server starts.
async fn bootstrap(url: &StoreUrl) {
    let store = funnel_app::open_store(url).await.expect("store");
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
    let cmd = Command::Office {
        office_id: office,
        cmd: open,
    };
    engine.execute(sys(), cmd).await.expect("office");
    for (name, role) in [
        ("王工", Role::SalesEngineer),
        ("李工", Role::SalesEngineer),
        ("陈经理", Role::OfficeManager),
    ] {
        let id = StaffId::derived(name);
        let join = StaffCommand::Join {
            staff_id: id,
            name: name.into(),
            role,
            office: Some(office),
        };
        let cmd = Command::Staff {
            staff_id: id,
            cmd: join,
        };
        engine.execute(sys(), cmd).await.expect("staff");
    }
}

/// A running `funnel serve`: its standard output line by line (read on a thread, so every wait is
/// bounded) and its standard error collected for failure messages. Killed on drop if still running.
struct Server {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    addr: String,
}

impl Server {
    fn start(backend: &Backend, args: &[&str]) -> Self {
        let mut child = backend
            .funnel()
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            // The test's webhook receiver is on this machine: allowed explicitly.
            .env("FUNNEL__NOTIFY__WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
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
        let stderr_reader = std::thread::spawn(move || {
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
        let mut server = Self {
            child,
            lines,
            stderr,
            stderr_reader: Some(stderr_reader),
            addr: String::new(),
        };
        let first = server.next_line();
        server.addr = first
            .strip_prefix("funnel serve listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_string();
        server
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The next line of standard output, waiting at most [`PATIENCE`].
    fn next_line(&self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "funnel serve printed nothing more; stderr:\n{}",
                    self.stderr()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("funnel serve closed its output; stderr:\n{}", self.stderr())
            }
        }
    }

    /// Lines of standard output up to and including the first one starting with `last`.
    fn lines_until(&self, last: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.next_line();
            let done = line.starts_with(last);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    fn get(&self, path: &str, token: &str) -> Response {
        http(&self.addr, "GET", path, Some(token), &[], None)
    }

    fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        http(&self.addr, "POST", path, Some(token), &[], Some(body))
    }

    /// A request to a server allowing one connection: the server lets the previous request's
    /// connection go a moment after the client closed it, so `server.busy` (answered before the
    /// request is read, so nothing was done) is retried until the slot is free (bounded).
    fn when_free(&self, send: impl Fn() -> Response) -> Response {
        let give_up = Instant::now() + PATIENCE;
        loop {
            let r = send();
            if r.status != 503 || r.body["code"] != "server.busy" || Instant::now() > give_up {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to end; its exit status and stderr.
    fn stop(mut self) -> (ExitStatus, String) {
        let term = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("send SIGTERM");
        assert!(term.success());
        let give_up = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < give_up,
                "funnel serve did not stop after SIGTERM; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        (status, self.stderr())
    }

    fn stop_cleanly(self) {
        let (status, stderr) = self.stop();
        assert!(status.success(), "exit {status:?}: {stderr}");
        assert!(stderr.contains("stopped"), "{stderr}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Response {
    status: u16,
    body: Value,
    text: String,
}

/// One HTTP/1.1 request over a fresh connection (bounded by socket timeouts).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Response {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s.set_write_timeout(Some(PATIENCE)).expect("timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8_lossy(&raw).to_string();
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (_, text) = raw.split_once("\r\n\r\n").unwrap_or(("", ""));
    Response {
        status,
        body: serde_json::from_str(text).unwrap_or(Value::Null),
        text: text.to_string(),
    }
}

fn scenario(backend: &Backend) {
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(bootstrap(&backend.url()));
    let wang = backend.token("王工");
    let li = backend.token("李工");
    let server = Server::start(backend, &[]);

    // Probes and the OpenAPI document need no token.
    let r = http(&server.addr, "GET", "/healthz", None, &[], None);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = http(&server.addr, "GET", "/openapi.json", None, &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"], "3.1.0");
    let r = server.get("/me", &wang);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "王工");
    assert_eq!(r.body["role"], "sales_engineer");

    let registration = json!({
        "customer_name": "万科", "project_name": "城市花园（二期）", "industry": "real_estate",
        "purchase_mode": "independent", "channel": "building_sweep", "office": OfficeId::derived("SH"),
        "location": "上海市浦东新区", "contact": { "name": "李经理", "phone": "13800000000" },
        "need": "需要楼宇对讲系统",
    });
    let r = server.post("/leads", &wang, &registration);
    assert_eq!(r.status, 200, "{}", r.text);
    let lead = r.body["id"].as_str().expect("lead id").to_string();
    let registered = r.body["position"].as_u64().expect("position");

    // The lead index finds it however the name or the phone is written (万科·城市花园, +86 …).
    for q in [
        "%E4%B8%87%E7%A7%91%C2%B7%E5%9F%8E%E5%B8%82%E8%8A%B1%E5%9B%AD",
        "%2B86%20138-0000-0000",
    ] {
        let r = server.get(&format!("/leads?q={q}&at_least={registered}"), &wang);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["leads"][0]["id"], lead.as_str(), "{q}: {}", r.text);
        assert_eq!(r.body["total"], 1, "{q}: {}", r.text);
    }

    // The owner logs a visit; a retry with the same Idempotency-Key writes nothing new.
    let visit = json!({ "kind": "visit", "visited_at": "2026-03-02T09:30:00Z",
        "purposes": [], "summary": "介绍产品" });
    let visit_uri = format!("/leads/{lead}/commands/log_visit");
    let key = [("Idempotency-Key", "e2e-visit-1")];
    let first = http(
        &server.addr,
        "POST",
        &visit_uri,
        Some(&wang),
        &key,
        Some(&visit),
    );
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["events"][0]["type"], "lead.visit_logged");
    assert_eq!(first.body["duplicate"], false);
    let visited = first.body["position"].as_u64().expect("position");
    assert!(visited > registered);
    let again = http(
        &server.addr,
        "POST",
        &visit_uri,
        Some(&wang),
        &key,
        Some(&visit),
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["duplicate"], true, "{}", again.text);
    assert_eq!(again.body["position"], first.body["position"]);

    // Another engineer's touch is refused, and the refusal is recorded.
    let poach = json!({ "kind": "visit", "visited_at": "2026-03-03T09:30:00Z",
        "purposes": [], "summary": "抢客户" });
    let r = server.post(&visit_uri, &li, &poach);
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["code"], "lead.not_owner");
    let refused_at = r.body["recorded_position"]
        .as_u64()
        .expect("the refusal is recorded");
    assert!(refused_at > visited);

    let audit_uri = format!("/leads/{lead}/audit?at_least={refused_at}");
    let check_audit = |server: &Server| {
        let r = server.get(&audit_uri, &wang);
        assert_eq!(r.status, 200, "{}", r.text);
        let touches = r.body["touches"].as_array().expect("touches");
        let actions: Vec<&str> = touches
            .iter()
            .filter_map(|t| t["action"].as_str())
            .collect();
        assert!(
            actions.contains(&"lead.registered") && actions.contains(&"lead.visit_logged"),
            "{actions:?}"
        );
        assert!(
            touches
                .iter()
                .any(|t| t["refused"] == true && t["actor_name"] == "李工"),
            "{touches:?}"
        );
    };
    check_audit(&server);

    let r = server.get(&format!("/pipeline?at_least={refused_at}"), &wang);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["position"].as_u64().expect("position") >= refused_at);
    let offices = r.body["offices"].as_array().expect("offices");
    assert_eq!(offices.len(), 1, "{offices:?}");
    assert_eq!(offices[0]["code"], "SH");
    assert!(
        offices[0]["by_engineer"].get("王工").is_some(),
        "{}",
        offices[0]
    );

    notifications(backend, &server, &wang, &backend.token("陈经理"));

    let r = http(&server.addr, "GET", "/metrics", None, &[], None);
    assert_eq!(
        r.status, 401,
        "no metrics without a token on the API's address"
    );
    let r = server.get("/metrics", &backend.token("陈经理"));
    assert_eq!(
        r.status, 403,
        "an office manager does not read every office"
    );
    let r = server.get("/me", "not-a-token");
    assert_eq!(r.status, 401, "{}", r.text);
    server.stop_cleanly();

    // A second start on the same store and read models serves the same facts.
    let server = Server::start(backend, &[]);
    check_audit(&server);
    server.stop_cleanly();
}

/// One received request: headers (names in lower case) and body.
type Request = (std::collections::HashMap<String, String>, String);

/// A webhook receiver on loopback: records each request's headers and body, answers 204.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Hook {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(PATIENCE));
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut headers = std::collections::HashMap::new();
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((headers, String::from_utf8_lossy(&body).to_string()));
                let _ = conn.write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { url, got }
    }
}

/// Subscribers see the office's lead events: a webhook (signed, in log order) on both backends,
/// and on JetStream the `funnel.notify.SH.lead.*` subjects.
fn notifications(backend: &Backend, server: &Server, engineer: &str, manager: &str) {
    // What the office's lead events are, from the API's own log.
    let r = server.get("/events?limit=1000", engineer);
    assert_eq!(r.status, 200, "{}", r.text);
    let expected: Vec<String> = r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| {
            e["event_type"]
                .as_str()
                .is_some_and(|t| t.starts_with("lead."))
        })
        .map(|e| e["event_id"].as_str().expect("id").to_string())
        .collect();
    assert!(expected.len() >= 3, "{}", r.text);

    let hook = Hook::start();
    let sub = json!({ "url": hook.url, "kinds": ["lead.*"], "from": 0 });
    let r = server.post("/webhooks", manager, &sub);
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["secret"].as_str().expect("secret").to_string();
    let id = r.body["subscription"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let deadline = Instant::now() + PATIENCE;
    while hook.got.lock().expect("lock").len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "webhook deliveries did not arrive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = hook.got.lock().expect("lock").clone();
    let ids: Vec<String> = got.iter().map(|(h, _)| h["webhook-id"].clone()).collect();
    assert_eq!(ids, expected, "every lead event of SH, in log order");
    for (h, body) in &got {
        let ts: i64 = h["webhook-timestamp"].parse().expect("timestamp");
        assert!(
            funnel_notify::webhooks::sign::verify(
                &secret,
                &h["webhook-id"],
                ts,
                body.as_bytes(),
                &h["webhook-signature"]
            ),
            "signature of {body}"
        );
        assert_eq!(h["content-type"], "application/cloudevents+json");
    }
    let r = server.get(&format!("/webhooks/{id}"), manager);
    assert_eq!(r.body["delivered"], expected.len(), "{}", r.text);

    if backend._nats.is_none() {
        return;
    }
    // JetStream: the same events on the office's subjects.
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let client = async_nats::connect(backend.store.as_str())
                .await
                .expect("connect");
            let js = async_nats::jetstream::new(client);
            let deadline = Instant::now() + PATIENCE;
            let stream = loop {
                if let Ok(s) = js.get_stream("FUNNEL_NOTIFY").await {
                    break s;
                }
                assert!(Instant::now() < deadline, "no FUNNEL_NOTIFY stream");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let consumer = stream
                .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                    filter_subject: "funnel.notify.SH.lead.>".into(),
                    ..Default::default()
                })
                .await
                .expect("consumer");
            let mut messages = consumer.messages().await.expect("messages");
            let mut seen = Vec::new();
            while seen.len() < expected.len() {
                let next = tokio::time::timeout(PATIENCE, futures::StreamExt::next(&mut messages))
                    .await
                    .expect("notifications arrive")
                    .expect("a message")
                    .expect("not an error");
                let ce: Value = serde_json::from_slice(&next.payload).expect("CloudEvents JSON");
                assert!(
                    next.subject.as_str().starts_with("funnel.notify.SH.lead."),
                    "{}",
                    next.subject
                );
                assert_eq!(
                    format!(
                        "funnel.notify.SH.{}",
                        ce["type"]
                            .as_str()
                            .expect("type")
                            .trim_start_matches("funnel.")
                    ),
                    next.subject.as_str()
                );
                seen.push(ce["id"].as_str().expect("id").to_string());
            }
            assert_eq!(seen, expected);
        });
}

#[test]
fn serve_on_sqlite_answers_over_http_and_stops_on_sigterm() {
    scenario(&Backend::sqlite());
}

#[test]
fn serve_on_nats_answers_over_http_and_stops_on_sigterm() {
    scenario(&Backend::nats());
}

/// A printed demo token: name, role and the token text.
#[derive(Debug, PartialEq)]
struct Printed {
    name: String,
    role: String,
    token: String,
}

/// The token lines of the `--demo` block: from the `demo API tokens` heading to the blank line.
fn printed_tokens(block: &[String]) -> Vec<Printed> {
    block
        .iter()
        .skip_while(|l| !l.starts_with("demo API tokens"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(fields.len(), 4, "{l}");
            Printed {
                name: fields[0].to_string(),
                role: fields[1].to_string(),
                token: fields[3].to_string(),
            }
        })
        .collect()
}

/// The printed curl commands as (token, path): `curl -s -H 'Authorization: Bearer T' URL`.
fn printed_curls(block: &[String], addr: &str) -> Vec<(String, String)> {
    block
        .iter()
        .filter_map(|l| l.trim().strip_prefix("curl "))
        .map(|l| {
            let token = l
                .split("Bearer ")
                .nth(1)
                .and_then(|t| t.split('\'').next())
                .expect("a bearer token");
            let url = l
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .expect("a URL");
            let path = url
                .strip_prefix(&format!("http://{addr}"))
                .expect("the server's address");
            (token.to_string(), path.to_string())
        })
        .collect()
}

/// The body of a GET as bytes (HTTP/1.0, so the body ends with the connection, not in chunks).
fn get_bytes(addr: &str, path: &str, token: &str) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let req =
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, raw[split + 4..].to_vec())
}

/// `GET /export/events.parquet` as the office manager and as the auditor, read back with DuckDB
/// against the same caller's `GET /events` pages: the manager's file holds exactly their office's
/// events, the auditor's every event.
fn parquet_export(server: &Server, tokens: &[Printed], dir: &Path) {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/pyenv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/test installs the Python test tools",
        python.display()
    );
    for role in ["office_manager", "auditor"] {
        let t = tokens.iter().find(|t| t.role == role).expect("a token");
        // The pages first, then the file: the server's sagas may write more in between, which
        // the file then has beyond the last page's position.
        let mut lines = String::new();
        let mut after = 0u64;
        let mut last = 0u64;
        let mut office = None;
        loop {
            let page = server.get(&format!("/events?after={after}&limit=1000"), &t.token);
            assert_eq!(page.status, 200, "{}", page.text);
            for e in page.body["events"].as_array().expect("events") {
                if role == "office_manager" {
                    office = e["office"].as_str().map(String::from).or(office);
                }
                last = e["position"].as_u64().unwrap_or(last);
                lines.push_str(&e.to_string());
                lines.push('\n');
            }
            match page.body["next"].as_u64() {
                Some(n) => after = n,
                None => break,
            }
        }
        let ndjson = dir.join(format!("{role}.ndjson"));
        std::fs::write(&ndjson, lines).expect("write");
        let (status, head, body) = get_bytes(&server.addr, "/export/events.parquet", &t.token);
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("application/vnd.apache.parquet"), "{head}");
        let file = dir.join(format!("{role}.parquet"));
        std::fs::write(&file, body).expect("write");
        let mut check = std::process::Command::new(&python);
        check
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_events_export.py"))
            .arg(&file)
            .arg(&ndjson)
            .arg(last.to_string());
        if let Some(o) = &office {
            check.arg(o);
        }
        let out = check.output().expect("run python");
        assert!(
            out.status.success(),
            "{role}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Without a token: refused like every other read.
    let (status, _, _) = get_bytes(&server.addr, "/export/events.parquet", "not-a-token");
    assert_eq!(status, 401);

    // The office's forms of the year as a workbook: for the manager of the office, not for the
    // manager of another.
    let manager = tokens
        .iter()
        .find(|t| t.role == "office_manager")
        .expect("a manager");
    let (status, head, body) = get_bytes(
        &server.addr,
        "/forms/office/SH?from=2020-01-01&to=2030-12-31",
        &manager.token,
    );
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("spreadsheetml"), "{head}");
    assert!(body.starts_with(b"PK\x03\x04"), "an xlsx file");
    let (status, head, _) = get_bytes(
        &server.addr,
        "/forms/office/BJ?from=2020-01-01&to=2030-12-31",
        &manager.token,
    );
    assert_eq!(status, 403, "{head}");
    // A period that ends before it starts is a refused question, not a malformed request.
    let (status, head, body) = get_bytes(
        &server.addr,
        "/forms/office/SH?from=2026-02-01&to=2026-01-01",
        &manager.token,
    );
    assert_eq!(status, 422, "{head}");
    let problem: Value = serde_json::from_slice(&body).expect("a problem document");
    assert_eq!(problem["code"], "validation.period_reversed", "{problem}");
    assert!(
        problem["message_zh"]
            .as_str()
            .is_some_and(|m| m.contains("早于开始日")),
        "{problem}"
    );
}

fn demo_start(backend: &Backend) -> (Server, Vec<String>) {
    let server = Server::start(backend, &["--demo", "--demo-leads", "6"]);
    let block = server.lines_until("stop with ctrl-c");
    (server, block)
}

/// The demo tokens file the server wrote: beside the SQLite file, or under `.funnel/` for NATS.
fn tokens_file(backend: &Backend) -> PathBuf {
    [backend.dir().to_path_buf(), backend.dir().join(".funnel")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains("demo-tokens") && n.ends_with(".json"))
        })
        .expect("a demo tokens file")
}

fn demo(backend: &Backend) {
    let (server, block) = demo_start(backend);
    let text = block.join("\n");
    for what in [
        "/openapi.json",
        "/healthz",
        "/metrics",
        "funnel",
        "tail",
        "pipeline",
    ] {
        assert!(text.contains(what), "{what} missing from\n{text}");
    }
    assert!(text.contains("4 issued now"), "{text}");
    let tokens = printed_tokens(&block);
    let roles: Vec<&str> = tokens.iter().map(|t| t.role.as_str()).collect();
    assert_eq!(
        roles,
        [
            "sales_engineer",
            "office_manager",
            "sales_department",
            "auditor"
        ],
        "{text}"
    );
    for t in &tokens {
        let r = server.get("/me", &t.token);
        assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
        assert_eq!(r.body["name"], t.name.as_str());
        assert_eq!(r.body["role"], t.role.as_str());
    }
    let curls = printed_curls(&block, &server.addr);
    assert!(curls.len() >= 3, "{text}");
    assert!(curls.iter().any(|(_, p)| p.ends_with("/audit")), "{text}");
    for (token, path) in &curls {
        let r = server.get(path, token);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    parquet_export(&server, &tokens, backend.dir());
    let tokens_file = tokens_file(backend);
    let saved = std::fs::read_to_string(&tokens_file).expect("the demo tokens file");
    for t in &tokens {
        assert!(saved.contains(&t.token));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&tokens_file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    server.stop_cleanly();

    // A restart writes no demo events and reuses the tokens.
    let (server, block) = demo_start(backend);
    let text = block.join("\n");
    assert!(text.contains("already loaded"), "{text}");
    assert!(text.contains("reused"), "{text}");
    assert_eq!(printed_tokens(&block), tokens);
    for t in &tokens {
        let r = server.get("/me", &t.token);
        assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
    }
    server.stop_cleanly();
    let staff: Value =
        serde_json::from_str(&backend.run(&["staff", "list", "--json"])).expect("json");
    for t in &tokens {
        let row = staff
            .as_array()
            .expect("staff")
            .iter()
            .find(|s| s["name"] == t.name.as_str())
            .expect("a demo person");
        assert_eq!(
            row["tokens"].as_array().map(Vec::len),
            Some(1),
            "{} got a second token on restart: {row}",
            t.name
        );
    }
}

#[test]
fn serve_demo_on_sqlite_prints_working_tokens_and_reuses_them() {
    let backend = Backend::sqlite();
    demo(&backend);
    // Beside the store file.
    assert!(backend.dir().join("funnel.demo-tokens.json").is_file());
}

#[test]
fn serve_demo_on_nats_prints_working_tokens_and_reuses_them() {
    let backend = Backend::nats();
    demo(&backend);
    // Under `.funnel/` of the directory it ran in.
    assert!(tokens_file(&backend).starts_with(backend.dir().join(".funnel")));
}

/// A `--config` file with these `[http]` settings, in the backend's directory.
fn http_config(backend: &Backend, name: &str, http: &str) -> String {
    let path = backend.dir().join(name);
    std::fs::write(&path, format!("[http]\n{http}\n")).expect("write config");
    path.display().to_string()
}

/// A raw connection that sends the start of a request and stalls.
fn half_request(addr: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("write");
    s
}

/// A stalled connection that holds the server's only connection slot. The connection of the
/// request before may still hold it for a moment after the client closed it (until the server's
/// task sees the close), and then the stalled one is refused with a 503: try again.
fn slot_holder(addr: &str) -> std::net::TcpStream {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let mut s = half_request(addr);
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut answer = [0u8; 64];
        match s.read(&mut answer) {
            Ok(n) if n > 0 && Instant::now() < give_up => {
                let answer = String::from_utf8_lossy(&answer[..n]);
                assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(n) => panic!("the stalled connection was answered: {n} bytes"),
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "{e}"
                );
                s.set_read_timeout(Some(PATIENCE)).expect("timeout");
                return s;
            }
        }
    }
}

/// Whether the server closed the connection (end of stream or reset), as opposed to the read
/// giving up after [`PATIENCE`] with the connection still open.
fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn a_stalled_request_is_closed_and_does_not_hold_up_shutdown() {
    let backend = Backend::sqlite();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(bootstrap(&backend.url()));
    let wang = backend.token("王工");

    // A half-sent request head is closed once the header timeout passes.
    let config = http_config(
        &backend,
        "short.toml",
        "header_read_timeout_ms = 200\nbody_timeout_ms = 200",
    );
    let server = Server::start(&backend, &["--config", &config]);
    let mut slow = half_request(&server.addr);
    assert!(
        closed_by_server(&mut slow),
        "the stalled connection stays open"
    );
    // A body that stops arriving is answered with a problem saying so.
    let mut slow = std::net::TcpStream::connect(&server.addr).expect("connect");
    slow.set_read_timeout(Some(PATIENCE)).expect("timeout");
    slow.write_all(
        format!(
            "POST /leads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {wang}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"customer_name\":"
        )
        .as_bytes(),
    )
    .expect("write");
    let mut answer = [0u8; 4096];
    let n = slow
        .read(&mut answer)
        .expect("an answer before the patience runs out");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("request.unreadable_body"), "{answer}");
    // So is a body that keeps arriving a byte at a time: the timeout is a deadline for the whole
    // body, not a pause between two chunks.
    let mut drip = std::net::TcpStream::connect(&server.addr).expect("connect");
    drip.set_read_timeout(Some(PATIENCE)).expect("timeout");
    drip.write_all(
        format!(
            "POST /leads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {wang}\r\n\
             Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("write");
    let mut writer = drip.try_clone().expect("clone");
    let dripping = std::thread::spawn(move || {
        for _ in 0..200 {
            if writer.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut answer = [0u8; 4096];
    let n = drip
        .read(&mut answer)
        .expect("an answer before the patience runs out");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("request.unreadable_body"), "{answer}");
    drop(drip);
    dripping.join().expect("writer");
    let r = server.get("/me", &wang);
    assert_eq!(r.status, 200, "{}", r.text);
    server.stop_cleanly();

    // With a long header timeout, one connection allowed and a short shutdown deadline: a second
    // connection is refused while a stalled one holds the only slot, and SIGTERM still completes,
    // saving the read models.
    let config = http_config(
        &backend,
        "long.toml",
        "header_read_timeout_ms = 300000\nmax_connections = 1\nshutdown_grace_ms = 200",
    );
    let server = Server::start(&backend, &["--config", &config]);
    let lead = json!({
        "customer_name": "万科", "project_name": "一期", "industry": "real_estate",
        "purchase_mode": "independent", "channel": "building_sweep",
        "office": OfficeId::derived("SH"), "location": "上海市", "need": "对讲",
        "contact": { "name": "李经理", "phone": "13800000000" },
    });
    let r = server.when_free(|| server.post("/leads", &wang, &lead));
    assert_eq!(r.status, 200, "{}", r.text);
    let written = r.body["position"].as_u64().expect("position");
    let r = server.when_free(|| server.get(&format!("/pipeline?at_least={written}"), &wang));
    assert_eq!(r.status, 200, "{}", r.text);
    let _slow = slot_holder(&server.addr);
    // The stalled connection holds the only slot, so the next one finds none.
    let r = http(&server.addr, "GET", "/healthz", None, &[], None);
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["code"], "server.busy", "{}", r.text);
    let (status, stderr) = server.stop();
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    let status: Value =
        serde_json::from_str(&backend.run(&["projections", "--json"])).expect("json");
    let pipeline = status
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["name"] == "pipeline")
        .expect("pipeline")
        .clone();
    assert!(
        pipeline["checkpoint"].as_u64().expect("checkpoint") >= written,
        "the read models were saved: {pipeline}"
    );
}

#[test]
fn metrics_are_open_only_on_their_own_address() {
    let backend = Backend::sqlite();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(bootstrap(&backend.url()));
    let config = http_config(&backend, "metrics.toml", "metrics_listen = \"127.0.0.1:0\"");
    let server = Server::start(&backend, &["--config", &config]);
    let line = server.next_line();
    let metrics = line
        .strip_prefix("funnel serve metrics on http://")
        .and_then(|l| l.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_string();
    let r = http(&server.addr, "GET", "/metrics", None, &[], None);
    assert_eq!(r.status, 401, "{}", r.text);
    let r = http(&metrics, "GET", "/metrics", None, &[], None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("funnel_http_responses"), "{}", r.text);
    let r = http(&metrics, "GET", "/me", None, &[], None);
    assert_eq!(r.status, 404, "only /metrics there: {}", r.text);
    server.stop_cleanly();
}

#[test]
fn serve_demo_starts_again_after_a_demo_member_left() {
    let backend = Backend::sqlite();
    let (server, block) = demo_start(&backend);
    server.stop_cleanly();
    let engineer = printed_tokens(&block)
        .into_iter()
        .find(|t| t.role == "sales_engineer")
        .expect("an engineer's token");
    backend.run(&["staff", "leave", &engineer.name, "--reason", "moved on"]);

    let (server, block) = demo_start(&backend);
    let tokens = printed_tokens(&block);
    let stand_in = tokens
        .iter()
        .find(|t| t.role == "sales_engineer")
        .expect("an engineer's token again");
    assert_ne!(stand_in.name, engineer.name, "not to the one who left");
    for t in &tokens {
        let r = server.get("/me", &t.token);
        assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
    }
    let r = server.get("/me", &engineer.token);
    assert_eq!(r.status, 401, "the leaver's token no longer signs in");
    server.stop_cleanly();
}

/// With a signing key, `funnel serve` signs the chain's head at start and once more at shutdown,
/// after everything it appended: the last checkpoint covers the whole log, which `funnel verify`
/// checks with the key.
#[test]
fn serve_signs_the_chains_head_and_covers_the_log_at_shutdown() {
    let backend = Backend::sqlite();
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(bootstrap(&backend.url()));
    let key = backend.dir().join("chain.key");
    let public = backend.run(&["checkpoint", "keygen", "--out", &key.display().to_string()]);
    let public = public.trim().to_string();
    // The outside witness: a receiver on this machine (allowed, as for the test's webhooks).
    let witness = Hook::start();
    let config = backend.dir().join("chain.toml");
    std::fs::write(
        &config,
        format!(
            "[chain]\nsigning_key_file = \"{}\"\nwitness_url = \"{}\"\n",
            key.display(),
            witness.url
        ),
    )
    .expect("write config");
    let wang = backend.token("王工");
    let server = Server::start(&backend, &["--config", &config.display().to_string()]);
    let registration = json!({
        "customer_name": "保利", "project_name": "天悦", "industry": "real_estate",
        "purchase_mode": "independent", "channel": "building_sweep", "office": OfficeId::derived("SH"),
        "location": "上海市", "contact": { "name": "张经理", "phone": "13800000001" },
        "need": "楼宇对讲",
    });
    let r = server.post("/leads", &wang, &registration);
    assert_eq!(r.status, 200, "{}", r.text);
    let registered = r.body["position"].as_u64().expect("position");
    server.stop_cleanly();
    let checkpoints = backend.dir().join("funnel.db.checkpoints");
    let text = std::fs::read_to_string(&checkpoints).expect("checkpoints written");
    let last: Value =
        serde_json::from_str(text.lines().last().expect("a checkpoint")).expect("json");
    assert!(
        last["position"].as_u64().expect("position") >= registered,
        "{text}"
    );
    assert!(
        text.lines().count() >= 2,
        "one at start, one at shutdown: {text}"
    );
    let report = backend.run(&["verify", "--public-key", &public, "--json"]);
    let report: Value = serde_json::from_str(&report).expect("json");
    assert_eq!(report["witness"]["unwitnessed_positions"], 0, "{report}");
    assert_eq!(report["witness"]["bad_checkpoint"], json!(null), "{report}");
    // The witness got each checkpoint as the file has it, the shutdown's last.
    let got = witness
        .got
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert_eq!(got.len(), text.lines().count(), "{got:?}");
    let sent: Value = serde_json::from_str(&got.last().expect("sent").1).expect("json");
    assert_eq!(sent, last);
    assert_eq!(got[0].0["content-type"], "application/json");

    // A witness inside the network is refused at start, naming the setting.
    std::fs::write(
        &config,
        format!(
            "[chain]\nsigning_key_file = \"{}\"\nwitness_url = \"http://user:s3cret@169.254.169.254/\"\n",
            key.display()
        ),
    )
    .expect("write config");
    let mut child = backend
        .funnel()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start funnel serve");
    let give_up = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            panic!("funnel serve started with a witness inside the network");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert!(!status.success());
    assert!(stderr.contains("chain.witness_url"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
