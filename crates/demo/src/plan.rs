//! Generation: the bootstrap of offices and staff, every lead's script, and the office routines,
//! merged into one timeline.

use crate::world::World;
use crate::{DemoOptions, Expect, Item};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, Who};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A wall-clock time in `tz` (an office's zone, or headquarters' for the whole history) as UTC.
pub fn local(tz: Tz, date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let t = NaiveTime::from_hms_opt(hour.min(23), minute.min(59), 0).unwrap_or_default();
    funnel_domain::time::at_local(date.and_time(t), tz)
}

/// Collects scheduled commands.
pub struct Gen {
    pub items: Vec<Item>,
    seq: u64,
    pub end: DateTime<Utc>,
}

impl Gen {
    /// Schedules a command; commands after the end of the history are dropped.
    pub fn push(&mut self, at: DateTime<Utc>, who: Who, cmd: Command, expect: Expect) -> bool {
        self.seq += 1;
        if at > self.end {
            return false;
        }
        self.items.push(Item {
            at,
            who,
            cmd,
            expect,
            seq: self.seq,
        });
        true
    }
}

pub fn generate(opts: &DemoOptions) -> (World, Vec<Item>) {
    let world = World::new();
    // The history starts and ends on headquarters' clock.
    let hq = funnel_domain::DEFAULT_TIME_ZONE;
    let start = local(hq, opts.start, 9, 0);
    let end = local(
        hq,
        opts.start + Duration::weeks(i64::from(opts.weeks)),
        0,
        0,
    );
    let mut g = Gen {
        items: Vec::new(),
        seq: 0,
        end,
    };
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
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let leads = crate::script::leads(&mut g, &mut rng, &world, opts, start);
    crate::routine::plans(&mut g, &mut rng, &world, opts);
    crate::routine::summaries(&mut g, &mut rng, &world, opts, &leads);
    g.items.sort_by_key(|i| (i.at, i.seq));
    (world, g.items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;
    use funnel_domain::plan::PlanCommand;

    #[test]
    fn an_offices_routine_runs_on_its_own_clock() {
        let mut world = World::new();
        world.offices[1].timezone = "Asia/Urumqi";
        let office = world.offices[1].clone();
        let mut g = Gen {
            items: Vec::new(),
            seq: 0,
            end: DateTime::<Utc>::MAX_UTC,
        };
        let opts = DemoOptions {
            weeks: 4,
            ..DemoOptions::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        crate::routine::plans(&mut g, &mut rng, &world, &opts);
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
