//! Erasures of a person's personal data through the API: one member of headquarters staff asks
//! (`POST /privacy/erasures`), another approves or rejects (`…/{id}/approve`, `…/{id}/reject`).
//! The domain decides who may ([`funnel_domain::erasure`]); the approval's record makes the store
//! destroy the person's key; the erasure workflow puts the approval in the approvers' inbox.

use crate::AppState;
use crate::problem::Problem;
use crate::routes::write::Prepared;
use axum::http::StatusCode;
use funnel_domain::erasure::{ErasureCommand, parse_subject};
use funnel_domain::privacy::SubjectKind;
use funnel_engine::Command;
use funnel_types::{CommandId, LeadId, StreamId, Version};
use schemars::JsonSchema;
use serde::Deserialize;

/// `POST /privacy/erasures`: ask for a person's personal data to be erased.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestErasure {
    /// The person: `contact:<lead id>` (a lead's contact) or `key_person:<key person id>`.
    pub subject: String,
    /// The lead a key person belongs to (a contact's is in its subject).
    #[serde(default)]
    pub lead_id: Option<LeadId>,
    /// Why: the request's reference, or the retention rule.
    pub reason: String,
}

/// `POST /privacy/erasures/{id}/reject`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectErasure {
    pub reason: String,
}

fn not_sealed() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "privacy.not_sealed",
        "personal fields are not sealed on this server (no privacy.master_key_file), so nothing can be erased; seal them first (ARCHITECTURE.md, \"Personal data\")",
        "本服务器未加密个人信息（未配置 privacy.master_key_file），因此无法删除；请先启用加密",
    )
}

fn bad_subject(en: String, zh: String) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation.invalid_value",
        en,
        zh,
    )
}

/// The lead whose stream holds the person's fields: a contact's own; a key person's, given, and
/// checked against the lead's record of its key persons.
async fn lead_of(
    state: &AppState,
    subject: &str,
    given: Option<LeadId>,
) -> Result<LeadId, Problem> {
    let Some((kind, id)) = parse_subject(subject) else {
        return Err(bad_subject(
            format!(
                "`subject` must name a person as `contact:<lead id>` or `key_person:<key person id>`, not `{subject}`"
            ),
            format!(
                "`subject` 须写作 `contact:<线索 ID>` 或 `key_person:<关键人 ID>`，而不是 `{subject}`"
            ),
        ));
    };
    let lead = match (kind, given) {
        (SubjectKind::LeadContact, _) => LeadId(id),
        (SubjectKind::KeyPerson, Some(lead)) => lead,
        (SubjectKind::KeyPerson, None) => {
            return Err(bad_subject(
                "`lead_id` is required for a key person: the lead whose decision chain names them"
                    .into(),
                "关键人须同时给出 `lead_id`：其所在决策链的线索".into(),
            ));
        }
    };
    let stream = StreamId::new("lead", lead).map_err(|e| Problem::bad_request("lead_id", e))?;
    let events = state
        .store()
        .read_stream(&stream, Version::FIRST, usize::MAX)
        .await
        .map_err(Problem::from)?;
    if events.is_empty() {
        return Err(Problem::not_found(
            "lead.not_found",
            format!("no lead {lead}"),
            format!("没有线索 {lead}"),
        ));
    }
    if kind == SubjectKind::KeyPerson {
        let named = events.iter().any(|e| {
            e.meta.event_type == "lead.key_person_recorded"
                && serde_json::from_slice::<serde_json::Value>(&e.payload)
                    .is_ok_and(|v| v["key_person_id"].as_str() == Some(id.to_string().as_str()))
        });
        if !named {
            return Err(bad_subject(
                format!("lead {lead} records no key person {id}"),
                format!("线索 {lead} 的决策链中没有关键人 {id}"),
            ));
        }
    }
    Ok(lead)
}

/// Resolves `POST /privacy/erasures`: refused unless personal fields are sealed here; the
/// erasure's id comes from the command id, so a retry names the same erasure.
pub(crate) async fn request(
    state: AppState,
    _: (),
    body: RequestErasure,
    id: CommandId,
) -> Result<Prepared, Problem> {
    if state.options().privacy.master_key_file.is_none() {
        return Err(not_sealed());
    }
    let subject = body.subject.trim().to_string();
    let lead_id = lead_of(&state, &subject, body.lead_id).await?;
    let erasure_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, id.0.as_bytes());
    Ok(Prepared::from(Command::Erasure {
        erasure_id,
        cmd: ErasureCommand::Request {
            subject,
            lead_id,
            reason: body.reason,
        },
    }))
}
