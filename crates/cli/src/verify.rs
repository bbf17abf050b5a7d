//! `funnel verify`: walks the log and its hash chain and says whether anything was changed,
//! removed, reordered or inserted, and where first ([`funnel_store::chain`]).

use anyhow::bail;
use funnel_app::StoreUrl;
use funnel_store::chain::Verification;
use funnel_types::Position;
use std::io::IsTerminal;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Start at the commit holding this position, trusting the chain before it (default: the
    /// whole log).
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The answer when the walk found something, for the error line (English, then Chinese).
fn finding(v: &Verification) -> Option<String> {
    let f = v.first_bad?;
    let (at, (en, zh)) = (f.position, f.tamper.explain());
    Some(format!(
        "the log was tampered with at position {at}: {en}\n错误：日志在位置 {at} 被篡改：{zh}"
    ))
}

pub async fn run(store: &StoreUrl, args: VerifyArgs) -> anyhow::Result<()> {
    let path = match store {
        StoreUrl::Sqlite(p) => p,
        StoreUrl::Nats(_) => bail!(
            "`funnel verify` checks the embedded store's hash chain; the JetStream log carries no \
             chain yet\n错误：`funnel verify` 目前只能校验嵌入式存储的哈希链；JetStream 日志尚未记录哈希链"
        ),
    };
    if !path.exists() {
        bail!(
            "no store at {} (pass --store sqlite:PATH)\n错误：{} 处没有事件存储",
            path.display(),
            path.display()
        );
    }
    let store = funnel_store_sqlite::SqliteStore::open(path)?;
    let head = funnel_store::EventStore::head(&store).await?;
    let show = std::io::stderr().is_terminal() && !args.json;
    let v = store
        .verify(Position(args.from), move |at| {
            if show {
                eprint!("\rverify: {}/{}", at.0, head.0);
            }
        })
        .await?;
    if show {
        eprintln!();
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "checked positions {}..{}: {} events, {} commits chained",
            v.from, v.to, v.events, v.commits
        );
        if let Some(start) = v.chain_starts_at.filter(|s| s.0 > v.from.0) {
            println!(
                "events before position {start} were written before the store kept a hash chain: \
                 they are counted, not proven"
            );
        }
        if let Some(hash) = &v.head_hash {
            println!("last commit checked: {hash}");
        }
        if v.is_clean() {
            println!("nothing was changed, removed, reordered or inserted (日志未被篡改)");
        }
    }
    match finding(&v) {
        Some(message) => bail!(message),
        None => Ok(()),
    }
}
