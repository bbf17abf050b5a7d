//! `funnel export events` then `funnel import`, with the real binary: a log moves between stores
//! (SQLite to SQLite, to a real nats-server, and through the CloudEvents form) with every fact but
//! the recorded time unchanged; a second import writes nothing; a damaged, reordered or conflicting
//! file stops with the line it could not take.

mod common;

use common::*;
use funnel_testkit::NatsServer;
use serde_json::Value;
use std::process::Command;

/// Every exported line, without what the target store assigns anew: its recorded time, and (with
/// `drop`) other fields such as positions, whose numbering differs between backends.
fn facts_without(ndjson: &str, drop: &[&str]) -> Vec<Value> {
    ndjson
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("an exported line is JSON");
            let o = v.as_object_mut().expect("object");
            o.remove("recorded_at");
            for f in drop {
                o.remove(*f);
            }
            v
        })
        .collect()
}

fn facts(ndjson: &str) -> Vec<Value> {
    facts_without(ndjson, &[])
}

/// The same facts, line by line; on a difference, the first differing line only.
#[track_caller]
fn assert_same(actual: Vec<Value>, expected: &[Value]) {
    assert_eq!(actual.len(), expected.len(), "number of events");
    if let Some((i, (a, e))) = actual
        .iter()
        .zip(expected)
        .enumerate()
        .find(|(_, (a, e))| a != e)
    {
        panic!("line {} differs:\n  got      {a}\n  expected {e}", i + 1);
    }
}

fn report(stdout: &str) -> Value {
    serde_json::from_str(stdout).expect("a JSON report")
}

#[test]
fn a_log_moves_between_stores_unchanged_and_only_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let source = format!("sqlite:{}", d.join("source.db").display());
    ok(&source, &["demo", "--leads", "12"], d);
    let exported = ok(&source, &["export", "events"], d);
    let lines = exported.lines().count() as u64;
    assert!(lines > 100, "the demo history has {lines} events");
    std::fs::write(d.join("log.ndjson"), &exported).expect("write export");
    let expected = facts(&exported);

    // Into an empty SQLite store: every event, same positions (the target was empty).
    let copy = format!("sqlite:{}", d.join("copy.db").display());
    let first = report(&ok(&copy, &["import", "log.ndjson", "--json"], d));
    assert_eq!(first["events_read"], lines);
    assert_eq!(first["events_written"], lines);
    assert_eq!(first["commits_present"], 0);
    assert_eq!(first["first_position"], 1);
    assert_eq!(first["last_position"], lines);
    assert_same(facts(&ok(&copy, &["export", "events"], d)), &expected);

    // Again: every commit is recognised by its command id and nothing is written.
    let again = report(&ok(&copy, &["import", "log.ndjson", "--json"], d));
    assert_eq!(again["events_written"], 0);
    assert_eq!(again["commits_present"], first["commits_written"]);
    assert_same(facts(&ok(&copy, &["export", "events"], d)), &expected);

    // Through the CloudEvents form, from standard input.
    let cloudevents = ok(&source, &["export", "events", "--format", "cloudevents"], d);
    std::fs::write(d.join("log.cloudevents"), &cloudevents).expect("write export");
    let via_ce = format!("sqlite:{}", d.join("via-ce.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_funnel"))
        .args(["--store", &via_ce, "import", "--json"])
        .current_dir(d)
        .stdin(std::fs::File::open(d.join("log.cloudevents")).expect("open"))
        .output()
        .expect("run funnel");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report(&String::from_utf8_lossy(&out.stdout))["events_written"],
        lines
    );
    assert_same(facts(&ok(&via_ce, &["export", "events"], d)), &expected);

    // The read models built from the copy agree with the source's.
    let pipeline = |store: &str| ok(store, &["pipeline", "--json"], d);
    assert_eq!(pipeline(&copy), pipeline(&source));

    // Half an import, then the whole file: the second run writes exactly the rest.
    let half: String = exported
        .lines()
        .take(lines as usize / 2)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(d.join("half.ndjson"), half).expect("write half");
    let resumed = format!("sqlite:{}", d.join("resumed.db").display());
    let h = report(&ok(&resumed, &["import", "half.ndjson", "--json"], d));
    let rest = report(&ok(&resumed, &["import", "log.ndjson", "--json"], d));
    assert_eq!(
        h["events_written"].as_u64().unwrap() + rest["events_written"].as_u64().unwrap(),
        lines
    );
    assert_same(facts(&ok(&resumed, &["export", "events"], d)), &expected);
}

#[test]
fn a_sqlite_log_moves_to_jetstream() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let source = format!("sqlite:{}", d.join("source.db").display());
    ok(&source, &["demo", "--leads", "6"], d);
    let exported = ok(&source, &["export", "events"], d);
    std::fs::write(d.join("log.ndjson"), &exported).expect("write export");
    let lines = exported.lines().count() as u64;
    let first = report(&ok(&nats.url(), &["import", "log.ndjson", "--json"], d));
    assert_eq!(first["events_written"], lines);
    let again = report(&ok(&nats.url(), &["import", "log.ndjson", "--json"], d));
    assert_eq!(again["events_written"], 0);
    assert_eq!(again["commits_present"], first["commits_written"]);
    // JetStream numbers positions its own way (commit sequence and index); the order is the same.
    let moved = ok(&nats.url(), &["export", "events"], d);
    assert_same(
        facts_without(&moved, &["position"]),
        &facts_without(&exported, &["position"]),
    );
}

#[test]
fn files_that_cannot_be_imported_name_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let source = format!("sqlite:{}", d.join("source.db").display());
    ok(&source, &["demo", "--leads", "3"], d);
    let exported = ok(&source, &["export", "events"], d);
    let lines: Vec<&str> = exported.lines().collect();
    let target = |name: &str| format!("sqlite:{}", d.join(name).display());

    // A damaged line: nothing after it is written, what came before is kept.
    let mut damaged = lines.clone();
    damaged[2] = "{\"event_type\": \"lead.registered\"";
    std::fs::write(d.join("damaged.ndjson"), damaged.join("\n")).expect("write");
    let err = refused(&target("a.db"), &["import", "damaged.ndjson"], d);
    assert!(err.contains("line 3: not JSON"), "{err}");

    // Lines out of log order.
    let mut swapped = lines.clone();
    swapped.swap(3, 4);
    std::fs::write(d.join("swapped.ndjson"), swapped.join("\n")).expect("write");
    let err = refused(&target("b.db"), &["import", "swapped.ndjson"], d);
    assert!(
        err.contains("line 5") && err.contains("not in log order"),
        "{err}"
    );

    // A store whose history of the same stream differs: the first command of the file under
    // another command id cannot continue what the store holds.
    let mut other: Value = serde_json::from_str(lines[0]).expect("json");
    other["command_id"] = Value::String(uuid::Uuid::now_v7().to_string());
    other["event_id"] = Value::String(uuid::Uuid::now_v7().to_string());
    std::fs::write(d.join("other.ndjson"), other.to_string()).expect("write");
    ok(&target("c.db"), &["import", "other.ndjson"], d);
    let err = refused(&target("c.db"), &["import", "damaged.ndjson"], d);
    assert!(
        err.contains("line 1") && err.contains("import into an empty store"),
        "{err}"
    );

    // A file cut inside a multi-event command, imported, then the whole file: the command cannot
    // be completed under its id, and the import says so instead of skipping the rest of it.
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let inside = (1..parsed.len())
        .find(|&i| parsed[i]["command_id"] == parsed[i - 1]["command_id"])
        .expect("a command with several events");
    std::fs::write(d.join("cut.ndjson"), lines[..inside].join("\n")).expect("write");
    ok(&target("e.db"), &["import", "cut.ndjson"], d);
    std::fs::write(d.join("whole.ndjson"), lines.join("\n")).expect("write");
    let err = refused(&target("e.db"), &["import", "whole.ndjson"], d);
    assert!(
        err.contains(&format!("line {inside}")) && err.contains("ended inside this command"),
        "{err}"
    );

    // A file that is not there.
    let err = refused(&target("d.db"), &["import", "missing.ndjson"], d);
    assert!(
        err.contains("cannot open") && err.contains("missing.ndjson"),
        "{err}"
    );
}
