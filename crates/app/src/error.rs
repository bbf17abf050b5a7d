//! What a query or the authentication answers when it cannot answer: a kind (which an interface
//! maps to its own status, e.g. HTTP 404), a stable code and a message in English and Chinese.

use funnel_domain::RefusalCode;
use funnel_store::StoreError;

/// The kind of failure, which every interface maps to its own way of saying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A parameter is not valid (HTTP 400).
    BadRequest,
    /// No credential, or one that names nobody (HTTP 401).
    Unauthenticated,
    /// The caller may not read this (HTTP 403).
    Forbidden,
    /// Nothing of that name or id (HTTP 404).
    NotFound,
    /// The request cannot be answered as it stands (HTTP 409).
    Conflict,
    /// A well-formed request with a value the log rules out (HTTP 422).
    Unprocessable,
    /// Passing: busy, catching up, or the store unreachable (HTTP 503).
    Unavailable,
    /// Something failed on our side; the detail is logged, not shown (HTTP 500).
    Internal,
}

/// A failed query, with a stable code and both messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message_en}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub code: String,
    pub message_en: String,
    pub message_zh: String,
    /// Seconds after which asking again may succeed (for `Unavailable`).
    pub retry_after: Option<u32>,
}

/// Seconds a JetStream stream takes to elect a new leader after losing one: when to try again
/// after the store was unreachable.
pub const STORE_RETRY_AFTER_SECONDS: u32 = 2;

impl AppError {
    pub fn new(kind: ErrorKind, code: &str, en: impl Into<String>, zh: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.to_string(),
            message_en: en.into(),
            message_zh: zh.into(),
            retry_after: None,
        }
    }

    /// A query parameter or path segment is not valid.
    pub fn bad_request(what: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorKind::BadRequest,
            "request.invalid_parameter",
            format!("`{what}` is not valid: {reason}"),
            format!("参数 `{what}` 无效：{reason}"),
        )
    }

    pub fn unauthenticated(en: &str, zh: &str) -> Self {
        Self::new(ErrorKind::Unauthenticated, "auth.unauthenticated", en, zh)
    }

    pub fn forbidden(code: RefusalCode, en: impl Into<String>, zh: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, code.as_str(), en, zh)
    }

    pub fn not_found(code: &str, en: impl Into<String>, zh: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, en, zh)
    }

    /// Temporarily unable to answer; asking again in a second is safe.
    pub fn unavailable(en: impl Into<String>, zh: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Unavailable, "server.unavailable", en, zh);
        e.retry_after = Some(1);
        e
    }

    /// Something failed on our side; the detail goes to the log, not to the caller.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            ErrorKind::Internal,
            "server.internal",
            "the server failed to answer; the error is logged",
            "服务器处理失败，错误已记录",
        )
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() || e.is_conflict() {
            tracing::warn!(error = %e, "store unavailable");
            let mut a = Self::unavailable(
                "the event store is unavailable; retry with the same Idempotency-Key",
                "事件存储暂不可用，请使用相同的 Idempotency-Key 重试",
            );
            a.retry_after = Some(STORE_RETRY_AFTER_SECONDS);
            return a;
        }
        Self::internal(e)
    }
}

impl From<funnel_codec::DecodeError> for AppError {
    fn from(e: funnel_codec::DecodeError) -> Self {
        Self::internal(e)
    }
}
