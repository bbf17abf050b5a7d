//! The application layer: what every interface of Funnel (the HTTP API, the command line, and
//! later the console and the gRPC endpoint) calls, so that none of them holds logic of its own.
//!
//! - `open`: the choice of storage backend from a URL (`open` names the URL in its error); the
//!   engine and the read models know only the store contract (`funnel_store::EventStore`).

mod open;

pub use open::{OpenError, StoreUrl, open, open_store, open_store_with_replicas};
