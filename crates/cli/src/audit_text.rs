//! Text renderings of the audit reports: the answers of `funnel_app::query::reports` laid out for
//! a terminal; nothing is computed here that the answer does not hold.

use crate::text::left;
use funnel_app::query::reports::{ActorAudit, ConflictsReport, LeadAudit};
use funnel_projections::models::*;
use funnel_types::{LeadId, StaffId};
use std::fmt::Write as _;

/// A time on the clock of a report's zone (its `time_zone`).
fn when(zone: chrono_tz::Tz, t: &chrono::DateTime<chrono::Utc>) -> String {
    funnel_domain::time::local_minute(*t, zone)
}

fn zone(name: &str) -> chrono_tz::Tz {
    funnel_domain::time::zone(Some(name))
}

pub fn lead(audit: &LeadAudit) -> String {
    let z = zone(&audit.time_zone);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "lead {} {}: {} touches (times in {z})",
        audit.lead_id,
        audit.customer,
        audit.touches.len()
    );
    let _ = writeln!(
        s,
        "{:>9}  {:<16}  {:<16}  {:<18}  action",
        "position", "when", "who", "role"
    );
    for t in &audit.touches {
        let role = t
            .actor
            .role()
            .map(|r| r.as_str().to_string())
            .unwrap_or_else(|| "system".into());
        let mark = if t.refused { "  REFUSED" } else { "" };
        let _ = writeln!(
            s,
            "{:>9}  {:<16}  {}  {:<18}  {}{mark}",
            t.position,
            when(z, &t.at),
            left(&t.actor_name, 16),
            role,
            t.action
        );
    }
    s
}

pub fn actor(audit: &ActorAudit) -> String {
    let z = zone(&audit.time_zone);
    let mut s = String::new();
    let leads: std::collections::BTreeSet<LeadId> =
        audit.touches.iter().map(|t| t.lead_id).collect();
    let _ = writeln!(
        s,
        "{} touches of {} leads (times in {z})",
        audit.touches.len(),
        leads.len()
    );
    for t in &audit.touches {
        let mark = if t.refused { "  REFUSED" } else { "" };
        let _ = writeln!(
            s,
            "{:>9}  {}  {:<36}  {}{mark}",
            t.position,
            when(z, &t.at),
            t.action,
            t.customer
        );
    }
    s
}

pub fn conflicts(c: &ConflictsReport) -> String {
    let z = zone(&c.time_zone);
    let mut s = String::new();
    let staff = |id: &StaffId| {
        c.staff_names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    let customer = |l: &LeadId| c.customers.get(l).cloned().unwrap_or_default();
    let mut cases: Vec<&ConflictCase> = c.conflicts.iter().map(|x| &x.case).collect();
    cases.sort_by_key(|x| x.opened_at);
    let _ = writeln!(
        s,
        "duplicate registrations: {}; ownership conflicts: {} (times in {z})",
        c.duplicates.len(),
        cases.len()
    );
    for x in &cases {
        let claimants: Vec<String> = x.claimants.iter().map(staff).collect();
        let decision = match &x.decision {
            Some(d) => {
                let grounds: Vec<String> = d.grounds.iter().map(|g| format!("{g:?}")).collect();
                format!(
                    "→ {} by {} on {} ({}; {})",
                    staff(&d.winner),
                    staff(&d.decided_by),
                    when(z, &d.at),
                    grounds.join(", "),
                    d.note
                )
            }
            None => "→ open".into(),
        };
        let _ = writeln!(
            s,
            "  {}  {}  claimants {}  {decision}",
            when(z, &x.opened_at),
            customer(&x.lead_id),
            claimants.join(" / ")
        );
    }
    let _ = writeln!(
        s,
        "refused touches of another engineer's lead: {}",
        c.refused_touches.len()
    );
    for t in &c.refused_touches {
        let owner = t.owner.as_ref().map(staff).unwrap_or_default();
        let _ = writeln!(
            s,
            "  {}  {} tried {} on {} (owner {owner}) [{}]",
            when(z, &t.at),
            staff(&t.attempted_by),
            t.action,
            customer(&t.lead_id),
            t.code
        );
    }
    let mut re: Vec<&ReassignmentCase> = c.reassignments.iter().map(|x| &x.case).collect();
    re.sort_by_key(|x| x.requested_at);
    let _ = writeln!(s, "reassignments: {}", re.len());
    for x in &re {
        let approvals: Vec<String> = x
            .approvals
            .iter()
            .map(|a| format!("{:?} {}", a.party, staff(&a.by)))
            .collect();
        let outcome = match &x.outcome {
            ReassignmentOutcome::Pending => "pending".to_string(),
            ReassignmentOutcome::Approved { at } => format!("approved {}", when(z, at)),
            ReassignmentOutcome::Denied {
                party, by, reason, ..
            } => format!("denied by {party:?} {} ({reason})", staff(by)),
            ReassignmentOutcome::Expired { at } => format!("expired {}", when(z, at)),
        };
        let _ = writeln!(
            s,
            "  {}  {}  {} → {}  approvals [{}]  {outcome}",
            when(z, &x.requested_at),
            customer(&x.lead_id),
            staff(&x.from),
            staff(&x.to),
            approvals.join(", ")
        );
    }
    let _ = writeln!(s, "manager-assigned leads per engineer (fairness):");
    for f in &c.fairness {
        let list: Vec<String> = f
            .manager_assigned
            .iter()
            .map(|(id, n)| format!("{} {n}", staff(id)))
            .collect();
        let _ = writeln!(
            s,
            "  {} ({}): {}  spread {}",
            f.name,
            f.code,
            list.join(", "),
            f.spread
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
            "{} {:>22} {:>22} {:>8} {:>8}",
            left(&e.name, 16),
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
