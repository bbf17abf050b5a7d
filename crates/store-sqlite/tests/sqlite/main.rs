//! Tests of the embedded backend beyond the shared conformance suite: damaged rows, schema versions,
//! options, the in-memory store, and a `kill -9` in the middle of a load.

use funnel_store::conformance::{
    append_ok, numbered_events, read_everything, request, unique_stream,
};
use funnel_store::{EventStore, Filter, StoreError};
use funnel_store_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore, Synchronous};
use funnel_types::{ExpectedVersion, Position, Version};
use std::sync::Arc;

mod chain;
mod crash;

fn raw(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open the file with rusqlite")
}

#[tokio::test]
async fn damaged_rows_are_reported_as_corrupt_with_their_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).expect("open");
    let s = unique_stream("lead");
    append_ok(
        &store,
        request(&s, ExpectedVersion::NoStream, numbered_events(5)),
    )
    .await;

    raw(&path)
        .execute(
            "UPDATE events SET actor = '{not json' WHERE position = 2",
            [],
        )
        .expect("damage actor");
    raw(&path)
        .execute(
            "UPDATE events SET event_id = x'0102' WHERE position = 4",
            [],
        )
        .expect("damage event id");

    let check = |r: Result<Vec<funnel_store::RecordedEvent>, StoreError>, want: u64| match r {
        Err(StoreError::Corrupt { position, reason }) => {
            assert_eq!(position, Position(want), "{reason}");
        }
        other => panic!("expected Corrupt at {want}, got {other:?}"),
    };
    check(store.read_all(Position::START, &Filter::All, 10).await, 2);
    check(store.read_stream(&s, Version::FIRST, 10).await, 2);
    check(store.read_all(Position(2), &Filter::All, 10).await, 4);
    check(
        store
            .read_all(Position(2), &Filter::category("lead"), 10)
            .await,
        4,
    );
    check(store.read_stream(&s, Version(3), 10).await, 4);
    let fine = store
        .read_all(Position(4), &Filter::All, 10)
        .await
        .expect("rows after the damage read fine");
    assert_eq!(fine.len(), 1);

    raw(&path)
        .execute(
            "UPDATE events SET stream = 'Not A Stream' WHERE position = 5",
            [],
        )
        .expect("damage stream");
    check(store.read_all(Position(4), &Filter::All, 10).await, 5);
    raw(&path)
        .execute(
            "UPDATE events SET schema_version = 70000 WHERE position = 1",
            [],
        )
        .expect("damage");
    check(store.read_all(Position::START, &Filter::All, 1).await, 1);
}

#[tokio::test]
async fn a_file_from_a_newer_funnel_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    drop(SqliteStore::open(&path).expect("create"));
    raw(&path)
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [SCHEMA_VERSION + 1],
        )
        .expect("bump the schema version");
    let err = SqliteStore::open(&path).expect_err("a newer schema must be refused");
    let message = err.to_string();
    assert!(
        message.contains("newer Funnel") && message.contains(&format!("{}", SCHEMA_VERSION + 1)),
        "{message}"
    );
}

#[tokio::test]
async fn files_that_are_not_funnel_stores_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let foreign = dir.path().join("foreign.db");
    raw(&foreign)
        .execute_batch("CREATE TABLE events (x INTEGER)")
        .expect("foreign table");
    let message = SqliteStore::open(&foreign)
        .expect_err("foreign events table")
        .to_string();
    assert!(message.contains("not a Funnel store"), "{message}");

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 8192]).expect("write garbage");
    assert!(SqliteStore::open(&garbage).is_err());
}

#[tokio::test]
async fn synchronous_normal_and_reopen_keep_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        max_batch: 1,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&path, options).expect("open");
    let s = unique_stream("order");
    append_ok(
        &store,
        request(&s, ExpectedVersion::NoStream, numbered_events(3)),
    )
    .await;
    let mode: String = raw(&path)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "wal");
    drop(store);
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(
        store.stream_version(&s).await.expect("version"),
        Some(Version(3))
    );
    let positions: Vec<u64> = read_everything(&store)
        .await
        .iter()
        .map(|e| e.meta.position.0)
        .collect();
    assert_eq!(
        positions,
        vec![1, 2, 3],
        "the embedded store's positions are consecutive from 1"
    );
}

#[tokio::test]
async fn options_deserialize_with_defaults_and_refuse_typos() {
    let o: SqliteOptions = serde_json::from_str(r#"{"synchronous":"normal"}"#).expect("options");
    assert_eq!(o.synchronous, Synchronous::Normal);
    assert_eq!(o.busy_timeout_ms, SqliteOptions::default().busy_timeout_ms);
    assert!(
        serde_json::from_str::<SqliteOptions>(r#"{"synchronus":"normal"}"#).is_err(),
        "typos are refused"
    );
}

#[tokio::test]
async fn in_memory_store_appends_reads_and_waits() {
    let store = Arc::new(SqliteStore::open_in_memory().expect("in-memory"));
    let s = unique_stream("order");
    let req = request(&s, ExpectedVersion::NoStream, numbered_events(2));
    let o = append_ok(&*store, req.clone()).await;
    assert_eq!(o.last_position, Position(2));
    assert_eq!(store.head().await.expect("head"), Position(2));
    assert!(
        store
            .wait_for_append(Position(1), std::time::Duration::from_secs(5))
            .await
            .expect("wait")
    );
    assert_eq!(
        store
            .read_stream(&s, Version::FIRST, 10)
            .await
            .expect("read")
            .len(),
        2
    );
    let dup = append_ok(&*store, req).await;
    assert!(dup.duplicate);
    assert_eq!(dup.last_position, o.last_position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_appends_wake_wait_for_append() {
    // Two stores on one file stand in for two processes: neither's in-process head sees the other's
    // commits, so only polling the file can wake the waiter.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let reader = Arc::new(SqliteStore::open(&path).expect("open"));
    let writer = SqliteStore::open(&path).expect("open again");
    let waiting = {
        let reader = reader.clone();
        tokio::spawn(async move {
            reader
                .wait_for_append(Position::START, std::time::Duration::from_secs(10))
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    append_ok(
        &writer,
        request(
            &unique_stream("order"),
            ExpectedVersion::NoStream,
            numbered_events(1),
        ),
    )
    .await;
    assert!(waiting.await.expect("waiter").expect("wait"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_event_id_refuses_only_its_own_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(dir.path().join("events.db")).expect("open"));
    let s = unique_stream("order");
    let first = request(&s, ExpectedVersion::NoStream, numbered_events(2));
    let reused = first.events[1].event_id;
    append_ok(&*store, first).await;
    // Queue many appends at once so that some share a group commit with the bad one.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut events = numbered_events(3);
            if i == 20 {
                events[2].event_id = reused;
            }
            (
                i,
                store
                    .append(request(&s, ExpectedVersion::Any, events))
                    .await,
            )
        }));
    }
    for t in tasks {
        let (i, result) = t.await.expect("task");
        match (i, result) {
            (20, Err(StoreError::InvalidRequest(m))) => {
                assert!(m.contains("already recorded"), "{m}")
            }
            (20, other) => panic!("the append reusing an event id must be refused, got {other:?}"),
            (_, r) => assert!(r.is_ok(), "{r:?}"),
        }
    }
    let all = read_everything(&*store).await;
    assert_eq!(
        all.len(),
        2 + 39 * 3,
        "the refused append wrote nothing, the others everything"
    );
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.meta.version.0 == i as u64 + 1)
    );
}

#[tokio::test]
async fn a_command_id_reused_on_another_stream_is_refused() {
    let store = SqliteStore::open_in_memory().expect("in-memory");
    let req = request(
        &unique_stream("order"),
        ExpectedVersion::NoStream,
        numbered_events(1),
    );
    append_ok(&store, req.clone()).await;
    let elsewhere = funnel_store::AppendRequest {
        stream: unique_stream("order"),
        ..req
    };
    match store.append(elsewhere).await {
        Err(StoreError::InvalidRequest(m)) => assert!(m.contains("already appended"), "{m}"),
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}
