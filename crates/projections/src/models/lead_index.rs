//! The lead index: one row per lead with what a search filters and sorts on, and a trigram
//! full-text table of the lead's normalised names and phone digits, kept as SQL tables (a
//! [`TableModel`]) so that finding a lead costs the same whatever the length of the log.
//!
//! Names are indexed as the duplicate check compares them ([`funnel_domain::normalize::fold_name`]:
//! NFKC, so full-width and half-width forms are one; lower case; letters and digits only, so
//! spacing and punctuation do not count; look-alike letters folded), and a search text is folded
//! the same way, so `万科·城市花园`, `万科 城市花园` and `万科城市花园` find one another. Phone
//! numbers are indexed by their digits, without a leading `86`/`0086` country code.
//!
//! Stage, owner, amount, tier and the ageing rule follow the pipeline ([`super::Pipeline`]): the
//! same events, the same "now" (the latest `occurred_at` applied), the same 30 days.

use crate::tables::{TableModel, TableView};
use chrono::{DateTime, Utc};
use funnel_domain::Event;
use funnel_domain::erasure::parse_subject;
use funnel_domain::model::{Channel, PurchaseMode, Stage, Tier};
use funnel_domain::privacy::{ERASED, SubjectKind};
use funnel_domain::{fold_name, normalise_name};
use funnel_types::{Envelope, LeadId, OfficeId, StaffId};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::fmt::Write as _;

/// A key person (or the registration contact) of a lead as the index keeps them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedContact {
    /// The key person's id; `None` for the contact given at registration.
    pub key_person: Option<String>,
    pub name: String,
    pub phone: String,
}

/// One lead as the index holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedLead {
    pub id: LeadId,
    pub office: OfficeId,
    pub customer: String,
    pub project: String,
    /// The registration contact first, then the key persons in the order recorded.
    pub contacts: Vec<IndexedContact>,
    pub owner: Option<StaffId>,
    pub stage: Stage,
    pub stage_since: DateTime<Utc>,
    pub tier: Option<Tier>,
    pub channel: Channel,
    pub purchase_mode: PurchaseMode,
    pub amount_cny: Option<u64>,
    /// A prospect declaration not yet approved (amount, tier).
    pub declared: Option<(u64, Tier)>,
    pub registered_at: DateTime<Utc>,
    pub last_visit_at: Option<DateTime<Utc>>,
}

impl IndexedLead {
    /// The moment ageing counts from: the last visit, or the registration before any.
    pub fn last_activity(&self) -> DateTime<Utc> {
        self.last_visit_at.unwrap_or(self.registered_at)
    }

    /// The folded texts a search matches, by field.
    fn keys(&self) -> SearchKeys {
        let mut contacts = String::new();
        let mut phones = String::new();
        for c in &self.contacts {
            let name = fold_name(&c.name);
            if !name.is_empty() {
                contacts.push_str(&name);
                contacts.push(' ');
            }
            let digits = phone_digits(&c.phone);
            if !digits.is_empty() {
                phones.push_str(&digits);
                phones.push(' ');
            }
        }
        let customer = fold_name(&self.customer);
        let project = fold_name(&self.project);
        SearchKeys {
            whole: format!("{customer}{project}"),
            customer,
            project,
            contacts: contacts.trim_end().to_string(),
            phones: phones.trim_end().to_string(),
        }
    }
}

/// The folded texts of one lead; the words of `contacts` and `phones` are separated by spaces,
/// which folding removes from a search text, so a match never spans two people.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchKeys {
    pub customer: String,
    pub project: String,
    /// Customer and project as one name (`万科` + `城市花园` is found as `万科城市花园`).
    pub whole: String,
    pub contacts: String,
    pub phones: String,
}

/// The digits of a phone number (after NFKC, so full-width digits count), without a leading
/// `86` or `0086` country code before an 11-digit mobile number.
pub fn phone_digits(phone: &str) -> String {
    let digits: String = normalise_name(phone)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    for cc in ["0086", "86"] {
        if let Some(rest) = digits.strip_prefix(cc)
            && rest.len() == 11
            && rest.starts_with('1')
        {
            return rest.to_string();
        }
    }
    digits
}

/// The lead index's pending changes (see [`TableModel`]).
#[derive(Debug, Default)]
pub struct LeadIndex {
    leads: HashMap<LeadId, IndexedLead>,
    /// The pending leads in the order they were first changed, which is the order they are
    /// written in: a lead registered in this batch gets its row (and its `seq`, the tiebreak of
    /// every sort) after the leads registered before it.
    order: Vec<LeadId>,
    offices: HashMap<OfficeId, (String, String, String)>,
    staff: HashMap<StaffId, String>,
    now: Option<DateTime<Utc>>,
}

impl LeadIndex {
    /// Keeps `row` as the pending state of lead `id`.
    fn pending(&mut self, id: LeadId, row: IndexedLead) {
        if self.leads.insert(id, row).is_none() {
            self.order.push(id);
        }
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, ms))
}

fn parse<T: std::str::FromStr>(index: usize, text: String) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            e.to_string().into(),
        )
    })
}

/// The columns of the `leads` table a [`IndexedLead`] is read from, in [`lead_from_row`] order.
pub const LEAD_COLUMNS: &str = "id, office, customer, project, contact_name, contact_phone, owner, \
     stage, stage_since, tier, channel, purchase_mode, amount_cny, declared_amount, declared_tier, \
     registered_at, last_visit_at";

/// Reads a lead from a row selected with [`LEAD_COLUMNS`] (key persons not included).
pub fn lead_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IndexedLead> {
    let declared = match (
        r.get::<_, Option<i64>>(13)?,
        r.get::<_, Option<String>>(14)?,
    ) {
        (Some(a), Some(t)) => Some((a as u64, parse(14, t)?)),
        _ => None,
    };
    Ok(IndexedLead {
        id: parse(0, r.get(0)?)?,
        office: parse(1, r.get(1)?)?,
        customer: r.get(2)?,
        project: r.get(3)?,
        contacts: vec![IndexedContact {
            key_person: None,
            name: r.get(4)?,
            phone: r.get(5)?,
        }],
        owner: r
            .get::<_, Option<String>>(6)?
            .map(|o| parse(6, o))
            .transpose()?,
        stage: parse(7, r.get(7)?)?,
        stage_since: from_millis(r.get(8)?)?,
        tier: r
            .get::<_, Option<String>>(9)?
            .map(|t| parse(9, t))
            .transpose()?,
        channel: parse(10, r.get(10)?)?,
        purchase_mode: parse(11, r.get(11)?)?,
        amount_cny: r.get::<_, Option<i64>>(12)?.map(|a| a as u64),
        declared,
        registered_at: from_millis(r.get(15)?)?,
        last_visit_at: r.get::<_, Option<i64>>(16)?.map(from_millis).transpose()?,
    })
}

/// The key persons of a lead, in the order recorded.
pub fn key_persons(
    conn: &Connection,
    prefix: &str,
    lead: LeadId,
) -> rusqlite::Result<Vec<IndexedContact>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT person, name, phone FROM {prefix}persons WHERE lead = ?1 ORDER BY ord"
    ))?;
    stmt.query_map(params![lead.to_string()], |r| {
        Ok(IndexedContact {
            key_person: Some(r.get(0)?),
            name: r.get(1)?,
            phone: r.get(2)?,
        })
    })?
    .collect()
}

/// One lead with its key persons, from the committed tables.
pub fn load_lead(
    conn: &Connection,
    prefix: &str,
    lead: LeadId,
) -> rusqlite::Result<Option<IndexedLead>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {LEAD_COLUMNS} FROM {prefix}leads WHERE id = ?1"
        ))?
        .query_row(params![lead.to_string()], lead_from_row)
        .optional()?;
    let Some(mut l) = found else {
        return Ok(None);
    };
    l.contacts.extend(key_persons(conn, prefix, lead)?);
    Ok(Some(l))
}

impl LeadIndex {
    fn lead(&self, view: &TableView<'_>, id: LeadId) -> Result<Option<IndexedLead>, String> {
        if let Some(l) = self.leads.get(&id) {
            return Ok(Some(l.clone()));
        }
        match view.conn() {
            Some(conn) => load_lead(conn, view.prefix(), id).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    fn bump(&mut self, at: DateTime<Utc>) {
        self.now = Some(self.now.map_or(at, |t| t.max(at)));
    }
}

impl TableModel for LeadIndex {
    const NAME: &'static str = "lead_index";
    const VERSION: u32 = 1;

    fn schema(p: &str) -> String {
        let mut sql = format!(
            "CREATE TABLE {p}leads (
                seq INTEGER PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                office TEXT NOT NULL,
                customer TEXT NOT NULL,
                project TEXT NOT NULL,
                customer_key TEXT NOT NULL,
                contact_name TEXT NOT NULL,
                contact_phone TEXT NOT NULL,
                owner TEXT,
                stage TEXT NOT NULL,
                open INTEGER NOT NULL,
                stage_since INTEGER NOT NULL,
                tier TEXT,
                channel TEXT NOT NULL,
                purchase_mode TEXT NOT NULL,
                amount_cny INTEGER,
                declared_amount INTEGER,
                declared_tier TEXT,
                registered_at INTEGER NOT NULL,
                last_visit_at INTEGER,
                last_activity INTEGER NOT NULL
            );
            CREATE TABLE {p}persons (
                lead TEXT NOT NULL,
                person TEXT NOT NULL,
                ord INTEGER NOT NULL,
                name TEXT NOT NULL,
                phone TEXT NOT NULL,
                PRIMARY KEY (lead, person)
            ) WITHOUT ROWID;
            CREATE VIRTUAL TABLE {p}search USING fts5(
                customer, project, contacts, phones, whole, tokenize = 'trigram'
            );
            CREATE TABLE {p}offices (id TEXT PRIMARY KEY, code TEXT NOT NULL, name TEXT NOT NULL, timezone TEXT NOT NULL) WITHOUT ROWID;
            CREATE TABLE {p}staff (id TEXT PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID;
            CREATE TABLE {p}meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
            "
        );
        // Every filter with every sort, scoped by office or not: an index per filter column
        // ending with each sort key would multiply; an index per filter and one per sort key let
        // SQLite pick the more selective, and the office (the scope of most readers) leads those.
        for (name, cols) in [
            ("office_registered", "office, registered_at, seq"),
            ("office_stage_since", "office, stage_since, seq"),
            ("office_customer", "office, customer_key, seq"),
            ("office_amount", "office, amount_cny, seq"),
            ("office_last_visit", "office, last_visit_at, seq"),
            ("registered", "registered_at, seq"),
            ("stage_since", "stage_since, seq"),
            ("customer", "customer_key, seq"),
            ("amount", "amount_cny, seq"),
            ("last_visit", "last_visit_at, seq"),
            ("owner", "owner, registered_at"),
            ("stage", "stage, office"),
            ("tier", "tier, office"),
            ("channel", "channel, office"),
            ("purchase_mode", "purchase_mode, office"),
            ("ageing", "open, last_activity, office"),
        ] {
            let _ = write!(sql, "CREATE INDEX {p}leads_{name} ON {p}leads ({cols});");
        }
        sql
    }

    fn apply(&mut self, view: &TableView<'_>, env: &Envelope<Event>) -> Result<(), String> {
        let at = env.meta.occurred_at;
        match &env.payload {
            Event::OfficeOpened(e) => {
                self.offices.insert(
                    e.office_id,
                    (e.code.clone(), e.name.clone(), e.timezone.clone()),
                );
            }
            Event::StaffJoined(e) => {
                self.staff.insert(e.staff_id, e.name.clone());
            }
            Event::LeadRegistered(e) => {
                if self.lead(view, e.lead_id)?.is_some() {
                    return Err(format!("lead {} registered twice", e.lead_id));
                }
                self.pending(
                    e.lead_id,
                    IndexedLead {
                        id: e.lead_id,
                        office: e.office,
                        customer: e.customer_name.clone(),
                        project: e.project_name.clone(),
                        contacts: vec![IndexedContact {
                            key_person: None,
                            name: e.contact.name.clone(),
                            phone: e.contact.phone.clone(),
                        }],
                        owner: None,
                        stage: Stage::Ordinary,
                        stage_since: at,
                        tier: None,
                        channel: e.channel,
                        purchase_mode: e.purchase_mode,
                        amount_cny: None,
                        declared: None,
                        registered_at: at,
                        last_visit_at: None,
                    },
                );
            }
            // The person's key is gone: what the index folded from their fields before goes too,
            // as a rebuild (which reads those fields as erased) would have it.
            Event::SubjectErased(e) => {
                if let Some(mut row) = self.lead(view, e.lead_id)? {
                    let person = match parse_subject(&e.subject) {
                        Some((SubjectKind::KeyPerson, id)) => Some(id.to_string()),
                        _ => None,
                    };
                    for c in row.contacts.iter_mut().filter(|c| c.key_person == person) {
                        c.name = ERASED.to_string();
                        c.phone = ERASED.to_string();
                    }
                    self.pending(e.lead_id, row);
                }
            }
            other => {
                let Some(lead_id) = other.lead_id() else {
                    self.bump(at);
                    return Ok(());
                };
                let Some(mut row) = self.lead(view, lead_id)? else {
                    return Err(format!(
                        "{} for lead {lead_id}, which was never registered",
                        other.event_type()
                    ));
                };
                match other {
                    Event::LeadOwnerAssigned(e) => row.owner = Some(e.owner),
                    Event::VisitLogged(e) => {
                        row.last_visit_at = Some(
                            row.last_visit_at
                                .map_or(e.visited_at, |t| t.max(e.visited_at)),
                        )
                    }
                    Event::ProspectDeclared(e) => row.declared = Some((e.amount_cny, e.tier)),
                    Event::ContractSigned(e) => row.amount_cny = Some(e.amount_cny),
                    Event::LeadDetailsUpdated(e) => {
                        if let Some(m) = e.purchase_mode {
                            row.purchase_mode = m;
                        }
                        if let Some(c) = &e.contact {
                            row.contacts[0].name = c.name.clone();
                            row.contacts[0].phone = c.phone.clone();
                        }
                    }
                    Event::KeyPersonRecorded(e) => {
                        let id = e.key_person_id.to_string();
                        let person = IndexedContact {
                            key_person: Some(id.clone()),
                            name: e.name.clone(),
                            phone: e.phone.clone(),
                        };
                        match row
                            .contacts
                            .iter_mut()
                            .find(|c| c.key_person.as_deref() == Some(id.as_str()))
                        {
                            Some(c) => *c = person,
                            None => row.contacts.push(person),
                        }
                    }
                    Event::StageChanged(e) => {
                        row.stage = e.to;
                        row.stage_since = at;
                        if e.to == Stage::Prospect
                            && let Some((amount, tier)) = row.declared.take()
                        {
                            row.amount_cny = Some(amount);
                            row.tier = Some(tier);
                        }
                    }
                    _ => {}
                }
                self.pending(lead_id, row);
            }
        }
        self.bump(at);
        Ok(())
    }

    fn write(&self, tx: &Connection, p: &str) -> rusqlite::Result<()> {
        let mut upsert = tx.prepare_cached(&format!(
            "INSERT INTO {p}leads (id, office, customer, project, customer_key, contact_name,
                contact_phone, owner, stage, open, stage_since, tier, channel, purchase_mode,
                amount_cny, declared_amount, declared_tier, registered_at, last_visit_at,
                last_activity)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20)
             ON CONFLICT (id) DO UPDATE SET office = excluded.office,
                customer = excluded.customer, project = excluded.project,
                customer_key = excluded.customer_key, contact_name = excluded.contact_name,
                contact_phone = excluded.contact_phone, owner = excluded.owner,
                stage = excluded.stage, open = excluded.open, stage_since = excluded.stage_since,
                tier = excluded.tier, channel = excluded.channel,
                purchase_mode = excluded.purchase_mode, amount_cny = excluded.amount_cny,
                declared_amount = excluded.declared_amount, declared_tier = excluded.declared_tier,
                registered_at = excluded.registered_at, last_visit_at = excluded.last_visit_at,
                last_activity = excluded.last_activity
             RETURNING seq"
        ))?;
        let mut clear_persons =
            tx.prepare_cached(&format!("DELETE FROM {p}persons WHERE lead = ?1"))?;
        let mut person = tx.prepare_cached(&format!(
            "INSERT INTO {p}persons (lead, person, ord, name, phone) VALUES (?1, ?2, ?3, ?4, ?5)"
        ))?;
        let mut clear_search =
            tx.prepare_cached(&format!("DELETE FROM {p}search WHERE rowid = ?1"))?;
        let mut search = tx.prepare_cached(&format!(
            "INSERT INTO {p}search (rowid, customer, project, contacts, phones, whole)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        ))?;
        for l in self.order.iter().filter_map(|id| self.leads.get(id)) {
            let id = l.id.to_string();
            let keys = l.keys();
            let contact = &l.contacts[0];
            let seq: i64 = upsert.query_row(
                params![
                    id,
                    l.office.to_string(),
                    l.customer,
                    l.project,
                    format!("{}/{}", keys.customer, keys.project),
                    contact.name,
                    contact.phone,
                    l.owner.map(|o| o.to_string()),
                    l.stage.as_str(),
                    l.stage.is_open(),
                    millis(l.stage_since),
                    l.tier.map(Tier::as_str),
                    l.channel.as_str(),
                    l.purchase_mode.as_str(),
                    l.amount_cny.map(|a| a as i64),
                    l.declared.map(|(a, _)| a as i64),
                    l.declared.map(|(_, t)| t.as_str()),
                    millis(l.registered_at),
                    l.last_visit_at.map(millis),
                    millis(l.last_activity()),
                ],
                |r| r.get(0),
            )?;
            clear_persons.execute(params![id])?;
            for (ord, c) in l.contacts.iter().enumerate() {
                if let Some(kp) = &c.key_person {
                    person.execute(params![id, kp, ord as i64, c.name, c.phone])?;
                }
            }
            clear_search.execute(params![seq])?;
            search.execute(params![
                seq,
                keys.customer,
                keys.project,
                keys.contacts,
                keys.phones,
                keys.whole
            ])?;
        }
        let mut office = tx.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {p}offices (id, code, name, timezone) VALUES (?1, ?2, ?3, ?4)"
        ))?;
        for (id, (code, name, zone)) in &self.offices {
            office.execute(params![id.to_string(), code, name, zone])?;
        }
        let mut staff = tx.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {p}staff (id, name) VALUES (?1, ?2)"
        ))?;
        for (id, name) in &self.staff {
            staff.execute(params![id.to_string(), name])?;
        }
        if let Some(now) = self.now {
            tx.execute(
                &format!(
                    "INSERT INTO {p}meta (key, value) VALUES ('now', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"
                ),
                params![millis(now)],
            )?;
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.leads.clear();
        self.order.clear();
        self.offices.clear();
        self.staff.clear();
        self.now = None;
    }
}

/// What a lead search sorts by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeadSort {
    /// Registration time.
    #[default]
    Registered,
    /// Time the lead entered its current stage.
    StageSince,
    /// Customer and project, by their folded names.
    Customer,
    /// Expected or contract amount; leads without one last.
    Amount,
    /// Last visit; leads never visited last.
    LastVisit,
}

/// Which field of a lead a search text matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchedField {
    Customer,
    Project,
    Contact,
    Phone,
}

/// A lead search on the index: every filter given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeadFilter {
    /// Matches the customer, project or a contact's name (folded as the duplicate check folds),
    /// or a contact's phone number (by digits).
    pub text: Option<String>,
    pub office: Option<OfficeId>,
    pub owner: Option<StaffId>,
    pub stage: Option<Stage>,
    pub tier: Option<Tier>,
    pub channel: Option<Channel>,
    pub purchase_mode: Option<PurchaseMode>,
    /// Open and more than [`super::AGEING_DAYS`] days without a visit (`true`), or not (`false`).
    pub ageing: Option<bool>,
    pub sort: LeadSort,
    pub descending: bool,
    pub offset: u64,
    pub limit: u64,
    /// Keyset paging: only leads after this one in the sort order (the previous page's
    /// [`LeadPage::next`]), so leads registered or changed meanwhile neither repeat nor skip a
    /// row the way an offset does. Used instead of `offset`.
    pub after: Option<PageKey>,
}

/// Where a page ended: the last lead's sort value and its index row, for keyset paging.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageKey {
    /// The sort column's value (a number or a text; `null` for a lead without one, which sorts
    /// last either way).
    pub value: serde_json::Value,
    pub seq: i64,
}

/// One lead a search found, with the names of its office and owner.
#[derive(Clone, Debug, PartialEq)]
pub struct LeadHit {
    pub lead: IndexedLead,
    pub office_code: Option<String>,
    pub office_name: Option<String>,
    /// The office's time zone as opened (`None` for an office not seen opened).
    pub office_zone: Option<String>,
    pub owner_name: Option<String>,
    /// The fields the search text matched (empty without a text).
    pub matched: Vec<MatchedField>,
}

/// A page of a lead search.
#[derive(Clone, Debug, PartialEq)]
pub struct LeadPage {
    /// The log position the index reflects.
    pub position: funnel_types::Position,
    /// "Now" for ageing: the latest `occurred_at` applied (`None` for an empty log).
    pub now: Option<DateTime<Utc>>,
    /// Leads matching the filter, over every page.
    pub total: u64,
    pub hits: Vec<LeadHit>,
    /// Where this page ended, to ask for the next one after it; `None` on a short (last) page.
    pub next: Option<PageKey>,
}

/// How a search text is looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchText {
    /// The folded text (names).
    pub key: String,
    /// The phone digits, when the text has at least three digits.
    pub digits: Option<String>,
}

impl SearchText {
    /// The folded form of `text`; `None` when nothing of it can be searched for (only spaces or
    /// punctuation).
    pub fn of(text: &str) -> Option<Self> {
        let key = fold_name(text);
        let digits = Some(phone_digits(text)).filter(|d| d.len() >= 3);
        (!key.is_empty() || digits.is_some()).then_some(Self { key, digits })
    }

    fn matched(&self, keys: &SearchKeys) -> Vec<MatchedField> {
        let mut out = Vec::new();
        let has = |hay: &str| !self.key.is_empty() && hay.contains(self.key.as_str());
        let (customer, project) = (has(&keys.customer), has(&keys.project));
        // Across the two (`万科城市花园` in `万科` + `城市花园`): both matched.
        let across = !customer && !project && has(&keys.whole);
        if customer || across {
            out.push(MatchedField::Customer);
        }
        if project || across {
            out.push(MatchedField::Project);
        }
        if has(&keys.contacts) {
            out.push(MatchedField::Contact);
        }
        if self
            .digits
            .as_ref()
            .is_some_and(|d| keys.phones.contains(d.as_str()))
        {
            out.push(MatchedField::Phone);
        }
        out
    }
}

/// Searches the live tables `t` (inside the caller's read transaction).
pub fn search_leads(
    conn: &Connection,
    t: &crate::LiveTables,
    f: &LeadFilter,
) -> rusqlite::Result<LeadPage> {
    use rusqlite::types::Value;
    let p = &t.prefix;
    let now: Option<i64> = conn
        .query_row(
            &format!("SELECT value FROM {p}meta WHERE key = 'now'"),
            [],
            |r| r.get(0),
        )
        .optional()?;
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let text = f.text.as_deref().and_then(SearchText::of);
    if let Some(text) = &text {
        if text.key.chars().count() >= 3 || text.key.is_empty() {
            // Trigram index: a phrase matches anywhere inside a column.
            let mut terms = Vec::new();
            if !text.key.is_empty() {
                terms.push(format!("{{whole contacts}} : \"{}\"", text.key));
            }
            if let Some(d) = &text.digits {
                terms.push(format!("phones : \"{d}\""));
            }
            let term = bind(&mut args, Value::Text(terms.join(" OR ")));
            conds.push(format!(
                "l.seq IN (SELECT rowid FROM {p}search WHERE {p}search MATCH {term})"
            ));
        } else {
            // One or two characters (a short Chinese name) are below a trigram: scan the
            // folded names.
            let like = bind(&mut args, Value::Text(format!("%{}%", text.key)));
            let digits = text.digits.as_ref().map(|d| format!("%{d}%"));
            let digits = bind(&mut args, digits.map_or(Value::Null, Value::Text));
            conds.push(format!(
                "l.seq IN (SELECT rowid FROM {p}search WHERE whole LIKE {like} \
                 OR contacts LIKE {like} OR phones LIKE {digits})"
            ));
        }
    }
    for (col, v) in [
        ("office", f.office.map(|o| o.to_string())),
        ("owner", f.owner.map(|o| o.to_string())),
        ("stage", f.stage.map(|s| s.as_str().to_string())),
        ("tier", f.tier.map(|s| s.as_str().to_string())),
        ("channel", f.channel.map(|s| s.as_str().to_string())),
        (
            "purchase_mode",
            f.purchase_mode.map(|s| s.as_str().to_string()),
        ),
    ] {
        if let Some(v) = v {
            let v = bind(&mut args, Value::Text(v));
            conds.push(format!("l.{col} = {v}"));
        }
    }
    if let Some(ageing) = f.ageing {
        let limit = now.unwrap_or(i64::MIN / 2) - super::AGEING_DAYS * 86_400_000;
        let rule = format!("(l.open = 1 AND l.last_activity < {limit})");
        conds.push(if ageing { rule } else { format!("NOT {rule}") });
    }
    let where_of = |conds: &[String]| {
        if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        }
    };
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM {p}leads l {}", where_of(&conds)),
        rusqlite::params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let dir = if f.descending { "DESC" } else { "ASC" };
    let (column, nullable) = match f.sort {
        LeadSort::Registered => ("l.registered_at", false),
        LeadSort::StageSince => ("l.stage_since", false),
        LeadSort::Customer => ("l.customer_key", false),
        LeadSort::Amount => ("l.amount_cny", true),
        LeadSort::LastVisit => ("l.last_visit_at", true),
    };
    let order = if nullable {
        format!("{column} {dir} NULLS LAST")
    } else {
        format!("{column} {dir}")
    };
    if let Some(key) = &f.after {
        // After (value, seq) in this order; leads without a value come last either way.
        let cmp = if f.descending { "<" } else { ">" };
        let seq = bind(&mut args, Value::Integer(key.seq));
        let value = match &key.value {
            serde_json::Value::Number(n) => n.as_i64().map(Value::Integer),
            serde_json::Value::String(t) => Some(Value::Text(t.clone())),
            _ => None,
        };
        conds.push(match value {
            None => format!("({column} IS NULL AND l.seq {cmp} {seq})"),
            Some(v) => {
                let v = bind(&mut args, v);
                let tail = if nullable {
                    format!(" OR {column} IS NULL")
                } else {
                    String::new()
                };
                format!("({column} {cmp} {v} OR ({column} = {v} AND l.seq {cmp} {seq}){tail})")
            }
        });
    }
    let where_ = where_of(&conds);
    let offset = if f.after.is_some() { 0 } else { f.offset };
    let columns: Vec<String> = LEAD_COLUMNS
        .split(", ")
        .map(|c| format!("l.{}", c.trim()))
        .collect();
    let sql = format!(
        "SELECT {}, o.code, o.name, st.name, s.customer, s.project, s.contacts, s.phones, o.timezone,
            s.whole, {column}, l.seq
         FROM {p}leads l
         LEFT JOIN {p}offices o ON o.id = l.office
         LEFT JOIN {p}staff st ON st.id = l.owner
         LEFT JOIN {p}search s ON s.rowid = l.seq
         {where_} ORDER BY {order}, l.seq {dir} LIMIT {} OFFSET {}",
        columns.join(", "),
        f.limit.min(i64::MAX as u64),
        offset.min(i64::MAX as u64),
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut last: Option<PageKey> = None;
    let mut hits: Vec<LeadHit> = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let n = 17;
            let value = match r.get::<_, Value>(n + 9)? {
                Value::Integer(i) => serde_json::Value::from(i),
                Value::Text(t) => serde_json::Value::from(t),
                _ => serde_json::Value::Null,
            };
            last = Some(PageKey {
                value,
                seq: r.get(n + 10)?,
            });
            let keys = SearchKeys {
                customer: r.get::<_, Option<String>>(n + 3)?.unwrap_or_default(),
                project: r.get::<_, Option<String>>(n + 4)?.unwrap_or_default(),
                contacts: r.get::<_, Option<String>>(n + 5)?.unwrap_or_default(),
                phones: r.get::<_, Option<String>>(n + 6)?.unwrap_or_default(),
                whole: r.get::<_, Option<String>>(n + 8)?.unwrap_or_default(),
            };
            Ok(LeadHit {
                lead: lead_from_row(r)?,
                office_code: r.get(n)?,
                office_name: r.get(n + 1)?,
                owner_name: r.get(n + 2)?,
                office_zone: r.get(n + 7)?,
                matched: text.as_ref().map(|t| t.matched(&keys)).unwrap_or_default(),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for h in &mut hits {
        let persons = key_persons(conn, p, h.lead.id)?;
        h.lead.contacts.extend(persons);
    }
    let full = hits.len() as u64 == f.limit && f.limit > 0;
    Ok(LeadPage {
        position: t.checkpoint,
        now: now.map(from_millis).transpose()?,
        total: total as u64,
        hits,
        next: last.filter(|_| full),
    })
}

/// Adds a parameter; its placeholder.
fn bind(args: &mut Vec<rusqlite::types::Value>, v: rusqlite::types::Value) -> String {
    args.push(v);
    format!("?{}", args.len())
}
