//! The time zones a report is read in, known before any replay: offices' zones (`office.opened`)
//! and staff's offices, folded from the `office` and `staff` categories only, so that "as of
//! 2026-09-30" can end at midnight of the office asked about before the log is replayed.

use chrono_tz::Tz;
use funnel_domain::Event;
use funnel_domain::time::{DEFAULT_TIME_ZONE, zone};
use funnel_store::{EventStore, Filter, StoreError};
use funnel_types::{LeadId, OfficeId, Position, StaffId, StreamId, Version};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Office {
    code: String,
    name: String,
    zone: Tz,
}

/// Offices with their zones and staff with their offices.
#[derive(Clone, Debug, Default)]
pub struct Zones {
    offices: BTreeMap<OfficeId, Office>,
    staff: BTreeMap<StaffId, (String, Option<OfficeId>)>,
}

impl Zones {
    /// Takes in one event (only office and staff events matter).
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::OfficeOpened(e) => {
                self.offices.insert(
                    e.office_id,
                    Office {
                        code: e.code.clone(),
                        name: e.name.clone(),
                        zone: zone(Some(&e.timezone)),
                    },
                );
            }
            Event::StaffJoined(e) => {
                self.staff.insert(e.staff_id, (e.name.clone(), e.office));
            }
            Event::StaffMovedOffice(e) => {
                if let Some(s) = self.staff.get_mut(&e.staff_id) {
                    s.1 = e.to;
                }
            }
            _ => {}
        }
    }

    /// The office a user's text names (id, code in any case, or exact name).
    pub fn office(&self, text: &str) -> Option<OfficeId> {
        let text = text.trim();
        self.offices
            .iter()
            .find(|(id, o)| funnel_domain::org::names_office(text, **id, &o.code, &o.name))
            .map(|(id, _)| *id)
    }

    /// The zone of `office`; headquarters' ([`DEFAULT_TIME_ZONE`]) for none or an unknown one.
    pub fn office_zone(&self, office: Option<OfficeId>) -> Tz {
        office
            .and_then(|o| self.offices.get(&o))
            .map_or(DEFAULT_TIME_ZONE, |o| o.zone)
    }

    /// The zone of the office a user's text names; headquarters' when it names none.
    pub fn zone_of_office_named(&self, text: Option<&str>) -> Tz {
        self.office_zone(text.and_then(|t| self.office(t)))
    }

    /// The zone of the office of the member of staff a user's text names (id or exact name);
    /// headquarters' for staff without an office or an unknown name.
    pub fn zone_of_staff_named(&self, text: &str) -> Tz {
        let text = text.trim();
        let office = self
            .staff
            .iter()
            .find(|(id, (name, _))| id.to_string() == text || name == text)
            .and_then(|(_, (_, office))| *office);
        self.office_zone(office)
    }
}

/// The offices and staff of the log, read from their categories only.
pub async fn zones(store: &dyn EventStore) -> Result<Zones, StoreError> {
    let mut out = Zones::default();
    let filter = Filter::Categories(vec!["office".into(), "staff".into()]);
    let mut after = Position::START;
    loop {
        let batch = store.read_all(after, &filter, 1024).await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        for r in &batch {
            // An event that does not decode is parked by the read models; here it says nothing.
            if let Ok(env) = funnel_codec::decode_recorded(r) {
                out.apply(&env.payload);
            }
        }
    }
    Ok(out)
}

/// The office a lead was registered in, from the first event of its stream.
pub async fn lead_office(
    store: &dyn EventStore,
    lead: LeadId,
) -> Result<Option<OfficeId>, StoreError> {
    let stream =
        StreamId::new("lead", lead).map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
    let first = store.read_stream(&stream, Version::FIRST, 1).await?;
    Ok(first.first().and_then(|r| r.meta.office))
}

#[cfg(test)]
mod tests {
    use super::*;
    use funnel_domain::events::{OfficeOpened, StaffJoined, StaffMovedOffice};
    use funnel_types::Role;

    #[test]
    fn an_office_and_its_staff_are_read_in_the_offices_zone() {
        let urumqi = OfficeId::derived("code:UR");
        let shanghai = OfficeId::derived("code:SH");
        let mut z = Zones::default();
        for (id, code, tz) in [
            (urumqi, "UR", "Asia/Urumqi"),
            (shanghai, "SH", "Asia/Shanghai"),
        ] {
            z.apply(&Event::OfficeOpened(OfficeOpened {
                office_id: id,
                name: format!("{code} office"),
                code: code.into(),
                timezone: tz.into(),
                region: String::new(),
            }));
        }
        let ali = StaffId::derived("ali");
        z.apply(&Event::StaffJoined(StaffJoined {
            staff_id: ali,
            name: "阿里".into(),
            role: Role::SalesEngineer,
            office: Some(urumqi),
        }));
        assert_eq!(z.zone_of_office_named(Some("ur")), chrono_tz::Asia::Urumqi);
        assert_eq!(
            z.zone_of_office_named(Some("UR office")),
            chrono_tz::Asia::Urumqi
        );
        assert_eq!(z.zone_of_office_named(None), DEFAULT_TIME_ZONE);
        assert_eq!(z.zone_of_office_named(Some("nowhere")), DEFAULT_TIME_ZONE);
        assert_eq!(z.zone_of_staff_named("阿里"), chrono_tz::Asia::Urumqi);
        assert_eq!(
            z.zone_of_staff_named(&ali.to_string()),
            chrono_tz::Asia::Urumqi
        );
        z.apply(&Event::StaffMovedOffice(StaffMovedOffice {
            staff_id: ali,
            from: Some(urumqi),
            to: Some(shanghai),
        }));
        assert_eq!(z.zone_of_staff_named("阿里"), chrono_tz::Asia::Shanghai);
    }
}
