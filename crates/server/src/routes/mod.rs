//! The handlers: probes, metrics and the OpenAPI document (`ops`), commands (`write`) and queries
//! (`read`), offices and staff (`org`), webhook subscriptions (`webhooks`), saga instances
//! (`workflows`), the manual's forms (`forms`), browser sign-in (`session`), the log as Parquet
//! (`export`).

pub mod export;
pub mod forms;
pub mod ops;
pub mod org;
pub mod privacy;
pub mod read;
pub mod session;
pub mod webhooks;
pub mod workflows;
pub mod write;
