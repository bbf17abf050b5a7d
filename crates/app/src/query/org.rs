//! The organisation: who is asking, the offices, the members of staff and the working calendar.

use crate::auth::{Access, Caller};
use crate::error::AppError;
use crate::reads::{Paging, Reads, page};
use chrono::{DateTime, NaiveDate, Utc};
use funnel_types::{Actor, OfficeId, Position, Role, StaffId};
use schemars::JsonSchema;
use serde::Serialize;

/// Who the credential belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Me {
    pub staff_id: StaffId,
    pub name: String,
    pub role: Role,
    pub office: Option<OfficeId>,
    /// Whether they read every office (headquarters roles and auditors).
    pub reads_all_offices: bool,
}

/// Who the caller is.
pub fn me(caller: &Caller) -> Me {
    Me {
        staff_id: caller.staff_id,
        name: caller.name.clone(),
        role: caller.role,
        office: caller.office,
        reads_all_offices: caller.reads_all(),
    }
}

/// An office with its code, time zone, region and active staff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OfficeRow {
    pub id: OfficeId,
    /// Short code, unique in any case (`SH`).
    pub code: String,
    pub name: String,
    /// IANA time zone of the office's deadlines.
    pub timezone: String,
    pub region: String,
    /// Members of staff of the office who have not left.
    pub active_staff: u64,
}

/// Every office.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OfficeList {
    pub offices: Vec<OfficeRow>,
}

/// Every office (anyone signed in reads the list), once the read models reflect `at_least`.
pub async fn offices(reads: &Reads, at_least: Option<u64>) -> Result<OfficeList, AppError> {
    reads.wait_for(at_least).await?;
    reads
        .with_model(|access: &Access, _| OfficeList {
            offices: access
                .offices
                .keys()
                .filter_map(|id| access.office_row(*id))
                .collect(),
        })
        .await
}

/// An API token as staff lists show it: never the token, only its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TokenRow {
    pub token_id: uuid::Uuid,
    pub revoked: bool,
    /// Who issued it.
    pub issued_by: Option<Actor>,
}

/// A member of staff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct StaffRow {
    pub id: StaffId,
    pub name: String,
    pub role: Role,
    pub office: Option<OfficeId>,
    /// False once they have left.
    pub active: bool,
    /// Their tokens: listed for headquarters roles, auditors and the caller's own entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<TokenRow>>,
}

/// A page of members of staff, in id order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct StaffPage {
    pub staff: Vec<StaffRow>,
    /// The `after` of the next page; `null` on the last.
    pub next: Option<StaffId>,
}

/// Which members of staff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffQuery {
    /// One office, by id, code (any case) or exact name; the caller's scope when absent.
    pub office: Option<String>,
    pub at_least: Option<u64>,
    pub paging: Paging<StaffId>,
}

/// The members of staff the caller may see.
pub async fn staff(reads: &Reads, caller: &Caller, q: StaffQuery) -> Result<StaffPage, AppError> {
    let asked = reads.optional_office(q.office.as_deref()).await?;
    let scope = caller.scope(asked)?;
    reads.wait_for(q.at_least).await?;
    reads
        .with_model(|access: &Access, _| staff_page(access, caller, scope, &q.paging))
        .await
}

/// A page of the members of staff of `scope` (every office for `None`) in id order, as `caller`
/// sees them (tokens for headquarters roles, auditors and the caller's own entry). The command
/// line lists with it as the local operator, from the same access model.
pub fn staff_page(
    access: &Access,
    caller: &Caller,
    scope: Option<OfficeId>,
    paging: &Paging<StaffId>,
) -> StaffPage {
    let in_scope = access.staff.iter().filter(|(_, s)| match scope {
        Some(o) => s.office == Some(o),
        None => true,
    });
    let (rows, next) = page(
        in_scope,
        |(id, _)| **id,
        paging.after.as_ref(),
        paging.limit,
    );
    let staff = rows
        .into_iter()
        .map(|(id, s)| StaffRow {
            id: *id,
            name: s.name.clone(),
            role: s.role,
            office: s.office,
            active: s.active,
            tokens: (caller.reads_all() || *id == caller.staff_id).then(|| {
                access
                    .tokens
                    .values()
                    .filter(|t| t.staff_id == *id)
                    .map(|t| TokenRow {
                        token_id: t.token_id,
                        revoked: t.revoked,
                        issued_by: t.issued_by.clone(),
                    })
                    .collect()
            }),
        })
        .collect();
    StaffPage { staff, next }
}

/// A year's working calendar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CalendarYear {
    pub year: i32,
    /// False when none is published: then Monday to Friday are working days.
    pub published: bool,
    /// Weekdays off (public holidays).
    pub holidays: Vec<NaiveDate>,
    /// Weekend days worked in exchange (调休).
    pub workdays: Vec<NaiveDate>,
    /// Where the schedule comes from.
    pub note: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_by: Option<Actor>,
    /// Publications of the year so far (0: none).
    pub version: u64,
}

/// A year from its text: 0 to 9999.
pub fn year(text: &str) -> Result<i32, AppError> {
    text.parse::<i32>()
        .ok()
        .filter(|y| (0..=9999).contains(y))
        .ok_or_else(|| AppError::bad_request("year", format!("`{text}` is not a year")))
}

/// The year's published holidays and make-up working days (anyone signed in reads it).
pub async fn calendar(reads: &Reads, year: i32) -> Result<CalendarYear, AppError> {
    let stream = funnel_types::StreamId::new("calendar", year).map_err(AppError::internal)?;
    let records = funnel_store::read_whole_stream(reads.store().as_ref(), &stream).await?;
    let mut published = None;
    for rec in &records {
        if let funnel_domain::Event::CalendarPublished(e) =
            funnel_codec::decode_recorded(rec)?.payload
        {
            published = Some((e, rec.meta.occurred_at, rec.meta.actor.clone()));
        }
    }
    Ok(match published {
        Some((e, at, actor)) => CalendarYear {
            year,
            published: true,
            holidays: e.holidays,
            workdays: e.workdays,
            note: e.note,
            published_at: Some(at),
            published_by: Some(actor),
            version: records.len() as u64,
        },
        None => CalendarYear {
            year,
            published: false,
            holidays: Vec::new(),
            workdays: Vec::new(),
            note: String::new(),
            published_at: None,
            published_by: None,
            version: 0,
        },
    })
}

/// A browser session, as `POST /session` (sign in) and `GET /session` (who am I) answer it. The
/// session's secret is never in an answer: it travels only in the `funnel_session` cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SessionAnswer {
    /// The person the session acts as (the same as their token would).
    pub me: Me,
    /// Names the session (not a secret).
    pub session_id: uuid::Uuid,
    /// How they signed in.
    pub method: funnel_domain::events::SignInMethod,
    /// Send this as `X-CSRF-Token` with every `POST`, `PUT`, `PATCH` or `DELETE` the session cookie
    /// authenticates (it is also in the `funnel_csrf` cookie).
    pub csrf_token: String,
    /// When they signed in, on their office's clock (headquarters' for headquarters roles).
    pub started_at: DateTime<chrono::FixedOffset>,
    /// The session ends at this moment however it is used.
    pub expires_at: DateTime<chrono::FixedOffset>,
    /// It ends after this many minutes without a request.
    pub idle_minutes: u32,
    /// The log position of the sign-in.
    pub position: Position,
}

/// `DELETE /session` and `POST /session/revoke-all` answer how many sessions they ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SignedOut {
    /// Sessions ended by this request (0 when none was open).
    pub ended: u64,
    /// The log position of `staff.sessions_ended`, when sessions ended.
    pub position: Option<Position>,
    /// Where to send the browser to sign out at the company's sign-in service as well: present when
    /// the session ended was begun through OpenID Connect and the provider publishes an
    /// end-session endpoint (RP-initiated logout). The provider then sends the browser back to
    /// this server's sign-in page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_sign_out: Option<String>,
}

/// `POST /staff/{id}/invitation` answers the one-time link, once: only its hash is recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct InvitationAnswer {
    pub staff_id: StaffId,
    pub invitation_id: uuid::Uuid,
    /// The invitation's secret. Shown in this answer only.
    pub token: String,
    /// The path that accepts it (`POST` with the new password); the console's invitation page
    /// takes the same token.
    pub accept_path: String,
    /// The link works until then, on the invited person's office's clock.
    pub expires_at: DateTime<chrono::FixedOffset>,
    pub position: Position,
}

/// A change to a member of staff's sign-in (an invitation accepted, sign-in unlocked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SignInChanged {
    pub staff_id: StaffId,
    pub name: String,
    pub position: Position,
}
