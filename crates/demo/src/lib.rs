//! A realistic, deterministic demo history, written through the real command path (the engine), so
//! every event in it was decided by the domain like any other.
//!
//! Three offices with a manager, an assistant and four engineers each, headquarters staff, the
//! working calendar of every year the history spans, and (by default) 500 leads over the 26 weeks
//! that end on the chosen last day (yesterday, from the command line) across every channel,
//! purchase mode and prospect tier: duplicate
//! registrations and their adjudication, attempts to touch other engineers' leads, reassignments
//! approved and denied, declarations, contract reviews with rejections and amendments, signed
//! contracts, lost and suspended leads, weekly and monthly visit plans (some late, some missing) and
//! office summaries. It ends with work waiting for every role, as on any working day: per office a
//! duplicate registration whose conflict is undecided, a reassignment waiting for its approvals, a
//! declaration to review and one to file, a contract with seats still to review, and the last
//! week's summary at each step before filing. The same options always give the same commands, ids
//! and times; loading it twice into one store changes nothing the second time (every command id is
//! already applied).

mod holidays;
mod names;
mod plan;
mod routine;
mod script;
mod types;
mod world;

use chrono::{Datelike, Duration};
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Engine, EngineError, Who};
use funnel_types::CommandId;
use plan::{Gen, local};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use script::PENDING_PER_OFFICE;
pub use types::{DemoOptions, Expect, Item};
pub use world::World;

/// What a demo run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DemoReport {
    pub seed: u64,
    pub commands: u64,
    pub accepted: u64,
    /// Refusals the history contains on purpose (touches of other engineers' leads, late duplicates).
    pub refused_as_expected: u64,
    /// Commands that were already in the store (a second run with the same seed).
    pub already_applied: u64,
    pub events_written: u64,
    pub offices: usize,
    pub staff: usize,
    pub leads: usize,
    pub first_day: String,
    pub last_day: String,
}

/// Why a demo run failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("command {index} ({what}) at {at}: expected {expected:?}, got {got}")]
    Unexpected {
        index: u64,
        what: String,
        at: String,
        expected: Expect,
        got: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Generates the demo's commands: the bootstrap of offices and staff, every lead's script, and
/// the office routines, merged into one timeline sorted by time.
pub fn generate(opts: &DemoOptions) -> (World, Vec<Item>) {
    let world = World::new();
    // The history starts and ends on headquarters' clock.
    let hq = funnel_domain::DEFAULT_TIME_ZONE;
    let start = local(hq, opts.start(), 9, 0);
    let end = local(hq, opts.end_exclusive(), 0, 0);
    let mut g = Gen::new(end);
    let boot = Who::System("demo-bootstrap".into());
    let day0 = start - Duration::days(7);
    for o in &world.offices {
        let cmd = OfficeCommand::Open {
            office_id: o.id,
            name: o.name.into(),
            code: o.code.into(),
            timezone: o.timezone.into(),
            region: o.region.into(),
        };
        g.push(
            day0,
            boot.clone(),
            Command::Office {
                office_id: o.id,
                cmd,
            },
            Expect::Accept,
        );
    }
    for p in &world.people {
        let cmd = StaffCommand::Join {
            staff_id: p.id,
            name: p.name.clone(),
            role: p.role,
            office: p.office,
        };
        g.push(
            day0 + Duration::hours(1),
            boot.clone(),
            Command::Staff {
                staff_id: p.id,
                cmd,
            },
            Expect::Accept,
        );
    }
    // Headquarters publishes the working calendar of every year the history touches before it
    // starts, so reminders and escalations count working days as the offices keep them.
    let years = day0.with_timezone(&hq).year()..=opts.end.year();
    for year in years.clone() {
        g.push(
            day0 + Duration::hours(2),
            Who::Staff(world.executive),
            Command::Calendar {
                cmd: holidays::publication(year),
            },
            Expect::Accept,
        );
    }
    let calendar = holidays::calendar(years);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let leads = script::leads(&mut g, &mut rng, &world, &calendar, opts, start);
    routine::plans(&mut g, &mut rng, &world, opts);
    routine::summaries(&mut g, &mut rng, &world, &calendar, opts, &leads);
    g.items.sort_by_key(|i| (i.at, i.seq));
    (world, g.items)
}

/// Writes the demo history through `engine`, calling `progress(done, total)` as it goes.
pub async fn load(
    engine: &Engine,
    opts: &DemoOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<DemoReport, DemoError> {
    let (world, items) = generate(opts);
    let total = items.len() as u64;
    // The history replays months of refused touches in seconds; the per-person budget of refusal
    // records guards a live server, not this loader.
    let engine = &engine
        .clone()
        .with_record_budget(funnel_engine::RecordBudget::UNLIMITED);
    let mut report = DemoReport {
        seed: opts.seed,
        commands: total,
        offices: world.offices.len(),
        staff: world.staff_count(),
        leads: opts.leads + PENDING_PER_OFFICE * world.offices.len(),
        first_day: items
            .first()
            .map(|i| i.at.date_naive().to_string())
            .unwrap_or_default(),
        last_day: items
            .last()
            .map(|i| i.at.date_naive().to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    for (index, item) in items.into_iter().enumerate() {
        let index = index as u64;
        let meta = CommandMeta::new(item.who.clone())
            .with_id(CommandId::derived(&format!(
                "demo:{}:{}",
                opts.seed, item.seq
            )))
            .at(item.at);
        let what = command_name(&item.cmd);
        let result = engine.execute(meta, item.cmd).await;
        match (item.expect, result) {
            (Expect::Accept, Ok(a)) if a.duplicate => report.already_applied += 1,
            (Expect::Accept, Ok(a)) => {
                report.accepted += 1;
                report.events_written += a.events.len() as u64;
            }
            (
                Expect::Refuse(code),
                Err(EngineError::Refused {
                    refusal,
                    recorded,
                    recorded_before,
                    ..
                }),
            ) if refusal.code == code => {
                report.refused_as_expected += 1;
                report.events_written += u64::from(recorded.is_some() && !recorded_before);
            }
            (
                _,
                Err(
                    e @ (EngineError::Store(_)
                    | EngineError::Decode(_)
                    | EngineError::Contention { .. }),
                ),
            ) => {
                return Err(e.into());
            }
            (expected, got) => {
                let got = match got {
                    Ok(a) => format!("accepted ({} events)", a.events.len()),
                    Err(e) => e.to_string(),
                };
                return Err(DemoError::Unexpected {
                    index,
                    what,
                    at: item.at.to_rfc3339(),
                    expected,
                    got,
                });
            }
        }
        if index % 16 == 15 || index + 1 == total {
            progress(index + 1, total);
        }
    }
    Ok(report)
}

fn command_name(cmd: &Command) -> String {
    match cmd {
        Command::Office { .. } => "open office".into(),
        Command::Staff { .. } => "staff".into(),
        Command::Lead { cmd, .. } => format!("lead {}", cmd.name()),
        Command::Plan { .. } => "visit plan".into(),
        Command::Summary { .. } => "office summary".into(),
        Command::Calendar { .. } => "working calendar".into(),
        Command::Erasure { .. } => "erasure".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Timelike, Utc};
    use funnel_domain::plan::PlanCommand;
    use rand::SeedableRng;

    #[test]
    fn an_offices_routine_runs_on_its_own_clock() {
        let mut world = World::new();
        world.offices[1].timezone = "Asia/Urumqi";
        let office = world.offices[1].clone();
        let mut g = Gen::new(DateTime::<Utc>::MAX_UTC);
        let opts = DemoOptions {
            weeks: 4,
            ..DemoOptions::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        routine::plans(&mut g, &mut rng, &world, &opts);
        // The assistant files plans at 10:00 (weekly) or 10:30 (monthly) on the office's clock.
        let filed: Vec<DateTime<Utc>> = g
            .items
            .iter()
            .filter(|i| {
                i.who == Who::Staff(office.assistant)
                    && matches!(
                        i.cmd,
                        Command::Plan {
                            cmd: PlanCommand::File,
                            ..
                        }
                    )
            })
            .map(|i| i.at)
            .collect();
        assert!(!filed.is_empty());
        for at in filed {
            let local = at.with_timezone(&chrono_tz::Asia::Urumqi);
            assert_eq!(local.hour(), 10, "filed at {local}");
        }
    }
}
