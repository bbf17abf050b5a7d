//! Queries over the read models, as HTTP: each handler parses its parameters, calls the query of
//! `funnel_app::query` (which scopes the answer to what the caller may read: office roles their
//! own office, headquarters roles and auditors every office) and answers its typed answer as JSON.
//! Each accepts `at_least=POSITION` to wait until the read models reflect a write
//! (read-your-writes).
//!
//! The helpers below (`resolve_office`, `staff_named`, `with_model` …) are the same
//! application functions said over HTTP, for the write handlers.

use crate::AppState;
use crate::auth::{Caller, StaffEntry};
use crate::extract::{Q, path_id};
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use funnel_app::Paging;
use funnel_app::query::leads::{self, LeadList, LeadQuery, LeadSortKey, SortOrder};
use funnel_app::query::log::{self, EventPage, ProjectionsReport};
use funnel_app::query::org::Me;
use funnel_app::query::record::{self, LeadRecord, StaffRecord};
use funnel_app::query::reports::{
    self, ActorAudit, ActorAuditQuery, ConflictsReport, LeadAudit, LeadAuditQuery, PlansReport,
    ReportQuery,
};
use funnel_app::query::work::{self, TaskList, TasksQuery};
use funnel_domain::RefusalCode;
use funnel_domain::model::{Channel, PurchaseMode, Stage, Tier};
use funnel_projections::{AsOfInput, ReadModel};
use funnel_types::{LeadId, OfficeId, Position, Role, StaffId};
use serde::Deserialize;

/// Query parameters every read takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    pub at_least: Option<u64>,
    /// An office by id, code (any case) or exact name.
    pub office: Option<String>,
    pub as_of: Option<String>,
}

/// An answer shared by everyone asking at one position ([`funnel_app::answers::Shared`]), as
/// `Json` would answer it: its JSON written once, and sent compressed once with gzip to a client
/// that accepts it (a browser does), so that a report polled by many costs neither writing nor
/// compressing per poll. `Vary` tells caches the answer depends on `Accept-Encoding`.
async fn shared_json<T: serde::Serialize>(
    headers: &axum::http::HeaderMap,
    answer: &funnel_app::answers::Shared<T>,
) -> Result<axum::response::Response, Problem> {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse as _;
    let json = HeaderValue::from_static("application/json");
    let vary = HeaderValue::from_static("accept-encoding");
    Ok(if accepts_gzip(headers) {
        let body = answer.gzip().await.map_err(Problem::internal)?;
        (
            [
                (header::CONTENT_TYPE, json),
                (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                (header::VARY, vary),
            ],
            body,
        )
            .into_response()
    } else {
        let body = answer.json().await.map_err(Problem::internal)?;
        ([(header::CONTENT_TYPE, json), (header::VARY, vary)], body).into_response()
    })
}

/// Whether `Accept-Encoding` admits gzip (RFC 9110 §12.5.3): `gzip` (or `x-gzip`, or `*`) with a
/// weight above zero; `identity` is always admitted, so nothing else is needed.
fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(axum::http::header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next_back()
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(weight > 0.0),
                "*" => any = Some(weight > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// The log head, refusing a position the caller names beyond it.
pub(crate) async fn not_beyond_head(state: &AppState, p: Position) -> Result<Position, Problem> {
    Ok(state.reads().not_beyond_head(p).await?)
}

/// The office a query names by id, code (any case) or exact name.
pub(crate) async fn resolve_office(state: &AppState, text: &str) -> Result<OfficeId, Problem> {
    Ok(state.reads().office(text).await?)
}

/// The office a request names, if it names one.
pub(crate) async fn resolve_optional_office(
    state: &AppState,
    text: Option<&str>,
) -> Result<Option<OfficeId>, Problem> {
    Ok(state.reads().optional_office(text).await?)
}

/// Runs `f` on a read model's current state and the position it reflects, under the read lock and
/// without copying the state; 503 while the model is being rebuilt from an unreadable snapshot.
pub(crate) async fn with_model<M: ReadModel, T>(
    state: &AppState,
    f: impl FnOnce(&M, Position) -> T,
) -> Result<T, Problem> {
    Ok(state.reads().with_model(f).await?)
}

/// A member of staff named by id or name (`funnel_app::staff_names`: brackets and spacing as
/// written, a unique beginning; a shared name is refused with the ids, a miss lists the closest).
pub(crate) async fn staff_named(
    state: &AppState,
    text: &str,
) -> Result<(StaffId, StaffEntry), Problem> {
    Ok(state.reads().staff_named(text).await?)
}

/// `as_of=`: a position, a date (resolved in the report's zone) or an RFC 3339 time.
fn as_of(text: Option<&str>) -> Result<Option<AsOfInput>, Problem> {
    text.map(|t| {
        t.parse()
            .map_err(|e: String| Problem::bad_request("as_of", e))
    })
    .transpose()
}

fn no_as_of(params: &ReadParams) -> Result<(), Problem> {
    match params.as_of {
        Some(_) => Err(Problem::bad_request(
            "as_of",
            "only /pipeline answers as of a moment",
        )),
        None => Ok(()),
    }
}

/// `GET /me`: who the token belongs to.
pub async fn me(caller: Caller) -> Json<Me> {
    Json(funnel_app::query::org::me(&caller))
}

/// Query of the touch lists (`/leads/{id}/audit`, `/audit/actor/{staff}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TouchParams {
    pub at_least: Option<u64>,
    /// First day (in the person's office's time zone), inclusive (actor audits only).
    pub from: Option<chrono::NaiveDate>,
    /// Last day (in the person's office's time zone), inclusive (actor audits only).
    pub to: Option<chrono::NaiveDate>,
    /// Touches after this log position (the previous page's `next`).
    pub after: Option<u64>,
    /// Touches per page, 1 to 1000 (100 by default).
    pub limit: Option<usize>,
}

/// `GET /leads/{id}/audit?after=&limit=`: who changed or tried to change a lead, when and in which
/// role, in log order, a page at a time.
pub async fn lead_audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(lead): Path<String>,
    Q(params): Q<TouchParams>,
) -> Result<Json<LeadAudit>, Problem> {
    let lead: LeadId = path_id("lead id", &lead)?;
    if params.from.is_some() || params.to.is_some() {
        return Err(Problem::bad_request(
            "from",
            "a lead's audit is the whole history of the lead; `from` and `to` are for actor audits",
        ));
    }
    let q = LeadAuditQuery {
        lead,
        as_of: None,
        at_least: params.at_least,
        paging: Paging::bounded(params.after.map(Position), params.limit)?,
    };
    Ok(Json(reports::lead_audit(state.reads(), &caller, q).await?))
}

/// `GET /leads/{id}?at_least=`: the lead's whole current record and its timeline, for callers who
/// may read its office.
pub async fn lead_record(
    State(state): State<AppState>,
    caller: Caller,
    Path(lead): Path<String>,
    Q(params): Q<RecordParams>,
) -> Result<Json<LeadRecord>, Problem> {
    let lead: LeadId = path_id("lead id", &lead)?;
    let as_of = as_of(params.as_of.as_deref())?;
    Ok(Json(
        record::lead_record(state.reads(), &caller, lead, params.at_least, as_of).await?,
    ))
}

/// The parameters of a lead's record: wait for a position, and the moment to show it as of.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordParams {
    pub at_least: Option<u64>,
    pub as_of: Option<String>,
}

/// `GET /staff/{id}?at_least=`: a member of staff (id or exact name), the leads they own, and for
/// those who may read their work their open tasks and latest touches.
pub async fn staff_record(
    State(state): State<AppState>,
    caller: Caller,
    Path(staff): Path<String>,
    Q(params): Q<AtLeast>,
) -> Result<Json<StaffRecord>, Problem> {
    Ok(Json(
        record::staff_record(state.reads(), &caller, &staff, params.at_least).await?,
    ))
}

/// The one parameter of a record: wait for a position.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtLeast {
    pub at_least: Option<u64>,
}

/// `GET /pipeline?office=&as_of=`: the pipeline and funnel of the offices the caller may read.
pub async fn pipeline(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Q(params): Q<ReadParams>,
) -> Result<axum::response::Response, Problem> {
    let q = ReportQuery {
        as_of: as_of(params.as_of.as_deref())?,
        office: params.office,
        at_least: params.at_least,
    };
    let report = reports::pipeline(state.reads(), &caller, q).await?;
    shared_json(&headers, &report).await
}

/// `GET /audit/conflicts?office=`: duplicates, conflicts, refused touches, reassignments.
pub async fn conflicts(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<ReadParams>,
) -> Result<Json<ConflictsReport>, Problem> {
    no_as_of(&params)?;
    let q = ReportQuery {
        office: params.office,
        as_of: None,
        at_least: params.at_least,
    };
    Ok(Json(reports::conflicts(state.reads(), &caller, q).await?))
}

/// `GET /audit/plans?office=`: visit plans on time, late or missing per engineer.
pub async fn plans(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<ReadParams>,
) -> Result<Json<PlansReport>, Problem> {
    no_as_of(&params)?;
    let q = ReportQuery {
        office: params.office,
        as_of: None,
        at_least: params.at_least,
    };
    Ok(Json(reports::plans(state.reads(), &caller, q).await?))
}

/// Query parameters of `/events`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Events after this position (0: from the start).
    pub after: Option<u64>,
    /// At most this many events scanned per page (1 to 1000, 100 by default).
    pub limit: Option<usize>,
}

/// Query of `GET /tasks`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TasksParams {
    pub at_least: Option<u64>,
    /// Tasks after this cursor (the previous page's `next`).
    pub after: Option<String>,
    /// Tasks per page, 1 to 1000 (100 by default).
    pub limit: Option<usize>,
    /// Whose tasks (id or name); the caller's own when absent.
    pub staff: Option<String>,
}

/// `GET /tasks?staff=`: open tasks a member of staff must act on (assigned to them, or to their
/// role in their office), oldest first, from the sagas.
pub async fn tasks(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<TasksParams>,
) -> Result<Json<TaskList>, Problem> {
    let q = TasksQuery {
        paging: Paging::bounded(params.after, params.limit)?,
        staff: params.staff,
        at_least: params.at_least,
    };
    Ok(Json(work::tasks(state.reads(), &caller, q).await?))
}

/// `GET /audit/actor/{staff}?from=&to=&after=&limit=`: every lead a member of staff changed or
/// tried to change, when and with what, in log order, a page at a time.
pub async fn actor_audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(staff): Path<String>,
    Q(params): Q<TouchParams>,
) -> Result<Json<ActorAudit>, Problem> {
    let q = ActorAuditQuery {
        paging: Paging::bounded(params.after.map(Position), params.limit)?,
        staff,
        from: params.from,
        to: params.to,
        as_of: None,
        at_least: params.at_least,
    };
    Ok(Json(reports::actor_audit(state.reads(), &caller, q).await?))
}

/// `GET /events?after=&limit=`: the raw log, one page at a time; office roles see their office's
/// events only. `next` is the cursor of the following page, `null` at the head.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<EventsParams>,
) -> Result<Json<EventPage>, Problem> {
    let paging = Paging::bounded(params.after.map(Position), params.limit)?;
    Ok(Json(log::events(state.reads(), &caller, paging).await?))
}

/// `GET /projections`: each read model's version, checkpoint, lag and parked events.
pub async fn projections(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<ProjectionsReport>, Problem> {
    Ok(Json(log::projections(state.reads()).await?))
}

/// `GET /verify`: the auditor's walk of the log, its hash chain and the signed checkpoints of its
/// head (the last walk when neither the log nor the checkpoints changed since, unless `again`).
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Q(q): Q<VerifyParams>,
) -> Result<Json<funnel_app::chain::VerifyReport>, Problem> {
    Ok(Json(
        funnel_app::chain::verify_for(
            state.chain(),
            state.store().as_ref(),
            &caller,
            q.again.unwrap_or(false),
        )
        .await?,
    ))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    /// Walk again even if neither the head nor the checkpoints moved since the last walk.
    again: Option<bool>,
}

/// `POST /projections/{name}/rebuild`: build a read model afresh from position zero beside its
/// live state, which keeps serving until the fresh one has caught up (the sales department and
/// executives; 202 with the read models' status).
pub async fn rebuild_projection(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: crate::extract::RawBody,
) -> Result<(StatusCode, Json<ProjectionsReport>), Problem> {
    body.json::<crate::dto::Empty>()?;
    if !matches!(caller.role, Role::SalesDepartment | Role::Executive) {
        return Err(Problem::forbidden(
            RefusalCode::RoleNotPermitted,
            format!(
                "a {} may not rebuild read models; this needs: sales_department or executive",
                caller.role
            ),
            format!(
                "{}不能重建读模型，需要销售部或公司领导",
                caller.role.label_zh()
            ),
        ));
    }
    let status = {
        let mut runner = state.runner().write().await;
        runner.rebuild(&name).map_err(|e| match e {
            funnel_projections::RunnerError::Unknown(_) => {
                let known: Vec<&str> = runner.status().into_iter().map(|s| s.name).collect();
                Problem::not_found(
                    "projection.not_found",
                    format!("no read model `{name}`; known: {}", known.join(", ")),
                    format!("没有读模型 `{name}`"),
                )
            }
            other => Problem::internal(other),
        })?;
        runner.status()
    };
    tracing::info!(projection = %name, staff = %caller.staff_id, "read model rebuild requested");
    let head = state.store().head().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ProjectionsReport {
            head,
            projections: status,
        }),
    ))
}

/// Query of `GET /leads`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadsParams {
    /// Text in the customer, project or a contact's name (width, spacing, punctuation and
    /// look-alike letters do not count), or digits of a contact's phone.
    pub q: Option<String>,
    /// One office, by id, code (any case) or exact name; the caller's scope when absent.
    pub office: Option<String>,
    /// The owning engineer, by id or exact name.
    pub owner: Option<String>,
    pub stage: Option<Stage>,
    pub tier: Option<Tier>,
    pub channel: Option<Channel>,
    pub purchase_mode: Option<PurchaseMode>,
    /// `true`: only ageing leads (open, more than 30 days without a visit); `false`: the others.
    pub ageing: Option<bool>,
    pub sort: Option<LeadSortKey>,
    pub order: Option<SortOrder>,
    /// Leads per page, 1 to 500 (50 by default).
    pub limit: Option<usize>,
    /// Leads skipped (the previous page's `next_offset`).
    pub offset: Option<u64>,
    /// The page after the previous page's `next_after` cursor.
    pub after: Option<String>,
    pub at_least: Option<u64>,
}

/// `GET /leads`: finds leads in the persisted lead index, by text and filters, sorted and a page
/// at a time, among those the caller may read.
pub async fn leads(
    State(state): State<AppState>,
    caller: Caller,
    Q(p): Q<LeadsParams>,
) -> Result<Json<LeadList>, Problem> {
    let q = LeadQuery {
        text: p.q,
        office: p.office,
        owner: p.owner,
        stage: p.stage,
        tier: p.tier,
        channel: p.channel,
        purchase_mode: p.purchase_mode,
        ageing: p.ageing,
        sort: p.sort.unwrap_or_default(),
        order: p.order.unwrap_or_default(),
        limit: p.limit,
        offset: p.offset,
        after: p.after,
        at_least: p.at_least,
    };
    Ok(Json(leads::search(state.reads(), &caller, q).await?))
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;
    use axum::http::{HeaderMap, HeaderValue, header};

    fn accepts(values: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        accepts_gzip(&h)
    }

    #[test]
    fn gzip_is_sent_only_to_a_client_that_weighs_it_above_zero() {
        assert!(accepts(&["gzip, deflate, br"]));
        assert!(accepts(&["br;q=1.0, GZIP;q=0.5"]));
        assert!(accepts(&["x-gzip"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["deflate", "gzip"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip; q=0.000, *"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["gzipped"]));
    }
}
