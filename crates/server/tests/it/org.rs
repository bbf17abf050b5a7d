//! Offices and staff over the API: headquarters opens an office and brings people in, issues and
//! revokes their tokens, moves a manager to headquarters in one step, and people leave; everyone
//! else is refused, and the lists follow the read scope.

use crate::common;

use axum::http::{Method, StatusCode};
use chrono::Datelike;
use common::*;
use serde_json::{Value, json};

impl World {
    async fn post_keyed(&self, uri: &str, who: &str, key: &str, body: Value) -> Reply {
        let token = self.tokens[who].clone();
        self.raw(
            Method::POST,
            uri,
            Some(token),
            body.to_string().into_bytes(),
            &[("idempotency-key", key)],
        )
        .await
    }

    async fn delete(&self, uri: &str, who: &str) -> Reply {
        self.call(Method::DELETE, uri, Some(who), None).await
    }

    async fn me(&self, token: &str) -> Reply {
        self.raw(Method::GET, "/me", Some(token.to_string()), vec![], &[])
            .await
    }
}

#[track_caller]
fn expect(r: &Reply, status: StatusCode, code: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text);
    if let Some(code) = code {
        assert_eq!(r.body["code"], code, "{}", r.text);
        assert_eq!(r.content_type, "application/problem+json");
    }
}

#[tokio::test]
async fn headquarters_runs_the_organisation() {
    let w = world().await;
    let hz = json!({ "code": "HZ", "name": "杭州办事处", "region": "华东" });

    // Only the sales department and executives open offices.
    for who in ["manager", "eng_a", "key_account"] {
        expect(
            &w.post("/offices", who, hz.clone()).await,
            StatusCode::FORBIDDEN,
            Some("auth.role_not_permitted"),
        );
    }
    expect(
        &w.post("/offices", "auditor", hz.clone()).await,
        StatusCode::FORBIDDEN,
        Some("auth.read_only"),
    );
    let bad_tz = json!({ "code": "XA", "name": "西安", "timezone": "Mars/Base" });
    expect(
        &w.post("/offices", "sales_dept", bad_tz).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("validation.invalid_value"),
    );
    let r = w
        .post_keyed("/offices", "sales_dept", "open-hz", hz.clone())
        .await;
    expect(&r, StatusCode::CREATED, None);
    let office = r.body["id"].as_str().expect("office id").to_string();
    assert_eq!(r.body["events"][0]["type"], "office.opened");
    // A retry answers the same office; the same code again (any case) is refused.
    let again = w.post_keyed("/offices", "sales_dept", "open-hz", hz).await;
    expect(&again, StatusCode::OK, None);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["id"], office.as_str());
    for code in ["hz", "SH"] {
        let r = w
            .post(
                "/offices",
                "executive",
                json!({ "code": code, "name": "x" }),
            )
            .await;
        expect(&r, StatusCode::CONFLICT, Some("office.already_exists"));
    }

    // Anyone signed in lists the offices.
    let pos = r.body["position"].as_u64().expect("position");
    let r = w.get(&format!("/offices?at_least={pos}"), "eng_bj").await;
    expect(&r, StatusCode::OK, None);
    let codes: Vec<&str> = r.body["offices"]
        .as_array()
        .expect("offices")
        .iter()
        .filter_map(|o| o["code"].as_str())
        .collect();
    assert_eq!(codes.len(), 3);
    assert!(codes.contains(&"HZ") && codes.contains(&"SH") && codes.contains(&"BJ"));
    let hz_row = r.body["offices"]
        .as_array()
        .expect("offices")
        .iter()
        .find(|o| o["code"] == "HZ")
        .expect("HZ")
        .clone();
    assert_eq!(hz_row["timezone"], "Asia/Shanghai");
    assert_eq!(hz_row["region"], "华东");
    assert_eq!(hz_row["active_staff"], 0);

    // Bringing people in: the office by code; office roles need one, headquarters roles have none.
    let qian = json!({ "name": "钱经理（HZ）", "role": "office_manager", "office": "hz" });
    expect(
        &w.post("/staff", "manager", qian.clone()).await,
        StatusCode::FORBIDDEN,
        Some("auth.role_not_permitted"),
    );
    expect(
        &w.post(
            "/staff",
            "sales_dept",
            json!({ "name": "x", "role": "sales_engineer" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("validation.field_required"),
    );
    expect(
        &w.post(
            "/staff",
            "executive",
            json!({ "name": "x", "role": "auditor", "office": "SH" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("validation.invalid_value"),
    );
    expect(
        &w.post(
            "/staff",
            "sales_dept",
            json!({ "name": "x", "role": "sales_engineer", "office": "XX" }),
        )
        .await,
        StatusCode::NOT_FOUND,
        Some("office.not_found"),
    );
    expect(
        &w.post(
            "/staff",
            "sales_dept",
            json!({ "name": "x", "role": "pilot", "office": "SH" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    );
    let r = w
        .post_keyed("/staff", "sales_dept", "hire-qian", qian.clone())
        .await;
    expect(&r, StatusCode::CREATED, None);
    let qian_id = r.body["id"].as_str().expect("staff id").to_string();
    let again = w
        .post_keyed("/staff", "sales_dept", "hire-qian", qian)
        .await;
    assert_eq!(
        (again.status, again.body["id"].clone()),
        (StatusCode::OK, json!(qian_id))
    );

    // A token for the new manager, from an executive (the sales department issues only its own),
    // shown once; a retry of the same request cannot show it again.
    let uri = format!("/staff/{qian_id}/tokens");
    expect(
        &w.post(&uri, "manager", json!({})).await,
        StatusCode::FORBIDDEN,
        Some("auth.role_not_permitted"),
    );
    let r = w
        .post_keyed(&uri, "executive", "token-qian", json!({}))
        .await;
    expect(&r, StatusCode::CREATED, None);
    let token = r.body["token"].as_str().expect("token").to_string();
    let token_id = r.body["token_id"].as_str().expect("token id").to_string();
    let again = w
        .post_keyed(&uri, "executive", "token-qian", json!({}))
        .await;
    expect(
        &again,
        StatusCode::CONFLICT,
        Some("request.already_applied"),
    );
    let me = w.me(&token).await;
    expect(&me, StatusCode::OK, None);
    assert_eq!(me.body["role"], "office_manager");
    assert_eq!(me.body["office"], office.as_str());

    // Staff lists follow the read scope; token ids only for headquarters, auditors and oneself.
    let r = w.get("/staff", "manager").await;
    expect(&r, StatusCode::OK, None);
    let rows = r.body["staff"].as_array().expect("staff");
    assert!(
        rows.iter().all(|s| s["office"] == sh().to_string()),
        "{}",
        r.text
    );
    assert!(rows.iter().any(|s| s["name"] == "eng_a"));
    for s in rows {
        assert_eq!(s.get("tokens").is_some(), s["name"] == "manager", "{s}");
    }
    expect(
        &w.get("/staff?office=BJ", "manager").await,
        StatusCode::FORBIDDEN,
        Some("auth.other_office"),
    );
    let r = w.get("/staff?office=HZ", "auditor").await;
    expect(&r, StatusCode::OK, None);
    let rows = r.body["staff"].as_array().expect("staff");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["tokens"][0]["token_id"], token_id.as_str());
    // Who issued it is listed with it.
    assert_eq!(rows[0]["tokens"][0]["issued_by"]["kind"], "staff");
    assert_eq!(
        rows[0]["tokens"][0]["issued_by"]["id"],
        w.ids["executive"].to_string()
    );

    // Moving the manager to headquarters is one request; a plain role change could not do it.
    let reassign = format!("/staff/{qian_id}/reassign");
    expect(
        &w.post(&reassign, "manager", json!({ "role": "sales_department" }))
            .await,
        StatusCode::FORBIDDEN,
        Some("auth.role_not_permitted"),
    );
    expect(
        &w.post(
            &reassign,
            "sales_dept",
            json!({ "role": "sales_department", "office": "HZ" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("validation.invalid_value"),
    );
    let r = w
        .post(
            &reassign,
            "sales_dept",
            json!({ "role": "sales_department" }),
        )
        .await;
    expect(&r, StatusCode::OK, None);
    let types: Vec<&str> = r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types, ["staff.role_changed", "staff.moved_office"]);
    // The answer comes once the change counts: the token reads as headquarters at once.
    let r = w
        .raw(
            Method::GET,
            "/pipeline?office=BJ",
            Some(token.clone()),
            vec![],
            &[],
        )
        .await;
    expect(&r, StatusCode::OK, None);
    expect(
        &w.post(
            &reassign,
            "sales_dept",
            json!({ "role": "sales_department" }),
        )
        .await,
        StatusCode::CONFLICT,
        Some("command.nothing_to_do"),
    );
    expect(
        &w.post(
            &format!("/staff/{qian_id}/promote"),
            "sales_dept",
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        Some("request.unknown_command"),
    );

    // Revoking the token stops it at once; revoking it again is refused.
    let revoke = format!("/staff/{qian_id}/tokens/{token_id}");
    expect(
        &w.delete(&revoke, "auditor").await,
        StatusCode::FORBIDDEN,
        Some("auth.read_only"),
    );
    expect(&w.delete(&revoke, "sales_dept").await, StatusCode::OK, None);
    expect(&w.me(&token).await, StatusCode::UNAUTHORIZED, None);
    expect(
        &w.delete(&revoke, "sales_dept").await,
        StatusCode::CONFLICT,
        Some("command.nothing_to_do"),
    );
    expect(
        &w.delete(&format!("/staff/{qian_id}/tokens/not-a-uuid"), "sales_dept")
            .await,
        StatusCode::BAD_REQUEST,
        None,
    );

    // Leaving: a fresh token of someone who left does not sign in.
    let eng_b = w.ids["eng_b"].to_string();
    let r = w
        .post(
            &format!("/staff/{eng_b}/leave"),
            "executive",
            json!({ "reason": "离职" }),
        )
        .await;
    expect(&r, StatusCode::OK, None);
    expect(&w.get("/me", "eng_b").await, StatusCode::UNAUTHORIZED, None);
    expect(
        &w.post(&format!("/staff/{eng_b}/leave"), "executive", json!({}))
            .await,
        StatusCode::FORBIDDEN,
        Some("auth.staff_inactive"),
    );
    expect(
        &w.post("/staff/nobody/leave", "executive", json!({})).await,
        StatusCode::NOT_FOUND,
        Some("staff.not_found"),
    );
}

#[tokio::test]
async fn headquarters_publishes_the_working_calendar() {
    let w = world().await;
    let r = w.get("/calendar/2026", "eng_a").await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(r.body["published"], false);
    let national_day = json!({
        "holidays": ["2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"],
        "workdays": ["2026-09-27", "2026-10-10"],
        "note": "国庆节",
    });
    for who in ["manager", "eng_a", "key_account"] {
        expect(
            &w.post("/calendar/2026", who, national_day.clone()).await,
            StatusCode::FORBIDDEN,
            Some("auth.role_not_permitted"),
        );
    }
    expect(
        &w.post("/calendar/2026", "auditor", national_day.clone())
            .await,
        StatusCode::FORBIDDEN,
        Some("auth.read_only"),
    );
    expect(
        &w.post(
            "/calendar/2026",
            "sales_dept",
            json!({ "holidays": ["2026-10-03"] }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("validation.invalid_value"),
    );
    expect(
        &w.post("/calendar/2027", "sales_dept", national_day.clone())
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("validation.invalid_value"),
    );
    expect(
        &w.post(
            "/calendar/2026",
            "sales_dept",
            json!({ "holidays": ["1 October"] }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        None,
    );
    expect(
        &w.get("/calendar/twenty", "sales_dept").await,
        StatusCode::BAD_REQUEST,
        None,
    );
    let r = w
        .post("/calendar/2026", "executive", national_day.clone())
        .await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(r.body["events"][0]["type"], "calendar.published");
    expect(
        &w.post("/calendar/2026", "executive", national_day).await,
        StatusCode::CONFLICT,
        Some("command.nothing_to_do"),
    );
    let r = w.get("/calendar/2026", "eng_bj").await;
    expect(&r, StatusCode::OK, None);
    assert_eq!(r.body["published"], true);
    assert_eq!(r.body["holidays"].as_array().map(Vec::len), Some(5));
    assert_eq!(r.body["workdays"][1], "2026-10-10");
    assert_eq!(r.body["published_by"]["role"], "executive");
}

#[tokio::test]
async fn sales_department_cannot_take_over_the_organisation() {
    let w = world().await;
    // No token for the executive, the auditor or any engineer: only for themselves.
    for whom in ["executive", "auditor", "eng_a", "manager"] {
        let uri = format!("/staff/{}/tokens", w.ids[whom]);
        expect(
            &w.post(&uri, "sales_dept", json!({})).await,
            StatusCode::FORBIDDEN,
            Some("staff.token_holder_or_executive"),
        );
    }
    let own = format!("/staff/{}/tokens", w.ids["sales_dept"]);
    expect(
        &w.post(&own, "sales_dept", json!({})).await,
        StatusCode::CREATED,
        None,
    );
    let eng = format!("/staff/{}/tokens", w.ids["eng_a"]);
    let r = w.post(&eng, "executive", json!({})).await;
    expect(&r, StatusCode::CREATED, None);

    // Not reassigning itself, to executive, auditor or anything else.
    let me = format!("/staff/{}/reassign", w.ids["sales_dept"]);
    for role in ["executive", "auditor", "key_account_department"] {
        expect(
            &w.post(&me, "sales_dept", json!({ "role": role })).await,
            StatusCode::FORBIDDEN,
            Some("staff.own_role"),
        );
    }
    // Nor appointing anyone executive or auditor.
    let eng_b = format!("/staff/{}/reassign", w.ids["eng_b"]);
    expect(
        &w.post(&eng_b, "sales_dept", json!({ "role": "executive" }))
            .await,
        StatusCode::FORBIDDEN,
        Some("staff.executive_only"),
    );
    expect(
        &w.post(
            "/staff",
            "sales_dept",
            json!({ "name": "新审计", "role": "auditor" }),
        )
        .await,
        StatusCode::FORBIDDEN,
        Some("staff.executive_only"),
    );

    // The last executive cannot leave, whoever asks; nor be reassigned away.
    let boss = w.ids["executive"];
    for who in ["sales_dept", "executive"] {
        let r = w
            .post(&format!("/staff/{boss}/leave"), who, json!({}))
            .await;
        assert_ne!(r.status, StatusCode::OK, "{}", r.text);
        assert!(
            ["staff.executive_only", "staff.last_executive"]
                .contains(&r.body["code"].as_str().unwrap_or("")),
            "{}",
            r.text
        );
    }
    expect(
        &w.post(&format!("/staff/{boss}/leave"), "executive", json!({}))
            .await,
        StatusCode::CONFLICT,
        Some("staff.last_executive"),
    );
    // With a second executive appointed by the first, the first may leave.
    let r = w
        .post(
            "/staff",
            "executive",
            json!({ "name": "副总", "role": "executive" }),
        )
        .await;
    expect(&r, StatusCode::CREATED, None);
    expect(
        &w.post(&format!("/staff/{boss}/leave"), "sales_dept", json!({}))
            .await,
        StatusCode::FORBIDDEN,
        Some("staff.executive_only"),
    );
    expect(
        &w.post(
            &format!("/staff/{boss}/leave"),
            "executive",
            json!({ "reason": "退休" }),
        )
        .await,
        StatusCode::OK,
        None,
    );
}

#[tokio::test]
async fn a_name_two_people_share_is_refused_with_their_ids() {
    let w = world().await;
    // A namesake of eng_a joins (at headquarters: names are not unique in the log).
    let r = w
        .post(
            "/staff",
            "sales_dept",
            json!({ "name": "eng_a", "role": "key_account_department" }),
        )
        .await;
    expect(&r, StatusCode::CREATED, None);
    let namesake = r.body["id"].as_str().expect("id").to_string();
    let r = w.post("/staff/eng_a/tokens", "executive", json!({})).await;
    expect(&r, StatusCode::CONFLICT, Some("staff.ambiguous_name"));
    for id in [w.ids["eng_a"].to_string(), namesake.clone()] {
        assert!(
            r.body["message_en"].as_str().unwrap_or("").contains(&id),
            "{}",
            r.text
        );
        assert!(
            r.body["message_zh"].as_str().unwrap_or("").contains(&id),
            "{}",
            r.text
        );
    }
    expect(
        &w.post("/staff/eng_a/leave", "sales_dept", json!({})).await,
        StatusCode::CONFLICT,
        Some("staff.ambiguous_name"),
    );
    expect(
        &w.get("/tasks?staff=eng_a", "sales_dept").await,
        StatusCode::CONFLICT,
        Some("staff.ambiguous_name"),
    );
    // By id it works.
    let r = w
        .post(&format!("/staff/{namesake}/tokens"), "executive", json!({}))
        .await;
    expect(&r, StatusCode::CREATED, None);
    assert_eq!(r.body["staff_id"], namesake.as_str());
    // Names that hide or reorder characters are refused.
    for (name, code) in [
        ("eng\u{202E}a", "validation.bidi_control"),
        ("eng\u{0008}a", "validation.control_character"),
        ("\u{200B}\u{2060}", "validation.invisible_name"),
    ] {
        expect(
            &w.post(
                "/staff",
                "sales_dept",
                json!({ "name": name, "role": "key_account_department" }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(code),
        );
    }
}

#[tokio::test]
async fn a_calendar_taking_many_weekdays_off_is_published_by_an_executive() {
    let w = world().await;
    // Every weekday of January and February 2026 (42) off.
    let holidays: Vec<String> = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .expect("date")
        .iter_days()
        .take_while(|d| d.month() < 3)
        .filter(|d| d.weekday().num_days_from_monday() < 5)
        .map(|d| d.to_string())
        .collect();
    let body = json!({ "holidays": holidays });
    let r = w.post("/calendar/2026", "sales_dept", body.clone()).await;
    expect(&r, StatusCode::FORBIDDEN, Some("calendar.needs_executive"));
    assert!(
        r.body["message_zh"]
            .as_str()
            .is_some_and(|m| m.contains("公司高层"))
    );
    let r = w.post("/calendar/2026", "executive", body).await;
    expect(&r, StatusCode::OK, None);
}

/// A mobile number, for chat robots' @-mentions: the person sets their own (written any way), and
/// headquarters anyone's; a colleague or their manager may not; a number that is not a mobile
/// number is refused in both languages.
#[tokio::test]
async fn a_phone_number_is_set_by_its_holder_or_headquarters() {
    let w = world().await;
    let eng_a = w.ids["eng_a"].to_string();
    let phone = format!("/staff/{eng_a}/phone");
    let r = w
        .post(&phone, "eng_a", json!({ "phone": "+86 138-0013-8000" }))
        .await;
    expect(&r, StatusCode::OK, None);
    expect(
        &w.post(&phone, "eng_a", json!({ "phone": "138 0013 8000" }))
            .await,
        StatusCode::CONFLICT,
        Some("command.nothing_to_do"),
    );
    for who in ["eng_b", "manager"] {
        let r = w.post(&phone, who, json!({ "phone": "13900139000" })).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}: {}", r.text);
    }
    let r = w.post(&phone, "eng_a", json!({ "phone": "12345" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("手机号码"), "{}", r.text);
    expect(
        &w.post(&phone, "sales_dept", json!({ "phone": null })).await,
        StatusCode::OK,
        None,
    );
    let r = w
        .post(&phone, "eng_a", json!({ "phone": "13800138000", "x": 1 }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
}
