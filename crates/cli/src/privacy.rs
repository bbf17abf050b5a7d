//! `funnel privacy`: the master key that seals personal fields, and a person's data on request:
//! export it (an access request) or erase it (a deletion request).

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{Args, Subcommand};
use funnel_app::StoreUrl;
use funnel_app::privacy::{PrivacySettings, Subject};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Who the log records as having erased a person at the command line.
const ERASED_BY: &str = "funnel privacy erase";

/// An engine appending through `store`, which carries out the erasures it records.
fn engine_on(store: Arc<funnel_app::privacy::SealedStore>) -> funnel_engine::Engine {
    funnel_engine::Engine::new(
        store,
        funnel_domain::Policy::default(),
        Arc::new(funnel_types::SystemClock),
    )
}

/// Records the erasure of `subject` (whose key this run destroyed) in the log, through an engine
/// on `store` ([`funnel_app::privacy::record_erasure`]).
async fn record_erasure(
    store: Arc<funnel_app::privacy::SealedStore>,
    subject: &str,
    streams: &[String],
    reason: &str,
) -> anyhow::Result<bool> {
    funnel_app::privacy::record_erasure(&engine_on(store), ERASED_BY, subject, streams, reason)
        .await
        .with_context(|| format!("recording the erasure of {subject} in the log"))
}

#[derive(Debug, Args)]
pub struct PrivacyArgs {
    #[command(subcommand)]
    pub command: PrivacyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Make a master key (32 random bytes, readable by you only; never replaces a file). Give it
    /// as --privacy-key-file, FUNNEL_PRIVACY_KEY_FILE or privacy.master_key_file, and keep a copy
    /// apart from the log's backups: without it no personal field can be read.
    Keygen {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Everything the log holds about one person (contact:<lead id> or key_person:<id>), as JSON.
    Export {
        /// The person: contact:<lead id> or key_person:<key person id>.
        subject: Subject,
    },
    /// Destroy one person's key: every field about them reads as erased from now on, in every
    /// read, report, form, export and notification; business facts stay. Cannot be undone.
    Erase {
        /// The person: contact:<lead id> or key_person:<key person id>.
        subject: Subject,
        /// Why (e.g. the request's reference); printed with the outcome.
        #[arg(long)]
        reason: String,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The retention policy: the people of leads that ended (lost, suspended, or signed) and
    /// saw nothing for YEARS years. Lists them; with --apply erases them as `erase` does.
    Retention {
        /// Years without activity after a lead ended (1 to 100).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
        years: u32,
        /// Erase them (without it: only list what would be erased).
        #[arg(long)]
        apply: bool,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(
    store: &StoreUrl,
    settings: &PrivacySettings,
    projections: &Path,
    args: PrivacyArgs,
) -> anyhow::Result<()> {
    match args.command {
        PrivacyCommand::Keygen { out } => {
            funnel_app::privacy::keygen(&out)?;
            eprintln!(
                "wrote a privacy master key to {} (readable by you only); give it as \
                 --privacy-key-file, FUNNEL_PRIVACY_KEY_FILE or privacy.master_key_file, and keep \
                 a copy apart from the log's backups: without it no personal field can be read",
                out.display()
            );
            Ok(())
        }
        PrivacyCommand::Export { subject } => {
            let sealed = funnel_app::privacy::open_sealed(store, settings).await?;
            let bar = walk_bar(sealed.as_ref(), "reading the log").await?;
            let data = funnel_app::privacy::subject_data(&sealed, &subject, &mut |p| {
                bar.set_position(p.0)
            })
            .await?;
            bar.finish_and_clear();
            println!("{}", serde_json::to_string_pretty(&data)?);
            Ok(())
        }
        PrivacyCommand::Erase {
            subject,
            reason,
            json,
        } => {
            if reason.trim().is_empty() {
                bail!("give --reason (e.g. the request's reference)\n错误：请用 --reason 写明原因");
            }
            let sealed = funnel_app::privacy::open_sealed(store, settings).await?;
            let bar = walk_bar(sealed.as_ref(), "finding the person's streams").await?;
            let erased = funnel_app::privacy::erase(&sealed, &subject, Utc::now(), &mut |p| {
                bar.set_position(p.0)
            })
            .await
            .with_context(|| format!("erasing {subject}"))?;
            bar.finish_and_clear();
            if erased.key_destroyed {
                record_erasure(
                    sealed.clone(),
                    subject.as_str(),
                    &erased.streams,
                    reason.trim(),
                )
                .await?;
            }
            // The read models hold what the log said in the clear (names to search by, history
            // snapshots for reports as of a date): they are a cache of the log, and are removed
            // to be rebuilt from it, where the erased fields now read as erased.
            let removed = remove_read_models(projections)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&erased)?);
                return Ok(());
            }
            if erased.key_destroyed {
                println!(
                    "erased {subject} ({reason}): {} field(s) in {} stream(s) now read as erased",
                    erased.fields,
                    erased.streams.len()
                );
            } else {
                println!(
                    "{subject} had no key to destroy (erased before, or nothing sealed for them)"
                );
            }
            if removed {
                println!(
                    "removed the read models at {} (rebuilt from the log when next used); a funnel \
                     serve running on this log drops the person by itself as it reads the record",
                    projections.display()
                );
            }
            warn_in_the_clear(&subject.to_string(), erased.in_the_clear);
            Ok(())
        }
        PrivacyCommand::Retention { years, apply, json } => {
            let sealed = funnel_app::privacy::open_sealed(store, settings).await?;
            let engine = engine_on(sealed.clone());
            let bar = walk_bar(sealed.as_ref(), "finding ended leads").await?;
            let report = funnel_app::privacy::retention(
                &sealed,
                years,
                Utc::now(),
                apply.then_some((&engine, ERASED_BY)),
                &mut |p| bar.set_position(p.0),
            )
            .await?;
            bar.finish_and_clear();
            if !report.erased.is_empty() {
                remove_read_models(projections)?;
            }
            let cutoff = report.cutoff;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            for lead in &report.leads {
                println!(
                    "{}  {} · last activity {} · {}",
                    lead.stream,
                    lead.ended_by,
                    lead.last_activity.format("%Y-%m-%d"),
                    lead.subjects.join(" ")
                );
            }
            let people: usize = report.leads.iter().map(|l| l.subjects.len()).sum();
            if apply {
                println!(
                    "{} lead(s) ended with nothing after {}: erased {} of their {people} people \
                     (the others were erased before){}",
                    report.leads.len(),
                    cutoff.format("%Y-%m-%d"),
                    report.erased.len(),
                    if report.erased.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; removed the read models at {} (rebuilt when next used; a funnel \
                             serve running on this log drops the people by itself)",
                            projections.display()
                        )
                    }
                );
            } else {
                println!(
                    "{} lead(s) ended with nothing after {}: {people} people would be erased; \
                     run again with --apply to erase them",
                    report.leads.len(),
                    cutoff.format("%Y-%m-%d")
                );
            }
            Ok(())
        }
    }
}

/// Warns that fields written in the clear are out of an erasure's reach.
fn warn_in_the_clear(subject: &str, count: usize) {
    if count > 0 {
        eprintln!(
            "warning: {count} field(s) about {subject} were written in the clear, before sealing \
             was turned on; an erasure cannot reach them: migrate the log by an import into a \
             new store (README, \"Personal data\")"
        );
    }
}

/// Removes the read models' file (with its write-ahead log); whether there was one.
fn remove_read_models(path: &Path) -> anyhow::Result<bool> {
    let mut removed = false;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(PathBuf::from(&name)) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing {}", Path::new(&name).display()));
            }
        }
    }
    Ok(removed)
}

/// A progress bar over the log up to its head, on standard error.
async fn walk_bar(
    store: &dyn funnel_store::EventStore,
    what: &str,
) -> anyhow::Result<indicatif::ProgressBar> {
    let head = store.head().await?;
    Ok(crate::projections::bar(head.0, what))
}
