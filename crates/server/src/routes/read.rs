//! Queries over the read models the runner keeps, scoped to what the caller may read: office roles
//! see their own office, headquarters roles and auditors every office. Each accepts
//! `at_least=POSITION` to wait until the read models reflect a write (read-your-writes).

use crate::AppState;
use crate::auth::{Access, Caller, StaffEntry};
use crate::extract::{Q, path_id};
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use funnel_domain::RefusalCode;
use funnel_projections::models::{Conflicts, Pipeline, PlanCompliance, Touches};
use funnel_projections::{AsOf, AsOfInput, ReadModel};
use funnel_store::Filter;
use funnel_types::{LeadId, OfficeId, Position, Role, StaffId};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Query parameters every read takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    pub at_least: Option<u64>,
    /// An office by id, code (any case) or exact name.
    pub office: Option<String>,
    pub as_of: Option<String>,
}

/// The log head, refusing a position the caller names beyond it.
pub(crate) async fn not_beyond_head(state: &AppState, p: Position) -> Result<Position, Problem> {
    let head = state.store().head().await?;
    if p > head {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.beyond_head",
            format!("position {p} is beyond the log head {head}"),
            format!("位置 {p} 超出日志末尾 {head}"),
        ));
    }
    Ok(head)
}

/// Waits until the read models reflect `at_least`; a position beyond the log head is refused.
pub(crate) async fn wait_for(state: &AppState, at_least: Option<u64>) -> Result<(), Problem> {
    let Some(p) = at_least.map(Position) else {
        return Ok(());
    };
    not_beyond_head(state, p).await?;
    let wait = Duration::from_millis(state.options().http.read_wait_ms);
    funnel_projections::wait_until_shared(state.runner(), p, wait)
        .await
        .map_err(|e| {
            Problem::unavailable(
                format!("the read models have not reached position {p} yet: {e}"),
                format!("读模型尚未到达位置 {p}"),
            )
        })
}

/// The office a query names by id, code (any case) or exact name.
pub(crate) async fn resolve_office(state: &AppState, text: &str) -> Result<OfficeId, Problem> {
    let r = state.runner().read().await;
    let found = r
        .get::<Access>()
        .and_then(|a| a.find_office(text))
        .or_else(|| r.get::<Pipeline>().and_then(|p| p.find_office(text.trim())));
    if let Some(id) = found {
        return Ok(id);
    }
    // An id of an office the read models have not seen yet is still an office id.
    text.trim().parse::<OfficeId>().map_err(|_| {
        Problem::not_found(
            "office.not_found",
            format!("no office `{text}` (give its id, code or name)"),
            format!("没有办事处 `{text}`（请给出其编号、代码或名称）"),
        )
    })
}

/// The office a request names, if it names one.
pub(crate) async fn resolve_optional_office(
    state: &AppState,
    text: Option<&str>,
) -> Result<Option<OfficeId>, Problem> {
    match text {
        Some(text) => resolve_office(state, text).await.map(Some),
        None => Ok(None),
    }
}

/// The time zone of `office` as the access model knows it; headquarters' for none.
pub(crate) async fn office_zone(
    state: &AppState,
    office: Option<OfficeId>,
) -> Result<chrono_tz::Tz, Problem> {
    with_model(state, |access: &Access, _| {
        let entry = office.and_then(|o| access.offices.get(&o));
        funnel_domain::time::zone(entry.map(|o| o.timezone.as_str()))
    })
    .await
}

/// The office of the query's `office=`, if given.
async fn office_param(state: &AppState, params: &ReadParams) -> Result<Option<OfficeId>, Problem> {
    resolve_optional_office(state, params.office.as_deref()).await
}

/// One page of `items`, which come sorted by `key`: those after the cursor `after`, at most
/// `limit` of them, and the cursor of the next page when more follow (`None` on the last page).
pub(crate) fn page<T, K: Ord>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
    after: Option<&K>,
    limit: usize,
) -> (Vec<T>, Option<K>) {
    let mut rest = items
        .into_iter()
        .filter(|t| after.is_none_or(|a| key(t) > *a))
        .peekable();
    let mut out = Vec::new();
    while out.len() < limit {
        match rest.next() {
            Some(t) => out.push(t),
            None => break,
        }
    }
    let next = rest.peek().and(out.last()).map(&key);
    (out, next)
}

/// A page size: `limit` (100 when absent), refused outside 1 to 1000.
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, Problem> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request(
            "limit",
            "it must be between 1 and 1000",
        ));
    }
    Ok(limit)
}

/// Runs `f` on a read model's current state and the position it reflects, under the read lock and
/// without copying the state; 503 while the model is being rebuilt from an unreadable snapshot.
pub(crate) async fn with_model<M: ReadModel, T>(
    state: &AppState,
    f: impl FnOnce(&M, Position) -> T,
) -> Result<T, Problem> {
    let r = state.runner().read().await;
    let m = r.get::<M>().ok_or_else(|| {
        Problem::unavailable(
            format!("the {} read model is being rebuilt", M::NAME),
            format!("读模型 {} 正在重建", M::NAME),
        )
    })?;
    Ok(f(m, r.live_checkpoint()))
}

/// A read model's current state, cloned out under the read lock.
async fn model<M: ReadModel>(state: &AppState) -> Result<(M, Position), Problem> {
    with_model(state, |m: &M, p| (m.clone(), p)).await
}

/// `GET /me`: who the token belongs to.
pub async fn me(caller: Caller) -> Json<Value> {
    Json(json!({
        "staff_id": caller.staff_id,
        "name": caller.name,
        "role": caller.role,
        "office": caller.office,
        "reads_all_offices": caller.reads_all(),
    }))
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
) -> Result<Json<Value>, Problem> {
    let lead: LeadId = path_id("lead id", &lead)?;
    if params.from.is_some() || params.to.is_some() {
        return Err(Problem::bad_request(
            "from",
            "a lead's audit is the whole history of the lead; `from` and `to` are for actor audits",
        ));
    }
    let limit = page_limit(params.limit)?;
    wait_for(&state, params.at_least).await?;
    let r = state.runner().read().await;
    let office = r
        .get::<Pipeline>()
        .and_then(|p| p.leads.get(&lead).map(|l| l.office))
        .ok_or_else(|| {
            Problem::not_found(
                "lead.not_found",
                format!("no lead {lead} is on record"),
                format!("没有线索 {lead} 的记录"),
            )
        })?;
    caller.check_read(office)?;
    let mut next = None;
    let touches = r.get::<Touches>().map(|t| {
        let (rows, more) = page(
            t.lead(lead),
            |x| x.position,
            params.after.map(Position).as_ref(),
            limit,
        );
        next = more;
        rows.iter()
            .map(|x| {
                json!({
                    "position": x.position, "at": x.at, "actor": x.actor,
                    "actor_name": t.name(&x.actor), "action": x.action, "refused": x.refused,
                })
            })
            .collect::<Vec<_>>()
    });
    Ok(Json(json!({
        "lead_id": lead,
        "office": office,
        "position": r.live_checkpoint(),
        "touches": touches.unwrap_or_default(),
        "next": next,
    })))
}

/// What an as-of answer depends on: the log head it was computed at and the moment.
type ReplayKey = (Position, AsOf);

/// As-of replays of the pipeline: each reads the whole log, so at most `http.max_replays` run at
/// once (one more is refused `503` with `Retry-After`), and the last `http.replay_cache` results
/// are kept by (log head, moment) — the same question at the same head is answered from memory.
#[derive(Debug)]
pub struct Replays {
    running: Arc<tokio::sync::Semaphore>,
    cache: std::sync::Mutex<std::collections::VecDeque<(ReplayKey, Arc<Pipeline>)>>,
    capacity: usize,
}

impl Replays {
    pub fn new(max_running: usize, capacity: usize) -> Self {
        Self {
            running: Arc::new(tokio::sync::Semaphore::new(max_running)),
            cache: Default::default(),
            capacity,
        }
    }

    /// A slot to replay in, if one is free (held until dropped).
    pub fn try_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.running.clone().try_acquire_owned().ok()
    }

    /// How many results are kept.
    pub fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn lookup(&self, key: &ReplayKey) -> Option<Arc<Pipeline>> {
        let cache = self.cache.lock().ok()?;
        cache.iter().find(|(k, _)| k == key).map(|(_, m)| m.clone())
    }

    fn keep(&self, key: ReplayKey, model: Arc<Pipeline>) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.iter().any(|(k, _)| *k == key) {
                return;
            }
            while cache.len() >= self.capacity {
                cache.pop_front();
            }
            cache.push_back((key, model));
        }
    }

    /// The pipeline as of `as_of`, from the cache or replayed within the limit.
    pub async fn pipeline(
        &self,
        store: &dyn funnel_store::EventStore,
        as_of: AsOf,
    ) -> Result<Arc<Pipeline>, Problem> {
        let head = store.head().await?;
        let key = (head, as_of);
        if let Some(m) = self.lookup(&key) {
            return Ok(m);
        }
        let Some(_slot) = self.try_slot() else {
            return Err(Problem::unavailable(
                "too many as-of reports are being computed; try again shortly",
                "正在计算的历史报表过多，请稍后重试",
            ));
        };
        let (m, _) = funnel_projections::replay_as_of_until::<Pipeline>(store, as_of, head).await?;
        let m = Arc::new(m);
        self.keep(key, m.clone());
        Ok(m)
    }
}

/// `GET /pipeline?office=&as_of=`: the pipeline and funnel of the offices the caller may read.
pub async fn pipeline(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<ReadParams>,
) -> Result<Json<Value>, Problem> {
    let scope = caller.scope(office_param(&state, &params).await?)?;
    // Dates are read in the office's zone, or the caller's office's for every office.
    let zone = office_zone(&state, scope.or(caller.office)).await?;
    let (pipeline, position, as_of) = match params.as_of.as_deref() {
        Some(text) => {
            let as_of = text
                .parse::<AsOfInput>()
                .map_err(|e: String| Problem::bad_request("as_of", e))?
                .resolve(zone);
            let m = state
                .replays()
                .pipeline(state.store().as_ref(), as_of)
                .await?;
            // As of a time, "now" (for days without a visit) is that moment; as of a position,
            // the latest event at or before it.
            let moment = m.as_of.map(|t| t.to_rfc3339());
            (m, None, moment)
        }
        None => {
            wait_for(&state, params.at_least).await?;
            let (m, p) = model::<Pipeline>(&state).await?;
            (Arc::new(m), Some(p), None)
        }
    };
    Ok(Json(json!({
        "position": position,
        "as_of": as_of,
        "time_zone": zone.name(),
        "offices": pipeline.report(scope),
    })))
}

/// `GET /audit/conflicts?office=`: duplicates, conflicts, refused touches, reassignments.
pub async fn conflicts(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<ReadParams>,
) -> Result<Json<Value>, Problem> {
    let scope = caller.scope(office_param(&state, &params).await?)?;
    no_as_of(&params)?;
    wait_for(&state, params.at_least).await?;
    let (c, position) = model::<Conflicts>(&state).await?;
    let keep = |o: &OfficeId| scope.is_none_or(|s| s == *o);
    Ok(Json(json!({
        "position": position,
        "duplicates": c.duplicates.iter().filter(|d| keep(&d.office)).collect::<Vec<_>>(),
        "conflicts": c.conflicts.iter().filter(|(_, x)| keep(&x.office))
            .map(|(id, x)| json!({ "conflict_id": id, "case": x })).collect::<Vec<_>>(),
        "refused_touches": c.refused_touches.iter().filter(|t| keep(&t.office)).collect::<Vec<_>>(),
        "reassignments": c.reassignments.iter().filter(|(_, x)| keep(&x.office))
            .map(|(id, x)| json!({ "reassignment_id": id, "case": x })).collect::<Vec<_>>(),
        "ownership": c.ownership.iter().filter(|(o, _)| keep(o))
            .map(|(o, x)| json!({ "office": o, "engineers": x.iter()
                .map(|(s, n)| json!({ "staff_id": s, "counts": n })).collect::<Vec<_>>() }))
            .collect::<Vec<_>>(),
    })))
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

/// `GET /audit/plans?office=`: visit plans on time, late or missing per engineer.
pub async fn plans(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<ReadParams>,
) -> Result<Json<Value>, Problem> {
    let scope = caller.scope(office_param(&state, &params).await?)?;
    no_as_of(&params)?;
    wait_for(&state, params.at_least).await?;
    let (p, position) = model::<PlanCompliance>(&state).await?;
    let rows: Vec<_> = p
        .report(scope)
        .into_iter()
        .filter(|r| r.office.is_none_or(|o| caller.may_read(o)))
        .collect();
    Ok(Json(json!({ "position": position, "engineers": rows })))
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
    /// Whose tasks (id or exact name); the caller's own when absent.
    pub staff: Option<String>,
}

/// A member of staff named by id or exact name, from the access model. A name that several people
/// share (former staff included) is refused with their ids rather than guessed.
pub(crate) async fn staff_named(
    state: &AppState,
    text: &str,
) -> Result<(StaffId, StaffEntry), Problem> {
    let text = text.trim();
    let hits: Vec<(StaffId, StaffEntry)> = with_model(state, |access: &Access, _| {
        if let Some((id, s)) = access.staff.iter().find(|(id, _)| id.to_string() == text) {
            return vec![(*id, s.clone())];
        }
        access
            .staff
            .iter()
            .filter(|(_, s)| s.name == text)
            .map(|(id, s)| (*id, s.clone()))
            .collect()
    })
    .await?;
    match <[_; 1]>::try_from(hits) {
        Ok([one]) => Ok(one),
        Err(hits) if hits.is_empty() => Err(Problem::not_found(
            "staff.not_found",
            format!("no member of staff `{text}` (give their id or exact name)"),
            format!("没有员工 `{text}`（请给出编号或全名）"),
        )),
        Err(hits) => {
            let ids: Vec<String> = hits.iter().map(|(id, _)| id.to_string()).collect();
            let ids = ids.join(", ");
            Err(Problem::new(
                StatusCode::CONFLICT,
                "staff.ambiguous_name",
                format!(
                    "{} members of staff are called `{text}` ({ids}); give the id of the one you mean",
                    hits.len()
                ),
                format!(
                    "有 {} 位员工名为 `{text}`（{ids}）；请给出所指员工的编号",
                    hits.len()
                ),
            ))
        }
    }
}

/// May the caller read what `whom` did or must do? Themselves; office managers their office's
/// people; headquarters and auditors everyone.
fn check_person(caller: &Caller, whom: StaffId, entry: &StaffEntry) -> Result<(), Problem> {
    if whom == caller.staff_id || caller.reads_all() {
        return Ok(());
    }
    if caller.role == Role::OfficeManager && entry.office.is_some() && entry.office == caller.office
    {
        return Ok(());
    }
    Err(Problem::forbidden(
        RefusalCode::OtherOffice,
        format!(
            "a {} reads only their own work; office managers read their office's, headquarters and auditors everyone's",
            caller.role
        ),
        format!(
            "{}只能查看本人的记录；办事处经理可查看本办事处，总部与审计可查看所有人",
            caller.role.label_zh()
        ),
    ))
}

/// `GET /tasks?staff=`: open tasks a member of staff must act on (assigned to them, or to their
/// role in their office), oldest first, from the sagas.
pub async fn tasks(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<TasksParams>,
) -> Result<Json<Value>, Problem> {
    let limit = page_limit(params.limit)?;
    wait_for(&state, params.at_least).await?;
    let (whom, entry) = match &params.staff {
        Some(text) => staff_named(&state, text).await?,
        None => staff_named(&state, &caller.staff_id.to_string()).await?,
    };
    check_person(&caller, whom, &entry)?;
    let (tasks, position) = model::<funnel_workflows::Tasks>(&state).await?;
    let info = funnel_domain::StaffInfo {
        id: whom,
        role: entry.role,
        office: entry.office,
        active: entry.active,
    };
    // Oldest first: the cursor is the opening time (microseconds, fixed width) and the task id,
    // which sort as the list does.
    let key = |t: &&funnel_workflows::OpenTaskRow| {
        format!(
            "{:020}~{}",
            t.opened_at.timestamp_micros().max(0),
            t.task_id
        )
    };
    let (rows, next) = page(tasks.for_staff(&info), key, params.after.as_ref(), limit);
    Ok(Json(json!({
        "position": position,
        "staff_id": whom,
        "name": entry.name,
        "tasks": rows,
        "next": next,
    })))
}

/// `GET /audit/actor/{staff}?from=&to=&after=&limit=`: every lead a member of staff changed or
/// tried to change, when and with what, in log order, a page at a time.
pub async fn actor_audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(staff): Path<String>,
    Q(params): Q<TouchParams>,
) -> Result<Json<Value>, Problem> {
    let limit = page_limit(params.limit)?;
    wait_for(&state, params.at_least).await?;
    let (whom, entry) = staff_named(&state, &staff).await?;
    check_person(&caller, whom, &entry)?;
    let zone = office_zone(&state, entry.office).await?;
    let (from, to) = funnel_domain::time::days_between(params.from, params.to, zone);
    let (touches, position) = model::<Touches>(&state).await?;
    let (rows, next) = page(
        touches.actor(&whom.to_string(), from, to),
        |t| t.position,
        params.after.map(Position).as_ref(),
        limit,
    );
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|t| {
            json!({
                "lead_id": t.lead_id, "position": t.position, "at": t.at,
                "action": t.action, "refused": t.refused,
            })
        })
        .collect();
    Ok(Json(json!({
        "position": position,
        "staff_id": whom,
        "name": entry.name,
        "time_zone": zone.name(),
        "touches": rows,
        "next": next,
    })))
}

/// `GET /events?after=&limit=`: the raw log, one page at a time; office roles see their office's
/// events only. `next` is the cursor of the following page, `null` at the head.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<EventsParams>,
) -> Result<Json<Value>, Problem> {
    let limit = page_limit(params.limit)?;
    let after = Position(params.after.unwrap_or(0));
    let page = state.store().read_all(after, &Filter::All, limit).await?;
    let mut out = Vec::with_capacity(page.len());
    for rec in &page {
        let visible =
            caller.reads_all() || (rec.meta.office.is_some() && rec.meta.office == caller.office);
        if !visible {
            continue;
        }
        let env = funnel_codec::decode_recorded(rec).map_err(Problem::internal)?;
        let mut v = serde_json::to_value(&env.meta).map_err(Problem::internal)?;
        v["payload"] = funnel_codec::payload_value(&env.payload);
        out.push(v);
    }
    let next = (page.len() == limit)
        .then(|| page.last().map(|r| r.meta.position))
        .flatten();
    Ok(Json(json!({ "events": out, "next": next })))
}

/// `GET /projections`: each read model's version, checkpoint, lag and parked events.
pub async fn projections(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Value>, Problem> {
    let head = state.store().head().await?;
    let status = state.runner().read().await.status();
    Ok(Json(json!({ "head": head, "projections": status })))
}

/// `POST /projections/{name}/rebuild`: build a read model afresh from position zero beside its
/// live state, which keeps serving until the fresh one has caught up (the sales department and
/// executives; 202 with the read models' status).
pub async fn rebuild_projection(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: crate::extract::RawBody,
) -> Result<(StatusCode, Json<Value>), Problem> {
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
        Json(json!({ "head": head, "projections": status })),
    ))
}
