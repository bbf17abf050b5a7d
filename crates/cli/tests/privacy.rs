//! Personal fields sealed per person on the embedded store: the log never holds them in the
//! clear, readers see them, and after `funnel privacy erase` no file of the store's folder and no
//! output holds them any more, while the business facts and reports are unchanged.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Log {
    dir: tempfile::TempDir,
    store: String,
    key: PathBuf,
}

impl Log {
    /// A demo history written with sealing on.
    fn demo() -> Log {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("master.key");
        let out = Command::new(env!("CARGO_BIN_EXE_funnel"))
            .args(["privacy", "keygen", "--out"])
            .arg(&key)
            .output()
            .expect("run funnel");
        assert!(out.status.success(), "{out:?}");
        let store = format!("sqlite:{}", dir.path().join("funnel.db").display());
        let log = Log { dir, store, key };
        log.ok(&["demo", "--leads", "80", "--end", "2026-10-31"]);
        log
    }

    fn command(&self, with_key: bool) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_funnel"));
        c.current_dir(self.dir.path())
            .env_remove("FUNNEL_STORE")
            .env_remove("FUNNEL_PRIVACY_KEY_FILE")
            .args(["--store", &self.store]);
        if with_key {
            c.arg("--privacy-key-file").arg(&self.key);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(true).args(args).output().expect("run funnel")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "funnel {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// The first sealed field of an event of `event_type`, as the log stores it.
    fn sealed(&self, event_type: &str) -> (String, Value) {
        let db = rusqlite::Connection::open(self.dir.path().join("funnel.db")).expect("open");
        let (stream, payload): (String, String) = db
            .query_row(
                "SELECT stream, CAST(payload AS TEXT) FROM events WHERE event_type = ?1 ORDER BY position LIMIT 1",
                [event_type],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("an event of that type");
        (stream, serde_json::from_str(&payload).expect("JSON"))
    }

    /// Every file under the store's folder whose bytes contain `text`.
    fn files_holding(&self, text: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, text: &[u8], found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("read dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    walk(&path, text, found);
                } else if std::fs::read(&path)
                    .expect("read")
                    .windows(text.len())
                    .any(|w| w == text)
                {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(self.dir.path(), text.as_bytes(), &mut found);
        found
    }
}

fn values(export: &str) -> Vec<String> {
    let data: Value = serde_json::from_str(export).expect("export JSON");
    data["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["value"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn an_erased_person_is_nowhere_in_the_clear_and_the_reports_are_unchanged() {
    let log = Log::demo();
    // The log holds the person sealed: the subject's id and ciphertext, not the name.
    let (stream, kp) = log.sealed("lead.key_person_recorded");
    assert_eq!(kp["name"]["$sealed"], "xchacha20poly1305-v1", "{kp}");
    let person = kp["name"]["subject"].as_str().expect("subject").to_string();
    let lead = stream.trim_start_matches("lead-").to_string();
    let contact = format!("contact:{lead}");

    // Readers see them: the export of an access request, and the lead's record.
    let export: Value =
        serde_json::from_str(&log.ok(&["privacy", "export", &person])).expect("JSON");
    let field = |f: &str| {
        export["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|x| x["field"] == f)
            .and_then(|x| x["value"].as_str())
            .unwrap_or_else(|| panic!("no {f} in {export}"))
            .to_string()
    };
    // Names may be shared with members of staff (not personal fields): the person's phone and
    // notes are theirs alone.
    let (name, person_phone) = (field("/name"), field("/phone"));
    let before = values(&export.to_string());
    let phone = values(&log.ok(&["privacy", "export", &contact]))[1].clone();
    assert!(
        phone.chars().filter(char::is_ascii_digit).count() >= 7,
        "{phone}"
    );
    let record = log.ok(&["lead", "show", &lead]);
    assert!(record.contains(&phone), "{record}");
    // Only the read models (a cache, for finding leads by phone) hold it in the clear.
    let held = log.files_holding(&person_phone);
    assert!(
        held.iter()
            .all(|f| f.to_string_lossy().contains("projections")),
        "{person_phone} in the clear in {held:?}"
    );
    let pipeline = log.ok(&["pipeline", "--json"]);
    let found = log.ok(&["leads", "find", &phone]);
    assert!(found.contains(&lead), "{found}");

    // Without the master key the log is refused, in both languages.
    let refused = log.command(false).args(["pipeline"]).output().expect("run");
    assert!(!refused.status.success());
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains("master key") && text.contains("主密钥"),
        "{text}"
    );

    // Erase both.
    for subject in [&person, &contact] {
        let out = log.ok(&[
            "privacy",
            "erase",
            subject,
            "--reason",
            "PIPL-2026-17",
            "--json",
        ]);
        let erased: Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(erased["key_destroyed"], true, "{out}");
        assert_eq!(erased["streams"][0], stream.as_str(), "{out}");
    }
    let again = log.ok(&["privacy", "erase", &person, "--reason", "again"]);
    assert!(again.contains("no key to destroy"), "{again}");

    // Every reader shows the marker; the business facts and the reports stay.
    let after = values(&log.ok(&["privacy", "export", &person]));
    assert_eq!(after.len(), before.len());
    assert!(after.iter().all(|v| v == "[已删除 erased]"), "{after:?}");
    let record = log.ok(&["lead", "show", &lead]);
    assert!(
        record.contains("[已删除 erased]") && !record.contains(&phone),
        "{record}"
    );
    assert_eq!(log.ok(&["pipeline", "--json"]), pipeline);
    let found = log.ok(&["leads", "find", &phone]);
    assert!(!found.contains(&lead), "found by an erased phone: {found}");
    let form = log.ok(&["form", "5", &lead]);
    assert!(
        form.contains("[已删除") && !form.contains(&person_phone),
        "{form}"
    );
    let _ = name;
    for format in ["ndjson", "cloudevents", "parquet"] {
        let out = log.dir.path().join(format!("events.{format}"));
        log.ok(&[
            "export",
            "events",
            "--format",
            format,
            "--out",
            out.to_str().expect("utf-8"),
        ]);
    }
    let ndjson = std::fs::read_to_string(log.dir.path().join("events.ndjson")).expect("export");
    assert!(ndjson.contains("[已删除 erased]"));
    for secret in [&person_phone, &phone] {
        let held = log.files_holding(secret);
        assert!(held.is_empty(), "{secret} is still in {held:?}");
    }
    // The chain covers the sealed bytes, which an erasure does not touch.
    let verified = log.ok(&["verify"]);
    assert!(verified.contains("nothing was changed"), "{verified}");
}

#[test]
fn a_person_is_named_by_kind_and_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_funnel"))
        .current_dir(dir.path())
        .env_remove("FUNNEL_PRIVACY_KEY_FILE")
        .args(["privacy", "export", "customer:1"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("contact:<lead id>") && text.contains("关键人"),
        "{text}"
    );
    // Without a master key there is nothing to open with.
    let out = Command::new(env!("CARGO_BIN_EXE_funnel"))
        .current_dir(dir.path())
        .env_remove("FUNNEL_PRIVACY_KEY_FILE")
        .args(["privacy", "export", "contact:abc"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--privacy-key-file"),
        "{out:?}"
    );
}
