//! The store's error type. Callers branch on the variant; the message is for people.

use funnel_types::{ExpectedVersion, Position, StreamId, Version};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the expected version. `actual` is its version now (`None`: no stream).
    #[error("stream {stream} expected {expected} but is at {}", actual.map(|v| format!("version {v}")).unwrap_or_else(|| "no stream".into()))]
    WrongExpectedVersion {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: Option<Version>,
    },
    /// The request is too large for the store.
    #[error("too large: {size} {what}, the limit is {limit}")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    /// The request is malformed (no events, bad filter …).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The backend cannot be reached or did not answer in time. Retrying later may succeed; whether
    /// an append that failed this way was applied is unknown, so retry it with the same command id.
    #[error("{backend} store unavailable: {message}")]
    Unavailable {
        backend: &'static str,
        message: String,
    },
    /// A stored record cannot be read back (damaged, or written by a newer Funnel).
    #[error("corrupt record at position {position}: {reason}")]
    Corrupt { position: Position, reason: String },
    /// The server is older than Funnel supports.
    #[error("unsupported server: found {found}, need {required} or later")]
    UnsupportedServer { found: String, required: String },
    /// The writer's lease ended (lost, expired, or taken by another process): its writes are
    /// refused so that a former holder cannot act (see `lease`). Never retried by the writer.
    #[error("lease {lease} under term {term} no longer held: {reason}")]
    Fenced {
        lease: String,
        term: u64,
        reason: String,
    },
    /// Any other backend failure.
    #[error("{backend} store error: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
}

impl StoreError {
    /// Whether the same request may succeed if retried (with the same command id).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// Whether this is an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::WrongExpectedVersion { .. })
    }
}
