//! Commands: every write goes through `Engine::execute` with the caller as the acting member of
//! staff, so the domain deciders authorize it (role × office × ownership) and record refused touches
//! of another engineer's lead. A write answers with its stream, version and position; a retry with
//! the same `Idempotency-Key` (same caller, same request) answers with the original result, and the
//! same key with a different request is refused (`request.idempotency_key_reused`, 422).

use crate::AppState;
use crate::auth::Caller;
use crate::dto;
use crate::extract::{RawBody, WriteId, json_problem, path_id, write_id};
use crate::problem::Problem;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use funnel_domain::plan::PlanCommand;
use funnel_domain::summary::SummaryCommand;
use funnel_engine::{Accepted, Command, CommandMeta, EngineError, Who};
use funnel_types::{CommandId, LeadId, PlanId, Position, SummaryId, Version};
use schemars::JsonSchema;
use serde::Serialize;
use std::time::Instant;

/// One event a write appended.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct WrittenEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: Version,
    pub position: Position,
    /// The event's payload.
    pub data: serde_json::Value,
}

/// What an accepted write answers.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct WriteResult {
    pub command_id: CommandId,
    /// The aggregate's stream, e.g. `lead-<uuid>`.
    pub stream: String,
    /// The aggregate's id (the part of the stream after the category).
    pub id: String,
    /// The stream's version after the write.
    pub version: Version,
    /// The log position of the last event written; pass it as `at_least` to read your write.
    pub position: Position,
    /// True when this command id had been applied before and nothing new was written.
    pub duplicate: bool,
    pub events: Vec<WrittenEvent>,
}

/// Runs one command as the caller and records its outcome in the metrics and the log.
pub(crate) async fn run(
    state: &AppState,
    caller: &Caller,
    write: WriteId,
    name: &str,
    cmd: Command,
) -> Result<Accepted, Problem> {
    let id = write.command_id;
    let mut meta = CommandMeta::new(Who::Staff(caller.staff_id)).with_id(id);
    let mut claimed = None;
    if let Some(key) = write.key {
        match state.keys().claim(key, id) {
            Err(earlier) => {
                tracing::info!(command = name, %id, %earlier, "Idempotency-Key reused for another request");
                return Err(Problem::key_reused());
            }
            Ok(crate::keys::Claim::New) => claimed = Some(key),
            Ok(crate::keys::Claim::Same) => {}
        }
        meta = meta.with_key(key);
    }
    let started = Instant::now();
    let result = state.engine().execute(meta, cmd).await;
    let seconds = started.elapsed().as_secs_f64();
    // A key stays taken once its request wrote something (accepted, or a refusal on record).
    if let Some(key) = claimed
        && !matches!(
            &result,
            Ok(_)
                | Err(EngineError::Refused {
                    recorded: Some(_),
                    ..
                })
        )
    {
        state.keys().release(key, id);
    }
    if let Err(EngineError::Refused {
        refusal,
        suppressed: true,
        ..
    }) = &result
    {
        state
            .metrics()
            .refusal_record_suppressed(refusal.code.as_str());
    }
    match result {
        Ok(accepted) => {
            let outcome = if accepted.duplicate {
                "duplicate"
            } else {
                "accepted"
            };
            state.metrics().command(name, outcome, seconds, None);
            tracing::info!(command = name, %id, stream = %accepted.stream,
                position = %accepted.last_position, duplicate = accepted.duplicate, "command accepted");
            Ok(accepted)
        }
        Err(e) => {
            let code = e.refusal().map(|r| r.code.as_str());
            let outcome = if code.is_some() { "refused" } else { "failed" };
            state.metrics().command(name, outcome, seconds, code);
            tracing::info!(command = name, %id, code = code.unwrap_or("-"), error = %e, "command not applied");
            Err(e.into())
        }
    }
}

/// Runs one command as the caller and answers with what it wrote.
pub(crate) async fn execute(
    state: &AppState,
    caller: &Caller,
    write: WriteId,
    name: &str,
    cmd: Command,
) -> Result<Json<WriteResult>, Problem> {
    let id = write.command_id;
    let accepted = run(state, caller, write, name, cmd).await?;
    let stream = accepted.stream.to_string();
    Ok(Json(WriteResult {
        command_id: id,
        id: stream
            .split_once('-')
            .map(|(_, i)| i)
            .unwrap_or("")
            .to_string(),
        stream,
        version: accepted.last_version,
        position: accepted.last_position,
        duplicate: accepted.duplicate,
        events: accepted
            .events
            .iter()
            .map(|e| WrittenEvent {
                event_type: e.meta.event_type.clone(),
                version: e.meta.version,
                position: e.meta.position,
                data: funnel_codec::payload_value(&e.payload),
            })
            .collect(),
    }))
}

/// `POST /leads`: register a lead.
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<WriteResult>, Problem> {
    let id = write_id(&headers, &caller, "POST /leads", &body.0)?;
    let cmd = body
        .json::<dto::RegisterLead>()?
        .into_command(id.command_id);
    let cmd = Command::Lead { lead_id: None, cmd };
    execute(&state, &caller, id, "register", cmd).await
}

/// `POST /leads/{id}/commands/{name}`: any other lead command.
pub async fn lead_command(
    State(state): State<AppState>,
    caller: Caller,
    Path((lead, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<WriteResult>, Problem> {
    let lead: LeadId = path_id("lead id", &lead)?;
    let id = write_id(
        &headers,
        &caller,
        &format!("POST /leads/{lead}/commands/{name}"),
        &body.0,
    )?;
    let bytes: &[u8] = if body.0.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body.0
    };
    let cmd = match dto::parse_lead_command(&name, bytes, id.command_id) {
        None => {
            return Err(Problem::not_found(
                "request.unknown_command",
                format!(
                    "no lead command `{name}`; known: {}",
                    dto::LEAD_COMMANDS.join(", ")
                ),
                format!("没有线索命令 `{name}`"),
            ));
        }
        Some(parsed) => parsed.map_err(json_problem)?,
    };
    let name = cmd.name();
    let cmd = Command::Lead {
        lead_id: Some(lead),
        cmd,
    };
    execute(&state, &caller, id, name, cmd).await
}

/// `POST /plans`: the caller submits (or revises) their visit plan.
pub async fn submit_plan(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<WriteResult>, Problem> {
    let id = write_id(&headers, &caller, "POST /plans", &body.0)?;
    let cmd = body.json::<dto::SubmitPlan>()?.into_command();
    let cmd = Command::Plan { plan_id: None, cmd };
    execute(&state, &caller, id, "submit_plan", cmd).await
}

/// `POST /plans/overdue`: record that a plan's deadline passed with nothing submitted.
pub async fn mark_plan_overdue(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<WriteResult>, Problem> {
    let id = write_id(&headers, &caller, "POST /plans/overdue", &body.0)?;
    let cmd = body.json::<dto::MarkPlanOverdue>()?.into_command();
    let cmd = Command::Plan { plan_id: None, cmd };
    execute(&state, &caller, id, "mark_plan_overdue", cmd).await
}

/// `POST /plans/{id}/file`: the assistant files a plan with the sales department.
pub async fn file_plan(
    State(state): State<AppState>,
    caller: Caller,
    Path(plan): Path<String>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<WriteResult>, Problem> {
    let plan: PlanId = path_id("plan id", &plan)?;
    let id = write_id(
        &headers,
        &caller,
        &format!("POST /plans/{plan}/file"),
        &body.0,
    )?;
    body.json::<dto::Empty>()?;
    let cmd = Command::Plan {
        plan_id: Some(plan),
        cmd: PlanCommand::File,
    };
    execute(&state, &caller, id, "file_plan", cmd).await
}

/// `POST /summaries`: the assistant compiles an office summary.
pub async fn compile_summary(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<WriteResult>, Problem> {
    let id = write_id(&headers, &caller, "POST /summaries", &body.0)?;
    let cmd = body.json::<dto::CompileSummary>()?.into_command();
    let cmd = Command::Summary {
        summary_id: None,
        cmd,
    };
    execute(&state, &caller, id, "compile_summary", cmd).await
}

/// `POST /summaries/{id}/{verify|review|file}`.
pub async fn summary_step(
    State(state): State<AppState>,
    caller: Caller,
    Path((summary, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<WriteResult>, Problem> {
    let summary: SummaryId = path_id("summary id", &summary)?;
    let id = write_id(
        &headers,
        &caller,
        &format!("POST /summaries/{summary}/{action}"),
        &body.0,
    )?;
    let (name, cmd) = match action.as_str() {
        "verify" => (
            "verify_summary",
            SummaryCommand::Verify {
                note: body.json::<dto::VerifySummary>()?.note,
            },
        ),
        "review" => {
            let r = body.json::<dto::ReviewSummary>()?;
            (
                "review_summary",
                SummaryCommand::Review {
                    approve: r.approve,
                    note: r.note,
                },
            )
        }
        "file" => {
            body.json::<dto::Empty>()?;
            ("file_summary", SummaryCommand::File)
        }
        other => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "request.unknown_command",
                format!("no summary step `{other}`; known: verify, review, file"),
                format!("没有汇总步骤 `{other}`"),
            ));
        }
    };
    let cmd = Command::Summary {
        summary_id: Some(summary),
        cmd,
    };
    execute(&state, &caller, id, name, cmd).await
}
