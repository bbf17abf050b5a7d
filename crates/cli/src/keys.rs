//! `funnel reserve-keys`: reserve the current customer keys of leads registered under an older key
//! version, so that look-alikes of their customers collide with them (also done by `funnel serve`
//! at start; idempotent).

use funnel_app::StoreUrl;
use funnel_app::open;
use funnel_domain::Policy;
use funnel_engine::Engine;
use funnel_types::SystemClock;
use std::sync::Arc;

pub async fn run(url: &StoreUrl) -> anyhow::Result<()> {
    let store = open(url).await?;
    let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
    let report = engine.reserve_legacy_keys().await?;
    println!(
        "{} leads registered under an older key version need a reservation: {} reserved now, {} reserved before, {} taken by another lead, {} refused",
        report.legacy_leads,
        report.reserved,
        report.already_reserved,
        report.taken.len(),
        report.refused.len()
    );
    for (lead, key, why) in &report.taken {
        println!("  lead {lead} (key {key}): {why}");
    }
    for (lead, why) in &report.refused {
        println!("  lead {lead}: refused: {why}");
    }
    Ok(())
}
