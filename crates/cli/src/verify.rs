//! `funnel verify`: walks the log and its hash chain, and the signed checkpoints of its head, and
//! says whether anything was changed, removed, reordered, inserted or cut off, and where first
//! ([`funnel_app::chain`]). `funnel checkpoint`: makes the signing key, and signs the head now.

use anyhow::bail;
use funnel_app::StoreUrl;
use funnel_app::chain::{ChainSettings, Checkpoints, default_checkpoints};
use funnel_store::checkpoint::{CheckpointSigner, PublicKey};
use funnel_types::Position;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Start at the commit holding this position, trusting the chain before it (default: the
    /// whole log). Signed checkpoints are checked whatever the start. A JetStream log is always
    /// walked from its first message (the digest its checkpoints sign starts there).
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// A file of signed checkpoints of the chain's head (default: `<store>.checkpoints`; on
    /// JetStream the stream `FUNNEL_CHECKPOINTS` beside the log).
    #[arg(long)]
    pub checkpoints: Option<PathBuf>,
    /// The public key (hex) the checkpoints are trusted by, as `funnel checkpoint keygen`
    /// printed it. Without it (or --signing-key-file) checkpoints are not checked.
    #[arg(long, env = "FUNNEL_CHAIN_PUBLIC_KEY")]
    pub public_key: Option<String>,
    /// The signing key file; its public half is trusted (when --public-key is not given).
    #[arg(long, env = "FUNNEL_CHAIN_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    #[command(subcommand)]
    pub command: CheckpointCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CheckpointCommand {
    /// Make a new signing key (readable by its owner only) and print its public key, which
    /// auditors check checkpoints with. Keep the key away from the store's writers.
    Keygen {
        /// Where to write the key; an existing file is never replaced.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign the chain's head now and append the checkpoint (`funnel serve` does this every
    /// `chain.checkpoint_every_s` when given a key).
    Sign {
        /// The signing key file.
        #[arg(long, env = "FUNNEL_CHAIN_SIGNING_KEY_FILE")]
        signing_key_file: PathBuf,
        /// A file to append to (default: `<store>.checkpoints`; on JetStream the stream
        /// `FUNNEL_CHECKPOINTS` beside the log).
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
}

/// Refuses an embedded store that does not exist (opening it would create an empty one).
fn existing(store: &StoreUrl) -> anyhow::Result<()> {
    match store {
        StoreUrl::Sqlite(p) if !p.exists() => bail!(
            "no store at {} (pass --store sqlite:PATH)\n错误：{} 处没有事件存储",
            p.display(),
            p.display()
        ),
        _ => Ok(()),
    }
}

fn checkpoints_place(store: &StoreUrl, given: Option<PathBuf>) -> Checkpoints {
    given
        .map(Checkpoints::File)
        .unwrap_or_else(|| default_checkpoints(store))
}

pub async fn run(store: &StoreUrl, args: VerifyArgs) -> anyhow::Result<()> {
    existing(store)?;
    let public_key = match &args.public_key {
        Some(hex) => Some(PublicKey::from_hex(hex).map_err(|e| {
            anyhow::anyhow!("--public-key: {e}\n错误：--public-key 不是有效的公钥：{e}")
        })?),
        None => None,
    };
    let signer = match &args.signing_key_file {
        Some(p) if public_key.is_none() => Some(Arc::new(CheckpointSigner::load(p)?)),
        _ => None,
    };
    let settings = ChainSettings {
        checkpoints: Some(checkpoints_place(store, args.checkpoints.clone())),
        signer,
        public_key,
    };
    let opened = funnel_app::open(store).await?;
    let head = opened.head().await?;
    let show = std::io::stderr().is_terminal() && !args.json;
    let v = funnel_app::chain::verify(
        opened.as_ref(),
        &settings,
        Position(args.from),
        Box::new(move |at| {
            if show {
                eprint!("\rverify: {}/{}", at.0, head.0);
            }
        }),
    )
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
            println!("head of the chain checked: {hash}");
        }
        match (&v.witness, settings.trusted()) {
            (Some(w), _) => {
                match &w.last {
                    Some(l) => println!(
                        "signed checkpoints: {} of {} match the chain; the last covers position {} (signed {})",
                        w.matched, w.checkpoints, l.position, l.at
                    ),
                    None => println!(
                        "signed checkpoints: none of {} matches the chain",
                        w.checkpoints
                    ),
                }
                if w.other_keys > 0 {
                    println!(
                        "{} checkpoints were signed with another key and not checked",
                        w.other_keys
                    );
                }
                if w.unwitnessed_positions > 0 {
                    println!(
                        "the last {} positions are after the last checkpoint: they could have been \
                         cut off or rewritten without a trace (最后 {} 个位置不在任何签名检查点之内)",
                        w.unwitnessed_positions, w.unwitnessed_positions
                    );
                }
            }
            (None, None) => println!(
                "signed checkpoints not checked: give --public-key (or --signing-key-file); \
                 without them the chain shows the log is consistent with itself, not that it is \
                 the log that was written"
            ),
            (None, Some(_)) => {}
        }
        if v.is_clean() {
            println!("nothing was changed, removed, reordered or inserted (日志未被篡改)");
        }
    }
    match funnel_app::chain::explain(&v) {
        Some((en, zh)) => bail!("{en}\n错误：{zh}"),
        None => Ok(()),
    }
}

pub async fn checkpoint(store: &StoreUrl, args: CheckpointArgs) -> anyhow::Result<()> {
    match args.command {
        CheckpointCommand::Keygen { out } => {
            let key = CheckpointSigner::create(&out)?;
            println!("{}", key.public());
            eprintln!(
                "wrote a signing key to {} (readable by you only); give auditors the public key \
                 above (--public-key), and keep the key file away from whoever can write the store",
                out.display()
            );
            Ok(())
        }
        CheckpointCommand::Sign {
            signing_key_file,
            checkpoints,
        } => {
            existing(store)?;
            let signer = Arc::new(CheckpointSigner::load(&signing_key_file)?);
            let place = checkpoints_place(store, checkpoints);
            let opened = funnel_app::open(store).await?;
            match funnel_app::chain::sign_head(opened.as_ref(), &signer, &place, None).await? {
                Some(c) => println!(
                    "signed the chain's head at position {} ({}) into {place}",
                    c.position, c.hash
                ),
                None => println!("the log has no chained commit yet: nothing to sign"),
            }
            Ok(())
        }
    }
}
