//! Setting up a new installation from the command line, with the real binary: the first office,
//! the first headquarters member and their token, then people added, reassigned and leaving;
//! mistakes are refused with a message that says what to do.

mod common;

use common::*;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON output")
}

#[test]
fn a_new_installation_is_set_up_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let store = format!("sqlite:{}", d.join("funnel.db").display());
    let s = store.as_str();

    let out = ok(
        s,
        &[
            "office",
            "open",
            "SH",
            "--name",
            "上海办事处",
            "--region",
            "华东",
        ],
        d,
    );
    assert!(out.contains("opened 上海办事处 (SH)"), "{out}");
    let err = refused(s, &["office", "open", "sh", "--name", "又一个"], d);
    assert!(err.contains("already has the code `sh`"), "{err}");
    let err = refused(
        s,
        &[
            "office",
            "open",
            "XA",
            "--name",
            "西安",
            "--timezone",
            "Mars/Base",
        ],
        d,
    );
    assert!(err.contains("not an IANA time zone"), "{err}");

    ok(
        s,
        &["staff", "add", "销售部", "--role", "sales_department"],
        d,
    );
    ok(
        s,
        &[
            "staff",
            "add",
            "王工（SH）",
            "--role",
            "sales_engineer",
            "--office",
            "sh",
        ],
        d,
    );
    let err = refused(
        s,
        &[
            "staff",
            "add",
            "王工（SH）",
            "--role",
            "sales_engineer",
            "--office",
            "SH",
        ],
        d,
    );
    assert!(err.contains("already on record"), "{err}");
    let err = refused(
        s,
        &[
            "staff",
            "add",
            "李工",
            "--role",
            "sales_engineer",
            "--office",
            "XX",
        ],
        d,
    );
    assert!(err.contains("no office `XX`"), "{err}");
    let err = refused(s, &["staff", "add", "李工", "--role", "sales_engineer"], d);
    assert!(err.contains("belongs to an office"), "{err}");
    let err = refused(s, &["staff", "add", "李工", "--role", "pilot"], d);
    assert!(err.contains("unknown role `pilot`"), "{err}");

    let out = ok(s, &["staff", "token", "销售部"], d);
    assert!(out.contains("token:"), "{out}");

    // Headquarters invites a person to set a password; an engineer cannot; nothing to unlock.
    let out = ok(
        s,
        &[
            "staff",
            "invite",
            "王工（SH）",
            "--hours",
            "24",
            "--as",
            "销售部",
        ],
        d,
    );
    assert!(out.contains("accept:        POST /invitations/"), "{out}");
    assert!(
        out.contains("CST"),
        "the expiry on the office's clock: {out}"
    );
    let err = refused(s, &["staff", "invite", "销售部", "--as", "王工（SH）"], d);
    assert!(err.contains("auth.role_not_permitted"), "{err}");
    let err = refused(s, &["staff", "invite", "王工（SH）", "--hours", "0"], d);
    assert!(err.contains("--hours"), "{err}");
    let err = refused(s, &["staff", "unlock", "王工（SH）"], d);
    assert!(err.contains("not locked"), "{err}");

    // A mobile number for robots' @-mentions: set by the person, refused when it is not one,
    // removed.
    let out = ok(
        s,
        &[
            "staff",
            "phone",
            "王工（SH）",
            "138 0013 8000",
            "--as",
            "王工（SH）",
        ],
        d,
    );
    assert!(out.contains("is on record"), "{out}");
    let err = refused(s, &["staff", "phone", "王工（SH）", "12345"], d);
    assert!(err.contains("11 digits"), "{err}");
    let err = refused(s, &["staff", "phone", "王工（SH）"], d);
    assert!(err.contains("<NUMBER>"), "{err}");
    let out = ok(s, &["staff", "phone", "王工（SH）", "--remove"], d);
    assert!(out.contains("is removed"), "{out}");

    let offices = json(&ok(s, &["office", "list", "--json"], d));
    assert_eq!(offices[0]["code"], "SH");
    assert_eq!(offices[0]["timezone"], "Asia/Shanghai");
    assert_eq!(offices[0]["active_staff"], 1);

    // An engineer cannot reassign anyone; headquarters (or the system) can, in one step.
    let err = refused(
        s,
        &[
            "staff",
            "reassign",
            "王工（SH）",
            "--role",
            "office_manager",
            "--office",
            "SH",
            "--as",
            "王工（SH）",
        ],
        d,
    );
    assert!(err.contains("auth.role_not_permitted"), "{err}");
    ok(
        s,
        &[
            "staff",
            "reassign",
            "王工（SH）",
            "--role",
            "sales_department",
            "--as",
            "销售部",
        ],
        d,
    );
    ok(
        s,
        &[
            "staff",
            "leave",
            "王工（SH）",
            "--reason",
            "调岗",
            "--as",
            "销售部",
        ],
        d,
    );
    let staff = json(&ok(s, &["staff", "list", "--json"], d));
    let wang = staff
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["name"] == "王工（SH）")
        .expect("王工 listed")
        .clone();
    assert_eq!(wang["role"], "sales_department");
    assert_eq!(wang["office"], Value::Null);
    assert_eq!(wang["active"], false);
    let err = refused(s, &["staff", "leave", "王工（SH）"], d);
    assert!(err.contains("has left"), "{err}");

    // A namesake joins: a name two people have had is refused where a command looks people up by
    // name, with both ids, instead of picking one of them.
    ok(
        s,
        &[
            "staff",
            "add",
            "王工（SH）",
            "--role",
            "sales_engineer",
            "--office",
            "SH",
        ],
        d,
    );
    let err = refused(s, &["tasks", "--staff", "王工（SH）"], d);
    assert!(err.contains("2 members of staff are called"), "{err}");
    assert!(err.contains(wang["id"].as_str().expect("id")), "{err}");
    let err = refused(s, &["audit", "actor", "王工（SH）"], d);
    assert!(err.contains("2 members of staff are called"), "{err}");
    assert!(err.contains("give the id"), "{err}");
    ok(
        s,
        &["tasks", "--staff", wang["id"].as_str().expect("id")],
        d,
    );

    // The working calendar: a holiday range keeps its weekdays only.
    let out = ok(s, &["calendar", "show", "2026"], d);
    assert!(out.contains("Monday to Friday"), "{out}");
    let out = ok(
        s,
        &[
            "calendar",
            "publish",
            "2026",
            "--holiday",
            "2026-10-01..2026-10-07",
            "--workday",
            "2026-09-27",
            "--workday",
            "2026-10-10",
            "--note",
            "国庆节",
            "--as",
            "销售部",
        ],
        d,
    );
    assert!(out.contains("5 holidays, 2 make-up working days"), "{out}");
    let shown = json(&ok(s, &["calendar", "show", "2026", "--json"], d));
    assert_eq!(shown["holidays"].as_array().map(Vec::len), Some(5));
    assert_eq!(shown["holidays"][2], "2026-10-05");
    let err = refused(
        s,
        &[
            "calendar",
            "publish",
            "2026",
            "--holiday",
            "2026-10-07..2026-10-01",
        ],
        d,
    );
    assert!(err.contains("ends before it starts"), "{err}");
    let err = refused(
        s,
        &["calendar", "publish", "2026", "--holiday", "1 October"],
        d,
    );
    assert!(err.contains("is not a date"), "{err}");
    let err = refused(
        s,
        &["calendar", "publish", "2026", "--workday", "2026-10-08"],
        d,
    );
    assert!(err.contains("a working day anyway"), "{err}");
}
