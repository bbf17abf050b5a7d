//! The object-safe face of a read model: [`Projection`], implemented for every [`ReadModel`] by the
//! [`Typed`] wrapper, so that one runner can hold models of different types and hand each back typed
//! through an `Any` downcast.

use crate::ReadModel;
use crate::checkpoint::CheckpointStore;
use funnel_domain::Event;
use funnel_types::{Envelope, Position};
use serde::{Deserialize, Serialize};
use std::any::Any;

/// An event a projection could not use: it does not decode, or the model refused it. The runner
/// records it with the reason and moves the checkpoint past it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Parked {
    pub position: Position,
    pub event_type: String,
    pub reason: String,
}

/// A read model with its type erased. Implemented for every [`ReadModel`] through [`Typed`].
pub trait Projection: Send + Sync + std::fmt::Debug {
    /// The model's `ReadModel::NAME`.
    fn name(&self) -> &'static str;
    /// The model's `ReadModel::VERSION` in this build.
    fn version(&self) -> u32;
    /// Applies one event (see [`ReadModel::apply`]).
    fn apply(&mut self, event: &Envelope<Event>) -> Result<(), String>;
    /// The state as a snapshot: MessagePack with fields by position (compact and fast). A model
    /// whose shape changes must bump its `VERSION`; a snapshot that no longer reads is rebuilt.
    fn snapshot(&self) -> Result<Vec<u8>, String>;
    /// A projection of the same type with the state read from a snapshot.
    fn restore(&self, snapshot: &[u8]) -> Result<Box<dyn Projection>, String>;
    /// A projection of the same type with the default (empty) state.
    fn fresh(&self) -> Box<dyn Projection>;
    /// The wrapper itself, for a typed downcast.
    fn as_any(&self) -> &dyn Any;
    /// Whether the runner keeps history snapshots of it ([`ReadModel::KEEPS_HISTORY`]).
    fn keeps_history(&self) -> bool {
        false
    }
    /// Binds a table model to the checkpoint file its tables live in (a fresh one gets a new table
    /// generation); called by the runner on every state it creates or restores. Nothing for an
    /// in-memory model.
    fn attach(&mut self, checkpoints: &CheckpointStore) -> Result<(), String> {
        let _ = checkpoints;
        Ok(())
    }
    /// The generation of the SQL tables that hold the state of a table model; `None` for an
    /// in-memory model.
    fn tables(&self) -> Option<u64> {
        None
    }
    /// Writes the changes applied since the last save into the tables, inside the checkpoint
    /// store's transaction (so they commit with the checkpoint). Nothing for an in-memory model.
    fn write_tables(&self, tx: &rusqlite::Connection) -> rusqlite::Result<()> {
        let _ = tx;
        Ok(())
    }
    /// Says that the transaction of [`Projection::write_tables`] committed: the changes are in
    /// the tables now.
    fn tables_written(&mut self) {}
}

/// Wraps a [`ReadModel`] as a [`Projection`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Typed<M>(pub M);

impl<M: ReadModel> Projection for Typed<M> {
    fn name(&self) -> &'static str {
        M::NAME
    }

    fn version(&self) -> u32 {
        M::VERSION
    }

    fn apply(&mut self, event: &Envelope<Event>) -> Result<(), String> {
        self.0.apply(event)
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        rmp_serde::to_vec(&self.0).map_err(|e| e.to_string())
    }

    fn restore(&self, snapshot: &[u8]) -> Result<Box<dyn Projection>, String> {
        let state = rmp_serde::from_slice(snapshot).map_err(|e| e.to_string())?;
        Ok(Box::new(Typed::<M>(state)))
    }

    fn fresh(&self) -> Box<dyn Projection> {
        Box::new(Typed::<M>::default())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn keeps_history(&self) -> bool {
        M::KEEPS_HISTORY
    }
}

/// The typed model inside a projection, when it is an `M`.
pub(crate) fn downcast<M: ReadModel>(p: &dyn Projection) -> Option<&M> {
    p.as_any().downcast_ref::<Typed<M>>().map(|t| &t.0)
}
