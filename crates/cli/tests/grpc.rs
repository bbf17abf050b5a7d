//! The KurrentDB/EventStoreDB-compatible gRPC endpoint (`funnel serve --grpc`), proven with the
//! official Python client (`kurrentdbclient`, pinned in `scripts/requirements-test.txt`) against
//! the real binary serving the demo history: `tests/py/check_grpc.py` reads `$all` (with the
//! client's default exclusion filter, from a position, backwards, with stream-prefix,
//! stream-regex and event-type filters) and streams (forwards, from a revision, backwards) and
//! gets exactly the events `funnel export events` gives (ids, types, order, data, envelope);
//! the office manager reads only their office and is refused another office's stream; missing
//! or unknown credentials are refused; appends are refused with access denied and the reason;
//! catch-up subscriptions to `$all` (filtered, with checkpoints) and to a stream deliver the
//! history, `caught_up`, and the event a command over HTTP writes afterwards.
//!
//!
//! The official Rust client (`kurrentdb` crate) reads `$all` over plaintext and gets the same events,
//! and is refused an append.
//!
//! Waits are bounded (a test fails instead of hanging); nothing asserts on wall-clock time.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(180);

/// The Python with the test tools: `scripts/test` installs them in `.tools/pyenv`
/// (`FUNNEL_TEST_PYTHON` names another).
fn python() -> PathBuf {
    let python = std::env::var_os("FUNNEL_TEST_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/pyenv/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "{} is missing: scripts/test installs the Python test tools",
        python.display()
    );
    python
}

struct Serve {
    child: Child,
    lines: Receiver<String>,
}

impl Serve {
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("funnel serve printed nothing more")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority and a server certificate for `127.0.0.1` and `localhost` it signed,
/// written into `dir`: (CA, certificate, key) files.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "funnel test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "funnel test server");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("grpc.pem"),
        dir.join("grpc.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

fn funnel(dir: &Path, store: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_funnel"));
    c.current_dir(dir)
        .env_remove("FUNNEL_STORE")
        .env_remove("FUNNEL_PROJECTIONS")
        .env("NO_COLOR", "1")
        .args(["--store", store])
        .arg("--projections")
        .arg(dir.join("read-models.db"));
    c
}

/// Runs `command` to its end, or fails the test when it is still running after a minute (a
/// server that started instead of refusing to).
fn ends_within_a_minute(command: &mut Command) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run funnel serve");
    for _ in 0..600 {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!(
        "funnel serve kept running: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A key that is not the certificate's stops `funnel serve --grpc` at start, with a message in
/// both languages, before the store is opened or anything listens.
#[test]
fn a_grpc_key_that_does_not_match_its_certificate_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("funnel.db");
    let store = format!("sqlite:{}", db.display());
    let (ca, cert, _) = certificates(dir.path());
    let other = tempfile::tempdir().expect("tempdir");
    let (_, _, other_key) = certificates(other.path());
    let out = ends_within_a_minute(
        funnel(dir.path(), &store)
            .args(["serve", "--listen", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
            .env("FUNNEL__GRPC__TLS_CERT", &cert)
            .env("FUNNEL__GRPC__TLS_KEY", &other_key),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "started: {stdout}");
    assert!(
        stderr.contains("grpc.tls_key does not belong to the certificate")
            && stderr.contains("不匹配"),
        "{stderr}"
    );
    assert!(!stdout.contains("listening on"), "{stdout}");
    assert!(!db.exists(), "the store was opened before the check");
    // A certificate file given as the key.
    let out = ends_within_a_minute(
        funnel(dir.path(), &store)
            .args(["serve", "--listen", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
            .env("FUNNEL__GRPC__TLS_CERT", &cert)
            .env("FUNNEL__GRPC__TLS_KEY", &ca),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("grpc.tls_key holds no usable PEM private key")
    );
}

#[test]
fn the_python_kurrentdb_client_reads_subscribes_and_is_refused_appends() {
    let python = python();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite:{}", dir.path().join("funnel.db").display());
    let (ca, cert, key) = certificates(dir.path());
    let mut child = funnel(dir.path(), &store)
        .args(["serve", "--listen", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .env("FUNNEL__GRPC__TLS_CERT", &cert)
        .env("FUNNEL__GRPC__TLS_KEY", &key)
        .args(["--demo", "--demo-leads", "6"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
    let serve = Serve { child, lines };
    let mut block = Vec::new();
    let grpc = loop {
        let line = serve.next_line();
        if let Some(addr) = line.strip_prefix("funnel serve grpc on ") {
            break addr.trim().to_string();
        }
        block.push(line);
    };
    let http = block[0]
        .strip_prefix("funnel serve listening on http://")
        .expect("the first line names the HTTP address")
        .trim()
        .to_string();
    let token = |role: &str| {
        block
            .iter()
            .skip_while(|l| !l.starts_with("demo API tokens"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() == 4 && f[1] == role)
            .map(|f| f[3].to_string())
            .unwrap_or_else(|| panic!("no {role} token in\n{}", block.join("\n")))
    };

    let export = dir.path().join("events.ndjson");
    let out = funnel(dir.path(), &store)
        .args(["export", "events", "--out"])
        .arg(&export)
        .output()
        .expect("funnel export events");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_grpc.py"))
        .arg(&grpc)
        .arg(&ca)
        .arg(&http)
        .arg(&export)
        .arg(token("auditor"))
        .arg(token("office_manager"))
        .arg(token("sales_engineer"))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(serve);
}

/// The official Rust client (the `kurrentdb` crate) over plaintext, which sends its credentials
/// there: `$all` gives exactly the exported events (ids, types, order, data, stream, revision,
/// position), and an append is refused as access denied.
#[test]
fn the_rust_kurrentdb_client_reads_all_over_plaintext_and_is_refused_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite:{}", dir.path().join("funnel.db").display());
    let mut child = funnel(dir.path(), &store)
        .args(["serve", "--listen", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .args(["--demo", "--demo-leads", "4", "--no-workflows"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
    let serve = Serve { child, lines };
    let mut block = Vec::new();
    let grpc = loop {
        let line = serve.next_line();
        if let Some(addr) = line.strip_prefix("funnel serve grpc on ") {
            break addr.trim().to_string();
        }
        block.push(line);
    };
    let auditor = block
        .iter()
        .skip_while(|l| !l.starts_with("demo API tokens"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() == 4 && f[1] == "auditor")
        .map(|f| f[3].to_string())
        .expect("an auditor token");
    let out = funnel(dir.path(), &store)
        .args(["export", "events"])
        .output()
        .expect("funnel export events");
    assert!(out.status.success());
    let exported: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let last = exported.last().expect("events")["position"]
        .as_u64()
        .expect("position");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let settings: kurrentdb::ClientSettings =
            format!("esdb://funnel:{auditor}@{grpc}?tls=false")
                .parse()
                .expect("settings");
        let client = kurrentdb::Client::new(settings).expect("client");
        let mut read = tokio::time::timeout(
            PATIENCE,
            client.read_all(&kurrentdb::ReadAllOptions::default()),
        )
        .await
        .expect("in time")
        .expect("read_all");
        let mut got = Vec::new();
        while let Some(e) = tokio::time::timeout(PATIENCE, read.next())
            .await
            .expect("in time")
            .expect("an event")
        {
            let e = e.get_original_event();
            if e.position.commit > last {
                break;
            }
            got.push((
                e.id.to_string(),
                e.event_type.clone(),
                e.stream_id().to_string(),
                e.revision + 1,
                e.position.commit,
                serde_json::from_slice::<serde_json::Value>(&e.data).expect("json data"),
            ));
        }
        let want: Vec<_> = exported
            .iter()
            .map(|e| {
                (
                    e["event_id"].as_str().expect("id").to_string(),
                    e["event_type"].as_str().expect("type").to_string(),
                    e["stream"].as_str().expect("stream").to_string(),
                    e["version"].as_u64().expect("version"),
                    e["position"].as_u64().expect("position"),
                    e["payload"].clone(),
                )
            })
            .collect();
        assert_eq!(got.len(), want.len());
        assert!(
            got == want,
            "the Rust client read other events than the export"
        );

        let stream = want[want.len() / 2].2.clone();
        let refused = client
            .append_to_stream(
                stream.as_str(),
                &kurrentdb::AppendToStreamOptions::default(),
                kurrentdb::EventData::json("lead.registered", &serde_json::json!({}))
                    .expect("event"),
            )
            .await;
        assert!(
            matches!(refused, Err(kurrentdb::Error::AccessDenied)),
            "{refused:?}"
        );
    });
    drop(serve);
}
