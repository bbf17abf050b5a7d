//! The hash chain: an untouched log verifies clean, and each way of tampering with the file is
//! named at its first position.

use super::raw;
use funnel_store::EventStore;
use funnel_store::chain::{Finding, Tamper, Verification};
use funnel_store::checkpoint::{Checkpoint, CheckpointSigner, Witness};
use funnel_store::conformance::{append_ok, numbered_events, request, unique_stream};
use funnel_store_sqlite::SqliteStore;
use funnel_types::{ExpectedVersion, Position};
use std::path::Path;

/// A log of ten commits: positions 1-3 (one commit of three events), then 4 to 12 one event
/// each.
async fn log(path: &Path) -> SqliteStore {
    let store = SqliteStore::open(path).expect("open");
    let s = unique_stream("lead");
    append_ok(
        &store,
        request(&s, ExpectedVersion::NoStream, numbered_events(3)),
    )
    .await;
    for i in 3..12 {
        // Each with a payload of its own (`{"i": i}`), so that swapping two changes them.
        let event = numbered_events(i + 1).pop().expect("an event");
        append_ok(
            &store,
            request(
                &unique_stream("lead"),
                ExpectedVersion::NoStream,
                vec![event],
            ),
        )
        .await;
    }
    store
}

async fn verify(store: &SqliteStore, from: u64) -> Verification {
    verify_with(store, from, None).await
}

async fn verify_with(store: &SqliteStore, from: u64, witness: Option<Witness>) -> Verification {
    store
        .verify_chain(Position(from), witness, Box::new(|_| {}))
        .await
        .expect("verify")
        .expect("the embedded store keeps a chain")
}

fn tamper(path: &Path, sql: &str) {
    raw(path).execute_batch(sql).expect(sql);
}

#[tokio::test]
async fn an_untouched_log_verifies_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let store = log(&path).await;
    let r = verify(&store, 1).await;
    assert!(r.is_clean(), "{r:?}");
    assert_eq!((r.commits, r.events, r.to), (10, 12, Position(12)));
    assert_eq!(r.chain_starts_at, Some(Position(1)));
    assert_eq!(r.head_hash.as_deref().map(str::len), Some(64));
    // From the middle of the first commit: the walk starts at that commit.
    let r = verify(&store, 2).await;
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.from, Position(1));
    let r = verify(&store, 7).await;
    assert!(r.is_clean(), "{r:?}");
    assert_eq!((r.from, r.commits, r.events), (Position(7), 6, 6));
}

#[tokio::test]
async fn each_way_of_tampering_is_named_at_its_first_position() {
    let cases: [(&str, &str, Position, Tamper); 7] = [
        (
            "a payload byte changed",
            "UPDATE events SET payload = CAST('{\"n\":9}' AS BLOB) WHERE position = 6",
            Position(6),
            Tamper::Changed,
        ),
        (
            "an event of a multi-event commit changed",
            "UPDATE events SET event_type = 'Forged' WHERE position = 2",
            Position(1),
            Tamper::Changed,
        ),
        (
            "a row deleted",
            "DELETE FROM events WHERE position = 8",
            Position(8),
            Tamper::Missing,
        ),
        (
            "two rows swapped",
            "UPDATE events SET payload = CASE position WHEN 5 THEN (SELECT payload FROM events WHERE position = 9) \
             ELSE (SELECT payload FROM events WHERE position = 5) END WHERE position IN (5, 9)",
            Position(5),
            Tamper::Changed,
        ),
        (
            "a row inserted at the end without its commit",
            "INSERT INTO events (stream, version, event_id, event_type, schema_version, occurred_at, recorded_at, \
             actor, office, command_id, correlation_id, causation_id, payload) \
             SELECT 'lead-forged', 1, randomblob(16), event_type, schema_version, occurred_at, recorded_at, actor, \
             office, randomblob(16), correlation_id, causation_id, payload FROM events WHERE position = 12",
            Position(13),
            Tamper::Unchained,
        ),
        (
            "a commit's record deleted",
            "DELETE FROM chain WHERE last_position = 10",
            Position(10),
            Tamper::Unchained,
        ),
        (
            "a column's type changed",
            "UPDATE events SET payload = 'text, not bytes' WHERE position = 11",
            Position(11),
            Tamper::Changed,
        ),
    ];
    for (what, sql, at, kind) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.db");
        let store = log(&path).await;
        assert!(verify(&store, 1).await.is_clean(), "{what}: clean before");
        tamper(&path, sql);
        let r = verify(&store, 1).await;
        assert_eq!(
            r.first_bad,
            Some(Finding {
                position: at,
                tamper: kind,
                until: None
            }),
            "{what}: {r:?}"
        );
        // A walk that starts after the damage does not see it (it trusts the hash before it).
        if at.0 < 12 && kind != Tamper::Unchained {
            let later = verify(&store, 12).await;
            assert!(later.is_clean(), "{what}: from 12: {later:?}");
        }
    }
}

#[tokio::test]
async fn a_store_from_before_the_chain_is_chained_from_its_next_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    drop(log(&path).await);
    // What a store written by schema version 1 looks like: no chain.
    tamper(
        &path,
        "DROP TABLE chain; DELETE FROM meta WHERE key = 'chain_from'; \
         UPDATE meta SET value = 1 WHERE key = 'schema_version';",
    );
    let store = SqliteStore::open(&path).expect("open an older store");
    let version: i64 = raw(&path)
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .expect("version");
    assert_eq!(version, funnel_store_sqlite::SCHEMA_VERSION);
    let r = verify(&store, 1).await;
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(
        (r.chain_starts_at, r.commits, r.events),
        (Some(Position(13)), 0, 12)
    );
    append_ok(
        &store,
        request(
            &unique_stream("lead"),
            ExpectedVersion::NoStream,
            numbered_events(2),
        ),
    )
    .await;
    let r = verify(&store, 1).await;
    assert!(r.is_clean(), "{r:?}");
    assert_eq!((r.commits, r.events), (1, 14));
    // An event inserted among the chained ones is still found.
    tamper(&path, "DELETE FROM chain");
    let r = verify(&store, 1).await;
    assert_eq!(
        r.first_bad,
        Some(Finding {
            position: Position(13),
            tamper: Tamper::Unchained,
            until: None
        }),
        "{r:?}"
    );
}

/// Signs the chain's head of `store` now.
async fn checkpoint(store: &SqliteStore, key: &CheckpointSigner) -> Checkpoint {
    let (position, hash) = store.chain_head().await.expect("head").expect("a chain");
    key.sign(position, &hash, chrono::Utc::now())
}

fn witness(key: &CheckpointSigner, checkpoints: &[&Checkpoint]) -> Option<Witness> {
    Some(Witness {
        key: key.public(),
        lines: checkpoints.iter().map(|c| Ok((*c).clone())).collect(),
    })
}

/// Appends `n` one-event commits, each with a payload of its own (`{"i": first + k}`).
async fn more(store: &SqliteStore, first: usize, n: usize) {
    for i in first..first + n {
        let event = numbered_events(i + 1).pop().expect("an event");
        append_ok(
            store,
            request(
                &unique_stream("lead"),
                ExpectedVersion::NoStream,
                vec![event],
            ),
        )
        .await;
    }
}

#[tokio::test]
async fn signed_checkpoints_expose_a_rewritten_chain_and_a_cut_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = CheckpointSigner::generate();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).expect("open");
    more(&store, 0, 5).await;
    let at5 = checkpoint(&store, &key).await;
    assert_eq!(at5.position, Position(5));
    // A forger's copy taken here, which goes on with other events and a chain of its own.
    let forged_path = dir.path().join("forged.db");
    raw(&path)
        .execute_batch(&format!("VACUUM INTO '{}'", forged_path.display()))
        .expect("copy");
    more(&store, 5, 7).await;
    let at12 = checkpoint(&store, &key).await;
    more(&store, 12, 2).await;

    // The original: both checkpoints match; the two events after the last are not witnessed.
    let r = verify_with(&store, 1, witness(&key, &[&at5, &at12])).await;
    assert!(r.is_clean(), "{r:?}");
    let w = r.witness.expect("witnessed");
    assert_eq!((w.matched, w.unwitnessed_positions), (2, 2));
    assert_eq!(w.last.expect("last").position, Position(12));

    // The forged log is consistent with itself (the walk alone finds nothing), but not with the
    // checkpoint at 12: rewritten after 5.
    let forged = SqliteStore::open(&forged_path).expect("open the copy");
    more(&forged, 100, 9).await;
    assert!(verify(&forged, 1).await.is_clean());
    let r = verify_with(&forged, 1, witness(&key, &[&at5, &at12])).await;
    assert_eq!(
        r.first_bad,
        Some(Finding {
            position: Position(6),
            tamper: Tamper::Rewritten,
            until: Some(Position(12))
        }),
        "{r:?}"
    );
    assert!(!r.is_clean());

    // The original with its last commits and their records cut off: the walk finds nothing,
    // the checkpoint at 12 names the cut.
    drop(store);
    tamper(
        &dir.path().join("events.db"),
        "DELETE FROM events WHERE position > 9; DELETE FROM chain WHERE last_position > 9;",
    );
    let store = SqliteStore::open(&path).expect("reopen");
    assert!(verify(&store, 1).await.is_clean());
    let r = verify_with(&store, 1, witness(&key, &[&at5, &at12])).await;
    assert_eq!(
        r.first_bad,
        Some(Finding {
            position: Position(10),
            tamper: Tamper::Truncated,
            until: Some(Position(12))
        }),
        "{r:?}"
    );

    // A checkpoint edited after signing is named, and vouches for nothing.
    let mut edited = at12.clone();
    edited.position = Position(9);
    let r = verify_with(&store, 1, witness(&key, &[&edited])).await;
    let w = r.witness.clone().expect("witnessed");
    assert_eq!(w.bad_checkpoint.expect("named").line, 1);
    assert_eq!((w.matched, w.unwitnessed_positions), (0, 9));
    assert!(!r.is_clean());
}
