//! Read models computed from the log, and the runner that keeps them up to date.
//!
//! A read model ([`ReadModel`]) is a pure fold: `apply` takes one decoded event in log order and
//! changes the model, or says why it cannot (the runner then parks the event with the reason and goes
//! on; it never silently skips). Because read models are folds, every one of them can be computed as
//! of any position (apply the events up to it) or any date (apply the events that occurred by then).

pub mod checkpoint;
mod follow;
pub mod history;
pub mod models;
mod projection;
mod replay;
mod runner;
mod status;
mod tables;
mod zones;

pub use follow::{follow, follow_step, query_at_least, wait_until_shared};
pub use projection::{Parked, Projection, Typed};
pub use replay::{AsOf, AsOfInput, Replayed, replay_as_of, replay_as_of_until, replay_from};
pub use runner::{Runner, RunnerOptions, SaveScope};
pub use status::{Progress, ProjectionState, ProjectionStatus, RebuildProgress, RunnerError};
pub use tables::{LiveTables, TableModel, TableReaders, TableView, Tabled, live_tables};
pub use zones::{Zones, lead_office, zones};

use funnel_domain::Event;
use funnel_types::Envelope;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A read model: a deterministic fold over the log.
pub trait ReadModel:
    Default + Clone + PartialEq + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Stable name, used on the command line and in the checkpoint store.
    const NAME: &'static str;
    /// Bumped whenever `apply` changes meaning; a new version is rebuilt from position zero.
    const VERSION: u32;
    /// Applies one event. An `Err` parks the event with the reason; the model must then be unchanged.
    fn apply(&mut self, event: &Envelope<Event>) -> Result<(), String>;
    /// Says that the events applied are the history up to `moment` (an as-of replay by time): a
    /// model that measures time until "now" (days without a visit) measures it until `moment`,
    /// not until the last event applied. Nothing by default.
    fn complete_until(&mut self, moment: chrono::DateTime<chrono::Utc>) {
        let _ = moment;
    }
    /// Whether the runner keeps snapshots of this model at positions of the log
    /// ([`history`]), so that a report as of a past moment replays only from the nearest one.
    /// For the models reports are asked of as of a date; not for one whose state is an entry per
    /// event (its snapshots would grow with the square of the log).
    const KEEPS_HISTORY: bool = false;
    /// The event types [`ReadModel::apply`] does more with than note when they occurred; `None`
    /// (the default): every type. An as-of replay decodes only events of these types and gives
    /// the others, which are most of a log for a report, to [`ReadModel::pass`] undecoded.
    /// For an event `apply` would accept, `pass` must leave the model exactly as `apply` would: a
    /// test holds each model that lists its types to that, over an example of every event type.
    const READS: Option<&'static [&'static str]> = None;
    /// An event of a type outside [`ReadModel::READS`], in place of `apply`. Nothing by default.
    fn pass(&mut self, occurred_at: chrono::DateTime<chrono::Utc>) {
        let _ = occurred_at;
    }
    /// Whether [`ReadModel::apply`] must see an event of this type.
    fn reads(event_type: &str) -> bool {
        Self::READS.is_none_or(|types| types.contains(&event_type))
    }
}
