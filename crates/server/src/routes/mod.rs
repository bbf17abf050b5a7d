//! The handlers: probes, metrics and the OpenAPI document (`ops`), commands (`write`) and queries
//! (`read`), webhook subscriptions (`webhooks`).

pub mod ops;
pub mod read;
pub mod webhooks;
pub mod write;
