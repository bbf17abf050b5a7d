//! The `funnel` binary on the demo history: snapshots of what users read (pipeline, audits, as-of
//! views), and clear errors for bad input.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn funnel() -> Command {
    Command::new(env!("CARGO_BIN_EXE_funnel"))
}

/// A store with the demo history, built once per test run.
fn demo_store() -> &'static str {
    static STORE: OnceLock<(tempfile::TempDir, String)> = OnceLock::new();
    let (_, url) = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path: PathBuf = dir.path().join("demo.db");
        let url = format!("sqlite:{}", path.display());
        run_on(&url, &["demo", "--json", "--end", "2026-10-31"]);
        // The read models' file is created here, once: the tests then run their commands at
        // the same moment, and several processes creating one SQLite file at once can find it
        // still in rollback mode, where SQLite refuses at once rather than wait ("database is
        // locked").
        run_on(&url, &["pipeline", "--json"]);
        (dir, url)
    });
    url
}

/// Runs `funnel --store STORE ARGS`, which must succeed; its standard output.
fn run_on(store: &str, args: &[&str]) -> String {
    let out = funnel()
        .args(["--store", store])
        .args(args)
        .output()
        .expect("run funnel");
    assert!(
        out.status.success(),
        "funnel {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn run(args: &[&str]) -> String {
    run_on(demo_store(), args)
}

fn fails(args: &[&str]) -> String {
    let out = funnel()
        .args(["--store", demo_store()])
        .args(args)
        .output()
        .expect("run funnel");
    assert!(!out.status.success(), "funnel {args:?} should fail");
    String::from_utf8(out.stderr).expect("utf-8")
}

#[test]
fn pipeline_of_every_office() {
    insta::assert_snapshot!(run(&["pipeline"]));
}

#[test]
fn pipeline_json_of_one_office() {
    insta::assert_snapshot!(run(&["pipeline", "--office", "GZ", "--json"]));
}

#[test]
fn pipeline_csv_as_of_a_date() {
    let csv = run(&[
        "pipeline",
        "--office",
        "BJ",
        "--as-of",
        "2026-07-31",
        "--csv",
    ]);
    // A byte-order mark first, so that Excel opens the Chinese names as UTF-8.
    let body = csv
        .strip_prefix('\u{feff}')
        .expect("starts with a UTF-8 BOM");
    insta::assert_snapshot!(body);
}

#[test]
fn pipeline_as_of_a_position_counts_only_what_was_there() {
    let early = run(&["pipeline", "--as-of", "500", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&early).expect("json");
    assert_eq!(v["position"], 500);
    let leads: u64 = v["offices"]
        .as_array()
        .expect("offices")
        .iter()
        .flat_map(|o| {
            o["by_stage"]
                .as_object()
                .expect("stages")
                .values()
                .map(|b| b["leads"].as_u64().expect("n"))
        })
        .sum();
    assert!(leads > 0 && leads < 500, "{leads}");
}

#[test]
fn pipeline_as_of_a_date_counts_days_until_the_end_of_that_day() {
    let day =
        |args: &[&str]| -> serde_json::Value { serde_json::from_str(&run(args)).expect("json") };
    let by_date = day(&["pipeline", "--as-of", "2026-06-27", "--json"]);
    // The end of 27 June in Shanghai, not the time of the last event before it.
    assert_eq!(by_date["as_of"], "2026-06-27T15:59:59.999999999+00:00");
    let by_moment = day(&[
        "pipeline",
        "--as-of",
        "2026-06-27T23:59:59.999999999+08:00",
        "--json",
    ]);
    assert_eq!(by_date, by_moment);
    // A day later, every lead still ageing has waited exactly one day more.
    let next = day(&["pipeline", "--as-of", "2026-06-28", "--json"]);
    let ageing = |v: &serde_json::Value| -> std::collections::BTreeMap<String, i64> {
        v["offices"]
            .as_array()
            .expect("offices")
            .iter()
            .flat_map(|o| o["ageing"].as_array().expect("ageing").clone())
            .map(|a| {
                (
                    a["lead_id"].as_str().expect("id").to_string(),
                    a["days_without_visit"].as_i64().expect("days"),
                )
            })
            .collect()
    };
    let (then, later) = (ageing(&by_date), ageing(&next));
    assert!(!then.is_empty(), "the demo has ageing leads by then");
    for (lead, days) in &then {
        if let Some(d) = later.get(lead) {
            assert_eq!(*d, days + 1, "lead {lead}");
        }
    }
}

#[test]
fn conflicts_audit() {
    insta::assert_snapshot!(run(&["audit", "conflicts", "--office", "SH"]));
}

#[test]
fn plan_compliance() {
    insta::assert_snapshot!(run(&["audit", "plans"]));
}

#[test]
fn lead_and_actor_audits() {
    let conflicts: serde_json::Value =
        serde_json::from_str(&run(&["audit", "conflicts", "--json"])).expect("json");
    let lead = conflicts["refused_touches"][0]["lead_id"]
        .as_str()
        .expect("a refused touch")
        .to_string();
    let touches = run(&["audit", "lead", &lead]);
    assert!(touches.contains("REFUSED"), "{touches}");
    insta::assert_snapshot!(touches);
    // As of a position, the touches up to it; before the registration, no lead on record.
    let json =
        |args: &[&str]| -> serde_json::Value { serde_json::from_str(&run(args)).expect("json") };
    let all = json(&["audit", "lead", &lead, "--json"]);
    let positions = |v: &serde_json::Value| -> Vec<u64> {
        v["touches"]
            .as_array()
            .expect("touches")
            .iter()
            .map(|t| t["position"].as_u64().expect("position"))
            .collect()
    };
    let every = positions(&all);
    assert!(every.len() > 2, "{all}");
    let mid = every[every.len() / 2];
    let then = json(&[
        "audit",
        "lead",
        &lead,
        "--json",
        "--as-of",
        &mid.to_string(),
    ]);
    assert_eq!(then["position"], mid);
    assert_eq!(
        positions(&then),
        every
            .iter()
            .copied()
            .filter(|p| *p <= mid)
            .collect::<Vec<_>>()
    );
    let before = fails(&[
        "audit",
        "lead",
        &lead,
        "--as-of",
        &(every[0] - 1).to_string(),
    ]);
    assert!(before.contains("no lead"), "{before}");
    insta::assert_snapshot!(run(&[
        "audit",
        "actor",
        "王工（SH）",
        "--from",
        "2026-06-01",
        "--to",
        "2026-06-14"
    ]));
}

#[test]
fn a_lead_shows_its_record_and_timeline_as_text_and_json() {
    let conflicts: serde_json::Value =
        serde_json::from_str(&run(&["audit", "conflicts", "--json"])).expect("json");
    let lead = conflicts["refused_touches"][0]["lead_id"]
        .as_str()
        .expect("a refused touch")
        .to_string();
    let record: serde_json::Value =
        serde_json::from_str(&run(&["lead", "show", &lead, "--json"])).expect("json");
    assert_eq!(record["lead_id"], lead.as_str());
    let timeline = record["timeline"].as_array().expect("timeline");
    let refused = timeline
        .iter()
        .find(|e| e["refused"] == true)
        .expect("the refused touch is on the timeline");
    let text = run(&["lead", "show", &lead]);
    let customer = record["fields"]["customer_name"]
        .as_str()
        .expect("customer");
    assert!(text.starts_with(customer), "{text}");
    assert!(
        text.contains("阶段条件") && text.contains("时间线"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{} {}",
            refused["local"].as_str().expect("local"),
            refused["actor"]["name"].as_str().expect("name")
        )) && text.contains("[已拒绝]"),
        "{text}"
    );
    assert!(fails(&["lead", "show", "0190a3b2-1111-7000-8000-000000000000"]).contains("no lead"));
    assert!(fails(&["lead", "show", "not-a-uuid"]).contains("invalid"));
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let err = fails(&["pipeline", "--office", "XX"]);
    assert!(err.contains("no office `XX`"), "{err}");
    assert!(fails(&["pipeline", "--as-of", "yesterday"]).contains("neither a position"));
    assert!(fails(&["audit", "lead", "not-a-uuid"]).contains("invalid"));
    assert!(fails(&["audit", "lead", "0190a3b2-1111-7000-8000-000000000000"]).contains("no lead"));
    assert!(fails(&["audit", "actor", "nobody"]).contains("no member of staff"));
    // A near miss names the closest names, in English and Chinese.
    let err = fails(&["audit", "actor", "陈经里（SH）"]);
    assert!(
        err.contains("the closest names: 陈经理（SH）")
            && err.contains("最接近的姓名：陈经理（SH）"),
        "{err}"
    );
    // A name written without the exact brackets is the person.
    let exact = run(&["audit", "actor", "陈经理（SH）", "--json"]);
    assert_eq!(run(&["audit", "actor", "陈经理 sh", "--json"]), exact);
    // A unique beginning is the person; one two people share is refused with both.
    assert_eq!(
        run(&["audit", "actor", "王工", "--json"]),
        run(&["audit", "actor", "王工（SH）", "--json"])
    );
    let err = fails(&["audit", "actor", "销售部"]);
    assert!(
        err.contains("销售部·高") && err.contains("销售部·罗"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_funnel"))
        .args(["--store", "postgres://x", "pipeline"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite:PATH"));
}

#[test]
fn export_streams_cloudevents_lines() {
    let out = run(&[
        "export",
        "events",
        "--format",
        "cloudevents",
        "--category",
        "office",
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["specversion"] == "1.0" && l["type"] == "funnel.office.opened")
    );
}

#[test]
fn tail_follows_from_a_position_by_kind_and_office() {
    let out = run(&[
        "tail",
        "--from",
        "0",
        "--kind",
        "lead.stage_changed",
        "--office",
        "SH",
        "--count",
        "3",
        "--json",
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["event_type"] == "lead.stage_changed")
    );
    let office = &lines[0]["office"];
    assert!(lines.iter().all(|l| &l["office"] == office));
    assert!(fails(&["tail", "--kind", "lead.teleported"]).contains("no event kind"));
}

#[test]
fn workflows_on_the_demo_history_show_all_nine_kinds_and_open_tasks() {
    // Its own copy of the demo: running the workflows appends to the log.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("wf.db").display());
    let ok = |args: &[&str]| run_on(&url, args);
    ok(&["demo", "--leads", "150", "--end", "2026-10-31"]);
    // Listing runs nothing: no saga has run on this store yet.
    let none: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["workflows", "--json"])).expect("json");
    assert!(none.is_empty(), "{none:?}");
    ok(&["workflows", "run"]);
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["workflows", "--json"])).expect("json");
    let kinds: std::collections::BTreeSet<&str> =
        list.iter().filter_map(|i| i["kind"].as_str()).collect();
    assert_eq!(kinds.len(), 9, "{kinds:?}");
    let tasks: serde_json::Value = serde_json::from_str(&ok(&["tasks", "--json"])).expect("json");
    let open = tasks["tasks"].as_array().expect("tasks");
    assert!(!open.is_empty());
    // The answer names whom each task waits for.
    let assignees = &tasks["assignees"];
    assert!(
        open.iter().all(|t| t["assignee"]["staff"]
            .as_str()
            .is_none_or(|s| assignees["staff"][s].is_string())),
        "{tasks}"
    );
    let text = ok(&["tasks"]);
    assert!(
        text.contains(&format!("{} open task(s)", open.len())),
        "{text}"
    );
    let id = list[0]["id"].as_str().expect("id");
    assert!(ok(&["workflows", "show", id]).contains("workflow.started"));
    let text = ok(&["workflows"]);
    assert!(
        text.contains("Asia/Shanghai"),
        "next timers on the office clock: {text}"
    );
    // Running them again changes nothing.
    ok(&["workflows", "run"]);
    let again: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["workflows", "--json"])).expect("json");
    assert_eq!(again.len(), list.len());
}

#[test]
fn leads_find_matches_names_however_written_and_aligns_its_table() {
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&run(args)).expect("JSON answer")
    };
    let first = json(&[
        "leads", "find", "--sort", "customer", "--asc", "--limit", "1", "--json",
    ]);
    assert!(first["total"].as_u64().unwrap() > 10, "{first}");
    let lead = &first["leads"][0];
    let id = lead["id"].as_str().unwrap();
    let customer = lead["customer"].as_str().unwrap();
    // Full-width forms and a space between every character find the same lead.
    let wide: String = customer
        .chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap(),
            c => c,
        })
        .flat_map(|c| [c, ' '])
        .collect();
    let found = json(&["leads", "find", &wide, "--json", "--limit", "500"]);
    let ids: Vec<&str> = found["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id), "{wide}: {found}");

    // The table: a header, one line per lead, a footer; the columns line up on screen.
    let text = run(&["leads", "find", "--limit", "5"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(lines[0].starts_with("客户 / 项目"), "{text}");
    let column = |line: &str, nth: usize| {
        // The display column where the nth gap of two or more spaces ends.
        let mut col = 0;
        let mut gaps = 0;
        let mut spaces = 0;
        for c in line.chars() {
            if c == ' ' {
                spaces += 1;
            } else {
                if spaces >= 2 {
                    gaps += 1;
                    if gaps == nth {
                        return col;
                    }
                }
                spaces = 0;
            }
            col += unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        }
        col
    };
    let office = column(lines[0], 1);
    for l in &lines[1..6] {
        assert_eq!(column(l, 1), office, "{text}");
    }
    assert!(lines[6].contains("第 1–5 条"), "{text}");
    // The last line gives the cursor of the next page, which goes on from the fifth lead.
    let cursor = lines[6]
        .split("--after ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cursor: {text}"));
    let ten = json(&["leads", "find", "--limit", "10", "--json"]);
    let next = json(&["leads", "find", "--limit", "5", "--after", cursor, "--json"]);
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["leads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&next), ids(&ten)[5..].to_vec());
    let text = run(&["leads", "find", "--limit", "5", "--after", cursor]);
    assert!(text.contains("本页 5 条"), "{text}");
    let err = fails(&["leads", "find", "--after", cursor, "--offset", "5"]);
    assert!(err.contains("--offset"), "{err}");

    // Every option has help; a bad value is refused with the values it takes.
    let help = run(&["leads", "find", "--help"]);
    for option in [
        "--office",
        "--owner",
        "--stage",
        "--tier",
        "--channel",
        "--purchase-mode",
        "--ageing",
        "--not-ageing",
        "--sort",
        "--asc",
        "--limit",
        "--offset",
        "--after",
        "--json",
    ] {
        assert!(help.contains(option), "{option}: {help}");
    }
    let err = fails(&["leads", "find", "--stage", "nearly"]);
    assert!(err.contains("prospect"), "{err}");
    let err = fails(&["leads", "find", "--limit", "0"]);
    assert!(err.contains("limit"), "{err}");
}

/// A copy of the demo store in `dir`, to tamper with.
fn demo_copy(dir: &std::path::Path) -> PathBuf {
    let copy = dir.join("copy.db");
    let source = demo_store().trim_start_matches("sqlite:");
    rusqlite::Connection::open(source)
        .and_then(|c| c.execute("VACUUM INTO ?1", [copy.to_str().expect("utf-8 path")]))
        .expect("copy the store");
    copy
}

#[test]
fn signed_checkpoints_name_a_log_cut_after_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = demo_copy(dir.path());
    let store = format!("sqlite:{}", copy.display());
    let key = dir.path().join("chain.key");
    let keygen = funnel()
        .args(["checkpoint", "keygen", "--out"])
        .arg(&key)
        .output()
        .expect("run funnel");
    assert!(keygen.status.success(), "{keygen:?}");
    let public = String::from_utf8_lossy(&keygen.stdout).trim().to_string();
    assert_eq!(public.len(), 64, "{public}");
    // A second keygen never replaces the key.
    let again = funnel()
        .args(["checkpoint", "keygen", "--out"])
        .arg(&key)
        .output()
        .expect("run funnel");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{again:?}"
    );
    let sign = funnel()
        .args([
            "--store",
            &store,
            "checkpoint",
            "sign",
            "--signing-key-file",
        ])
        .arg(&key)
        .output()
        .expect("run funnel");
    assert!(sign.status.success(), "{sign:?}");
    let verify = |args: &[&str]| {
        funnel()
            .args(["--store", &store, "verify"])
            .args(args)
            .output()
            .expect("run funnel")
    };
    let clean = verify(&["--public-key", &public]);
    let text = String::from_utf8_lossy(&clean.stdout);
    assert!(clean.status.success(), "{clean:?}");
    assert!(text.contains("1 of 1 match the chain"), "{text}");
    // The last commits cut off, with their chain rows: consistent with itself, not with the
    // checkpoint.
    rusqlite::Connection::open(&copy)
        .and_then(|c| {
            c.execute_batch(
                "DELETE FROM events WHERE position > (SELECT max(position) - 5 FROM events); \
                 DELETE FROM chain WHERE last_position > (SELECT max(position) FROM events);",
            )
        })
        .expect("cut the tail");
    assert!(
        verify(&[]).status.success(),
        "without the key nothing shows"
    );
    let cut = verify(&["--public-key", &public, "--json"]);
    assert!(!cut.status.success());
    let report: serde_json::Value = serde_json::from_slice(&cut.stdout).expect("json");
    assert_eq!(report["first_bad"]["tamper"], "truncated", "{report}");
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(stderr.contains("被删除"), "{stderr}");
    // A key that is not one is refused in both languages.
    let bad = verify(&["--public-key", "abc"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("不是有效的公钥"),
        "{bad:?}"
    );
}

#[test]
fn verify_names_where_the_log_was_tampered_with() {
    let clean = run(&["verify"]);
    assert!(clean.contains("nothing was changed"), "{clean}");
    // A copy of the demo store with one payload changed.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = demo_copy(dir.path());
    rusqlite::Connection::open(&copy)
        .and_then(|c| {
            c.execute(
                "UPDATE events SET payload = CAST('{}' AS BLOB) WHERE position = 100",
                [],
            )
        })
        .expect("tamper");
    let out = funnel()
        .args(["--store", &format!("sqlite:{}", copy.display())])
        .args(["verify", "--json"])
        .output()
        .expect("run funnel");
    assert!(!out.status.success(), "a tampered log fails verification");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["first_bad"]["tamper"], "changed", "{report}");
    // The commit holding position 100 starts there or a little before.
    let at = report["first_bad"]["position"].as_u64().expect("position");
    assert!((90..=100).contains(&at), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("tampered with at position {at}")) && stderr.contains("被篡改"),
        "{stderr}"
    );
    // Verifying from after the change trusts what is before it.
    let after = funnel()
        .args(["--store", &format!("sqlite:{}", copy.display())])
        .args(["verify", "--from", "200"])
        .output()
        .expect("run funnel");
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
}

#[test]
fn a_jetstream_log_is_chained_and_its_checkpoints_kept_in_a_stream_beside_it() {
    let server = funnel_testkit::NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let on_log = |args: &[&str]| {
        funnel()
            .current_dir(dir.path())
            .args(["--store", &server.url()])
            .args(args)
            .output()
            .expect("run funnel")
    };
    let demo = on_log(&["demo", "--leads", "12"]);
    assert!(demo.status.success(), "{demo:?}");
    let key = dir.path().join("chain.key");
    let keygen = funnel()
        .args(["checkpoint", "keygen", "--out"])
        .arg(&key)
        .output()
        .expect("run funnel");
    assert!(keygen.status.success(), "{keygen:?}");
    let public = String::from_utf8_lossy(&keygen.stdout).trim().to_string();
    let sign = on_log(&[
        "checkpoint",
        "sign",
        "--signing-key-file",
        key.to_str().expect("utf-8"),
    ]);
    assert!(sign.status.success(), "{sign:?}");
    assert!(
        String::from_utf8_lossy(&sign.stdout).contains("FUNNEL_CHECKPOINTS"),
        "{sign:?}"
    );
    let verify = on_log(&["verify", "--public-key", &public]);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{verify:?}");
    assert!(text.contains("1 of 1 match the chain"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    // Nothing was written beside the working folder: the checkpoint is on the broker.
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").all(|e| !e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .contains("checkpoints")),
        "a checkpoint file was written"
    );
}
