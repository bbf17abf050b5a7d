//! What the engine folds from one stream: the aggregate's state for its decider, and the two facts
//! the engine itself reads off the history (the office named last, and a visit plan's office).
//! Folding an event more is all a command on a long stream costs once its state is cached.

use funnel_domain::erasure::{self, ErasureState};
use funnel_domain::lead::{self, LeadState};
use funnel_domain::org::{self, OfficeState, StaffState};
use funnel_domain::plan::{self, PlanState};
use funnel_domain::summary::{self, SummaryState};
use funnel_domain::work_calendar::{self, CalendarState};
use funnel_domain::{Event, StaffInfo};
use funnel_types::{OfficeId, StreamId};
use serde::{Deserialize, Serialize};

/// The decider state of a stream, by its category.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum State {
    Office(OfficeState),
    Staff(StaffState),
    Lead(LeadState),
    Plan(PlanState),
    Summary(SummaryState),
    Calendar(CalendarState),
    Erasure(ErasureState),
    /// A category the engine decides nothing on (it only reads it).
    Other,
}

impl State {
    fn empty(stream: &StreamId) -> Self {
        match stream.category() {
            "office" => State::Office(OfficeState::default()),
            "staff" => State::Staff(StaffState::default()),
            "lead" => State::Lead(LeadState::default()),
            "plan" => State::Plan(PlanState::default()),
            "summary" => State::Summary(SummaryState::default()),
            "calendar" => State::Calendar(CalendarState::default()),
            "erasure" => State::Erasure(ErasureState::default()),
            _ => State::Other,
        }
    }

    fn apply(&mut self, e: &Event) {
        // `evolve` functions take the state by value.
        match self {
            State::Office(s) => *s = org::evolve_office(std::mem::take(s), e),
            State::Staff(s) => *s = org::evolve_staff(std::mem::take(s), e),
            State::Lead(s) => *s = lead::evolve(std::mem::take(s), e),
            State::Plan(s) => *s = plan::evolve_plan(std::mem::take(s), e),
            State::Summary(s) => *s = summary::evolve_summary(std::mem::take(s), e),
            State::Calendar(s) => *s = work_calendar::evolve_calendar(std::mem::take(s), e),
            State::Erasure(s) => *s = erasure::evolve_erasure(std::mem::take(s), e),
            State::Other => {}
        }
    }
}

/// The state of the categories whose streams grow long enough to be worth a snapshot (leads, and
/// staff with their sessions), plus offices (small, and read by every plan command).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Persisted {
    Office(OfficeState),
    Staff(StaffState),
    Lead(LeadState),
}

/// A stream folded: its state and what the engine reads off its history.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Folded {
    pub state: State,
    /// The office the last event naming one named (see [`office_named`]).
    pub last_office: Option<OfficeId>,
    /// A visit plan's office, from its last submission or overdue mark.
    pub plan_office: Option<OfficeId>,
}

impl Folded {
    pub fn empty(stream: &StreamId) -> Self {
        Self {
            state: State::empty(stream),
            last_office: None,
            plan_office: None,
        }
    }

    pub fn apply(&mut self, e: &Event) {
        if let Some(office) = office_named(e) {
            self.last_office = Some(office);
        }
        match e {
            Event::VisitPlanSubmitted(p) => self.plan_office = Some(p.office),
            Event::VisitPlanOverdue(p) => self.plan_office = Some(p.office),
            _ => {}
        }
        self.state.apply(e);
    }

    pub fn staff_info(&self) -> Option<StaffInfo> {
        match &self.state {
            State::Staff(s) => s.info(),
            _ => None,
        }
    }

    pub fn timezone(&self) -> chrono_tz::Tz {
        match &self.state {
            State::Office(s) => s.timezone(),
            _ => OfficeState::default().timezone(),
        }
    }

    /// The state in its snapshot form, when its category keeps snapshots.
    pub fn persisted(&self) -> Option<Persisted> {
        match &self.state {
            State::Office(s) => Some(Persisted::Office(s.clone())),
            State::Staff(s) => Some(Persisted::Staff(s.clone())),
            State::Lead(s) => Some(Persisted::Lead(s.clone())),
            _ => None,
        }
    }

    /// The state a snapshot stands for, when it is of the stream's category.
    pub fn from_persisted(
        stream: &StreamId,
        state: Persisted,
        last_office: Option<OfficeId>,
        plan_office: Option<OfficeId>,
    ) -> Option<Self> {
        let state = match (State::empty(stream), state) {
            (State::Office(_), Persisted::Office(s)) => State::Office(s),
            (State::Staff(_), Persisted::Staff(s)) => State::Staff(s),
            (State::Lead(_), Persisted::Lead(s)) => State::Lead(s),
            _ => return None,
        };
        Some(Self {
            state,
            last_office,
            plan_office,
        })
    }
}

/// The office an event names, for the office of the events that follow it.
pub(crate) fn office_named(e: &Event) -> Option<OfficeId> {
    match e {
        Event::OfficeOpened(x) => Some(x.office_id),
        Event::StaffJoined(x) => x.office,
        Event::StaffMovedOffice(x) => x.to,
        Event::LeadRegistered(x) => Some(x.office),
        Event::LeadKeyReserved(x) => Some(x.office),
        Event::VisitPlanSubmitted(x) => Some(x.office),
        Event::VisitPlanOverdue(x) => Some(x.office),
        Event::SummaryCompiled(x) => Some(x.office),
        _ => None,
    }
}
