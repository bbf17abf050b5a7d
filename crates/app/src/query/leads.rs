//! Finding leads: a search over the persisted lead index (the `lead_index` table model), by text
//! (customer, project, a contact's name, matched the way duplicates are detected; or a phone
//! number by its digits), with filters, a sort and pages. Office roles find only their office's
//! leads; headquarters roles and auditors every office's.

use crate::auth::Caller;
use crate::error::AppError;
use crate::reads::Reads;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use funnel_domain::model::{Channel, PurchaseMode, Stage, Tier};
use funnel_projections::models::{
    LeadFilter, LeadHit, LeadIndex, LeadSort, MatchedField, SearchText, search_leads,
};
use funnel_types::{LeadId, OfficeId, Position, StaffId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most leads one page holds.
pub const MAX_LIMIT: usize = 500;
/// Leads per page when the query does not say.
pub const DEFAULT_LIMIT: usize = 50;

/// What a lead list is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeadSortKey {
    /// Registration time (the default).
    #[default]
    Registered,
    /// Time the lead entered its current stage.
    StageSince,
    /// Customer and project name (normalised, so width and punctuation do not count).
    Customer,
    /// Expected or contract amount; leads without one last.
    Amount,
    /// Last visit; leads never visited last.
    LastVisit,
}

/// Ascending or descending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    Asc,
    /// Newest, largest or last first (the default).
    #[default]
    Desc,
}

/// A lead search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeadQuery {
    /// Text found in the customer, the project or a contact's name (full or half width, spacing,
    /// punctuation and look-alike letters do not count), or in a contact's phone number (digits
    /// only; a `+86` prefix does not count).
    pub text: Option<String>,
    /// One office, by id, code (any case) or exact name; the caller's scope when absent.
    pub office: Option<String>,
    /// The owning engineer, by id or exact name.
    pub owner: Option<String>,
    pub stage: Option<Stage>,
    pub tier: Option<Tier>,
    pub channel: Option<Channel>,
    pub purchase_mode: Option<PurchaseMode>,
    /// Only ageing leads (open and more than 30 days without a visit), or only the others.
    pub ageing: Option<bool>,
    pub sort: LeadSortKey,
    pub order: SortOrder,
    /// Leads per page (1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent).
    pub limit: Option<usize>,
    /// Leads skipped before the page (the previous page's `next_offset`).
    pub offset: Option<u64>,
    /// The page after the one that answered this cursor (its `next_after`): keyset paging, which
    /// neither repeats nor skips a lead registered or changed between pages. Not with `offset`.
    pub after: Option<String>,
    /// Once the index reflects this position (read-your-writes).
    pub at_least: Option<u64>,
}

/// A cursor as it travels: where a page ended, and the sort it ended in (a cursor of another sort
/// is refused rather than misread).
#[derive(Serialize, Deserialize)]
struct Cursor {
    sort: LeadSortKey,
    order: SortOrder,
    #[serde(flatten)]
    key: funnel_projections::models::PageKey,
}

impl Cursor {
    fn encode(&self) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(text: &str) -> Option<Cursor> {
        use base64::Engine as _;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// An office named in an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct OfficeName {
    pub id: OfficeId,
    /// `null` for an office the index has not seen opened.
    pub code: Option<String>,
    pub name: Option<String>,
}

/// A member of staff named in an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct StaffName {
    pub id: StaffId,
    /// `null` for someone the index has not seen join.
    pub name: Option<String>,
}

/// A contact of a lead: the one given at registration, or a key person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LeadContact {
    /// The key person's id; `null` for the registration contact.
    pub key_person: Option<String>,
    pub name: String,
    pub phone: String,
}

/// Which field a search text matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeadMatch {
    Customer,
    Project,
    Contact,
    Phone,
}

/// One lead found.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LeadListItem {
    pub id: LeadId,
    pub office: OfficeName,
    pub customer: String,
    /// Empty for a company-level lead.
    pub project: String,
    pub contacts: Vec<LeadContact>,
    pub owner: Option<StaffName>,
    pub stage: Stage,
    /// The stage as users read it (普通信息, 有效信息 …).
    pub stage_label: String,
    pub tier: Option<Tier>,
    pub channel: Channel,
    pub purchase_mode: PurchaseMode,
    /// Expected amount (from the approved prospect declaration) or contract amount, in yuan.
    pub amount_cny: Option<u64>,
    /// RFC 3339, on the clock of the lead's office (`time_zone`).
    pub registered_at: String,
    pub stage_since: String,
    pub last_visit_at: Option<String>,
    /// The IANA time zone of the lead's office, which the times above are given in.
    pub time_zone: String,
    /// Whole days without a visit (since registration before any) for an open lead.
    pub idle_days: Option<i64>,
    /// Open and more than 30 days without a visit.
    pub ageing: bool,
    /// What the search text matched (empty without one).
    pub matched: Vec<LeadMatch>,
}

/// A page of leads.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LeadList {
    /// The log position the index reflects.
    pub position: Position,
    /// "Now" for ageing and idle days (RFC 3339, UTC): the latest event applied. `null` for an
    /// empty log.
    pub as_of: Option<String>,
    /// Leads matching the query, over every page.
    pub total: u64,
    pub offset: u64,
    pub limit: usize,
    /// The `offset` of the next page; `null` on the last one.
    pub next_offset: Option<u64>,
    /// The cursor of the next page (`after=`): keyset paging, stable while leads are registered
    /// or change; `null` on a page shorter than `limit`.
    pub next_after: Option<String>,
    pub leads: Vec<LeadListItem>,
}

/// Finds leads (see [`LeadQuery`]) among those the caller may read.
pub async fn search(reads: &Reads, caller: &Caller, q: LeadQuery) -> Result<LeadList, AppError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::bad_request(
            "limit",
            format!("it must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if let Some(t) = text
        && SearchText::of(t).is_none()
    {
        // Well-formed, but nothing to search for: a validation refusal (as the document cannot
        // say which texts fold to nothing), not a malformed request.
        return Err(AppError::new(
            crate::ErrorKind::Unprocessable,
            "validation.search_text_empty",
            format!(
                "`q` has no letter or digit to search for: `{t}` is only spaces, punctuation or symbols"
            ),
            format!("搜索内容 `{t}` 中没有可搜索的文字或数字（只有空格、标点或符号）"),
        ));
    }
    let office = caller.scope(reads.optional_office(q.office.as_deref()).await?)?;
    let owner = match q.owner.as_deref() {
        Some(o) => Some(reads.staff_named(o).await?.0),
        None => None,
    };
    // Well-formed text the document allows, but not a cursor of this search: a validation
    // refusal (the document cannot say which texts are cursors), not a malformed request.
    let after = match q.after.as_deref() {
        None => None,
        Some(_) if q.offset.is_some() => {
            return Err(AppError::new(
                crate::ErrorKind::Unprocessable,
                "validation.cursor",
                "give `after` (a cursor) or `offset`, not both",
                "`after`（游标）与 `offset` 只能给出其一",
            ));
        }
        Some(text) => {
            let c = Cursor::decode(text).filter(|c| c.sort == q.sort && c.order == q.order);
            Some(
                c.ok_or_else(|| {
                    AppError::new(
                        crate::ErrorKind::Unprocessable,
                        "validation.cursor",
                        "`after` is not a cursor of this search: give the `next_after` of the previous page, with the same `sort` and `order`",
                        "`after` 不是本次查询的游标：请使用上一页答复中的 `next_after`，并保持相同的 `sort` 与 `order`",
                    )
                })?
                .key,
            )
        }
    };
    reads.wait_for(q.at_least).await?;
    let offset = q.offset.unwrap_or(0);
    let filter = LeadFilter {
        text: text.map(str::to_string),
        office,
        owner,
        stage: q.stage,
        tier: q.tier,
        channel: q.channel,
        purchase_mode: q.purchase_mode,
        ageing: q.ageing,
        sort: match q.sort {
            LeadSortKey::Registered => LeadSort::Registered,
            LeadSortKey::StageSince => LeadSort::StageSince,
            LeadSortKey::Customer => LeadSort::Customer,
            LeadSortKey::Amount => LeadSort::Amount,
            LeadSortKey::LastVisit => LeadSort::LastVisit,
        },
        descending: q.order == SortOrder::Desc,
        offset,
        limit: limit as u64,
        after,
    };
    let page = reads
        .read_live_tables::<LeadIndex, _>(move |conn, t| search_leads(conn, t, &filter))
        .await?;
    let now = page.now;
    let next_after = page.next.map(|key| {
        Cursor {
            sort: q.sort,
            order: q.order,
            key,
        }
        .encode()
    });
    let leads = page
        .hits
        .into_iter()
        .map(|h| {
            let tz = funnel_domain::time::zone(h.office_zone.as_deref());
            item(h, tz, now)
        })
        .collect::<Vec<_>>();
    let next = offset + leads.len() as u64;
    Ok(LeadList {
        position: page.position,
        as_of: now.map(|t| t.to_rfc3339()),
        total: page.total,
        offset,
        limit,
        // A page asked for by cursor has no offset to go on from.
        next_offset: (q.after.is_none() && next < page.total).then_some(next),
        next_after,
        leads,
    })
}

fn item(h: LeadHit, tz: Tz, now: Option<DateTime<Utc>>) -> LeadListItem {
    let l = h.lead;
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).to_rfc3339();
    let last_activity = l.last_activity();
    let idle_days = now
        .filter(|_| l.stage.is_open())
        .map(|now| (now - last_activity).num_days());
    let ageing = now.is_some_and(|now| {
        l.stage.is_open()
            && now - last_activity > chrono::Duration::days(funnel_projections::models::AGEING_DAYS)
    });
    LeadListItem {
        id: l.id,
        office: OfficeName {
            id: l.office,
            code: h.office_code,
            name: h.office_name,
        },
        customer: l.customer,
        project: l.project,
        contacts: l
            .contacts
            .into_iter()
            .map(|c| LeadContact {
                key_person: c.key_person,
                name: c.name,
                phone: c.phone,
            })
            .collect(),
        owner: l.owner.map(|id| StaffName {
            id,
            name: h.owner_name,
        }),
        stage: l.stage,
        stage_label: l.stage.label_zh().to_string(),
        tier: l.tier,
        channel: l.channel,
        purchase_mode: l.purchase_mode,
        amount_cny: l.amount_cny,
        registered_at: local(l.registered_at),
        stage_since: local(l.stage_since),
        last_visit_at: l.last_visit_at.map(local),
        time_zone: tz.name().to_string(),
        idle_days,
        ageing,
        matched: h
            .matched
            .into_iter()
            .map(|m| match m {
                MatchedField::Customer => LeadMatch::Customer,
                MatchedField::Project => LeadMatch::Project,
                MatchedField::Contact => LeadMatch::Contact,
                MatchedField::Phone => LeadMatch::Phone,
            })
            .collect(),
    }
}
