//! Field work on a lead: visits (Table 2), key persons (Table 5), insiders and relationship levels
//! (§7), criteria evidence, record corrections, and the insider and stagnation rules (§7, §8).

use super::decide::{engineer_in, manager_of, open, owner_only, request_reassignment};
use super::progress::withdraw_declaration;
use super::*;
use crate::acting::Ctx;
use crate::refusal::{Decision, RefusalCode, Rejected, check, refuse};

pub(super) fn log_visit(lead: &Lead, v: &LogVisit, ctx: &Ctx<'_>) -> Decision {
    let me = owner_only(lead, ctx, "log a visit")?;
    open(lead)?;
    check::required("summary", &v.summary, check::LONG)?;
    check::optional("information_gained", &v.information_gained, check::LONG)?;
    check::optional("customer_feedback", &v.customer_feedback, check::LONG)?;
    check::optional("next_step", &v.next_step, check::LONG)?;
    check::list("purposes", &v.purposes, 5)?;
    check::list("met", &v.met, 50)?;
    let grace = ctx
        .at
        .checked_add_signed(chrono::Duration::minutes(5))
        .unwrap_or(ctx.at);
    if v.visited_at > grace {
        return refuse(
            RefusalCode::InvalidValue,
            "a visit cannot be logged before it happens",
            "不能登记尚未发生的拜访",
        );
    }
    let earliest = lead
        .registered_at
        .checked_sub_signed(chrono::Duration::days(365))
        .unwrap_or(lead.registered_at);
    if v.visited_at < earliest {
        return refuse(
            RefusalCode::InvalidValue,
            "the visit date is more than a year before the lead was registered",
            "拜访日期早于登记日期一年以上",
        );
    }
    for k in &v.met {
        known_key_person(lead, *k)?;
    }
    let number = lead.visits + 1;
    let mut events = vec![Event::VisitLogged(VisitLogged {
        lead_id: lead.id,
        visit_id: v.visit_id,
        engineer: me,
        kind: v.kind,
        visited_at: v.visited_at,
        purposes: v.purposes.clone(),
        summary: v.summary.trim().to_string(),
        information_gained: v.information_gained.trim().to_string(),
        customer_feedback: v.customer_feedback.trim().to_string(),
        next_step: v.next_step.trim().to_string(),
        met: v.met.clone(),
        visit_number: number,
    })];
    // Insider rule (§7): an insider within every three visits, else the manager is asked to help.
    // Visits are contacts in person (拜访): a phone call does not count.
    let without = if lead.has_insider() {
        0
    } else if v.kind.in_person() {
        lead.visits_without_insider + 1
    } else {
        lead.visits_without_insider
    };
    if v.kind.in_person() && without >= ctx.policy.insider_visit_limit && !lead.insider_escalated {
        events.push(Event::InsiderEscalationRaised(InsiderEscalationRaised {
            lead_id: lead.id,
            owner: me,
            visits_without_insider: without,
        }));
    }
    // Stagnation rule (§8): several visits with both relationships still C → a review.
    let both_c = lead.company_level == Level::C && lead.personal_level == Level::C;
    let stagnant = if both_c { lead.stagnant_visits + 1 } else { 0 };
    if stagnant >= ctx.policy.stagnation_visits && !lead.stagnation_review_open {
        events.push(Event::StagnationReviewOpened(StagnationReviewOpened {
            lead_id: lead.id,
            owner: me,
            visits: stagnant,
        }));
    }
    Ok(events)
}

fn known_key_person(lead: &Lead, k: KeyPersonId) -> Result<&KeyPerson, Rejected> {
    lead.key_persons.get(&k).ok_or_else(|| {
        crate::refusal::Refusal::new(
            RefusalCode::UnknownKeyPerson,
            format!("key person {k} is not recorded on this lead"),
            format!("该客户未登记关键人 {k}"),
        )
        .into()
    })
}

pub(super) fn record_key_person(lead: &Lead, k: &RecordKeyPerson, ctx: &Ctx<'_>) -> Decision {
    owner_only(lead, ctx, "record a key person")?;
    open(lead)?;
    check::required("name", &k.name, check::SHORT)?;
    crate::text::name("name", &k.name)?;
    check::optional("title", &k.title, check::SHORT)?;
    check::optional("phone", &k.phone, 40)?;
    check::optional("personal_notes", &k.personal_notes, check::LONG)?;
    if lead.key_persons.len() >= 200 && !lead.key_persons.contains_key(&k.key_person_id) {
        return refuse(
            RefusalCode::InvalidValue,
            "a lead holds at most 200 key persons",
            "一个客户最多登记 200 位关键人",
        );
    }
    let mut events = vec![Event::KeyPersonRecorded(KeyPersonRecorded {
        lead_id: lead.id,
        key_person_id: k.key_person_id,
        name: k.name.trim().to_string(),
        title: k.title.trim().to_string(),
        role: k.role,
        phone: k.phone.trim().to_string(),
        personal_notes: k.personal_notes.trim().to_string(),
    })];
    // The levels with this person, in the same append: both or neither are recorded.
    if let Some((company, personal)) = k.levels {
        events.push(Event::RelationshipAssessed(RelationshipAssessed {
            lead_id: lead.id,
            company,
            personal,
            key_person_id: Some(k.key_person_id),
            note: String::new(),
        }));
    }
    Ok(events)
}

pub(super) fn mark_insider(lead: &Lead, k: KeyPersonId, note: &str, ctx: &Ctx<'_>) -> Decision {
    owner_only(lead, ctx, "record an insider")?;
    open(lead)?;
    check::optional("note", note, check::LONG)?;
    if known_key_person(lead, k)?.insider {
        return refuse(
            RefusalCode::NothingToDo,
            "this key person is already an insider",
            "该关键人已是内线",
        );
    }
    Ok(vec![Event::InsiderDeveloped(InsiderDeveloped {
        lead_id: lead.id,
        key_person_id: k,
        note: note.trim().to_string(),
    })])
}

pub(super) fn assess(
    lead: &Lead,
    company: Level,
    personal: Level,
    key_person: Option<KeyPersonId>,
    note: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    owner_only(lead, ctx, "assess relationship levels")?;
    open(lead)?;
    check::optional("note", note, check::LONG)?;
    if let Some(k) = key_person {
        known_key_person(lead, k)?;
    }
    Ok(vec![Event::RelationshipAssessed(RelationshipAssessed {
        lead_id: lead.id,
        company,
        personal,
        key_person_id: key_person,
        note: note.trim().to_string(),
    })])
}

pub(super) fn record_criterion(
    lead: &Lead,
    c: Criterion,
    evidence: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    owner_only(lead, ctx, "record a stage criterion")?;
    open(lead)?;
    check::required("evidence", evidence, check::LONG)?;
    if c.is_derived() {
        return refuse(
            RefusalCode::InvalidValue,
            format!(
                "`{c}` is met by the lead's record itself (registration details or an insider), not by a separate record"
            ),
            format!(
                "“{}”由客户记录本身满足（登记信息或内线），无需单独记录",
                c.label_zh()
            ),
        );
    }
    if !applies(lead.purchase_mode, c) {
        return refuse(
            RefusalCode::InvalidValue,
            format!(
                "`{c}` is not a criterion for {} purchasing",
                lead.purchase_mode
            ),
            format!(
                "“{}”不是{}的标准",
                c.label_zh(),
                lead.purchase_mode.label_zh()
            ),
        );
    }
    if lead.criteria.contains(&c) {
        return refuse(
            RefusalCode::NothingToDo,
            format!("`{c}` is already met"),
            format!("“{}”已满足", c.label_zh()),
        );
    }
    Ok(vec![Event::CriterionMet(CriterionMet {
        lead_id: lead.id,
        criterion: c,
        evidence: evidence.trim().to_string(),
    })])
}

pub(super) fn update_details(lead: &Lead, u: &UpdateDetails, ctx: &Ctx<'_>) -> Decision {
    owner_only(lead, ctx, "change the lead's record")?;
    open(lead)?;
    for (field, v) in [
        ("location", &u.location),
        ("need", &u.need),
        ("purchase_scale", &u.purchase_scale),
    ] {
        if let Some(v) = v {
            check::optional(field, v, check::LONG)?;
        }
    }
    if let Some(c) = &u.contact {
        check::required("contact.name", &c.name, check::SHORT)?;
        crate::text::name("contact.name", &c.name)?;
        check::required("contact.phone", &c.phone, 40)?;
    }
    if u.location.as_deref().is_some_and(|l| l.trim().is_empty())
        || u.need.as_deref().is_some_and(|n| n.trim().is_empty())
    {
        return refuse(
            RefusalCode::FieldRequired,
            "location and need cannot be cleared: they are ordinary-info criteria",
            "地点和需求是普通信息标准，不能清空",
        );
    }
    if *u == UpdateDetails::default() {
        return refuse(
            RefusalCode::NothingToDo,
            "no field to change was given",
            "没有给出要修改的字段",
        );
    }
    Ok(vec![Event::LeadDetailsUpdated(LeadDetailsUpdated {
        lead_id: lead.id,
        location: u.location.as_ref().map(|s| s.trim().to_string()),
        contact: u.contact.clone(),
        need: u.need.as_ref().map(|s| s.trim().to_string()),
        purchase_mode: u.purchase_mode,
        industry: u.industry,
        purchase_scale: u.purchase_scale.as_ref().map(|s| s.trim().to_string()),
    })])
}

pub(super) fn decide_stagnation(
    lead: &Lead,
    decision: &StagnationDecision,
    note: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    manager_of(lead, ctx, "decide a stagnation review")?;
    check::optional("note", note, check::LONG)?;
    if !lead.stagnation_review_open {
        return refuse(
            RefusalCode::ReviewNotOpen,
            "no stagnation review is open on this lead",
            "该客户没有待处理的停滞分析",
        );
    }
    let me = ctx.acting.staff_id().unwrap_or(lead.registered_by);
    let (outcome, mut follow) = match decision {
        StagnationDecision::ChangeKeyPerson { key_person_id } => {
            if let Some(k) = key_person_id {
                known_key_person(lead, *k)?;
            }
            (
                StagnationOutcome::ChangeKeyPerson {
                    key_person_id: *key_person_id,
                },
                vec![],
            )
        }
        StagnationDecision::ChangeEngineer {
            to,
            reassignment_id,
            evidence,
        } => {
            engineer_in(ctx, *to, lead.office)?;
            let follow = request_reassignment(lead, *reassignment_id, *to, evidence, ctx)?;
            (
                StagnationOutcome::ChangeEngineer {
                    to: *to,
                    reassignment_id: *reassignment_id,
                },
                follow,
            )
        }
        StagnationDecision::Suspend => {
            open(lead)?;
            let mut follow = vec![Event::LeadSuspended(LeadSuspended {
                lead_id: lead.id,
                by: me,
                from: lead.stage,
                reason: format!("stagnation review: {}", note.trim()),
            })];
            follow.extend(withdraw_declaration(lead, Stage::Suspended));
            follow.push(Event::StageChanged(StageChanged {
                lead_id: lead.id,
                office: lead.office,
                from: lead.stage,
                to: Stage::Suspended,
                owner: lead.owner,
            }));
            (StagnationOutcome::Suspend, follow)
        }
    };
    let mut events = vec![Event::StagnationReviewDecided(StagnationReviewDecided {
        lead_id: lead.id,
        decided_by: me,
        outcome,
        note: note.trim().to_string(),
    })];
    events.append(&mut follow);
    Ok(events)
}
