//! `GET /console/inbox`: the open tasks of the signed-in person, each with what it is about
//! (customer, the people involved, the reassignment, declaration, contract version or summary, the
//! due time) and a form for each command that completes it, from the task details of the
//! application layer; `POST /console/leads/{id}/commands/{name}` runs a lead command from a form,
//! `POST /console/summaries` and `POST /console/summaries/{id}/{step}` the steps of an office
//! summary, and each shows the result or the refusal (message and missing items) at once.

use super::{Shell, Tr, Viewer, html};
use crate::AppState;
use crate::extract::{path_id, write_id};
use crate::problem::Problem;
use crate::routes::write;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use funnel_app::Paging;
use funnel_app::query::record::{PersonRef, SeatState};
use funnel_app::query::task_detail::{InputKind, TaskCommand, TaskView};
use funnel_app::query::work::{self, TasksQuery};
use funnel_types::LeadId;

/// A choice of a form's select.
#[derive(Clone, Debug)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// A field the person fills in.
pub struct InputView {
    /// The form field's name (with the `[]`, `:bool`, `:int` or `:json` that says its type).
    pub name: String,
    pub label: String,
    /// `text`, `bool`, `choice`, `choices`, `number` or `lines` (checkboxes of summary lines, all
    /// ticked).
    pub kind: &'static str,
    pub required: bool,
    pub choices: Vec<Choice>,
}

/// A command that completes a task, as a form.
pub struct FormView {
    pub action: String,
    pub label: String,
    /// The fields the task fixes (ids, the seat, the content hash).
    pub hidden: Vec<(String, String)>,
    pub inputs: Vec<InputView>,
}

pub struct TaskCard {
    pub id: String,
    pub title: String,
    pub lead_href: Option<String>,
    pub customer: Option<String>,
    /// What the task is about: (label, value) lines.
    pub details: Vec<(String, String)>,
    pub opened: String,
    pub due: Option<String>,
    pub overdue: bool,
    pub closes_when: String,
    pub forms: Vec<FormView>,
    /// Commands the console has no form for, by label.
    pub elsewhere: Vec<String>,
    /// Commands someone else runs to close the task (the lead's engineer, the office manager): who
    /// and what, e.g. `负责工程师：标记内线`. The viewer gets no form the domain would refuse them.
    pub by_others: Vec<String>,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    shell: Shell,
    name: String,
    tasks: Vec<TaskCard>,
    /// An engineer's inbox links to their visit plan.
    plans: bool,
    /// The auditor's: how the last walk of the log's hash chain went (whether it was clean, and
    /// what it says).
    integrity: Option<(bool, String)>,
}

/// The auditor's line on the last walk of the log ([`funnel_app::chain::ChainAudit`]).
fn integrity(state: &AppState, viewer: &Viewer) -> Option<(bool, String)> {
    if viewer.caller.role != funnel_types::Role::Auditor {
        return None;
    }
    let tr = viewer.tr;
    let Some(r) = state.chain().last() else {
        return Some((
            true,
            tr.t(
                "日志完整性：尚未校验。服务启动一分钟后自动校验，也可打开 /verify 立即校验。",
                "Log integrity: not verified yet. A walk runs a minute after the server starts; open /verify to walk it now.",
            )
            .to_string(),
        ));
    };
    let when = super::local_time(r.verified_at, viewer.zone);
    if !r.clean {
        let what = if tr.en() { r.message } else { r.message_zh }.unwrap_or_default();
        return Some((
            false,
            if tr.en() {
                format!("Log integrity check FAILED ({when}): {what}")
            } else {
                format!("日志完整性校验未通过（{when}）：{what}")
            },
        ));
    }
    let witnessed = match r
        .verification
        .witness
        .as_ref()
        .and_then(|w| w.last.as_ref())
    {
        Some(l) => format!(
            "{} {}",
            tr.t(
                "签名检查点覆盖至位置",
                "signed checkpoints cover up to position"
            ),
            l.position
        ),
        None => tr
            .t("未核对签名检查点", "no signed checkpoint was checked")
            .to_string(),
    };
    let head = r.head;
    Some((
        true,
        if tr.en() {
            format!(
                "Log integrity: verified up to position {head} ({when}); nothing was tampered with; {witnessed}"
            )
        } else {
            format!("日志完整性：已校验至位置 {head}（{when}），未发现篡改；{witnessed}")
        },
    ))
}

/// `GET /console/inbox`: the viewer's open tasks, oldest first, with what each is about.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    let tr = viewer.tr;
    let shell = Shell::new(tr, tr.t("待办", "Inbox"), "/console/inbox", Some(&viewer));
    let list = match work::tasks(
        state.reads(),
        &viewer.caller,
        TasksQuery {
            staff: None,
            at_least: None,
            paging: Paging::everything(),
        },
    )
    .await
    {
        Ok(l) => l,
        Err(e) => return super::problem_page(shell, &Problem::from(e)),
    };
    let now = state.engine().clock().now();
    let mut tasks = Vec::new();
    for t in &list.tasks {
        let lines = match t
            .commands
            .iter()
            .find(|c| c.operation_id == "compile_summary")
        {
            Some(c) => summary_lines(&state, &viewer, c).await,
            None => Vec::new(),
        };
        tasks.push(card(tr, t, now, &lines));
    }
    html(
        InboxPage {
            shell,
            name: list.name,
            tasks,
            plans: viewer.caller.role == funnel_types::Role::SalesEngineer,
            integrity: integrity(&state, &viewer),
        }
        .render(),
    )
}

/// The lines a summary of the office and period of a compile command offers: the office's leads
/// registered in the period (on the office's clock), each with its owner and customer (a lead
/// without an owner cannot be a line), oldest first.
async fn summary_lines(state: &AppState, viewer: &Viewer, c: &TaskCommand) -> Vec<Choice> {
    use funnel_app::query::reports::{self, ReportQuery};
    let (Some(office), Some(period)) = (
        c.body.get("office").and_then(|v| v.as_str()),
        c.body
            .get("period")
            .and_then(|p| serde_json::from_value::<funnel_domain::model::Period>(p.clone()).ok()),
    ) else {
        return Vec::new();
    };
    let Some((first, last)) = funnel_domain::plan::period_days(&period) else {
        return Vec::new();
    };
    let Ok(list) = reports::leads(
        state.reads(),
        &viewer.caller,
        ReportQuery {
            office: Some(office.to_string()),
            as_of: None,
            at_least: None,
        },
    )
    .await
    else {
        return Vec::new();
    };
    let zone = viewer.zone;
    let mut found: Vec<_> = list
        .leads
        .iter()
        .filter(|l| {
            let day = l.registered_at.with_timezone(&zone).date_naive();
            first <= day && day <= last && l.owner_id.is_some()
        })
        .collect();
    found.sort_by_key(|l| l.registered_at);
    found
        .into_iter()
        .filter_map(|l| {
            let line = serde_json::json!({
                "lead_id": l.lead_id,
                "engineer": l.owner_id?,
                "customer": l.customer,
            });
            Some(Choice {
                value: line.to_string(),
                label: format!(
                    "{} · {} · {}",
                    l.customer,
                    l.owner_name.clone().unwrap_or_default(),
                    l.registered_at.with_timezone(&zone).format("%m-%d")
                ),
            })
        })
        .collect()
}

fn person(p: &PersonRef) -> String {
    p.name.clone()
}

/// The first 12 hex digits of a content hash: enough to tell two texts apart.
fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// A seat of the contract review board by its name in the page's language.
fn seat_label(tr: Tr, seat: &str) -> String {
    match seat.parse::<funnel_types::Role>() {
        Ok(role) => tr.role(role),
        Err(_) if tr.en() => funnel_domain::seat_label_en(seat),
        Err(_) => funnel_domain::seat_label_zh(seat),
    }
}

/// A task as the inbox shows it.
fn card(tr: Tr, t: &TaskView, now: chrono::DateTime<chrono::Utc>, lines: &[Choice]) -> TaskCard {
    let a = &t.about;
    let mut details: Vec<(String, String)> = Vec::new();
    let mut line = |zh: &str, en: &str, v: String| details.push((tr.t(zh, en).to_string(), v));
    if let Some(l) = &a.lead {
        line("办事处", "Office", l.office.name.clone());
        if let Some(o) = &l.owner {
            line("负责人", "Owner", person(o));
        }
        line("阶段", "Stage", tr.code(&l.stage_zh, l.stage.as_str()));
    }
    // The lead's owner is already named above.
    for p in a
        .people
        .iter()
        .filter(|p| !(p.part == "owner" && a.lead.is_some()))
    {
        line(&p.part_zh, &p.part.replace('_', " "), person(&p.person));
    }
    if let Some(r) = &a.reassignment {
        line(
            "变更",
            "Change",
            format!("{} → {}", person(&r.from), person(&r.to)),
        );
        if let Some(by) = &r.requested_by {
            line("申请人", "Requested by", person(by));
        }
        line(
            "依据",
            "Evidence",
            if r.evidence.is_empty() {
                tr.t("（未填写）", "(none given)").to_string()
            } else {
                r.evidence.clone()
            },
        );
        line("过期时间", "Expires", r.expires_local.clone());
    }
    if let Some(d) = &a.declaration {
        line("申报", "Declaration", tr.code(&d.kind_zh, &d.kind_zh));
        if let Some(amount) = &d.amount_zh {
            line("预计金额", "Expected amount", amount.clone());
        }
        if let Some(tier) = &d.tier_zh {
            line("客户等级", "Tier", tier.clone());
        }
    }
    if let Some(c) = &a.contract {
        let v = &c.version;
        let ver = |n: u32| {
            if tr.en() {
                format!("version {n}")
            } else {
                format!("第 {n} 版")
            }
        };
        line(
            "合同",
            "Contract",
            format!("{} · {} · {}", ver(v.version), v.amount_zh, person(&v.by)),
        );
        match &c.previous {
            Some(prev) => {
                let mut changed = Vec::new();
                if prev.amount_cny != v.amount_cny {
                    changed.push(format!(
                        "{}{} → {}",
                        tr.t("金额：", "amount: "),
                        prev.amount_zh,
                        v.amount_zh
                    ));
                }
                changed.push(if prev.content_hash != v.content_hash {
                    format!(
                        "{}{} → {}",
                        tr.t("合同文本已修改：", "text changed: "),
                        short_hash(&prev.content_hash),
                        short_hash(&v.content_hash)
                    )
                } else {
                    tr.t("合同文本未变", "text unchanged").to_string()
                });
                if !v.reason.is_empty() {
                    changed.push(format!("{}{}", tr.t("理由：", "reason: "), v.reason));
                }
                line(
                    "较上一版",
                    "Since the previous version",
                    format!("{}：{}", ver(prev.version), changed.join(tr.t("；", "; "))),
                );
            }
            None => line(
                "合同文本",
                "Text",
                format!(
                    "{} · SHA-256 {}",
                    tr.t("首次提交", "as submitted"),
                    short_hash(&v.content_hash)
                ),
            ),
        }
        if let Some(seat) = &c.seat {
            line("评审席位", "Seat", seat_label(tr, seat));
        }
        if !c.seats.is_empty() {
            let seats: Vec<String> = c
                .seats
                .iter()
                .map(|s| {
                    let state = match s.state {
                        SeatState::Pending => tr.t("待评审", "pending"),
                        SeatState::Approved => tr.t("通过", "approved"),
                        SeatState::Rejected => tr.t("驳回", "rejected"),
                    };
                    let mut text = format!("{}：{state}", seat_label(tr, &s.seat));
                    if let Some(by) = &s.by {
                        text.push_str(&format!("（{}）", by.name));
                    }
                    if let Some(r) = s.reasons.as_deref().filter(|r| !r.is_empty()) {
                        text.push_str(&format!(" {r}"));
                    }
                    text
                })
                .collect();
            line("各席位", "Seats", seats.join(tr.t("；", "; ")));
        }
    }
    if let Some(s) = &a.summary {
        let mut v = s.period.clone();
        if let Some(o) = &s.office {
            v = format!("{} · {v}", o.name);
        }
        line("汇总", "Summary", v);
    }
    if let Some(n) = a.visits_without_insider {
        line("无内线拜访次数", "Visits without an insider", n.to_string());
    }
    let mut forms = Vec::new();
    let mut elsewhere = Vec::new();
    let mut by_others = Vec::new();
    for c in &t.commands {
        let who = match c.run_by.as_str() {
            "assignee" => None,
            "lead_owner" => Some(tr.t("负责工程师", "the lead's engineer")),
            "office_manager" => Some(tr.t("办事处经理", "the office manager")),
            other => Some(other),
        };
        if let Some(who) = who {
            let what = tr.t(&c.label_zh, &c.label_en);
            by_others.push(if tr.en() {
                format!("{what} ({who})")
            } else {
                format!("{who}：{what}")
            });
            continue;
        }
        match form_of(tr, c, lines) {
            Some(f) => forms.push(f),
            None => elsewhere.push(tr.t(&c.label_zh, &c.label_en).to_string()),
        }
    }
    TaskCard {
        id: t.task.task_id.to_string(),
        // The page names a seat in its own language (the task's titles are in both already).
        title: match a.contract.as_ref().and_then(|c| c.seat.as_deref()) {
            Some(seat) if tr.en() => format!("Review the contract as {}", seat_label(tr, seat)),
            Some(seat) => format!("以“{}”身份评审合同", seat_label(tr, seat)),
            None => tr.t(&t.task.title_zh, &t.task.title_en).to_string(),
        },
        lead_href: a
            .lead
            .as_ref()
            .map(|l| format!("/console/leads/{}", l.lead_id)),
        customer: a.lead.as_ref().map(|l| {
            if l.project.is_empty() {
                l.customer.clone()
            } else {
                format!("{} {}", l.customer, l.project)
            }
        }),
        details,
        opened: t.opened_local.clone(),
        due: t.due_local.clone(),
        overdue: t.task.due_at.is_some_and(|d| d < now),
        closes_when: tr.t(&t.closes_when_zh, &t.closes_when_en).to_string(),
        forms,
        elsewhere,
        by_others,
    }
}

/// The form of a command the console runs (the lead and summary commands), with the fixed fields
/// hidden; `lines` are the summary lines a compile form offers.
fn form_of(tr: Tr, c: &TaskCommand, lines: &[Choice]) -> Option<FormView> {
    if c.method != "POST" {
        return None;
    }
    let action = if c.path == "/summaries" {
        "/console/summaries".to_string()
    } else if let Some(rest) = c.path.strip_prefix("/privacy/erasures/") {
        let (erasure, step) = rest.split_once('/')?;
        if step.contains('/') {
            return None;
        }
        format!("/console/privacy/erasures/{erasure}/{step}")
    } else if let Some(rest) = c.path.strip_prefix("/summaries/") {
        let (summary, step) = rest.split_once('/')?;
        if step.contains('/') {
            return None;
        }
        format!("/console/summaries/{summary}/{step}")
    } else {
        let rest = c.path.strip_prefix("/leads/")?;
        let (lead, name) = rest.split_once("/commands/")?;
        if name.contains('/') {
            return None;
        }
        format!("/console/leads/{lead}/commands/{name}")
    };
    let hidden = c
        .body
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k.clone(), s.clone()),
            serde_json::Value::Bool(b) => (format!("{k}:bool"), b.to_string()),
            serde_json::Value::Number(n) if n.is_u64() => (format!("{k}:int"), n.to_string()),
            other => (format!("{k}:json"), other.to_string()),
        })
        .collect();
    let inputs = c
        .inputs
        .iter()
        .map(|i| {
            let (name, kind) = match i.kind {
                InputKind::Text | InputKind::Hash => (i.name.clone(), "text"),
                InputKind::Bool => (format!("{}:bool", i.name), "bool"),
                InputKind::Choice => (i.name.clone(), "choice"),
                InputKind::Staff if !i.choices.is_empty() => (i.name.clone(), "choice"),
                InputKind::Staff => (i.name.clone(), "text"),
                InputKind::Choices => (format!("{}[]", i.name), "choices"),
                InputKind::Amount => (format!("{}:int", i.name), "number"),
                InputKind::SummaryLines => (i.name.clone(), "lines"),
            };
            InputView {
                name,
                label: tr.t(&i.label_zh, &i.label_en).to_string(),
                kind,
                required: i.required,
                choices: if i.kind == InputKind::SummaryLines {
                    lines.to_vec()
                } else {
                    i.choices
                        .iter()
                        .map(|c| Choice {
                            value: c.value.clone(),
                            label: tr.t(&c.label_zh, &c.label_en).to_string(),
                        })
                        .collect()
                },
            }
        })
        .collect();
    Some(FormView {
        action,
        label: tr.t(&c.label_zh, &c.label_en).to_string(),
        hidden,
        inputs,
    })
}

/// A form's fields as the JSON body of the command. A field's name is a path: `outer.inner` is a
/// field of an object, `list[2].field` a field of the third object of a list, `list[]` appends to a
/// list. A type after a colon says what the text is: `:bool` a boolean (`true`/`on` or anything
/// else), `:int` a whole number, `:wan` an amount in 万元 written in yuan, `:local` a
/// `datetime-local` value on the clock of `zone` (written as RFC 3339), `:json` a JSON value;
/// without one it is text. Empty text fields are left out (so a command's defaults apply).
pub fn form_to_json(body: &[u8], zone: chrono_tz::Tz) -> Result<serde_json::Value, Problem> {
    use serde_json::{Map, Value};
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| Problem::bad_request("form", e.to_string()))?;
    let mut out = Value::Object(Map::new());
    for (key, value) in pairs {
        // The CSRF token of a form sent without JavaScript (checked before the handler runs).
        if key == super::CSRF_FIELD {
            continue;
        }
        let (path, kind) = match key.rsplit_once(':') {
            Some((p, k @ ("bool" | "int" | "wan" | "json" | "local"))) => (p, k),
            _ => (key.as_str(), "text"),
        };
        let segments = path_segments(path)
            .ok_or_else(|| Problem::bad_request(path, "not a field name of this form"))?;
        let name = path.split(['.', '[']).next().unwrap_or(path);
        let v = match kind {
            "bool" => Value::Bool(matches!(value.as_str(), "true" | "on")),
            "int" => Value::from(value.trim().parse::<u64>().map_err(|_| {
                Problem::bad_request(name, format!("`{value}` is not a whole number"))
            })?),
            "wan" => Value::from(wan_to_yuan(&value).ok_or_else(|| {
                Problem::bad_request(name, format!("`{value}` is not an amount in 万元"))
            })?),
            "json" => serde_json::from_str(&value)
                .map_err(|e| Problem::bad_request(name, format!("not JSON: {e}")))?,
            "local" => {
                let local = chrono::NaiveDateTime::parse_from_str(value.trim(), "%Y-%m-%dT%H:%M")
                    .map_err(|_| {
                    Problem::bad_request(name, format!("`{value}` is not a date and time"))
                })?;
                let at = local.and_local_timezone(zone).earliest().ok_or_else(|| {
                    Problem::bad_request(
                        name,
                        format!("`{value}` does not exist on the office's clock"),
                    )
                })?;
                Value::String(at.to_utc().to_rfc3339())
            }
            _ if value.trim().is_empty() && !matches!(segments.last(), Some(Segment::Push)) => {
                continue;
            }
            _ => Value::String(value),
        };
        put(&mut out, &segments, v);
    }
    Ok(out)
}

/// One step of a form field's path.
#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
    Push,
}

/// `a.b[2].c` → `a`, `b`, 2, `c`; `a[]` → `a`, push. Indexes stay below 1000.
fn path_segments(path: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() || key.contains(']') {
            return None;
        }
        out.push(Segment::Key(key.to_string()));
        while let Some(r) = rest.strip_prefix('[') {
            let (inside, after) = r.split_once(']')?;
            out.push(if inside.is_empty() {
                Segment::Push
            } else {
                Segment::Index(inside.parse().ok().filter(|i| *i < 1000)?)
            });
            rest = after;
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// Puts `value` at `path` inside `target`, making the objects and lists on the way.
fn put(target: &mut serde_json::Value, path: &[Segment], value: serde_json::Value) {
    use serde_json::{Map, Value};
    let Some((first, rest)) = path.split_first() else {
        *target = value;
        return;
    };
    let empty = || match rest.first() {
        Some(Segment::Index(_) | Segment::Push) => Value::Array(Vec::new()),
        Some(Segment::Key(_)) => Value::Object(Map::new()),
        None => Value::Null,
    };
    match first {
        Segment::Key(k) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(fields) = target {
                let slot = fields.entry(k.clone()).or_insert_with(empty);
                put(slot, rest, value);
            }
        }
        Segment::Index(i) => {
            if !target.is_array() {
                *target = Value::Array(Vec::new());
            }
            if let Value::Array(items) = target {
                if items.len() <= *i {
                    items.resize(*i + 1, Value::Null);
                }
                if items[*i].is_null() {
                    items[*i] = empty();
                }
                put(&mut items[*i], rest, value);
            }
        }
        Segment::Push => {
            if !target.is_array() {
                *target = Value::Array(Vec::new());
            }
            if let Value::Array(items) = target {
                let mut slot = empty();
                put(&mut slot, rest, value);
                items.push(slot);
            }
        }
    }
}

/// `123.45` (万元) → 1,234,500 yuan; at most four decimals, nothing negative.
fn wan_to_yuan(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty() || frac.len() > 4 {
        return None;
    }
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(whole) || !digits(frac) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: u64 = format!("{frac:0<4}").parse().ok()?;
    whole.checked_mul(10_000)?.checked_add(frac)
}

/// The missing checklist items of a refusal, in the page's language.
pub fn missing_labels(tr: Tr, missing: &[String]) -> Vec<String> {
    missing
        .iter()
        .map(|m| match m.parse::<funnel_domain::lead::Criterion>() {
            Ok(c) if !tr.en() => c.label_zh().to_string(),
            _ => m.replace('_', " "),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "result.html")]
struct ResultFragment<'a> {
    tr: Tr,
    accepted: bool,
    message: &'a str,
    missing: &'a [String],
    code: &'a str,
}

#[derive(Template)]
#[template(path = "result_page.html")]
struct ResultPage<'a> {
    shell: Shell,
    fragment: ResultFragment<'a>,
    back: String,
}

/// `POST /console/leads/{id}/commands/{name}`: a lead command from a console form, as the signed-in
/// person, with the same authorization and refusals as `POST /leads/{id}/commands/{name}`. htmx
/// swaps the answer into the form's result area; without script the answer is a page.
pub async fn lead_command(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((lead, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = run_lead_command(&state, &viewer, &lead, &name, &headers, &body).await;
    let done = viewer
        .tr
        .t("已提交，已记录。", "Done: recorded.")
        .to_string();
    answer(&viewer, &headers, outcome.map(|()| done))
}

/// The answer to a console form: the result (a message) or the refusal (its message in the
/// page's language, the missing items and the code) as a fragment for htmx, else as a page.
pub(crate) fn answer(
    viewer: &Viewer,
    headers: &HeaderMap,
    outcome: Result<String, Problem>,
) -> Response {
    let tr = viewer.tr;
    let (accepted, message, missing, code, status) = match &outcome {
        Ok(message) => (
            true,
            message.clone(),
            Vec::new(),
            String::new(),
            axum::http::StatusCode::OK,
        ),
        Err(p) => (
            false,
            tr.t(&p.message_zh, &p.message_en).to_string(),
            missing_labels(tr, &p.missing),
            p.code.clone(),
            super::status_of(p),
        ),
    };
    let fragment = ResultFragment {
        tr,
        accepted,
        message: &message,
        missing: &missing,
        code: &code,
    };
    if headers.contains_key("hx-request") {
        // htmx swaps only successful answers: a refusal is shown in place too.
        return html(fragment.render());
    }
    let shell = Shell::new(tr, tr.t("结果", "Result"), "/console/inbox", Some(viewer));
    let back = headers
        .get(axum::http::header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.find("://").map(|i| &r[i + 3..]))
        .and_then(|r| r.find('/').map(|i| r[i..].to_string()))
        .unwrap_or_else(|| "/console/inbox".into());
    let mut res = html(
        ResultPage {
            shell,
            fragment,
            back,
        }
        .render(),
    );
    *res.status_mut() = status;
    res.into_response()
}

/// `POST /console/leads`: registers a lead from the phone form, as `POST /leads` does.
pub async fn register(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tr = viewer.tr;
    let outcome = async {
        let mut json = form_to_json(&body, viewer.zone)?;
        // An engineer registers in their own office.
        if let (Some(o), serde_json::Value::Object(fields)) = (viewer.caller.office, &mut json) {
            fields
                .entry("office")
                .or_insert_with(|| serde_json::Value::String(o.to_string()));
        }
        let json = serde_json::to_vec(&json).unwrap_or_default();
        let id = write_id(&headers, &viewer.caller, "POST /leads", &json)?;
        let dto: crate::dto::RegisterLead =
            crate::extract::from_json(&json).map_err(crate::extract::json_problem)?;
        write::run(
            &state,
            &viewer.caller,
            id,
            "register",
            funnel_engine::Command::Lead {
                lead_id: None,
                cmd: dto.into_command(id.command_id),
            },
        )
        .await
    }
    .await;
    let (accepted, message, missing, code) = match &outcome {
        Ok(a) => (
            true,
            match a.stream.to_string().split_once('-') {
                Some((_, lead)) => {
                    format!("{} /console/leads/{lead}", tr.t("已报备：", "Registered:"))
                }
                None => tr.t("已报备。", "Registered.").to_string(),
            },
            Vec::new(),
            String::new(),
        ),
        Err(p) => (
            false,
            tr.t(&p.message_zh, &p.message_en).to_string(),
            missing_labels(tr, &p.missing),
            p.code.clone(),
        ),
    };
    html(
        ResultFragment {
            tr,
            accepted,
            message: &message,
            missing: &missing,
            code: &code,
        }
        .render(),
    )
}

/// `POST /console/summaries`: the assistant compiles an office summary from the inbox, as
/// `POST /summaries` does.
pub async fn compile_summary(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = async {
        let json = serde_json::to_vec(&form_to_json(&body, viewer.zone)?).unwrap_or_default();
        let id = write_id(&headers, &viewer.caller, "POST /summaries", &json)?;
        let dto: crate::dto::CompileSummary =
            crate::extract::from_json(&json).map_err(crate::extract::json_problem)?;
        let lines = dto.lines.len();
        write::run(
            &state,
            &viewer.caller,
            id,
            "compile_summary",
            funnel_engine::Command::Summary {
                summary_id: None,
                cmd: dto.into_command(),
            },
        )
        .await?;
        Ok(if viewer.tr.en() {
            format!("Summary compiled with {lines} lines.")
        } else {
            format!("汇总表已编制，共 {lines} 行。")
        })
    }
    .await;
    answer(&viewer, &headers, outcome)
}

/// `POST /console/summaries/{id}/{step}`: verify, review or file an office summary from the
/// inbox, as `POST /summaries/{id}/{step}` does.
pub async fn summary_step(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((summary, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use funnel_domain::summary::SummaryCommand;
    let outcome = async {
        let summary: funnel_types::SummaryId = path_id("summary id", &summary)?;
        let json = serde_json::to_vec(&form_to_json(&body, viewer.zone)?).unwrap_or_default();
        let id = write_id(
            &headers,
            &viewer.caller,
            &format!("POST /summaries/{summary}/{step}"),
            &json,
        )?;
        let (name, cmd, zh, en) = match step.as_str() {
            "verify" => {
                let b: crate::dto::VerifySummary = parse_body(&json)?;
                (
                    "verify_summary",
                    SummaryCommand::Verify { note: b.note },
                    "汇总表已核实。",
                    "Summary verified.",
                )
            }
            "review" => {
                let b: crate::dto::ReviewSummary = parse_body(&json)?;
                let (zh, en) = if b.approve {
                    ("汇总表已审核通过。", "Summary approved.")
                } else {
                    ("汇总表已退回。", "Summary returned.")
                };
                (
                    "review_summary",
                    SummaryCommand::Review {
                        approve: b.approve,
                        note: b.note,
                    },
                    zh,
                    en,
                )
            }
            "file" => {
                let _: crate::dto::Empty = parse_body(&json)?;
                (
                    "file_summary",
                    SummaryCommand::File,
                    "汇总表已备案。",
                    "Summary filed.",
                )
            }
            other => {
                return Err(Problem::not_found(
                    "request.unknown_command",
                    format!("no summary step `{other}`; known: verify, review, file"),
                    format!("没有汇总步骤 `{other}`"),
                ));
            }
        };
        write::run(
            &state,
            &viewer.caller,
            id,
            name,
            funnel_engine::Command::Summary {
                summary_id: Some(summary),
                cmd,
            },
        )
        .await?;
        Ok(viewer.tr.t(zh, en).to_string())
    }
    .await;
    answer(&viewer, &headers, outcome)
}

/// `POST /console/privacy/erasures/{id}/{step}`: approve or reject an erasure from the inbox,
/// as `POST /privacy/erasures/{id}/{step}` does.
pub async fn erasure_step(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((erasure, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use funnel_domain::erasure::ErasureCommand;
    let outcome = async {
        let erasure_id: uuid::Uuid = path_id("erasure id", &erasure)?;
        let json = serde_json::to_vec(&form_to_json(&body, viewer.zone)?).unwrap_or_default();
        let id = write_id(
            &headers,
            &viewer.caller,
            &format!("POST /privacy/erasures/{erasure_id}/{step}"),
            &json,
        )?;
        let (name, cmd, zh, en) = match step.as_str() {
            "approve" => {
                let _: crate::dto::Empty = parse_body(&json)?;
                (
                    "approve_erasure",
                    ErasureCommand::Approve,
                    "已批准：此人的个人信息已删除。",
                    "Approved: the person's personal data is erased.",
                )
            }
            "reject" => {
                let b: crate::routes::privacy::RejectErasure = parse_body(&json)?;
                (
                    "reject_erasure",
                    ErasureCommand::Reject { reason: b.reason },
                    "已驳回删除申请。",
                    "The erasure was rejected.",
                )
            }
            other => {
                return Err(Problem::not_found(
                    "request.unknown_command",
                    format!("no erasure step `{other}`; known: approve, reject"),
                    format!("没有删除审批步骤 `{other}`"),
                ));
            }
        };
        write::run(
            &state,
            &viewer.caller,
            id,
            name,
            funnel_engine::Command::Erasure { erasure_id, cmd },
        )
        .await?;
        Ok(viewer.tr.t(zh, en).to_string())
    }
    .await;
    answer(&viewer, &headers, outcome)
}

fn parse_body<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, Problem> {
    crate::extract::from_json(json).map_err(crate::extract::json_problem)
}

async fn run_lead_command(
    state: &AppState,
    viewer: &Viewer,
    lead: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Problem> {
    let lead: LeadId = path_id("lead id", lead)?;
    let json = form_to_json(body, viewer.zone)?;
    run_lead_json(state, viewer, lead, name, headers, &json)
        .await
        .map(|_| ())
}

/// Runs the lead command `name` with this JSON body as the viewer, as
/// `POST /leads/{id}/commands/{name}` does.
pub(crate) async fn run_lead_json(
    state: &AppState,
    viewer: &Viewer,
    lead: LeadId,
    name: &str,
    headers: &HeaderMap,
    json: &serde_json::Value,
) -> Result<funnel_engine::Accepted, Problem> {
    let json = serde_json::to_vec(json).unwrap_or_default();
    let route = format!("POST /leads/{{id}}/commands/{name}\n{lead}");
    let id = write_id(headers, &viewer.caller, &route, &json)?;
    let cmd = crate::dto::lead_command_from_json(name, &json, id.command_id)
        .ok_or_else(|| {
            Problem::not_found(
                "request.no_such_command",
                format!("there is no lead command `{name}`"),
                format!("没有线索命令 `{name}`"),
            )
        })?
        .map_err(crate::extract::json_problem)?;
    write::run(
        state,
        &viewer.caller,
        id,
        name,
        funnel_engine::Command::Lead {
            lead_id: Some(lead),
            cmd,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_becomes_the_commands_json() {
        let zone = chrono_tz::Asia::Shanghai;
        let v = form_to_json(
            b"visited_at%3Alocal=2026-05-04T09%3A30&conflict_id=c1&winner=s1&grounds%5B%5D=registered_first&grounds%5B%5D=deeper_contact&note=&approve%3Abool=true&amount_cny%3Aint=30000",
            zone,
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "visited_at": "2026-05-04T01:30:00+00:00",
                "conflict_id": "c1",
                "winner": "s1",
                "grounds": ["registered_first", "deeper_contact"],
                "approve": true,
                "amount_cny": 30000,
            })
        );
        assert!(form_to_json(b"amount_cny%3Aint=lots", zone).is_err());
    }

    #[test]
    fn rows_nested_fields_and_amounts_in_wan() {
        let zone = chrono_tz::Asia::Shanghai;
        let form = serde_urlencoded::to_string([
            ("period.kind", "week"),
            ("period.monday", "2026-12-07"),
            ("visits[1].customer", "万科"),
            ("visits[0].date", "2026-12-08"),
            ("visits[0].customer", "龙湖"),
            ("visits[0].lead_id", ""),
            ("flags.reference_site:bool", "true"),
            ("amount_cny:wan", "123.45"),
            ("lines:json", "[]"),
            ("lines[]:json", r#"{"customer":"龙湖"}"#),
            ("lines[]:json", r#"{"customer":"万科"}"#),
        ])
        .unwrap();
        let v = form_to_json(form.as_bytes(), zone).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "period": {"kind": "week", "monday": "2026-12-07"},
                "visits": [{"date": "2026-12-08", "customer": "龙湖"}, {"customer": "万科"}],
                "flags": {"reference_site": true},
                "amount_cny": 1_234_500,
                "lines": [{"customer": "龙湖"}, {"customer": "万科"}],
            })
        );
        for bad in ["a[x]=1", "a..b=1", "a[1000]=1", "a]=1", ".a=1"] {
            assert!(form_to_json(bad.as_bytes(), zone).is_err(), "{bad}");
        }
    }

    #[test]
    fn wan_becomes_yuan() {
        assert_eq!(wan_to_yuan("300"), Some(3_000_000));
        assert_eq!(wan_to_yuan(" 0.5 "), Some(5_000));
        assert_eq!(wan_to_yuan("1.2345"), Some(12_345));
        assert_eq!(wan_to_yuan(".5"), Some(5_000));
        for bad in ["", ".", "1.23456", "-1", "1e3", "１"] {
            assert_eq!(wan_to_yuan(bad), None, "{bad}");
        }
    }

    #[test]
    fn missing_items_are_named_in_the_pages_language() {
        let zh = Tr {
            lang: super::super::Lang::Zh,
        };
        let en = Tr {
            lang: super::super::Lang::En,
        };
        let missing = vec!["product_demo".to_string(), "other_thing".to_string()];
        assert_eq!(missing_labels(zh, &missing), ["产品演示", "other thing"]);
        assert_eq!(
            missing_labels(en, &missing),
            ["product demo", "other thing"]
        );
    }
}
