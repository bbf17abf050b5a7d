//! One script per lead: registration (and assignment or a duplicate and its adjudication), visits,
//! key persons and insiders, criteria with evidence, declarations, contract review, signing, and the
//! exits, each step timed after the previous one. The script follows the domain's rules, so every
//! step is expected to be accepted, except the refusals it schedules on purpose.

use crate::names::*;
use crate::plan::{Gen, local};
use crate::types::{DemoOptions, Expect};
use crate::world::{Office, World};
use chrono::{DateTime, Duration, Utc};
use funnel_domain::RefusalCode;
use funnel_domain::customer_key;
use funnel_domain::events::ConflictGround;
use funnel_domain::lead::{
    LeadCommand as C, LogVisit, RecordKeyPerson, Register, StagnationDecision, checklist,
};
use funnel_domain::model::*;
use funnel_domain::work_calendar::WorkCalendar;
use funnel_engine::{Command, Who};
use funnel_types::*;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use sha2::Digest;
use std::collections::BTreeSet;

/// What the office summaries need to know about a lead.
#[derive(Clone, Debug)]
pub struct LeadInfo {
    pub id: LeadId,
    pub office: usize,
    pub registered_at: DateTime<Utc>,
    pub engineer: StaffId,
    pub customer: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    LostEarly,
    Stagnant,
    Ordinary,
    Valid,
    Prospect,
    Signed,
}

/// The running state of one lead's script.
struct Lead<'a> {
    id: LeadId,
    office: &'a Office,
    /// Working days: people work on the weekdays and make-up days the calendar says.
    calendar: &'a WorkCalendar,
    owner: StaffId,
    mode: PurchaseMode,
    at: DateTime<Utc>,
    visits: u32,
    key_persons: Vec<KeyPersonId>,
    n: usize,
}

impl Lead<'_> {
    fn cmd(&self, cmd: C) -> Command {
        Command::Lead {
            lead_id: Some(self.id),
            cmd,
        }
    }

    fn later(&mut self, rng: &mut ChaCha8Rng, min_days: i64, max_days: i64) -> DateTime<Utc> {
        let days = rng.random_range(min_days..=max_days);
        let minutes = rng.random_range(0..480);
        let tz = self.office.tz();
        let date = (self.at + Duration::days(days))
            .with_timezone(&tz)
            .date_naive();
        let mut date = date;
        while !self.calendar.is_working_day(date) {
            date += Duration::days(1);
        }
        let t = local(tz, date, 9, 0) + Duration::minutes(minutes);
        self.at = t.max(self.at + Duration::minutes(5));
        self.at
    }
}

fn choose<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Spells a name differently but equal under normalisation (spaces, half-width brackets, a dot).
fn variant(name: &str, rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..3) {
        0 => name.replace('（', "(").replace('）', ")"),
        1 => {
            name.chars()
                .flat_map(|c| if c == '期' { vec![c, ' '] } else { vec![c] })
                .collect::<String>()
                .trim()
                .to_string()
                + " "
        }
        _ => format!("·{name}"),
    }
}

pub fn leads(
    g: &mut Gen,
    rng: &mut ChaCha8Rng,
    world: &World,
    calendar: &WorkCalendar,
    opts: &DemoOptions,
    start: DateTime<Utc>,
) -> Vec<LeadInfo> {
    let mut keys = BTreeSet::new();
    let mut out = Vec::new();
    let mut assigned = vec![vec![0u32; 4]; world.offices.len()];
    let span_days = i64::from(opts.weeks) * 7 - 10;
    for n in 0..opts.leads {
        let oi = n % world.offices.len();
        let office = &world.offices[oi];
        let channel = *choose(rng, Channel::ALL);
        let mode = match rng.random_range(0..100) {
            0..60 => PurchaseMode::Independent,
            60..85 => PurchaseMode::Group,
            _ => PurchaseMode::Strategic,
        };
        let industry = if rng.random_bool(0.8) {
            Industry::RealEstate
        } else {
            *choose(rng, &Industry::ALL[1..])
        };
        let (customer, project) = fresh_customer(rng, &mut keys, industry, mode);
        let id = LeadId::derived(&customer_key(&customer, &project));
        let (city, districts) = CITIES[office.city];
        let location = format!("{city}{}", choose(rng, districts));
        // Deeper fates start earlier so they have time to get there.
        let roll = rng.random_range(0.0..1.0);
        let fate = if roll < 0.07 {
            Fate::LostEarly
        } else if roll < 0.12 {
            Fate::Stagnant
        } else if roll < 0.55 {
            Fate::Ordinary
        } else if rng.random_bool(0.9) {
            Fate::Valid
        } else if rng.random_bool(0.6) {
            Fate::Prospect
        } else {
            Fate::Signed
        };
        let latest = match fate {
            Fate::Signed => span_days / 3,
            Fate::Prospect => span_days / 2,
            Fate::Valid => span_days * 2 / 3,
            _ => span_days,
        };
        let day = rng.random_range(0..latest.max(1));
        let mut lead = Lead {
            id,
            office,
            calendar,
            owner: office.engineers[0],
            mode,
            at: start + Duration::days(day),
            visits: 0,
            key_persons: Vec::new(),
            n,
        };
        let at = lead.later(rng, 0, 0);
        let register = Register {
            customer_name: customer.clone(),
            project_name: project.clone(),
            industry,
            purchase_mode: mode,
            channel,
            office: office.id,
            location,
            contact: Contact {
                name: format!("{}经理", choose(rng, SURNAMES)),
                phone: format!("13{:09}", rng.random_range(0..1_000_000_000u64)),
            },
            need: "新建住宅小区需要楼宇对讲及门禁系统".into(),
        };
        let engineer_index = rng.random_range(0..office.engineers.len());
        let self_found = channel.allocation() == Allocation::FirstToRegister;
        if self_found {
            lead.owner = office.engineers[engineer_index];
            g.push(
                at,
                Who::Staff(lead.owner),
                Command::Lead {
                    lead_id: None,
                    cmd: C::Register(register.clone()),
                },
                Expect::Accept,
            );
        } else {
            g.push(
                at,
                Who::Staff(office.assistant),
                Command::Lead {
                    lead_id: None,
                    cmd: C::Register(register.clone()),
                },
                Expect::Accept,
            );
            // Fair assignment: the engineer with the fewest assigned leads, ties by chance (§5.3).
            let counts = &mut assigned[oi];
            let least = *counts.iter().min().unwrap_or(&0);
            let candidates: Vec<usize> =
                (0..counts.len()).filter(|i| counts[*i] == least).collect();
            let pick = *choose(rng, &candidates);
            counts[pick] += 1;
            lead.owner = office.engineers[pick];
            let at = lead.later(rng, 0, 2);
            let reason = if channel.is_passive() {
                "客户主动咨询，分配给首次接触的工程师"
            } else {
                "按区域分配"
            };
            g.push(
                at,
                Who::Staff(office.manager),
                lead.cmd(C::Assign {
                    owner: lead.owner,
                    reason: reason.into(),
                }),
                Expect::Accept,
            );
        }
        out.push(LeadInfo {
            id,
            office: oi,
            registered_at: at,
            engineer: lead.owner,
            customer: format!("{customer} {project}"),
        });

        if self_found && n % 16 == 3 {
            duplicate_within_window(g, rng, &mut lead, &register);
        }
        if self_found && n % 97 == 11 {
            // Registered again long after: the first registrant owns it (§5.1).
            let other = *office
                .engineers
                .iter()
                .find(|e| **e != lead.owner)
                .unwrap_or(&lead.owner);
            let mut again = register.clone();
            again.customer_name = variant(&again.customer_name, rng);
            g.push(
                lead.at + Duration::days(12),
                Who::Staff(other),
                Command::Lead {
                    lead_id: None,
                    cmd: C::Register(again),
                },
                Expect::Refuse(RefusalCode::AlreadyRegistered),
            );
        }
        run(g, rng, &mut lead, fate);
    }
    for (oi, office) in world.offices.iter().enumerate() {
        for (k, kind) in Pending::ALL.into_iter().enumerate() {
            let n = opts.leads + oi * PENDING_PER_OFFICE + k;
            out.push(pending(
                g, rng, &mut keys, calendar, office, oi, n, kind, start,
            ));
        }
    }
    out
}

/// A customer and project not registered yet in this history.
fn fresh_customer(
    rng: &mut ChaCha8Rng,
    keys: &mut BTreeSet<String>,
    industry: Industry,
    mode: PurchaseMode,
) -> (String, String) {
    loop {
        let customer = if industry != Industry::RealEstate {
            choose(rng, OTHER_CUSTOMERS).to_string()
        } else {
            match mode {
                PurchaseMode::Strategic => choose(rng, NATIONAL_GROUPS).to_string(),
                PurchaseMode::Group => choose(rng, REGIONAL_GROUPS).to_string(),
                PurchaseMode::Independent => choose(rng, LOCAL_DEVELOPERS).to_string(),
            }
        };
        let project = format!("{}（{}）", choose(rng, PROJECTS), choose(rng, PHASES));
        if keys.insert(customer_key(&customer, &project)) {
            return (customer, project);
        }
    }
}

/// How many leads of each office end the history waiting for someone: one per [`Pending`] kind.
pub const PENDING_PER_OFFICE: usize = 5;

/// What a lead at the end of the history waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// A duplicate registration: the manager decides the ownership conflict.
    Conflict,
    /// The manager asked to move it to another engineer: the sales department, then the owner,
    /// approve.
    Reassignment,
    /// A valid-information declaration: the manager reviews it.
    Review,
    /// A declaration the manager approved: the sales department files it.
    Filing,
    /// A contract the sales department approved: the office manager's and finance's seats review.
    Seats,
}

impl Pending {
    const ALL: [Pending; PENDING_PER_OFFICE] = [
        Pending::Conflict,
        Pending::Reassignment,
        Pending::Review,
        Pending::Filing,
        Pending::Seats,
    ];
}

/// A lead whose script stops just before the step `kind` names, timed so that its last step falls
/// in the last days of the history. The script is tried on a scratch timeline (with a copy of the
/// generator, so the real run makes the same choices) and moved back a week at a time until it
/// fits: holidays make the length of a script depend on when it runs. A history too short for the
/// whole script starts it with the history and keeps the steps that fall before the end.
#[allow(clippy::too_many_arguments)]
fn pending(
    g: &mut Gen,
    rng: &mut ChaCha8Rng,
    keys: &mut BTreeSet<String>,
    calendar: &WorkCalendar,
    office: &Office,
    oi: usize,
    n: usize,
    kind: Pending,
    history_start: DateTime<Utc>,
) -> LeadInfo {
    let mode = if n.is_multiple_of(2) {
        PurchaseMode::Independent
    } else {
        PurchaseMode::Group
    };
    let (customer, project) = fresh_customer(rng, keys, Industry::RealEstate, mode);
    let id = LeadId::derived(&customer_key(&customer, &project));
    let (city, districts) = CITIES[office.city];
    let register = Register {
        customer_name: customer.clone(),
        project_name: project.clone(),
        industry: Industry::RealEstate,
        purchase_mode: mode,
        channel: Channel::Relationship,
        office: office.id,
        location: format!("{city}{}", choose(rng, districts)),
        contact: Contact {
            name: format!("{}经理", choose(rng, SURNAMES)),
            phone: format!("13{:09}", rng.random_range(0..1_000_000_000u64)),
        },
        need: "新建住宅小区需要楼宇对讲及门禁系统".into(),
    };
    let owner = office.engineers[n % office.engineers.len()];
    let lead = |at| Lead {
        id,
        office,
        calendar,
        owner,
        mode,
        at,
        visits: 0,
        key_persons: Vec::new(),
        n,
    };
    // The last step lands one to three days before the end, a little earlier for later kinds.
    let target = g.end - Duration::hours(12) - Duration::days((n % 3) as i64);
    let mut start = g.end - Duration::weeks(16);
    let mut shifted = false;
    for _ in 0..30 {
        let mut scratch = Gen::new(DateTime::<Utc>::MAX_UTC);
        pending_script(
            &mut scratch,
            &mut rng.clone(),
            &mut lead(start),
            &register,
            kind,
        );
        let last = scratch.items.iter().map(|i| i.at).max().unwrap_or(start);
        if last > target {
            start -= Duration::weeks(1);
            shifted = true;
        } else if !shifted && target - last >= Duration::weeks(1) {
            start += Duration::weeks((target - last).num_weeks());
            shifted = true;
        } else {
            break;
        }
    }
    let start = start.max(history_start);
    let mut l = lead(start);
    let first = g.items.len();
    pending_script(g, rng, &mut l, &register, kind);
    LeadInfo {
        id,
        office: oi,
        registered_at: g.items.get(first).map_or(start, |i| i.at),
        engineer: l.owner,
        customer: format!("{customer} {project}"),
    }
}

fn pending_script(
    g: &mut Gen,
    rng: &mut ChaCha8Rng,
    lead: &mut Lead<'_>,
    register: &Register,
    kind: Pending,
) {
    let at = lead.later(rng, 0, 0);
    g.push(
        at,
        Who::Staff(lead.owner),
        Command::Lead {
            lead_id: None,
            cmd: C::Register(register.clone()),
        },
        Expect::Accept,
    );
    if kind == Pending::Conflict {
        // Another engineer registers the same project, differently written, hours later.
        let other = *lead
            .office
            .engineers
            .iter()
            .find(|e| **e != lead.owner)
            .unwrap_or(&lead.owner);
        let mut dup = register.clone();
        dup.customer_name = variant(&dup.customer_name, rng);
        dup.project_name = variant(&dup.project_name, rng);
        lead.at += Duration::hours(rng.random_range(2..6));
        let at = lead.at;
        g.push(
            at,
            Who::Staff(other),
            Command::Lead {
                lead_id: None,
                cmd: C::Register(dup),
            },
            Expect::Accept,
        );
        return;
    }
    key_person(g, rng, lead, KeyPersonRole::Gatekeeper, "弱电工程师");
    visit(g, rng, lead, "首次拜访，介绍公司及产品");
    visit(g, rng, lead, "收集需求，约定演示");
    if kind == Pending::Reassignment {
        let Some(to) = lead
            .office
            .engineers
            .iter()
            .copied()
            .find(|e| *e != lead.owner)
        else {
            return;
        };
        let at = lead.later(rng, 1, 2);
        g.push(
            at,
            Who::Staff(lead.office.manager),
            lead.cmd(C::RequestReassignment {
                reassignment_id: ReassignmentId::derived(&format!("{}:reassign", lead.id)),
                to,
                evidence: "原负责人手头项目过多，客户希望有专人对接".into(),
            }),
            Expect::Accept,
        );
        return;
    }
    let gatekeeper = lead.key_persons[0];
    lead.at += Duration::hours(1);
    g.push(
        lead.at,
        Who::Staff(lead.owner),
        lead.cmd(C::MarkInsider {
            key_person_id: gatekeeper,
            note: "愿意提供决策链信息".into(),
        }),
        Expect::Accept,
    );
    assess(g, lead, Level::B, Level::C);
    key_person(g, rng, lead, KeyPersonRole::DecisionMaker, "项目总经理");
    criteria(g, rng, lead, Stage::Valid);
    match kind {
        Pending::Review => return declaration(g, rng, lead, None, 1),
        Pending::Filing => return declaration(g, rng, lead, None, 2),
        _ => declaration(g, rng, lead, None, 3),
    }
    visit(g, rng, lead, "邀请参观总部及样板工程");
    criteria(g, rng, lead, Stage::Prospect);
    assess(g, lead, Level::B, Level::A);
    let amount = rng.random_range(1_000_000..3_000_000u64) / 1000 * 1000;
    declaration(g, rng, lead, Some(amount), 3);
    let at = lead.later(rng, 1, 3);
    g.push(
        at,
        Who::Staff(lead.owner),
        lead.cmd(C::NoteNegotiation {
            note: "谈判准备：报价依据、让步方案、替代方案".into(),
            executives_invited: false,
        }),
        Expect::Accept,
    );
    let contract_id = ContractId::derived(&format!("{}:contract", lead.id));
    let content_hash = hash(&format!("{}:v1:{amount}", lead.id));
    let at = lead.later(rng, 1, 3);
    g.push(
        at,
        Who::Staff(lead.owner),
        lead.cmd(C::SubmitContract {
            contract_id,
            amount_cny: amount,
            content_hash: content_hash.clone(),
        }),
        Expect::Accept,
    );
    let at = lead.later(rng, 1, 1);
    g.push(
        at,
        Who::Staff(sales_department(lead)),
        lead.cmd(C::ReviewContract {
            contract_id,
            seat: "sales_department".into(),
            approve: true,
            content_hash,
            reasons: String::new(),
        }),
        Expect::Accept,
    );
}

/// The first `steps` steps of a declaration: declared (1), approved by the manager (2), filed by
/// the sales department (3).
fn declaration(
    g: &mut Gen,
    rng: &mut ChaCha8Rng,
    lead: &mut Lead<'_>,
    prospect: Option<u64>,
    steps: u8,
) {
    let declaration_id = DeclarationId::derived(&format!("{}:{}:1", lead.id, prospect.is_some()));
    let at = lead.later(rng, 1, 2);
    let cmd = match prospect {
        None => C::DeclareValidInfo {
            declaration_id,
            note: "满足有效信息标准".into(),
        },
        Some(amount) => C::DeclareProspect {
            declaration_id,
            amount_cny: amount,
            flags: QualitativeFlags {
                group_purchasing: lead.mode != PurchaseMode::Independent,
                ..Default::default()
            },
            quoting_strategy: "标准报价".into(),
        },
    };
    g.push(at, Who::Staff(lead.owner), lead.cmd(cmd), Expect::Accept);
    if steps < 2 {
        return;
    }
    let at = lead.later(rng, 1, 2);
    g.push(
        at,
        Who::Staff(lead.office.manager),
        lead.cmd(C::ReviewDeclaration {
            declaration_id,
            approve: true,
            note: String::new(),
        }),
        Expect::Accept,
    );
    if steps < 3 {
        return;
    }
    let at = lead.later(rng, 1, 2);
    g.push(
        at,
        Who::Staff(sales_department(lead)),
        lead.cmd(C::FileDeclaration { declaration_id }),
        Expect::Accept,
    );
}

fn duplicate_within_window(
    g: &mut Gen,
    rng: &mut ChaCha8Rng,
    lead: &mut Lead<'_>,
    register: &Register,
) {
    let other = *lead
        .office
        .engineers
        .iter()
        .find(|e| **e != lead.owner)
        .unwrap_or(&lead.owner);
    let mut dup = register.clone();
    dup.customer_name = variant(&dup.customer_name, rng);
    dup.project_name = variant(&dup.project_name, rng);
    dup.channel = Channel::Relationship;
    lead.at += Duration::hours(rng.random_range(2..40));
    g.push(
        lead.at,
        Who::Staff(other),
        Command::Lead {
            lead_id: None,
            cmd: C::Register(dup),
        },
        Expect::Accept,
    );
    let conflict_id = ConflictId::derived(&format!("{}:1", lead.id));
    let winner = if rng.random_bool(0.4) {
        other
    } else {
        lead.owner
    };
    let grounds = if winner == other {
        vec![ConflictGround::ReachedDecisionMaker]
    } else {
        vec![
            ConflictGround::RegisteredFirst,
            ConflictGround::DeeperContact,
        ]
    };
    let note = if winner == other {
        "后报备者已接触到客户总经理"
    } else {
        "先报备且接触更深入"
    };
    let at = lead.later(rng, 1, 2);
    g.push(
        at,
        Who::Staff(lead.office.manager),
        lead.cmd(C::DecideConflict {
            conflict_id,
            winner,
            grounds,
            note: note.into(),
        }),
        Expect::Accept,
    );
    lead.owner = winner;
}

fn visit(g: &mut Gen, rng: &mut ChaCha8Rng, lead: &mut Lead<'_>, summary: &str) {
    let at = lead.later(rng, 3, 9);
    lead.visits += 1;
    let met = lead.key_persons.iter().take(2).copied().collect();
    let cmd = C::LogVisit(LogVisit {
        visit_id: VisitId::derived(&format!("{}:{}", lead.id, lead.visits)),
        kind: if rng.random_bool(0.8) {
            ContactKind::Visit
        } else {
            ContactKind::Phone
        },
        visited_at: at,
        purposes: vec![*choose(rng, VisitPurpose::ALL)],
        summary: summary.into(),
        information_gained: "了解项目进度与采购安排".into(),
        customer_feedback: if rng.random_bool(0.5) {
            "对数字对讲方案感兴趣".into()
        } else {
            "需要内部讨论".into()
        },
        next_step: "约定下周再次拜访".into(),
        met,
    });
    g.push(at, Who::Staff(lead.owner), lead.cmd(cmd), Expect::Accept);
}

fn key_person(
    g: &mut Gen,
    rng: &mut ChaCha8Rng,
    lead: &mut Lead<'_>,
    role: KeyPersonRole,
    title: &str,
) -> KeyPersonId {
    let id = KeyPersonId::derived(&format!("{}:{}", lead.id, lead.key_persons.len()));
    lead.key_persons.push(id);
    let cmd = C::RecordKeyPerson(RecordKeyPerson {
        key_person_id: id,
        name: format!(
            "{}{}",
            choose(rng, SURNAMES),
            if role == KeyPersonRole::DecisionMaker {
                "总"
            } else {
                "工"
            }
        ),
        title: title.into(),
        role,
        phone: format!("139{:08}", rng.random_range(0..100_000_000u64)),
        personal_notes: "喜欢喝茶，周末打羽毛球".into(),
        levels: None,
    });
    let at = lead.at + Duration::minutes(30);
    lead.at = at;
    g.push(at, Who::Staff(lead.owner), lead.cmd(cmd), Expect::Accept);
    id
}

fn criteria(g: &mut Gen, rng: &mut ChaCha8Rng, lead: &mut Lead<'_>, stage: Stage) {
    for c in checklist(lead.mode, stage) {
        if c.is_derived() {
            continue;
        }
        if rng.random_bool(0.3) {
            visit(g, rng, lead, "跟进资料收集");
        }
        let at = lead.at + Duration::hours(2);
        lead.at = at;
        let evidence = format!("{}：{}", c.label_zh(), at.date_naive());
        g.push(
            at,
            Who::Staff(lead.owner),
            lead.cmd(C::RecordCriterion {
                criterion: *c,
                evidence,
            }),
            Expect::Accept,
        );
    }
}

fn assess(g: &mut Gen, lead: &mut Lead<'_>, company: Level, personal: Level) {
    lead.at += Duration::hours(1);
    let cmd = C::AssessRelationship {
        company,
        personal,
        key_person_id: lead.key_persons.first().copied(),
        note: String::new(),
    };
    g.push(
        lead.at,
        Who::Staff(lead.owner),
        lead.cmd(cmd),
        Expect::Accept,
    );
}

/// Declares, has the manager review (returning one in ten first) and the sales department file.
fn declare(g: &mut Gen, rng: &mut ChaCha8Rng, lead: &mut Lead<'_>, prospect: Option<u64>) {
    let mut round = 0;
    loop {
        round += 1;
        let declaration_id =
            DeclarationId::derived(&format!("{}:{}:{round}", lead.id, prospect.is_some()));
        let at = lead.later(rng, 1, 3);
        let cmd = match prospect {
            None => C::DeclareValidInfo {
                declaration_id,
                note: "满足有效信息标准".into(),
            },
            Some(amount) => C::DeclareProspect {
                declaration_id,
                amount_cny: amount,
                flags: QualitativeFlags {
                    continuing_purchases: amount > 1_000_000,
                    group_purchasing: lead.mode != PurchaseMode::Independent,
                    ..Default::default()
                },
                quoting_strategy: if amount > 3_000_000 {
                    "战略报价，分期供货".into()
                } else {
                    "标准报价".into()
                },
            },
        };
        g.push(at, Who::Staff(lead.owner), lead.cmd(cmd), Expect::Accept);
        let approve = round > 1 || !rng.random_bool(0.1);
        let at = lead.later(rng, 1, 3);
        let note = if approve {
            String::new()
        } else {
            "证据不足，请补充决策链信息".into()
        };
        g.push(
            at,
            Who::Staff(lead.office.manager),
            lead.cmd(C::ReviewDeclaration {
                declaration_id,
                approve,
                note,
            }),
            Expect::Accept,
        );
        if approve {
            let at = lead.later(rng, 1, 2);
            g.push(
                at,
                Who::Staff(sales_department(lead)),
                lead.cmd(C::FileDeclaration { declaration_id }),
                Expect::Accept,
            );
            return;
        }
    }
}

fn sales_department(lead: &Lead<'_>) -> StaffId {
    // Two members of the sales department share the work.
    StaffId::derived(if lead.n.is_multiple_of(2) {
        "demo:销售部·高"
    } else {
        "demo:销售部·罗"
    })
}

fn hash(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn contract(g: &mut Gen, rng: &mut ChaCha8Rng, lead: &mut Lead<'_>, amount: u64) {
    let at = lead.later(rng, 2, 5);
    g.push(
        at,
        Who::Staff(lead.owner),
        lead.cmd(C::NoteNegotiation {
            note: "谈判准备：报价依据、让步方案、替代方案".into(),
            executives_invited: amount > 3_000_000,
        }),
        Expect::Accept,
    );
    if amount > 3_000_000 {
        let at = lead.later(rng, 1, 3);
        g.push(
            at,
            Who::Staff(StaffId::derived("demo:总经理·梁")),
            lead.cmd(C::NoteNegotiation {
                note: "高层会谈，确认战略合作意向".into(),
                executives_invited: true,
            }),
            Expect::Accept,
        );
    }
    let contract_id = ContractId::derived(&format!("{}:contract", lead.id));
    let mut version = 1;
    let mut content = hash(&format!("{}:v{version}:{amount}", lead.id));
    let at = lead.later(rng, 2, 4);
    g.push(
        at,
        Who::Staff(lead.owner),
        lead.cmd(C::SubmitContract {
            contract_id,
            amount_cny: amount,
            content_hash: content.clone(),
        }),
        Expect::Accept,
    );
    let mut amount = amount;
    if rng.random_bool(0.35) {
        let at = lead.later(rng, 1, 2);
        let cmd = C::ReviewContract {
            contract_id,
            seat: "sales_department".into(),
            approve: false,
            content_hash: content.clone(),
            reasons: "折扣超出授权，付款条件需调整".into(),
        };
        g.push(
            at,
            Who::Staff(sales_department(lead)),
            lead.cmd(cmd),
            Expect::Accept,
        );
        version += 1;
        amount = amount * 97 / 100;
        content = hash(&format!("{}:v{version}:{amount}", lead.id));
        let at = lead.later(rng, 2, 4);
        let cmd = C::AmendContract {
            contract_id,
            amount_cny: amount,
            content_hash: content.clone(),
            reason: "调整折扣与付款条件".into(),
        };
        g.push(at, Who::Staff(lead.owner), lead.cmd(cmd), Expect::Accept);
    }
    for (who, seat) in [
        (sales_department(lead), "sales_department"),
        (lead.office.manager, "office_manager"),
        (StaffId::derived("demo:总经理·梁"), "finance"),
    ] {
        let at = lead.later(rng, 0, 2);
        let cmd = C::ReviewContract {
            contract_id,
            seat: seat.into(),
            approve: true,
            content_hash: content.clone(),
            reasons: String::new(),
        };
        g.push(at, Who::Staff(who), lead.cmd(cmd), Expect::Accept);
    }
    let at = lead.later(rng, 1, 3);
    g.push(
        at,
        Who::Staff(lead.owner),
        lead.cmd(C::SignContract {
            contract_id,
            content_hash: content,
        }),
        Expect::Accept,
    );
    let at = lead.later(rng, 1, 3);
    g.push(
        at,
        Who::Staff(sales_department(lead)),
        lead.cmd(C::ProcessOrder {
            contract_id,
            order_ref: format!("SO-{}-{:04}", at.format("%Y%m"), lead.n),
        }),
        Expect::Accept,
    );
    let at = lead.later(rng, 10, 20);
    g.push(
        at,
        Who::Staff(lead.owner),
        lead.cmd(C::LogAfterSalesCare {
            note: "安装完成后回访，客户满意".into(),
        }),
        Expect::Accept,
    );
}

fn exit(g: &mut Gen, rng: &mut ChaCha8Rng, lead: &mut Lead<'_>, lost: bool) {
    let at = lead.later(rng, 3, 10);
    let (who, cmd) = if lost {
        (
            lead.owner,
            C::MarkLost {
                reason: "价格不占优势".into(),
                competitor: choose(rng, COMPETITORS).to_string(),
            },
        )
    } else {
        (
            lead.office.manager,
            C::Suspend {
                reason: "项目延期，保持日常联系".into(),
            },
        )
    };
    g.push(at, Who::Staff(who), lead.cmd(cmd), Expect::Accept);
    if rng.random_bool(0.15) {
        let at = lead.later(rng, 14, 30);
        g.push(
            at,
            Who::Staff(lead.owner),
            lead.cmd(C::Reactivate {
                reason: "项目重新启动".into(),
            }),
            Expect::Accept,
        );
    }
}

fn touch_attempt(g: &mut Gen, lead: &mut Lead<'_>) {
    let Some(other) = lead
        .office
        .engineers
        .iter()
        .copied()
        .find(|e| *e != lead.owner)
    else {
        return;
    };
    lead.at += Duration::hours(3);
    let cmd = C::LogVisit(LogVisit {
        visit_id: VisitId::derived(&format!("{}:poach", lead.id)),
        kind: ContactKind::Visit,
        visited_at: lead.at,
        purposes: vec![VisitPurpose::PromoteCompanyAndProduct],
        summary: "私下拜访客户".into(),
        information_gained: String::new(),
        customer_feedback: String::new(),
        next_step: String::new(),
        met: vec![],
    });
    g.push(
        lead.at,
        Who::Staff(other),
        lead.cmd(cmd),
        Expect::Refuse(RefusalCode::NotOwner),
    );
}

fn reassignment(g: &mut Gen, rng: &mut ChaCha8Rng, lead: &mut Lead<'_>, approved: bool) {
    let Some(to) = lead
        .office
        .engineers
        .iter()
        .copied()
        .find(|e| *e != lead.owner)
    else {
        return;
    };
    let reassignment_id = ReassignmentId::derived(&format!("{}:reassign", lead.id));
    let at = lead.later(rng, 2, 5);
    let evidence = if approved {
        "原负责人调往新区域，客户同意更换对接人"
    } else {
        "客户反映跟进不及时"
    };
    g.push(
        at,
        Who::Staff(lead.office.manager),
        lead.cmd(C::RequestReassignment {
            reassignment_id,
            to,
            evidence: evidence.into(),
        }),
        Expect::Accept,
    );
    let at = lead.later(rng, 1, 2);
    g.push(
        at,
        Who::Staff(sales_department(lead)),
        lead.cmd(C::ApproveReassignment {
            reassignment_id,
            note: "同意".into(),
        }),
        Expect::Accept,
    );
    let at = lead.later(rng, 1, 2);
    let cmd = if approved {
        C::ApproveReassignment {
            reassignment_id,
            note: "同意移交".into(),
        }
    } else {
        C::DenyReassignment {
            reassignment_id,
            reason: "客户关系由我维护，近期已有进展".into(),
        }
    };
    g.push(at, Who::Staff(lead.owner), lead.cmd(cmd), Expect::Accept);
    if approved {
        lead.owner = to;
    }
}

/// A purchase amount in one of the three tier bands; the band cycles with the lead's number within
/// its office, so every office has prospects of every tier.
fn amount(rng: &mut ChaCha8Rng, n: usize) -> u64 {
    let band = match (n / 3 + rng.random_range(0..2)) % 3 {
        0 => 3_200_000..9_000_000,
        1 => 1_000_000..3_000_000,
        _ => 150_000..990_000,
    };
    rng.random_range(band) / 1000 * 1000
}

fn run(g: &mut Gen, rng: &mut ChaCha8Rng, lead: &mut Lead<'_>, fate: Fate) {
    key_person(g, rng, lead, KeyPersonRole::Gatekeeper, "弱电工程师");
    visit(g, rng, lead, "首次拜访，介绍公司及产品");
    if lead.n % 23 == 5 {
        touch_attempt(g, lead);
    }
    match fate {
        Fate::LostEarly => {
            visit(g, rng, lead, "了解需求");
            exit(g, rng, lead, true);
        }
        Fate::Stagnant => {
            // Five visits with both relationships still C: the review opens (§8); three without an
            // insider already raised the escalation (§7).
            for _ in 0..4 {
                visit(g, rng, lead, "例行拜访，客户态度冷淡");
            }
            let at = lead.later(rng, 1, 3);
            let decision = match lead.n % 5 {
                0 | 1 => StagnationDecision::ChangeKeyPerson {
                    key_person_id: None,
                },
                2 | 3 => StagnationDecision::Suspend,
                _ => {
                    let to = lead
                        .office
                        .engineers
                        .iter()
                        .copied()
                        .find(|e| *e != lead.owner)
                        .unwrap_or(lead.owner);
                    StagnationDecision::ChangeEngineer {
                        to,
                        reassignment_id: ReassignmentId::derived(&format!(
                            "{}:stagnation",
                            lead.id
                        )),
                        evidence: "连续五次拜访关系无进展".into(),
                    }
                }
            };
            let change = matches!(decision, StagnationDecision::ChangeEngineer { .. });
            let to = match &decision {
                StagnationDecision::ChangeEngineer {
                    to,
                    reassignment_id,
                    ..
                } => Some((*to, *reassignment_id)),
                _ => None,
            };
            g.push(
                at,
                Who::Staff(lead.office.manager),
                lead.cmd(C::DecideStagnationReview {
                    decision,
                    note: "停滞分析".into(),
                }),
                Expect::Accept,
            );
            if let (true, Some((to, reassignment_id))) = (change, to) {
                let at = lead.later(rng, 1, 2);
                g.push(
                    at,
                    Who::Staff(lead.owner),
                    lead.cmd(C::ApproveReassignment {
                        reassignment_id,
                        note: "同意".into(),
                    }),
                    Expect::Accept,
                );
                let at = lead.later(rng, 1, 2);
                g.push(
                    at,
                    Who::Staff(sales_department(lead)),
                    lead.cmd(C::ApproveReassignment {
                        reassignment_id,
                        note: "同意更换工程师".into(),
                    }),
                    Expect::Accept,
                );
                lead.owner = to;
            }
        }
        Fate::Ordinary => {
            for _ in 0..rng.random_range(0..3) {
                visit(g, rng, lead, "跟进拜访");
            }
            if rng.random_bool(0.1) {
                let lost = rng.random_bool(0.5);
                exit(g, rng, lead, lost);
            }
        }
        Fate::Valid | Fate::Prospect | Fate::Signed => {
            visit(g, rng, lead, "收集需求，约定演示");
            let gatekeeper = lead.key_persons[0];
            if lead.n.is_multiple_of(4) {
                // A third visit before the insider: the escalation to the manager is raised.
                visit(g, rng, lead, "继续跟进");
            }
            lead.at += Duration::hours(1);
            g.push(
                lead.at,
                Who::Staff(lead.owner),
                lead.cmd(C::MarkInsider {
                    key_person_id: gatekeeper,
                    note: "愿意提供决策链信息".into(),
                }),
                Expect::Accept,
            );
            assess(g, lead, Level::B, Level::C);
            key_person(g, rng, lead, KeyPersonRole::DecisionMaker, "项目总经理");
            criteria(g, rng, lead, Stage::Valid);
            declare(g, rng, lead, None);
            if fate == Fate::Valid {
                match lead.n % 29 {
                    7 => reassignment(g, rng, lead, true),
                    13 => reassignment(g, rng, lead, false),
                    _ => {}
                }
                if rng.random_bool(0.12) {
                    let lost = rng.random_bool(0.6);
                    exit(g, rng, lead, lost);
                }
                return;
            }
            visit(g, rng, lead, "邀请参观总部及样板工程");
            criteria(g, rng, lead, Stage::Prospect);
            assess(
                g,
                lead,
                Level::B,
                if lead.n.is_multiple_of(2) {
                    Level::A
                } else {
                    Level::B
                },
            );
            let amount = amount(rng, lead.n);
            declare(g, rng, lead, Some(amount));
            if fate == Fate::Signed {
                contract(g, rng, lead, amount);
            } else if rng.random_bool(0.3) {
                exit(g, rng, lead, true);
            }
        }
    }
}
