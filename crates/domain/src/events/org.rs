//! Offices and staff (process §1): every permission decision is derived from these events.

use funnel_types::{OfficeId, Role, StaffId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OfficeOpened {
    pub office_id: OfficeId,
    pub name: String,
    /// Short code, e.g. `SH`.
    pub code: String,
    /// IANA time zone of the office's deadlines, e.g. `Asia/Shanghai`.
    pub timezone: String,
    pub region: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffJoined {
    pub staff_id: StaffId,
    pub name: String,
    pub role: Role,
    /// The office; `null` for headquarters roles.
    pub office: Option<OfficeId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffRoleChanged {
    pub staff_id: StaffId,
    pub from: Role,
    pub to: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffMovedOffice {
    pub staff_id: StaffId,
    pub from: Option<OfficeId>,
    pub to: Option<OfficeId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffLeft {
    pub staff_id: StaffId,
    pub reason: String,
}

/// An API bearer token was issued to a member of staff. Only the SHA-256 hash of the token is
/// recorded; the token itself is shown once to whoever issued it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffTokenIssued {
    pub staff_id: StaffId,
    /// Names the token for listing and revocation; not a secret.
    pub token_id: uuid::Uuid,
    /// Lower-case hex SHA-256 of the token's text.
    pub token_hash: String,
}

/// An API bearer token was revoked; requests carrying it are refused from then on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffTokenRevoked {
    pub staff_id: StaffId,
    pub token_id: uuid::Uuid,
}

/// Headquarters published (or corrected) the working calendar of a year, as China's official
/// schedule sets it: public holidays that fall on weekdays, and weekend days worked in exchange
/// (调休). Every other weekday is a working day, every other weekend day is not. A later
/// publication for the same year replaces the earlier one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarPublished {
    pub year: i32,
    /// Weekdays off, in order.
    pub holidays: Vec<chrono::NaiveDate>,
    /// Saturdays and Sundays worked, in order.
    pub workdays: Vec<chrono::NaiveDate>,
    /// Where the schedule comes from, e.g. the State Council notice.
    pub note: String,
}

/// How a member of staff proved who they are when a session began.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignInMethod {
    /// With one of their API tokens.
    Token,
    /// With their password.
    Password,
    /// Through the company's OpenID Connect provider, as the identity linked to them.
    Oidc,
}

/// A member of staff signed in from a browser: a session began. Only the SHA-256 of the session's
/// secret (the value of its cookie) is recorded, as for tokens; the secret is sent once, in the
/// cookie.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffSessionStarted {
    pub staff_id: StaffId,
    /// Names the session for signing out; not a secret.
    pub session_id: uuid::Uuid,
    /// Lower-case hex SHA-256 of the session's secret.
    pub secret_hash: String,
    pub method: SignInMethod,
    /// The session ends at this moment however it is used (absolute expiry).
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The session ends after this many minutes without use (idle expiry); use is recorded by
    /// `staff.session_renewed`.
    pub idle_minutes: u32,
}

/// A session was used: its idle expiry counts again from this event's time. Recorded at most a few
/// times per idle period, not per request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffSessionRenewed {
    pub staff_id: StaffId,
    pub session_id: uuid::Uuid,
}

/// Sessions ended: the person signed out of one (`everywhere` false) or of every session they had
/// open (`everywhere` true). Requests carrying their cookies are refused from then on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffSessionsEnded {
    pub staff_id: StaffId,
    pub sessions: Vec<uuid::Uuid>,
    pub everywhere: bool,
}

/// Headquarters invited a member of staff to set a password: a one-time link whose secret only
/// the link carries; the log records its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffInvited {
    pub staff_id: StaffId,
    /// Names the invitation; not a secret.
    pub invitation_id: uuid::Uuid,
    /// Lower-case hex SHA-256 of the invitation's secret.
    pub secret_hash: String,
    /// The link works until this moment.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The person accepted an invitation and set their password. The password's hash is kept apart
/// from the log (in the credential store), never in an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffInvitationAccepted {
    pub staff_id: StaffId,
    pub invitation_id: uuid::Uuid,
}

/// The person accepted an invitation by signing in through the company's OpenID Connect
/// provider: from now on that provider's identity (`issuer`, `subject`: the ID token's `iss` and
/// `sub`) signs them in. It replaces an identity linked before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffOidcLinked {
    pub staff_id: StaffId,
    pub invitation_id: uuid::Uuid,
    /// The provider's issuer identifier, exactly as its ID tokens carry it.
    pub issuer: String,
    /// The person's subject identifier at that provider (stable, never reassigned).
    pub subject: String,
}

/// Password sign-in was locked after repeated failures; it opens again at `until` or when
/// headquarters unlocks it. Recorded once per lock, however many attempts follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffSignInLocked {
    pub staff_id: StaffId,
    /// Failed attempts counted in the window that led to the lock.
    pub failures: u32,
    pub until: chrono::DateTime<chrono::Utc>,
}

/// A member of staff's mobile phone number was recorded, changed or removed (`None`): the number
/// chat robots @-mention them by when a task opens for them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffPhoneChanged {
    pub staff_id: StaffId,
    /// Digits only, e.g. `13800138000` (a mainland mobile number); absent when removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// Headquarters unlocked password sign-in before the lock ran out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffSignInUnlocked {
    pub staff_id: StaffId,
}
