//! `funnel form` on the demo history, with the real binary: every form of the manual from a
//! lead, an office summary and a visit plan, as HTML and CSV; a form the record cannot make is
//! refused with the reason.

mod common;

use common::*;
use serde_json::Value;

/// The id part of the stream of the first event of `event_type`.
fn first_of(events: &[Value], event_type: &str) -> String {
    events
        .iter()
        .find(|e| e["event_type"] == event_type)
        .and_then(|e| e["stream"].as_str())
        .and_then(|s| s.split_once('-'))
        .map(|(_, id)| id.to_string())
        .unwrap_or_else(|| panic!("no {event_type} in the demo history"))
}

#[test]
fn every_form_from_the_demo_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let store = format!("sqlite:{}", d.join("funnel.db").display());
    let s = store.as_str();
    ok(s, &["demo", "--leads", "150", "--end", "2026-10-31"], d);
    let events: Vec<Value> = ok(s, &["export", "events"], d)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let prospect = first_of(&events, "lead.prospect_declared");
    let summary = first_of(&events, "summary.compiled");
    let plan = first_of(&events, "plan.submitted");

    for (n, id, title) in [
        ("1", &prospect, "客户信息记录表"),
        ("2", &prospect, "客户跟进记录表"),
        ("3", &summary, "办事处周/月新增客户信息汇总表"),
        ("4", &plan, "月/周度市场拜访计划表"),
        ("5", &prospect, "客户关键人个人信息表"),
        ("6", &prospect, "准客户申报表"),
    ] {
        let html = ok(s, &["form", n, id], d);
        assert!(html.starts_with("<!doctype html>"), "form {n}");
        assert!(html.contains(title), "form {n}: {html}");
        let file = d.join(format!("form{n}.csv"));
        let file_arg = file.to_str().expect("path");
        let out = funnel(s, &["form", n, id, "--out", file_arg], d);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let csv = std::fs::read_to_string(&file).expect("written");
        assert!(
            csv.starts_with('\u{feff}'),
            "form {n} has a byte-order mark"
        );
        assert!(csv.contains(title), "form {n}: {csv}");
    }
    // The prospect's follow-ups are rows of form 2, one per logged visit.
    let visits = events
        .iter()
        .filter(|e| {
            e["event_type"] == "lead.visit_logged"
                && e["stream"].as_str() == Some(&format!("lead-{prospect}"))
        })
        .count();
    let csv = ok(s, &["form", "2", &prospect, "--format", "csv"], d);
    let rows = csv
        .lines()
        .skip_while(|l| !l.starts_with("次数"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .count();
    assert!(visits > 0);
    assert_eq!(rows, visits);

    // What cannot be made says why.
    let out = funnel(s, &["form", "3", &prospect], d);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("made from a summary id"), "{err}");
    let out = funnel(s, &["form", "7", &prospect], d);
    assert!(!out.status.success());

    // An office's forms for October as one workbook (a zip), and a period backwards refused.
    let book = d.join("sh-october.xlsx");
    let book_arg = book.to_str().expect("path");
    let out = funnel(
        s,
        &[
            "forms",
            "SH",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-31",
            "--out",
            book_arg,
        ],
        d,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&book).expect("written");
    assert!(bytes.starts_with(b"PK\x03\x04"), "an xlsx file");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("forms of SH"), "{err}");
    let out = funnel(
        s,
        &[
            "forms",
            "SH",
            "--from",
            "2026-10-31",
            "--to",
            "2026-10-01",
            "--out",
            book_arg,
        ],
        d,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("结束日早于开始日"));
}
