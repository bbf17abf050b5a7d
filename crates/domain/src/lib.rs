//! The sales process as pure deciders (see `docs/manual-coverage.md` for the rule-by-rule map).
//!
//! Each aggregate has a state with `Default` meaning "does not exist", an `evolve` that applies one
//! event, and a `decide` that turns a command into events or a refusal. Nothing here is async, does
//! I/O or reads a clock: the time of a command comes in [`Ctx::at`], the acting member of staff in
//! [`Ctx::acting`], the organisation's settings in [`Policy`].

mod acting;
pub mod erasure;
pub mod events;
pub mod lead;
pub mod model;
mod normalize;
pub mod org;
pub mod plan;
mod policy;
pub mod privacy;
pub mod refusal;
pub mod summary;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod time;
pub mod work_calendar;
pub mod workflow;

pub use acting::{Acting, Ctx, StaffInfo, StaffLookup};
pub use events::{EVENT_TYPES, Event, deserialize_payload, event_schemas};
pub use normalize::{
    KEY_VERSION, customer_key, customer_key_v1, fold_name, normalise_name, upgrade_key,
};
pub use policy::{Policy, ReviewerSeat, seat_label_en, seat_label_zh};
pub use refusal::{Decision, Refusal, RefusalCode, Rejected};
pub use time::DEFAULT_TIME_ZONE;
pub use work_calendar::WorkCalendar;
