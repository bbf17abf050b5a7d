//! `GET /console/inbox`: the open tasks of the signed-in person, each with what it is about
//! (customer, the people involved, the reassignment, declaration, contract version or summary, the
//! due time) and a form for each command that completes it, from the task details of the
//! application layer; `POST /console/leads/{id}/commands/{name}` runs a lead command from a form and
//! shows the result or the refusal (message and missing items) at once.

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
use funnel_app::query::record::PersonRef;
use funnel_app::query::task_detail::{InputKind, TaskCommand, TaskView};
use funnel_app::query::work::{self, TasksQuery};
use funnel_types::LeadId;

/// A choice of a form's select.
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// A field the person fills in.
pub struct InputView {
    /// The form field's name (with the `[]`, `:bool`, `:int` or `:json` that says its type).
    pub name: String,
    pub label: String,
    /// `text`, `bool`, `choice`, `choices`, `number` or `json`.
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
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    shell: Shell,
    name: String,
    tasks: Vec<TaskCard>,
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
    let tasks = list.tasks.iter().map(|t| card(tr, t, now)).collect();
    html(
        InboxPage {
            shell,
            name: list.name,
            tasks,
        }
        .render(),
    )
}

fn person(p: &PersonRef) -> String {
    p.name.clone()
}

/// A task as the inbox shows it.
fn card(tr: Tr, t: &TaskView, now: chrono::DateTime<chrono::Utc>) -> TaskCard {
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
    for p in &a.people {
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
        let mut v = format!(
            "{} {} · {}",
            tr.t("第", "version"),
            c.version.version,
            c.version.amount_zh
        );
        if let Some(prev) = &c.previous {
            v.push_str(&format!(
                "（{} {} · {}{}）",
                tr.t("上一版", "previous"),
                prev.version,
                prev.amount_zh,
                if c.version.reason.is_empty() {
                    String::new()
                } else {
                    format!(" · {}", c.version.reason)
                }
            ));
        }
        line("合同", "Contract", v);
        if let Some(seat) = &c.seat {
            line("评审席位", "Seat", seat.clone());
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
    for c in &t.commands {
        match form_of(tr, c) {
            Some(f) => forms.push(f),
            None => elsewhere.push(tr.t(&c.label_zh, &c.label_en).to_string()),
        }
    }
    TaskCard {
        id: t.task.task_id.to_string(),
        title: tr.t(&t.task.title_zh, &t.task.title_en).to_string(),
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
    }
}

/// The form of a command the console runs (the lead commands), with the fixed fields hidden.
fn form_of(tr: Tr, c: &TaskCommand) -> Option<FormView> {
    let rest = c.path.strip_prefix("/leads/")?;
    let (lead, name) = rest.split_once("/commands/")?;
    if c.method != "POST" || name.contains('/') {
        return None;
    }
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
                InputKind::SummaryLines | InputKind::StagnationDecision => {
                    (format!("{}:json", i.name), "json")
                }
            };
            InputView {
                name,
                label: tr.t(&i.label_zh, &i.label_en).to_string(),
                kind,
                required: i.required,
                choices: i
                    .choices
                    .iter()
                    .map(|c| Choice {
                        value: c.value.clone(),
                        label: tr.t(&c.label_zh, &c.label_en).to_string(),
                    })
                    .collect(),
            }
        })
        .collect();
    Some(FormView {
        action: format!("/console/leads/{lead}/commands/{name}"),
        label: tr.t(&c.label_zh, &c.label_en).to_string(),
        hidden,
        inputs,
    })
}

/// A form's fields as the JSON body of the command: `name[]` collects a list, `name:bool` is a
/// boolean (`true`/`on` or anything else), `name:int` a whole number, `name:local` a
/// `datetime-local` value on the clock of `zone` (written as RFC 3339), `name:json` a JSON value,
/// `outer.inner` a text field of an object; other fields are text.
/// Empty text fields are left out (so a command's defaults apply).
pub fn form_to_json(body: &[u8], zone: chrono_tz::Tz) -> Result<serde_json::Value, Problem> {
    use serde_json::{Map, Value};
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| Problem::bad_request("form", e.to_string()))?;
    let mut out = Map::new();
    for (key, value) in pairs {
        if let Some(name) = key.strip_suffix("[]") {
            let list = out
                .entry(name.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(Value::String(value));
            }
        } else if let Some(name) = key.strip_suffix(":bool") {
            out.insert(
                name.to_string(),
                Value::Bool(matches!(value.as_str(), "true" | "on")),
            );
        } else if let Some(name) = key.strip_suffix(":int") {
            let n: u64 = value.trim().parse().map_err(|_| {
                Problem::bad_request(name, format!("`{value}` is not a whole number"))
            })?;
            out.insert(name.to_string(), Value::from(n));
        } else if let Some(name) = key.strip_suffix(":json") {
            let v: Value = serde_json::from_str(&value)
                .map_err(|e| Problem::bad_request(name, format!("not JSON: {e}")))?;
            out.insert(name.to_string(), v);
        } else if let Some(name) = key.strip_suffix(":local") {
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
            out.insert(name.to_string(), Value::String(at.to_utc().to_rfc3339()));
        } else if let Some((outer, inner)) = key.split_once('.') {
            let nested = out
                .entry(outer.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(fields) = nested {
                fields.insert(inner.to_string(), Value::String(value));
            }
        } else if !value.trim().is_empty() {
            out.insert(key, Value::String(value));
        }
    }
    Ok(Value::Object(out))
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
    let tr = viewer.tr;
    let outcome = run_lead_command(&state, &viewer, &lead, &name, &headers, &body).await;
    let (accepted, message, missing, code, status) = match &outcome {
        Ok(()) => (
            true,
            tr.t("已提交，已记录。", "Done: recorded.").to_string(),
            Vec::new(),
            String::new(),
            axum::http::StatusCode::OK,
        ),
        Err(p) => (
            false,
            tr.t(&p.message_zh, &p.message_en).to_string(),
            p.missing.clone(),
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
    let shell = Shell::new(tr, tr.t("结果", "Result"), "/console/inbox", Some(&viewer));
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
            p.missing.clone(),
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

async fn run_lead_command(
    state: &AppState,
    viewer: &Viewer,
    lead: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Problem> {
    let lead: LeadId = path_id("lead id", lead)?;
    let json = serde_json::to_vec(&form_to_json(body, viewer.zone)?).unwrap_or_default();
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
    .map(|_| ())
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
}
