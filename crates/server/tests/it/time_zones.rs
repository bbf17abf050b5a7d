//! Dates in queries are read on the clock of the office concerned: an office in Urumqi (UTC+6)
//! beside the Shanghai ones. A lead registered at 23:30 on 30 September in Urumqi is 01:30 on
//! 1 October in Shanghai.

use crate::common;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::*;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Who};
use funnel_server::ServeOptions;
use funnel_types::{ManualClock, OfficeId, Role, StaffId};
use serde_json::Value;
use std::sync::Arc;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("time")
}

/// The test world on 1 September, with an office in Urumqi and an engineer there (`eng_ur`), who
/// registers a lead at 2026-09-30 23:30 Urumqi time.
async fn urumqi() -> World {
    let clock = ManualClock::new(at("2026-09-01T02:00:00Z"));
    let mut w = world_at(ServeOptions::default(), Arc::new(clock.clone())).await;
    let ur = OfficeId::derived("UR");
    let system = || CommandMeta::new(Who::System("bootstrap".into()));
    let cmd = OfficeCommand::Open {
        office_id: ur,
        name: "乌鲁木齐办事处".into(),
        code: "UR".into(),
        timezone: "Asia/Urumqi".into(),
        region: "西北".into(),
    };
    w.engine
        .execute(system(), Command::Office { office_id: ur, cmd })
        .await
        .expect("office");
    let id = StaffId::derived("eng_ur");
    let cmd = StaffCommand::Join {
        staff_id: id,
        name: "eng_ur".into(),
        role: Role::SalesEngineer,
        office: Some(ur),
    };
    w.engine
        .execute(system(), Command::Staff { staff_id: id, cmd })
        .await
        .expect("staff");
    let token = funnel_server::tokens::issue(&w.engine, Who::System("test".into()), id)
        .await
        .expect("token");
    w.tokens.insert("eng_ur", token.token);
    w.ids.insert("eng_ur", id);
    let head = w.state.store().head().await.expect("head");
    funnel_projections::wait_until_shared(
        w.state.runner(),
        head,
        std::time::Duration::from_secs(10),
    )
    .await
    .expect("projected");
    clock.set(at("2026-09-30T17:30:00Z"));
    w.register("eng_ur", ur, "新疆建工").await;
    let head = w.state.store().head().await.expect("head");
    funnel_projections::wait_until_shared(
        w.state.runner(),
        head,
        std::time::Duration::from_secs(10),
    )
    .await
    .expect("projected");
    w
}

fn leads_in_urumqi(body: &Value) -> u64 {
    body["offices"]
        .as_array()
        .expect("offices")
        .iter()
        .filter(|o| o["code"] == "UR")
        .flat_map(|o| o["by_stage"].as_object().expect("by_stage").values())
        .map(|b| b["leads"].as_u64().expect("leads"))
        .sum()
}

#[tokio::test]
async fn as_of_a_date_ends_at_midnight_of_the_office_asked_about() {
    let w = urumqi().await;
    let r = w
        .get("/pipeline?as_of=2026-09-30&office=UR", "executive")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["time_zone"], "Asia/Urumqi");
    assert_eq!(r.body["as_of"], "2026-09-30T17:59:59.999999999+00:00");
    assert_eq!(leads_in_urumqi(&r.body), 1, "{}", r.text);
    // The engineer's own report is in their office's zone.
    let own = w.get("/pipeline?as_of=2026-09-30", "eng_ur").await;
    assert_eq!(own.body["time_zone"], "Asia/Urumqi");
    assert_eq!(leads_in_urumqi(&own.body), 1, "{}", own.text);
    // Headquarters across offices reads headquarters' day and says so: in Shanghai the lead came
    // on 1 October.
    let hq = w.get("/pipeline?as_of=2026-09-30", "executive").await;
    assert_eq!(hq.status, StatusCode::OK, "{}", hq.text);
    assert_eq!(hq.body["time_zone"], "Asia/Shanghai");
    assert_eq!(leads_in_urumqi(&hq.body), 0, "{}", hq.text);
}

#[tokio::test]
async fn an_actors_days_are_the_days_of_their_office() {
    let w = urumqi().await;
    let touches = |from: &str, to: &str| {
        let uri = format!("/audit/actor/eng_ur?from={from}&to={to}");
        let w = &w;
        async move {
            let r = w.get(&uri, "executive").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(r.body["time_zone"], "Asia/Urumqi");
            r.body["touches"].as_array().expect("touches").len()
        }
    };
    // The registration (and the ownership it gives) happened on 30 September in Urumqi.
    assert!(touches("2026-09-30", "2026-09-30").await > 0);
    assert_eq!(touches("2026-10-01", "2026-10-01").await, 0);
}
