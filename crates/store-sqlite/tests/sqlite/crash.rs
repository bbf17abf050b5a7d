//! The crash test: a child process appends under load and prints each acknowledged append; the test
//! kills it with SIGKILL mid-load, reopens the file and checks that every acknowledged append is there
//! exactly once, that no append is half there, and that SQLite finds the file intact.
//!
//! The child is this same test binary, started again with [`CHILD_ENV`] naming the file.

use funnel_store::conformance::{append_ok, event, read_everything, request};
use funnel_store::{AppendOutcome, AppendRequest, EventStore};
use funnel_store_sqlite::SqliteStore;
use funnel_types::{CommandId, ExpectedVersion, Position, StreamId, Version};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "FUNNEL_SQLITE_CRASH_CHILD";
const TEST_NAME: &str = "crash::kill_9_mid_load_keeps_every_acknowledged_append";
const KILL_AFTER: usize = 300;
const WRITERS: usize = 6;
const STREAMS_PER_WRITER: usize = 5;

#[test]
fn kill_9_mid_load_keeps_every_acknowledged_append() {
    match std::env::var(CHILD_ENV) {
        Ok(path) => child(&path),
        Err(_) => parent(),
    }
}

/// One acknowledged append as the child printed it.
#[derive(Debug, Clone)]
struct Ack {
    command: CommandId,
    outcome: AppendOutcome,
    events: usize,
}

fn parse(line: &str) -> Option<Ack> {
    let mut f = line.strip_prefix("ack ")?.split_whitespace();
    let command = f.next()?.parse().ok()?;
    let stream = StreamId::parse(f.next()?).ok()?;
    let mut num = || f.next()?.parse::<u64>().ok();
    let (fv, lv, fp, lp, n) = (num()?, num()?, num()?, num()?, num()?);
    let outcome = AppendOutcome {
        stream,
        first_version: Version(fv),
        last_version: Version(lv),
        first_position: Position(fp),
        last_position: Position(lp),
        duplicate: false,
    };
    Some(Ack {
        command,
        outcome,
        events: n as usize,
    })
}

/// Appends from several tasks until killed (or for a minute, should the parent be gone).
fn child(path: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Arc::new(SqliteStore::open(path).expect("child: open"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let streams: Vec<StreamId> = (0..STREAMS_PER_WRITER)
                    .map(|j| StreamId::new("crash", format!("w{writer}s{j}")).expect("stream name"))
                    .collect();
                let mut versions = [0u64; STREAMS_PER_WRITER];
                let mut round = 0usize;
                while Instant::now() < deadline {
                    let j = round % STREAMS_PER_WRITER;
                    let n = 1 + (round * 7 + writer) % 4;
                    let events = (0..n)
                        .map(|i| event("crash.part", serde_json::json!({ "i": i, "n": n })))
                        .collect();
                    let expected = if versions[j] == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(Version(versions[j]))
                    };
                    let req = request(&streams[j], expected, events);
                    let command = req.command_id;
                    let o = append_ok(&*store, req).await;
                    versions[j] = o.last_version.0;
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "ack {command} {} {} {} {} {} {n}",
                        o.stream,
                        o.first_version,
                        o.last_version,
                        o.first_position,
                        o.last_position
                    )
                    .and_then(|_| out.flush())
                    .expect("child: stdout");
                    round += 1;
                }
            }));
        }
        for t in tasks {
            t.await.expect("child writer");
        }
    });
}

fn parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut reader = BufReader::new(stdout);
    let mut acks: Vec<Ack> = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read child stdout");
        // A line cut short by the kill was never a complete acknowledgement.
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        if let Some(ack) = parse(&line) {
            acks.push(ack);
        }
        if acks.len() >= KILL_AFTER && !killed {
            child.kill().expect("SIGKILL the child");
            killed = true;
        }
    }
    let status = child.wait().expect("reap the child");
    assert!(
        killed,
        "the child stopped after {} acknowledged appends ({status:?})",
        acks.len()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(verify(&path, &acks));
}

async fn verify(path: &std::path::Path, acks: &[Ack]) {
    let integrity: String = rusqlite::Connection::open(path)
        .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");

    let store = SqliteStore::open(path).expect("reopen after the crash");
    // The hash chain is whole too: every commit that survived has its record, and no other.
    let chain = store
        .verify_chain(Position(1), None, Box::new(|_| {}))
        .await
        .expect("verify")
        .expect("a chain");
    assert!(chain.is_clean(), "{chain:?}");
    let all = read_everything(&store).await;
    assert_eq!(chain.events, all.len() as u64);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(
            e.meta.position.0,
            i as u64 + 1,
            "positions are consecutive after the crash"
        );
    }
    // Every append in the file is whole: its events are contiguous, numbered 0..n, n as intended.
    let mut appends: HashMap<CommandId, (usize, Position)> = HashMap::new();
    let mut i = 0;
    while i < all.len() {
        let command = all[i].meta.command_id;
        let n = serde_json::from_slice::<serde_json::Value>(&all[i].payload).expect("payload")["n"]
            .as_u64()
            .expect("n") as usize;
        assert!(
            i + n <= all.len(),
            "append {command} is cut short: half an append survived the crash"
        );
        for (k, e) in all[i..i + n].iter().enumerate() {
            assert_eq!(
                e.meta.command_id, command,
                "append {command} is not contiguous or not whole"
            );
            let p: serde_json::Value = serde_json::from_slice(&e.payload).expect("payload");
            assert_eq!(p["i"].as_u64(), Some(k as u64));
        }
        assert!(
            appends.insert(command, (n, all[i].meta.position)).is_none(),
            "append {command} is in the log twice"
        );
        i += n;
    }
    let mut per_stream: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &all {
        let v = per_stream.entry(e.meta.stream.as_str()).or_default();
        *v += 1;
        assert_eq!(
            e.meta.version.0, *v,
            "versions of {} are dense",
            e.meta.stream
        );
    }
    // Every acknowledged append is there, exactly as acknowledged, and a retry is a duplicate.
    for ack in acks {
        let (n, first) = appends
            .get(&ack.command)
            .unwrap_or_else(|| panic!("acknowledged append {} was lost", ack.command));
        assert_eq!((*n, *first), (ack.events, ack.outcome.first_position));
        let retry = AppendRequest {
            command_id: ack.command,
            ..request(
                &ack.outcome.stream,
                ExpectedVersion::Any,
                vec![event("crash.retry", serde_json::json!({}))],
            )
        };
        let o = append_ok(&store, retry).await;
        assert!(o.duplicate);
        assert_eq!(
            AppendOutcome {
                duplicate: false,
                ..o
            },
            ack.outcome
        );
    }
    assert_eq!(
        read_everything(&store).await.len(),
        all.len(),
        "retries wrote nothing"
    );
    assert!(appends.len() >= acks.len());
    let _ = store.head().await.expect("head");
}
