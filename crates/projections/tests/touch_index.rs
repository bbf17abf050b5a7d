//! The touch index kept as tables answers, for any lead and any member of staff, now and as of
//! any position or moment, in pages, exactly the touches a fold of the log up to then gives.

mod support;

use chrono::{DateTime, Duration, Utc};
use funnel_domain::Event;
use funnel_projections::models::{
    TouchIndex, TouchQuery, Upto, actor_key, actor_touches, lead_touches,
};
use funnel_projections::{AsOf, LiveTables, Runner, RunnerOptions, TableModel, live_tables};
use funnel_types::{Actor, Envelope, LeadId, Position, StaffId};
use std::collections::{BTreeMap, BTreeSet};

/// A touch as the definition gives it: (position, lead, at, actor, actor name, action, refused).
type Expected = (Position, LeadId, DateTime<Utc>, Actor, String, String, bool);

/// Every touch of the log, by the definition: each event of a lead, by its actor (for a refused
/// touch, by who tried), named by the staff names joined anywhere in the log.
fn by_definition(events: &[Envelope<Event>]) -> Vec<Expected> {
    let names: BTreeMap<StaffId, String> = events
        .iter()
        .filter_map(|e| match &e.payload {
            Event::StaffJoined(j) => Some((j.staff_id, j.name.clone())),
            _ => None,
        })
        .collect();
    let name = |a: &Actor| match a {
        Actor::Staff { id, .. } => names.get(id).cloned().unwrap_or_else(|| id.to_string()),
        Actor::System { name } => format!("system:{name}"),
    };
    events
        .iter()
        .filter_map(|e| {
            let lead = e.payload.lead_id()?;
            let (actor, action, refused) = match &e.payload {
                Event::TouchRefused(t) => {
                    (Actor::staff(t.attempted_by, t.role), t.action.clone(), true)
                }
                other => (e.meta.actor.clone(), other.event_type().to_string(), false),
            };
            Some((
                e.meta.position,
                lead,
                e.meta.occurred_at,
                actor.clone(),
                name(&actor),
                action,
                refused,
            ))
        })
        .collect()
}

/// Every page of a query, joined, checking that each page is at most `limit` long and that the
/// cursor goes on where the page ended.
fn all_pages(
    mut page: impl FnMut(Option<Position>) -> (Vec<Expected>, Option<Position>),
    limit: usize,
) -> Vec<Expected> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let (rows, next) = page(after);
        assert!(rows.len() <= limit);
        if let Some(n) = next {
            assert_eq!(
                Some(n),
                rows.last().map(|r| r.0),
                "the cursor is the page's end"
            );
        }
        out.extend(rows);
        match next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touches_from_the_tables_equal_the_fold_of_the_log_now_and_as_of_any_moment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, events) = support::demo_history(dir.path(), 40).await;
    // Small pages, so the tables are written in many transactions.
    let path = dir.path().join("checkpoints.sqlite");
    let mut runner = Runner::open(
        &path,
        RunnerOptions {
            page_size: 97,
            ..RunnerOptions::default()
        },
    )
    .expect("runner");
    runner.register_tables::<TouchIndex>().expect("register");
    runner
        .catch_up(store.as_ref(), &mut |_| {})
        .await
        .expect("catch up");
    let conn = rusqlite::Connection::open(&path).expect("open");
    let t: LiveTables = live_tables(&conn, TouchIndex::NAME)
        .expect("read")
        .expect("the tables are live");
    let every = by_definition(&events);
    assert!(every.iter().any(|e| e.6), "the demo has refused touches");
    let leads: BTreeSet<LeadId> = every.iter().map(|e| e.1).collect();
    let actors: BTreeSet<String> = every.iter().map(|e| actor_key(&e.3)).collect();
    let head = events.last().expect("events").meta.position;
    let first = events.first().expect("events").meta.occurred_at;
    let span = (events
        .iter()
        .map(|e| e.meta.occurred_at)
        .max()
        .expect("events")
        - first)
        .num_minutes();
    let moments: Vec<Option<AsOf>> = std::iter::once(None)
        .chain((0..6).map(|k| Some(AsOf::Position(Position(head.0 * k / 5 + 1)))))
        .chain((0..6).map(|k| Some(AsOf::Time(first + Duration::minutes(span * k / 5 - 1)))))
        // Exactly when some events occurred: they are in.
        .chain((1..4).map(|k| Some(AsOf::Time(events[events.len() * k / 4].meta.occurred_at))))
        .collect();
    let row = |x: funnel_projections::models::Touch| -> Expected {
        (
            x.position,
            x.lead_id,
            x.at,
            x.actor,
            x.actor_name,
            x.action,
            x.refused,
        )
    };
    let limit = 7;
    for as_of in moments {
        let upto = Upto::of(as_of, &t);
        let admitted = |e: &&Expected| match as_of {
            None => true,
            Some(AsOf::Position(p)) => e.0 <= p,
            Some(AsOf::Time(m)) => e.2 <= m,
        };
        let query = |after, from, to| TouchQuery {
            upto,
            after,
            limit,
            from,
            to,
            latest_first: false,
        };
        for lead in leads.iter().step_by(3) {
            let want: Vec<Expected> = every
                .iter()
                .filter(admitted)
                .filter(|e| e.1 == *lead)
                .cloned()
                .collect();
            let got = all_pages(
                |after| {
                    let (rows, next) =
                        lead_touches(&conn, &t, *lead, &query(after, None, None)).expect("query");
                    (rows.into_iter().map(row).collect(), next)
                },
                limit,
            );
            assert_eq!(got, want, "lead {lead} as of {as_of:?}");
        }
        let (from, to) = (first + Duration::days(30), first + Duration::days(60));
        for key in &actors {
            let want: Vec<Expected> = every
                .iter()
                .filter(admitted)
                .filter(|e| actor_key(&e.3) == *key && e.2 >= from && e.2 < to)
                .cloned()
                .collect();
            let got = all_pages(
                |after| {
                    let (rows, next) =
                        actor_touches(&conn, &t, key, &query(after, Some(from), Some(to)))
                            .expect("query");
                    (rows.into_iter().map(row).collect(), next)
                },
                limit,
            );
            assert_eq!(got, want, "actor {key} as of {as_of:?}");
        }
    }
    // The latest first, for a person's recent touches.
    let key = actors
        .iter()
        .find(|a| !a.starts_with("system:"))
        .expect("a person");
    let latest = TouchQuery {
        upto: Upto::of(None, &t),
        after: None,
        limit: 5,
        from: None,
        to: None,
        latest_first: true,
    };
    let (rows, _) = actor_touches(&conn, &t, key, &latest).expect("query");
    let want: Vec<Position> = every
        .iter()
        .rev()
        .filter(|e| actor_key(&e.3) == *key)
        .take(5)
        .map(|e| e.0)
        .collect();
    assert_eq!(rows.iter().map(|r| r.position).collect::<Vec<_>>(), want);
}
