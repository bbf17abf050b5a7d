//! The personal fields of one payload, sealed and opened in place.
//!
//! A sealed field holds `{"$sealed": "xchacha20poly1305-v1", "subject": ID, "data": BASE64}`
//! where the value (as JSON text) was: the data is the nonce and the ciphertext, bound by the
//! associated data to the event id, the field's JSON pointer and the subject, so it cannot be
//! moved to another event, field or person. Fields written in the clear (events from before
//! sealing, or from a store that does not seal) are left as they are and read as they are.

use crate::aead;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use funnel_domain::privacy::{ERASED, PersonalField, personal_fields};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The key naming a sealed field's object.
pub const SEALED: &str = "$sealed";
/// The sealing's format.
pub const FORMAT: &str = "xchacha20poly1305-v1";

/// The id of the subject a personal field of `payload` is about (`contact:<lead>`,
/// `key_person:<id>`), or `None` when the payload names none (a relationship assessed without a
/// key person) or has no such field.
pub fn subject_of(payload: &Value, field: &PersonalField) -> Option<String> {
    payload.pointer(field.field)?;
    let id = payload.get(field.subject.id_field())?.as_str()?;
    Some(format!("{}:{id}", field.subject.prefix()))
}

fn aad(event_id: &str, field: &str, subject: &str) -> Vec<u8> {
    let mut a = b"funnel-personal-field-v1".to_vec();
    for part in [event_id, field, subject] {
        a.push(0);
        a.extend_from_slice(part.as_bytes());
    }
    a
}

/// Whether `v` is a sealed field.
pub fn is_sealed(v: &Value) -> bool {
    v.get(SEALED).and_then(Value::as_str) == Some(FORMAT)
}

/// Where a subject's key stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Key([u8; 32]),
    /// Erased (or never made): what was sealed with it cannot be read.
    Gone,
}

/// The subject keys, as sealing and opening need them.
pub trait Keys {
    type Error;
    /// The subject's key, made when there is none (or it was erased: what the person tells
    /// again after an erasure is sealed with a new key, and the old fields stay unreadable).
    fn key_for_sealing(&mut self, subject: &str) -> Result<[u8; 32], Self::Error>;
    /// The subject's key as it stands.
    fn key_for_opening(&mut self, subject: &str) -> Result<KeyState, Self::Error>;
}

/// Seals the personal fields of `payload` (an event of `event_type` with id `event_id`) that
/// name a subject and are not null or sealed already. Returns how many were sealed.
pub fn seal_payload<K: Keys>(
    event_type: &str,
    event_id: &str,
    payload: &mut Value,
    keys: &mut K,
) -> Result<usize, K::Error> {
    let mut sealed = 0;
    for f in personal_fields(event_type) {
        let Some(subject) = subject_of(payload, f) else {
            continue;
        };
        let Some(v) = payload.pointer_mut(f.field) else {
            continue;
        };
        if v.is_null() || is_sealed(v) {
            continue;
        }
        let key = keys.key_for_sealing(&subject)?;
        let plain = serde_json::to_vec(v).expect("a JSON value serialises");
        let data = aead::seal(&key, &aad(event_id, f.field, &subject), &plain);
        *v = json!({ SEALED: FORMAT, "subject": subject, "data": STANDARD.encode(data) });
        sealed += 1;
    }
    Ok(sealed)
}

/// What opening a payload did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Fields opened.
    pub opened: usize,
    /// The subjects of fields that could not be opened (erased), in field order.
    pub erased: Vec<String>,
}

/// Opens the sealed personal fields of `payload` in place: each becomes its value, or
/// [`ERASED`] when its subject's key is gone or the sealed data was not sealed for this event,
/// field and subject.
pub fn open_payload<K: Keys>(
    event_type: &str,
    event_id: &str,
    payload: &mut Value,
    keys: &mut K,
) -> Result<Opened, K::Error> {
    let mut out = Opened::default();
    for f in personal_fields(event_type) {
        let Some(v) = payload.pointer_mut(f.field) else {
            continue;
        };
        if !is_sealed(v) {
            continue;
        }
        let subject = v["subject"].as_str().unwrap_or_default().to_string();
        let plain = match keys.key_for_opening(&subject)? {
            KeyState::Key(key) => v["data"]
                .as_str()
                .and_then(|d| STANDARD.decode(d).ok())
                .and_then(|d| aead::open(&key, &aad(event_id, f.field, &subject), &d))
                .and_then(|p| serde_json::from_slice::<Value>(&p).ok()),
            KeyState::Gone => None,
        };
        match plain {
            Some(p) => {
                *v = p;
                out.opened += 1;
            }
            None => {
                *v = Value::String(ERASED.to_string());
                out.erased.push(subject);
            }
        }
    }
    Ok(out)
}

/// A sealed personal field found in a payload's bytes ([`find_sealed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSpan {
    /// Where the sealed object is in the payload's bytes.
    pub range: std::ops::Range<usize>,
    /// The field's JSON pointer.
    pub field: &'static str,
    /// Its subject.
    pub subject: String,
    /// The nonce and ciphertext, in base64.
    data: String,
}

/// A sealed field's object as stored.
#[derive(serde::Deserialize)]
struct SealedObject<'a> {
    #[serde(rename = "$sealed", borrow)]
    format: &'a str,
    subject: String,
    data: String,
}

type RawObject<'a> = HashMap<&'a str, &'a RawValue>;

/// The sealed personal fields of `payload` (an event of `event_type`), found by reading its
/// object's members as raw JSON instead of building it as a value: opening then replaces each
/// one in place ([`open_spans`]), and the rest of the bytes stay as they are. `None` when the
/// payload is not one this reading takes (not an object, escaped member names, a sealed object
/// of an unexpected shape): [`open_payload`] then opens it, with the same outcome.
pub fn find_sealed(event_type: &str, payload: &[u8]) -> Option<Vec<SealedSpan>> {
    let fields = personal_fields(event_type);
    let mut spans = Vec::new();
    if fields.is_empty() {
        return Some(spans);
    }
    let top: RawObject = serde_json::from_slice(payload).ok()?;
    let base = payload.as_ptr() as usize;
    'fields: for f in fields {
        let mut parts = f.field.split('/').skip(1).peekable();
        let mut object: Option<RawObject> = None;
        let mut raw: Option<&RawValue> = None;
        while let Some(part) = parts.next() {
            let here = object.as_ref().unwrap_or(&top);
            let Some(v) = here.get(part).copied() else {
                continue 'fields;
            };
            if parts.peek().is_none() {
                raw = Some(v);
                break;
            }
            if !v.get().starts_with('{') {
                continue 'fields;
            }
            object = Some(serde_json::from_str(v.get()).ok()?);
        }
        let Some(raw) = raw else { continue };
        let text = raw.get();
        if !text.starts_with('{') || !text.contains(SEALED) {
            continue;
        }
        let sealed: SealedObject = serde_json::from_str(text).ok()?;
        if sealed.format != FORMAT {
            // The value path reads such an object as not sealed; so is it here only when its
            // marker is plainly another format.
            continue;
        }
        let start = text.as_ptr() as usize - base;
        spans.push(SealedSpan {
            range: start..start + text.len(),
            field: f.field,
            subject: sealed.subject,
            data: sealed.data,
        });
    }
    spans.sort_by_key(|s| s.range.start);
    if spans.windows(2).any(|w| w[0].range.end > w[1].range.start) {
        return None;
    }
    Some(spans)
}

/// `payload` with each of `spans` ([`find_sealed`]) replaced by its value as sealed (the JSON
/// text it was), or by [`ERASED`] when its subject's key is gone or it does not open for this
/// event, field and subject, as [`open_payload`] does.
pub fn open_spans<K: Keys>(
    event_id: &str,
    payload: &[u8],
    spans: &[SealedSpan],
    keys: &mut K,
) -> Result<(Vec<u8>, Opened), K::Error> {
    let mut out = Vec::with_capacity(payload.len());
    let mut opened = Opened::default();
    let mut at = 0;
    for s in spans {
        out.extend_from_slice(&payload[at..s.range.start]);
        at = s.range.end;
        let plain = match keys.key_for_opening(&s.subject)? {
            KeyState::Key(key) => STANDARD
                .decode(&s.data)
                .ok()
                .and_then(|d| aead::open(&key, &aad(event_id, s.field, &s.subject), &d))
                .filter(|p| serde_json::from_slice::<&RawValue>(p).is_ok()),
            KeyState::Gone => None,
        };
        match plain {
            Some(p) => {
                out.extend_from_slice(&p);
                opened.opened += 1;
            }
            None => {
                serde_json::to_writer(&mut out, ERASED).expect("a string serialises");
                opened.erased.push(s.subject.clone());
            }
        }
    }
    out.extend_from_slice(&payload[at..]);
    Ok((out, opened))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Keys in memory; an erased subject has none.
    #[derive(Default)]
    struct Memory(HashMap<String, [u8; 32]>);

    impl Keys for Memory {
        type Error = std::convert::Infallible;
        fn key_for_sealing(&mut self, subject: &str) -> Result<[u8; 32], Self::Error> {
            Ok(*self
                .0
                .entry(subject.to_string())
                .or_insert_with(rand::random))
        }
        fn key_for_opening(&mut self, subject: &str) -> Result<KeyState, Self::Error> {
            Ok(self
                .0
                .get(subject)
                .map_or(KeyState::Gone, |k| KeyState::Key(*k)))
        }
    }

    fn registered() -> Value {
        json!({ "lead_id": "L1", "customer_name": "万科", "need": "楼宇对讲",
            "contact": { "name": "李经理", "phone": "13800000000" } })
    }

    #[test]
    fn personal_fields_seal_open_and_erase_while_business_facts_stay() {
        let mut keys = Memory::default();
        let mut p = registered();
        assert_eq!(
            seal_payload("lead.registered", "E1", &mut p, &mut keys).unwrap(),
            2
        );
        let text = p.to_string();
        assert!(
            !text.contains("李经理") && !text.contains("13800000000"),
            "{text}"
        );
        assert!(text.contains("万科") && text.contains("楼宇对讲"), "{text}");
        assert!(is_sealed(&p["contact"]["phone"]));
        assert_eq!(p["contact"]["phone"]["subject"], "contact:L1");
        // Sealing again changes nothing.
        let again = p.clone();
        assert_eq!(
            seal_payload("lead.registered", "E1", &mut p, &mut keys).unwrap(),
            0
        );
        assert_eq!(p, again);

        let mut read = p.clone();
        let o = open_payload("lead.registered", "E1", &mut read, &mut keys).unwrap();
        assert_eq!((o.opened, o.erased.len()), (2, 0));
        assert_eq!(read, registered());

        // Moved to another event, the sealed field does not open.
        let mut moved = p.clone();
        let o = open_payload("lead.registered", "E2", &mut moved, &mut keys).unwrap();
        assert_eq!(o.erased, vec!["contact:L1", "contact:L1"]);
        assert_eq!(moved["contact"]["name"], ERASED);

        // Erased: the marker, the rest as it was.
        keys.0.remove("contact:L1");
        let mut erased = p.clone();
        open_payload("lead.registered", "E1", &mut erased, &mut keys).unwrap();
        assert_eq!(erased["contact"]["name"], ERASED);
        assert_eq!(erased["contact"]["phone"], ERASED);
        assert_eq!(erased["customer_name"], "万科");
        // Told again after the erasure: a new key; the old fields stay erased.
        let mut new = registered();
        seal_payload("lead.registered", "E3", &mut new, &mut keys).unwrap();
        open_payload("lead.registered", "E3", &mut new, &mut keys).unwrap();
        assert_eq!(new["contact"]["name"], "李经理");
        let mut old = p.clone();
        open_payload("lead.registered", "E1", &mut old, &mut keys).unwrap();
        assert_eq!(old["contact"]["name"], ERASED);
    }

    /// Opens `stored` both ways and checks they agree; returns what was read.
    fn opened_alike(event_type: &str, event_id: &str, stored: &Value, keys: &mut Memory) -> Value {
        let bytes = serde_json::to_vec(stored).unwrap();
        let mut by_value = stored.clone();
        let o = open_payload(event_type, event_id, &mut by_value, keys).unwrap();
        let spans = find_sealed(event_type, &bytes).expect("read in place");
        let (raw, o2) = open_spans(event_id, &bytes, &spans, keys).unwrap();
        assert_eq!(o, o2, "{stored}");
        assert_eq!(raw, serde_json::to_vec(&by_value).unwrap(), "{stored}");
        by_value
    }

    #[test]
    fn opening_in_place_reads_what_opening_the_value_reads() {
        let mut keys = Memory::default();
        let mut p = registered();
        seal_payload("lead.registered", "E1", &mut p, &mut keys).unwrap();
        assert_eq!(
            opened_alike("lead.registered", "E1", &p, &mut keys),
            registered()
        );
        // Moved to another event, or to another field: erased, both ways.
        let moved = opened_alike("lead.registered", "E2", &p, &mut keys);
        assert_eq!(moved["contact"]["name"], ERASED);
        let mut swapped = p.clone();
        swapped["contact"]["name"] = p["contact"]["phone"].clone();
        let read = opened_alike("lead.registered", "E1", &swapped, &mut keys);
        assert_eq!(read["contact"]["name"], ERASED);
        assert_eq!(read["contact"]["phone"], "13800000000");
        // In the clear, partly absent, null, or of another format: left alone.
        opened_alike("lead.registered", "E1", &registered(), &mut keys);
        opened_alike(
            "lead.registered",
            "E1",
            &json!({ "lead_id": "L1" }),
            &mut keys,
        );
        opened_alike(
            "lead.registered",
            "E1",
            &json!({ "lead_id": "L1", "contact": null }),
            &mut keys,
        );
        let mut other = p.clone();
        other["contact"]["name"]["$sealed"] = json!("another-v9");
        opened_alike("lead.registered", "E1", &other, &mut keys);
        // A key person's fields, one of them absent; then erased.
        let mut kp = json!({ "lead_id": "L1", "key_person_id": "K1", "name": "王总",
            "title": "总经理", "role": "decision_maker", "phone": "139" });
        seal_payload("lead.key_person_recorded", "E9", &mut kp, &mut keys).unwrap();
        let read = opened_alike("lead.key_person_recorded", "E9", &kp, &mut keys);
        assert_eq!(read["name"], "王总");
        keys.0.remove("key_person:K1");
        let read = opened_alike("lead.key_person_recorded", "E9", &kp, &mut keys);
        assert_eq!(
            (&read["name"], &read["role"]),
            (&json!(ERASED), &json!("decision_maker"))
        );
        // Not an object, or a sealed object of an unexpected shape: left to the value path.
        assert_eq!(find_sealed("lead.registered", b"[1]"), None);
        let mut odd = p.clone();
        odd["contact"]["name"]["subject"] = json!(7);
        let bytes = serde_json::to_vec(&odd).unwrap();
        assert_eq!(find_sealed("lead.registered", &bytes), None);
        // Events without personal fields have nothing to find.
        assert_eq!(
            find_sealed("lead.visit_logged", b"not even JSON"),
            Some(vec![])
        );
    }

    #[test]
    fn fields_in_the_clear_and_fields_naming_nobody_are_left_alone() {
        let mut keys = Memory::default();
        let mut clear = registered();
        let o = open_payload("lead.registered", "E1", &mut clear, &mut keys).unwrap();
        assert_eq!((o, clear), (Opened::default(), registered()));
        let mut company = json!({ "lead_id": "L1", "key_person_id": null, "note": "公司关系良好" });
        let before = company.clone();
        assert_eq!(
            seal_payload("lead.relationship_assessed", "E1", &mut company, &mut keys).unwrap(),
            0
        );
        assert_eq!(company, before);
        let mut update = json!({ "lead_id": "L1", "contact": null, "need": "x" });
        assert_eq!(
            seal_payload("lead.details_updated", "E1", &mut update, &mut keys).unwrap(),
            0
        );
        // A key person's fields are theirs, not the lead contact's.
        let mut kp = json!({ "lead_id": "L1", "key_person_id": "K1", "name": "王总",
            "title": "总经理", "role": "decision_maker", "phone": "139", "personal_notes": "高尔夫" });
        assert_eq!(
            seal_payload("lead.key_person_recorded", "E9", &mut kp, &mut keys).unwrap(),
            4
        );
        assert_eq!(kp["name"]["subject"], "key_person:K1");
        assert_eq!(kp["role"], "decision_maker");
    }
}
