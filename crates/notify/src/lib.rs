//! Notifications from the log, for consumers outside Funnel.
//!
//! - [`webhooks`]: subscriptions by office and event kind, each with its own cursor in the log.
//!   Events are POSTed one at a time in log order as CloudEvents, signed with HMAC-SHA256 the way
//!   the Standard Webhooks specification describes; at least once, with retries and capped
//!   exponential backoff; every attempt is written to a delivery log. A subscription can be
//!   paused, resumed and replayed from any position.
//! - [`nats`]: on the JetStream backend, every event is published again on
//!   `funnel.notify.<office>.<event type>` into a stream of its own, so a plain NATS client in any
//!   language can subscribe with a subject filter.
//!
//! Both follow the log with the store's catch-up subscription; what they select is a [`Selector`]
//! (offices × [`Kinds`]).

pub mod nats;
pub mod webhooks;

use funnel_store::{EventStore, Filter, StoreError};
use funnel_types::{Metadata, OfficeId, Position};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which event types a list of kinds admits: exact types (`lead.stage_changed`) or a prefix ending
/// in `*` (`lead.*`, or `*` for every type). An empty list admits every type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Kinds(Vec<String>);

/// A kind that names no event type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no event kind matches `{0}`; `funnel events` (or GET /openapi.json) lists them")]
pub struct UnknownKind(pub String);

impl Kinds {
    /// Checks every kind against the known event types.
    pub fn parse(kinds: &[String]) -> Result<Kinds, UnknownKind> {
        let known: Vec<&str> = funnel_domain::EVENT_TYPES.iter().map(|(t, _)| *t).collect();
        for k in kinds {
            let matches = match k.strip_suffix('*') {
                Some(prefix) => known.iter().any(|t| t.starts_with(prefix)),
                None => known.contains(&k.as_str()),
            };
            if !matches {
                return Err(UnknownKind(k.clone()));
            }
        }
        Ok(Kinds(kinds.to_vec()))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn admits(&self, event_type: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|k| match k.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => k == event_type,
            })
    }

    /// The stream categories that can hold these kinds (the part of the type before the dot), so
    /// the store skips the others.
    pub fn filter(&self) -> Filter {
        if self.0.is_empty() || self.0.iter().any(|k| k == "*") {
            return Filter::All;
        }
        let mut cats: Vec<String> = self
            .0
            .iter()
            .filter_map(|k| k.split('.').next())
            .map(|c| c.trim_end_matches('*').to_string())
            .collect();
        cats.sort();
        cats.dedup();
        if cats.iter().any(|c| c.is_empty()) {
            Filter::All
        } else {
            Filter::Categories(cats)
        }
    }
}

/// Which events a consumer wants: those of the listed offices (all offices, and events that
/// belong to none, when the list is empty) whose type the kinds admit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    #[serde(default)]
    pub offices: Vec<OfficeId>,
    #[serde(default)]
    pub kinds: Kinds,
}

impl Selector {
    pub fn admits(&self, meta: &Metadata) -> bool {
        (self.offices.is_empty() || meta.office.is_some_and(|o| self.offices.contains(&o)))
            && self.kinds.admits(&meta.event_type)
    }
}

/// An office as notifications name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OfficeName {
    pub code: String,
    pub name: String,
}

/// Every office opened so far, by id (from the `office` category of the log).
pub async fn offices(store: &dyn EventStore) -> Result<BTreeMap<OfficeId, OfficeName>, StoreError> {
    let mut out = BTreeMap::new();
    let mut after = Position::START;
    loop {
        let batch = store
            .read_all(after, &Filter::category("office"), 1024)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        for r in &batch {
            if let Ok(env) = funnel_codec::decode_recorded(r) {
                note_office(&mut out, &env.payload);
            }
        }
    }
    Ok(out)
}

/// Adds the office an `office.opened` event opens.
pub fn note_office(offices: &mut BTreeMap<OfficeId, OfficeName>, event: &funnel_domain::Event) {
    if let funnel_domain::Event::OfficeOpened(o) = event {
        offices.insert(
            o.office_id,
            OfficeName {
                code: o.code.clone(),
                name: o.name.clone(),
            },
        );
    }
}

/// The office a user's text names: its id, its code (any case) or its exact name.
pub fn find_office(offices: &BTreeMap<OfficeId, OfficeName>, text: &str) -> Option<OfficeId> {
    let text = text.trim();
    offices
        .iter()
        .find(|(id, o)| funnel_domain::org::names_office(text, **id, &o.code, &o.name))
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_filter_by_exact_type_or_prefix_and_refuse_unknown_ones() {
        let k = Kinds::parse(&["lead.stage_changed".into(), "plan.*".into()]).unwrap();
        assert!(
            k.admits("lead.stage_changed")
                && k.admits("plan.overdue")
                && !k.admits("lead.registered")
        );
        assert_eq!(
            k.filter(),
            Filter::Categories(vec!["lead".into(), "plan".into()])
        );
        let err = Kinds::parse(&["lead.teleported".into()]).unwrap_err();
        assert!(err.to_string().contains("lead.teleported"), "{err}");
        assert_eq!(Kinds::parse(&[]).unwrap().filter(), Filter::All);
        assert_eq!(Kinds::parse(&["*".into()]).unwrap().filter(), Filter::All);
    }
}
