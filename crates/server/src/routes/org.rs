//! The organisation: offices and staff (process §1), and the working calendar. Anyone signed in
//! lists the offices and reads the calendar; staff lists follow the read scope (office roles their
//! own office, headquarters and auditors everyone). Changes go through the engine like every
//! command, so the domain decides who may make them (the sales department and executives) and the
//! log records them; the answer to an office or staff change comes once this server's read models
//! hold it, so a revoked token already fails and a new role already counts. Ids of what a request
//! creates are derived from its command id, so a retried request creates the same person; an
//! office's id is derived from its code, so two offices cannot share one.

use crate::AppState;
use crate::auth::{Access, Caller};
use crate::extract::{Q, RawBody, path_id, write_id};
use crate::problem::Problem;
use crate::routes::read::{resolve_optional_office, staff_named, with_model};
use crate::routes::write::{WriteResult, execute, run};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use funnel_app::Paging;
use funnel_app::query::org::{CalendarYear, OfficeList, StaffPage, StaffQuery};
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_domain::{Refusal, RefusalCode};
use funnel_engine::Command;
use funnel_types::{Position, Role, StaffId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /offices`: open an office.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenOffice {
    /// Short code, unique in any case (`SH`); the office id is derived from it.
    pub code: String,
    pub name: String,
    /// IANA time zone of the office's deadlines.
    #[serde(default = "shanghai")]
    pub timezone: String,
    #[serde(default)]
    pub region: String,
}

fn shanghai() -> String {
    "Asia/Shanghai".into()
}

/// `POST /staff`: a member of staff joins.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddStaff {
    pub name: String,
    pub role: Role,
    /// The office (id, code or name): required for office roles, absent for headquarters roles.
    #[serde(default)]
    pub office: Option<String>,
}

/// `POST /staff/{id}/reassign`: a new role and office in one step.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignStaff {
    pub role: Role,
    /// The office after the change (id, code or name): required for office roles, absent for
    /// headquarters roles.
    #[serde(default)]
    pub office: Option<String>,
}

/// `POST /staff/{id}/leave`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveStaff {
    #[serde(default)]
    pub reason: String,
}

/// `POST /calendar/{year}`: publish (or correct) a year's working calendar.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishCalendar {
    /// Weekdays off (public holidays), `YYYY-MM-DD`.
    #[serde(default)]
    pub holidays: Vec<chrono::NaiveDate>,
    /// Weekend days worked in exchange (调休), `YYYY-MM-DD`.
    #[serde(default)]
    pub workdays: Vec<chrono::NaiveDate>,
    /// Where the schedule comes from.
    #[serde(default)]
    pub note: String,
}

/// `POST /staff/{id}/tokens` answers the new token, once.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IssuedToken {
    pub staff_id: StaffId,
    pub token_id: uuid::Uuid,
    /// The bearer token. Shown in this answer only; the log keeps its SHA-256.
    pub token: String,
    pub position: Position,
}

/// `GET /staff` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffParams {
    pub at_least: Option<u64>,
    /// An office by id, code (any case) or exact name.
    pub office: Option<String>,
    /// Members of staff after this id (the previous page's `next`).
    pub after: Option<StaffId>,
    /// Members of staff per page, 1 to 1000 (100 by default).
    pub limit: Option<usize>,
}

/// `GET /offices`: every office.
pub async fn list_offices(
    State(state): State<AppState>,
    _caller: Caller,
    Q(params): Q<StaffParams>,
) -> Result<Json<OfficeList>, Problem> {
    if params.office.is_some() || params.after.is_some() || params.limit.is_some() {
        return Err(Problem::bad_request(
            "office",
            "`GET /offices` lists every office at once (only `at_least` applies); `GET /staff?office=` lists one office's staff",
        ));
    }
    Ok(Json(
        funnel_app::query::org::offices(state.reads(), params.at_least).await?,
    ))
}

/// `GET /staff?office=`: the members of staff the caller may see. Token ids (never the tokens),
/// whether they are revoked and who issued them are listed for headquarters roles, auditors and
/// the caller's own entry.
pub async fn list_staff(
    State(state): State<AppState>,
    caller: Caller,
    Q(params): Q<StaffParams>,
) -> Result<Json<StaffPage>, Problem> {
    let q = StaffQuery {
        paging: Paging::bounded(params.after, params.limit)?,
        office: params.office,
        at_least: params.at_least,
    };
    Ok(Json(
        funnel_app::query::org::staff(state.reads(), &caller, q).await?,
    ))
}

fn year_param(text: &str) -> Result<i32, Problem> {
    Ok(funnel_app::query::org::year(text)?)
}

/// `GET /calendar/{year}`: the year's published holidays and make-up working days (none published:
/// Monday to Friday). Everyone signed in reads it.
pub async fn calendar(
    State(state): State<AppState>,
    _caller: Caller,
    Path(year): Path<String>,
) -> Result<Json<CalendarYear>, Problem> {
    let year = year_param(&year)?;
    Ok(Json(
        funnel_app::query::org::calendar(state.reads(), year).await?,
    ))
}

/// `POST /calendar/{year}`: the sales department or an executive publishes the year's calendar.
pub async fn publish_calendar(
    State(state): State<AppState>,
    caller: Caller,
    Path(year): Path<String>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<WriteResult>, Problem> {
    let year = year_param(&year)?;
    let id = write_id(
        &headers,
        &caller,
        &format!("POST /calendar/{year}"),
        &body.0,
    )?;
    let b = body.json::<PublishCalendar>()?;
    let cmd = Command::Calendar {
        cmd: funnel_domain::work_calendar::CalendarCommand::Publish {
            year,
            holidays: b.holidays,
            workdays: b.workdays,
            note: b.note,
        },
    };
    execute(&state, &caller, id, "publish_calendar", cmd).await
}

/// `POST /offices`.
pub async fn open_office(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, Problem> {
    let id = write_id(&headers, &caller, "POST /offices", &body.0)?;
    let b = body.json::<OpenOffice>()?;
    let office_id = funnel_domain::org::office_id_for(&b.code);
    let known = with_model(&state, |access: &Access, _| {
        access.office_with_code(&b.code)
    })
    .await?;
    if let Some(other) = known.filter(|o| *o != office_id) {
        return Err(Problem::refusal(
            &Refusal::new(
                RefusalCode::OfficeExists,
                format!("office {other} already has the code `{}`", b.code.trim()),
                format!("办事处 {other} 已使用代码“{}”", b.code.trim()),
            ),
            None,
        ));
    }
    let cmd = Command::Office {
        office_id,
        cmd: OfficeCommand::Open {
            office_id,
            name: b.name,
            code: b.code,
            timezone: b.timezone,
            region: b.region,
        },
    };
    created(change(&state, &caller, id, "open_office", cmd).await?)
}

/// `POST /staff`.
pub async fn add_staff(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, Problem> {
    let id = write_id(&headers, &caller, "POST /staff", &body.0)?;
    let b = body.json::<AddStaff>()?;
    let office = resolve_optional_office(&state, b.office.as_deref()).await?;
    let staff_id = StaffId::derived(&id.command_id.to_string());
    let cmd = Command::Staff {
        staff_id,
        cmd: StaffCommand::Join {
            staff_id,
            name: b.name,
            role: b.role,
            office,
        },
    };
    created(change(&state, &caller, id, "add_staff", cmd).await?)
}

/// `POST /staff/{id}/{reassign|leave}`.
pub async fn staff_change(
    State(state): State<AppState>,
    caller: Caller,
    Path((staff, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<WriteResult>, Problem> {
    let (staff_id, _) = staff_named(&state, &staff).await?;
    let id = write_id(
        &headers,
        &caller,
        &format!("POST /staff/{staff_id}/{action}"),
        &body.0,
    )?;
    let (name, cmd) = match action.as_str() {
        "reassign" => {
            let b = body.json::<ReassignStaff>()?;
            let office = resolve_optional_office(&state, b.office.as_deref()).await?;
            (
                "reassign_staff",
                StaffCommand::Reassign {
                    role: b.role,
                    office,
                },
            )
        }
        "leave" => (
            "staff_leave",
            StaffCommand::Leave {
                reason: body.json::<LeaveStaff>()?.reason,
            },
        ),
        other => {
            return Err(Problem::not_found(
                "request.unknown_command",
                format!("no staff change `{other}`; known: reassign, leave"),
                format!("没有员工变更 `{other}`"),
            ));
        }
    };
    change(&state, &caller, id, name, Command::Staff { staff_id, cmd }).await
}

/// `POST /staff/{id}/tokens`: issue an API token to a member of staff (shown once).
pub async fn issue_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(staff): Path<String>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, Problem> {
    let (staff_id, _) = staff_named(&state, &staff).await?;
    let id = write_id(
        &headers,
        &caller,
        &format!("POST /staff/{staff_id}/tokens"),
        &body.0,
    )?;
    body.json::<crate::dto::Empty>()?;
    let (token, token_hash) = crate::auth::new_token();
    let token_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, id.command_id.0.as_bytes());
    let cmd = Command::Staff {
        staff_id,
        cmd: StaffCommand::IssueToken {
            token_id,
            token_hash,
        },
    };
    let accepted = run(&state, &caller, id, "issue_token", cmd).await?;
    if accepted.duplicate {
        // Only the token's hash was recorded: its text cannot be answered again.
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "request.already_applied",
            format!(
                "this Idempotency-Key already issued token {token_id}, whose text was shown once; issue another token (and revoke that one if it was lost)"
            ),
            format!(
                "该 Idempotency-Key 已签发令牌 {token_id}（仅显示一次）；请重新签发，如已遗失请吊销原令牌"
            ),
        ));
    }
    settle(&state, accepted.last_position).await;
    let body = IssuedToken {
        staff_id,
        token_id,
        token,
        position: accepted.last_position,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /staff/{id}/tokens/{token_id}`: revoke a token; it stops working at once.
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path((staff, token)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<WriteResult>, Problem> {
    let (staff_id, _) = staff_named(&state, &staff).await?;
    let token_id: uuid::Uuid = path_id("token id", &token)?;
    let id = write_id(
        &headers,
        &caller,
        &format!("DELETE /staff/{staff_id}/tokens/{token_id}"),
        b"",
    )?;
    let cmd = Command::Staff {
        staff_id,
        cmd: StaffCommand::RevokeToken { token_id },
    };
    change(&state, &caller, id, "revoke_token", cmd).await
}

/// Waits (up to the read wait) until this server's read models hold a change to the organisation,
/// so that when the answer arrives a revoked token no longer signs in and a new role already
/// counts. The change is written either way; a timeout only means it takes effect a moment later.
async fn settle(state: &AppState, position: Position) {
    let wait = std::time::Duration::from_millis(state.options().http.read_wait_ms);
    if let Err(e) = funnel_projections::wait_until_shared(state.runner(), position, wait).await {
        tracing::warn!(%position, error = %e, "organisation change not yet in the read models");
    }
}

/// Runs an organisation command, then settles it.
async fn change(
    state: &AppState,
    caller: &Caller,
    id: crate::extract::WriteId,
    name: &str,
    cmd: Command,
) -> Result<Json<WriteResult>, Problem> {
    let result = execute(state, caller, id, name, cmd).await?;
    settle(state, result.position).await;
    Ok(result)
}

fn created(result: Json<WriteResult>) -> Result<Response, Problem> {
    let status = if result.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, result).into_response())
}
