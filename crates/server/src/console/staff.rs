//! `GET /console/staff/{id}?from=&to=`: a member of staff (as `GET /staff/{id}` shows them to the
//! viewer): role, office, managers, the leads they own, and everything they touched in a period,
//! refused attempts marked (as `GET /audit/actor/{staff}` answers it, to those who may read it).

use super::{Shell, Viewer, html, local_time, wan};
use crate::AppState;
use crate::problem::Problem;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use funnel_app::Paging;
use funnel_app::query::record;
use funnel_app::query::reports::{self, ActorAuditQuery};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct PeriodQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    #[allow(dead_code)]
    lang: Option<String>,
}

pub struct OwnedRow {
    pub href: String,
    pub customer: String,
    pub stage: String,
    pub amount: String,
    pub last_visit: String,
    pub ageing: bool,
}

pub struct TouchRow {
    pub at: String,
    pub href: String,
    pub customer: String,
    pub action: String,
    pub refused: bool,
}

#[derive(Template)]
#[template(path = "staff.html")]
struct StaffPage {
    shell: Shell,
    path: String,
    name: String,
    about: String,
    managers: String,
    leads: Vec<OwnedRow>,
    from: String,
    to: String,
    /// `None` when the viewer may not read what this person touched.
    touches: Option<Vec<TouchRow>>,
    more_touches: bool,
    error: Option<String>,
}

/// `GET /console/staff/{id}?from=YYYY-MM-DD&to=YYYY-MM-DD`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> Response {
    let tr = viewer.tr;
    let path = format!("/console/staff/{id}");
    let shell = Shell::new(tr, tr.t("员工", "Staff"), &path, Some(&viewer))
        .with_query(&[("from", q.from.clone()), ("to", q.to.clone())]);
    let r = match record::staff_record(state.reads(), &viewer.caller, &id, None).await {
        Ok(r) => r,
        Err(e) => return super::problem_page(shell, &Problem::from(e)),
    };
    let zone: chrono_tz::Tz = r.time_zone.parse().unwrap_or(viewer.zone);
    let mut error = None;
    let mut date = |text: &str| match text {
        "" => None,
        t => match t.parse::<chrono::NaiveDate>() {
            Ok(d) => Some(d),
            Err(_) => {
                error = Some(format!("`{t}`: YYYY-MM-DD"));
                None
            }
        },
    };
    let (from, to) = (date(&q.from), date(&q.to));
    let audit = match reports::actor_audit(
        state.reads(),
        &viewer.caller,
        ActorAuditQuery {
            staff: r.staff_id.to_string(),
            from,
            to,
            as_of: None,
            at_least: None,
            paging: Paging::bounded(None, Some(1000)).unwrap_or_else(|_| Paging::everything()),
        },
    )
    .await
    {
        Ok(a) => Some(a),
        // Who may see this person may not always read their work: the page says so.
        Err(e) if Problem::from(e.clone()).status == 403 => None,
        Err(e) => return super::problem_page(shell, &Problem::from(e)),
    };
    let more_touches = audit.as_ref().is_some_and(|a| a.next.is_some());
    let touches = audit.map(|a| {
        a.touches
            .iter()
            .rev()
            .map(|t| TouchRow {
                at: local_time(t.at, zone),
                href: format!("/console/leads/{}", t.lead_id),
                customer: t.customer.clone(),
                action: super::labels::action(tr, &t.action),
                refused: t.refused,
            })
            .collect()
    });
    let leads = r
        .leads
        .iter()
        .map(|l| OwnedRow {
            href: format!("/console/leads/{}", l.lead_id),
            customer: l.customer.clone(),
            stage: tr.code(&l.stage_zh, l.stage.as_str()),
            amount: l.amount_cny.map(wan).unwrap_or_else(|| "—".into()),
            last_visit: l
                .last_visit_at
                .map(|t| local_time(t, zone))
                .unwrap_or_else(|| "—".into()),
            ageing: l.ageing,
        })
        .collect();
    let mut about = tr.code(&r.role_zh, r.role.as_str());
    if let Some(o) = &r.office {
        about.push_str(" · ");
        about.push_str(&o.name);
    }
    if !r.active {
        about.push_str(tr.t(" · 已离职", " · left"));
    }
    html(
        StaffPage {
            shell,
            path,
            name: r.name.clone(),
            about,
            managers: r
                .managers
                .iter()
                .map(|m| m.name.clone())
                .collect::<Vec<_>>()
                .join("、"),
            leads,
            from: q.from.clone(),
            to: q.to.clone(),
            touches,
            more_touches,
            error,
        }
        .render(),
    )
}
