//! `funnel serve --demo`: before serving, load the demo history into the store, make sure a few
//! representative demo people have API tokens, catch the server's read models up, and once listening
//! print where to look.
//!
//! - The history ends yesterday the first time (or on `--demo-end`); the day is kept beside the store
//!   (`<store stem>.demo.json`, see `demo::options`), so a restart on a later day generates the same
//!   commands. Loading is idempotent (every demo command has a derived id the engine recognises), so
//!   a restart writes nothing and takes about a second for the default 500 leads.
//! - Tokens are issued with the code `funnel staff token` uses, only when the tokens file beside the
//!   store (`<store stem>.demo-tokens.json`, mode 0600) has no valid one for that person, so restarts
//!   reuse them. Only their SHA-256 is in the log; the file is the one place the text is kept.
//! - The read models are caught up before the server starts, so the printed tokens and curl commands
//!   work the moment the address is printed.

use anyhow::Context;
use funnel_app::StoreUrl;
use funnel_demo::{DemoReport, Expect, World};
use funnel_domain::{Policy, RefusalCode};
use funnel_engine::{Command, Engine, Who};
use funnel_server::ServeOptions;
use funnel_server::auth::{Access, token_hash};
use funnel_store::EventStore;
use funnel_types::{LeadId, Position, Role, StaffId, SystemClock};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// One demo person's token, as kept in the tokens file.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DemoToken {
    name: String,
    role: Role,
    /// Office code (`SH`), or none for headquarters.
    office: Option<String>,
    staff_id: StaffId,
    token_id: uuid::Uuid,
    token: String,
}

/// The tokens file: the store the tokens were issued in (for the reader), and the tokens.
#[derive(Debug, Serialize, Deserialize)]
struct TokensFile {
    store: String,
    tokens: Vec<DemoToken>,
}

/// What `--demo` did before the server started; printed once it listens.
#[derive(Debug)]
pub struct Prepared {
    url: StoreUrl,
    projections: Option<PathBuf>,
    report: DemoReport,
    seconds: f64,
    head: Position,
    tokens_file: PathBuf,
    tokens: Vec<DemoToken>,
    issued: usize,
    /// A lead for the audit example, and whether someone else tried to touch it.
    audit_lead: Option<(LeadId, bool)>,
}

/// Where the demo tokens of a store are kept: `<stem>.demo-tokens.json` beside a SQLite file, or
/// `.funnel/demo-tokens-<hash of the URL>.json` for NATS.
pub fn tokens_path(url: &StoreUrl) -> PathBuf {
    funnel_server::beside_store(url, "demo-tokens", "json")
}

/// Loads the demo history (`leads` leads, seed 1, ending on `end` or as `funnel demo` chooses),
/// makes sure the demo tokens exist and catches up
/// the read models the server will use. Progress goes to standard error.
pub async fn prepare(
    options: &ServeOptions,
    leads: usize,
    end: Option<chrono::NaiveDate>,
) -> anyhow::Result<Prepared> {
    let url: StoreUrl = options.store.url.parse().map_err(anyhow::Error::msg)?;
    // The log is created here, before `serve` opens it: with the replicas of the settings.
    let replicas = options.store.log_replicas(&options.store.url);
    let store = funnel_app::open_store_with(&url, Some(replicas), &options.privacy.settings())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open store {url:?}: {e}"))?;
    let engine = Engine::new(store.clone(), Policy::default(), Arc::new(SystemClock));
    let opts = crate::demo::options(&url, store.as_ref(), 1, leads, end).await?;
    eprintln!(
        "funnel serve --demo: loading the demo history ({leads} leads) into {}",
        crate::demo::describe(&url)
    );
    let started = Instant::now();
    let report = crate::demo::load(&engine, &opts)
        .await
        .context("loading the demo history")?;
    crate::demo::remember(&url, &opts)?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "funnel serve --demo: {} commands in {seconds:.1}s, {} already there, {} events written",
        report.commands, report.already_applied, report.events_written
    );

    let (world, items) = funnel_demo::generate(&opts);
    let audit_lead = audit_example(&world, &items);
    let tokens_file = tokens_path(&url);
    let (tokens, issued) = ensure_tokens(
        &engine,
        store.as_ref(),
        &world,
        &tokens_file,
        &options.store.url,
    )
    .await?;

    let path = options
        .store
        .projections
        .clone()
        .unwrap_or_else(|| funnel_server::projections_path(&url));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        funnel_store::files::create_private_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut runner = funnel_server::open_runner(&path)
        .with_context(|| format!("opening the read models at {}", path.display()))?;
    crate::projections::catch_up(&mut runner, store.as_ref(), None).await?;
    drop(runner);
    let head = store.head().await?;
    Ok(Prepared {
        url,
        projections: options.store.projections.clone(),
        report,
        seconds,
        head,
        tokens_file,
        tokens,
        issued,
        audit_lead,
    })
}

/// The people who get a token: an engineer and the manager of the first office, a member of the
/// headquarters sales department, and the auditor.
fn representatives(world: &World) -> Vec<StaffId> {
    let mut ids = Vec::new();
    if let Some(office) = world.offices.first() {
        ids.extend(office.engineers.first().copied());
        ids.push(office.manager);
    }
    ids.extend(world.sales_department.first().copied());
    ids.push(world.auditor);
    ids
}

/// A lead of the first office for the audit example: one another engineer tried to touch (the
/// refusal is in its audit) if the history has one, else the first lead an engineer there works on.
fn audit_example(world: &World, items: &[funnel_demo::Item]) -> Option<(LeadId, bool)> {
    let office = world.offices.first()?;
    let lead_of = |item: &funnel_demo::Item| match (&item.who, &item.cmd) {
        (
            Who::Staff(by),
            Command::Lead {
                lead_id: Some(id), ..
            },
        ) if office.engineers.contains(by) => Some(*id),
        _ => None,
    };
    items
        .iter()
        .filter(|i| i.expect == Expect::Refuse(RefusalCode::NotOwner))
        .find_map(lead_of)
        .map(|id| (id, true))
        .or_else(|| items.iter().find_map(lead_of).map(|id| (id, false)))
}

/// The saved tokens; each is checked against the log before it is reused, so a file left over from
/// another store (or a wiped one) only costs new tokens.
fn read_tokens_file(path: &Path) -> Vec<DemoToken> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    match serde_json::from_str::<TokensFile>(&text) {
        Ok(f) => f.tokens,
        Err(e) => {
            eprintln!(
                "funnel serve --demo: ignoring {} ({e}); issuing new tokens",
                path.display()
            );
            Vec::new()
        }
    }
}

/// Whether `t` still opens the API as the member of staff it was issued to.
fn still_valid(access: &Access, t: &DemoToken) -> bool {
    access
        .resolve(&token_hash(&t.token))
        .is_some_and(|(id, entry)| id == t.staff_id && entry.active)
}

/// The saved token of each representative when it is still valid, a new one otherwise; the file is
/// rewritten (mode 0600) when anything was issued. Returns the tokens and how many were issued.
async fn ensure_tokens(
    engine: &Engine,
    store: &dyn EventStore,
    world: &World,
    path: &Path,
    store_text: &str,
) -> anyhow::Result<(Vec<DemoToken>, usize)> {
    let access = funnel_server::tokens::directory(store).await?;
    let saved = read_tokens_file(path);
    let mut tokens = Vec::new();
    let mut issued = 0;
    for designated in representatives(world) {
        // The organisation may have changed since the demo was loaded (someone left, or was
        // reassigned): the token goes to whoever now holds the representative's role and office.
        let Some((id, person)) = stand_in(&access, world, designated) else {
            continue;
        };
        if let Some(t) = saved
            .iter()
            .find(|t| t.staff_id == id && still_valid(&access, t))
        {
            tokens.push(t.clone());
            continue;
        }
        let office = person
            .office
            .and_then(|o| access.offices.get(&o).map(|x| x.code.clone()));
        let t = funnel_server::tokens::issue(engine, Who::System("funnel-cli".into()), id)
            .await
            .with_context(|| format!("issuing a demo token to {}", person.name))?;
        issued += 1;
        tokens.push(DemoToken {
            name: person.name.clone(),
            role: person.role,
            office,
            staff_id: id,
            token_id: t.token_id,
            token: t.token,
        });
    }
    if issued > 0 {
        let file = TokensFile {
            store: store_text.to_string(),
            tokens: tokens.clone(),
        };
        write_private(path, &serde_json::to_string_pretty(&file)?)
            .with_context(|| format!("saving the demo tokens in {}", path.display()))?;
    }
    Ok((tokens, issued))
}

/// Who gets the token meant for the demo's `designated` representative: that person while they
/// are active in the same role and office, else the first active member of staff who is (by id),
/// else no one (the role then has no demo token, said on standard error).
fn stand_in<'a>(
    access: &'a Access,
    world: &World,
    designated: StaffId,
) -> Option<(StaffId, &'a funnel_server::auth::StaffEntry)> {
    let meant = world.people.iter().find(|p| p.id == designated)?;
    let fits = |e: &funnel_server::auth::StaffEntry| {
        e.active && e.role == meant.role && e.office == meant.office
    };
    if let Some(e) = access.staff.get(&designated).filter(|e| fits(e)) {
        return Some((designated, e));
    }
    let other = access
        .staff
        .iter()
        .find(|(_, e)| fits(e))
        .map(|(id, e)| (*id, e));
    match &other {
        Some((_, e)) => eprintln!(
            "funnel serve --demo: {} is no longer a {} there; the demo token goes to {}",
            meant.name, meant.role, e.name
        ),
        None => eprintln!(
            "funnel serve --demo: no active {} is left for {}; no demo token for that role",
            meant.role, meant.name
        ),
    }
    other
}

/// Writes `text` to `path` readable by the owner only, replacing it atomically.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        funnel_store::files::create_private_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

fn pad(s: &str, columns: usize) -> String {
    crate::text::left(s, columns)
}

impl Prepared {
    fn token_of(&self, role: Role) -> &str {
        self.tokens
            .iter()
            .find(|t| t.role == role)
            .map_or("TOKEN", |t| t.token.as_str())
    }

    /// The "where to look" block, printed on standard output after the listening line.
    pub fn print(&self, addr: std::net::SocketAddr) {
        let base = format!("http://{addr}");
        let r = &self.report;
        let loaded = if r.events_written == 0 {
            format!("already loaded, {} commands checked", r.commands)
        } else {
            format!("{} events written", r.events_written)
        };
        println!(
            "demo history: {} offices, {} staff, {} leads, {} to {} ({loaded} in {:.1}s); log head at position {}",
            r.offices, r.staff, r.leads, r.first_day, r.last_day, self.seconds, self.head
        );
        println!();
        println!("where to look:");
        println!("  console    {base}/   (sign in with one of the tokens below)");
        println!("  API        {base}");
        println!("  OpenAPI    {base}/openapi.json");
        println!("  health     {base}/healthz   (readiness: {base}/readyz)");
        println!(
            "  metrics    {base}/metrics   (with the sales department's or the auditor's token)"
        );
        println!();
        let reused = if self.issued == 0 {
            "reused".to_string()
        } else {
            format!("{} issued now", self.issued)
        };
        println!(
            "demo API tokens ({reused}; kept in {} for the next start):",
            self.tokens_file.display()
        );
        for t in &self.tokens {
            println!(
                "  {} {} {} {}",
                pad(&t.name, 14),
                pad(t.role.as_str(), 17),
                pad(t.office.as_deref().unwrap_or("HQ"), 3),
                t.token
            );
        }
        println!();
        println!("try:");
        let auth = |role| format!("curl -s -H 'Authorization: Bearer {}'", self.token_of(role));
        println!("  {} {base}/me", auth(Role::SalesEngineer));
        println!("  {} {base}/pipeline", auth(Role::SalesDepartment));
        if let Some((lead, refused)) = self.audit_lead {
            let note = if refused {
                "   # who touched this lead, and who tried to"
            } else {
                "   # who touched this lead"
            };
            println!(
                "  {} {base}/leads/{lead}/audit{note}",
                auth(Role::OfficeManager)
            );
        }
        let mut globals = String::new();
        if self.url != StoreUrl::Sqlite(PathBuf::from(".funnel/funnel.db")) {
            globals.push_str(&format!(" --store {}", crate::demo::describe(&self.url)));
        }
        if let Some(p) = &self.projections {
            globals.push_str(&format!(" --projections {}", p.display()));
        }
        println!("in another terminal (`cargo run --release -p funnel-cli --` for `funnel`):");
        println!("  funnel{globals} tail --office SH");
        println!("  funnel{globals} pipeline --office SH");
        println!();
        println!(
            "stop with ctrl-c; the history, the tokens and the read models are kept for the next start"
        );
    }
}
