//! End to end: the real `funnel serve` binary on an ephemeral port against a SQLite store. A token
//! is issued with `funnel staff token`, a registration and a refused touch go over HTTP, the refused
//! touch shows in the lead's audit, and SIGTERM stops the server cleanly.
//!
//! This test lives in the CLI package (not `tests/it`) because `env!("CARGO_BIN_EXE_funnel")`, the
//! reliable way to find the freshly built binary, is only set for the binary's own package.

use funnel_domain::Policy;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Engine, StoreUrl, Who};
use funnel_types::{OfficeId, Role, StaffId, SystemClock};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn funnel(store: &str) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_funnel"));
    c.args(["--store", store]);
    c
}

/// An office and two engineers, written through the engine before the server starts.
async fn bootstrap(path: &std::path::Path) {
    let store = funnel_engine::open_store(&StoreUrl::Sqlite(path.to_path_buf()))
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
    let cmd = Command::Office {
        office_id: office,
        cmd: open,
    };
    engine.execute(sys(), cmd).await.expect("office");
    for name in ["王工", "李工"] {
        let id = StaffId::derived(name);
        let join = StaffCommand::Join {
            staff_id: id,
            name: name.into(),
            role: Role::SalesEngineer,
            office: Some(office),
        };
        let cmd = Command::Staff {
            staff_id: id,
            cmd: join,
        };
        engine.execute(sys(), cmd).await.expect("staff");
    }
}

fn token(store: &str, staff: &str) -> String {
    let out = funnel(store)
        .args(["staff", "token", staff])
        .output()
        .expect("run funnel staff token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("token:").map(|t| t.trim().to_string()))
        .unwrap_or_else(|| panic!("no token in {text}"))
}

/// One HTTP/1.1 request over a fresh connection: status and JSON body.
fn http(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (_, body) = raw.split_once("\r\n\r\n").unwrap_or(("", ""));
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    // A guard against hanging forever, not a timing assertion.
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            panic!("funnel serve did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_answers_over_http_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("funnel.db");
    let store = format!("sqlite:{}", db.display());
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(bootstrap(&db));
    let wang = token(&store, "王工");
    let li = token(&store, "李工");

    let mut child = funnel(&store)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start funnel serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .expect("address")
        .to_string();

    let registration = json!({
        "customer_name": "万科", "project_name": "城市花园（二期）", "industry": "real_estate",
        "purchase_mode": "independent", "channel": "building_sweep", "office": OfficeId::derived("SH"),
        "location": "上海市浦东新区", "contact": { "name": "李经理", "phone": "13800000000" },
        "need": "需要楼宇对讲系统",
    });
    let (status, body) = http(&addr, "POST", "/leads", &wang, Some(&registration));
    assert_eq!(status, 200, "{body}");
    let lead = body["id"].as_str().expect("lead id").to_string();

    let visit = json!({ "kind": "visit", "visited_at": "2026-03-02T09:30:00Z",
        "purposes": [], "summary": "抢客户" });
    let (status, body) = http(
        &addr,
        "POST",
        &format!("/leads/{lead}/commands/log_visit"),
        &li,
        Some(&visit),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "lead.not_owner");
    let at = body["recorded_position"]
        .as_u64()
        .expect("the refusal is recorded");
    let (status, audit) = http(
        &addr,
        "GET",
        &format!("/leads/{lead}/audit?at_least={at}"),
        &wang,
        None,
    );
    assert_eq!(status, 200, "{audit}");
    assert!(
        audit["touches"]
            .as_array()
            .expect("touches")
            .iter()
            .any(|t| t["refused"] == true)
    );

    let (status, _) = http(&addr, "GET", "/me", "not-a-token", None);
    assert_eq!(status, 401);

    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(term.success());
    let status = wait_exit(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
}
