//! A small model of a lead's ownership and stage, written from the manual (§4, §5, §8) rather than
//! from the deciders. It follows the commands the decider accepts and says, at every step, who owns
//! the lead and at which stage it stands; it also knows some refusals for certain. Where the manual
//! leaves the outcome to details it does not model (which party approves a reassignment), it only
//! bounds it.

use chrono::Duration;
use funnel_domain::lead::{self, LeadCommand as C, LeadState, StagnationDecision};
use funnel_domain::model::{Channel, Stage};
use funnel_domain::{Acting, Ctx, Policy, testing};
use funnel_types::{DeclarationId, Role, StaffId};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Declared {
    ValidInfo,
    Prospect,
}

#[derive(Debug, Default)]
struct Model {
    /// `None` until a registration is accepted.
    stage: Option<Stage>,
    owner: Option<StaffId>,
    /// Where a suspended or lost lead returns on reactivation.
    before_exit: Option<Stage>,
    /// The declaration under way.
    declaration: Option<(DeclarationId, Declared)>,
    /// Whom a requested reassignment would make the owner.
    pending_to: Option<StaffId>,
}

/// §5.3, §5.4: leads met at events and leads the customer brings are assigned by the office
/// manager; the others belong to the engineer who registers them first (§5.1).
fn assigned_by_manager(channel: Channel) -> bool {
    matches!(
        channel,
        Channel::TradeShow
            | Channel::IndustryAssociation
            | Channel::ProductLaunch
            | Channel::Inquiry
            | Channel::Referral
            | Channel::TenderInvitation
    )
}

impl Model {
    /// Why `cmd` by `acting` must be refused, when the manual leaves no doubt.
    fn certainly_refused(&self, acting: &Acting, cmd: &C) -> Option<&'static str> {
        if self.stage.is_none() && !matches!(cmd, C::Register(_)) {
            return Some("the lead is not registered");
        }
        match acting {
            Acting::Staff(s) if !s.active => return Some("the person has left"),
            Acting::Staff(s) if s.role == Role::Auditor => return Some("auditors only read"),
            Acting::System { .. } if matches!(cmd, C::Register(_)) => {
                return Some("leads are registered by people");
            }
            Acting::Staff(s)
                if s.role == Role::SalesEngineer
                    && matches!(cmd, C::Assign { .. } | C::DecideConflict { .. }) =>
            {
                return Some("the office manager assigns and decides conflicts");
            }
            _ => {}
        }
        None
    }

    /// What an accepted command does to ownership and stage.
    fn accept(&mut self, acting: &Acting, cmd: &C) {
        let stage = self.stage.unwrap_or(Stage::Ordinary);
        match cmd {
            C::Register(r) if self.stage.is_none() => {
                self.stage = Some(Stage::Ordinary);
                self.owner = match acting {
                    Acting::Staff(s)
                        if s.role == Role::SalesEngineer && !assigned_by_manager(r.channel) =>
                    {
                        Some(s.id)
                    }
                    _ => None,
                };
            }
            C::Assign { owner, .. } => self.owner = Some(*owner),
            C::DecideConflict { winner, .. } => self.owner = Some(*winner),
            C::RequestReassignment { to, .. }
            | C::DecideStagnationReview {
                decision: StagnationDecision::ChangeEngineer { to, .. },
                ..
            } => self.pending_to = Some(*to),
            C::DenyReassignment { .. } | C::ExpireReassignment { .. } => self.pending_to = None,
            C::DeclareValidInfo { declaration_id, .. } => {
                self.declaration = Some((*declaration_id, Declared::ValidInfo));
            }
            C::DeclareProspect { declaration_id, .. } => {
                self.declaration = Some((*declaration_id, Declared::Prospect));
            }
            C::ReviewDeclaration {
                declaration_id,
                approve: true,
                ..
            } => match self.declaration {
                Some((id, Declared::ValidInfo))
                    if id == *declaration_id && stage == Stage::Ordinary =>
                {
                    self.stage = Some(Stage::Valid);
                }
                Some((id, Declared::Prospect))
                    if id == *declaration_id && stage == Stage::Valid =>
                {
                    self.stage = Some(Stage::Prospect);
                }
                _ => {}
            },
            C::SignContract { .. } => self.stage = Some(Stage::Contract),
            C::Suspend { .. }
            | C::DecideStagnationReview {
                decision: StagnationDecision::Suspend,
                ..
            } => {
                self.before_exit = Some(stage);
                self.stage = Some(Stage::Suspended);
            }
            C::MarkLost { .. } => {
                self.before_exit = Some(stage);
                self.stage = Some(Stage::Lost);
            }
            C::Reactivate { .. } => {
                self.stage = self.before_exit.take();
            }
            _ => {}
        }
    }
}

/// Runs `steps` through the decider and the model side by side; the first disagreement, if any.
pub fn check(steps: &[(Acting, C, i64)]) -> Result<(), String> {
    let dir = testing::directory();
    let policy = Policy::default();
    let mut at = testing::start();
    let mut state = LeadState::default();
    let mut model = Model::default();
    for (i, (acting, cmd, hours)) in steps.iter().enumerate() {
        at += Duration::hours(*hours);
        let ctx = Ctx {
            acting,
            at,
            policy: &policy,
            staff: &dir,
        };
        let decided = lead::decide(&state, cmd, &ctx);
        let accepted = decided.is_ok();
        let step = format!("step {i}: `{}` by {acting:?}", cmd.name());
        if accepted && let Some(why) = model.certainly_refused(acting, cmd) {
            return Err(format!("{step} was accepted, but {why}"));
        }
        let events = match decided {
            Ok(events) => events,
            Err(rejected) => rejected.record,
        };
        let owner_before = model.owner;
        for e in &events {
            state = lead::evolve(state, e);
        }
        if accepted {
            model.accept(acting, cmd);
        }
        let (owner, stage) = match &state.lead {
            Some(l) => (l.owner, Some(l.stage)),
            None => (None, None),
        };
        if accepted && matches!(cmd, C::ApproveReassignment { .. }) {
            // The second approval hands the lead over; which one is second is not modelled.
            if owner != owner_before && owner != model.pending_to {
                return Err(format!(
                    "{step}: the owner became {owner:?}, neither {owner_before:?} nor the requested {:?}",
                    model.pending_to
                ));
            }
            if owner != owner_before {
                model.owner = owner;
                model.pending_to = None;
            }
        }
        if owner != model.owner {
            return Err(format!(
                "{step} (accepted: {accepted}): the decider says the owner is {owner:?}, the model {:?}",
                model.owner
            ));
        }
        if stage != model.stage {
            return Err(format!(
                "{step} (accepted: {accepted}): the decider says the stage is {stage:?}, the model {:?}",
                model.stage
            ));
        }
    }
    Ok(())
}
