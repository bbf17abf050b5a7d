//! `GET /inbox`: the open tasks of the signed-in person, each with what it is about (customer,
//! the people involved, due time) and, where the read models name what the command needs, a form
//! that runs it; `POST /console/leads/{id}/commands/{name}` runs a lead command from a form and
//! shows the result or the refusal (message and missing items) at once.

use super::{Shell, Tr, Viewer, html, local_time};
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
use funnel_app::query::work::{self, TasksQuery};
use funnel_projections::models::{Conflicts, Pipeline, ReassignmentOutcome};
use funnel_types::{LeadId, StaffId};

/// A choice of a form's select.
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// What a task's form needs.
pub enum TaskForm {
    /// Decide an ownership conflict: the claimants to choose from.
    Conflict {
        conflict_id: String,
        claimants: Vec<Choice>,
    },
    /// Approve or deny a reassignment of the lead's owner.
    Reassignment {
        reassignment_id: String,
        from: String,
        to: String,
        requested_by: String,
        evidence: String,
        requested_at: String,
    },
    /// The task is done on the lead's record.
    OnRecord,
}

pub struct TaskView {
    pub id: String,
    pub title: String,
    pub lead_href: Option<String>,
    pub action: Option<String>,
    pub customer: Option<String>,
    pub owner: Option<String>,
    pub assignee: String,
    pub opened: String,
    pub due: Option<String>,
    pub overdue: bool,
    pub form: TaskForm,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    shell: Shell,
    name: String,
    tasks: Vec<TaskView>,
}

fn name_of(names: &std::collections::BTreeMap<StaffId, String>, s: &StaffId) -> String {
    names.get(s).cloned().unwrap_or_else(|| s.to_string())
}

/// `GET /inbox`: the viewer's open tasks, oldest first.
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
    let leads: Vec<Option<LeadId>> = list.tasks.iter().map(|t| t.lead_id).collect();
    // What the tasks are about, from the read models the API's reports read.
    let about = state
        .reads()
        .with_model(|p: &Pipeline, _| {
            leads
                .iter()
                .map(|l| {
                    l.and_then(|l| p.leads.get(&l)).map(|row| {
                        (
                            row.customer.clone(),
                            row.owner.map(|o| name_of(&p.staff_names, &o)),
                        )
                    })
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
    let forms = state
        .reads()
        .with_model(|c: &Conflicts, _| {
            list.tasks
                .iter()
                .map(|t| task_form(tr, viewer.zone, c, &t.name, t.lead_id))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
    let now = state.engine().clock_now();
    let tasks = list
        .tasks
        .iter()
        .zip(forms)
        .enumerate()
        .map(|(i, (t, form))| {
            let (customer, owner) = about.get(i).cloned().flatten().unzip();
            let assignee = match (t.assignee.staff, t.assignee.office) {
                (Some(s), _) => name_of(&list.assignees.staff, &s),
                (None, office) => {
                    let office = office
                        .and_then(|o| list.assignees.offices.get(&o).cloned())
                        .unwrap_or_else(|| tr.t("总部", "headquarters").to_string());
                    format!("{} · {}", tr.role(t.assignee.role), office)
                }
            };
            TaskView {
                id: t.task_id.to_string(),
                title: tr.t(&t.title_zh, &t.title_en).to_string(),
                lead_href: t.lead_id.map(|l| format!("/console/leads/{l}")),
                action: t.lead_id.map(|l| format!("/console/leads/{l}/commands")),
                customer,
                owner: owner.flatten(),
                assignee,
                opened: local_time(t.opened_at, viewer.zone),
                due: t.due_at.map(|d| local_time(d, viewer.zone)),
                overdue: t.due_at.is_some_and(|d| d < now),
                form,
            }
        })
        .collect();
    html(
        InboxPage {
            shell,
            name: list.name,
            tasks,
        }
        .render(),
    )
}

/// The form of a task from the conflicts read model: the open conflict or the pending
/// reassignment of the task's lead.
fn task_form(
    tr: Tr,
    zone: chrono_tz::Tz,
    c: &Conflicts,
    name: &str,
    lead: Option<LeadId>,
) -> TaskForm {
    let Some(lead) = lead else {
        return TaskForm::OnRecord;
    };
    match name {
        "decide_conflict" | "decide_conflict_escalated" => c
            .conflicts
            .iter()
            .find(|(_, case)| case.lead_id == lead && case.decision.is_none())
            .map(|(id, case)| TaskForm::Conflict {
                conflict_id: id.to_string(),
                claimants: case
                    .claimants
                    .iter()
                    .map(|s| Choice {
                        value: s.to_string(),
                        label: name_of(&c.staff_names, s),
                    })
                    .collect(),
            })
            .unwrap_or(TaskForm::OnRecord),
        "approve_as_sales_department" | "approve_as_owner" => c
            .reassignments
            .iter()
            .find(|(_, r)| r.lead_id == lead && matches!(r.outcome, ReassignmentOutcome::Pending))
            .map(|(id, r)| TaskForm::Reassignment {
                reassignment_id: id.to_string(),
                from: name_of(&c.staff_names, &r.from),
                to: name_of(&c.staff_names, &r.to),
                requested_by: name_of(&c.staff_names, &r.requested_by),
                evidence: if r.evidence.is_empty() {
                    tr.t("（未填写）", "(none given)").to_string()
                } else {
                    r.evidence.clone()
                },
                requested_at: local_time(r.requested_at, zone),
            })
            .unwrap_or(TaskForm::OnRecord),
        _ => TaskForm::OnRecord,
    }
}

/// A form's fields as the JSON body of the command: `name[]` collects a list, `name:bool` is a
/// boolean (`true`/`on` or anything else), `name:int` a whole number, `name:local` a
/// `datetime-local` value on the clock of `zone` (written as RFC 3339); other fields are text.
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
