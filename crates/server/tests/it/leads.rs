//! `GET /leads`: the persisted lead index over HTTP. Names written differently (full width,
//! spacing, punctuation, look-alike letters) and phone numbers with dashes or `+86` find the lead;
//! every filter, sort and page; office roles find only their office's leads.

use crate::common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

/// Registers a lead with its own project, contact and phone; returns its id and position.
async fn lead(
    w: &World,
    who: &str,
    office: funnel_types::OfficeId,
    customer: &str,
    project: &str,
    contact: (&str, &str),
) -> (String, u64) {
    let mut body = registration(office, customer);
    body["project_name"] = json!(project);
    body["contact"] = json!({ "name": contact.0, "phone": contact.1 });
    let r = w.post("/leads", who, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (
        r.body["id"].as_str().expect("id").to_string(),
        r.body["position"].as_u64().expect("position"),
    )
}

fn ids(r: &Value) -> Vec<String> {
    r["leads"]
        .as_array()
        .expect("leads")
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_string())
        .collect()
}

/// Percent-encodes a query value (every byte but the unreserved ASCII ones).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn differently_written_names_and_phones_find_the_lead() {
    let w = world().await;
    let (vanke, _) = lead(
        &w,
        "eng_a",
        sh(),
        "万科·城市花园",
        "二期",
        ("王建国", "138-0013-8000"),
    )
    .await;
    let (park, at) = lead(
        &w,
        "eng_b",
        sh(),
        "Gemdale",
        "North Park",
        ("Olga", "021 5555 0101"),
    )
    .await;
    for (q, want, field) in [
        ("万科城市花园", &vanke, "customer"),
        // Across customer and project.
        ("城市花园二期", &vanke, "project"),
        ("花园·二期", &vanke, "customer"),
        ("万科 城市花园", &vanke, "customer"),
        ("城市花园", &vanke, "customer"),
        ("万科", &vanke, "customer"),
        ("ＧＥＭＤＡＬＥ", &park, "customer"),
        ("north　ＰＡＲＫ", &park, "project"),
        ("gem-dale", &park, "customer"),
        // Cyrillic е (U+0435) and а (U+0430).
        ("G\u{435}md\u{430}le", &park, "customer"),
        ("二期", &vanke, "project"),
        ("王建国", &vanke, "contact"),
        ("olga", &park, "contact"),
        ("13800138000", &vanke, "phone"),
        ("+86 138 0013 8000", &vanke, "phone"),
        ("0013-8000", &vanke, "phone"),
        ("5555", &park, "phone"),
    ] {
        let r = w
            .get(&format!("/leads?q={}&at_least={at}", enc(q)), "auditor")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
        assert_eq!(ids(&r.body), vec![want.clone()], "{q}: {}", r.text);
        assert_eq!(r.body["total"], 1, "{q}");
        let matched = &r.body["leads"][0]["matched"];
        assert!(
            matched.as_array().unwrap().iter().any(|m| m == field),
            "{q}: {matched}"
        );
    }
    let r = w
        .get("/leads?q=%E4%B8%87%E7%A7%91%E9%87%91%E5%9C%B0", "auditor")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total"], 0, "{}", r.text);
    let hit = &w
        .get(&format!("/leads?q=vanke&at_least={at}"), "auditor")
        .await;
    assert_eq!(hit.body["total"], 0, "{}", hit.text);
    let one = w
        .get(&format!("/leads?q={}", enc("万科")), "auditor")
        .await
        .body;
    let l = &one["leads"][0];
    assert_eq!(l["office"]["code"], "SH", "{one}");
    assert_eq!(l["office"]["name"], "SH office", "{one}");
    assert_eq!(l["stage"], "ordinary");
    assert_eq!(l["stage_label"], "普通信息");
    assert_eq!(l["contacts"][0]["name"], "王建国");
    assert_eq!(l["time_zone"], "Asia/Shanghai");
    assert!(
        l["registered_at"].as_str().unwrap().ends_with("+08:00"),
        "{one}"
    );
}

/// Three SH leads and one BJ lead with different channels, modes and owners; the SH lead of
/// `eng_b` has a visit dated months before "now", so it is ageing.
async fn four_leads(w: &World) -> (Vec<String>, u64) {
    let mut ids = Vec::new();
    for (who, office, customer, channel, mode) in [
        ("eng_a", sh(), "Alpha 地产", "building_sweep", "independent"),
        ("eng_b", sh(), "Beta 置业", "internet", "independent"),
        ("eng_a", sh(), "Gamma 集团", "building_sweep", "group"),
        (
            "eng_bj",
            bj(),
            "Delta 物业",
            "building_sweep",
            "independent",
        ),
    ] {
        let mut body = registration(office, customer);
        body["channel"] = json!(channel);
        body["purchase_mode"] = json!(mode);
        let r = w.post("/leads", who, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        ids.push(r.body["id"].as_str().expect("id").to_string());
    }
    let r = w
        .post(
            &format!("/leads/{}/commands/log_visit", ids[1]),
            "eng_b",
            visit(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let at = r.body["position"].as_u64().expect("position");
    (ids, at)
}

#[tokio::test]
async fn every_filter_narrows_the_list() {
    let w = world().await;
    let (l, at) = four_leads(&w).await;
    let eng_b = w.ids["eng_b"].to_string();
    for (query, want) in [
        ("", vec![&l[3], &l[2], &l[1], &l[0]]),
        ("office=SH", vec![&l[2], &l[1], &l[0]]),
        ("office=bj", vec![&l[3]]),
        (&format!("office={}", bj()) as &str, vec![&l[3]]),
        ("owner=eng_a", vec![&l[2], &l[0]]),
        (&format!("owner={eng_b}"), vec![&l[1]]),
        ("channel=internet", vec![&l[1]]),
        ("purchase_mode=group", vec![&l[2]]),
        ("stage=ordinary", vec![&l[3], &l[2], &l[1], &l[0]]),
        ("stage=valid", vec![]),
        ("tier=strategic", vec![]),
        ("ageing=true", vec![&l[1]]),
        ("ageing=false", vec![&l[3], &l[2], &l[0]]),
        ("office=SH&channel=building_sweep", vec![&l[2], &l[0]]),
        ("q=beta&ageing=true", vec![&l[1]]),
        ("q=beta&ageing=false", vec![]),
    ] {
        let r = w
            .get(&format!("/leads?{query}&at_least={at}"), "auditor")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(ids(&r.body), want, "{query}: {}", r.text);
        assert_eq!(r.body["total"], want.len(), "{query}");
    }
    let r = w.get("/leads?ageing=true", "auditor").await;
    let hit = &r.body["leads"][0];
    assert_eq!(hit["ageing"], true, "{}", r.text);
    assert!(hit["idle_days"].as_i64().unwrap() > 30, "{}", r.text);
    assert_eq!(hit["owner"]["name"], "eng_b", "{}", r.text);
    assert!(hit["last_visit_at"].is_string(), "{}", r.text);
}

#[tokio::test]
async fn sorts_and_pages() {
    let w = world().await;
    let (l, at) = four_leads(&w).await;
    for (query, want) in [
        (
            "sort=registered&order=asc",
            vec![&l[0], &l[1], &l[2], &l[3]],
        ),
        ("sort=registered", vec![&l[3], &l[2], &l[1], &l[0]]),
        ("sort=customer&order=asc", vec![&l[0], &l[1], &l[3], &l[2]]),
        ("sort=customer&order=desc", vec![&l[2], &l[3], &l[1], &l[0]]),
        // Never visited: last, whichever the order.
        (
            "sort=last_visit&order=asc",
            vec![&l[1], &l[0], &l[2], &l[3]],
        ),
        (
            "sort=last_visit&order=desc",
            vec![&l[1], &l[3], &l[2], &l[0]],
        ),
        (
            "sort=stage_since&order=asc",
            vec![&l[0], &l[1], &l[2], &l[3]],
        ),
        ("sort=amount&order=asc", vec![&l[0], &l[1], &l[2], &l[3]]),
    ] {
        let r = w
            .get(&format!("/leads?{query}&at_least={at}"), "auditor")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(ids(&r.body), want, "{query}: {}", r.text);
    }
    // Pages of two: the total on each, the next offset until the last page.
    let r = w
        .get("/leads?sort=registered&order=asc&limit=2", "auditor")
        .await;
    assert_eq!(ids(&r.body), vec![l[0].clone(), l[1].clone()], "{}", r.text);
    assert_eq!(r.body["total"], 4);
    assert_eq!(r.body["next_offset"], 2);
    let r = w
        .get(
            "/leads?sort=registered&order=asc&limit=2&offset=2",
            "auditor",
        )
        .await;
    assert_eq!(ids(&r.body), vec![l[2].clone(), l[3].clone()], "{}", r.text);
    assert_eq!(r.body["next_offset"], Value::Null, "{}", r.text);
    let r = w.get("/leads?offset=9", "auditor").await;
    assert_eq!(ids(&r.body), Vec::<String>::new());
    assert_eq!(r.body["total"], 4);
}

#[tokio::test]
async fn office_roles_find_only_their_office() {
    let w = world().await;
    let (l, at) = four_leads(&w).await;
    for (who, want) in [
        ("eng_bj", vec![&l[3]]),
        ("manager_bj", vec![&l[3]]),
        ("manager", vec![&l[2], &l[1], &l[0]]),
        ("eng_a", vec![&l[2], &l[1], &l[0]]),
        ("assistant", vec![&l[2], &l[1], &l[0]]),
        ("sales_dept", vec![&l[3], &l[2], &l[1], &l[0]]),
        ("executive", vec![&l[3], &l[2], &l[1], &l[0]]),
    ] {
        let r = w.get(&format!("/leads?at_least={at}"), who).await;
        assert_eq!(r.status, StatusCode::OK, "{who}: {}", r.text);
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(ids(&r.body), want, "{who}");
        let want_delta = want.contains(&l[3]);
        // A search by name does not reach past the office either.
        let r = w.get("/leads?q=delta", who).await;
        let delta = u64::from(want_delta);
        assert_eq!(r.body["total"], delta, "{who}: {}", r.text);
    }
    // Naming another office's engineer does not reach their leads either.
    let r = w.get("/leads?owner=eng_bj", "manager").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total"], 0, "{}", r.text);
    let r = w.get("/leads?owner=eng_bj", "manager_bj").await;
    assert_eq!(ids(&r.body), vec![l[3].clone()], "{}", r.text);
    let r = w.get("/leads?office=BJ", "manager").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.body["code"], "auth.other_office", "{}", r.text);
    let r = w.get("/leads?office=SH", "eng_bj").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test]
async fn bad_parameters_are_refused_in_both_languages() {
    let w = world().await;
    for (query, status) in [
        ("stage=nearly", StatusCode::BAD_REQUEST),
        ("sort=price", StatusCode::BAD_REQUEST),
        ("order=up", StatusCode::BAD_REQUEST),
        ("ageing=maybe", StatusCode::BAD_REQUEST),
        ("limit=0", StatusCode::BAD_REQUEST),
        ("limit=501", StatusCode::BAD_REQUEST),
        ("offset=-1", StatusCode::BAD_REQUEST),
        ("q=%C2%B7%20-", StatusCode::UNPROCESSABLE_ENTITY),
        ("colour=red", StatusCode::BAD_REQUEST),
        ("office=XX", StatusCode::NOT_FOUND),
        ("owner=nobody", StatusCode::NOT_FOUND),
    ] {
        let r = w.get(&format!("/leads?{query}"), "auditor").await;
        assert_eq!(r.status, status, "{query}: {}", r.text);
        assert!(
            r.content_type.starts_with("application/problem+json"),
            "{query}: {}",
            r.content_type
        );
        assert!(
            r.body["message_en"].is_string() && r.body["message_zh"].is_string(),
            "{query}: {}",
            r.text
        );
    }
}

/// The prefix of the live lead index's tables, and every lead index table in the file.
fn tables(w: &World) -> (String, Vec<String>) {
    let readers = funnel_projections::TableReaders::new(w.dir.path().join("funnel.projections.db"));
    readers
        .read(|c| {
            let live = funnel_projections::live_tables(c, "lead_index")?.expect("live tables");
            let mut stmt = c.prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rm_lead_index_g%_leads'",
            )?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((live.prefix, names))
        })
        .expect("read the checkpoint file")
}

#[tokio::test]
async fn a_rebuild_builds_beside_the_served_index_and_switches() {
    let w = world().await;
    let (l, at) = four_leads(&w).await;
    let r = w.get(&format!("/leads?at_least={at}"), "auditor").await;
    assert_eq!(ids(&r.body).len(), 4, "{}", r.text);
    let (before, _) = tables(&w);
    let r = w
        .post("/projections/lead_index/rebuild", "executive", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let index = |body: &Value| {
        body["projections"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == "lead_index").cloned())
            .expect("the lead index's status")
    };
    assert_eq!(index(&r.body)["state"], "rebuilding", "{}", r.text);
    // Searches are served throughout.
    let r = w.get("/leads?q=gamma", "auditor").await;
    assert_eq!(ids(&r.body), vec![l[2].clone()], "{}", r.text);
    // The rebuild finishes on its own (a bounded wait, not a timing assertion).
    let mut done = false;
    for _ in 0..300 {
        let r = w.get("/projections", "auditor").await;
        if index(&r.body)["rebuild"].is_null() {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(done, "the rebuild never finished");
    let (after, all) = tables(&w);
    assert_ne!(before, after, "a new generation serves");
    assert_eq!(
        all,
        vec![format!("{after}leads")],
        "the old generation is dropped"
    );
    let r = w.get("/leads?q=gamma", "auditor").await;
    assert_eq!(ids(&r.body), vec![l[2].clone()], "{}", r.text);
    let r = w.get("/leads", "auditor").await;
    assert_eq!(r.body["total"], 4, "{}", r.text);
}

#[tokio::test]
async fn a_restarted_runner_keeps_the_index_without_rebuilding() {
    let w = world().await;
    let (l, at) = four_leads(&w).await;
    let r = w.get(&format!("/leads?at_least={at}"), "auditor").await;
    assert_eq!(ids(&r.body).len(), 4, "{}", r.text);
    w.state.runner().write().await.save().expect("save");
    let (prefix, _) = tables(&w);

    // A second process on the same files: it loads the index where it was.
    let runner =
        funnel_server::open_runner(&w.dir.path().join("funnel.projections.db")).expect("runner");
    let status = runner.status();
    let index = status
        .iter()
        .find(|s| s.name == "lead_index")
        .expect("lead index");
    assert!(index.rebuild.is_none(), "{index:?}");
    assert!(index.checkpoint.0 >= at, "{index:?}");
    let reads = funnel_app::Reads::new(
        w.state.store().clone(),
        std::sync::Arc::new(tokio::sync::RwLock::new(runner)),
        funnel_app::ReadOptions::default(),
    );
    let caller = funnel_app::auth::Caller::local_operator();
    let found = funnel_app::query::leads::search(
        &reads,
        &caller,
        funnel_app::query::leads::LeadQuery {
            text: Some("ＢＥＴＡ置业".into()),
            ..Default::default()
        },
    )
    .await
    .expect("search");
    assert_eq!(found.total, 1);
    assert_eq!(found.leads[0].id.to_string(), l[1]);
    assert!(found.position.0 >= at);
    assert_eq!(tables(&w).0, prefix, "the same tables serve");
}

/// Pages by cursor (`after=` the previous page's `next_after`): every lead once, in order, for
/// every sort (leads without a value of the sort included), although a lead registered between two
/// pages shifts what an offset would skip to.
#[tokio::test]
async fn cursor_pages_neither_repeat_nor_skip_while_leads_are_registered() {
    let w = world().await;
    let (l, at) = four_leads(&w).await;
    for query in [
        "sort=registered",
        "sort=registered&order=asc",
        "sort=customer&order=asc",
        "sort=last_visit&order=asc",
        "sort=last_visit&order=desc",
        "sort=amount",
        "sort=stage_since",
    ] {
        let whole = w
            .get(&format!("/leads?{query}&at_least={at}"), "auditor")
            .await;
        let want = ids(&whole.body);
        assert_eq!(want.len(), 4, "{query}");
        let mut got = Vec::new();
        let mut url = format!("/leads?{query}&limit=1&at_least={at}");
        for page in 0.. {
            let r = w.get(&url, "auditor").await;
            assert_eq!(r.status, StatusCode::OK, "{query} page {page}: {}", r.text);
            assert_eq!(r.body["total"], 4, "{query}");
            // A page asked for by cursor has no offset to go on from.
            if page > 0 {
                assert!(r.body["next_offset"].is_null(), "{query}: {}", r.text);
            }
            got.extend(ids(&r.body));
            match r.body["next_after"].as_str() {
                Some(c) => url = format!("/leads?{query}&limit=1&after={}", enc(c)),
                None => break,
            }
            assert!(page < 10, "{query}: no end");
        }
        assert_eq!(got, want, "{query}");
    }

    // Newest first, two a page: a lead registered between the pages is not met again on the
    // next page (it belongs before the first), and none of the four is skipped.
    let r = w
        .get(&format!("/leads?limit=2&at_least={at}"), "auditor")
        .await;
    let first = ids(&r.body);
    assert_eq!(first, vec![l[3].clone(), l[2].clone()]);
    let cursor = r.body["next_after"].as_str().expect("a cursor").to_string();
    let (newer, at) = lead(
        &w,
        "eng_a",
        sh(),
        "Epsilon 科技",
        "科技园",
        ("钱", "13700000000"),
    )
    .await;
    let r = w
        .get(
            &format!("/leads?limit=2&after={}&at_least={at}", enc(&cursor)),
            "auditor",
        )
        .await;
    assert_eq!(ids(&r.body), vec![l[1].clone(), l[0].clone()], "{}", r.text);
    assert_eq!(r.body["total"], 5);
    // The offset the first page gave would have shown l[2] again.
    let by_offset = w.get("/leads?limit=2&offset=2", "auditor").await;
    assert_eq!(ids(&by_offset.body), vec![l[2].clone(), l[1].clone()]);
    assert!(!ids(&r.body).contains(&newer));

    // A cursor of another sort, a made-up one, or a cursor with an offset: refused.
    for bad in [
        format!("/leads?sort=customer&after={}", enc(&cursor)),
        "/leads?after=bm90IGEgY3Vyc29y".to_string(),
        format!("/leads?after={}&offset=2", enc(&cursor)),
    ] {
        let r = w.get(&bad, "auditor").await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {}",
            r.text
        );
        assert_eq!(r.body["code"], "validation.cursor", "{bad}: {}", r.text);
        assert!(r.text.contains("游标"), "{bad}: {}", r.text);
    }
}

/// Leads the index takes in one batch keep their registration order wherever a sort ties (here:
/// none visited yet), as leads indexed one at a time do.
#[tokio::test]
async fn leads_indexed_together_keep_their_registration_order_on_ties() {
    let mut w = world().await;
    // The read models know everyone's token before they stop following.
    let head = w.state.store().head().await.expect("head").0;
    let r = w.get(&format!("/me?at_least={head}"), "eng_a").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    w.pause_following().await;
    let mut registered = Vec::new();
    for i in 0..30 {
        registered.push(w.register("eng_a", sh(), &format!("客户{i:02}")).await.0);
    }
    w.follow_after(std::time::Duration::ZERO);
    let head = w.state.store().head().await.expect("head").0;
    for (query, want) in [
        ("sort=last_visit&order=asc", registered.clone()),
        (
            "sort=last_visit&order=desc",
            registered.iter().rev().cloned().collect(),
        ),
    ] {
        let r = w
            .get(&format!("/leads?{query}&at_least={head}"), "auditor")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(ids(&r.body), want, "{query}");
    }
}
