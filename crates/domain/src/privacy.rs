//! Personal information of people outside the company in the log: which fields of which events
//! hold it, and whom each is about (the data subject). Employees' own data (a member of staff's
//! phone) is not listed: this is about customers' contacts and key persons, whom the Personal
//! Information Protection Law (Art. 47) and GDPR (Art. 17) let ask for deletion.
//!
//! The list is the one place this is decided: the published schemas carry it
//! (`x-funnel-personal`), and whatever encrypts, exports or erases personal data reads it here.
//! Business facts (stages, amounts, who did what, levels) are never personal fields.

use serde::Serialize;

/// Whom a personal field is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// The customer's contact person of a lead (named at registration, changed by details
    /// updates): one subject per lead, identified by the event's `lead_id`.
    LeadContact,
    /// A key person of a lead's decision chain (Table 5), identified by the event's
    /// `key_person_id`.
    KeyPerson,
}

impl SubjectKind {
    /// The payload field that identifies the subject.
    pub fn id_field(self) -> &'static str {
        match self {
            SubjectKind::LeadContact => "lead_id",
            SubjectKind::KeyPerson => "key_person_id",
        }
    }

    /// The prefix of its subject ids.
    pub fn prefix(self) -> &'static str {
        match self {
            SubjectKind::LeadContact => "contact",
            SubjectKind::KeyPerson => "key_person",
        }
    }
}

/// One field of an event type that holds personal information.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PersonalField {
    /// JSON pointer (RFC 6901) into the payload.
    pub field: &'static str,
    pub subject: SubjectKind,
}

const fn contact(field: &'static str) -> PersonalField {
    PersonalField {
        field,
        subject: SubjectKind::LeadContact,
    }
}

const fn key_person(field: &'static str) -> PersonalField {
    PersonalField {
        field,
        subject: SubjectKind::KeyPerson,
    }
}

const REGISTERED: &[PersonalField] = &[contact("/contact/name"), contact("/contact/phone")];
const KEY_PERSON_RECORDED: &[PersonalField] = &[
    key_person("/name"),
    key_person("/title"),
    key_person("/phone"),
    key_person("/personal_notes"),
];
const INSIDER: &[PersonalField] = &[key_person("/note")];
const RELATIONSHIP: &[PersonalField] = &[key_person("/note")];

/// The personal fields of an event type (by its wire name); none for most.
pub fn personal_fields(event_type: &str) -> &'static [PersonalField] {
    match event_type {
        "lead.registered" | "lead.details_updated" => REGISTERED,
        "lead.key_person_recorded" => KEY_PERSON_RECORDED,
        "lead.insider_developed" => INSIDER,
        // A note about the relationship with a named key person; without one it is about the
        // company and names nobody (no subject then).
        "lead.relationship_assessed" => RELATIONSHIP,
        _ => &[],
    }
}

/// What an erased field reads as, in English.
pub const ERASED_EN: &str = "[erased]";
/// What an erased field reads as, in Chinese.
pub const ERASED_ZH: &str = "[已删除]";
/// What an erased field holds where one text must stand for both languages (exports, events as
/// read back): both markers.
pub const ERASED: &str = "[已删除 erased]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_name_their_subject() {
        let f = personal_fields("lead.registered");
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.subject == SubjectKind::LeadContact));
        assert_eq!(SubjectKind::LeadContact.id_field(), "lead_id");
        assert!(
            personal_fields("lead.key_person_recorded")
                .iter()
                .all(|f| f.subject == SubjectKind::KeyPerson)
        );
        assert!(personal_fields("lead.stage_changed").is_empty());
    }

    #[test]
    fn every_listed_event_type_exists_and_every_field_is_in_its_example() {
        for (name, _) in crate::events::EVENT_TYPES {
            for f in personal_fields(name) {
                assert!(f.field.starts_with('/'), "{name} {}", f.field);
            }
        }
        for name in [
            "lead.registered",
            "lead.details_updated",
            "lead.key_person_recorded",
            "lead.insider_developed",
            "lead.relationship_assessed",
        ] {
            assert!(
                crate::events::EVENT_TYPES.iter().any(|(n, _)| *n == name),
                "{name} is not an event type"
            );
        }
    }
}
