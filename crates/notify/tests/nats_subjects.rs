//! On the JetStream backend, a consumer written with Python's `nats-py` receives Shanghai's stage
//! changes by subject filter and parses them with the CloudEvents SDK; a restarted republisher
//! resumes where it stopped and publishes nothing twice, and a publish lost while later ones were
//! stored (a stream leader dying with publishes in flight) is published when it resumes.

use funnel_domain::Policy;
use funnel_engine::Engine;
use funnel_notify::nats::{RepublishOptions, Republisher};
use funnel_store::{EventStore, Filter};
use funnel_store_nats::{NatsOptions, NatsStore};
use funnel_testkit::{NatsServer, workspace_root};
use funnel_types::{Position, SystemClock};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

fn python() -> std::path::PathBuf {
    let p = workspace_root().join(".tools/pyenv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: scripts/test installs the Python test tools (scripts/requirements-test.txt)",
        p.display()
    );
    p
}

/// Runs a republisher until the notification stream holds `messages` messages, or (with `None`)
/// until it has caught up with the log's head as it was when called.
async fn republish_until(
    client: async_nats::Client,
    store: Arc<dyn EventStore>,
    messages: Option<u64>,
) {
    let head = store.head().await.unwrap();
    let republisher = Republisher::new(client.clone(), store, RepublishOptions::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        republisher
            .run(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let js = async_nats::jetstream::new(client);
    let mut done = false;
    for _ in 0..1200 {
        if let Ok(mut s) = js.get_stream("FUNNEL_NOTIFY").await {
            let info = s.info().await.unwrap();
            let (count, last) = (info.state.messages, info.state.last_sequence);
            if let Some(n) = messages {
                done = count >= n;
            } else if count > 0 {
                let last = s.get_raw_message(last).await.unwrap();
                let p: u64 = last
                    .headers
                    .get("Funnel-Position")
                    .unwrap()
                    .as_str()
                    .parse()
                    .unwrap();
                done = p >= head.0;
            }
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "the republisher did not get there");
    stop_tx.send(()).unwrap();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_consumer_gets_stage_changes_by_subject_filter() {
    let python = python();
    let server = NatsServer::start();
    let store: Arc<dyn EventStore> = Arc::new(
        NatsStore::connect(NatsOptions::new(server.url()))
            .await
            .unwrap(),
    );
    let engine = Engine::new(store.clone(), Policy::default(), Arc::new(SystemClock));
    let opts = funnel_demo::DemoOptions {
        leads: 24,
        weeks: 6,
        ..Default::default()
    };
    // The republisher runs while the history is written, stops half-way, and a new one resumes.
    let loading = {
        let engine = engine.clone();
        tokio::spawn(async move { funnel_demo::load(&engine, &opts, |_, _| {}).await })
    };
    let client = async_nats::connect(server.url()).await.unwrap();
    republish_until(client.clone(), store.clone(), Some(200)).await;
    loading.await.unwrap().unwrap();
    republish_until(client.clone(), store.clone(), None).await;

    let offices = funnel_notify::offices(store.as_ref()).await.unwrap();
    let sh = funnel_notify::find_office(&offices, "SH").expect("the demo has SH");
    let mut log = Vec::new();
    loop {
        let after = log
            .last()
            .map_or(Position::START, |r: &funnel_store::RecordedEvent| {
                r.meta.position
            });
        let page = store.read_all(after, &Filter::All, 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        log.extend(page);
    }
    let expected: Vec<(String, u64)> = log
        .iter()
        .filter(|r| r.meta.office == Some(sh) && r.meta.event_type == "lead.stage_changed")
        .map(|r| (r.meta.event_id.as_uuid().to_string(), r.meta.position.0))
        .collect();
    assert!(!expected.is_empty(), "the demo changes stages in SH");

    let total = log.len() as u64;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("FUNNEL_NOTIFY").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, total);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/consumer.py");
    let out = tokio::process::Command::new(python)
        .args([
            script,
            &server.url(),
            "funnel.notify.SH.lead.stage_changed",
            &expected.len().to_string(),
            "60",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "consumer failed: {stderr}");
    let got: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<(String, u64)> = got
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_string(),
                v["position"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ids, expected, "every SH stage change, in log order");
    for v in &got {
        assert_eq!(v["subject"], "funnel.notify.SH.lead.stage_changed");
        assert_eq!(v["type"], "funnel.lead.stage_changed");
        assert!(v["lead"].is_string(), "{v}");
    }
}

/// The whole log, in order.
async fn whole_log(store: &dyn EventStore) -> Vec<funnel_store::RecordedEvent> {
    let mut log: Vec<funnel_store::RecordedEvent> = Vec::new();
    loop {
        let after = log.last().map_or(Position::START, |r| r.meta.position);
        let page = store.read_all(after, &Filter::All, 1000).await.unwrap();
        if page.is_empty() {
            return log;
        }
        log.extend(page);
    }
}

/// The log positions the notification stream holds, in stream order.
async fn notified_positions(js: &async_nats::jetstream::Context) -> Vec<u64> {
    let mut stream = js.get_stream("FUNNEL_NOTIFY").await.unwrap();
    let info = stream.info().await.unwrap();
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.push(
                m.headers
                    .get("Funnel-Position")
                    .unwrap()
                    .as_str()
                    .parse()
                    .unwrap(),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_lost_while_later_ones_were_stored_is_published_on_resume() {
    for (lost_from_end, in_flight) in [(3usize, 4usize), (usize::MAX, 256)] {
        let server = NatsServer::start();
        let store: Arc<dyn EventStore> = Arc::new(
            NatsStore::connect(NatsOptions::new(server.url()))
                .await
                .unwrap(),
        );
        let engine = Engine::new(store.clone(), Policy::default(), Arc::new(SystemClock));
        let opts = funnel_demo::DemoOptions {
            leads: 3,
            weeks: 2,
            ..Default::default()
        };
        funnel_demo::load(&engine, &opts, |_, _| {}).await.unwrap();
        let log = whole_log(store.as_ref()).await;
        assert!(log.len() > 20, "a small history: {} events", log.len());
        // What a republisher had sent before its stream leader died: everything but one publish,
        // a few before the end (or the very first), whose later neighbours were stored.
        let lost = log.len().saturating_sub(lost_from_end).min(log.len() - 1);
        let lost = if lost_from_end == usize::MAX { 0 } else { lost };
        let client = async_nats::connect(server.url()).await.unwrap();
        let options = RepublishOptions {
            in_flight,
            ..RepublishOptions::default()
        };
        let republisher = Republisher::new(client.clone(), store.clone(), options);
        republisher.ensure_stream().await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        for (i, rec) in log.iter().enumerate() {
            if i == lost {
                continue;
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                "Nats-Msg-Id",
                rec.meta.event_id.as_uuid().to_string().as_str(),
            );
            headers.insert("Funnel-Position", rec.meta.position.0.to_string().as_str());
            js.publish_with_headers("funnel.notify._.test", headers, "{}".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(async move {
            republisher
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        let mut held = Vec::new();
        for _ in 0..200 {
            held = notified_positions(&js).await;
            if held.len() >= log.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop_tx.send(()).unwrap();
        running.await.unwrap().unwrap();
        let mut sorted = held.clone();
        sorted.sort_unstable();
        let expected: Vec<u64> = log.iter().map(|r| r.meta.position.0).collect();
        assert_eq!(
            sorted, expected,
            "every event once, the lost one ({lost}) included"
        );
        assert_eq!(
            held.last(),
            Some(&log[lost].meta.position.0),
            "published last, on resume"
        );
    }
}
