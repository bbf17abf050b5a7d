//! What each open task is about and the command that completes it, joined at query time: the lead's
//! record (folded from its own stream, once per lead of the page) for lead tasks, the saga
//! instance's own notes for summary tasks, and the access model for names.

use super::record::{
    ContractVersion, DeclarationView, KeyPersonBrief, LeadRecord, OfficeRef,
    PendingReassignmentView, PersonRef, SeatView, fold_record,
};
use crate::auth::Access;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use funnel_domain::Event;
use funnel_domain::events::WorkflowKind;
use funnel_domain::model::{Period, Stage};
use funnel_types::{ConflictId, ContractId, Envelope, LeadId, OfficeId, Role, SummaryId};
use funnel_workflows::{Instances, OpenTaskRow};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// An open task, what it is about and how to complete it.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TaskView {
    #[serde(flatten)]
    pub task: OpenTaskRow,
    /// The workflow the task belongs to.
    pub kind: Option<WorkflowKind>,
    /// `due_at` on the clock of the task's office.
    pub due_local: Option<String>,
    /// `opened_at` on the clock of the task's office.
    pub opened_local: String,
    pub about: TaskAbout,
    /// The commands that complete the task (a choice: approve or deny), with the ids they need.
    pub commands: Vec<TaskCommand>,
    /// When the task closes, in Chinese.
    pub closes_when_zh: String,
    pub closes_when_en: String,
}

/// The lead a task is about.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LeadBrief {
    pub lead_id: LeadId,
    pub customer: String,
    pub project: String,
    pub office: OfficeRef,
    pub owner: Option<PersonRef>,
    pub stage: Stage,
    pub stage_zh: String,
}

/// A person a task involves, and how.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TaskPerson {
    /// How they are involved: `claimant`, `from`, `to`, `requested_by`, `owner`, `declared_by`,
    /// `submitted_by`.
    pub part: String,
    pub part_zh: String,
    #[serde(flatten)]
    pub person: PersonRef,
}

/// The contract a review task is about: the current version, and what the previous said.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TaskContract {
    pub contract_id: ContractId,
    /// The current version (1 for the text as submitted).
    pub version: ContractVersion,
    /// The version before, when amended: what changed.
    pub previous: Option<ContractVersion>,
    /// The seat this task reviews as (review tasks).
    pub seat: Option<String>,
    pub seats: Vec<SeatView>,
}

/// The office summary a task is about.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TaskSummary {
    pub office: Option<OfficeRef>,
    /// The period's key: `2026-W48` or `2026-11`.
    pub period: String,
    /// The compiled summary, once there is one.
    pub summary_id: Option<SummaryId>,
    /// `compiled`, `verified` or `filed`; `null` before it is compiled.
    pub stage: Option<String>,
}

/// What a task is about.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
pub struct TaskAbout {
    pub lead: Option<LeadBrief>,
    /// The people involved, named.
    pub people: Vec<TaskPerson>,
    pub conflict_id: Option<ConflictId>,
    pub reassignment: Option<PendingReassignmentView>,
    /// The declaration to review or file.
    pub declaration: Option<DeclarationView>,
    pub contract: Option<TaskContract>,
    pub summary: Option<TaskSummary>,
    /// In-person visits without an insider (insider escalations).
    pub visits_without_insider: Option<u32>,
    /// The lead's key persons (for decisions that name one).
    pub key_persons: Vec<KeyPersonBrief>,
}

/// What kind of value a command input takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Text,
    Bool,
    /// One of `choices`.
    Choice,
    /// Any number of `choices` (a JSON array).
    Choices,
    /// Whole yuan.
    Amount,
    /// A member of staff's id.
    Staff,
    /// A SHA-256 hex digest of a text.
    Hash,
    /// Lines of an office summary (Table 3): `[{lead_id, engineer, customer}]`.
    SummaryLines,
}

/// One value of a choice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct InputChoice {
    pub value: String,
    pub label_zh: String,
    pub label_en: String,
}

/// A field of a command's body that the person fills in.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct CommandInput {
    /// The body field.
    pub name: String,
    pub kind: InputKind,
    pub required: bool,
    pub label_zh: String,
    pub label_en: String,
    /// The values to choose from (`choice`, `choices`).
    pub choices: Vec<InputChoice>,
}

/// A command that completes a task: send `method` to `path` with `body` (the ids, filled in) plus
/// the `inputs`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct TaskCommand {
    /// The operation id in the OpenAPI document, e.g. `lead_decide_conflict`.
    pub operation_id: String,
    pub label_zh: String,
    pub label_en: String,
    pub method: String,
    /// The path with its ids, e.g. `/leads/<id>/commands/decide_conflict`.
    pub path: String,
    /// The body's fields that are fixed by the task (ids, the seat, the content hash).
    pub body: Map<String, Value>,
    pub inputs: Vec<CommandInput>,
    /// Who runs it: `assignee` (the task's assignee), `lead_owner` (the engineer who owns the
    /// lead) or `office_manager` (the lead's office manager, for a conflict escalated to
    /// headquarters); the task closes when they do.
    pub run_by: String,
}

fn input(name: &str, kind: InputKind, required: bool, zh: &str, en: &str) -> CommandInput {
    CommandInput {
        name: name.into(),
        kind,
        required,
        label_zh: zh.into(),
        label_en: en.into(),
        choices: Vec::new(),
    }
}

fn choices(mut i: CommandInput, c: Vec<InputChoice>) -> CommandInput {
    i.choices = c;
    i
}

fn choice(value: impl Into<String>, zh: impl Into<String>, en: impl Into<String>) -> InputChoice {
    InputChoice {
        value: value.into(),
        label_zh: zh.into(),
        label_en: en.into(),
    }
}

fn lead_command(
    lead: LeadId,
    name: &str,
    zh: &str,
    en: &str,
    body: Value,
    inputs: Vec<CommandInput>,
) -> TaskCommand {
    TaskCommand {
        operation_id: format!("lead_{name}"),
        label_zh: zh.into(),
        label_en: en.into(),
        method: "POST".into(),
        path: format!("/leads/{lead}/commands/{name}"),
        body: object(body),
        inputs,
        run_by: "assignee".into(),
    }
}

/// The fields of a JSON object (`{}` for anything else).
fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn note_input() -> CommandInput {
    input("note", InputKind::Text, false, "说明", "Note")
}

fn person_part(part: &str, zh: &str, person: PersonRef) -> TaskPerson {
    TaskPerson {
        part: part.into(),
        part_zh: zh.into(),
        person,
    }
}

/// The period a summary key names (`2026-W48`, `2026-11`).
fn period_of(key: &str) -> Option<Period> {
    let (year, rest) = key.split_once('-')?;
    let year: i32 = year.parse().ok()?;
    match rest.strip_prefix('W') {
        Some(w) => chrono::NaiveDate::from_isoywd_opt(year, w.parse().ok()?, chrono::Weekday::Mon)
            .map(|monday| Period::Week { monday }),
        None => {
            let month: u32 = rest.parse().ok()?;
            (1..=12)
                .contains(&month)
                .then_some(Period::Month { year, month })
        }
    }
}

/// Everything the details of a page of tasks are joined from.
pub(crate) struct Sources<'a> {
    pub access: &'a Access,
    pub instances: &'a Instances,
    /// Each lead of the page's events, in stream order.
    pub leads: &'a BTreeMap<LeadId, Vec<Envelope<Event>>>,
}

impl Sources<'_> {
    fn zone(&self, office: Option<OfficeId>) -> Tz {
        funnel_domain::time::zone(
            office
                .and_then(|o| self.access.offices.get(&o))
                .map(|o| o.timezone.as_str()),
        )
    }

    /// Each task with what it is about and the command that completes it.
    pub fn details(&self, rows: Vec<OpenTaskRow>) -> Vec<TaskView> {
        let mut records: BTreeMap<LeadId, Option<LeadRecord>> = BTreeMap::new();
        rows.into_iter()
            .map(|task| {
                let record = task.lead_id.and_then(|l| {
                    records
                        .entry(l)
                        .or_insert_with(|| {
                            self.leads
                                .get(&l)
                                .and_then(|events| fold_record(self.access, l, events))
                        })
                        .clone()
                });
                self.view(task, record.as_ref())
            })
            .collect()
    }

    fn view(&self, task: OpenTaskRow, record: Option<&LeadRecord>) -> TaskView {
        let instance = self
            .instances
            .by_id
            .get(&task.workflow_id)
            .map(|r| &r.state);
        let kind = instance.and_then(|s| s.kind);
        let office = record
            .map(|r| r.office.id)
            .or(instance.and_then(|s| s.office))
            .or(task.assignee.office);
        let zone = self.zone(office);
        let local = |t: DateTime<Utc>| funnel_domain::time::local_minute(t, zone);
        let mut about = TaskAbout {
            lead: record.map(|r| LeadBrief {
                lead_id: r.lead_id,
                customer: r.fields.customer_name.clone(),
                project: r.fields.project_name.clone(),
                office: r.office.clone(),
                owner: r.owner.clone(),
                stage: r.stage,
                stage_zh: r.stage_zh.clone(),
            }),
            key_persons: record
                .map(|r| {
                    r.key_persons
                        .iter()
                        .map(|k| KeyPersonBrief {
                            key_person_id: k.key_person_id,
                            name: k.name.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            ..TaskAbout::default()
        };
        if let Some(owner) = record.and_then(|r| r.owner.clone()) {
            about.people.push(person_part("owner", "负责人", owner));
        }
        let (base, suffix) = match task.name.split_once(':') {
            Some((b, s)) => (b, Some(s)),
            None => (task.name.as_str(), None),
        };
        let mut commands = Vec::new();
        let (closes_zh, closes_en): (String, String);
        match (base, record) {
            ("decide_conflict" | "decide_conflict_escalated", Some(r)) => {
                if let Some(c) = &r.open_conflict {
                    about.conflict_id = Some(c.conflict_id);
                    for p in &c.claimants {
                        about
                            .people
                            .push(person_part("claimant", "争取方", p.clone()));
                    }
                    let winners = c
                        .claimants
                        .iter()
                        .map(|p| choice(p.staff_id.to_string(), p.name.clone(), p.name.clone()))
                        .collect();
                    let mut cmd = lead_command(
                        r.lead_id,
                        "decide_conflict",
                        "裁定归属",
                        "Decide the owner",
                        json!({ "conflict_id": c.conflict_id }),
                        vec![
                            choices(
                                input("winner", InputKind::Choice, true, "归属于", "Winner"),
                                winners,
                            ),
                            choices(
                                input("grounds", InputKind::Choices, true, "依据", "Grounds"),
                                vec![
                                    choice("deeper_contact", "接触更深入", "Deeper contact"),
                                    choice(
                                        "reached_decision_maker",
                                        "已接触关键决策人",
                                        "Reached the decision maker",
                                    ),
                                    choice("registered_first", "报备在先", "Registered first"),
                                ],
                            ),
                            note_input(),
                        ],
                    );
                    // Only the office manager decides (§5.2); headquarters, given the escalated
                    // task, sees it waiting on them.
                    if base == "decide_conflict_escalated" {
                        cmd.run_by = "office_manager".into();
                    }
                    commands.push(cmd);
                }
                (closes_zh, closes_en) = (
                    "经理裁定归属后关闭".into(),
                    "closes when the ownership is decided".into(),
                );
            }
            ("approve_as_sales_department" | "approve_as_owner", Some(r)) => {
                if let Some(x) = &r.pending_reassignment {
                    about
                        .people
                        .push(person_part("from", "原负责人", x.from.clone()));
                    about
                        .people
                        .push(person_part("to", "新负责人", x.to.clone()));
                    if let Some(by) = &x.requested_by {
                        about
                            .people
                            .push(person_part("requested_by", "申请人", by.clone()));
                    }
                    let id = json!({ "reassignment_id": x.reassignment_id });
                    commands.push(lead_command(
                        r.lead_id,
                        "approve_reassignment",
                        "同意变更",
                        "Approve",
                        id.clone(),
                        vec![note_input()],
                    ));
                    commands.push(lead_command(
                        r.lead_id,
                        "deny_reassignment",
                        "拒绝变更",
                        "Deny",
                        id,
                        vec![input("reason", InputKind::Text, true, "理由", "Reason")],
                    ));
                    about.reassignment = Some(x.clone());
                }
                (closes_zh, closes_en) = (
                    "同意、拒绝或申请到期后关闭".into(),
                    "closes when approved, denied or expired".into(),
                );
            }
            ("review_declaration" | "file_declaration", Some(r)) => {
                if let Some(d) = r.declarations.last() {
                    about
                        .people
                        .push(person_part("declared_by", "申报人", d.declared_by.clone()));
                    let id = json!({ "declaration_id": d.declaration_id });
                    if base == "review_declaration" {
                        commands.push(lead_command(
                            r.lead_id,
                            "review_declaration",
                            "审核申报",
                            "Review the declaration",
                            id,
                            vec![
                                input("approve", InputKind::Bool, true, "通过", "Approve"),
                                note_input(),
                            ],
                        ));
                    } else {
                        commands.push(lead_command(
                            r.lead_id,
                            "file_declaration",
                            "备案",
                            "File",
                            id,
                            Vec::new(),
                        ));
                    }
                    about.declaration = Some(d.clone());
                }
                (closes_zh, closes_en) = if base == "review_declaration" {
                    (
                        "审核通过或退回后关闭".into(),
                        "closes when approved or returned".into(),
                    )
                } else {
                    ("备案后关闭".into(), "closes when filed".into())
                };
            }
            ("review_contract" | "sign_contract" | "renegotiate_contract", Some(r)) => {
                if let Some(c) = r.contracts.last()
                    && let Some(current) = c.current()
                {
                    about.people.push(person_part(
                        "submitted_by",
                        "提交人",
                        c.submitted_by.clone(),
                    ));
                    let ids = json!({
                        "contract_id": c.contract_id,
                        "content_hash": current.content_hash,
                    });
                    match base {
                        "review_contract" => {
                            let seat = suffix.unwrap_or_default();
                            let mut body = ids;
                            body["seat"] = json!(seat);
                            commands.push(lead_command(
                                r.lead_id,
                                "review_contract",
                                "评审合同",
                                "Review the contract",
                                body,
                                vec![
                                    input("approve", InputKind::Bool, true, "通过", "Approve"),
                                    input(
                                        "reasons",
                                        InputKind::Text,
                                        false,
                                        "驳回理由",
                                        "Reasons (to reject)",
                                    ),
                                ],
                            ));
                        }
                        "sign_contract" => commands.push(lead_command(
                            r.lead_id,
                            "sign_contract",
                            "签订合同",
                            "Sign the contract",
                            ids,
                            Vec::new(),
                        )),
                        _ => commands.push(lead_command(
                            r.lead_id,
                            "amend_contract",
                            "修改合同",
                            "Amend the contract",
                            json!({ "contract_id": c.contract_id }),
                            vec![
                                input(
                                    "amount_cny",
                                    InputKind::Amount,
                                    true,
                                    "金额（元）",
                                    "Amount (CNY)",
                                ),
                                input(
                                    "content_hash",
                                    InputKind::Hash,
                                    true,
                                    "新合同文本的 SHA-256",
                                    "SHA-256 of the amended text",
                                ),
                                input("reason", InputKind::Text, true, "修改理由", "Reason"),
                            ],
                        )),
                    }
                    let n = c.versions.len();
                    about.contract = Some(TaskContract {
                        contract_id: c.contract_id,
                        version: current.clone(),
                        previous: (n > 1).then(|| c.versions[n - 2].clone()),
                        seat: (base == "review_contract")
                            .then(|| suffix.unwrap_or_default().into()),
                        seats: c.seats.clone(),
                    });
                }
                (closes_zh, closes_en) = match base {
                    "review_contract" => (
                        "该席位评审后关闭（合同修改后重新评审）".into(),
                        "closes when this seat reviews (amending reopens it)".into(),
                    ),
                    "sign_contract" => ("签订后关闭".into(), "closes when signed".into()),
                    _ => ("修改合同后关闭".into(), "closes when amended".into()),
                };
            }
            ("help_develop_insider", Some(r)) => {
                about.visits_without_insider = Some(r.visits_without_insider);
                let candidates = r
                    .key_persons
                    .iter()
                    .filter(|k| !k.insider)
                    .map(|k| {
                        choice(
                            k.key_person_id.to_string(),
                            format!("{}（{}）", k.name, k.role_zh),
                            format!("{} ({})", k.name, k.role),
                        )
                    })
                    .collect();
                let mut cmd = lead_command(
                    r.lead_id,
                    "mark_insider",
                    "记录内线",
                    "Record an insider",
                    json!({}),
                    vec![
                        choices(
                            input(
                                "key_person_id",
                                InputKind::Choice,
                                true,
                                "关键人物",
                                "Key person",
                            ),
                            candidates,
                        ),
                        note_input(),
                    ],
                );
                cmd.run_by = "lead_owner".into();
                commands.push(cmd);
                (closes_zh, closes_en) = (
                    "负责工程师发展出内线后关闭".into(),
                    "closes when the owner records an insider".into(),
                );
            }
            ("stagnation_review", Some(r)) => {
                // The office's other active engineers, by name, for a change of engineer.
                let owner = r.owner.as_ref().map(|o| o.staff_id);
                let engineers: Vec<InputChoice> = self
                    .access
                    .staff
                    .iter()
                    .filter(|(id, s)| {
                        s.active
                            && s.role == Role::SalesEngineer
                            && s.office == Some(r.office.id)
                            && Some(**id) != owner
                    })
                    .map(|(id, s)| choice(id.to_string(), s.name.clone(), s.name.clone()))
                    .collect();
                commands.push(lead_command(
                    r.lead_id,
                    "decide_stagnation_review",
                    "评审结论",
                    "Decide the review",
                    json!({}),
                    vec![
                        choices(
                            input("decision.kind", InputKind::Choice, true, "结论", "Decision"),
                            vec![
                                choice("change_key_person", "更换关键人", "Change the key person"),
                                choice("change_engineer", "更换工程师", "Change the engineer"),
                                choice("suspend", "中止跟进", "Suspend"),
                            ],
                        ),
                        choices(
                            input(
                                "decision.to",
                                InputKind::Staff,
                                false,
                                "新负责工程师（更换工程师时）",
                                "New engineer (when changing the engineer)",
                            ),
                            engineers,
                        ),
                        input(
                            "decision.evidence",
                            InputKind::Text,
                            false,
                            "更换工程师的依据（更换工程师时）",
                            "Grounds for the change (when changing the engineer)",
                        ),
                        note_input(),
                    ],
                ));
                (closes_zh, closes_en) = (
                    "经理作出结论后关闭".into(),
                    "closes when the manager decides".into(),
                );
            }
            ("compile_summary" | "review_summary" | "file_summary", _) => {
                let key = suffix.unwrap_or_default().to_string();
                let state = instance;
                let summary_id = state.and_then(|s| {
                    s.notes
                        .iter()
                        .filter(|(k, v)| k.starts_with("summary:") && **v == key)
                        .filter_map(|(k, _)| k["summary:".len()..].parse::<SummaryId>().ok())
                        .next_back()
                });
                let stage = state
                    .and_then(|s| s.note(&format!("stage:{key}")))
                    .map(String::from);
                let summary_office = state.and_then(|s| s.office);
                about.summary = Some(TaskSummary {
                    office: summary_office.map(|o| OfficeRef::of(self.access, o)),
                    period: key.clone(),
                    summary_id,
                    stage: stage.clone(),
                });
                let summary_cmd =
                    |action: &str, zh: &str, en: &str, id: SummaryId, inputs| TaskCommand {
                        operation_id: format!("{action}_summary"),
                        label_zh: zh.into(),
                        label_en: en.into(),
                        method: "POST".into(),
                        path: format!("/summaries/{id}/{action}"),
                        body: Map::new(),
                        inputs,
                        run_by: "assignee".into(),
                    };
                match (base, summary_id, stage.as_deref()) {
                    ("compile_summary", Some(id), Some("compiled")) => commands.push(summary_cmd(
                        "verify",
                        "核实汇总表",
                        "Verify the summary",
                        id,
                        vec![note_input()],
                    )),
                    ("compile_summary", _, _) => {
                        if let (Some(o), Some(period)) = (summary_office, period_of(&key)) {
                            commands.push(TaskCommand {
                                operation_id: "compile_summary".into(),
                                label_zh: "编制汇总表".into(),
                                label_en: "Compile the summary".into(),
                                method: "POST".into(),
                                path: "/summaries".into(),
                                body: object(json!({ "office": o, "period": period })),
                                inputs: vec![input(
                                    "lines",
                                    InputKind::SummaryLines,
                                    true,
                                    "汇总行",
                                    "Lines",
                                )],
                                run_by: "assignee".into(),
                            });
                        }
                    }
                    ("review_summary", Some(id), _) => commands.push(summary_cmd(
                        "review",
                        "审核汇总表",
                        "Review the summary",
                        id,
                        vec![
                            input("approve", InputKind::Bool, true, "通过", "Approve"),
                            note_input(),
                        ],
                    )),
                    ("file_summary", Some(id), _) => commands.push(summary_cmd(
                        "file",
                        "备案汇总表",
                        "File the summary",
                        id,
                        Vec::new(),
                    )),
                    _ => {}
                }
                (closes_zh, closes_en) = match base {
                    "compile_summary" => (
                        "汇总表编制并核实后关闭".into(),
                        "closes when the summary is compiled and verified".into(),
                    ),
                    "review_summary" => (
                        "审核通过或退回后关闭".into(),
                        "closes when approved or returned".into(),
                    ),
                    _ => ("备案后关闭".into(), "closes when filed".into()),
                };
            }
            ("approve_erasure", _) => {
                // The instance's subject is `erasure <id>`.
                let erasure = instance
                    .and_then(|s| s.subject.strip_prefix("erasure "))
                    .and_then(|id| id.parse::<uuid::Uuid>().ok());
                if let Some(id) = erasure {
                    let step = |action: &str, zh: &str, en: &str, inputs| TaskCommand {
                        operation_id: format!("{action}_erasure"),
                        label_zh: zh.into(),
                        label_en: en.into(),
                        method: "POST".into(),
                        path: format!("/privacy/erasures/{id}/{action}"),
                        body: Map::new(),
                        inputs,
                        run_by: "assignee".into(),
                    };
                    commands.push(step(
                        "approve",
                        "批准删除",
                        "Approve the erasure",
                        Vec::new(),
                    ));
                    commands.push(step(
                        "reject",
                        "驳回删除",
                        "Reject the erasure",
                        vec![input("reason", InputKind::Text, true, "理由", "Reason")],
                    ));
                }
                (closes_zh, closes_en) = (
                    "由申请人以外的另一人批准或驳回后关闭".into(),
                    "closes when someone else than who asked approves or rejects it".into(),
                );
            }
            _ => {
                (closes_zh, closes_en) = (
                    "流程推进后关闭".into(),
                    "closes as its workflow moves on".into(),
                );
            }
        }
        TaskView {
            kind,
            due_local: task.due_at.map(local),
            opened_local: local(task.opened_at),
            about,
            commands,
            closes_when_zh: closes_zh,
            closes_when_en: closes_en,
            task,
        }
    }
}
