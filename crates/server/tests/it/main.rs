//! The HTTP server's tests, one binary: each module drives the router (or a real listener) over
//! a store in a temporary directory; `common` is the world they share.

mod common;

mod answers;
mod api;
mod authz;
mod bad_input;
mod console;
mod customer_keys;
mod erasures;
mod forms;
mod idempotency;
mod leads;
mod oidc;
mod org;
mod pagination;
mod records;
mod sessions;
mod sign_in_logs;
mod time_zones;
mod verify;
mod webhooks;
mod workflows;
