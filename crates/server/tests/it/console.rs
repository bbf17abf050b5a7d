//! The console's pages through the router: status, the Content-Security-Policy, escaping of text
//! from the log, the sign-in redirect, the language switch, hashed assets, the scope of each
//! page (the same as the API's) and an inbox form that runs its command or shows the refusal.

use crate::common;

use axum::http::{Method, StatusCode};
use common::*;
use funnel_server::console::CONSOLE_CSP;
use serde_json::json;

const HTML: &str = "text/html; charset=utf-8";

async fn page(w: &World, uri: &str, who: Option<&str>) -> Reply {
    w.raw(
        Method::GET,
        uri,
        who.map(|w2| w.tokens[w2].clone()),
        Vec::new(),
        &[],
    )
    .await
}

/// Waits until the read models reflect everything written so far (pages read the live models).
async fn settle(w: &World) {
    let head = w.state.store().head().await.expect("head").0;
    let r = w
        .get(&format!("/pipeline?at_least={head}"), "auditor")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

fn assert_page(r: &Reply) {
    assert_eq!(r.content_type, HTML, "{}", r.text);
    assert_eq!(
        r.headers
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap()),
        Some(CONSOLE_CSP)
    );
    assert_eq!(
        r.headers.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-cache")
    );
    // Nothing inline: no script body, no style element or attribute, no handler attribute.
    for inline in ["<style", " style=", " onclick=", " onload=", "javascript:"] {
        assert!(!r.text.contains(inline), "{inline} in {}", r.text);
    }
    for script in r.text.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap_or_default();
        assert!(
            tag.contains("src=\"/assets/") || tag.contains("type=\"application/json\""),
            "a script that is neither an asset nor data: {tag}"
        );
    }
}

#[test]
fn the_policy_allows_nothing_inline_and_no_framing() {
    assert!(CONSOLE_CSP.contains("script-src 'self';"));
    assert!(CONSOLE_CSP.contains("style-src 'self';"));
    assert!(CONSOLE_CSP.contains("frame-ancestors 'none'"));
    assert!(!CONSOLE_CSP.contains("unsafe"));
}

#[tokio::test]
async fn without_credentials_a_page_sends_to_sign_in_and_back() {
    let w = world().await;
    let r = page(&w, "/console/analysis?office=SH", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(
        r.headers.get("location").map(|v| v.to_str().unwrap()),
        Some("/sign-in?next=%2Fconsole%2Fanalysis%3Foffice%3DSH")
    );
    let r = page(
        &w,
        "/sign-in?next=%2Fconsole%2Fanalysis%3Foffice%3DSH",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_page(&r);
    assert!(
        r.text
            .contains(r#"data-next="/console/analysis?office=SH""#),
        "{}",
        r.text
    );
    // A next page on another host is not followed.
    let r = page(&w, "/sign-in?next=%2F%2Fevil.example%2F", None).await;
    assert!(r.text.contains(r#"data-next="/""#), "{}", r.text);
    // A bad token is not signed in either.
    let r = w
        .raw(
            Method::GET,
            "/console/inbox",
            Some("nonsense".into()),
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
}

#[tokio::test]
async fn pages_speak_chinese_first_and_english_on_request() {
    let w = world().await;
    let r = page(&w, "/console/analysis", Some("sales_dept")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_page(&r);
    assert!(r.text.contains("<html lang=\"zh-CN\">"));
    assert!(r.text.contains("销售漏斗分析"));
    assert!(r.text.contains("SH office") && r.text.contains("BJ office"));
    let r = page(&w, "/console/analysis?lang=en", Some("sales_dept")).await;
    assert!(r.text.contains("<html lang=\"en\">"));
    assert!(r.text.contains("Pipeline analysis"));
    let cookie = r
        .headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        cookie.as_deref(),
        Some("lang=en; Path=/; Max-Age=31536000; SameSite=Lax")
    );
    let r = w
        .raw(
            Method::GET,
            "/console/inbox",
            Some(w.tokens["manager"].clone()),
            Vec::new(),
            &[("cookie", "lang=en")],
        )
        .await;
    assert!(r.text.contains("<html lang=\"en\">"), "{}", r.text);
    // The role is named, not coded.
    assert!(
        r.text.contains("manager · office manager · SH office"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn assets_are_served_under_their_hash_for_a_year() {
    let w = world().await;
    let r = page(&w, "/console/inbox", Some("manager")).await;
    let href = r
        .text
        .split("href=\"")
        .find(|s| s.starts_with("/assets/") && s.contains("console.css"))
        .and_then(|s| s.split('"').next())
        .expect("the console's stylesheet")
        .to_string();
    let r = page(&w, &href, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "text/css; charset=utf-8");
    assert_eq!(
        r.headers.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("public, max-age=31536000, immutable")
    );
    let r = page(&w, "/assets/0000000000000000/console.css", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for name in [
        "htmx.min.js",
        "echarts.common.min.js",
        "pico.classless.min.css",
    ] {
        assert!(
            funnel_server::console::asset_url(name).starts_with("/assets/"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_analysis_page_is_scoped_like_the_pipeline() {
    let w = world().await;
    w.register("eng_a", sh(), "万科").await;
    settle(&w).await;
    // An engineer reads their office; another office is refused, as `GET /pipeline` refuses it.
    let r = page(&w, "/console/analysis", Some("eng_a")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("SH office") && !r.text.contains("BJ office"));
    let r = page(&w, "/console/analysis?office=BJ", Some("eng_a")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_page(&r);
    let api = w.get("/pipeline?office=BJ", "eng_a").await;
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert!(
        r.text.contains(api.body["message_zh"].as_str().unwrap()),
        "{}",
        r.text
    );
    // The count of ordinary leads drills down to the lead list.
    let r = page(&w, "/console/analysis?office=SH", Some("sales_dept")).await;
    assert!(
        r.text
            .contains(r#"<a href="/console/leads?office=SH&#38;stage=ordinary" data-count>1</a>"#),
        "{}",
        r.text
    );
    // As of a date before anything happened, nothing is counted; a bad date says why.
    let r = page(
        &w,
        "/console/analysis?office=SH&as_of=2020-01-01",
        Some("sales_dept"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains("data-count>1<"), "{}", r.text);
    let r = page(&w, "/console/analysis?as_of=yesterday", Some("sales_dept")).await;
    assert!(r.text.contains("role=\"alert\""), "{}", r.text);
}

#[tokio::test]
async fn a_customer_named_script_is_shown_as_text() {
    let w = world().await;
    let evil = "<script>alert(1)</script>";
    w.register("eng_a", sh(), evil).await;
    let r = w.post("/leads", "eng_b", registration(sh(), evil)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;
    w.get(&format!("/tasks?at_least={head}"), "manager").await;
    let r = page(&w, "/console/inbox", Some("manager")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_page(&r);
    assert!(!r.text.contains(evil), "{}", r.text);
    assert!(
        r.text.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || r.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        r.text
    );
}

/// The manager decides a conflict from the inbox: the form names the claimants by name and posts
/// the command; an engineer posting the same form is refused, and the refusal is shown in Chinese.
#[tokio::test]
async fn a_conflict_is_decided_from_the_inbox() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let r = w.post("/leads", "eng_b", registration(sh(), "万科")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;
    w.get(&format!("/tasks?at_least={head}"), "manager").await;

    let r = page(&w, "/console/inbox", Some("manager")).await;
    assert!(r.text.contains("裁定客户归属"), "{}", r.text);
    assert!(r.text.contains(">万科 城市花园（二期）</a>"), "{}", r.text);
    // The claimants by name, to choose the winner from.
    let winner_a = format!("<option value=\"{}\">eng_a</option>", w.ids["eng_a"]);
    let winner_b = format!("<option value=\"{}\">eng_b</option>", w.ids["eng_b"]);
    assert!(
        r.text.contains(&winner_a) && r.text.contains(&winner_b),
        "{}",
        r.text
    );
    let action = format!("/console/leads/{lead}/commands/decide_conflict");
    assert!(
        r.text.contains(&format!("hx-post=\"{action}\"")),
        "{}",
        r.text
    );
    let conflict_id = r
        .text
        .split("name=\"conflict_id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the conflict's id in the form")
        .to_string();
    let winner = w.ids["eng_a"].to_string();
    let form =
        format!("conflict_id={conflict_id}&winner={winner}&grounds%5B%5D=registered_first&note=");
    let post = |who: &'static str, hx: bool| {
        let form = form.clone();
        let action = action.clone();
        let w = &w;
        async move {
            let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
            if hx {
                headers.push(("hx-request", "true"));
            }
            w.raw(
                Method::POST,
                &action,
                Some(w.tokens[who].clone()),
                form.into_bytes(),
                &headers,
            )
            .await
        }
    };
    // An engineer may not decide: the refusal, in Chinese, in place (htmx) or as a page.
    let r = post("eng_b", true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("role=\"alert\""), "{}", r.text);
    let r = post("eng_b", false).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_page(&r);
    // The manager decides.
    let r = post("manager", true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("已提交"), "{}", r.text);
    w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;
    let r = w.get(&format!("/tasks?at_least={head}"), "manager").await;
    assert_eq!(
        r.body["tasks"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.text
    );
    // A form that is not the command's body says what is wrong.
    let r = w
        .raw(
            Method::POST,
            &action,
            Some(w.tokens["manager"].clone()),
            b"winner=nobody".to_vec(),
            &[("hx-request", "true")],
        )
        .await;
    assert!(r.text.contains("role=\"alert\""), "{}", r.text);
}

/// The lead list finds a customer however the name is written (full width, spacing, look-alikes),
/// and the record page is the lead's, for those who may read its office only.
#[tokio::test]
async fn leads_are_found_by_any_writing_and_opened_in_scope() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "Vanke 万科").await;
    let (other, _) = w.register("eng_bj", bj(), "<script>x</script>").await;
    settle(&w).await;
    // Full-width letters, a Cyrillic а and no space: the same customer.
    let q = "%EF%BC%B6%D0%B0nke%E4%B8%87%E7%A7%91";
    let r = page(&w, &format!("/console/leads?q={q}"), Some("sales_dept")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_page(&r);
    assert!(
        r.text.contains(&format!("href=\"/console/leads/{lead}\"")),
        "{}",
        r.text
    );
    assert!(!r.text.contains(&other), "{}", r.text);

    let r = page(&w, &format!("/console/leads/{lead}"), Some("eng_a")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_page(&r);
    assert!(r.text.contains("Vanke 万科"), "{}", r.text);
    assert!(r.text.contains("报备"), "{}", r.text);
    // The owner may log a visit here; the form is not offered to others.
    assert!(r.text.contains("commands/log_visit"), "{}", r.text);
    let r = page(&w, &format!("/console/leads/{lead}"), Some("eng_b")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains("commands/log_visit"), "{}", r.text);
    // As of a day: the record then, without the forms that act, and a way back to now; a
    // day before the lead existed has no record; a moment that is none says so.
    let r = page(
        &w,
        &format!("/console/leads/{lead}?as_of=2100-01-01"),
        Some("eng_a"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_page(&r);
    assert!(
        r.text.contains("这是截至 2100-01-01 23:59 的记录"),
        "{}",
        r.text
    );
    assert!(r.text.contains("Vanke 万科"), "{}", r.text);
    assert!(!r.text.contains("commands/log_visit"), "{}", r.text);
    let r = page(
        &w,
        &format!("/console/leads/{lead}?as_of=2000-01-01"),
        Some("eng_a"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = page(
        &w,
        &format!("/console/leads/{lead}?as_of=soon"),
        Some("eng_a"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_page(&r);

    // Another office's lead: refused as the API refuses it.
    let r = page(&w, &format!("/console/leads/{other}"), Some("eng_a")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_page(&r);
    let r = page(&w, &format!("/console/leads/{other}"), Some("auditor")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(!r.text.contains("<script>x</script>"), "{}", r.text);
    assert!(
        r.text.contains("&#60;script&#62;x&#60;/script&#62;"),
        "{}",
        r.text
    );
    // The list of an engineer holds their office's leads only.
    let r = page(&w, "/console/leads", Some("eng_a")).await;
    assert!(!r.text.contains(&other), "{}", r.text);
}

/// The lead list pages by the index's cursor: a lead registered while someone pages does not push
/// the last lead of one page onto the next (as an offset would), and the later pages lead back to
/// the first.
#[tokio::test]
async fn the_lead_list_pages_on_without_repeating_a_lead() {
    let w = world().await;
    let mut leads = Vec::new();
    for i in 0..51 {
        leads.push(w.register("eng_a", sh(), &format!("客户{i:02}")).await.0);
    }
    settle(&w).await;
    // Newest first: the first page ends with the second lead registered.
    let first = page(&w, "/console/leads", Some("eng_a")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert!(first.text.contains(&leads[50]) && first.text.contains(&leads[1]));
    assert!(
        !first
            .text
            .contains(&format!("/console/leads/{}\"", leads[0]))
    );
    assert!(!first.text.contains("第一页"), "{}", first.text);
    let next = first
        .text
        .split("href=\"")
        .filter_map(|h| h.split('"').next())
        .find(|h| h.contains("after="))
        .unwrap_or_else(|| panic!("no next page: {}", first.text))
        .replace("&#38;", "&");
    w.register("eng_a", sh(), "新客户").await;
    settle(&w).await;
    let second = page(&w, &next, Some("eng_a")).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    assert_page(&second);
    assert!(second.text.contains(&leads[0]), "{}", second.text);
    assert!(
        !second.text.contains(&leads[1]),
        "repeated: {}",
        second.text
    );
    assert!(second.text.contains("· 51–51"), "{}", second.text);
    assert!(second.text.contains("第一页") && !second.text.contains("下一页"));
    // A cursor that is none is refused in words, not shown as an empty list.
    let r = page(&w, "/console/leads?after=garbage", Some("eng_a")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_page(&r);
}

/// An engineer logs a visit from the record page (a `datetime-local` on the office's clock); a
/// visit without a summary is refused with the Chinese message.
#[tokio::test]
async fn an_engineer_logs_a_visit_from_the_record() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    settle(&w).await;
    let action = format!("/console/leads/{lead}/commands/log_visit");
    let post = |who: &'static str, form: &'static str| {
        let action = action.clone();
        let w = &w;
        async move {
            w.raw(
                Method::POST,
                &action,
                Some(w.tokens[who].clone()),
                form.as_bytes().to_vec(),
                &[("hx-request", "true")],
            )
            .await
        }
    };
    let form = "kind=visit&visited_at%3Alocal=2026-05-04T09%3A30&purposes%5B%5D=collect_needs&summary=%E4%BA%86%E8%A7%A3%E9%9C%80%E6%B1%82";
    let r = post("eng_b", form).await;
    assert!(r.text.contains("role=\"alert\""), "{}", r.text);
    let r = post("eng_a", form).await;
    assert!(r.text.contains("已提交"), "{}", r.text);
    settle(&w).await;
    let r = page(&w, &format!("/console/leads/{lead}"), Some("eng_a")).await;
    assert!(r.text.contains("拜访记录"), "{}", r.text);
    // eng_b's refused attempt is on the record, marked.
    assert!(r.text.contains("class=\"refused\""), "{}", r.text);
}

/// A staff page: the person's leads and what they touched in a period, refused attempts marked;
/// another office's person is refused as `GET /staff/{id}` refuses them.
#[tokio::test]
async fn a_staff_page_shows_their_leads_and_touches_in_scope() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    // eng_b tries to log a visit on eng_a's lead: refused and recorded.
    let r = w
        .post(
            &format!("/leads/{lead}/commands/log_visit"),
            "eng_b",
            visit(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    settle(&w).await;
    let b = w.ids["eng_b"];
    let r = page(&w, &format!("/console/staff/{b}"), Some("manager")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_page(&r);
    assert!(r.text.contains("id=\"staff-name\">eng_b<"), "{}", r.text);
    assert!(r.text.contains("class=\"refused\""), "{}", r.text);
    assert!(r.text.contains("记录拜访"), "{}", r.text);
    let a = w.ids["eng_a"];
    let r = page(
        &w,
        &format!("/console/staff/{a}?from=2020-01-01&to=2020-01-31"),
        Some("manager"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.text.contains(&format!("/console/leads/{lead}")),
        "the lead they own: {}",
        r.text
    );
    assert!(
        !r.text.contains("<li><time>"),
        "nothing touched in that period: {}",
        r.text
    );
    let r = page(&w, &format!("/console/staff/{a}"), Some("eng_bj")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_page(&r);
}

/// An engineer registers a lead from the phone form; a colleague typing the same customer written
/// differently is warned before sending, with the lead on record.
#[tokio::test]
async fn a_lead_is_registered_from_the_form_with_a_duplicate_warning() {
    let w = world().await;
    let r = page(&w, "/console/leads/new", Some("eng_a")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_page(&r);
    let form = "customer_name=%E4%B8%87%E7%A7%91Vanke&project_name=%E4%B8%80%E6%9C%9F&industry=real_estate&purchase_mode=independent&channel=building_sweep&location=%E4%B8%8A%E6%B5%B7&contact.name=%E6%9D%8E%E7%BB%8F%E7%90%86&contact.phone=13800000000&need=%E6%A5%BC%E5%AE%87%E5%AF%B9%E8%AE%B2";
    let post = |who: &'static str| {
        w.raw(
            Method::POST,
            "/console/leads",
            Some(w.tokens[who].clone()),
            form.as_bytes().to_vec(),
            &[("hx-request", "true")],
        )
    };
    let r = post("eng_a").await;
    assert!(r.text.contains("已报备"), "{}", r.text);
    settle(&w).await;
    // Full-width Ｖ, a space: the same customer.
    let r = page(
        &w,
        "/console/leads/similar?customer_name=%E4%B8%87%E7%A7%91%20%EF%BC%B6anke",
        Some("eng_b"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("已有同名客户"), "{}", r.text);
    assert!(r.text.contains("eng_a"), "{}", r.text);
    let r = page(
        &w,
        "/console/leads/similar?customer_name=%E5%85%B6%E4%BB%96",
        Some("eng_b"),
    )
    .await;
    assert!(!r.text.contains("已有同名客户"), "{}", r.text);
    // Missing fields are refused with the reason, in place.
    let r = w
        .raw(
            Method::POST,
            "/console/leads",
            Some(w.tokens["eng_a"].clone()),
            b"customer_name=x".to_vec(),
            &[("hx-request", "true")],
        )
        .await;
    assert!(r.text.contains("role=\"alert\""), "{}", r.text);
}

async fn post_form(w: &World, uri: &str, who: &str, form: &str) -> Reply {
    w.raw(
        Method::POST,
        uri,
        Some(w.tokens[who].clone()),
        form.as_bytes().to_vec(),
        &[("hx-request", "true")],
    )
    .await
}

/// A key person with the relationship levels from the record page: only the owner may record
/// them; the levels come as a pair and name the person just recorded.
#[tokio::test]
async fn an_engineer_records_a_key_person_with_levels() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    settle(&w).await;
    let action = format!("/console/leads/{lead}/key-persons");
    let person = "name=%E8%B5%B5%E5%B7%A5&title=&role=influencer";
    // Another engineer is refused by the domain, in Chinese.
    let r = post_form(
        &w,
        &action,
        "eng_b",
        &format!("{person}&company=b&personal=a"),
    )
    .await;
    assert!(r.text.contains("role=\"alert\""), "{}", r.text);
    assert!(r.text.contains("lead.not_owner"), "{}", r.text);
    // One level without the other is refused before anything is written.
    let r = post_form(
        &w,
        &action,
        "eng_a",
        &format!("{person}&company=b&personal="),
    )
    .await;
    assert!(r.text.contains("须同时填写"), "{}", r.text);
    settle(&w).await;
    let record = w.get(&format!("/leads/{lead}"), "eng_a").await.body;
    assert_eq!(record["key_persons"].as_array().unwrap().len(), 0);
    let r = post_form(
        &w,
        &action,
        "eng_a",
        &format!("{person}&company=b&personal=a"),
    )
    .await;
    assert!(r.text.contains("已记录关键人物及关系等级"), "{}", r.text);
    settle(&w).await;
    let record = w.get(&format!("/leads/{lead}"), "eng_a").await.body;
    assert_eq!(record["key_persons"][0]["name"], "赵工");
    assert_eq!(record["relationship"]["company"], "b");
    assert_eq!(record["relationship"]["personal"], "a");
}

/// A visit plan from the plan page: an engineer's is accepted, rows left empty are dropped, and
/// someone who plans no visits is refused by the domain.
#[tokio::test]
async fn a_visit_plan_is_submitted_from_the_plan_page() {
    let w = world().await;
    let page_r = page(&w, "/console/plans", Some("eng_a")).await;
    assert_eq!(page_r.status, StatusCode::OK, "{}", page_r.text);
    assert_page(&page_r);
    let form = "period.kind=week&period.monday=2026-05-11\
        &visits%5B0%5D.date=2026-05-12&visits%5B0%5D.customer=%E4%B8%87%E7%A7%91&visits%5B0%5D.purpose=\
        &visits%5B1%5D.date=&visits%5B1%5D.customer=&visits%5B1%5D.purpose=";
    let r = post_form(&w, "/console/plans", "manager", form).await;
    assert!(r.text.contains("role=\"alert\""), "{}", r.text);
    let r = post_form(&w, "/console/plans", "eng_a", form).await;
    assert!(r.text.contains("共 1 次拜访"), "{}", r.text);
    let r = post_form(
        &w,
        "/console/plans",
        "eng_a",
        "period.kind=week&period.monday=2026-05-11&visits%5B0%5D.date=2026-05-12&visits%5B0%5D.customer=",
    )
    .await;
    assert!(r.text.contains("第 1 行拜访未填客户"), "{}", r.text);
}

/// Summary steps from the inbox run as the person: an engineer may not compile one.
#[tokio::test]
async fn summary_steps_run_with_the_domains_authorization() {
    let w = world().await;
    let form = format!(
        "office={}&period%3Ajson=%7B%22kind%22%3A%22week%22%2C%22monday%22%3A%222026-05-11%22%7D&lines%3Ajson=%5B%5D",
        sh()
    );
    let r = post_form(&w, "/console/summaries", "eng_a", &form).await;
    assert!(r.text.contains("role=\"alert\""), "{}", r.text);
    let r = post_form(&w, "/console/summaries", "assistant", &form).await;
    assert!(r.text.contains("汇总表已编制，共 0 行"), "{}", r.text);
    let r = post_form(&w, "/console/summaries/not-a-uuid/verify", "assistant", "").await;
    assert!(r.text.contains("role=\"alert\""), "{}", r.text);
}

/// A stagnation review (five visits with both relationships still C) is decided from the
/// manager's inbox with a form of choices: the decision, the office's other engineers by name, the
/// grounds. Nothing is typed as JSON.
#[tokio::test]
async fn a_stagnation_review_is_decided_from_the_inbox_with_choices() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    for day in 2..7 {
        let mut v = visit();
        v["visited_at"] = serde_json::json!(format!("2026-03-0{day}T09:30:00Z"));
        let r = w
            .post(&format!("/leads/{lead}/commands/log_visit"), "eng_a", v)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;
    w.get(&format!("/tasks?at_least={head}"), "manager").await;

    let r = page(&w, "/console/inbox", Some("manager")).await;
    let action = format!("/console/leads/{lead}/commands/decide_stagnation_review");
    assert!(
        r.text.contains(&format!("hx-post=\"{action}\"")),
        "{}",
        r.text
    );
    assert!(
        !r.text.contains("(JSON)") && !r.text.contains("<textarea"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("<select name=\"decision.kind\" required>")
            && r.text
                .contains("<option value=\"suspend\">中止跟进</option>"),
        "{}",
        r.text
    );
    // The office's other engineer is offered by name; the owner is not.
    let eng_b = format!("<option value=\"{}\">eng_b</option>", w.ids["eng_b"]);
    let eng_a = format!("<option value=\"{}\">eng_a</option>", w.ids["eng_a"]);
    let form = r
        .text
        .split("name=\"decision.to\"")
        .nth(1)
        .and_then(|s| s.split("</select>").next())
        .expect("a choice of engineer");
    assert!(form.contains(&eng_b) && !form.contains(&eng_a), "{form}");

    // The manager suspends the lead: the empty engineer and grounds are left out of the command.
    let r = w
        .raw(
            Method::POST,
            &action,
            Some(w.tokens["manager"].clone()),
            b"decision.kind=suspend&decision.to=&decision.evidence=&note=%E6%9A%82%E5%81%9C"
                .to_vec(),
            &[("hx-request", "true")],
        )
        .await;
    assert!(r.text.contains("已提交"), "{}", r.text);
    let record = w.get(&format!("/leads/{lead}"), "manager").await;
    assert!(
        record.text.contains("lead.stagnation_review_decided")
            && record.text.contains("\"stage\":\"suspended\""),
        "{}",
        record.text
    );
}

/// A task someone else closes (an insider escalation closes when the lead's engineer records an
/// insider) gives the manager no form the domain would refuse them: it says who does what.
#[tokio::test]
async fn a_task_closed_by_someone_else_offers_no_form_and_says_who() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    for _ in 0..3 {
        let r = w
            .post(
                &format!("/leads/{lead}/commands/log_visit"),
                "eng_a",
                visit(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    w.sagas().await;
    let head = w.state.store().head().await.expect("head").0;
    w.get(&format!("/tasks?at_least={head}"), "manager").await;
    let r = page(&w, "/console/inbox", Some("manager")).await;
    assert!(r.text.contains("已拜访 3 次仍无内线"), "{}", r.text);
    assert!(
        !r.text.contains(&format!(
            "hx-post=\"/console/leads/{lead}/commands/mark_insider\""
        )),
        "{}",
        r.text
    );
    assert!(r.text.contains("由他人办理：负责工程师："), "{}", r.text);
}

/// The value of the first `name="NAME" value="…"` input of a page.
fn input_value(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} input: {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap_or("").to_string()
}

/// Signs `who` in as a browser does; the `Cookie` header value of the session.
async fn browser_session(w: &World, who: &str) -> String {
    let body = json!({ "token": w.tokens[who] }).to_string().into_bytes();
    let r = w.raw(Method::POST, "/session", None, body, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    format!(
        "funnel_session={}",
        cookie_value(set_cookie(&r, "funnel_session"))
    )
}

/// Posts a form as a browser without JavaScript does: the session cookie, no CSRF header.
async fn post_plain_form(w: &World, uri: &str, cookie: &str, body: Vec<u8>) -> Reply {
    w.raw(
        Method::POST,
        uri,
        None,
        body,
        &[
            ("cookie", cookie),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
    )
    .await
}

/// A form sent without JavaScript (no `X-CSRF-Token` header) works through a session when it
/// carries the session's CSRF token in `_csrf`, and is refused without it or with another's.
#[tokio::test]
async fn forms_work_without_javascript_by_their_csrf_field() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    settle(&w).await;
    let mine = browser_session(&w, "eng_a").await;
    let theirs = browser_session(&w, "eng_b").await;
    let record = format!("/console/leads/{lead}");
    let page = w
        .raw(Method::GET, &record, None, vec![], &[("cookie", &mine)])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = input_value(&page.text, "_csrf");
    assert_eq!(csrf.len(), 43, "{csrf}");
    let when = input_value(&page.text, "visited_at:local");
    let form = |token: &str| {
        let mut f = url::form_urlencoded::Serializer::new(String::new());
        f.append_pair("kind", "visit")
            .append_pair("visited_at:local", &when)
            .append_pair("purposes[]", "collect_needs")
            .append_pair("summary", "不用脚本提交的拜访");
        if !token.is_empty() {
            f.append_pair("_csrf", token);
        }
        f.finish().into_bytes()
    };
    let action = format!("/console/leads/{lead}/commands/log_visit");
    // No token, a made-up one, or another session's: refused before anything is decided.
    let other = w
        .raw(
            Method::GET,
            "/session",
            None,
            vec![],
            &[("cookie", &theirs)],
        )
        .await;
    let other_csrf = other.body["csrf_token"]
        .as_str()
        .expect("a token")
        .to_string();
    assert_ne!(other_csrf, csrf);
    for token in [String::new(), "A".repeat(43), other_csrf] {
        let r = post_plain_form(&w, &action, &mine, form(&token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.text.contains("auth.csrf"), "{}", r.text);
    }
    // The page's own token: the visit is logged, and the answer is a whole page.
    let r = post_plain_form(&w, &action, &mine, form(&csrf)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_page(&r);
    let rec = w.get(&format!("/leads/{lead}"), "eng_a").await;
    assert_eq!(
        rec.body["visits"].as_array().map(Vec::len),
        Some(1),
        "{}",
        rec.text
    );
    assert_eq!(rec.body["visits"][0]["summary"], "不用脚本提交的拜访");
}

/// A `multipart/form-data` body with these text fields and, when given, a file.
fn multipart(fields: &[(&str, &str)], file: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = "----funnel-test-boundary-7d1";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some(bytes) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"合同.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The owner submits the contract for review and amends it from the record page by choosing the
/// file: the commands carry the file's SHA-256, the record lists the versions by fingerprint, and
/// a form sent without JavaScript works by its `_csrf` field (and is refused without it).
#[tokio::test]
async fn a_contract_is_submitted_and_amended_from_the_record_with_its_file() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    let record = format!("/console/leads/{lead}");
    let action = format!("/console/leads/{lead}/contracts");
    // Before the prospect stage there is no contract form.
    settle(&w).await;
    let r = page(&w, &record, Some("eng_a")).await;
    assert!(!r.text.contains(&action), "{}", r.text);
    to_prospect(&w, &lead).await;
    settle(&w).await;
    let r = page(&w, &record, Some("eng_a")).await;
    assert!(r.text.contains(&action) && r.text.contains("提交合同评审"));
    assert!(
        r.text.contains("enctype=\"multipart/form-data\""),
        "{}",
        r.text
    );
    let r = page(&w, &record, Some("eng_b")).await;
    assert!(
        !r.text.contains(&action),
        "only the owner is offered the form"
    );

    let send = |who: &'static str, fields: Vec<(&'static str, String)>, file: Option<Vec<u8>>| {
        let w = &w;
        let action = action.clone();
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (content_type, body) = multipart(&fields, file.as_deref());
            w.raw(
                Method::POST,
                &action,
                Some(w.tokens[who].clone()),
                body,
                &[("content-type", &content_type), ("hx-request", "true")],
            )
            .await
        }
    };
    let first = b"%PDF-1.7 contract text, version one".to_vec();
    // No file chosen: refused in words, nothing recorded.
    let r = send(
        "eng_a",
        vec![
            ("command", "submit_contract".into()),
            ("amount_cny:wan", "115".into()),
        ],
        Some(Vec::new()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("请选择合同文件"), "{}", r.text);
    let r = send(
        "eng_a",
        vec![
            ("command", "submit_contract".into()),
            ("amount_cny:wan", "115".into()),
        ],
        Some(first.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("已提交，已记录") && r.text.contains(&sha256_hex(&first)[..12]));
    let api = w.get(&format!("/leads/{lead}"), "eng_a").await;
    let contract = &api.body["contracts"][0];
    assert_eq!(contract["versions"][0]["content_hash"], sha256_hex(&first));
    assert_eq!(contract["versions"][0]["amount_cny"], 1_150_000);
    let contract_id = contract["contract_id"].as_str().expect("id").to_string();

    // Now the form amends that contract; another's attempt is refused by the domain.
    settle(&w).await;
    let r = page(&w, &record, Some("eng_a")).await;
    assert!(
        r.text.contains("修改合同") && r.text.contains(&contract_id),
        "{}",
        r.text
    );
    assert!(
        r.text.contains(&sha256_hex(&first)[..12]),
        "the version's fingerprint is listed"
    );
    let second = b"%PDF-1.7 contract text, version two".to_vec();
    let amend = || {
        vec![
            ("command", "amend_contract".to_string()),
            ("contract_id", contract_id.clone()),
            ("amount_cny:wan", "110".into()),
            ("reason", "客户要求降价".into()),
        ]
    };
    let r = send("eng_b", amend(), Some(second.clone())).await;
    assert!(r.text.contains("只有该客户的负责人"), "{}", r.text);

    // Without JavaScript: the session cookie and the `_csrf` field, no header.
    let cookie = browser_session(&w, "eng_a").await;
    let page_html = w
        .raw(Method::GET, &record, None, vec![], &[("cookie", &cookie)])
        .await;
    let csrf = input_value(&page_html.text, "_csrf");
    let plain = |with_csrf: bool| {
        let mut fields = amend();
        if with_csrf {
            fields.insert(0, ("_csrf", csrf.clone()));
        }
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (content_type, body) = multipart(&refs, Some(&second));
        let (w, action, cookie) = (&w, action.clone(), cookie.clone());
        async move {
            w.raw(
                Method::POST,
                &action,
                None,
                body,
                &[("cookie", &cookie), ("content-type", &content_type)],
            )
            .await
        }
    };
    let r = plain(false).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = plain(true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("已提交，已记录"), "{}", r.text);
    let api = w.get(&format!("/leads/{lead}"), "eng_a").await;
    let versions = &api.body["contracts"][0]["versions"];
    assert_eq!(versions[1]["content_hash"], sha256_hex(&second), "{api:?}");
    assert_eq!(versions[1]["reason"], "客户要求降价");
}

/// The contract form refuses what is not the owner's to send and what is not a form: an engineer
/// of another office, an auditor, a lead id that is none, a body that is not multipart, and a
/// file over the limit; nothing is recorded.
#[tokio::test]
async fn the_contract_form_refuses_other_people_and_hostile_bodies() {
    let w = world().await;
    let (lead, _) = w.register("eng_a", sh(), "万科").await;
    to_prospect(&w, &lead).await;
    let action = format!("/console/leads/{lead}/contracts");
    let send = |who: &'static str, uri: String, content_type: String, body: Vec<u8>| {
        let w = &w;
        async move {
            w.raw(
                Method::POST,
                &uri,
                Some(w.tokens[who].clone()),
                body,
                &[("content-type", &content_type), ("hx-request", "true")],
            )
            .await
        }
    };
    let fields = [("command", "submit_contract"), ("amount_cny:wan", "115")];
    for who in ["eng_bj", "auditor", "manager"] {
        let (content_type, body) = multipart(&fields, Some(b"=HYPERLINK(\"http://x\")"));
        let r = send(who, action.clone(), content_type, body).await;
        assert!(r.text.contains("refusal"), "{who}: {}", r.text);
        assert!(!r.text.contains("已提交，已记录"), "{who}: {}", r.text);
    }
    let (content_type, body) = multipart(&fields, Some(b"x"));
    let r = send(
        "eng_a",
        "/console/leads/not-a-lead/contracts".into(),
        content_type,
        body,
    )
    .await;
    assert!(r.text.contains("refusal"), "{}", r.text);
    let r = send(
        "eng_a",
        action.clone(),
        "application/json".into(),
        b"{}".to_vec(),
    )
    .await;
    assert!(
        r.text.contains("refusal") && r.text.contains("合同表单须以 multipart/form-data 提交"),
        "{}",
        r.text
    );
    // Over the 10 MiB the form takes.
    let big = vec![b'a'; 11 * 1024 * 1024];
    let (content_type, body) = multipart(&fields, Some(&big));
    let r = send("eng_a", action.clone(), content_type, body).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.body["code"], "request.too_large", "{}", r.text);
    let api = w.get(&format!("/leads/{lead}"), "eng_a").await;
    assert_eq!(api.body["contracts"], serde_json::json!([]), "{}", api.text);
}
