//! Commands: every write goes through `Engine::execute` with the caller as the acting member of
//! staff, so the domain deciders authorize it (role × office × ownership) and record refused touches
//! of another engineer's lead. A write answers with its stream, version and position; a retry with
//! the same `Idempotency-Key` (same caller, same request) answers with the original result, and the
//! same key with a different request is refused (`request.idempotency_key_reused`, 422).
//!
//! Each command is one declaration in [`writes`]: its method and path, operation id, summary,
//! metric name, body type and how the path and body become a [`Command`]. The router and the
//! OpenAPI document are both built from that table; the steps every write shares (extract, the
//! command id of [`write_id`], run, answer) are written once, in [`handle`].

use crate::AppState;
use crate::auth::Caller;
use crate::dto;
use crate::extract::{RawBody, WriteId, path_id, write_id};
use crate::problem::Problem;
use crate::routes::org;
use crate::routes::read::staff_named;
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use funnel_domain::org::StaffCommand;
use funnel_domain::plan::PlanCommand;
use funnel_domain::summary::SummaryCommand;
use funnel_engine::{Accepted, Command, CommandMeta, EngineError, Who};
use funnel_types::{CommandId, LeadId, PlanId, Position, StaffId, SummaryId, Version};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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

/// Every command of the API, one declaration each: the router adds their routes and the OpenAPI
/// document their operations from this table. Lead commands come from `dto`'s `lead_commands!`.
pub(crate) fn writes() -> Vec<WriteRoute> {
    let mut all = vec![
        Write::post(
            "/leads",
            "register_lead",
            "register",
            "Register a lead (报备)",
        )
        .to(|(): (), b: dto::RegisterLead, id| Command::Lead {
            lead_id: None,
            cmd: b.into_command(id),
        }),
    ];
    dto::lead_command_writes(&mut all);
    all.extend([
        Write::post(
            "/plans",
            "submit_plan",
            "submit_plan",
            "Submit or revise the caller's visit plan",
        )
        .to(|(): (), b: dto::SubmitPlan, _| Command::Plan {
            plan_id: None,
            cmd: b.into_command(),
        }),
        Write::post(
            "/plans/overdue",
            "mark_plan_overdue",
            "mark_plan_overdue",
            "A plan's deadline passed with nothing submitted",
        )
        .to(|(): (), b: dto::MarkPlanOverdue, _| Command::Plan {
            plan_id: None,
            cmd: b.into_command(),
        }),
        Write::post(
            "/plans/{id}/file",
            "file_plan",
            "file_plan",
            "File a plan with the sales department",
        )
        .to(|PlanPath(plan), _: dto::Empty, _| Command::Plan {
            plan_id: Some(plan),
            cmd: PlanCommand::File,
        }),
        Write::post(
            "/summaries",
            "compile_summary",
            "compile_summary",
            "Compile an office summary",
        )
        .to(|(): (), b: dto::CompileSummary, _| Command::Summary {
            summary_id: None,
            cmd: b.into_command(),
        }),
        Write::post(
            "/summaries/{id}/verify",
            "verify_summary",
            "verify_summary",
            "Summary step `verify`",
        )
        .to(|SummaryPath(summary), b: dto::VerifySummary, _| Command::Summary {
            summary_id: Some(summary),
            cmd: SummaryCommand::Verify { note: b.note },
        }),
        Write::post(
            "/summaries/{id}/review",
            "review_summary",
            "review_summary",
            "Summary step `review`",
        )
        .to(|SummaryPath(summary), b: dto::ReviewSummary, _| Command::Summary {
            summary_id: Some(summary),
            cmd: SummaryCommand::Review {
                approve: b.approve,
                note: b.note,
            },
        }),
        Write::post(
            "/summaries/{id}/file",
            "file_summary",
            "file_summary",
            "Summary step `file`",
        )
        .to(|SummaryPath(summary), _: dto::Empty, _| Command::Summary {
            summary_id: Some(summary),
            cmd: SummaryCommand::File,
        }),
        Write::post(
            "/offices",
            "open_office",
            "open_office",
            "Open an office (sales department, executives); its id is derived from the code",
        )
        .created()
        .settled()
        .resolve(org::open_office),
        Write::post(
            "/staff",
            "add_staff",
            "add_staff",
            "A member of staff joins (sales department, executives)",
        )
        .created()
        .settled()
        .resolve(org::add_staff),
        Write::post(
            "/staff/{id}/reassign",
            "reassign_staff",
            "reassign_staff",
            "A new role and office in one step (e.g. from an office to headquarters)",
        )
        .settled()
        .resolve(org::reassign_staff),
        Write::post(
            "/staff/{id}/leave",
            "staff_leave",
            "staff_leave",
            "A member of staff leaves; their tokens stop working",
        )
        .settled()
        .to(|StaffPath(staff_id), b: org::LeaveStaff, _| Command::Staff {
            staff_id,
            cmd: StaffCommand::Leave { reason: b.reason },
        }),
        Write::post(
            "/staff/{id}/phone",
            "set_staff_phone",
            "set_staff_phone",
            "Record or remove a member of staff's mobile number, which chat robots @-mention them by (the person themselves, sales department, executives)",
        )
        .settled()
        .to(|StaffPath(staff_id), b: org::SetPhone, _| Command::Staff {
            staff_id,
            cmd: StaffCommand::SetPhone { phone: b.phone },
        }),
        Write::post(
            "/staff/{id}/tokens",
            "issue_token",
            "issue_token",
            "Issue an API token to a member of staff (the token is answered once)",
        )
        .token()
        .settled()
        .resolve(org::issue_token),
        Write::delete(
            "/staff/{id}/tokens/{token_id}",
            "revoke_token",
            "revoke_token",
            "Revoke a token; it stops working at once",
        )
        .settled()
        .to(|StaffTokenPath(staff_id, token_id), _: dto::Empty, _| Command::Staff {
            staff_id,
            cmd: StaffCommand::RevokeToken { token_id },
        }),
        Write::post(
            "/calendar/{year}",
            "publish_calendar",
            "publish_calendar",
            "Publish or correct a year's working calendar (sales department, executives); deadlines in working days count with it",
        )
        .to(|YearPath(year), b: org::PublishCalendar, _| Command::Calendar {
            cmd: funnel_domain::work_calendar::CalendarCommand::Publish {
                year,
                holidays: b.holidays,
                workdays: b.workdays,
                note: b.note,
            },
        }),
        Write::post(
            "/privacy/erasures",
            "request_erasure",
            "request_erasure",
            "Ask for a person's personal data to be erased (sales department, executives); another of them approves it. Refused when personal fields are not sealed on this server",
        )
        .created()
        .resolve(crate::routes::privacy::request),
        Write::post(
            "/privacy/erasures/{id}/approve",
            "approve_erasure",
            "approve_erasure",
            "Approve an erasure (sales department, executives; not whoever asked): the person's key is destroyed and their personal fields read as erased everywhere from now on",
        )
        .to(|ErasurePath(erasure_id), _: dto::Empty, _| Command::Erasure {
            erasure_id,
            cmd: funnel_domain::erasure::ErasureCommand::Approve,
        }),
        Write::post(
            "/privacy/erasures/{id}/reject",
            "reject_erasure",
            "reject_erasure",
            "Reject an erasure, with the reasons (sales department, executives; not whoever asked)",
        )
        .to(
            |ErasurePath(erasure_id), b: crate::routes::privacy::RejectErasure, _| {
                Command::Erasure {
                    erasure_id,
                    cmd: funnel_domain::erasure::ErasureCommand::Reject { reason: b.reason },
                }
            },
        ),
    ]);
    all
}

/// The writes of the API that are not engine commands, by method and path: they run through the
/// saga runtime, the projection runner, the webhook subscriptions or the sign-in of a browser
/// session (whose commands the handlers build themselves), take no `Idempotency-Key`, and
/// are routed and documented by hand.
pub const NOT_COMMANDS: &[(&str, &str)] = &[
    ("POST", "/workflows/{id}/retry"),
    ("POST", "/projections/{name}/rebuild"),
    ("POST", "/webhooks"),
    ("DELETE", "/webhooks/{id}"),
    ("POST", "/webhooks/{id}/pause"),
    ("POST", "/webhooks/{id}/resume"),
    ("POST", "/webhooks/{id}/replay"),
    ("POST", "/session"),
    ("DELETE", "/session"),
    ("POST", "/session/revoke-all"),
    ("POST", "/staff/{id}/invitation"),
    ("POST", "/staff/{id}/unlock"),
    ("POST", "/invitations/{token}"),
];

/// The declared writes by method, path and operation id.
pub fn declared() -> Vec<(&'static str, String, String)> {
    writes()
        .into_iter()
        .map(|w| {
            let method = if w.write.method == Method::DELETE {
                "DELETE"
            } else {
                "POST"
            };
            (method, w.write.path, w.write.operation_id)
        })
        .collect()
}

/// What a successful write answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// 200 with the [`WriteResult`].
    Written,
    /// 201 with the [`WriteResult`] (200 for a retry: nothing new was created).
    Created,
    /// 201 with the [`org::IssuedToken`], whose text is shown once: a retry is a conflict.
    Token,
}

/// What a write's path names and how the document describes it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param {
    /// A UUID under this name.
    Uuid(&'static str),
    /// `{id}`: a member of staff by id or name.
    Staff,
    /// `{year}`: a calendar year.
    Year,
}

/// The parsed path of a write.
pub(crate) trait Target: Sized + Send + 'static {
    /// Its parameters, in the order of the path.
    const PARAMS: &'static [Param];
    /// Parses (and resolves) the parameters of the matched path.
    fn parse(
        state: &AppState,
        params: &[(String, String)],
    ) -> impl Future<Output = Result<Self, Problem>> + Send;
    /// The canonical text of each parameter, in order: what the command id is derived from.
    fn canonical(&self) -> Vec<String>;
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

impl Target for () {
    const PARAMS: &'static [Param] = &[];
    async fn parse(_: &AppState, _: &[(String, String)]) -> Result<Self, Problem> {
        Ok(())
    }
    fn canonical(&self) -> Vec<String> {
        Vec::new()
    }
}

/// `{id}`: a lead.
pub(crate) struct LeadPath(pub LeadId);
/// `{id}`: a visit plan.
pub(crate) struct PlanPath(pub PlanId);
/// `{id}`: an office summary.
pub(crate) struct SummaryPath(pub SummaryId);
/// `{id}`: a member of staff, by id or name.
pub(crate) struct StaffPath(pub StaffId);
/// `{id}` and `{token_id}`: a member of staff and one of their tokens.
pub(crate) struct StaffTokenPath(pub StaffId, pub uuid::Uuid);
/// `{year}`.
pub(crate) struct YearPath(pub i32);
/// `{id}`: an erasure.
pub(crate) struct ErasurePath(pub uuid::Uuid);

macro_rules! uuid_target {
    ($($t:ident => $what:literal),*) => {$(
        impl Target for $t {
            const PARAMS: &'static [Param] = &[Param::Uuid("id")];
            async fn parse(_: &AppState, params: &[(String, String)]) -> Result<Self, Problem> {
                path_id($what, param(params, "id")).map($t)
            }
            fn canonical(&self) -> Vec<String> {
                vec![self.0.to_string()]
            }
        }
    )*};
}

uuid_target!(
    LeadPath => "lead id",
    PlanPath => "plan id",
    SummaryPath => "summary id",
    ErasurePath => "erasure id"
);

impl Target for StaffPath {
    const PARAMS: &'static [Param] = &[Param::Staff];
    async fn parse(state: &AppState, params: &[(String, String)]) -> Result<Self, Problem> {
        Ok(StaffPath(staff_named(state, param(params, "id")).await?.0))
    }
    fn canonical(&self) -> Vec<String> {
        vec![self.0.to_string()]
    }
}

impl Target for StaffTokenPath {
    const PARAMS: &'static [Param] = &[Param::Staff, Param::Uuid("token_id")];
    async fn parse(state: &AppState, params: &[(String, String)]) -> Result<Self, Problem> {
        let (staff, _) = staff_named(state, param(params, "id")).await?;
        let token = path_id("token id", param(params, "token_id"))?;
        Ok(StaffTokenPath(staff, token))
    }
    fn canonical(&self) -> Vec<String> {
        vec![self.0.to_string(), self.1.to_string()]
    }
}

impl Target for YearPath {
    const PARAMS: &'static [Param] = &[Param::Year];
    async fn parse(_: &AppState, params: &[(String, String)]) -> Result<Self, Problem> {
        org::year_param(param(params, "year")).map(YearPath)
    }
    fn canonical(&self) -> Vec<String> {
        vec![self.0.to_string()]
    }
}

/// A command ready to run, and the token text an [`Answer::Token`] write shows once.
pub(crate) struct Prepared {
    pub cmd: Command,
    pub token: Option<String>,
}

impl From<Command> for Prepared {
    fn from(cmd: Command) -> Self {
        Prepared { cmd, token: None }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type ToCommand<P, B> =
    dyn Fn(AppState, P, B, CommandId) -> BoxFuture<Result<Prepared, Problem>> + Send + Sync;

/// The declaration of one write, before its conversion to a command is given.
#[derive(Clone, Debug)]
pub(crate) struct Write {
    pub method: Method,
    /// The path as axum and the document spell it, e.g. `/leads/{id}/commands/assign`.
    pub path: String,
    pub operation_id: String,
    /// The `command` label of its metrics and logs.
    pub command: &'static str,
    pub summary: String,
    pub answer: Answer,
    /// Whether the answer waits until this server's read models hold the change (organisation
    /// changes: a revoked token already fails, a new role already counts).
    pub settle: bool,
}

/// A declared write with its handler and what the document needs of it.
pub(crate) struct WriteRoute {
    pub write: Write,
    pub params: &'static [Param],
    /// The schema of its JSON body (`None`: it takes none).
    pub body: Option<fn(&mut SchemaGenerator) -> Schema>,
    pub handler: MethodRouter<AppState>,
}

impl Write {
    pub fn post(
        path: impl Into<String>,
        operation_id: impl Into<String>,
        command: &'static str,
        summary: impl Into<String>,
    ) -> Self {
        Write {
            method: Method::POST,
            path: path.into(),
            operation_id: operation_id.into(),
            command,
            summary: summary.into(),
            answer: Answer::Written,
            settle: false,
        }
    }

    /// A `DELETE`: it takes no body.
    pub fn delete(
        path: &'static str,
        operation_id: &'static str,
        command: &'static str,
        summary: &'static str,
    ) -> Self {
        Write {
            method: Method::DELETE,
            ..Write::post(path, operation_id, command, summary)
        }
    }

    pub fn created(self) -> Self {
        Write {
            answer: Answer::Created,
            ..self
        }
    }

    pub fn token(self) -> Self {
        Write {
            answer: Answer::Token,
            ..self
        }
    }

    pub fn settled(self) -> Self {
        Write {
            settle: true,
            ..self
        }
    }

    /// The command, from the parsed path, the body and the command id.
    pub fn to<P, B>(self, f: fn(P, B, CommandId) -> Command) -> WriteRoute
    where
        P: Target,
        B: DeserializeOwned + JsonSchema + Send + 'static,
    {
        self.build::<P, B>(Arc::new(move |_, p, b, id| {
            let prepared = Prepared::from(f(p, b, id));
            Box::pin(async move { Ok(prepared) })
        }))
    }

    /// The command, resolved against this server's read models (offices, staff, codes).
    pub fn resolve<P, B, F>(self, f: fn(AppState, P, B, CommandId) -> F) -> WriteRoute
    where
        P: Target,
        B: DeserializeOwned + JsonSchema + Send + 'static,
        F: Future<Output = Result<Prepared, Problem>> + Send + 'static,
    {
        self.build::<P, B>(Arc::new(move |state, p, b, id| {
            Box::pin(f(state, p, b, id))
        }))
    }

    fn build<P, B>(self, to: Arc<ToCommand<P, B>>) -> WriteRoute
    where
        P: Target,
        B: DeserializeOwned + JsonSchema + Send + 'static,
    {
        let takes_body = self.method != Method::DELETE;
        let write = Arc::new(self.clone());
        let handler = move |State(state): State<AppState>, caller: Caller, req: Request| {
            let (write, to) = (write.clone(), to.clone());
            async move {
                handle::<P, B>(&write, to.as_ref(), state, caller, req)
                    .await
                    .unwrap_or_else(IntoResponse::into_response)
            }
        };
        let handler = axum::routing::on(
            axum::routing::MethodFilter::try_from(self.method.clone())
                .unwrap_or(axum::routing::MethodFilter::POST),
            handler,
        );
        WriteRoute {
            params: P::PARAMS,
            body: takes_body.then_some(|g: &mut SchemaGenerator| g.subschema_for::<B>()),
            handler,
            write: self,
        }
    }
}

/// The steps every write shares: the path (parsed and resolved), the command id from the
/// `Idempotency-Key`, the body, the command, the run, and the answer.
async fn handle<P: Target, B: DeserializeOwned>(
    write: &Write,
    to: &ToCommand<P, B>,
    state: AppState,
    caller: Caller,
    req: Request,
) -> Result<Response, Response> {
    let (mut parts, body) = req.into_parts();
    let params = if P::PARAMS.is_empty() {
        Vec::new()
    } else {
        Path::<Vec<(String, String)>>::from_request_parts(&mut parts, &state)
            .await
            .map_err(IntoResponse::into_response)?
            .0
    };
    let target = P::parse(&state, &params).await.map_err(reply)?;
    let mut canonical = target.canonical().into_iter();
    let route = write
        .path
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                canonical.next().unwrap_or_default()
            } else {
                segment.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let route = format!("{} {route}", write.method);
    let headers = parts.headers.clone();
    let (id, b) = if write.method == Method::DELETE {
        let id = write_id(&headers, &caller, &route, b"").map_err(reply)?;
        (id, RawBody(Default::default()).json::<B>().map_err(reply)?)
    } else {
        let raw = RawBody::from_request(Request::from_parts(parts, body), &state)
            .await
            .map_err(reply)?;
        let id = write_id(&headers, &caller, &route, &raw.0).map_err(reply)?;
        (id, raw.json::<B>().map_err(reply)?)
    };
    let prepared = to(state.clone(), target, b, id.command_id)
        .await
        .map_err(reply)?;
    answer(write, &state, &caller, id, prepared)
        .await
        .map_err(reply)
}

fn reply(p: Problem) -> Response {
    p.into_response()
}

async fn answer(
    write: &Write,
    state: &AppState,
    caller: &Caller,
    id: WriteId,
    prepared: Prepared,
) -> Result<Response, Problem> {
    let name = write.command;
    match write.answer {
        Answer::Written | Answer::Created => {
            let result = execute(state, caller, id, name, prepared.cmd).await?;
            if write.settle {
                settle(state, result.position).await;
            }
            let status = if write.answer == Answer::Created && !result.duplicate {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, result).into_response())
        }
        Answer::Token => {
            let Command::Staff {
                staff_id,
                cmd: StaffCommand::IssueToken { token_id, .. },
            } = &prepared.cmd
            else {
                return Err(Problem::internal(format!(
                    "{} answers a token but does not issue one",
                    write.operation_id
                )));
            };
            let (staff_id, token_id) = (*staff_id, *token_id);
            let token = prepared.token.unwrap_or_default();
            let accepted = run(state, caller, id, name, prepared.cmd).await?;
            if accepted.duplicate {
                // Only the token's hash was recorded: its text cannot be answered again.
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "request.already_applied",
                    format!(
                        "this Idempotency-Key already issued token {token_id}, whose text was shown once; issue another token (and revoke that one if it was lost)"
                    ),
                    format!(
                        "该 Idempotency-Key 已签发令牌 {token_id}（仅显示一次）；请重新签发，如已遗失请吊销原令牌"
                    ),
                ));
            }
            if write.settle {
                settle(state, accepted.last_position).await;
            }
            let body = org::IssuedToken {
                staff_id,
                token_id,
                token,
                position: accepted.last_position,
            };
            Ok((StatusCode::CREATED, Json(body)).into_response())
        }
    }
}

/// Waits (up to the read wait) until this server's read models hold a change to the organisation,
/// so that when the answer arrives a revoked token no longer signs in and a new role already
/// counts. The change is written either way; a timeout only means it takes effect a moment later.
async fn settle(state: &AppState, position: Position) {
    let wait = std::time::Duration::from_millis(state.options().http.read_wait_ms);
    if let Err(e) = funnel_projections::wait_until_shared(state.runner(), position, wait).await {
        tracing::warn!(%position, error = %e, "organisation change not yet in the read models");
    }
}

/// The names declared under `prefix` (e.g. `/summaries/{id}/`) that answer a write result: the
/// steps an unknown name is told about.
fn known(prefix: &str) -> String {
    writes()
        .iter()
        .filter(|w| w.write.method == Method::POST && w.write.answer == Answer::Written)
        .filter_map(|w| w.write.path.strip_prefix(prefix))
        .filter(|rest| !rest.contains('/'))
        .map(str::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `POST /leads/{id}/commands/{name}` for a name no command has.
pub async fn unknown_lead_command(
    caller: Caller,
    Path((lead, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: RawBody,
) -> Result<Response, Problem> {
    let lead: LeadId = path_id("lead id", &lead)?;
    write_id(
        &headers,
        &caller,
        &format!("POST /leads/{lead}/commands/{name}"),
        &body.0,
    )?;
    Err(Problem::not_found(
        "request.unknown_command",
        format!(
            "no lead command `{name}`; known: {}",
            known("/leads/{id}/commands/")
        ),
        format!("没有线索命令 `{name}`"),
    ))
}

/// `POST /summaries/{id}/{action}` for a step no command has.
pub async fn unknown_summary_step(
    caller: Caller,
    Path((summary, action)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: RawBody,
) -> Result<Response, Problem> {
    let summary: SummaryId = path_id("summary id", &summary)?;
    write_id(
        &headers,
        &caller,
        &format!("POST /summaries/{summary}/{action}"),
        &body.0,
    )?;
    Err(Problem::not_found(
        "request.unknown_command",
        format!(
            "no summary step `{action}`; known: {}",
            known("/summaries/{id}/")
        ),
        format!("没有汇总步骤 `{action}`"),
    ))
}

/// `POST /staff/{id}/{action}` for a change no command has.
pub async fn unknown_staff_change(
    State(state): State<AppState>,
    caller: Caller,
    Path((staff, action)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: RawBody,
) -> Result<Response, Problem> {
    let (staff_id, _) = staff_named(&state, &staff).await?;
    write_id(
        &headers,
        &caller,
        &format!("POST /staff/{staff_id}/{action}"),
        &body.0,
    )?;
    Err(Problem::not_found(
        "request.unknown_command",
        format!(
            "no staff change `{action}`; known: {}",
            known("/staff/{id}/")
        ),
        format!("没有员工变更 `{action}`"),
    ))
}
