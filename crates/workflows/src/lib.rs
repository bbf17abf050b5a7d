//! The saga runtime: it reads the log in order, routes each business event to the workflow
//! instances it concerns (`funnel_domain::workflow::route`), lets them react (pure), sends the
//! commands they ask for through the engine, and appends their own events to their streams
//! (`workflow-<id>`). When caught up with the log it fires the durable timers that are due.
//!
//! Exactly once, by construction:
//! - commands carry ids derived from the instance, the trigger and a key, so the engine applies a
//!   re-sent command at most once;
//! - commands are sent *before* the instance's own events are appended, and every appended event
//!   carries the trigger's id as its causation id; a trigger whose id is already among an
//!   instance's causations is skipped. A crash between the two replays the trigger after restart:
//!   the commands are deduplicated and the instance's events written once;
//! - timers are events (`workflow.timer_scheduled`); the queue of pending timers is rebuilt from
//!   the log at start, so a timer missed while the runtime was down fires on start, marked late.
//!
//! A reaction that fails for a reason outside the domain (the store unavailable, an event that
//! does not decode, contention) is parked on the instance with the reason;
//! [`WorkflowRuntime::retry`] runs it again. A command the domain refuses is an answer, not a
//! failure: its refusal code is recorded as the command's outcome.
//!
//! The [`Tasks`] read model folds the tasks the instances open and close into the open tasks of
//! each person, role and office; the [`Instances`] read model folds each instance's state for
//! listing. A running runtime takes [`Control`] requests (retrying parked reactions) between its
//! rounds, so a server can offer them without a second runtime.

mod failpoint;
mod index;
mod instances;
mod runtime;
mod scheduler;
mod tasks;

pub use failpoint::FailPoint;
pub use index::{InstanceSummary, ParkedReaction, PendingTimer};
pub use instances::{InstanceRow, Instances};
pub use runtime::{Backlog, Control, RuntimeError, Stats, WorkflowRuntime};
pub use tasks::{OpenTaskRow, Tasks};
