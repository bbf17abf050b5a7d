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
use crate::extract::Q;
use crate::problem::Problem;
use crate::routes::read::{resolve_optional_office, with_model};
use crate::routes::write::{Prepared, StaffPath};
use axum::Json;
use axum::extract::{Path, State};
use funnel_app::Paging;
use funnel_app::query::org::{CalendarYear, OfficeList, StaffPage, StaffQuery};
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_domain::{Refusal, RefusalCode};
use funnel_engine::Command;
use funnel_types::{CommandId, Position, Role, StaffId};
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

/// `POST /staff/{id}/phone`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPhone {
    /// A mainland mobile number written any common way (`138 0013 8000`, `+86 13800138000`);
    /// absent or null removes it.
    #[serde(default)]
    pub phone: Option<String>,
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

pub(crate) fn year_param(text: &str) -> Result<i32, Problem> {
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

/// `POST /offices`: an office whose id is derived from its code; a code another office has (in any
/// case) is refused before the command runs.
pub(crate) async fn open_office(
    state: AppState,
    _: (),
    b: OpenOffice,
    _: CommandId,
) -> Result<Prepared, Problem> {
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
    Ok(Command::Office {
        office_id,
        cmd: OfficeCommand::Open {
            office_id,
            name: b.name,
            code: b.code,
            timezone: b.timezone,
            region: b.region,
        },
    }
    .into())
}

/// `POST /staff`: the new member's id is derived from the command id.
pub(crate) async fn add_staff(
    state: AppState,
    _: (),
    b: AddStaff,
    id: CommandId,
) -> Result<Prepared, Problem> {
    let office = resolve_optional_office(&state, b.office.as_deref()).await?;
    let staff_id = StaffId::derived(&id.to_string());
    Ok(Command::Staff {
        staff_id,
        cmd: StaffCommand::Join {
            staff_id,
            name: b.name,
            role: b.role,
            office,
        },
    }
    .into())
}

/// `POST /staff/{id}/reassign`.
pub(crate) async fn reassign_staff(
    state: AppState,
    StaffPath(staff_id): StaffPath,
    b: ReassignStaff,
    _: CommandId,
) -> Result<Prepared, Problem> {
    let office = resolve_optional_office(&state, b.office.as_deref()).await?;
    Ok(Command::Staff {
        staff_id,
        cmd: StaffCommand::Reassign {
            role: b.role,
            office,
        },
    }
    .into())
}

/// `POST /staff/{id}/tokens`: a new token, whose id is derived from the command id; only its hash
/// goes into the command.
pub(crate) async fn issue_token(
    _: AppState,
    StaffPath(staff_id): StaffPath,
    _: crate::dto::Empty,
    id: CommandId,
) -> Result<Prepared, Problem> {
    let (token, token_hash) = crate::auth::new_token();
    let token_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, id.0.as_bytes());
    Ok(Prepared {
        cmd: Command::Staff {
            staff_id,
            cmd: StaffCommand::IssueToken {
                token_id,
                token_hash,
            },
        },
        token: Some(token),
    })
}
