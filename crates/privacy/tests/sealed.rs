//! The sealing store over the embedded store: the store conformance suite passes through it, the
//! log holds personal fields sealed while every read opens them, and an erasure turns them, and
//! the snapshots of the streams that mention the person, unreadable.

use async_trait::async_trait;
use funnel_privacy::{SealedStore, SqliteKeyStore};
use funnel_store::conformance::{Harness, append_ok, event, read_everything, request};
use funnel_store::{EventStore, Filter, Snapshot, SubscriptionItem};
use funnel_store_sqlite::SqliteStore;
use funnel_types::{ExpectedVersion, Position, StreamId, Version};
use futures::StreamExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

struct Sealed {
    _dir: tempfile::TempDir,
    path: PathBuf,
    master: [u8; 32],
}

impl Sealed {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("events.db");
        Self {
            _dir: dir,
            path,
            master: rand::random(),
        }
    }

    fn sealed(&self) -> Arc<SealedStore> {
        let log = Arc::new(SqliteStore::open(&self.path).expect("open the store file"));
        let keys = SqliteKeyStore::open(&self.path.with_extension("keys"), self.master)
            .expect("open the key file");
        Arc::new(SealedStore::new(log, Arc::new(keys)))
    }
}

#[async_trait]
impl Harness for Sealed {
    async fn open(&self) -> Arc<dyn EventStore> {
        self.sealed()
    }
    async fn restart(&self) -> Arc<dyn EventStore> {
        self.sealed()
    }
    async fn expire_dedup_window(&self) {}
}

funnel_store::conformance_tests!(Sealed::new());

fn payload(e: &funnel_store::RecordedEvent) -> Value {
    serde_json::from_slice(&e.payload).expect("JSON")
}

#[tokio::test]
async fn the_log_holds_sealed_fields_readers_see_them_and_an_erasure_ends_that() {
    let h = Sealed::new();
    let store = h.sealed();
    let lead = StreamId::new("lead", "l1").expect("stream");
    let registered = json!({ "lead_id": "l1", "customer_name": "万科",
        "contact": { "name": "李经理", "phone": "13800000000" } });
    let person = json!({ "lead_id": "l1", "key_person_id": "k1", "name": "王总",
        "title": "总经理", "role": "decision_maker", "phone": "13911112222", "personal_notes": "高尔夫" });
    append_ok(
        store.as_ref(),
        request(
            &lead,
            ExpectedVersion::NoStream,
            vec![
                event("lead.registered", registered.clone()),
                event("lead.key_person_recorded", person.clone()),
            ],
        ),
    )
    .await;

    // As stored: sealed, the business facts in the clear.
    let raw = read_everything(store.raw().as_ref()).await;
    let text: String = raw.iter().map(|e| payload(e).to_string()).collect();
    for secret in ["李经理", "13800000000", "王总", "13911112222", "高尔夫"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(
        text.contains("万科") && text.contains("decision_maker"),
        "{text}"
    );

    // As read, by every way of reading.
    let all = read_everything(store.as_ref()).await;
    assert_eq!(payload(&all[0]), registered);
    assert_eq!(payload(&all[1]), person);
    let stream = store
        .read_stream(&lead, Version::FIRST, 10)
        .await
        .expect("read");
    assert_eq!(payload(&stream[1]), person);
    let mut sub = store.clone().subscribe(Position::START, Filter::All);
    match sub.next().await {
        Some(Ok(SubscriptionItem::Event(e))) => assert_eq!(payload(&e), registered),
        other => panic!("{other:?}"),
    }

    // A snapshot is sealed with the stream's key and opens.
    let state = b"{\"contact\":\"13800000000\"}".to_vec();
    store
        .save_snapshot(Snapshot {
            stream: lead.clone(),
            version: Version(2),
            data: state.clone().into(),
        })
        .await
        .expect("save");
    let stored = store.raw().load_snapshot(&lead).await.expect("load");
    let stored = stored.expect("a snapshot");
    assert!(!stored.data.windows(11).any(|w| w == b"13800000000"));
    let opened = store.load_snapshot(&lead).await.expect("load");
    assert_eq!(opened.expect("opens").data.to_vec(), state);

    // Erasing the key person: their fields read as erased, the contact's do not, and the
    // stream's snapshot is no longer used.
    let at = chrono::Utc::now();
    assert!(
        store
            .erase("key_person:k1", std::slice::from_ref(&lead), at)
            .await
            .expect("erase")
    );
    // Another handle (another process) on the same files sees it too.
    let other = h.sealed();
    for s in [&store, &other] {
        let all = read_everything(s.as_ref()).await;
        assert_eq!(payload(&all[0]), registered);
        let p = payload(&all[1]);
        assert_eq!(p["name"], funnel_domain::privacy::ERASED);
        assert_eq!(p["personal_notes"], funnel_domain::privacy::ERASED);
        assert_eq!(p["role"], "decision_maker");
        assert_eq!(s.load_snapshot(&lead).await.expect("load"), None);
    }
}
