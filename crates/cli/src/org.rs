//! `funnel office`, `funnel staff` and `funnel calendar`: the organisation (process §1), API
//! tokens, and the working calendar that deadlines in working days count with. These act on
//! the store directly, as the system (the bootstrap of a new installation: the first office, the
//! first headquarters member, their token) or, with `--as NAME`, as a member of the sales
//! department or an executive; the domain decides either way and the log records who did it. Once
//! the first headquarters member has a token, the same is possible over HTTP (`/offices`, `/staff`).

use funnel_app::StoreUrl;
use funnel_domain::Policy;
use funnel_domain::org::{OfficeCommand, StaffCommand};
use funnel_engine::{Command, CommandMeta, Engine, Who};
use funnel_server::auth::Access;
use funnel_types::{OfficeId, Position, Role, StaffId, SystemClock};
use std::sync::Arc;

/// Who a change is made as.
#[derive(Debug, clap::Args)]
pub struct Acting {
    /// Act as this member of staff (sales department or executive); the system otherwise.
    #[arg(long = "as")]
    acting: Option<String>,
}

impl Acting {
    fn who(&self, directory: &Access) -> anyhow::Result<Who> {
        Ok(match &self.acting {
            Some(a) => {
                Who::Staff(funnel_server::tokens::find(directory, a).map_err(anyhow::Error::msg)?)
            }
            None => Who::System("funnel-cli".into()),
        })
    }
}

/// An office by id, code (any case) or exact name.
fn find_office(directory: &Access, text: &str) -> anyhow::Result<OfficeId> {
    directory.find_office(text).ok_or_else(|| {
        anyhow::anyhow!("no office `{text}` is on record; `funnel office list` shows them")
    })
}

async fn execute(engine: &Engine, who: Who, cmd: Command) -> anyhow::Result<Position> {
    let accepted = engine.execute(CommandMeta::new(who), cmd).await?;
    Ok(accepted.last_position)
}

#[derive(Debug, clap::Args)]
pub struct CalendarArgs {
    #[command(subcommand)]
    pub what: CalendarWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum CalendarWhat {
    /// Publish (or correct) a year's calendar: `funnel calendar publish 2026 --holiday
    /// 2026-10-01..2026-10-07 --workday 2026-09-27 --workday 2026-10-10`. Weekend days inside a
    /// holiday range are skipped; a later publication replaces the year's calendar.
    Publish {
        /// The year (2000 to 2100).
        year: i32,
        /// A weekday off, or a range `FROM..TO` (inclusive); repeat for more.
        #[arg(long = "holiday")]
        holidays: Vec<String>,
        /// A weekend day worked (调休); repeat for more.
        #[arg(long = "workday")]
        workdays: Vec<String>,
        /// Where the schedule comes from.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        acting: Acting,
    },
    /// A year's holidays and make-up working days.
    Show {
        /// The year.
        year: i32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Dates from `D` or `FROM..TO` arguments; with `weekdays_only`, weekend days of a range are
/// left out (a single date is kept as given, for the domain to judge).
fn dates(args: &[String], weekdays_only: bool) -> anyhow::Result<Vec<chrono::NaiveDate>> {
    use chrono::Datelike;
    let parse = |t: &str| {
        t.trim().parse::<chrono::NaiveDate>().map_err(|_| {
            anyhow::anyhow!("`{t}` is not a date (YYYY-MM-DD, or a range YYYY-MM-DD..YYYY-MM-DD)")
        })
    };
    let mut out = Vec::new();
    for a in args {
        match a.split_once("..") {
            None => out.push(parse(a)?),
            Some((from, to)) => {
                let (from, to) = (parse(from)?, parse(to)?);
                anyhow::ensure!(from <= to, "`{a}`: the range ends before it starts");
                anyhow::ensure!(
                    (to - from).num_days() < 366,
                    "`{a}`: a range is at most a year"
                );
                let mut d = from;
                while d <= to {
                    let weekend =
                        matches!(d.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
                    if !(weekdays_only && weekend) {
                        out.push(d);
                    }
                    match d.succ_opt() {
                        Some(next) => d = next,
                        None => break,
                    }
                }
            }
        }
    }
    Ok(out)
}

pub async fn calendar(url: &StoreUrl, args: CalendarArgs) -> anyhow::Result<()> {
    let store = funnel_app::open(url).await?;
    match args.what {
        CalendarWhat::Publish {
            year,
            holidays,
            workdays,
            note,
            acting,
        } => {
            let directory = funnel_server::tokens::directory(store.as_ref()).await?;
            let cmd = funnel_domain::work_calendar::CalendarCommand::Publish {
                year,
                holidays: dates(&holidays, true)?,
                workdays: dates(&workdays, false)?,
                note,
            };
            let who = acting.who(&directory)?;
            let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
            let accepted = engine
                .execute(CommandMeta::new(who), Command::Calendar { cmd })
                .await?;
            if let Some(funnel_domain::Event::CalendarPublished(e)) =
                accepted.events.first().map(|e| &e.payload)
            {
                println!(
                    "published the {year} calendar: {} holidays, {} make-up working days (position {})",
                    e.holidays.len(),
                    e.workdays.len(),
                    accepted.last_position
                );
            }
        }
        CalendarWhat::Show { year, json } => {
            anyhow::ensure!((0..=9999).contains(&year), "{year} is not a year");
            let stream = funnel_types::StreamId::new("calendar", year)?;
            let records = funnel_store::read_whole_stream(store.as_ref(), &stream).await?;
            let mut state = funnel_domain::work_calendar::CalendarState::default();
            for r in &records {
                state = funnel_domain::work_calendar::evolve_calendar(
                    state,
                    &funnel_codec::decode_recorded(r)?.payload,
                );
            }
            match (state.published, json) {
                (Some(p), true) => println!("{}", serde_json::to_string_pretty(&p)?),
                (None, true) => println!("null"),
                (Some(p), false) => {
                    println!("{year}: {}", p.note);
                    let list = |d: &[chrono::NaiveDate]| {
                        d.iter()
                            .map(|d| d.format("%m-%d").to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    };
                    println!("  holidays ({}): {}", p.holidays.len(), list(&p.holidays));
                    println!(
                        "  make-up working days ({}): {}",
                        p.workdays.len(),
                        list(&p.workdays)
                    );
                }
                (None, false) => {
                    println!(
                        "no calendar is published for {year}: Monday to Friday are working days"
                    )
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct OfficeArgs {
    #[command(subcommand)]
    pub what: OfficeWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum OfficeWhat {
    /// Open an office: `funnel office open SH --name 上海办事处 --region 华东`.
    Open {
        /// Its short code, unique in any case; the office id is derived from it.
        code: String,
        /// Its name (上海办事处).
        #[arg(long)]
        name: String,
        /// IANA time zone of its deadlines.
        #[arg(long, default_value = "Asia/Shanghai")]
        timezone: String,
        /// The sales region it belongs to (华东).
        #[arg(long, default_value = "")]
        region: String,
        #[command(flatten)]
        acting: Acting,
    },
    /// Every office with code, time zone and active staff.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn office(url: &StoreUrl, args: OfficeArgs) -> anyhow::Result<()> {
    let store = funnel_app::open(url).await?;
    let directory = funnel_server::tokens::directory(store.as_ref()).await?;
    match args.what {
        OfficeWhat::Open {
            code,
            name,
            timezone,
            region,
            acting,
        } => {
            if let Some(id) = directory.office_with_code(&code) {
                anyhow::bail!("office {id} already has the code `{}`", code.trim());
            }
            let office_id = funnel_domain::org::office_id_for(&code);
            let cmd = OfficeCommand::Open {
                office_id,
                name: name.clone(),
                code: code.clone(),
                timezone,
                region,
            };
            let who = acting.who(&directory)?;
            let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
            let p = execute(&engine, who, Command::Office { office_id, cmd }).await?;
            println!(
                "opened {name} ({}): office id {office_id} (position {p})",
                code.trim()
            );
        }
        OfficeWhat::List { json } => {
            let rows: Vec<funnel_app::query::org::OfficeRow> = directory
                .offices
                .keys()
                .filter_map(|id| directory.office_row(*id))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            for r in &rows {
                println!(
                    "{}  {:<6} {} {:<16} {} staff={}",
                    r.id,
                    r.code,
                    crate::text::left(&r.name, 20),
                    r.timezone,
                    crate::text::left(&r.region, 8),
                    r.active_staff,
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct StaffArgs {
    #[command(subcommand)]
    pub what: StaffWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum StaffWhat {
    /// Issue an API token to a member of staff (shown once), or revoke one with `--revoke`.
    Token {
        /// The member of staff: id or name (brackets and spacing as you like).
        staff: String,
        /// Revoke this token id instead of issuing a new token.
        #[arg(long)]
        revoke: Option<uuid::Uuid>,
        #[command(flatten)]
        acting: Acting,
    },
    /// Invite a member of staff to set a password: prints a one-time token (shown once) for
    /// `POST /invitations/{token}` (the console's invitation page), valid for `--hours`.
    Invite {
        /// The member of staff: id or exact name.
        staff: String,
        /// How many hours the invitation works (1 to 720).
        #[arg(long, default_value_t = 72, value_parser = clap::value_parser!(u32).range(1..=720))]
        hours: u32,
        #[command(flatten)]
        acting: Acting,
    },
    /// Open a member of staff's password sign-in, locked after repeated failures.
    Unlock {
        /// The member of staff: id or exact name.
        staff: String,
        #[command(flatten)]
        acting: Acting,
    },
    /// Record a member of staff's mobile number, which DingTalk and WeCom robots @-mention them
    /// by when a task opens for them: `funnel staff phone 王工 "138 0013 8000"`.
    Phone {
        /// The member of staff: id or exact name.
        staff: String,
        /// A mainland mobile number, written any common way (spaces, dashes, +86).
        #[arg(required_unless_present = "remove")]
        number: Option<String>,
        /// Remove the number on record instead.
        #[arg(long, conflicts_with = "number")]
        remove: bool,
        #[command(flatten)]
        acting: Acting,
    },
    /// Every member of staff with role, office and tokens.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A member of staff joins: `funnel staff add "王工（SH）" --role sales_engineer --office SH`.
    Add {
        /// Their name, as people will name them (`--as`, `funnel staff token`); unique among
        /// active staff.
        name: String,
        /// sales_engineer, office_assistant, office_manager, sales_department,
        /// key_account_department, executive or auditor.
        #[arg(long)]
        role: Role,
        /// The office (id, code or name): required for office roles, absent for headquarters.
        #[arg(long)]
        office: Option<String>,
        #[command(flatten)]
        acting: Acting,
    },
    /// A new role and office in one step (e.g. an office manager moving to headquarters).
    Reassign {
        /// The member of staff: id or name (brackets and spacing as you like).
        staff: String,
        /// The new role: sales_engineer, office_assistant, office_manager, sales_department,
        /// key_account_department, executive or auditor.
        #[arg(long)]
        role: Role,
        /// The office after the change: required for office roles, absent for headquarters.
        #[arg(long)]
        office: Option<String>,
        #[command(flatten)]
        acting: Acting,
    },
    /// A member of staff leaves; their tokens stop working.
    Leave {
        /// The member of staff: id or name (brackets and spacing as you like).
        staff: String,
        /// Why they leave.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        acting: Acting,
    },
}

pub async fn staff(url: &StoreUrl, args: StaffArgs) -> anyhow::Result<()> {
    let store = funnel_app::open(url).await?;
    let directory = funnel_server::tokens::directory(store.as_ref()).await?;
    let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
    match args.what {
        StaffWhat::Token {
            staff,
            revoke,
            acting,
        } => {
            let id = funnel_server::tokens::find(&directory, &staff).map_err(anyhow::Error::msg)?;
            let who = acting.who(&directory)?;
            match revoke {
                Some(token_id) => {
                    let p = funnel_server::tokens::revoke(&engine, who, id, token_id).await?;
                    println!("revoked token {token_id} of {staff} (position {p})");
                }
                None => {
                    let t = funnel_server::tokens::issue(&engine, who, id).await?;
                    println!("token id: {}", t.token_id);
                    println!("token:    {}", t.token);
                    println!(
                        "(shown once; only its SHA-256 is recorded; position {})",
                        t.position
                    );
                }
            }
        }
        StaffWhat::Invite {
            staff,
            hours,
            acting,
        } => {
            let id = funnel_server::tokens::find(&directory, &staff).map_err(anyhow::Error::msg)?;
            let who = acting.who(&directory)?;
            let now = chrono::Utc::now();
            let expires_at = now + chrono::Duration::hours(i64::from(hours));
            let i = funnel_server::tokens::invite(&engine, who, id, now, expires_at).await?;
            let zone = funnel_domain::time::zone(
                directory
                    .staff
                    .get(&id)
                    .and_then(|s| s.office)
                    .and_then(|o| directory.offices.get(&o))
                    .map(|o| o.timezone.as_str()),
            );
            println!("invitation id: {}", i.invitation_id);
            println!("token:         {}", i.token);
            println!(
                "accept:        POST /invitations/{} with {{\"password\": …}}",
                i.token
            );
            println!(
                "expires:       {} (shown once; only its SHA-256 is recorded; position {})",
                i.expires_at
                    .with_timezone(&zone)
                    .format("%Y-%m-%d %H:%M %Z"),
                i.position
            );
        }
        StaffWhat::Phone {
            staff,
            number,
            remove,
            acting,
        } => {
            let id = funnel_server::tokens::find(&directory, &staff).map_err(anyhow::Error::msg)?;
            let who = acting.who(&directory)?;
            let phone = if remove { None } else { number };
            let cmd = Command::Staff {
                staff_id: id,
                cmd: StaffCommand::SetPhone { phone },
            };
            let p = execute(&engine, who, cmd).await?;
            if remove {
                println!("the mobile number of {staff} is removed (position {p})");
            } else {
                println!("the mobile number of {staff} is on record (position {p})");
            }
        }
        StaffWhat::Unlock { staff, acting } => {
            let id = funnel_server::tokens::find(&directory, &staff).map_err(anyhow::Error::msg)?;
            let who = acting.who(&directory)?;
            let p = funnel_server::tokens::unlock(&engine, who, id).await?;
            println!("password sign-in of {staff} is open again (position {p})");
        }
        StaffWhat::Add {
            name,
            role,
            office,
            acting,
        } => {
            if let Some((id, _)) = directory
                .staff
                .iter()
                .find(|(_, s)| s.active && s.name == name.trim())
            {
                anyhow::bail!(
                    "a member of staff called `{name}` is already on record ({id}); give the new person a name that tells them apart"
                );
            }
            let office = office.map(|o| find_office(&directory, &o)).transpose()?;
            let staff_id = StaffId(uuid::Uuid::now_v7());
            let cmd = StaffCommand::Join {
                staff_id,
                name: name.clone(),
                role,
                office,
            };
            let who = acting.who(&directory)?;
            let p = execute(&engine, who, Command::Staff { staff_id, cmd }).await?;
            println!("{name} joined as {role}: staff id {staff_id} (position {p})");
            println!("next: funnel staff token {staff_id}");
        }
        StaffWhat::Reassign {
            staff,
            role,
            office,
            acting,
        } => {
            let staff_id =
                funnel_server::tokens::find(&directory, &staff).map_err(anyhow::Error::msg)?;
            let office = office.map(|o| find_office(&directory, &o)).transpose()?;
            let cmd = StaffCommand::Reassign { role, office };
            let who = acting.who(&directory)?;
            let p = execute(&engine, who, Command::Staff { staff_id, cmd }).await?;
            println!("{staff} is now {role} (position {p})");
        }
        StaffWhat::Leave {
            staff,
            reason,
            acting,
        } => {
            let staff_id =
                funnel_server::tokens::find(&directory, &staff).map_err(anyhow::Error::msg)?;
            let cmd = StaffCommand::Leave { reason };
            let who = acting.who(&directory)?;
            let p = execute(&engine, who, Command::Staff { staff_id, cmd }).await?;
            println!("{staff} has left; their tokens no longer sign in (position {p})");
        }
        StaffWhat::List { json } => {
            let page = funnel_app::query::org::staff_page(
                &directory,
                &funnel_app::auth::Caller::local_operator(),
                None,
                &funnel_app::Paging::everything(),
            );
            if json {
                println!("{}", serde_json::to_string_pretty(&page.staff)?);
                return Ok(());
            }
            for r in &page.staff {
                println!(
                    "{}  {} {:<24} active={} tokens={}",
                    r.id,
                    crate::text::left(&r.name, 24),
                    r.role.as_str(),
                    r.active,
                    r.tokens.as_ref().map_or(0, Vec::len)
                );
            }
        }
    }
    Ok(())
}
