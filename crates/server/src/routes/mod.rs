//! The handlers: probes, metrics and the OpenAPI document (`ops`), commands (`write`) and queries
//! (`read`).

pub mod ops;
pub mod read;
pub mod write;
