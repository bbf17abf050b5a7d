//! Issuing, revoking and listing API tokens (`funnel staff token`, `funnel staff list`), and
//! invitations to set a password (`funnel staff invite`, `POST /staff/{id}/invitation`). A token is
//! recorded through the engine as `staff.token_issued` with only its SHA-256, so issuing one is
//! authorized like any staff change (sales department, executives or the system) and replays.

use crate::auth::{Access, new_token};
use funnel_domain::org::StaffCommand;
use funnel_engine::{Command, CommandMeta, Engine, EngineError, Who};
use funnel_projections::ReadModel;
use funnel_store::{EventStore, Filter, StoreError};
use funnel_types::{Position, Position as Pos, StaffId};

/// A token just issued. `token` is shown once and never stored.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub staff_id: StaffId,
    pub token_id: uuid::Uuid,
    pub token: String,
    pub position: Position,
}

/// Issues a token to `staff`, acting as `who`.
pub async fn issue(engine: &Engine, who: Who, staff: StaffId) -> Result<IssuedToken, EngineError> {
    let (token, token_hash) = new_token();
    let token_id = uuid::Uuid::now_v7();
    let cmd = Command::Staff {
        staff_id: staff,
        cmd: StaffCommand::IssueToken {
            token_id,
            token_hash,
        },
    };
    let accepted = engine.execute(CommandMeta::new(who), cmd).await?;
    Ok(IssuedToken {
        staff_id: staff,
        token_id,
        token,
        position: accepted.last_position,
    })
}

/// An invitation just issued. `token` is shown once and never stored.
#[derive(Clone, Debug)]
pub struct IssuedInvitation {
    pub staff_id: StaffId,
    pub invitation_id: uuid::Uuid,
    pub token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub position: Position,
}

/// Invites `staff` to set a password, acting as `who`: a one-time link valid until `expires_at`
/// (`POST /invitations/{token}`); only the SHA-256 of its token is recorded.
pub async fn invite(
    engine: &Engine,
    who: Who,
    staff: StaffId,
    at: chrono::DateTime<chrono::Utc>,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> Result<IssuedInvitation, EngineError> {
    let (token, secret_hash) = new_token();
    let invitation_id = uuid::Uuid::now_v7();
    let cmd = Command::Staff {
        staff_id: staff,
        cmd: StaffCommand::Invite {
            invitation_id,
            secret_hash,
            expires_at,
        },
    };
    let accepted = engine.execute(CommandMeta::new(who).at(at), cmd).await?;
    Ok(IssuedInvitation {
        staff_id: staff,
        invitation_id,
        token,
        expires_at,
        position: accepted.last_position,
    })
}

/// Opens the locked password sign-in of `staff`, acting as `who`.
pub async fn unlock(engine: &Engine, who: Who, staff: StaffId) -> Result<Position, EngineError> {
    let cmd = Command::Staff {
        staff_id: staff,
        cmd: StaffCommand::Unlock,
    };
    Ok(engine
        .execute(CommandMeta::new(who), cmd)
        .await?
        .last_position)
}

/// Revokes token `token_id` of `staff`, acting as `who`.
pub async fn revoke(
    engine: &Engine,
    who: Who,
    staff: StaffId,
    token_id: uuid::Uuid,
) -> Result<Position, EngineError> {
    let cmd = Command::Staff {
        staff_id: staff,
        cmd: StaffCommand::RevokeToken { token_id },
    };
    let accepted = engine.execute(CommandMeta::new(who), cmd).await?;
    Ok(accepted.last_position)
}

/// Why a directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Decode(#[from] funnel_codec::DecodeError),
    #[error("staff event at {position} does not fit: {reason}")]
    Refused { position: Pos, reason: String },
}

/// Offices, staff and their tokens, folded from the office and staff streams.
pub async fn directory(store: &dyn EventStore) -> Result<Access, DirectoryError> {
    let mut access = Access::default();
    let filter = Filter::Categories(vec!["office".into(), "staff".into()]);
    let mut after = Position::START;
    loop {
        let page = store.read_all(after, &filter, 4096).await?;
        let Some(last) = page.last() else { break };
        after = last.meta.position;
        for rec in &page {
            let env = funnel_codec::decode_recorded(rec)?;
            access
                .apply(&env)
                .map_err(|reason| DirectoryError::Refused {
                    position: rec.meta.position,
                    reason,
                })?;
        }
    }
    Ok(access)
}

/// Finds a member of staff by id or exact name.
pub fn find(access: &Access, text: &str) -> Result<StaffId, String> {
    if let Ok(id) = text.trim().parse::<StaffId>() {
        return access
            .staff
            .contains_key(&id)
            .then_some(id)
            .ok_or_else(|| format!("no member of staff {id} is on record"));
    }
    let hits: Vec<StaffId> = access
        .staff
        .iter()
        .filter(|(_, s)| s.name == text.trim())
        .map(|(id, _)| *id)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "no member of staff is called `{text}`; `funnel staff list` shows them"
        )),
        _ => Err(format!(
            "several members of staff are called `{text}`; give the id"
        )),
    }
}
