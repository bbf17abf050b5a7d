//! The lead decider: dispatch, registration and ownership (§5), reassignment (§5.6). Refusals on
//! authority grounds by a member of staff are recorded as [`TouchRefused`] (§5.7).

use super::*;
use crate::acting::{Acting, Ctx, may_write, require_office, require_role};
use crate::normalize::{KEY_VERSION, customer_key, upgrade_key};
use crate::refusal::{Decision, Refusal, RefusalCode, Rejected, check, refuse};
use funnel_types::Role;

/// Decides a command against a lead's state. Never panics; every refusal has a code and messages.
pub fn decide(state: &LeadState, cmd: &LeadCommand, ctx: &Ctx<'_>) -> Decision {
    let result = decide_inner(state, cmd, ctx);
    match (result, state.lead.as_ref(), ctx.acting) {
        (Err(mut rejected), Some(lead), Acting::Staff(who))
            if is_authority(rejected.refusal.code) =>
        {
            if cmd.acts_on_lead() {
                rejected.record.push(Event::TouchRefused(TouchRefused {
                    lead_id: lead.id,
                    attempted_by: who.id,
                    role: who.role,
                    action: cmd.name().to_string(),
                    owner: lead.owner,
                    code: rejected.refusal.code.as_str().to_string(),
                }));
            }
            Err(rejected)
        }
        (other, _, _) => other,
    }
}

fn is_authority(code: RefusalCode) -> bool {
    matches!(
        code,
        RefusalCode::NotOwner
            | RefusalCode::OwnerOnly
            | RefusalCode::RoleNotPermitted
            | RefusalCode::OtherOffice
            | RefusalCode::ReadOnly
            | RefusalCode::StaffInactive
    )
}

fn decide_inner(state: &LeadState, cmd: &LeadCommand, ctx: &Ctx<'_>) -> Decision {
    use LeadCommand as C;
    // Every command is listed: a new one does not compile until it is decided somewhere.
    let lead = || existing(state);
    match cmd {
        C::Register(r) => register(state, r, ctx),
        C::ReserveKey {
            lead_id,
            registered_key,
            registered_key_version,
            office,
        } => reserve_key(
            state,
            *lead_id,
            registered_key,
            *registered_key_version,
            *office,
            ctx,
        ),
        C::Assign { owner, reason } => assign(lead()?, *owner, reason, ctx),
        C::DecideConflict {
            conflict_id,
            winner,
            grounds,
            note,
        } => decide_conflict(lead()?, *conflict_id, *winner, grounds, note, ctx),
        C::RequestReassignment {
            reassignment_id,
            to,
            evidence,
        } => {
            let lead = lead()?;
            manager_of(lead, ctx, "request a reassignment")?;
            request_reassignment(lead, *reassignment_id, *to, evidence, ctx)
        }
        C::ApproveReassignment {
            reassignment_id,
            note,
        } => approve_reassignment(lead()?, *reassignment_id, note, ctx),
        C::DenyReassignment {
            reassignment_id,
            reason,
        } => deny_reassignment(lead()?, *reassignment_id, reason, ctx),
        C::ExpireReassignment { reassignment_id } => {
            expire_reassignment(lead()?, *reassignment_id, ctx)
        }
        C::LogVisit(v) => field::log_visit(lead()?, v, ctx),
        C::RecordKeyPerson(k) => field::record_key_person(lead()?, k, ctx),
        C::MarkInsider {
            key_person_id,
            note,
        } => field::mark_insider(lead()?, *key_person_id, note, ctx),
        C::AssessRelationship {
            company,
            personal,
            key_person_id,
            note,
        } => field::assess(lead()?, *company, *personal, *key_person_id, note, ctx),
        C::RecordCriterion {
            criterion,
            evidence,
        } => field::record_criterion(lead()?, *criterion, evidence, ctx),
        C::UpdateDetails(u) => field::update_details(lead()?, u, ctx),
        C::DecideStagnationReview { decision, note } => {
            field::decide_stagnation(lead()?, decision, note, ctx)
        }
        C::DeclareValidInfo {
            declaration_id,
            note,
        } => progress::declare_valid(lead()?, *declaration_id, note, ctx),
        C::DeclareProspect {
            declaration_id,
            amount_cny,
            flags,
            quoting_strategy,
        } => progress::declare_prospect(
            lead()?,
            *declaration_id,
            *amount_cny,
            flags,
            quoting_strategy,
            ctx,
        ),
        C::ReviewDeclaration {
            declaration_id,
            approve,
            note,
        } => progress::review(lead()?, *declaration_id, *approve, note, ctx),
        C::FileDeclaration { declaration_id } => progress::file(lead()?, *declaration_id, ctx),
        C::NoteNegotiation {
            note,
            executives_invited,
        } => progress::negotiation(lead()?, note, *executives_invited, ctx),
        C::SubmitContract {
            contract_id,
            amount_cny,
            content_hash,
        } => progress::submit_contract(lead()?, *contract_id, *amount_cny, content_hash, ctx),
        C::AmendContract {
            contract_id,
            amount_cny,
            content_hash,
            reason,
        } => progress::amend_contract(
            lead()?,
            *contract_id,
            *amount_cny,
            content_hash,
            reason,
            ctx,
        ),
        C::ReviewContract {
            contract_id,
            seat,
            approve,
            content_hash,
            reasons,
        } => progress::review_contract(
            lead()?,
            *contract_id,
            seat,
            *approve,
            content_hash,
            reasons,
            ctx,
        ),
        C::SignContract {
            contract_id,
            content_hash,
        } => progress::sign(lead()?, *contract_id, content_hash, ctx),
        C::ProcessOrder {
            contract_id,
            order_ref,
        } => progress::process_order(lead()?, *contract_id, order_ref, ctx),
        C::LogAfterSalesCare { note } => progress::after_sales(lead()?, note, ctx),
        C::Suspend { reason } => progress::exit(lead()?, Stage::Suspended, reason, "", ctx),
        C::MarkLost { reason, competitor } => {
            progress::exit(lead()?, Stage::Lost, reason, competitor, ctx)
        }
        C::Reactivate { reason } => progress::reactivate(lead()?, reason, ctx),
    }
}

/// The lead, or a refusal when it does not exist.
pub(super) fn existing(state: &LeadState) -> Result<&Lead, Rejected> {
    state.lead.as_ref().ok_or_else(|| {
        Refusal::new(
            RefusalCode::LeadNotFound,
            "no such lead has been registered",
            "该客户信息尚未登记",
        )
        .into()
    })
}

/// Only the lead's owner may do this (§5.6: the engineer maintains the lead; §5.7).
pub(super) fn owner_only(lead: &Lead, ctx: &Ctx<'_>, action: &str) -> Result<StaffId, Rejected> {
    may_write(ctx.acting)?;
    match ctx.acting {
        Acting::Staff(s) if Some(s.id) == lead.owner => Ok(s.id),
        Acting::Staff(s) if s.role == Role::SalesEngineer => refuse(
            RefusalCode::NotOwner,
            format!(
                "only the lead's owner may {action}; selling to another engineer's lead is forbidden (§5.7) and this attempt is recorded"
            ),
            format!(
                "只有该客户的负责人才能执行此操作（{action}）；严禁争抢其他工程师的客户（§5.7），本次尝试已记录"
            ),
        ),
        _ => refuse(
            RefusalCode::OwnerOnly,
            format!("only the lead's owning engineer may {action}"),
            format!("只有负责该客户的工程师才能执行此操作（{action}）"),
        ),
    }
}

/// The office manager of the lead's office.
pub(super) fn manager_of(lead: &Lead, ctx: &Ctx<'_>, action: &str) -> Result<(), Rejected> {
    require_role(ctx.acting, &[Role::OfficeManager], action)?;
    require_office(ctx.acting, lead.office)
}

/// The lead must be open (not signed, suspended or lost).
pub(super) fn open(lead: &Lead) -> Result<(), Rejected> {
    if lead.stage.is_open() {
        return Ok(());
    }
    refuse(
        RefusalCode::LeadClosed,
        format!(
            "the lead is {}; reactivate it first or use after-sales records",
            lead.stage
        ),
        format!("该客户当前状态为{}，请先重新激活", lead.stage.label_zh()),
    )
}

/// An active sales engineer of `office`.
pub(super) fn engineer_in(ctx: &Ctx<'_>, who: StaffId, office: OfficeId) -> Result<(), Rejected> {
    match ctx.staff.staff(who) {
        Some(s) if s.active && s.role == Role::SalesEngineer && s.office == Some(office) => Ok(()),
        _ => refuse(
            RefusalCode::AssigneeNotEngineer,
            format!("{who} is not an active sales engineer of this office"),
            format!("{who} 不是本办事处在职的销售工程师"),
        ),
    }
}

fn register(state: &LeadState, r: &Register, ctx: &Ctx<'_>) -> Decision {
    require_role(
        ctx.acting,
        &[
            Role::SalesEngineer,
            Role::OfficeAssistant,
            Role::OfficeManager,
            Role::KeyAccountDepartment,
        ],
        "register a lead",
    )?;
    require_office(ctx.acting, r.office)?;
    let Some(me) = ctx.acting.staff_id() else {
        return refuse(
            RefusalCode::RoleNotPermitted,
            "leads are registered by members of staff",
            "客户信息须由员工登记",
        );
    };
    check::required("customer_name", &r.customer_name, check::SHORT)?;
    check::optional("project_name", &r.project_name, check::SHORT)?;
    check::optional("location", &r.location, check::SHORT)?;
    check::optional("contact.name", &r.contact.name, check::SHORT)?;
    check::optional("contact.phone", &r.contact.phone, 40)?;
    check::optional("need", &r.need, check::LONG)?;
    crate::text::names(&[
        ("customer_name", &r.customer_name),
        ("contact.name", &r.contact.name),
    ])?;
    let key = customer_key(&r.customer_name, &r.project_name);
    // A registration routed to an existing lead had a key there (folding can empty a name that
    // key version 1 did not: the lead it found still decides it).
    if key.starts_with('/') && state.lead.is_none() {
        return refuse(
            RefusalCode::InvalidValue,
            "the customer name has no letters or digits",
            "客户名称中没有任何文字或数字",
        );
    }
    let id = LeadId::derived(&key);

    if let (None, Some(taken_by)) = (&state.lead, state.reserved_for) {
        // The engine sends a registration on to the lead a reservation names; this one met the
        // reservation only because it was written while the registration was under way.
        return refuse(
            RefusalCode::AlreadyRegistered,
            format!(
                "a customer whose name is the same or looks the same is already registered as lead {taken_by}: the first to register owns it (§5.1)"
            ),
            format!("名称相同或形近的客户已登记为 {taken_by}：先报备者负责（§5.1）"),
        );
    }
    let Some(lead) = &state.lead else {
        // The ordinary-info checklist is what it takes to register (§4).
        let probe = Lead {
            customer_name: r.customer_name.clone(),
            project_name: r.project_name.clone(),
            location: r.location.clone(),
            contact: r.contact.clone(),
            need: r.need.clone(),
            ..blank_lead(id, r, me, ctx)
        };
        let unmet = missing(r.purchase_mode, Stage::Ordinary, &probe.met_criteria());
        if !unmet.is_empty() {
            return Err(criteria_unmet(Stage::Ordinary, unmet));
        }
        let mut events = vec![Event::LeadRegistered(LeadRegistered {
            lead_id: id,
            customer_key: key,
            key_version: KEY_VERSION,
            customer_name: r.customer_name.trim().to_string(),
            project_name: r.project_name.trim().to_string(),
            industry: r.industry,
            purchase_mode: r.purchase_mode,
            channel: r.channel,
            office: r.office,
            location: r.location.trim().to_string(),
            contact: r.contact.clone(),
            need: r.need.trim().to_string(),
            registered_by: me,
            registered_at: ctx.at,
        })];
        let self_found = r.channel.allocation() == Allocation::FirstToRegister;
        if self_found && ctx.acting.role() == Some(Role::SalesEngineer) {
            events.push(Event::LeadOwnerAssigned(LeadOwnerAssigned {
                lead_id: id,
                owner: me,
                previous: None,
                basis: AssignmentBasis::FirstToRegister,
            }));
        }
        return Ok(events);
    };

    if lead.office != r.office {
        return refuse(
            RefusalCode::RegisteredInOtherOffice,
            format!(
                "this customer is already registered with office {}",
                lead.office
            ),
            format!("该客户已由办事处 {} 登记", lead.office),
        );
    }
    if lead.registrants.contains(&me) {
        return refuse(
            RefusalCode::AlreadyRegistered,
            "you have already registered this customer",
            "您已登记过该客户",
        );
    }
    let within = ctx.at - lead.registered_at <= ctx.policy.duplicate_window;
    if !within || !lead.stage.is_open() {
        let owner = lead
            .owner
            .map(|o| o.to_string())
            .unwrap_or_else(|| "(awaiting assignment)".into());
        return refuse(
            RefusalCode::AlreadyRegistered,
            format!(
                "this customer was registered on {} and belongs to {owner}: the first to register owns it (§5.1)",
                lead.registered_at.format("%Y-%m-%d")
            ),
            format!(
                "该客户已于 {} 登记，负责人为 {owner}：先报备者负责（§5.1）",
                lead.registered_at.format("%Y-%m-%d")
            ),
        );
    }
    let mut events = vec![Event::DuplicateRegistrationReceived(
        DuplicateRegistrationReceived {
            lead_id: lead.id,
            registered_by: me,
            customer_name: r.customer_name.trim().to_string(),
            project_name: r.project_name.trim().to_string(),
            channel: r.channel,
            registered_at: ctx.at,
        },
    )];
    // Two engineers at nearly the same time: the office manager decides (§5.2). A lead still
    // awaiting assignment just gains a candidate for the manager's assignment.
    if let Some(owner) = lead.owner {
        let mut claimants = match &lead.conflict {
            Some(c) => c.claimants.clone(),
            None => vec![owner],
        };
        claimants.push(me);
        let conflict_id = match &lead.conflict {
            Some(c) => c.id,
            None => ConflictId::derived(&format!("{}:{}", lead.id, lead.registrants.len())),
        };
        events.push(Event::OwnershipConflictOpened(OwnershipConflictOpened {
            lead_id: lead.id,
            conflict_id,
            claimants,
            opened_at: ctx.at,
        }));
    }
    Ok(events)
}

/// Reserves the current-version key of a lead registered under an older key version (see
/// [`LeadKeyReserved`]). Decided on the stream the key names: the first reservation or registration
/// there wins, as for registrations.
fn reserve_key(
    state: &LeadState,
    lead_id: LeadId,
    registered_key: &str,
    registered_key_version: u8,
    office: OfficeId,
    ctx: &Ctx<'_>,
) -> Decision {
    if !ctx.acting.is_system() {
        return refuse(
            RefusalCode::RoleNotPermitted,
            "customer keys are reserved by Funnel itself",
            "客户名称键由系统自动保留",
        );
    }
    let key = upgrade_key(registered_key);
    if registered_key_version >= KEY_VERSION || key == registered_key || key.starts_with('/') {
        return refuse(
            RefusalCode::InvalidValue,
            format!("`{registered_key}` needs no reservation under key version {KEY_VERSION}"),
            format!("`{registered_key}` 在第 {KEY_VERSION} 版规则下无需保留"),
        );
    }
    let taken_by = state.lead.as_ref().map(|l| l.id).or(state.reserved_for);
    if let Some(taken_by) = taken_by {
        return refuse(
            RefusalCode::AlreadyRegistered,
            format!("the customer key `{key}` already belongs to lead {taken_by}"),
            format!("客户名称键 `{key}` 已属于 {taken_by}"),
        );
    }
    Ok(vec![Event::LeadKeyReserved(LeadKeyReserved {
        lead_id,
        customer_key: key,
        key_version: KEY_VERSION,
        registered_key: registered_key.to_string(),
        registered_key_version,
        office,
    })])
}

fn blank_lead(id: LeadId, r: &Register, me: StaffId, ctx: &Ctx<'_>) -> Lead {
    Lead {
        id,
        customer_key: String::new(),
        customer_name: String::new(),
        project_name: String::new(),
        industry: r.industry,
        purchase_mode: r.purchase_mode,
        channel: r.channel,
        office: r.office,
        location: String::new(),
        contact: Contact::default(),
        need: String::new(),
        registered_by: me,
        registered_at: ctx.at,
        owner: None,
        registrants: vec![me],
        stage: Stage::Ordinary,
        stage_before_exit: None,
        conflict: None,
        reassignment: None,
        visits: 0,
        visits_without_insider: 0,
        insider_escalated: false,
        key_persons: Default::default(),
        company_level: Level::C,
        personal_level: Level::C,
        stagnant_visits: 0,
        stagnation_review_open: false,
        criteria: Default::default(),
        declaration: None,
        tier: None,
        amount_cny: None,
        contract: None,
        closed_reassignments: Default::default(),
    }
}

/// The refusal for a stage whose checklist is not complete, listing what is missing.
pub(super) fn criteria_unmet(stage: Stage, unmet: Vec<Criterion>) -> Rejected {
    let en: Vec<&str> = unmet.iter().map(|c| c.as_str()).collect();
    let zh: Vec<&str> = unmet.iter().map(|c| c.label_zh()).collect();
    let mut r = Refusal::new(
        RefusalCode::CriteriaUnmet,
        format!(
            "the criteria for stage `{stage}` are not all met; missing: {}",
            en.join(", ")
        ),
        format!(
            "尚未满足“{}”阶段的全部标准，缺少：{}",
            stage.label_zh(),
            zh.join("、")
        ),
    );
    r.missing = unmet;
    r.into()
}

fn assign(lead: &Lead, owner: StaffId, reason: &str, ctx: &Ctx<'_>) -> Decision {
    manager_of(lead, ctx, "assign a lead")?;
    open(lead)?;
    check::optional("reason", reason, check::LONG)?;
    if lead.owner.is_some() {
        return refuse(
            RefusalCode::NotAwaitingAssignment,
            "the lead already has an owner; changing it needs a reassignment approved by the sales department and the owner (§5.6)",
            "该客户已有负责人；变更负责人须经销售部及原负责人同意（§5.6）",
        );
    }
    engineer_in(ctx, owner, lead.office)?;
    Ok(vec![Event::LeadOwnerAssigned(LeadOwnerAssigned {
        lead_id: lead.id,
        owner,
        previous: None,
        basis: AssignmentBasis::ManagerAssignment {
            reason: reason.trim().to_string(),
        },
    })])
}

fn decide_conflict(
    lead: &Lead,
    conflict_id: ConflictId,
    winner: StaffId,
    grounds: &[ConflictGround],
    note: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    manager_of(lead, ctx, "decide an ownership conflict")?;
    check::optional("note", note, check::LONG)?;
    let Some(conflict) = lead.conflict.as_ref().filter(|c| c.id == conflict_id) else {
        return refuse(
            RefusalCode::ConflictNotFound,
            format!("there is no open ownership conflict {conflict_id} on this lead"),
            format!("该客户没有未决的归属争议 {conflict_id}"),
        );
    };
    if !conflict.claimants.contains(&winner) {
        return refuse(
            RefusalCode::WinnerNotClaimant,
            "the lead can only be given to one of the engineers who registered it",
            "只能判给登记了该客户的工程师之一",
        );
    }
    if grounds.is_empty() || grounds.len() > 3 {
        return refuse(
            RefusalCode::FieldRequired,
            "give the grounds: deeper contact, reached the decision maker, or registered first (§5.2)",
            "请说明理由：接触更深入、接触到关键决策人或先报备（§5.2）",
        );
    }
    engineer_in(ctx, winner, lead.office)?;
    let me = ctx.acting.staff_id().unwrap_or(winner);
    let mut events = vec![Event::OwnershipConflictDecided(OwnershipConflictDecided {
        lead_id: lead.id,
        conflict_id,
        winner,
        decided_by: me,
        grounds: grounds.to_vec(),
        note: note.trim().to_string(),
    })];
    if lead.owner != Some(winner) {
        events.push(Event::LeadOwnerAssigned(LeadOwnerAssigned {
            lead_id: lead.id,
            owner: winner,
            previous: lead.owner,
            basis: AssignmentBasis::ConflictDecision { conflict_id },
        }));
    }
    Ok(events)
}

pub(super) fn request_reassignment(
    lead: &Lead,
    id: ReassignmentId,
    to: StaffId,
    evidence: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    open(lead)?;
    check::required("evidence", evidence, check::LONG)?;
    let Some(from) = lead.owner else {
        return refuse(
            RefusalCode::NothingToDo,
            "the lead has no owner yet: assign it instead",
            "该客户尚无负责人，请直接分配",
        );
    };
    if let Some(r) = &lead.reassignment {
        return refuse(
            RefusalCode::ReassignmentPending,
            format!("reassignment {} is still waiting for approval", r.id),
            format!("变更申请 {} 仍在等待审批", r.id),
        );
    }
    if lead.closed_reassignments.contains(&id) {
        return refuse(
            RefusalCode::ReassignmentClosed,
            "this reassignment id was already used",
            "该变更申请编号已被使用",
        );
    }
    if to == from {
        return refuse(
            RefusalCode::NothingToDo,
            "the engineer already owns the lead",
            "该工程师已是负责人",
        );
    }
    engineer_in(ctx, to, lead.office)?;
    Ok(vec![Event::ReassignmentRequested(ReassignmentRequested {
        lead_id: lead.id,
        reassignment_id: id,
        from,
        to,
        requested_by: ctx.acting.staff_id().unwrap_or(from),
        evidence: evidence.trim().to_string(),
        requested_at: ctx.at,
        expires_at: ctx
            .at
            .checked_add_signed(ctx.policy.reassignment_expiry)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    })])
}

/// The pending reassignment `id` and the party the actor speaks for.
fn pending_party<'a>(
    lead: &'a Lead,
    id: ReassignmentId,
    ctx: &Ctx<'_>,
) -> Result<(&'a PendingReassignment, ApprovalParty, StaffId), Rejected> {
    may_write(ctx.acting)?;
    let Some(r) = lead.reassignment.as_ref().filter(|r| r.id == id) else {
        let (code, en, zh) = if lead.closed_reassignments.contains(&id) {
            (
                RefusalCode::ReassignmentClosed,
                "this reassignment is already closed",
                "该变更申请已结束",
            )
        } else {
            (
                RefusalCode::ReassignmentNotFound,
                "there is no such pending reassignment",
                "没有该待审批的变更申请",
            )
        };
        return refuse(code, en, zh);
    };
    if ctx.at > r.expires_at {
        return refuse(
            RefusalCode::ReassignmentClosed,
            "this reassignment request has expired",
            "该变更申请已过期",
        );
    }
    match ctx.acting {
        Acting::Staff(s) if s.role == Role::SalesDepartment => {
            Ok((r, ApprovalParty::SalesDepartment, s.id))
        }
        Acting::Staff(s) if s.id == r.from => Ok((r, ApprovalParty::OriginalOwner, s.id)),
        _ => refuse(
            RefusalCode::RoleNotPermitted,
            "only the sales department and the lead's original owner decide a reassignment (§5.6)",
            "只有销售部和原负责人可以审批负责人变更（§5.6）",
        ),
    }
}

fn approve_reassignment(lead: &Lead, id: ReassignmentId, note: &str, ctx: &Ctx<'_>) -> Decision {
    let (r, party, me) = pending_party(lead, id, ctx)?;
    check::optional("note", note, check::LONG)?;
    if r.approvals.contains(&party.into()) {
        return refuse(
            RefusalCode::AlreadyApproved,
            "this party has already approved",
            "该方已同意",
        );
    }
    let mut events = vec![Event::ReassignmentApproved(ReassignmentApproved {
        lead_id: lead.id,
        reassignment_id: id,
        party,
        approved_by: me,
        note: note.trim().to_string(),
    })];
    // Both parties must approve (§5.6) — unless the original owner has left the company and can
    // no longer answer: then the sales department's approval is enough.
    let owner_gone = party == ApprovalParty::SalesDepartment
        && ctx.staff.staff(r.from).is_some_and(|s| !s.active);
    if r.approvals.len() == 1 || owner_gone {
        events.push(Event::LeadOwnerAssigned(LeadOwnerAssigned {
            lead_id: lead.id,
            owner: r.to,
            previous: Some(r.from),
            basis: AssignmentBasis::Reassignment {
                reassignment_id: id,
            },
        }));
    }
    Ok(events)
}

fn deny_reassignment(lead: &Lead, id: ReassignmentId, reason: &str, ctx: &Ctx<'_>) -> Decision {
    let (_, party, me) = pending_party(lead, id, ctx)?;
    check::required("reason", reason, check::LONG)?;
    Ok(vec![Event::ReassignmentDenied(ReassignmentDenied {
        lead_id: lead.id,
        reassignment_id: id,
        party,
        denied_by: me,
        reason: reason.trim().to_string(),
    })])
}

fn expire_reassignment(lead: &Lead, id: ReassignmentId, ctx: &Ctx<'_>) -> Decision {
    require_role(
        ctx.acting,
        &[Role::OfficeManager, Role::SalesDepartment],
        "expire a reassignment",
    )?;
    let Some(r) = lead.reassignment.as_ref().filter(|r| r.id == id) else {
        return refuse(
            RefusalCode::ReassignmentNotFound,
            "there is no such pending reassignment",
            "没有该待审批的变更申请",
        );
    };
    if ctx.at < r.expires_at {
        return refuse(
            RefusalCode::InvalidValue,
            format!("the reassignment does not expire until {}", r.expires_at),
            format!("该变更申请在 {} 之前不会过期", r.expires_at),
        );
    }
    Ok(vec![Event::ReassignmentExpired(ReassignmentExpired {
        lead_id: lead.id,
        reassignment_id: id,
    })])
}
