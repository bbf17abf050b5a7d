//! Who is asking: the one function that turns a credential into the acting person
//! ([`authenticate`]), the read model it looks them up in ([`Access`]), and what they may read
//! ([`Caller`], [`ReadScope`]).
//!
//! Bearer tokens are 32 random bytes in base64url, shown once when issued; the log records only the
//! SHA-256 of the token's text (`staff.token_issued`), and revocation is an event too
//! (`staff.token_revoked`). [`Access`] is the read model kept from those, the other staff events
//! and the office events: token hash → member of staff, each member's role, office and whether
//! they are still active, and the offices by id, code and name.
//!
//! Writes are authorized by the domain deciders (role × office × ownership), which also record a
//! refused touch of another engineer's lead. Reads are restricted here: office roles (engineers,
//! assistants, managers) read their own office; headquarters roles and auditors read every office;
//! the command line acts as the local operator ([`Caller::local_operator`]), who reads every office.

use crate::error::AppError;
use crate::reads::Reads;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use funnel_domain::{Event, RefusalCode};
use funnel_projections::ReadModel;
use funnel_types::{Envelope, OfficeId, Position, Role, StaffId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// A fresh token: its text (to show once) and the hex SHA-256 to record.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&text);
    (text, hash)
}

/// The lower-case hex SHA-256 of a token's text.
pub fn token_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A member of staff as the access model knows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffEntry {
    pub name: String,
    pub role: Role,
    pub office: Option<OfficeId>,
    pub active: bool,
}

/// One issued token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub staff_id: StaffId,
    pub token_id: uuid::Uuid,
    pub revoked: bool,
    /// Who issued it: the actor of its `staff.token_issued` event.
    #[serde(default)]
    pub issued_by: Option<funnel_types::Actor>,
}

/// One browser session, while it is open: begun and neither signed out of nor expired as of the
/// last session event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    pub staff_id: StaffId,
    pub session_id: uuid::Uuid,
    pub method: funnel_domain::events::SignInMethod,
    pub started_at: DateTime<Utc>,
    /// When it was last recorded as used (its start or its latest `staff.session_renewed`).
    pub last_used: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub idle_minutes: u32,
}

impl SessionEntry {
    /// The moment the session ends unless it is used (renewed) before: its idle expiry, or its
    /// absolute expiry when that comes first.
    pub fn ends_at(&self) -> DateTime<Utc> {
        (self.last_used + chrono::Duration::minutes(i64::from(self.idle_minutes)))
            .min(self.expires_at)
    }

    /// Whether the session is still open at `now`.
    pub fn open_at(&self, now: DateTime<Utc>) -> bool {
        now < self.ends_at()
    }

    /// Whether a use at `now` should be recorded (`staff.session_renewed`): once a quarter of the
    /// idle period has passed since the last record, so that a session in use never idles out
    /// while the log gains at most four events per idle period per session.
    pub fn due_for_renewal(&self, now: DateTime<Utc>) -> bool {
        let quarter = chrono::Duration::seconds(i64::from(self.idle_minutes) * 15);
        now >= self.last_used + quarter && self.last_used + quarter < self.expires_at
    }
}

/// An office as the access model knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfficeEntry {
    pub code: String,
    pub name: String,
    pub timezone: String,
    pub region: String,
}

/// The access read model: offices, staff and their tokens, folded from the office and staff events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Access {
    #[serde(default)]
    pub offices: BTreeMap<OfficeId, OfficeEntry>,
    pub staff: BTreeMap<StaffId, StaffEntry>,
    /// Token hash (hex SHA-256) → token.
    pub tokens: BTreeMap<String, TokenEntry>,
    /// Session secret hash (hex SHA-256) → open session. Sessions that ended are removed; those
    /// that expired are removed at the next session event after their end.
    #[serde(default)]
    pub sessions: BTreeMap<String, SessionEntry>,
    /// Session id → its secret hash.
    #[serde(default)]
    pub session_ids: BTreeMap<uuid::Uuid, String>,
    /// Invitation secret hash → the invitation that may still be accepted (a newer one for the
    /// same person replaces it; accepting removes it).
    #[serde(default)]
    pub invitations: BTreeMap<String, InvitationEntry>,
    /// Members of staff whose password sign-in is locked, until when.
    #[serde(default)]
    pub locked: BTreeMap<StaffId, DateTime<Utc>>,
    /// OpenID Connect identity ([`Access::oidc_key`]) → the member of staff it signs in. A person
    /// has at most one: linking another replaces it.
    #[serde(default)]
    pub oidc: BTreeMap<String, StaffId>,
}

/// An invitation to set a password that may still be accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationEntry {
    pub staff_id: StaffId,
    pub invitation_id: uuid::Uuid,
    pub expires_at: DateTime<Utc>,
}

impl Access {
    /// The key of an OpenID Connect identity: issuer and subject, which hold no spaces.
    pub fn oidc_key(issuer: &str, subject: &str) -> String {
        format!("{issuer} {subject}")
    }

    /// The member of staff an OpenID Connect identity signs in, if it is linked.
    pub fn staff_by_oidc(&self, issuer: &str, subject: &str) -> Option<StaffId> {
        self.oidc.get(&Self::oidc_key(issuer, subject)).copied()
    }
}

impl ReadModel for Access {
    const NAME: &'static str = "access";
    /// 2: offices too. 3: who issued each token. 4: browser sessions. 5: invitations, locks.
    /// 6: OpenID Connect identities.
    const VERSION: u32 = 6;

    fn apply(&mut self, env: &Envelope<Event>) -> Result<(), String> {
        let missing = |id: StaffId| format!("staff event for {id}, who never joined");
        match &env.payload {
            Event::OfficeOpened(e) => {
                self.offices.insert(
                    e.office_id,
                    OfficeEntry {
                        code: e.code.clone(),
                        name: e.name.clone(),
                        timezone: e.timezone.clone(),
                        region: e.region.clone(),
                    },
                );
            }
            Event::StaffJoined(e) => {
                self.staff.insert(
                    e.staff_id,
                    StaffEntry {
                        name: e.name.clone(),
                        role: e.role,
                        office: e.office,
                        active: true,
                    },
                );
            }
            Event::StaffRoleChanged(e) => {
                self.staff
                    .get_mut(&e.staff_id)
                    .ok_or(missing(e.staff_id))?
                    .role = e.to;
            }
            Event::StaffMovedOffice(e) => {
                self.staff
                    .get_mut(&e.staff_id)
                    .ok_or(missing(e.staff_id))?
                    .office = e.to;
            }
            Event::StaffLeft(e) => {
                self.staff
                    .get_mut(&e.staff_id)
                    .ok_or(missing(e.staff_id))?
                    .active = false;
            }
            Event::StaffTokenIssued(e) => {
                if self.tokens.contains_key(&e.token_hash) {
                    return Err(format!("token hash of {} issued twice", e.token_id));
                }
                self.tokens.insert(
                    e.token_hash.clone(),
                    TokenEntry {
                        staff_id: e.staff_id,
                        token_id: e.token_id,
                        revoked: false,
                        issued_by: Some(env.meta.actor.clone()),
                    },
                );
            }
            Event::StaffTokenRevoked(e) => {
                let entry = self
                    .tokens
                    .values_mut()
                    .find(|t| t.token_id == e.token_id && t.staff_id == e.staff_id)
                    .ok_or_else(|| format!("revocation of unknown token {}", e.token_id))?;
                entry.revoked = true;
            }
            Event::StaffSessionStarted(e) => {
                let at = env.meta.occurred_at;
                self.forget_sessions_ended_by(at);
                if self.sessions.contains_key(&e.secret_hash) {
                    return Err(format!("session secret of {} began twice", e.session_id));
                }
                self.session_ids.insert(e.session_id, e.secret_hash.clone());
                self.sessions.insert(
                    e.secret_hash.clone(),
                    SessionEntry {
                        staff_id: e.staff_id,
                        session_id: e.session_id,
                        method: e.method,
                        started_at: at,
                        last_used: at,
                        expires_at: e.expires_at,
                        idle_minutes: e.idle_minutes,
                    },
                );
            }
            Event::StaffSessionRenewed(e) => {
                let at = env.meta.occurred_at;
                // A renewal recorded after the session's end (a request that began just before)
                // does not bring it back: it was removed here, or it is found ended.
                if let Some(entry) = self
                    .session_ids
                    .get(&e.session_id)
                    .and_then(|h| self.sessions.get_mut(h))
                    && entry.open_at(at)
                {
                    entry.last_used = entry.last_used.max(at);
                }
                self.forget_sessions_ended_by(at);
            }
            Event::StaffInvited(e) => {
                self.invitations.retain(|_, i| i.staff_id != e.staff_id);
                self.invitations.insert(
                    e.secret_hash.clone(),
                    InvitationEntry {
                        staff_id: e.staff_id,
                        invitation_id: e.invitation_id,
                        expires_at: e.expires_at,
                    },
                );
            }
            Event::StaffInvitationAccepted(e) => {
                self.invitations.retain(|_, i| i.staff_id != e.staff_id);
            }
            Event::StaffOidcLinked(e) => {
                self.invitations.retain(|_, i| i.staff_id != e.staff_id);
                self.oidc.retain(|_, s| *s != e.staff_id);
                self.oidc
                    .insert(Self::oidc_key(&e.issuer, &e.subject), e.staff_id);
            }
            Event::StaffSignInLocked(e) => {
                self.locked.insert(e.staff_id, e.until);
            }
            Event::StaffSignInUnlocked(e) => {
                self.locked.remove(&e.staff_id);
            }
            Event::StaffSessionsEnded(e) => {
                for id in &e.sessions {
                    if let Some(hash) = self.session_ids.remove(id) {
                        self.sessions.remove(&hash);
                    }
                }
                self.forget_sessions_ended_by(env.meta.occurred_at);
            }
            _ => {}
        }
        Ok(())
    }
}

impl Access {
    /// The office with this id, code (any case) or exact name.
    pub fn find_office(&self, text: &str) -> Option<OfficeId> {
        let text = text.trim();
        self.offices
            .iter()
            .find(|(id, o)| funnel_domain::org::names_office(text, **id, &o.code, &o.name))
            .map(|(id, _)| *id)
    }

    /// An office as `GET /offices` and `funnel office list` show it: id, code, name, time zone,
    /// region and how many active members of staff it has.
    pub fn office_row(&self, id: OfficeId) -> Option<crate::query::org::OfficeRow> {
        let o = self.offices.get(&id)?;
        let active = self
            .staff
            .values()
            .filter(|s| s.active && s.office == Some(id))
            .count();
        Some(crate::query::org::OfficeRow {
            id,
            code: o.code.clone(),
            name: o.name.clone(),
            timezone: o.timezone.clone(),
            region: o.region.clone(),
            active_staff: active as u64,
        })
    }

    /// The office whose code is `code`, in any case.
    pub fn office_with_code(&self, code: &str) -> Option<OfficeId> {
        self.offices
            .iter()
            .find(|(_, o)| o.code.eq_ignore_ascii_case(code.trim()))
            .map(|(id, _)| *id)
    }

    /// Forgets the sessions that ended (idle or absolute expiry) by `at`: the model keeps only
    /// sessions that may still be used.
    fn forget_sessions_ended_by(&mut self, at: DateTime<Utc>) {
        let ended: Vec<(String, uuid::Uuid)> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.open_at(at))
            .map(|(h, s)| (h.clone(), s.session_id))
            .collect();
        for (hash, id) in ended {
            self.sessions.remove(&hash);
            self.session_ids.remove(&id);
        }
    }

    /// The session with this secret hash, with its holder, when it is open at `now`.
    pub fn resolve_session(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Option<(&SessionEntry, &StaffEntry)> {
        let session = self.sessions.get(hash).filter(|s| s.open_at(now))?;
        self.staff.get(&session.staff_id).map(|s| (session, s))
    }

    /// The member of staff an unrevoked token belongs to.
    pub fn resolve(&self, hash: &str) -> Option<(StaffId, &StaffEntry)> {
        let token = self.tokens.get(hash).filter(|t| !t.revoked)?;
        self.staff.get(&token.staff_id).map(|s| (token.staff_id, s))
    }
}

/// Which offices a caller reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadScope {
    /// Every office (headquarters roles, auditors, the local operator).
    All,
    /// One office (office roles).
    Office(OfficeId),
    /// No office (an office role without an office, which the deciders do not let arise).
    Nothing,
}

impl ReadScope {
    /// The scope of a role in an office: headquarters roles and auditors read every office, office
    /// roles their own.
    pub fn of(role: Role, office: Option<OfficeId>) -> Self {
        match (role.is_headquarters(), office) {
            (true, _) => ReadScope::All,
            (false, Some(o)) => ReadScope::Office(o),
            (false, None) => ReadScope::Nothing,
        }
    }
}

/// Who is calling, from their token and the staff events (or the local operator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub staff_id: StaffId,
    pub name: String,
    pub role: Role,
    pub office: Option<OfficeId>,
    /// Which offices they read.
    pub read_scope: ReadScope,
    /// The log position of the access model the caller was resolved from: their role and office
    /// are known as of here, and a change after it may not be reflected yet.
    pub resolved_at: Position,
}

impl Caller {
    /// The person at the command line of a machine that holds the store: they read every office
    /// (whoever can open the store file reads it all anyway). Not a member of staff: the nil id,
    /// the auditor's role (reads, changes nothing through a query).
    pub fn local_operator() -> Self {
        Caller {
            staff_id: StaffId(uuid::Uuid::nil()),
            name: "local operator".into(),
            role: Role::Auditor,
            office: None,
            read_scope: ReadScope::All,
            resolved_at: Position::START,
        }
    }

    /// Whether the caller reads every office (headquarters roles, auditors, the local operator).
    pub fn reads_all(&self) -> bool {
        self.read_scope == ReadScope::All
    }

    /// May the caller read what belongs to `office`?
    pub fn may_read(&self, office: OfficeId) -> bool {
        match self.read_scope {
            ReadScope::All => true,
            ReadScope::Office(o) => o == office,
            ReadScope::Nothing => false,
        }
    }

    /// May the caller read what belongs to `office`, or to no office (`None`: headquarters')?
    pub fn may_read_of(&self, office: Option<OfficeId>) -> bool {
        match office {
            Some(o) => self.may_read(o),
            None => self.reads_all(),
        }
    }

    /// Refuses a read of another office's data.
    pub fn check_read(&self, office: OfficeId) -> Result<(), AppError> {
        if self.may_read(office) {
            return Ok(());
        }
        Err(AppError::forbidden(
            RefusalCode::OtherOffice,
            format!(
                "this belongs to office {office}; a {} reads only their own office",
                self.role
            ),
            format!(
                "该记录属于办事处 {office}，{}只能查看本办事处",
                self.role.label_zh()
            ),
        ))
    }

    /// The office a report is limited to: the one asked for (if the caller may read it), else the
    /// caller's own office for office roles, or every office (`None`) for those who read all.
    pub fn scope(&self, asked: Option<OfficeId>) -> Result<Option<OfficeId>, AppError> {
        match (asked, self.read_scope) {
            (Some(o), _) => self.check_read(o).map(|()| Some(o)),
            (None, ReadScope::All) => Ok(None),
            (None, ReadScope::Office(o)) => Ok(Some(o)),
            (None, ReadScope::Nothing) => Err(AppError::forbidden(
                RefusalCode::OtherOffice,
                format!("a {} without an office reads no office", self.role),
                format!("未分配办事处的{}不能查看任何办事处", self.role.label_zh()),
            )),
        }
    }
}

/// The caller a member of staff on record is, as the access model resolved at `resolved_at` knows
/// them.
pub fn caller_of(id: StaffId, s: &StaffEntry, resolved_at: Position) -> Caller {
    Caller {
        staff_id: id,
        name: s.name.clone(),
        role: s.role,
        office: s.office,
        read_scope: ReadScope::of(s.role, s.office),
        resolved_at,
    }
}

/// Looks `find` up in the [`Access`] model; when it finds nothing, waits (briefly, up to
/// `auth_wait`) for the read models to reach the log head and looks again: a credential issued a
/// moment ago, perhaps by another process on the same log, may not be projected yet.
pub async fn look_up<T>(
    reads: &Reads,
    find: impl Fn(&Access, Position) -> Option<T>,
) -> Result<Option<T>, AppError> {
    let lookup = |runner: &funnel_projections::Runner| {
        let resolved_at = runner.checkpoint_of::<Access>().unwrap_or(Position::START);
        runner.get::<Access>().and_then(|a| find(a, resolved_at))
    };
    let found = lookup(&*reads.runner().read().await);
    if found.is_some() {
        return Ok(found);
    }
    let head = reads.store().head().await?;
    let wait = reads.options().auth_wait;
    if funnel_projections::wait_until_shared(reads.runner(), head, wait)
        .await
        .is_ok()
    {
        return Ok(lookup(&*reads.runner().read().await));
    }
    Ok(None)
}

/// The acting person a bearer token's text names: hashed, looked up in the [`Access`] model (after
/// waiting briefly for the log head when it is not there yet: a token issued a moment ago), and
/// refused when unknown, revoked, or its holder has left.
pub async fn authenticate(reads: &Reads, token: &str) -> Result<Caller, AppError> {
    let hash = token_hash(token);
    let found = look_up(reads, |access, at| {
        access
            .resolve(&hash)
            .map(|(id, s)| (s.active, caller_of(id, s, at)))
    })
    .await?;
    match found {
        Some((true, caller)) => Ok(caller),
        Some((false, _)) => Err(AppError::unauthenticated(
            "the member of staff this token belongs to has left",
            "该令牌所属员工已离职",
        )),
        None => Err(AppError::unauthenticated(
            "the token is unknown or revoked",
            "令牌无效或已被吊销",
        )),
    }
}

/// A fresh session secret: its text (for the cookie, sent once) and the hex SHA-256 to record.
pub fn new_session_secret() -> (String, String) {
    new_token()
}

/// The CSRF token of a session: derived from its secret, so it is bound to that session, the same
/// in every process on the log, and known only to whoever holds the secret (the browser, which
/// also gets it in a cookie scripts on the console's own origin can read and in `GET /session`).
pub fn csrf_token(session_secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"funnel csrf\0")
        .chain_update(session_secret.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Whether `sent` is the CSRF token of the session whose secret is `session_secret`, compared in
/// time independent of where they differ.
pub fn csrf_matches(session_secret: &str, sent: &str) -> bool {
    constant_time_eq(csrf_token(session_secret).as_bytes(), sent.as_bytes())
}

/// Whether `a` and `b` are equal, in a time that does not depend on where they differ (for
/// secrets a caller sends back).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A browser session as authentication found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSeen {
    pub entry: SessionEntry,
    /// Whether this use should be recorded (`staff.session_renewed`), see
    /// [`SessionEntry::due_for_renewal`].
    pub renew: bool,
}

/// The acting person a session cookie's secret names, at `now`: refused when the session is
/// unknown, signed out of, past its idle or absolute expiry, or its holder has left. The caller is
/// the same as their token would give: role, office and read scope as the staff events say now.
pub async fn authenticate_session(
    reads: &Reads,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(Caller, SessionSeen), AppError> {
    let hash = token_hash(secret);
    let found = look_up(reads, |access, at| {
        access.resolve_session(&hash, now).map(|(session, s)| {
            (
                s.active,
                caller_of(session.staff_id, s, at),
                SessionSeen {
                    entry: session.clone(),
                    renew: session.due_for_renewal(now),
                },
            )
        })
    })
    .await?;
    match found {
        Some((true, caller, seen)) => Ok((caller, seen)),
        Some((false, _, _)) => Err(AppError::unauthenticated(
            "the member of staff this session belongs to has left",
            "该会话所属员工已离职",
        )),
        None => Err(AppError::unauthenticated(
            "the session has ended or expired: sign in again",
            "会话已结束或已过期，请重新登录",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn the_local_operator_reads_every_office_and_office_roles_their_own() {
        let sh = OfficeId::derived("SH");
        let bj = OfficeId::derived("BJ");
        let op = Caller::local_operator();
        assert!(op.reads_all() && op.may_read(sh) && op.may_read_of(None));
        assert_eq!(op.scope(None), Ok(None));
        assert_eq!(op.scope(Some(bj)), Ok(Some(bj)));

        let mut engineer = op.clone();
        engineer.role = Role::SalesEngineer;
        engineer.office = Some(sh);
        engineer.read_scope = ReadScope::of(Role::SalesEngineer, Some(sh));
        assert_eq!(engineer.read_scope, ReadScope::Office(sh));
        assert_eq!(engineer.scope(None), Ok(Some(sh)));
        assert!(!engineer.may_read_of(None));
        let refused = engineer.scope(Some(bj)).expect_err("another office");
        assert_eq!(refused.code, "auth.other_office", "{refused}");
        assert_eq!(refused.kind, crate::ErrorKind::Forbidden);
    }
}
