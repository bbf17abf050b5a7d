//! RFC 9457 problem details: every error the API answers with is a `Problem`, served as
//! `application/problem+json` with the stable refusal `code`, an English and a Chinese message and,
//! for unmet stage criteria, the `missing` checklist items. Refusal codes map to HTTP statuses here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use funnel_domain::{Refusal, RefusalCode};
use funnel_engine::EngineError;
use funnel_types::Position;
use schemars::JsonSchema;
use serde::Serialize;

/// A problem details document (RFC 9457) with Funnel's extension members.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Problem {
    /// `urn:funnel:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// The English message.
    pub detail: String,
    /// The stable code clients branch on, e.g. `lead.not_owner`.
    pub code: String,
    pub message_en: String,
    pub message_zh: String,
    /// Checklist items still missing (for `lead.stage_criteria_unmet`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub missing: Vec<String>,
    /// Where the refusal itself was recorded (a refused touch of another engineer's lead).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub recorded_position: Option<Position>,
    /// Seconds after which a retry may succeed, sent as `Retry-After` (not in the body).
    #[serde(skip)]
    #[schemars(skip)]
    pub retry_after: Option<u32>,
}

impl Problem {
    /// A problem with a status, a code and both messages.
    pub fn new(
        status: StatusCode,
        code: &str,
        en: impl Into<String>,
        zh: impl Into<String>,
    ) -> Self {
        let en = en.into();
        Self {
            kind: format!("urn:funnel:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: en.clone(),
            code: code.to_string(),
            message_en: en,
            message_zh: zh.into(),
            missing: Vec::new(),
            recorded_position: None,
            retry_after: None,
        }
    }

    /// The request body is not what the endpoint takes.
    pub fn bad_body(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.invalid_body",
            format!("the request body is not valid: {reason}"),
            format!("请求体无效：{reason}"),
        )
    }

    /// A query parameter or path segment is not valid.
    pub fn bad_request(what: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "request.invalid_parameter",
            format!("`{what}` is not valid: {reason}"),
            format!("参数 `{what}` 无效：{reason}"),
        )
    }

    pub fn unauthorized(en: &str, zh: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "auth.unauthenticated", en, zh)
    }

    pub fn forbidden(code: RefusalCode, en: impl Into<String>, zh: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code.as_str(), en, zh)
    }

    pub fn not_found(code: &str, en: impl Into<String>, zh: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, en, zh)
    }

    /// Something failed on our side; the detail goes to the log, not to the client.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server.internal",
            "the server failed to answer; the error is logged",
            "服务器处理失败，错误已记录",
        )
    }

    /// Temporarily unable to answer (busy, or the read models catching up); retrying (with the
    /// same Idempotency-Key) is safe, after `Retry-After`: one second.
    pub fn unavailable(en: impl Into<String>, zh: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server.unavailable",
            en,
            zh,
        );
        p.retry_after = Some(1);
        p
    }

    /// The event store cannot take the write now (e.g. the log has no leader): `Retry-After` is
    /// [`RETRY_AFTER_SECONDS`], about a JetStream leader election.
    pub fn store_unavailable(en: impl Into<String>, zh: impl Into<String>) -> Self {
        let mut p = Self::unavailable(en, zh);
        p.retry_after = Some(RETRY_AFTER_SECONDS);
        p
    }

    /// The problem for a domain refusal.
    pub fn refusal(refusal: &Refusal, recorded: Option<Position>) -> Self {
        let mut p = Self::new(
            status_for(refusal.code),
            refusal.code.as_str(),
            refusal.message_en.clone(),
            refusal.message_zh.clone(),
        );
        p.missing = refusal
            .missing
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{c:?}"))
            })
            .collect();
        p.recorded_position = recorded;
        p
    }
}

/// The `Retry-After` of a 503: a JetStream stream elects a new leader within a few seconds of
/// losing one.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// The HTTP status for a refusal code: authority → 403, not found → 404, validation → 422,
/// conflicts and wrong state → 409.
pub fn status_for(code: RefusalCode) -> StatusCode {
    use RefusalCode::*;
    match code {
        ReadOnly
        | UnknownStaff
        | StaffInactive
        | RoleNotPermitted
        | OtherOffice
        | NotOwner
        | OwnerOnly
        | NotAReviewer
        | OwnRole
        | ExecutiveOnly
        | TokenHolderOrExecutive
        | SessionHolderOnly
        | CalendarNeedsExecutive
        | SecondPersonRequired => StatusCode::FORBIDDEN,
        StaffNotFound | OfficeNotFound | LeadNotFound | ConflictNotFound | ReassignmentNotFound
        | DeclarationNotFound | ContractNotFound | PlanNotFound | SummaryNotFound
        | ErasureNotFound => StatusCode::NOT_FOUND,
        FieldRequired | FieldTooLong | InvalidValue | AssigneeNotEngineer | WinnerNotClaimant
        | UnknownKeyPerson | ControlCharacter | BidiControl | InvisibleName => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ => StatusCode::CONFLICT,
    }
}

impl Problem {
    /// An `Idempotency-Key` the caller already used for a different request.
    pub fn key_reused() -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "request.idempotency_key_reused",
            "this Idempotency-Key was already used for a different request (another command, target or body); a retry must repeat the request exactly, and a new request needs a new key",
            "该 Idempotency-Key 已用于另一个请求（命令、对象或请求体不同）；重试须与原请求完全相同，新请求请使用新的键",
        )
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Refused {
                refusal, recorded, ..
            } => Problem::refusal(&refusal, recorded),
            EngineError::Store(e @ funnel_store::StoreError::TooLarge { .. }) => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.too_large",
                format!("the command's events are too large for the log: {e}"),
                format!("命令产生的事件过大：{e}"),
            ),
            EngineError::Store(s) if s.is_retryable() || s.is_conflict() => {
                tracing::warn!(error = %s, "store unavailable");
                Problem::store_unavailable(
                    "the event store is unavailable; retry with the same Idempotency-Key",
                    "事件存储暂不可用，请使用相同的 Idempotency-Key 重试",
                )
            }
            EngineError::KeyReused { .. } => Problem::key_reused(),
            EngineError::CommandIdTaken { .. } => Problem::new(
                StatusCode::CONFLICT,
                "request.command_id_taken",
                "this command id is already on record for someone else; send the request with a new Idempotency-Key",
                "该命令编号已被他人使用；请使用新的 Idempotency-Key 重新发送",
            ),
            EngineError::Contention { .. } => Problem::unavailable(
                "the lead kept changing under this command; retry with the same Idempotency-Key",
                "该记录正被频繁修改，请使用相同的 Idempotency-Key 重试",
            ),
            other => Problem::internal(other),
        }
    }
}

/// A failed query or authentication, said over HTTP: the kind becomes the status, the code and
/// both messages stay as they are.
impl From<funnel_app::AppError> for Problem {
    fn from(e: funnel_app::AppError) -> Self {
        use funnel_app::ErrorKind;
        let status = match e.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut p = Problem::new(status, &e.code, e.message_en, e.message_zh);
        p.retry_after = e.retry_after;
        p
    }
}

impl From<funnel_store::StoreError> for Problem {
    fn from(e: funnel_store::StoreError) -> Self {
        EngineError::Store(e).into()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Unavailable is passing (busy, the read models catching up, the log electing a leader):
        // say when to try again, in a second unless the problem knows better.
        let retry_after = self
            .retry_after
            .or((status == StatusCode::SERVICE_UNAVAILABLE).then_some(1));
        if let Some(seconds) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_store_answers_503_with_retry_after() {
        let e = funnel_store::StoreError::Unavailable {
            backend: "nats",
            message: "no answer".into(),
        };
        let res = Problem::from(e).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            res.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(RETRY_AFTER_SECONDS))
        );
        let refused = Problem::bad_request("x", "y").into_response();
        assert!(refused.headers().get(header::RETRY_AFTER).is_none());
    }
}
