//! What the runner reports about its projections: [`ProjectionStatus`] for `funnel status`-style
//! views, [`Progress`] for callbacks during catch-up and rebuilds, and [`RunnerError`].

use crate::Parked;
use crate::checkpoint::CheckpointError;
use funnel_store::StoreError;
use funnel_types::Position;
use serde::Serialize;

/// Where a projection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionState {
    /// Behind the last head the runner has seen.
    CatchingUp,
    /// At the last head the runner has seen.
    Live,
    /// A fresh state is being built beside the one serving reads.
    Rebuilding,
}

/// How far a rebuild has come.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RebuildProgress {
    pub name: &'static str,
    /// Events the fresh state has taken (applied or parked).
    pub events_done: u64,
    /// The position the fresh state has reached.
    pub checkpoint: Position,
    /// The head seen when the rebuild started; the fresh state replaces the old one once it gets
    /// there (`None` until the runner has read the head).
    pub target: Option<Position>,
}

/// The state of one projection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ProjectionStatus {
    pub name: &'static str,
    /// `ReadModel::VERSION` in this build.
    pub version: u32,
    /// The version the state serving reads was built with.
    pub stored_version: u32,
    /// The position the state serving reads reflects.
    pub checkpoint: Position,
    /// The last head the runner has seen.
    pub head: Position,
    /// Positions behind the head.
    pub lag: u64,
    /// Events behind the head, when cheap to know (nothing behind, or a backend whose positions are
    /// consecutive); `None` otherwise.
    pub lag_events: Option<u64>,
    /// Events this projection parked, in position order.
    pub parked: Vec<Parked>,
    pub state: ProjectionState,
    /// Whether `get` can return the state (false while an unreadable snapshot is being rebuilt).
    pub readable: bool,
    pub rebuild: Option<RebuildProgress>,
}

/// Reported after every page a catch-up applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Events read during this catch-up.
    pub events: u64,
    /// The lowest checkpoint of all states, serving or rebuilding.
    pub position: Position,
    /// The last head the runner has seen.
    pub head: Position,
    /// Rebuilds under way.
    pub rebuilds: Vec<RebuildProgress>,
}

/// Why the runner stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("projection {name}: cannot snapshot the state: {reason}")]
    Snapshot { name: &'static str, reason: String },
    #[error("projection {0} is registered twice")]
    AlreadyRegistered(&'static str),
    #[error("no projection named {0}")]
    Unknown(String),
    #[error("projection {0}: events were applied between preparing a save and writing it")]
    StaleSave(&'static str),
    #[error("timed out waiting for position {position}; projections are at {checkpoint}")]
    Timeout {
        position: Position,
        checkpoint: Position,
    },
}
