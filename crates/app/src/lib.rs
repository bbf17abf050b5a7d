//! The application layer: what every interface of Funnel (the HTTP API, the command line, and
//! later the console and the gRPC endpoint) calls, so that none of them holds logic of its own.
//!
//! - `open`: the choice of storage backend from a URL (`open` names the URL in its error); the
//!   engine and the read models know only the store contract (`funnel_store::EventStore`).
//! - [`auth`]: the one function that turns a credential into the acting person
//!   ([`auth::authenticate`]), with their role, office and read scope ([`auth::Caller`]); the
//!   command line acts as [`auth::Caller::local_operator`].
//! - [`credentials`]: password hashes (Argon2id) and failed sign-ins, kept apart from the log.
//! - [`reads`]: what queries read from ([`Reads`]: the store, the read models, as-of replays),
//!   naming offices and people, paging.
//! - [`query`]: typed queries and typed answers (with JSON Schemas) for every report, list and
//!   record; errors are [`AppError`] (a kind, a stable code, English and Chinese).

pub mod answers;
pub mod auth;
pub mod chain;
pub mod credentials;
pub mod error;
mod open;
pub mod privacy;
pub mod query;
pub mod reads;
mod replays;
pub mod staff_names;

pub use error::{AppError, ErrorKind};
pub use open::{OpenError, StoreUrl, open, open_store, open_store_with, open_store_with_replicas};
pub use reads::{Paging, ReadOptions, Reads};
pub use replays::Replays;
