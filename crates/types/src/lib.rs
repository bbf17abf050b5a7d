//! Vocabulary shared by every Funnel crate: identifiers, actors and roles, stream names, versions and
//! positions, the event envelope and the clock.
//!
//! Nothing here does I/O. The one exception to "no ambient state" is [`SystemClock`], which reads the
//! wall clock; everything that needs time takes a [`Clock`] so tests can inject a [`ManualClock`].

mod clock;
mod envelope;
mod ids;
mod role;
mod stream;

pub use clock::{Clock, ManualClock, SystemClock};
pub use envelope::{Envelope, Metadata};
pub use ids::{
    CommandId, ConflictId, ContractId, CorrelationId, DeclarationId, EventId, KeyPersonId, LeadId,
    OfficeId, PlanId, ReassignmentId, StaffId, SummaryId, TaskId, TimerId, VisitId, WorkflowId,
};
pub use role::{Actor, Role};
pub use stream::{ExpectedVersion, Position, StreamId, StreamIdError, Version, valid_category};
