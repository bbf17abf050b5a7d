//! The Parquet exports read back with DuckDB (a pinned PyPI `duckdb`, installed by scripts/test):
//! the events file holds every event of the NDJSON export in log order with the same ids and
//! payloads, and the leads file's counts and amounts per office and stage are the pipeline
//! report's, now and as of a date.

use std::path::{Path, PathBuf};
use std::process::Command;

fn funnel(store: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_funnel"));
    c.args(["--store", store]);
    c
}

fn ok(mut c: Command) -> Vec<u8> {
    let out = c.output().expect("run funnel");
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/pyenv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: scripts/test installs the Python test tools (scripts/requirements-test.txt)",
        p.display()
    );
    p
}

fn check(dir: &Path, events_ndjson: &Path, pipeline: &Path, leads: &Path) -> std::process::Output {
    Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_parquet.py"))
        .arg(dir.join("events.parquet"))
        .arg(events_ndjson)
        .arg(leads)
        .arg(pipeline)
        .output()
        .expect("run python")
}

#[test]
fn duckdb_reads_the_exports_as_the_json_exports_and_reports_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let store = format!("sqlite:{}", d.join("demo.db").display());
    let mut demo = funnel(&store);
    demo.args(["demo", "--json", "--leads", "120", "--end", "2026-10-31"]);
    ok(demo);

    let mut c = funnel(&store);
    c.args(["export", "events", "--format", "parquet", "--out"])
        .arg(d.join("events.parquet"));
    ok(c);
    let mut c = funnel(&store);
    c.args(["export", "events"]);
    std::fs::write(d.join("events.ndjson"), ok(c)).expect("write");

    for as_of in [None, Some("2026-09-30")] {
        let leads = d.join(format!("leads-{}.parquet", as_of.unwrap_or("now")));
        let pipeline = d.join(format!("pipeline-{}.json", as_of.unwrap_or("now")));
        let mut c = funnel(&store);
        c.args(["export", "leads", "--out"]).arg(&leads);
        let mut p = funnel(&store);
        p.args(["pipeline", "--json"]);
        if let Some(date) = as_of {
            c.args(["--as-of", date]);
            p.args(["--as-of", date]);
        }
        ok(c);
        std::fs::write(&pipeline, ok(p)).expect("write");
        let out = check(d, &d.join("events.ndjson"), &pipeline, &leads);
        assert!(
            out.status.success(),
            "as of {as_of:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The check itself can fail: an NDJSON export missing its last event disagrees.
    let text = std::fs::read_to_string(d.join("events.ndjson")).expect("read");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    std::fs::write(d.join("short.ndjson"), lines.join("\n")).expect("write");
    let out = check(
        d,
        &d.join("short.ndjson"),
        &d.join("pipeline-now.json"),
        &d.join("leads-now.parquet"),
    );
    assert!(!out.status.success(), "a missing event must be noticed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("events:"));
}

#[test]
fn parquet_needs_a_file_and_says_so_in_both_languages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite:{}", dir.path().join("empty.db").display());
    let out = funnel(&store)
        .args(["export", "events", "--format", "parquet"])
        .output()
        .expect("run funnel");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--out FILE") && err.contains("二进制文件"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn an_export_file_is_private_and_complete_or_absent() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite:{}", dir.path().join("empty.db").display());
    let out = dir.path().join("events.parquet");
    let mut c = funnel(&store);
    c.args(["export", "events", "--format", "parquet", "--out"])
        .arg(&out);
    ok(c);
    let mode = std::fs::metadata(&out).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "exports hold personal data");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file stays behind");
}
