//! Reservations of current-version customer keys for leads registered under an older key version.
//!
//! A lead registered before key version 2 keeps its id and key. A look-alike of its customer
//! registered later has a current key that names another stream; the reservation written there
//! (`lead.key_reserved`, once per such lead) makes that registration collide with the lead, as
//! [`Command::route`] sends it on. `funnel serve` reserves at start, `funnel leads reserve-keys`
//! on demand; both are idempotent (one command id per lead and key version).

use crate::{Command, CommandMeta, Engine, EngineError, Who};
use funnel_domain::lead::LeadCommand;
use funnel_domain::{Event, KEY_VERSION, RefusalCode, upgrade_key};
use funnel_store::Filter;
use funnel_types::{CommandId, LeadId, Position};

/// What a pass of [`Engine::reserve_legacy_keys`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyReservations {
    /// Leads registered under an older key version.
    pub legacy_leads: usize,
    /// Reservations written by this pass.
    pub reserved: usize,
    /// Reservations already on record (an earlier pass).
    pub already_reserved: usize,
    /// Leads whose current key already belongs to another lead (two look-alike customers were
    /// both registered before key version 2): `(lead, current key, why)`.
    /// Each keeps its own lead; a later look-alike collides with the first of them.
    pub taken: Vec<(LeadId, String, String)>,
    /// Leads the domain refused to reserve a key for, with why; the pass goes on after them.
    pub refused: Vec<(LeadId, String)>,
}

impl Engine {
    /// Writes the missing key reservations for every lead registered under an older key version
    /// whose current key differs from its recorded one. Reads the `lead` streams up to the head at
    /// the start of the pass.
    pub async fn reserve_legacy_keys(&self) -> Result<KeyReservations, EngineError> {
        let store = self.store();
        let head = store.head().await?;
        let filter = Filter::category("lead");
        let mut report = KeyReservations::default();
        let mut after = Position::START;
        while after < head {
            let page = store.read_all(after, &filter, 1024).await?;
            let Some(last) = page.last() else { break };
            after = last.meta.position;
            for rec in page
                .iter()
                .filter(|r| r.meta.event_type == "lead.registered" && r.meta.position <= head)
            {
                let Event::LeadRegistered(reg) = funnel_codec::decode_recorded(rec)?.payload else {
                    continue;
                };
                if reg.key_version >= KEY_VERSION
                    || upgrade_key(&reg.customer_key) == reg.customer_key
                {
                    continue;
                }
                report.legacy_leads += 1;
                let id = CommandId::derived(&format!("reserve-key:{}:v{KEY_VERSION}", reg.lead_id));
                let cmd = Command::Lead {
                    lead_id: Some(reg.lead_id),
                    cmd: LeadCommand::ReserveKey {
                        lead_id: reg.lead_id,
                        registered_key: reg.customer_key.clone(),
                        registered_key_version: reg.key_version,
                        office: reg.office,
                    },
                };
                let meta = CommandMeta::new(Who::System("key-upgrade".into())).with_id(id);
                match self.execute(meta, cmd).await {
                    Ok(a) if a.duplicate => report.already_reserved += 1,
                    Ok(_) => report.reserved += 1,
                    Err(EngineError::Refused { refusal, .. })
                        if refusal.code == RefusalCode::AlreadyRegistered =>
                    {
                        report.taken.push((
                            reg.lead_id,
                            upgrade_key(&reg.customer_key),
                            refusal.message_en.clone(),
                        ));
                    }
                    // One lead the domain will not reserve for (e.g. a customer name that folds to
                    // nothing) is reported and the pass goes on: stopping would leave every later
                    // lead without its reservation.
                    Err(EngineError::Refused { refusal, .. }) => {
                        tracing::warn!(lead = %reg.lead_id, code = refusal.code.as_str(),
                            "no key reservation for this lead: {}", refusal.message_en);
                        report
                            .refused
                            .push((reg.lead_id, refusal.message_en.clone()));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if !report.taken.is_empty() {
            tracing::warn!(
                leads = report.taken.len(),
                "leads registered before key version {KEY_VERSION} whose look-alike key belongs to another lead"
            );
        }
        Ok(report)
    }
}
