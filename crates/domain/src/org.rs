//! Offices and staff as aggregates (process §1). Only headquarters (sales department, executives)
//! or the system bootstrap change them; every later permission decision replays these events.
//! Duties are separated (see [`decide_staff`]): no one changes their own role or office, only an
//! executive appoints executives and auditors, a token is issued only to its holder or by an
//! executive, and the last executive stays.

use crate::acting::{Ctx, require_role};
use crate::events::*;
use crate::refusal::{Decision, RefusalCode, check, refuse};
use funnel_types::{OfficeId, Role, StaffId};

/// An office's state. `Default` is "no such office". It serializes, so that the engine can keep a
/// snapshot of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OfficeState {
    pub office: Option<OfficeOpened>,
}

impl OfficeState {
    /// The office's time zone; headquarters' ([`crate::DEFAULT_TIME_ZONE`]) when unknown.
    pub fn timezone(&self) -> chrono_tz::Tz {
        crate::time::zone(self.office.as_ref().map(|o| o.timezone.as_str()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OfficeCommand {
    Open {
        office_id: OfficeId,
        name: String,
        code: String,
        timezone: String,
        region: String,
    },
}

/// The id of the office with `code`: the same for the same code in any case and spacing, so two
/// offices opened with one code meet at one stream and the second is refused.
pub fn office_id_for(code: &str) -> OfficeId {
    OfficeId::derived(&format!("code:{}", code.trim().to_uppercase()))
}

/// Whether a user's text names this office: its id, its code (any case) or its exact name.
pub fn names_office(text: &str, id: OfficeId, code: &str, name: &str) -> bool {
    id.to_string() == text || code.eq_ignore_ascii_case(text) || name == text
}

pub fn evolve_office(mut state: OfficeState, event: &Event) -> OfficeState {
    if let Event::OfficeOpened(e) = event {
        state.office = Some(e.clone());
    }
    state
}

pub fn decide_office(state: &OfficeState, cmd: &OfficeCommand, ctx: &Ctx<'_>) -> Decision {
    require_role(
        ctx.acting,
        &[Role::SalesDepartment, Role::Executive],
        "open an office",
    )?;
    let OfficeCommand::Open {
        office_id,
        name,
        code,
        timezone,
        region,
    } = cmd;
    if state.office.is_some() {
        return refuse(
            RefusalCode::OfficeExists,
            "this office is already open",
            "该办事处已存在",
        );
    }
    check::required("name", name, check::SHORT)?;
    check::required("code", code, 16)?;
    check::optional("region", region, check::SHORT)?;
    if timezone.parse::<chrono_tz::Tz>().is_err() {
        return refuse(
            RefusalCode::InvalidValue,
            format!("`{timezone}` is not an IANA time zone (e.g. Asia/Shanghai)"),
            format!("“{timezone}”不是有效的时区（例如 Asia/Shanghai）"),
        );
    }
    Ok(vec![Event::OfficeOpened(OfficeOpened {
        office_id: *office_id,
        name: name.trim().to_string(),
        code: code.trim().to_string(),
        timezone: timezone.clone(),
        region: region.trim().to_string(),
    })])
}

/// A member of staff's state. `Default` is "no such person". It serializes, so that the engine can
/// keep a snapshot of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StaffState {
    pub id: Option<StaffId>,
    pub name: String,
    pub role: Option<Role>,
    pub office: Option<OfficeId>,
    pub active: bool,
    /// API tokens issued to this person: token id → revoked.
    pub tokens: std::collections::BTreeMap<uuid::Uuid, bool>,
    /// Browser sessions begun and not signed out of (some may have expired since).
    pub sessions: std::collections::BTreeSet<uuid::Uuid>,
    /// The invitation that may still be accepted (a new one replaces it): id, secret hash, expiry.
    pub invitation: Option<(uuid::Uuid, String, chrono::DateTime<chrono::Utc>)>,
    /// Whether the person has set a password (accepted an invitation).
    pub password_set: bool,
    /// Password sign-in is locked until then (unless unlocked).
    pub locked_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The mobile number chat robots @-mention the person by.
    pub phone: Option<String>,
    /// The OpenID Connect identity (issuer, subject) that signs the person in, once linked.
    pub oidc: Option<(String, String)>,
}

impl StaffState {
    /// What permission decisions need, when the person exists.
    pub fn info(&self) -> Option<crate::StaffInfo> {
        Some(crate::StaffInfo {
            id: self.id?,
            role: self.role?,
            office: self.office,
            active: self.active,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StaffCommand {
    Join {
        staff_id: StaffId,
        name: String,
        role: Role,
        office: Option<OfficeId>,
    },
    ChangeRole {
        role: Role,
    },
    MoveOffice {
        office: Option<OfficeId>,
    },
    /// Give a member of staff a new role and office in one step (both recorded together), e.g. an
    /// office manager who moves to the headquarters sales department, whose office must go as the
    /// role changes. `office` is the office after the change: required for office roles, absent
    /// for headquarters roles.
    Reassign {
        role: Role,
        office: Option<OfficeId>,
    },
    Leave {
        reason: String,
    },
    /// Record a new API token by the SHA-256 hash of its text (lower-case hex).
    IssueToken {
        token_id: uuid::Uuid,
        token_hash: String,
    },
    /// Revoke an API token.
    RevokeToken {
        token_id: uuid::Uuid,
    },
    /// Invite the person to set a password: a one-time link, recorded by its secret's SHA-256,
    /// that replaces any earlier one.
    Invite {
        invitation_id: uuid::Uuid,
        secret_hash: String,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// Open password sign-in again before its lock runs out.
    Unlock,
    /// Record the person's mobile number (any common way of writing it), or remove it (`None`):
    /// by the person themselves or by headquarters.
    SetPhone {
        phone: Option<String>,
    },
    /// The person's own browser sessions and sign-in (which the person, whatever their role, gives
    /// for themselves; the sign-in lock is given by the system).
    Session(SessionCommand),
}

/// What a member of staff does with their own browser sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCommand {
    /// Begin a session, recorded by the SHA-256 of its secret.
    Start {
        session_id: uuid::Uuid,
        secret_hash: String,
        method: SignInMethod,
        expires_at: chrono::DateTime<chrono::Utc>,
        idle_minutes: u32,
    },
    /// Record that a session was used, so that its idle expiry counts again.
    Renew { session_id: uuid::Uuid },
    /// Sign out of one session, or of every open session (`session_id` absent).
    End { session_id: Option<uuid::Uuid> },
    /// Accept the invitation whose secret has this SHA-256 (the password is kept apart).
    AcceptInvitation { secret_hash: String },
    /// Accept the invitation whose secret has this SHA-256 by signing in through the company's
    /// OpenID Connect provider: link that provider's identity (the ID token's `iss` and `sub`,
    /// verified by the caller) to the person.
    LinkOidc {
        secret_hash: String,
        issuer: String,
        subject: String,
    },
    /// Lock password sign-in until `until` after `failures` failed attempts.
    Lock {
        failures: u32,
        until: chrono::DateTime<chrono::Utc>,
    },
}

pub fn evolve_staff(mut state: StaffState, event: &Event) -> StaffState {
    match event {
        Event::StaffJoined(e) => {
            state = StaffState {
                id: Some(e.staff_id),
                name: e.name.clone(),
                role: Some(e.role),
                office: e.office,
                active: true,
                tokens: Default::default(),
                sessions: Default::default(),
                invitation: None,
                password_set: false,
                locked_until: None,
                phone: None,
                oidc: None,
            };
        }
        Event::StaffInvited(e) => {
            state.invitation = Some((e.invitation_id, e.secret_hash.clone(), e.expires_at));
        }
        Event::StaffInvitationAccepted(_) => {
            state.invitation = None;
            state.password_set = true;
        }
        Event::StaffOidcLinked(e) => {
            state.invitation = None;
            state.oidc = Some((e.issuer.clone(), e.subject.clone()));
        }
        Event::StaffSignInLocked(e) => state.locked_until = Some(e.until),
        Event::StaffSignInUnlocked(_) => state.locked_until = None,
        Event::StaffPhoneChanged(e) => state.phone = e.phone.clone(),
        Event::StaffSessionStarted(e) => {
            state.sessions.insert(e.session_id);
        }
        Event::StaffSessionsEnded(e) => {
            for id in &e.sessions {
                state.sessions.remove(id);
            }
        }
        Event::StaffTokenIssued(e) => {
            state.tokens.insert(e.token_id, false);
        }
        Event::StaffTokenRevoked(e) => {
            state.tokens.insert(e.token_id, true);
        }
        Event::StaffRoleChanged(e) => state.role = Some(e.to),
        Event::StaffMovedOffice(e) => state.office = e.to,
        Event::StaffLeft(_) => state.active = false,
        _ => {}
    }
    state
}

/// Office roles need an office; headquarters roles have none.
fn office_fits(role: Role, office: Option<OfficeId>) -> Decision {
    match (role.is_headquarters(), office) {
        (false, None) => refuse(
            RefusalCode::FieldRequired,
            format!("a {role} belongs to an office: give `office`"),
            format!("{}须属于某个办事处，请指定办事处", role.label_zh()),
        ),
        (true, Some(_)) => refuse(
            RefusalCode::InvalidValue,
            format!("a {role} works at headquarters and has no office"),
            format!("{}属于总部，不属于办事处", role.label_zh()),
        ),
        _ => Ok(vec![]),
    }
}

/// Executives and auditors: appointed, reassigned and removed by an executive only.
fn executive_managed(role: Role) -> bool {
    matches!(role, Role::Executive | Role::Auditor)
}

/// Whether the actor has an executive's authority over the organisation: an executive, or the
/// system (the CLI with direct access to the store, the demo loader).
fn executive_authority(ctx: &Ctx<'_>) -> bool {
    ctx.acting.is_system() || ctx.acting.role() == Some(Role::Executive)
}

fn only_an_executive(action_en: &str, action_zh: &str) -> Decision {
    refuse(
        RefusalCode::ExecutiveOnly,
        format!("only an executive may {action_en}"),
        format!("只有公司高层可以{action_zh}"),
    )
}

/// Separation of duties over one member of staff (`id`, now `role`): no one changes their own role
/// or office; only an executive appoints, reassigns or removes executives and auditors or changes
/// their tokens; a token is issued only to its holder or by an executive; the last active
/// executive neither leaves nor stops being an executive.
fn check_duties(id: StaffId, role: Role, cmd: &StaffCommand, ctx: &Ctx<'_>) -> Decision {
    let own = ctx.acting.staff_id() == Some(id);
    let executive = executive_authority(ctx);
    let to = match cmd {
        StaffCommand::ChangeRole { role: to } | StaffCommand::Reassign { role: to, .. } => {
            Some(*to)
        }
        StaffCommand::Join { .. }
        | StaffCommand::MoveOffice { .. }
        | StaffCommand::Leave { .. }
        | StaffCommand::IssueToken { .. }
        | StaffCommand::RevokeToken { .. }
        | StaffCommand::Invite { .. }
        | StaffCommand::Unlock
        | StaffCommand::SetPhone { .. }
        | StaffCommand::Session(_) => None,
    };
    match cmd {
        StaffCommand::ChangeRole { .. }
        | StaffCommand::MoveOffice { .. }
        | StaffCommand::Reassign { .. } => {
            if own {
                return refuse(
                    RefusalCode::OwnRole,
                    "no one changes their own role or office; another member of the sales department or an executive must",
                    "任何人不得变更自己的角色或办事处，须由销售部其他人员或公司高层办理",
                );
            }
            if !executive && (executive_managed(role) || to.is_some_and(executive_managed)) {
                return only_an_executive(
                    "appoint or reassign an executive or an auditor",
                    "任命或调动公司高层或审计人员",
                );
            }
        }
        StaffCommand::Leave { .. } => {
            if !executive && !own && executive_managed(role) {
                return only_an_executive(
                    "record that an executive or an auditor leaves",
                    "办理公司高层或审计人员的离职",
                );
            }
        }
        StaffCommand::IssueToken { .. } => {
            if !executive && !own {
                return refuse(
                    RefusalCode::TokenHolderOrExecutive,
                    "a token is issued only to its holder (for themselves) or by an executive",
                    "令牌只能由持有人本人或公司高层签发",
                );
            }
        }
        StaffCommand::RevokeToken { .. } => {
            if !executive && !own && executive_managed(role) {
                return only_an_executive(
                    "revoke an executive's or an auditor's token",
                    "吊销公司高层或审计人员的令牌",
                );
            }
        }
        StaffCommand::SetPhone { .. } => {
            if !executive && !own && executive_managed(role) {
                return only_an_executive(
                    "record an executive's or an auditor's phone number",
                    "记录公司高层或审计人员的电话号码",
                );
            }
        }
        StaffCommand::Invite { .. } | StaffCommand::Unlock => {
            if !executive && executive_managed(role) {
                return only_an_executive(
                    "invite an executive or an auditor, or unlock their sign-in",
                    "邀请公司高层或审计人员设置密码或为其解锁登录",
                );
            }
        }
        StaffCommand::Join { .. } | StaffCommand::Session(_) => {}
    }
    let stops_being_executive = role == Role::Executive
        && match cmd {
            StaffCommand::Leave { .. } => true,
            StaffCommand::ChangeRole { .. } | StaffCommand::Reassign { .. } => {
                to.is_some_and(|to| to != Role::Executive)
            }
            StaffCommand::Join { .. }
            | StaffCommand::MoveOffice { .. }
            | StaffCommand::IssueToken { .. }
            | StaffCommand::RevokeToken { .. }
            | StaffCommand::Invite { .. }
            | StaffCommand::Unlock
            | StaffCommand::SetPhone { .. }
            | StaffCommand::Session(_) => false,
        };
    if stops_being_executive && ctx.staff.other_active_executives(id) == 0 {
        return refuse(
            RefusalCode::LastExecutive,
            "this is the last active executive: appoint another executive first",
            "这是最后一位在职的公司高层：请先任命另一位公司高层",
        );
    }
    Ok(vec![])
}

pub fn decide_staff(state: &StaffState, cmd: &StaffCommand, ctx: &Ctx<'_>) -> Decision {
    if let StaffCommand::Session(cmd) = cmd {
        return decide_session(state, cmd, ctx);
    }
    // API tokens are for integrations, issued and revoked by their holder for themselves whatever
    // their role (an auditor's reading script too); anyone else's only by headquarters.
    // So is a person's own phone number.
    let own_token = matches!(
        cmd,
        StaffCommand::IssueToken { .. }
            | StaffCommand::RevokeToken { .. }
            | StaffCommand::SetPhone { .. }
    ) && ctx.acting.staff_id().is_some()
        && ctx.acting.staff_id() == state.id;
    if !own_token {
        require_role(
            ctx.acting,
            &[Role::SalesDepartment, Role::Executive],
            "manage staff",
        )?;
    }
    let (Some(id), Some(role)) = (state.id, state.role) else {
        let StaffCommand::Join {
            staff_id,
            name,
            role,
            office,
        } = cmd
        else {
            return refuse(
                RefusalCode::StaffNotFound,
                "no such member of staff",
                "没有该员工",
            );
        };
        if executive_managed(*role) && !executive_authority(ctx) {
            return only_an_executive(
                "appoint an executive or an auditor",
                "任命公司高层或审计人员",
            );
        }
        check::required("name", name, check::SHORT)?;
        crate::text::name("name", name)?;
        office_fits(*role, *office)?;
        return Ok(vec![Event::StaffJoined(StaffJoined {
            staff_id: *staff_id,
            name: name.trim().to_string(),
            role: *role,
            office: *office,
        })]);
    };
    if !state.active {
        return refuse(
            RefusalCode::StaffInactive,
            "this member of staff has left",
            "该员工已离职",
        );
    }
    check_duties(id, role, cmd, ctx)?;
    match cmd {
        StaffCommand::Join { .. } => refuse(
            RefusalCode::StaffExists,
            "this member of staff already joined",
            "该员工已入职",
        ),
        StaffCommand::ChangeRole { role: to } => {
            if *to == role {
                return refuse(
                    RefusalCode::NothingToDo,
                    "the role is unchanged",
                    "角色未变化",
                );
            }
            office_fits(*to, state.office)?;
            Ok(vec![Event::StaffRoleChanged(StaffRoleChanged {
                staff_id: id,
                from: role,
                to: *to,
            })])
        }
        StaffCommand::MoveOffice { office } => {
            if *office == state.office {
                return refuse(
                    RefusalCode::NothingToDo,
                    "already in that office",
                    "已在该办事处",
                );
            }
            office_fits(role, *office)?;
            Ok(vec![Event::StaffMovedOffice(StaffMovedOffice {
                staff_id: id,
                from: state.office,
                to: *office,
            })])
        }
        StaffCommand::Reassign {
            role: to,
            office: to_office,
        } => {
            if *to == role && *to_office == state.office {
                return refuse(
                    RefusalCode::NothingToDo,
                    "the role and the office are unchanged",
                    "角色和办事处均未变化",
                );
            }
            office_fits(*to, *to_office)?;
            let mut events = Vec::new();
            if *to != role {
                events.push(Event::StaffRoleChanged(StaffRoleChanged {
                    staff_id: id,
                    from: role,
                    to: *to,
                }));
            }
            if *to_office != state.office {
                events.push(Event::StaffMovedOffice(StaffMovedOffice {
                    staff_id: id,
                    from: state.office,
                    to: *to_office,
                }));
            }
            Ok(events)
        }
        StaffCommand::Leave { reason } => {
            check::optional("reason", reason, check::LONG)?;
            Ok(vec![Event::StaffLeft(StaffLeft {
                staff_id: id,
                reason: reason.trim().to_string(),
            })])
        }
        StaffCommand::IssueToken {
            token_id,
            token_hash,
        } => decide_issue_token(state, id, *token_id, token_hash),
        StaffCommand::Session(cmd) => decide_session(state, cmd, ctx),
        StaffCommand::Invite {
            invitation_id,
            secret_hash,
            expires_at,
        } => {
            if !is_sha256_hex(secret_hash) || *expires_at <= ctx.at {
                return refuse(
                    RefusalCode::InvalidValue,
                    "an invitation is recorded by the SHA-256 of its secret and expires after it is issued",
                    "邀请须以其密钥的 SHA-256 记录，且过期时间须晚于签发时间",
                );
            }
            Ok(vec![Event::StaffInvited(StaffInvited {
                staff_id: id,
                invitation_id: *invitation_id,
                secret_hash: secret_hash.clone(),
                expires_at: *expires_at,
            })])
        }
        StaffCommand::SetPhone { phone } => {
            let phone = match phone {
                Some(p) => Some(crate::text::mobile("phone", p)?),
                None => None,
            };
            if phone == state.phone {
                return refuse(
                    RefusalCode::NothingToDo,
                    "this member of staff already has that phone number on record",
                    "该员工的电话号码已是此号码",
                );
            }
            Ok(vec![Event::StaffPhoneChanged(StaffPhoneChanged {
                staff_id: id,
                phone,
            })])
        }
        StaffCommand::Unlock => {
            if state.locked_until.is_none_or(|t| t <= ctx.at) {
                return refuse(
                    RefusalCode::NothingToDo,
                    "sign-in of this member of staff is not locked",
                    "该员工的登录未被锁定",
                );
            }
            Ok(vec![Event::StaffSignInUnlocked(StaffSignInUnlocked {
                staff_id: id,
            })])
        }
        StaffCommand::RevokeToken { token_id } => match state.tokens.get(token_id) {
            None => refuse(
                RefusalCode::InvalidValue,
                format!("no token {token_id} was issued to this member of staff"),
                format!("未向该员工签发过令牌 {token_id}"),
            ),
            Some(true) => refuse(
                RefusalCode::NothingToDo,
                format!("token {token_id} is already revoked"),
                format!("令牌 {token_id} 已被吊销"),
            ),
            Some(false) => Ok(vec![Event::StaffTokenRevoked(StaffTokenRevoked {
                staff_id: id,
                token_id: *token_id,
            })]),
        },
    }
}

/// Whether `hash` is a SHA-256 as 64 lower-case hex digits.
fn is_sha256_hex(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A person's browser sessions: begun, renewed and ended by the person themselves (any role,
/// auditors too: signing in changes nothing of the record) or the system, while they are active.
fn decide_session(state: &StaffState, cmd: &SessionCommand, ctx: &Ctx<'_>) -> Decision {
    let Some(id) = state.id else {
        return refuse(
            RefusalCode::StaffNotFound,
            "no such member of staff",
            "没有该员工",
        );
    };
    if !ctx.acting.is_system() && ctx.acting.staff_id() != Some(id) {
        return refuse(
            RefusalCode::SessionHolderOnly,
            "only the person themselves begins, renews or ends their sessions",
            "会话只能由本人登录、续期或退出",
        );
    }
    if !state.active {
        return refuse(
            RefusalCode::StaffInactive,
            "this member of staff has left",
            "该员工已离职",
        );
    }
    match cmd {
        SessionCommand::Start {
            session_id,
            secret_hash,
            method,
            expires_at,
            idle_minutes,
        } => {
            if !is_sha256_hex(secret_hash) {
                return refuse(
                    RefusalCode::InvalidValue,
                    "`secret_hash` must be the SHA-256 of the session secret as 64 lower-case hex digits",
                    "`secret_hash` 必须是会话密钥的 SHA-256 值（64 位小写十六进制）",
                );
            }
            if *expires_at <= ctx.at || *idle_minutes == 0 {
                return refuse(
                    RefusalCode::InvalidValue,
                    "a session must end after it begins and allow at least one idle minute",
                    "会话的结束时间须晚于开始时间，空闲时限至少一分钟",
                );
            }
            if *method == SignInMethod::Oidc && state.oidc.is_none() {
                return refuse(
                    RefusalCode::InvalidValue,
                    "no OpenID Connect identity is linked to this member of staff: accept an invitation through the provider first",
                    "该员工尚未关联 OpenID Connect 身份，请先通过邀请链接使用公司账号登录",
                );
            }
            if state.sessions.contains(session_id) {
                return refuse(
                    RefusalCode::NothingToDo,
                    format!("session {session_id} already began"),
                    format!("会话 {session_id} 已存在"),
                );
            }
            Ok(vec![Event::StaffSessionStarted(StaffSessionStarted {
                staff_id: id,
                session_id: *session_id,
                secret_hash: secret_hash.clone(),
                method: *method,
                expires_at: *expires_at,
                idle_minutes: *idle_minutes,
            })])
        }
        SessionCommand::Renew { session_id } => {
            if !state.sessions.contains(session_id) {
                return refuse(
                    RefusalCode::NothingToDo,
                    format!("session {session_id} is not open"),
                    format!("会话 {session_id} 未处于登录状态"),
                );
            }
            Ok(vec![Event::StaffSessionRenewed(StaffSessionRenewed {
                staff_id: id,
                session_id: *session_id,
            })])
        }
        SessionCommand::End { session_id } => {
            let sessions: Vec<uuid::Uuid> = match session_id {
                Some(one) => state.sessions.get(one).copied().into_iter().collect(),
                None => state.sessions.iter().copied().collect(),
            };
            if sessions.is_empty() {
                return refuse(
                    RefusalCode::NothingToDo,
                    "no session of this member of staff is open",
                    "该员工没有处于登录状态的会话",
                );
            }
            Ok(vec![Event::StaffSessionsEnded(StaffSessionsEnded {
                staff_id: id,
                sessions,
                everywhere: session_id.is_none(),
            })])
        }
        SessionCommand::AcceptInvitation { secret_hash } => match &state.invitation {
            Some((invitation_id, hash, expires_at))
                if hash == secret_hash && *expires_at > ctx.at =>
            {
                Ok(vec![Event::StaffInvitationAccepted(
                    StaffInvitationAccepted {
                        staff_id: id,
                        invitation_id: *invitation_id,
                    },
                )])
            }
            _ => refuse(
                RefusalCode::InvalidValue,
                "this invitation is unknown, used, replaced by a newer one or expired: ask headquarters for a new one",
                "该邀请无效、已使用、已被新邀请取代或已过期，请联系总部重新邀请",
            ),
        },
        SessionCommand::LinkOidc {
            secret_hash,
            issuer,
            subject,
        } => {
            let invitation_id = match &state.invitation {
                Some((invitation_id, hash, expires_at))
                    if hash == secret_hash && *expires_at > ctx.at =>
                {
                    *invitation_id
                }
                _ => {
                    return refuse(
                        RefusalCode::InvalidValue,
                        "this invitation is unknown, used, replaced by a newer one or expired: ask headquarters for a new one",
                        "该邀请无效、已使用、已被新邀请取代或已过期，请联系总部重新邀请",
                    );
                }
            };
            // OpenID Connect Core §2: `sub` is at most 255 ASCII characters; an issuer is a URL.
            let fits = |s: &str, max: usize| {
                !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_graphic())
            };
            if !fits(issuer, 500) || !fits(subject, 255) {
                return refuse(
                    RefusalCode::InvalidValue,
                    "an OpenID Connect identity is an issuer URL of at most 500 and a subject of at most 255 printable ASCII characters",
                    "OpenID Connect 身份须为不超过 500 个字符的签发者 URL 和不超过 255 个可打印 ASCII 字符的主体标识",
                );
            }
            Ok(vec![Event::StaffOidcLinked(StaffOidcLinked {
                staff_id: id,
                invitation_id,
                issuer: issuer.clone(),
                subject: subject.clone(),
            })])
        }
        SessionCommand::Lock { failures, until } => {
            if !ctx.acting.is_system() {
                return refuse(
                    RefusalCode::SessionHolderOnly,
                    "only the sign-in service locks sign-in",
                    "只有登录服务可以锁定登录",
                );
            }
            if *until <= ctx.at || state.locked_until.is_some_and(|t| t > ctx.at) {
                return refuse(
                    RefusalCode::NothingToDo,
                    "sign-in is already locked",
                    "登录已被锁定",
                );
            }
            Ok(vec![Event::StaffSignInLocked(StaffSignInLocked {
                staff_id: id,
                failures: *failures,
                until: *until,
            })])
        }
    }
}

/// A token is recorded by the 64 lower-case hex digits of its SHA-256, under an id not used before.
fn decide_issue_token(
    state: &StaffState,
    id: StaffId,
    token_id: uuid::Uuid,
    token_hash: &str,
) -> Decision {
    if !is_sha256_hex(token_hash) {
        return refuse(
            RefusalCode::InvalidValue,
            "`token_hash` must be the SHA-256 of the token as 64 lower-case hex digits",
            "`token_hash` 必须是令牌的 SHA-256 值（64 位小写十六进制）",
        );
    }
    if state.tokens.contains_key(&token_id) {
        return refuse(
            RefusalCode::NothingToDo,
            format!("token {token_id} was already issued"),
            format!("令牌 {token_id} 已签发"),
        );
    }
    Ok(vec![Event::StaffTokenIssued(StaffTokenIssued {
        staff_id: id,
        token_id,
        token_hash: token_hash.to_string(),
    })])
}
