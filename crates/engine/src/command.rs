//! The commands the engine accepts, which stream each one goes to, and how it is decided.

use crate::EngineError;
use crate::aggregate::{Folded, State, office_named};
use chrono_tz::Tz;
use funnel_domain::erasure::{self, ErasureCommand};
use funnel_domain::lead::{self, LeadCommand};
use funnel_domain::org::{self, OfficeCommand, StaffCommand};
use funnel_domain::plan::{self, PlanCommand};
use funnel_domain::summary::{self, SummaryCommand};
use funnel_domain::work_calendar::{self, CalendarCommand};
use funnel_domain::{
    Acting, Ctx, Decision, Event, RefusalCode, customer_key, customer_key_v1, upgrade_key,
};
use funnel_store::EventStore;
use funnel_types::{LeadId, OfficeId, PlanId, StaffId, StreamId, SummaryId, Version};

/// Who issues a command: a member of staff (resolved from their staff stream) or a named part of the
/// system (bootstrap, sagas, the timer scheduler).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Who {
    Staff(StaffId),
    System(String),
}

/// A command for one aggregate.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Office {
        office_id: OfficeId,
        cmd: OfficeCommand,
    },
    Staff {
        staff_id: StaffId,
        cmd: StaffCommand,
    },
    /// `lead_id` is ignored for a registration (the id comes from the customer key) and required
    /// otherwise.
    Lead {
        lead_id: Option<LeadId>,
        cmd: LeadCommand,
    },
    /// `plan_id` is required only to file a plan.
    Plan {
        plan_id: Option<PlanId>,
        cmd: PlanCommand,
    },
    /// `summary_id` is required except to compile.
    Summary {
        summary_id: Option<SummaryId>,
        cmd: SummaryCommand,
    },
    /// The working calendar of a year (`calendar-<year>`).
    Calendar { cmd: CalendarCommand },
    /// An erasure of a person's personal data (`erasure-<id>`).
    Erasure {
        erasure_id: uuid::Uuid,
        cmd: ErasureCommand,
    },
}

pub(crate) fn staff_stream(id: StaffId) -> StreamId {
    stream("staff", id)
}

pub(crate) fn lead_stream(id: LeadId) -> StreamId {
    stream("lead", id)
}

pub(crate) fn office_stream(id: OfficeId) -> StreamId {
    stream("office", id)
}

fn stream(category: &str, id: impl std::fmt::Display) -> StreamId {
    // Categories are literals and ids are UUIDs, so the name is always valid.
    StreamId::new(category, id)
        .unwrap_or_else(|_| StreamId::parse("invalid-stream").expect("literal stream name"))
}

fn missing(what: &str) -> EngineError {
    EngineError::refused(
        RefusalCode::FieldRequired,
        format!("`{what}` is required"),
        format!("`{what}` 为必填项"),
    )
}

impl Command {
    /// The stream the command is decided against and appended to.
    pub fn stream(&self, acting: &Acting) -> Result<StreamId, EngineError> {
        Ok(match self {
            Command::Office { office_id, .. } => office_stream(*office_id),
            Command::Staff { staff_id, .. } => staff_stream(*staff_id),
            Command::Lead {
                cmd: LeadCommand::Register(r),
                ..
            } => lead_stream(LeadId::derived(&customer_key(
                &r.customer_name,
                &r.project_name,
            ))),
            Command::Lead {
                cmd: LeadCommand::ReserveKey { registered_key, .. },
                ..
            } => lead_stream(LeadId::derived(&upgrade_key(registered_key))),
            Command::Lead { lead_id, .. } => {
                lead_stream(lead_id.ok_or_else(|| missing("lead_id"))?)
            }
            Command::Plan {
                cmd: PlanCommand::Submit { period, .. },
                ..
            } => {
                let me = acting.staff_id().ok_or_else(|| missing("engineer"))?;
                stream("plan", plan::plan_id(me, period))
            }
            Command::Plan {
                cmd:
                    PlanCommand::MarkOverdue {
                        engineer, period, ..
                    },
                ..
            } => stream("plan", plan::plan_id(*engineer, period)),
            Command::Plan { plan_id, .. } => {
                stream("plan", plan_id.ok_or_else(|| missing("plan_id"))?)
            }
            Command::Summary {
                cmd: SummaryCommand::Compile { office, period, .. },
                ..
            } => stream("summary", summary::summary_id(*office, period)),
            Command::Summary { summary_id, .. } => {
                stream("summary", summary_id.ok_or_else(|| missing("summary_id"))?)
            }
            Command::Calendar {
                cmd: CalendarCommand::Publish { year, .. },
            } => {
                if !(0..=9999).contains(year) {
                    return Err(EngineError::refused(
                        RefusalCode::InvalidValue,
                        format!("{year} is not a year"),
                        format!("{year} 不是有效年份"),
                    ));
                }
                stream("calendar", year)
            }
            Command::Erasure { erasure_id, .. } => stream("erasure", erasure_id),
        })
    }

    /// Whether the decision needs every member of staff (a staff change that could remove the
    /// last executive).
    pub fn needs_organisation(&self) -> bool {
        matches!(
            self,
            Command::Staff {
                cmd: StaffCommand::Leave { .. }
                    | StaffCommand::ChangeRole { .. }
                    | StaffCommand::Reassign { .. },
                ..
            }
        )
    }

    /// The stream the command is decided against and appended to, looking in the store where the
    /// command alone does not say it: a registration goes to the lead its customer already has.
    ///
    /// That is, in order: the lead registered under key version 1 with the same version-1 key (a
    /// customer registered before key version 2 keeps its lead); else the stream its current key
    /// names, unless that stream holds a key reservation (`lead.key_reserved`, a look-alike of a
    /// lead registered before key version 2), which sends it on to the reserved lead. Every other
    /// command goes to [`Command::stream`].
    pub async fn route(
        &self,
        store: &dyn EventStore,
        acting: &Acting,
    ) -> Result<StreamId, EngineError> {
        let Command::Lead {
            cmd: LeadCommand::Register(r),
            ..
        } = self
        else {
            return self.stream(acting);
        };
        let v1 = customer_key_v1(&r.customer_name, &r.project_name);
        let current = customer_key(&r.customer_name, &r.project_name);
        if v1 != current {
            // A version-1 key that differs from its current key is never a current key (current
            // keys are their own upgrade), so only a lead registered under version 1 lives here.
            let legacy = lead_stream(LeadId::derived(&v1));
            if store.stream_version(&legacy).await?.is_some() {
                return Ok(legacy);
            }
        }
        let at_key = lead_stream(LeadId::derived(&current));
        let first = store.read_stream(&at_key, Version::FIRST, 1).await?;
        if let Some(rec) = first.first()
            && rec.meta.event_type == "lead.key_reserved"
            && let Event::LeadKeyReserved(k) = funnel_codec::decode_recorded(rec)?.payload
        {
            return Ok(lead_stream(k.lead_id));
        }
        Ok(at_key)
    }

    /// Other members of staff the command names.
    pub fn referenced_staff(&self) -> Vec<StaffId> {
        match self {
            Command::Lead { cmd, .. } => cmd.referenced_staff(),
            _ => Vec::new(),
        }
    }

    /// Members of staff the aggregate's current state names (a lead's owner), whom the decision may
    /// need to know about.
    pub(crate) fn people_in(&self, folded: &Folded) -> Vec<StaffId> {
        match (self, &folded.state) {
            (Command::Lead { .. }, State::Lead(s)) => {
                s.lead.as_ref().map(|l| l.people()).unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    /// The office whose time zone the decision needs (visit plans only).
    pub(crate) fn office_for_timezone(&self, acting: &Acting, folded: &Folded) -> Option<OfficeId> {
        match self {
            Command::Plan {
                cmd: PlanCommand::Submit { .. },
                ..
            } => acting.office(),
            Command::Plan {
                cmd: PlanCommand::MarkOverdue { office, .. },
                ..
            } => Some(*office),
            Command::Plan { .. } => folded.plan_office,
            _ => None,
        }
    }

    /// Decides the command against the stream's folded state.
    pub(crate) fn decide(&self, folded: &Folded, ctx: &Ctx<'_>, tz: Tz) -> Decision {
        match (self, &folded.state) {
            (Command::Office { office_id, cmd }, State::Office(state)) => {
                let OfficeCommand::Open {
                    office_id: inner, ..
                } = cmd;
                if inner != office_id {
                    return mismatch("office_id");
                }
                org::decide_office(state, cmd, ctx)
            }
            (Command::Staff { staff_id, cmd }, State::Staff(state)) => {
                if matches!(cmd, StaffCommand::Join { staff_id: inner, .. } if inner != staff_id) {
                    return mismatch("staff_id");
                }
                org::decide_staff(state, cmd, ctx)
            }
            (Command::Lead { cmd, .. }, State::Lead(state)) => lead::decide(state, cmd, ctx),
            (Command::Plan { cmd, .. }, State::Plan(state)) => {
                plan::decide_plan(state, cmd, ctx, tz)
            }
            (Command::Summary { cmd, .. }, State::Summary(state)) => {
                summary::decide_summary(state, cmd, ctx)
            }
            (Command::Calendar { cmd }, State::Calendar(state)) => {
                work_calendar::decide_calendar(state, cmd, ctx)
            }
            (Command::Erasure { erasure_id, cmd }, State::Erasure(state)) => {
                erasure::decide_erasure(state, *erasure_id, cmd, ctx)
            }
            // Every command routes to a stream of its own category (`Command::stream`).
            _ => Err(funnel_domain::Refusal::new(
                RefusalCode::InvalidValue,
                "the command does not fit the stream it was routed to",
                "命令与其目标数据流不符",
            )
            .into()),
        }
    }

    /// The office the new events belong to.
    pub(crate) fn office_of(
        &self,
        acting: &Acting,
        folded: &Folded,
        new: &[Event],
    ) -> Option<OfficeId> {
        new.iter()
            .rev()
            .find_map(office_named)
            .or(folded.last_office)
            .or(match self {
                Command::Lead { .. } | Command::Plan { .. } | Command::Summary { .. } => {
                    acting.office()
                }
                _ => None,
            })
    }
}

fn mismatch(field: &str) -> Decision {
    Err(funnel_domain::Refusal::new(
        RefusalCode::InvalidValue,
        format!("`{field}` of the command and of its target differ"),
        format!("命令中的 `{field}` 与目标不一致"),
    )
    .into())
}
