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
    /// The JetStream server holding the log, when it is not the embedded store.
    nats: Option<funnel_testkit::NatsServer>,
}

impl Log {
    /// A demo history written with sealing on, on the embedded store or (`nats`) JetStream.
    fn demo(nats: bool) -> Log {
        Log::demo_until(nats, "2026-10-31")
    }

    /// [`Log::demo`] with a history that ends on `end`.
    fn demo_until(nats: bool, end: &str) -> Log {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("master.key");
        let out = Command::new(env!("CARGO_BIN_EXE_funnel"))
            .args(["privacy", "keygen", "--out"])
            .arg(&key)
            .output()
            .expect("run funnel");
        assert!(out.status.success(), "{out:?}");
        let nats = nats.then(funnel_testkit::NatsServer::start);
        let store = match &nats {
            Some(n) => n.url(),
            None => format!("sqlite:{}", dir.path().join("funnel.db").display()),
        };
        let log = Log {
            dir,
            store,
            key,
            nats,
        };
        log.ok(&["demo", "--leads", "80", "--end", end]);
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

    /// What `args` print, as JSON.
    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("JSON")
    }

    /// The first event of `event_type`, as read (its stream and payload).
    fn first(&self, event_type: &str) -> (String, Value) {
        self.ok(&["export", "events", "--category", "lead"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
            .find(|e| e["event_type"] == event_type)
            .map(|e| {
                (
                    e["stream"].as_str().expect("stream").to_string(),
                    e["payload"].clone(),
                )
            })
            .expect("an event of that type")
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
        if let Some(n) = &self.nats {
            walk(n.store_dir(), text.as_bytes(), &mut found);
        }
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
fn an_erased_person_is_nowhere_in_the_clear_on_the_embedded_store() {
    erase_a_person(Log::demo(false));
}

#[test]
fn an_erased_person_is_nowhere_in_the_clear_on_jetstream() {
    erase_a_person(Log::demo(true));
}

fn erase_a_person(log: Log) {
    let (stream, kp) = log.first("lead.key_person_recorded");
    let person = format!(
        "key_person:{}",
        kp["key_person_id"].as_str().expect("key person id")
    );
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
    // The same figures as of where the log ended before (the erasures are recorded after it).
    let before_end: Value = serde_json::from_str(&pipeline).expect("pipeline JSON");
    let end = before_end["position"].to_string();
    assert_eq!(log.ok(&["pipeline", "--json", "--as-of", &end]), pipeline);
    // Who and why: each erasure is on record in the log, with its reason.
    let records: Vec<Value> = log
        .ok(&["export", "events", "--category", "erasure"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(
        records
            .iter()
            .any(|e| e["event_type"] == "privacy.subject_erased"
                && e["payload"]["subject"] == person.as_str()
                && e["payload"]["reason"] == "PIPL-2026-17"),
        "{records:?}"
    );
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
    // The chain covers the sealed bytes, which an erasure does not touch (both backends).
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

    // Giving the key to a log where nothing was sealed does not lock it: without the key it still
    // opens.
    let key = dir.path().join("master.key");
    let store = format!("sqlite:{}", dir.path().join("clear.db").display());
    let funnel = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_funnel"))
            .current_dir(dir.path())
            .env_remove("FUNNEL_PRIVACY_KEY_FILE")
            .env_remove("FUNNEL_STORE")
            .args(["--store", &store])
            .args(args)
            .output()
            .expect("run")
    };
    assert!(
        funnel(&["privacy", "keygen", "--out", key.to_str().expect("utf-8")])
            .status
            .success()
    );
    let export = funnel(&[
        "--privacy-key-file",
        key.to_str().expect("utf-8"),
        "privacy",
        "export",
        "contact:abc",
    ]);
    assert!(export.status.success(), "{export:?}");
    assert!(dir.path().join("clear.db.keys").exists());
    let plain = funnel(&["pipeline"]);
    assert!(plain.status.success(), "{plain:?}");
}

#[test]
fn the_retention_policy_erases_the_people_of_leads_ended_long_ago() {
    let log = Log::demo_until(false, "2022-06-30");
    let listed: Value = log.json(&["privacy", "retention", "--years", "2", "--json"]);
    assert_eq!(listed["applied"], false);
    let leads = listed["leads"].as_array().expect("leads").clone();
    assert!(!leads.is_empty(), "{listed}");
    assert!(listed["erased"].as_array().expect("erased").is_empty());
    for lead in &leads {
        let ended = lead["ended_by"].as_str().expect("ended_by");
        assert!(
            ["lead.lost", "lead.suspended", "lead.contract_signed"].contains(&ended),
            "{lead}"
        );
        assert!(lead["last_activity"].as_str().expect("time") < "2024");
    }
    let first = leads[0]["subjects"][0]
        .as_str()
        .expect("subject")
        .to_string();
    assert!(first.starts_with("contact:"), "{first}");
    // Listing erases nothing.
    assert!(!values(&log.ok(&["privacy", "export", &first])).contains(&"[已删除 erased]".into()));

    // Ten years back, nothing is that old.
    let none: Value = log.json(&["privacy", "retention", "--years", "10", "--json"]);
    assert!(
        none["leads"].as_array().expect("leads").is_empty(),
        "{none}"
    );

    let applied: Value = log.json(&["privacy", "retention", "--years", "2", "--apply", "--json"]);
    let people: usize = leads
        .iter()
        .map(|l| l["subjects"].as_array().expect("subjects").len())
        .sum();
    assert_eq!(applied["erased"].as_array().expect("erased").len(), people);
    assert!(
        values(&log.ok(&["privacy", "export", &first]))
            .iter()
            .all(|v| v == "[已删除 erased]")
    );
    // A lead still in progress keeps its contact.
    let active = log
        .ok(&["export", "events", "--category", "lead"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .find(|e| {
            e["event_type"] == "lead.registered"
                && !leads.iter().any(|l| l["stream"] == e["stream"])
        })
        .expect("a lead the policy does not reach");
    let contact = format!(
        "contact:{}",
        active["payload"]["lead_id"].as_str().expect("lead id")
    );
    assert!(!values(&log.ok(&["privacy", "export", &contact])).contains(&"[已删除 erased]".into()));
    // Run again: nothing left to erase.
    let again: Value = log.json(&["privacy", "retention", "--years", "2", "--apply", "--json"]);
    assert!(again["erased"].as_array().expect("erased").is_empty());
}

#[test]
fn a_server_with_a_retention_setting_erases_the_people_of_leads_ended_long_ago() {
    use std::io::{BufRead, BufReader};
    let log = Log::demo_until(false, "2022-06-30");
    let listed: Value = log.json(&["privacy", "retention", "--years", "2", "--json"]);
    let people: Vec<String> = listed["leads"]
        .as_array()
        .expect("leads")
        .iter()
        .flat_map(|l| l["subjects"].as_array().expect("subjects").clone())
        .map(|s| s.as_str().expect("subject").to_string())
        .collect();
    assert!(!people.is_empty(), "{listed}");

    // Without the master key the setting is refused at start, before anything is served.
    let refused = log
        .command(false)
        .env("FUNNEL__PRIVACY__RETENTION_YEARS", "2")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run funnel serve");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("privacy.master_key_file"),
        "{refused:?}"
    );

    let mut serve = log
        .command(true)
        .env("FUNNEL__PRIVACY__RETENTION_YEARS", "2")
        .env("RUST_LOG", "warn")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start funnel serve");
    let mut first = String::new();
    BufReader::new(serve.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("first line");
    assert!(first.contains("listening on"), "{first}");
    // The policy runs at start: every one of those people's erasure is recorded, by the server.
    let erasures = || -> Vec<Value> {
        log.ok(&["export", "events", "--category", "erasure"])
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
            .filter(|e| e["event_type"] == "privacy.subject_erased")
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let recorded = loop {
        let found = erasures();
        if found.len() >= people.len() || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = serve.kill();
    let _ = serve.wait();
    let mut erased: Vec<String> = recorded
        .iter()
        .map(|e| {
            e["payload"]["subject"]
                .as_str()
                .expect("subject")
                .to_string()
        })
        .collect();
    erased.sort();
    let mut expected = people.clone();
    expected.sort();
    assert_eq!(erased, expected);
    for e in &recorded {
        assert_eq!(e["actor"]["kind"], "system", "{e}");
        assert_eq!(e["actor"]["name"], "funnel serve retention", "{e}");
        assert!(
            e["payload"]["reason"]
                .as_str()
                .expect("reason")
                .starts_with("retention: the lead ended"),
            "{e}"
        );
    }
    assert!(
        values(&log.ok(&["privacy", "export", &people[0]]))
            .iter()
            .all(|v| v == "[已删除 erased]")
    );
    // Nothing is left to erase, so the command finds nobody whose key still exists.
    let again: Value = log.json(&["privacy", "retention", "--years", "2", "--apply", "--json"]);
    assert!(again["erased"].as_array().expect("erased").is_empty());
}
