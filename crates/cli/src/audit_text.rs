//! Text renderings of the audit reports.

use crate::query::Models;
use funnel_projections::models::*;
use funnel_types::{LeadId, OfficeId, StaffId};
use std::fmt::Write as _;

fn staff(m: &Models, id: &StaffId) -> String {
    m.touches
        .staff_names
        .get(id)
        .cloned()
        .unwrap_or_else(|| id.to_string())
}

/// A time on the clock of the report's zone.
fn when(m: &Models, t: &chrono::DateTime<chrono::Utc>) -> String {
    funnel_domain::time::local_minute(*t, m.zone)
}

pub fn lead(m: &Models, id: LeadId, touches: &[Touch]) -> String {
    let mut s = String::new();
    let customer = m
        .pipeline
        .leads
        .get(&id)
        .map(|r| r.customer.clone())
        .unwrap_or_default();
    let _ = writeln!(s, "lead {id} {customer}: {} touches", touches.len());
    let _ = writeln!(
        s,
        "{:>9}  {:<16}  {:<16}  {:<18}  action",
        "position",
        format!("when ({})", m.zone),
        "who",
        "role"
    );
    for t in touches {
        let role = t
            .actor
            .role()
            .map(|r| r.as_str().to_string())
            .unwrap_or_else(|| "system".into());
        let mark = if t.refused { "  REFUSED" } else { "" };
        let _ = writeln!(
            s,
            "{:>9}  {:<16}  {:<16}  {:<18}  {}{mark}",
            t.position,
            when(m, &t.at),
            m.touches.name(&t.actor),
            role,
            t.action
        );
    }
    s
}

pub fn actor(m: &Models, touches: &[&Touch]) -> String {
    let mut s = String::new();
    let leads: std::collections::BTreeSet<LeadId> = touches.iter().map(|t| t.lead_id).collect();
    let _ = writeln!(
        s,
        "{} touches of {} leads (times in {})",
        touches.len(),
        leads.len(),
        m.zone
    );
    for t in touches {
        let customer = m
            .pipeline
            .leads
            .get(&t.lead_id)
            .map(|r| r.customer.as_str())
            .unwrap_or("");
        let mark = if t.refused { "  REFUSED" } else { "" };
        let _ = writeln!(
            s,
            "{:>9}  {}  {:<36}  {}{mark}",
            t.position,
            when(m, &t.at),
            t.action,
            customer
        );
    }
    s
}

fn in_office(office: Option<OfficeId>, o: OfficeId) -> bool {
    office.is_none_or(|x| x == o)
}

pub fn conflicts_json(m: &Models, office: Option<OfficeId>) -> anyhow::Result<String> {
    let c = &m.conflicts;
    let fairness: Vec<serde_json::Value> = m
        .pipeline
        .offices
        .keys()
        .filter(|o| in_office(office, **o))
        .map(|o| {
            let (counts, spread) = c.fairness(*o);
            serde_json::json!({ "office": o, "manager_assigned": counts, "spread": spread })
        })
        .collect();
    let out = serde_json::json!({
        "duplicates": c.duplicates.iter().filter(|d| in_office(office, d.office)).collect::<Vec<_>>(),
        "conflicts": c.conflicts.iter().filter(|(_, x)| in_office(office, x.office)).collect::<std::collections::BTreeMap<_, _>>(),
        "refused_touches": c.refused_touches.iter().filter(|t| in_office(office, t.office)).collect::<Vec<_>>(),
        "reassignments": c.reassignments.iter().filter(|(_, x)| in_office(office, x.office)).collect::<std::collections::BTreeMap<_, _>>(),
        "fairness": fairness,
    });
    Ok(serde_json::to_string_pretty(&out)?)
}

pub fn conflicts(m: &Models, office: Option<OfficeId>) -> String {
    let c = &m.conflicts;
    let mut s = String::new();
    let customer = |l: &LeadId| {
        m.pipeline
            .leads
            .get(l)
            .map(|r| r.customer.clone())
            .unwrap_or_default()
    };
    let mut cases: Vec<&ConflictCase> = c
        .conflicts
        .values()
        .filter(|x| in_office(office, x.office))
        .collect();
    cases.sort_by_key(|x| x.opened_at);
    let dups = c
        .duplicates
        .iter()
        .filter(|d| in_office(office, d.office))
        .count();
    let _ = writeln!(
        s,
        "duplicate registrations: {dups}; ownership conflicts: {} (times in {})",
        cases.len(),
        m.zone
    );
    for x in &cases {
        let claimants: Vec<String> = x.claimants.iter().map(|id| staff(m, id)).collect();
        let decision = match &x.decision {
            Some(d) => {
                let grounds: Vec<String> = d.grounds.iter().map(|g| format!("{g:?}")).collect();
                format!(
                    "→ {} by {} on {} ({}; {})",
                    staff(m, &d.winner),
                    staff(m, &d.decided_by),
                    when(m, &d.at),
                    grounds.join(", "),
                    d.note
                )
            }
            None => "→ open".into(),
        };
        let _ = writeln!(
            s,
            "  {}  {}  claimants {}  {decision}",
            when(m, &x.opened_at),
            customer(&x.lead_id),
            claimants.join(" / ")
        );
    }
    let touches: Vec<&RefusedTouch> = c
        .refused_touches
        .iter()
        .filter(|t| in_office(office, t.office))
        .collect();
    let _ = writeln!(
        s,
        "refused touches of another engineer's lead: {}",
        touches.len()
    );
    for t in &touches {
        let owner = t.owner.as_ref().map(|o| staff(m, o)).unwrap_or_default();
        let _ = writeln!(
            s,
            "  {}  {} tried {} on {} (owner {owner}) [{}]",
            when(m, &t.at),
            staff(m, &t.attempted_by),
            t.action,
            customer(&t.lead_id),
            t.code
        );
    }
    let mut re: Vec<&ReassignmentCase> = c
        .reassignments
        .values()
        .filter(|x| in_office(office, x.office))
        .collect();
    re.sort_by_key(|x| x.requested_at);
    let _ = writeln!(s, "reassignments: {}", re.len());
    for x in &re {
        let approvals: Vec<String> = x
            .approvals
            .iter()
            .map(|a| format!("{:?} {}", a.party, staff(m, &a.by)))
            .collect();
        let outcome = match &x.outcome {
            ReassignmentOutcome::Pending => "pending".to_string(),
            ReassignmentOutcome::Approved { at } => format!("approved {}", when(m, at)),
            ReassignmentOutcome::Denied {
                party, by, reason, ..
            } => format!("denied by {party:?} {} ({reason})", staff(m, by)),
            ReassignmentOutcome::Expired { at } => format!("expired {}", when(m, at)),
        };
        let _ = writeln!(
            s,
            "  {}  {}  {} → {}  approvals [{}]  {outcome}",
            when(m, &x.requested_at),
            customer(&x.lead_id),
            staff(m, &x.from),
            staff(m, &x.to),
            approvals.join(", ")
        );
    }
    let _ = writeln!(s, "manager-assigned leads per engineer (fairness):");
    for (o, info) in m
        .pipeline
        .offices
        .iter()
        .filter(|(o, _)| in_office(office, **o))
    {
        let (counts, spread) = c.fairness(*o);
        let list: Vec<String> = counts
            .iter()
            .map(|(id, n)| format!("{} {n}", staff(m, id)))
            .collect();
        let _ = writeln!(
            s,
            "  {} ({}): {}  spread {spread}",
            info.name,
            info.code,
            list.join(", ")
        );
    }
    s
}

pub fn plans(report: &[EngineerCompliance]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:>22} {:>22} {:>8} {:>8}",
        "engineer", "weekly on/late/miss", "monthly on/late/miss", "planned", "logged"
    );
    for e in report {
        let _ = writeln!(
            s,
            "{:<16} {:>22} {:>22} {:>8} {:>8}",
            e.name,
            format!(
                "{}/{}/{}",
                e.weekly.on_time, e.weekly.late, e.weekly.missing
            ),
            format!(
                "{}/{}/{}",
                e.monthly.on_time, e.monthly.late, e.monthly.missing
            ),
            e.planned_visits,
            e.logged_visits_in_planned_weeks
        );
    }
    s
}
