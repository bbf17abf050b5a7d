//! Records: a lead's whole current record and timeline (`GET /leads/{id}`), and a member of
//! staff's (`GET /staff/{id}`).
//!
//! A lead's record is folded from the lead's own stream (bounded by one lead, however long the log)
//! with the domain's own `evolve`, beside what the record page shows and the deciders do not keep
//! (titles and phones of key persons, visits, declarations, contract versions, owner history),
//! and named from the access read model. Each event and each refused attempt on the stream becomes
//! a timeline entry with the person's name and role, the time on the office's clock, a sentence in
//! Chinese and in English, and for changes the old and new values.

use super::describe::{self, wan_yuan};
use crate::auth::{Access, Caller};
use crate::error::AppError;
use crate::reads::{Reads, check_person};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use funnel_domain::Event;
use funnel_domain::events::AssignmentBasis;
use funnel_domain::lead::{Criterion, Lead, LeadState, checklist};
use funnel_domain::model::{
    Channel, ContactKind, Industry, KeyPersonRole, Level, PurchaseMode, Stage, Tier, VisitPurpose,
};
use funnel_types::{
    Actor, ConflictId, ContractId, DeclarationId, Envelope, KeyPersonId, LeadId, OfficeId,
    Position, ReassignmentId, Role, StaffId, StreamId, Version, VisitId,
};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;

/// A member of staff, named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PersonRef {
    pub staff_id: StaffId,
    /// Their name (a short id for someone the access model does not know).
    pub name: String,
    /// Their current role, when known.
    pub role: Option<Role>,
    /// The role in Chinese.
    pub role_zh: Option<String>,
}

impl PersonRef {
    pub(crate) fn of(access: &Access, id: StaffId) -> Self {
        let entry = access.staff.get(&id);
        PersonRef {
            staff_id: id,
            name: entry
                .map(|s| s.name.clone())
                .unwrap_or_else(|| short_name(id)),
            role: entry.map(|s| s.role),
            role_zh: entry.map(|s| s.role.label_zh().to_string()),
        }
    }
}

/// A name for someone the access model has not told: `#1a2b3c4d`.
fn short_name(id: StaffId) -> String {
    format!("#{}", id.to_string().chars().take(8).collect::<String>())
}

/// The name of a member of staff, or a short id.
pub(crate) fn name_of(access: &Access, id: StaffId) -> String {
    access
        .staff
        .get(&id)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| short_name(id))
}

/// Who acted: a member of staff in a role (the role they held then), or a component of Funnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ActorRef {
    /// `staff` or `system`.
    pub kind: String,
    pub staff_id: Option<StaffId>,
    /// The person's name, or `system:<component>`.
    pub name: String,
    /// The role they acted in.
    pub role: Option<Role>,
    pub role_zh: Option<String>,
}

impl ActorRef {
    fn of(access: &Access, actor: &Actor) -> Self {
        match actor {
            Actor::Staff { id, role } => ActorRef {
                kind: "staff".into(),
                staff_id: Some(*id),
                name: name_of(access, *id),
                role: Some(*role),
                role_zh: Some(role.label_zh().into()),
            },
            Actor::System { name } => ActorRef {
                kind: "system".into(),
                staff_id: None,
                name: format!("system:{name}"),
                role: None,
                role_zh: None,
            },
        }
    }
}

/// An office, named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OfficeRef {
    pub id: OfficeId,
    pub code: String,
    pub name: String,
}

impl OfficeRef {
    pub(crate) fn of(access: &Access, id: OfficeId) -> Self {
        let entry = access.offices.get(&id);
        OfficeRef {
            id,
            code: entry.map(|o| o.code.clone()).unwrap_or_default(),
            name: entry
                .map(|o| o.name.clone())
                .unwrap_or_else(|| id.to_string()),
        }
    }
}

/// One event of the lead's stream, where and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct EventRef {
    pub position: Position,
    /// The version of the lead's stream the event made.
    pub version: Version,
    /// The event type, e.g. `lead.criterion_met`.
    pub event_type: String,
    pub at: DateTime<Utc>,
    /// `at` on the office's clock, to the minute (`2026-09-30 18:00`).
    pub local: String,
}

/// The customer's contact (Table 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ContactView {
    pub name: String,
    pub phone: String,
}

/// Table 1 (客户信息登记表): what was registered, as corrected since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LeadFields {
    pub customer_name: String,
    /// Empty for a company-level lead (group and strategic purchasing).
    pub project_name: String,
    pub industry: Industry,
    pub industry_zh: String,
    pub purchase_mode: PurchaseMode,
    pub purchase_mode_zh: String,
    pub channel: Channel,
    pub channel_zh: String,
    pub location: String,
    pub contact: ContactView,
    pub need: String,
    /// Purchase scale and product requirements, once recorded.
    pub purchase_scale: Option<String>,
    pub registered_by: PersonRef,
    pub registered_at: DateTime<Utc>,
    /// `registered_at` on the office's clock.
    pub registered_local: String,
}

/// One item of a stage's checklist, and the event that met it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ChecklistItem {
    pub criterion: Criterion,
    pub label_zh: String,
    pub met: bool,
    /// The event that met it (for items derived from the record: the event that completed it).
    pub met_by: Option<EventRef>,
    /// The evidence recorded with it.
    pub evidence: Option<String>,
}

/// The checklist of one funnel stage for the lead's purchase mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ChecklistStage {
    pub stage: Stage,
    pub stage_zh: String,
    /// Whether the lead has ever reached this stage.
    pub reached: bool,
    pub items: Vec<ChecklistItem>,
    /// Items not met yet.
    pub missing: usize,
}

/// A key person on the customer's decision chain (Table 5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KeyPersonView {
    pub key_person_id: KeyPersonId,
    pub name: String,
    pub title: String,
    pub role: KeyPersonRole,
    pub role_zh: String,
    pub phone: String,
    pub personal_notes: String,
    /// Whether they are an insider (内线).
    pub insider: bool,
    /// The event that made them an insider.
    pub insider_since: Option<EventRef>,
    /// When they were last recorded.
    pub recorded: EventRef,
}

/// A relationship level, with its Chinese label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Relationship {
    /// 公司关系.
    pub company: Level,
    /// 个人关系.
    pub personal: Level,
    /// The last assessment, if any.
    pub assessed: Option<EventRef>,
}

/// A key person a visit met.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct KeyPersonBrief {
    pub key_person_id: KeyPersonId,
    pub name: String,
}

/// A visit or other contact (Table 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct VisitView {
    pub visit_id: VisitId,
    /// 1-based count of contacts on this lead.
    pub number: u32,
    pub kind: ContactKind,
    pub kind_zh: String,
    pub engineer: PersonRef,
    pub visited_at: DateTime<Utc>,
    /// `visited_at` on the office's clock.
    pub visited_local: String,
    pub purposes: Vec<VisitPurpose>,
    pub summary: String,
    pub information_gained: String,
    pub customer_feedback: String,
    pub next_step: String,
    pub met: Vec<KeyPersonBrief>,
    pub logged: EventRef,
}

/// Which declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeclarationKindView {
    /// 有效信息申报 (Table 4).
    ValidInfo,
    /// 准客户申报 (Table 6).
    Prospect,
}

/// Where a declaration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeclarationStateView {
    AwaitingReview,
    Approved,
    Returned,
    Filed,
    /// The lead left the funnel while it was under way.
    Withdrawn,
}

/// A declaration and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct DeclarationView {
    pub declaration_id: DeclarationId,
    pub kind: DeclarationKindView,
    pub kind_zh: String,
    pub declared_by: PersonRef,
    pub declared: EventRef,
    /// Expected amount in whole yuan (prospects).
    pub amount_cny: Option<u64>,
    /// The amount in 万元, as Chinese readers count it.
    pub amount_zh: Option<String>,
    pub tier: Option<Tier>,
    pub tier_zh: Option<String>,
    /// The criteria met when declared, as evidence.
    pub criteria: Vec<Criterion>,
    /// The declaration's note, or a prospect's quoting strategy.
    pub note: String,
    pub state: DeclarationStateView,
    pub reviewed_by: Option<PersonRef>,
    pub review_note: Option<String>,
    pub reviewed: Option<EventRef>,
    pub filed_by: Option<PersonRef>,
    pub filed: Option<EventRef>,
    /// Strategic prospects bring in the key-account department.
    pub key_account_involved: bool,
}

/// One version of a contract: as submitted, or as amended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ContractVersion {
    /// 1 for the submitted text, then one more per amendment.
    pub version: u32,
    pub amount_cny: u64,
    pub amount_zh: String,
    /// SHA-256 of the contract text: approvals are bound to it.
    pub content_hash: String,
    pub by: PersonRef,
    /// Why it was amended (empty for the first version).
    pub reason: String,
    pub recorded: EventRef,
}

/// How a reviewer seat stands on the current version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    Pending,
    Approved,
    Rejected,
}

/// A reviewer seat of a contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SeatView {
    pub seat: String,
    /// On the current version.
    pub state: SeatState,
    pub by: Option<PersonRef>,
    pub at: Option<EventRef>,
    /// A rejection's reasons.
    pub reasons: Option<String>,
}

/// A contract, its versions and its review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ContractView {
    pub contract_id: ContractId,
    pub submitted_by: PersonRef,
    /// Every version, oldest first; the last is current.
    pub versions: Vec<ContractVersion>,
    /// The seats of the current version.
    pub seats: Vec<SeatView>,
    pub signed: bool,
    pub signed_at: Option<EventRef>,
    pub orders: u32,
}

impl ContractView {
    /// The current version.
    pub fn current(&self) -> Option<&ContractVersion> {
        self.versions.last()
    }
}

/// A change of owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OwnerChange {
    pub from: Option<PersonRef>,
    pub to: PersonRef,
    pub basis: AssignmentBasis,
    pub basis_zh: String,
    pub basis_en: String,
    pub at: EventRef,
}

/// An ownership conflict waiting for a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OpenConflictView {
    pub conflict_id: ConflictId,
    /// First registrant first.
    pub claimants: Vec<PersonRef>,
}

/// A reassignment waiting for its approvals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PendingReassignmentView {
    pub reassignment_id: ReassignmentId,
    pub from: PersonRef,
    pub to: PersonRef,
    pub requested_by: Option<PersonRef>,
    /// The evidence for the change (§5.6).
    pub evidence: String,
    /// Who approved so far: `sales_department`, `original_owner`.
    pub approved_by: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub expires_local: String,
}

/// A value changed by an event: old → new.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Change {
    /// The field, e.g. `stage`, `owner`, `contact`.
    pub field: String,
    pub label_zh: String,
    /// The value before (`null`: none), as stored (wire names, ids, whole yuan).
    pub old: Option<String>,
    pub new: Option<String>,
    /// The values as Chinese readers read them (labels, names, 万元).
    pub old_zh: Option<String>,
    pub new_zh: Option<String>,
}

/// One event of the lead, or one refused attempt on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TimelineEntry {
    pub position: Position,
    pub version: Version,
    /// The event type; for a refused attempt `lead.touch_refused`.
    pub event_type: String,
    pub at: DateTime<Utc>,
    /// `at` on the office's clock, to the minute.
    pub local: String,
    /// Who acted (for a refused attempt: who tried, in their role).
    pub actor: ActorRef,
    /// True for an attempt that was refused (touching another engineer's lead, §5.7).
    pub refused: bool,
    /// The refused command, e.g. `log_visit`.
    pub refused_action: Option<String>,
    /// The refusal code given.
    pub refusal_code: Option<String>,
    pub summary_zh: String,
    pub summary_en: String,
    /// What the event changed, old → new.
    pub changes: Vec<Change>,
}

/// A lead's whole current record and its timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LeadRecord {
    pub lead_id: LeadId,
    /// The version of the lead's stream the record reflects.
    pub version: Version,
    /// The log position of the lead's last event.
    pub position: Position,
    pub office: OfficeRef,
    /// The IANA time zone of the lead's office: every `local` time is on its clock.
    pub time_zone: String,
    pub fields: LeadFields,
    pub stage: Stage,
    pub stage_zh: String,
    /// When the lead entered its stage.
    pub stage_since: DateTime<Utc>,
    /// The stage left when suspended or lost, to return to on reactivation.
    pub stage_before_exit: Option<Stage>,
    /// The checklists of the funnel stages (ordinary, valid, prospect) for the purchase mode.
    pub checklist: Vec<ChecklistStage>,
    pub owner: Option<PersonRef>,
    /// Everyone who registered this customer, first registrant first.
    pub registrants: Vec<PersonRef>,
    pub owner_history: Vec<OwnerChange>,
    pub open_conflict: Option<OpenConflictView>,
    pub pending_reassignment: Option<PendingReassignmentView>,
    pub relationship: Relationship,
    pub key_persons: Vec<KeyPersonView>,
    /// The key persons who are insiders.
    pub insiders: Vec<KeyPersonBrief>,
    pub visits: Vec<VisitView>,
    /// In-person visits since the lead last had no insider (the insider rule, §7).
    pub visits_without_insider: u32,
    pub declarations: Vec<DeclarationView>,
    /// Expected (prospect) or signed amount in whole yuan.
    pub amount_cny: Option<u64>,
    pub amount_zh: Option<String>,
    pub tier: Option<Tier>,
    pub contracts: Vec<ContractView>,
    /// Every event and refused attempt, in log order.
    pub timeline: Vec<TimelineEntry>,
    /// The moment the record is as of, when one was asked for (`as_of`): the lead as it stood
    /// then, with the events up to that position or that time only. `null`: now.
    pub as_of: Option<RecordAsOf>,
}

/// The moment a record stands at (`GET /leads/{id}?as_of=`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RecordAsOf {
    /// The position asked for, when `as_of` was one.
    pub position: Option<Position>,
    /// The time asked for (a date is the end of that day in the lead's office's time zone), on
    /// that zone's clock, when `as_of` was a date or a time.
    pub time: Option<DateTime<chrono::FixedOffset>>,
}

/// Builds the record from the lead's events, in stream order.
struct Fold<'a> {
    access: &'a Access,
    zone: Tz,
    state: LeadState,
    purchase_scale: Option<String>,
    stage_since: Option<DateTime<Utc>>,
    reached: Vec<Stage>,
    met_by: BTreeMap<Criterion, (EventRef, Option<String>)>,
    key_persons: BTreeMap<KeyPersonId, KeyPersonView>,
    assessed: Option<EventRef>,
    visits: Vec<VisitView>,
    declarations: Vec<DeclarationView>,
    contracts: Vec<ContractView>,
    owners: Vec<OwnerChange>,
    reassignment: Option<(StaffId, String)>,
    timeline: Vec<TimelineEntry>,
    last: Option<(Version, Position)>,
}

impl<'a> Fold<'a> {
    fn new(access: &'a Access, zone: Tz) -> Self {
        Fold {
            access,
            zone,
            state: LeadState::default(),
            purchase_scale: None,
            stage_since: None,
            reached: Vec::new(),
            met_by: BTreeMap::new(),
            key_persons: BTreeMap::new(),
            assessed: None,
            visits: Vec::new(),
            declarations: Vec::new(),
            contracts: Vec::new(),
            owners: Vec::new(),
            reassignment: None,
            timeline: Vec::new(),
            last: None,
        }
    }

    fn local(&self, t: DateTime<Utc>) -> String {
        funnel_domain::time::local_minute(t, self.zone)
    }

    fn person(&self, id: StaffId) -> PersonRef {
        PersonRef::of(self.access, id)
    }

    fn apply(&mut self, env: &Envelope<Event>) {
        let at = EventRef {
            position: env.meta.position,
            version: env.meta.version,
            event_type: env.meta.event_type.clone(),
            at: env.meta.occurred_at,
            local: self.local(env.meta.occurred_at),
        };
        self.last = Some((env.meta.version, env.meta.position));
        let before = self.state.lead.clone();
        let scale_before = self.purchase_scale.clone();
        self.state = funnel_domain::lead::evolve(std::mem::take(&mut self.state), &env.payload);
        self.record(&env.payload, &at);
        let changes = match (&before, &self.state.lead) {
            (Some(b), Some(a)) => self.changes(b, a, scale_before.as_deref()),
            _ => Vec::new(),
        };
        self.note_criteria(&at);
        let name = |id: StaffId| name_of(self.access, id);
        let (summary_zh, summary_en) = describe::describe(&env.payload, &name);
        let (actor, refused_action, refusal_code) = match &env.payload {
            Event::TouchRefused(t) => (
                Actor::staff(t.attempted_by, t.role),
                Some(t.action.clone()),
                Some(t.code.clone()),
            ),
            _ => (env.meta.actor.clone(), None, None),
        };
        self.timeline.push(TimelineEntry {
            position: at.position,
            version: at.version,
            event_type: at.event_type.clone(),
            at: at.at,
            local: at.local.clone(),
            actor: ActorRef::of(self.access, &actor),
            refused: refused_action.is_some(),
            refused_action,
            refusal_code,
            summary_zh,
            summary_en,
            changes,
        });
    }

    /// Criteria met now that were not before take this event as the one that met them; items
    /// no longer met (a derived item whose detail was cleared) lose theirs.
    fn note_criteria(&mut self, at: &EventRef) {
        let Some(lead) = &self.state.lead else {
            return;
        };
        let met = lead.met_criteria();
        self.met_by.retain(|c, _| met.contains(c));
        for c in met {
            self.met_by.entry(c).or_insert_with(|| (at.clone(), None));
        }
    }

    /// What the record page keeps beside the deciders' state.
    fn record(&mut self, event: &Event, at: &EventRef) {
        use Event::*;
        match event {
            LeadRegistered(e) => {
                self.stage_since = Some(e.registered_at);
                self.reached.push(Stage::Ordinary);
            }
            LeadOwnerAssigned(e) => {
                let (basis_zh, basis_en) = describe::basis(&e.basis);
                self.owners.push(OwnerChange {
                    from: e.previous.map(|p| self.person(p)),
                    to: self.person(e.owner),
                    basis: e.basis.clone(),
                    basis_zh,
                    basis_en,
                    at: at.clone(),
                });
            }
            ReassignmentRequested(e) => {
                self.reassignment = Some((e.requested_by, e.evidence.clone()));
            }
            StagnationReviewDecided(e) => {
                if let funnel_domain::events::StagnationOutcome::ChangeEngineer { .. } = e.outcome {
                    self.reassignment = Some((e.decided_by, e.note.clone()));
                }
            }
            LeadDetailsUpdated(e) => {
                if let Some(s) = &e.purchase_scale {
                    self.purchase_scale = Some(s.clone());
                }
            }
            StageChanged(e) => {
                self.stage_since = Some(at.at);
                if !self.reached.contains(&e.to) {
                    self.reached.push(e.to);
                }
            }
            // The first record of an item is the one that met it.
            CriterionMet(e) => {
                self.met_by
                    .entry(e.criterion)
                    .or_insert_with(|| (at.clone(), Some(e.evidence.clone())));
            }
            KeyPersonRecorded(e) => {
                let insider_since = self
                    .key_persons
                    .get(&e.key_person_id)
                    .and_then(|k| k.insider_since.clone());
                self.key_persons.insert(
                    e.key_person_id,
                    KeyPersonView {
                        key_person_id: e.key_person_id,
                        name: e.name.clone(),
                        title: e.title.clone(),
                        role: e.role,
                        role_zh: e.role.label_zh().into(),
                        phone: e.phone.clone(),
                        personal_notes: e.personal_notes.clone(),
                        insider: insider_since.is_some(),
                        insider_since,
                        recorded: at.clone(),
                    },
                );
            }
            InsiderDeveloped(e) => {
                if let Some(k) = self.key_persons.get_mut(&e.key_person_id) {
                    k.insider = true;
                    k.insider_since = Some(at.clone());
                }
            }
            RelationshipAssessed(_) => self.assessed = Some(at.clone()),
            VisitLogged(e) => {
                let met = e
                    .met
                    .iter()
                    .map(|k| KeyPersonBrief {
                        key_person_id: *k,
                        name: self
                            .key_persons
                            .get(k)
                            .map(|p| p.name.clone())
                            .unwrap_or_default(),
                    })
                    .collect();
                self.visits.push(VisitView {
                    visit_id: e.visit_id,
                    number: e.visit_number,
                    kind: e.kind,
                    kind_zh: e.kind.label_zh().into(),
                    engineer: self.person(e.engineer),
                    visited_at: e.visited_at,
                    visited_local: self.local(e.visited_at),
                    purposes: e.purposes.clone(),
                    summary: e.summary.clone(),
                    information_gained: e.information_gained.clone(),
                    customer_feedback: e.customer_feedback.clone(),
                    next_step: e.next_step.clone(),
                    met,
                    logged: at.clone(),
                });
            }
            ValidInfoDeclared(e) => self.declarations.push(DeclarationView {
                declaration_id: e.declaration_id,
                kind: DeclarationKindView::ValidInfo,
                kind_zh: "有效信息申报".into(),
                declared_by: self.person(e.declared_by),
                declared: at.clone(),
                amount_cny: None,
                amount_zh: None,
                tier: None,
                tier_zh: None,
                criteria: e.criteria.clone(),
                note: e.note.clone(),
                state: DeclarationStateView::AwaitingReview,
                reviewed_by: None,
                review_note: None,
                reviewed: None,
                filed_by: None,
                filed: None,
                key_account_involved: false,
            }),
            ProspectDeclared(e) => self.declarations.push(DeclarationView {
                declaration_id: e.declaration_id,
                kind: DeclarationKindView::Prospect,
                kind_zh: "准客户申报".into(),
                declared_by: self.person(e.declared_by),
                declared: at.clone(),
                amount_cny: Some(e.amount_cny),
                amount_zh: Some(wan_yuan(e.amount_cny)),
                tier: Some(e.tier),
                tier_zh: Some(e.tier.label_zh().into()),
                criteria: e.criteria.clone(),
                note: e.quoting_strategy.clone(),
                state: DeclarationStateView::AwaitingReview,
                reviewed_by: None,
                review_note: None,
                reviewed: None,
                filed_by: None,
                filed: None,
                key_account_involved: false,
            }),
            DeclarationReviewed(e) => {
                let by = self.person(e.reviewed_by);
                if let Some(d) = self.declaration(e.declaration_id) {
                    d.state = if e.approved {
                        DeclarationStateView::Approved
                    } else {
                        DeclarationStateView::Returned
                    };
                    d.reviewed_by = Some(by);
                    d.review_note = Some(e.note.clone());
                    d.reviewed = Some(at.clone());
                }
            }
            DeclarationFiled(e) => {
                let by = self.person(e.filed_by);
                if let Some(d) = self.declaration(e.declaration_id) {
                    d.state = DeclarationStateView::Filed;
                    d.filed_by = Some(by);
                    d.filed = Some(at.clone());
                    d.key_account_involved = e.key_account_involved;
                }
            }
            DeclarationWithdrawn(e) => {
                if let Some(d) = self.declaration(e.declaration_id) {
                    d.state = DeclarationStateView::Withdrawn;
                }
            }
            ContractSubmitted(e) => {
                let by = self.person(e.submitted_by);
                self.contracts.push(ContractView {
                    contract_id: e.contract_id,
                    submitted_by: by.clone(),
                    versions: vec![ContractVersion {
                        version: 1,
                        amount_cny: e.amount_cny,
                        amount_zh: wan_yuan(e.amount_cny),
                        content_hash: e.content_hash.clone(),
                        by,
                        reason: String::new(),
                        recorded: at.clone(),
                    }],
                    seats: pending_seats(&e.reviewers),
                    signed: false,
                    signed_at: None,
                    orders: 0,
                });
            }
            ContractAmended(e) => {
                let by = self.person(e.amended_by);
                if let Some(c) = self.contract(e.contract_id) {
                    let version = c.versions.len() as u32 + 1;
                    c.versions.push(ContractVersion {
                        version,
                        amount_cny: e.amount_cny,
                        amount_zh: wan_yuan(e.amount_cny),
                        content_hash: e.content_hash.clone(),
                        by,
                        reason: e.reason.clone(),
                        recorded: at.clone(),
                    });
                    let seats: Vec<String> = c.seats.iter().map(|s| s.seat.clone()).collect();
                    c.seats = pending_seats(&seats);
                }
            }
            ContractApproved(e) => {
                let by = self.person(e.approved_by);
                if let Some(s) = self.seat(e.contract_id, &e.seat) {
                    s.state = SeatState::Approved;
                    s.by = Some(by);
                    s.at = Some(at.clone());
                    s.reasons = None;
                }
            }
            ContractRejected(e) => {
                let by = self.person(e.rejected_by);
                if let Some(s) = self.seat(e.contract_id, &e.seat) {
                    s.state = SeatState::Rejected;
                    s.by = Some(by);
                    s.at = Some(at.clone());
                    s.reasons = Some(e.reasons.clone());
                }
            }
            ContractSigned(e) => {
                if let Some(c) = self.contract(e.contract_id) {
                    c.signed = true;
                    c.signed_at = Some(at.clone());
                }
            }
            OrderProcessed(e) => {
                if let Some(c) = self.contract(e.contract_id) {
                    c.orders += 1;
                }
            }
            _ => {}
        }
    }

    fn declaration(&mut self, id: DeclarationId) -> Option<&mut DeclarationView> {
        self.declarations
            .iter_mut()
            .rev()
            .find(|d| d.declaration_id == id)
    }

    fn contract(&mut self, id: ContractId) -> Option<&mut ContractView> {
        self.contracts
            .iter_mut()
            .rev()
            .find(|c| c.contract_id == id)
    }

    fn seat(&mut self, id: ContractId, seat: &str) -> Option<&mut SeatView> {
        self.contract(id)
            .and_then(|c| c.seats.iter_mut().find(|s| s.seat == seat))
    }

    /// The values an event changed, old → new.
    fn changes(&self, b: &Lead, a: &Lead, scale_before: Option<&str>) -> Vec<Change> {
        let mut out = Vec::new();
        let mut push = |field: &str,
                        zh: &str,
                        old: Option<String>,
                        new: Option<String>,
                        old_zh: Option<String>,
                        new_zh: Option<String>| {
            if old != new {
                out.push(Change {
                    field: field.into(),
                    label_zh: zh.into(),
                    old,
                    new,
                    old_zh,
                    new_zh,
                });
            }
        };
        let name = |s: Option<StaffId>| s.map(|s| name_of(self.access, s));
        let text = |s: &str| Some(s.to_string());
        push(
            "owner",
            "负责人",
            b.owner.map(|s| s.to_string()),
            a.owner.map(|s| s.to_string()),
            name(b.owner),
            name(a.owner),
        );
        push(
            "stage",
            "阶段",
            text(b.stage.as_str()),
            text(a.stage.as_str()),
            text(b.stage.label_zh()),
            text(a.stage.label_zh()),
        );
        push(
            "location",
            "地点",
            text(&b.location),
            text(&a.location),
            text(&b.location),
            text(&a.location),
        );
        let contact = |l: &Lead| Some(format!("{} {}", l.contact.name, l.contact.phone));
        push(
            "contact",
            "联系人及电话",
            contact(b),
            contact(a),
            contact(b),
            contact(a),
        );
        push(
            "need",
            "需求",
            text(&b.need),
            text(&a.need),
            text(&b.need),
            text(&a.need),
        );
        push(
            "purchase_mode",
            "采购方式",
            text(b.purchase_mode.as_str()),
            text(a.purchase_mode.as_str()),
            text(b.purchase_mode.label_zh()),
            text(a.purchase_mode.label_zh()),
        );
        push(
            "industry",
            "行业",
            text(b.industry.as_str()),
            text(a.industry.as_str()),
            text(b.industry.label_zh()),
            text(a.industry.label_zh()),
        );
        let scale_after = self.purchase_scale.clone();
        push(
            "purchase_scale",
            "采购规模及产品需求",
            scale_before.map(String::from),
            scale_after.clone(),
            scale_before.map(String::from),
            scale_after,
        );
        push(
            "company_level",
            "公司关系",
            text(b.company_level.as_str()),
            text(a.company_level.as_str()),
            text(b.company_level.label_zh()),
            text(a.company_level.label_zh()),
        );
        push(
            "personal_level",
            "个人关系",
            text(b.personal_level.as_str()),
            text(a.personal_level.as_str()),
            text(b.personal_level.label_zh()),
            text(a.personal_level.label_zh()),
        );
        push(
            "tier",
            "客户类型",
            b.tier.map(|t| t.as_str().to_string()),
            a.tier.map(|t| t.as_str().to_string()),
            b.tier.map(|t| t.label_zh().to_string()),
            a.tier.map(|t| t.label_zh().to_string()),
        );
        push(
            "amount_cny",
            "金额",
            b.amount_cny.map(|v| v.to_string()),
            a.amount_cny.map(|v| v.to_string()),
            b.amount_cny.map(wan_yuan),
            a.amount_cny.map(wan_yuan),
        );
        let contract_amount = |l: &Lead| l.contract.as_ref().map(|c| c.amount_cny);
        push(
            "contract_amount_cny",
            "合同金额",
            contract_amount(b).map(|v| v.to_string()),
            contract_amount(a).map(|v| v.to_string()),
            contract_amount(b).map(wan_yuan),
            contract_amount(a).map(wan_yuan),
        );
        let hash = |l: &Lead| l.contract.as_ref().map(|c| c.content_hash.clone());
        push(
            "contract_content_hash",
            "合同文本",
            hash(b),
            hash(a),
            hash(b),
            hash(a),
        );
        out
    }

    fn finish(self, lead_id: LeadId) -> Option<LeadRecord> {
        let lead = self.state.lead.as_ref()?;
        let (version, position) = self.last?;
        let access = self.access;
        let person = |id: StaffId| PersonRef::of(access, id);
        let checklist = [Stage::Ordinary, Stage::Valid, Stage::Prospect]
            .into_iter()
            .map(|stage| {
                let items: Vec<ChecklistItem> = checklist(lead.purchase_mode, stage)
                    .iter()
                    .map(|c| {
                        let met = self.met_by.get(c);
                        ChecklistItem {
                            criterion: *c,
                            label_zh: c.label_zh().into(),
                            met: met.is_some(),
                            met_by: met.map(|m| m.0.clone()),
                            evidence: met.and_then(|m| m.1.clone()),
                        }
                    })
                    .collect();
                ChecklistStage {
                    stage,
                    stage_zh: stage.label_zh().into(),
                    reached: self.reached.contains(&stage),
                    missing: items.iter().filter(|i| !i.met).count(),
                    items,
                }
            })
            .collect();
        let key_persons: Vec<KeyPersonView> = self.key_persons.values().cloned().collect();
        let insiders = key_persons
            .iter()
            .filter(|k| k.insider)
            .map(|k| KeyPersonBrief {
                key_person_id: k.key_person_id,
                name: k.name.clone(),
            })
            .collect();
        let zone = self.zone;
        Some(LeadRecord {
            lead_id,
            version,
            position,
            office: OfficeRef::of(access, lead.office),
            time_zone: zone.name().to_string(),
            fields: LeadFields {
                customer_name: lead.customer_name.clone(),
                project_name: lead.project_name.clone(),
                industry: lead.industry,
                industry_zh: lead.industry.label_zh().into(),
                purchase_mode: lead.purchase_mode,
                purchase_mode_zh: lead.purchase_mode.label_zh().into(),
                channel: lead.channel,
                channel_zh: lead.channel.label_zh().into(),
                location: lead.location.clone(),
                contact: ContactView {
                    name: lead.contact.name.clone(),
                    phone: lead.contact.phone.clone(),
                },
                need: lead.need.clone(),
                purchase_scale: self.purchase_scale.clone(),
                registered_by: person(lead.registered_by),
                registered_at: lead.registered_at,
                registered_local: funnel_domain::time::local_minute(lead.registered_at, zone),
            },
            stage: lead.stage,
            stage_zh: lead.stage.label_zh().into(),
            stage_since: self.stage_since.unwrap_or(lead.registered_at),
            stage_before_exit: lead.stage_before_exit,
            checklist,
            owner: lead.owner.map(person),
            registrants: lead.registrants.iter().map(|s| person(*s)).collect(),
            owner_history: self.owners,
            open_conflict: lead.conflict.as_ref().map(|c| OpenConflictView {
                conflict_id: c.id,
                claimants: c.claimants.iter().map(|s| person(*s)).collect(),
            }),
            pending_reassignment: lead.reassignment.as_ref().map(|r| {
                let (requested_by, evidence) = self
                    .reassignment
                    .clone()
                    .map(|(by, ev)| (Some(person(by)), ev))
                    .unwrap_or((None, String::new()));
                PendingReassignmentView {
                    reassignment_id: r.id,
                    from: person(r.from),
                    to: person(r.to),
                    requested_by,
                    evidence,
                    approved_by: r
                        .approvals
                        .iter()
                        .map(|p| match p {
                            funnel_domain::lead::PartyKey::SalesDepartment => {
                                "sales_department".to_string()
                            }
                            funnel_domain::lead::PartyKey::OriginalOwner => {
                                "original_owner".to_string()
                            }
                        })
                        .collect(),
                    expires_at: r.expires_at,
                    expires_local: funnel_domain::time::local_minute(r.expires_at, zone),
                }
            }),
            relationship: Relationship {
                company: lead.company_level,
                personal: lead.personal_level,
                assessed: self.assessed,
            },
            key_persons,
            insiders,
            visits: self.visits,
            visits_without_insider: lead.visits_without_insider,
            declarations: self.declarations,
            amount_cny: lead.amount_cny,
            amount_zh: lead.amount_cny.map(wan_yuan),
            tier: lead.tier,
            contracts: self.contracts,
            timeline: self.timeline,
            as_of: None,
        })
    }
}

fn pending_seats(seats: &[String]) -> Vec<SeatView> {
    seats
        .iter()
        .map(|s| SeatView {
            seat: s.clone(),
            state: SeatState::Pending,
            by: None,
            at: None,
            reasons: None,
        })
        .collect()
}

fn lead_not_found(lead: LeadId) -> AppError {
    AppError::not_found(
        "lead.not_found",
        format!("no lead {lead} is on record"),
        format!("没有线索 {lead} 的记录"),
    )
}

/// The events of a lead's own stream, decoded.
pub(crate) async fn lead_events(
    reads: &Reads,
    lead: LeadId,
) -> Result<Vec<Envelope<Event>>, AppError> {
    let stream = StreamId::new("lead", lead).map_err(AppError::internal)?;
    let records = funnel_store::read_whole_stream(reads.store().as_ref(), &stream).await?;
    records
        .iter()
        .map(|r| funnel_codec::decode_recorded(r).map_err(AppError::from))
        .collect()
}

/// A lead's record folded from its events, named from `access`; `None` when the stream holds no
/// lead (nothing, or only a key reservation).
pub(crate) fn fold_record(
    access: &Access,
    lead: LeadId,
    events: &[Envelope<Event>],
) -> Option<LeadRecord> {
    let office = events.iter().find_map(|e| match &e.payload {
        Event::LeadRegistered(r) => Some(r.office),
        _ => None,
    })?;
    let zone = funnel_domain::time::zone(access.offices.get(&office).map(|o| o.timezone.as_str()));
    let mut fold = Fold::new(access, zone);
    for env in events {
        fold.apply(env);
    }
    fold.finish(lead)
}

/// `GET /leads/{id}`: the lead's whole current record and its timeline, for a caller who may read
/// the lead's office. An unknown lead is not found; another office's is refused, saying whose.
/// With `as_of`, the record as it stood then: only the lead's events at or below that position, or
/// that occurred at or before that time (a date ends at midnight in the lead's office's zone); a
/// lead registered later is not found as of then.
pub async fn lead_record(
    reads: &Reads,
    caller: &Caller,
    lead: LeadId,
    at_least: Option<u64>,
    as_of: Option<funnel_projections::AsOfInput>,
) -> Result<LeadRecord, AppError> {
    use funnel_projections::AsOf;
    reads.wait_for(at_least).await?;
    let mut events = lead_events(reads, lead).await?;
    let mut then = None;
    if let Some(input) = as_of {
        let office = events.iter().find_map(|e| match &e.payload {
            Event::LeadRegistered(r) => Some(r.office),
            _ => None,
        });
        let zone = reads
            .with_model(|access: &Access, _| {
                funnel_domain::time::zone(
                    office
                        .and_then(|o| access.offices.get(&o))
                        .map(|o| o.timezone.as_str()),
                )
            })
            .await?;
        let moment = input.resolve(zone);
        events.retain(|e| match moment {
            AsOf::Position(p) => e.meta.position <= p,
            AsOf::Time(t) => e.meta.occurred_at <= t,
        });
        then = Some(RecordAsOf {
            position: match moment {
                AsOf::Position(p) => Some(p),
                AsOf::Time(_) => None,
            },
            time: moment
                .moment()
                .map(|t| t.with_timezone(&zone).fixed_offset()),
        });
    }
    let mut record = reads
        .with_model(|access: &Access, _| fold_record(access, lead, &events))
        .await?
        .ok_or_else(|| lead_not_found(lead))?;
    caller.check_read(record.office.id)?;
    record.as_of = then;
    Ok(record)
}

/// A lead a member of staff owns.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct OwnedLead {
    pub lead_id: LeadId,
    pub customer: String,
    pub stage: Stage,
    pub stage_zh: String,
    pub stage_since: DateTime<Utc>,
    pub amount_cny: Option<u64>,
    pub amount_zh: Option<String>,
    pub tier: Option<Tier>,
    pub last_visit_at: Option<DateTime<Utc>>,
    /// Open and more than 30 days without a visit.
    pub ageing: bool,
}

/// Something a member of staff did, or tried, on a lead.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct RecentTouch {
    pub lead_id: LeadId,
    pub customer: String,
    pub position: Position,
    pub at: DateTime<Utc>,
    /// `at` on the clock of the person's office.
    pub local: String,
    /// The event type, or for a refused attempt the command that was refused.
    pub action: String,
    pub refused: bool,
}

/// How many recent touches a staff record lists.
pub const RECENT_TOUCHES: usize = 50;

/// A member of staff's record: who they are, the leads they own, their open tasks and what they
/// touched recently.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct StaffRecord {
    /// The log position the record reflects.
    pub position: Position,
    pub staff_id: StaffId,
    pub name: String,
    pub role: Role,
    pub role_zh: String,
    /// `null` for headquarters roles.
    pub office: Option<OfficeRef>,
    /// The manager of their office (office managers of the office other than themselves; for
    /// headquarters roles none).
    pub managers: Vec<PersonRef>,
    /// False once they have left.
    pub active: bool,
    /// The IANA time zone of their office: every `local` time is on its clock.
    pub time_zone: String,
    /// The leads they own, in lead id order.
    pub leads: Vec<OwnedLead>,
    /// Their open tasks, oldest first, with what each is about and the command that completes it.
    /// `null` when the caller may not read this person's work (a colleague's, for an engineer).
    pub tasks: Option<Vec<super::task_detail::TaskView>>,
    /// Their latest touches of leads (at most 50), newest first; `null` like `tasks`.
    pub recent: Option<Vec<RecentTouch>>,
}

/// `GET /staff/{id}`: a member of staff the caller may see (like `/staff`: office roles their own
/// office's, headquarters roles and auditors everyone). Their open tasks and touches only for
/// those who may read their work (themselves, their office manager, headquarters and auditors).
pub async fn staff_record(
    reads: &Reads,
    caller: &Caller,
    staff: &str,
    at_least: Option<u64>,
) -> Result<StaffRecord, AppError> {
    use funnel_projections::models::{Pipeline, TouchQuery, Upto, actor_touches};
    reads.wait_for(at_least).await?;
    let (whom, entry) = reads.staff_named(staff).await?;
    match entry.office {
        Some(o) => caller.check_read(o)?,
        None if caller.reads_all() || whom == caller.staff_id => {}
        None => {
            return Err(AppError::forbidden(
                funnel_domain::RefusalCode::OtherOffice,
                format!(
                    "{} works at headquarters; a {} reads their own office's staff",
                    entry.name, caller.role
                ),
                format!(
                    "{} 属于总部，{}只能查看本办事处的员工",
                    entry.name,
                    caller.role.label_zh()
                ),
            ));
        }
    }
    let works = check_person(caller, whom, &entry).is_ok();
    let zone = reads.office_zone(entry.office).await?;
    let tasks = if works {
        Some(super::work::tasks_of(reads, whom, &entry).await?)
    } else {
        None
    };
    let recent = if works {
        let key = whom.to_string();
        let query = TouchQuery {
            upto: Upto {
                position: Position::START,
                moment: None,
            },
            after: None,
            limit: RECENT_TOUCHES,
            from: None,
            to: None,
            latest_first: true,
        };
        let (_, (rows, _)) = super::reports::touches(reads, None, move |c, t, upto| {
            actor_touches(c, t, &key, &TouchQuery { upto, ..query })
        })
        .await?;
        Some(rows)
    } else {
        None
    };
    let r = reads.runner().read().await;
    let (Some(access), Some(pipeline)) = (r.get::<Access>(), r.get::<Pipeline>()) else {
        return Err(AppError::unavailable(
            "the access or pipeline read model is being rebuilt",
            "读模型正在重建",
        ));
    };
    let now = pipeline.as_of.unwrap_or_default();
    let leads = pipeline
        .leads
        .iter()
        .filter(|(_, row)| row.owner == Some(whom))
        .map(|(id, row)| OwnedLead {
            lead_id: *id,
            customer: row.customer.clone(),
            stage: row.stage,
            stage_zh: row.stage.label_zh().into(),
            stage_since: row.stage_since,
            amount_cny: row.amount_cny,
            amount_zh: row.amount_cny.map(wan_yuan),
            tier: row.tier,
            last_visit_at: row.last_visit_at,
            ageing: row.is_ageing(now),
        })
        .collect();
    let recent = recent.map(|rows| {
        rows.into_iter()
            .map(|t| RecentTouch {
                lead_id: t.lead_id,
                customer: pipeline
                    .leads
                    .get(&t.lead_id)
                    .map(|l| l.customer.clone())
                    .unwrap_or_default(),
                position: t.position,
                at: t.at,
                local: funnel_domain::time::local_minute(t.at, zone),
                action: t.action.to_string(),
                refused: t.refused,
            })
            .collect()
    });
    let managers = match entry.office {
        Some(o) => access
            .staff
            .iter()
            .filter(|(id, s)| {
                **id != whom && s.active && s.role == Role::OfficeManager && s.office == Some(o)
            })
            .map(|(id, _)| PersonRef::of(access, *id))
            .collect(),
        None => Vec::new(),
    };
    Ok(StaffRecord {
        position: r.live_checkpoint(),
        staff_id: whom,
        name: entry.name.clone(),
        role: entry.role,
        role_zh: entry.role.label_zh().into(),
        office: entry.office.map(|o| OfficeRef::of(access, o)),
        managers,
        active: entry.active,
        time_zone: zone.name().to_string(),
        leads,
        tasks,
        recent,
    })
}
