//! The OpenAPI 3.1 document, assembled by hand from the JSON Schemas (draft 2020-12, which OpenAPI
//! 3.1 uses) that `schemars` derives from the request DTOs and responses. `utoipa` would need its
//! own derive on every domain type the DTOs reuse; these already derive `JsonSchema` for the event
//! contract. A copy lives in `schemas/openapi.json`; a test fails when the two drift.

use crate::dto;
use crate::problem::Problem;
use crate::routes::write::WriteResult;
/// The typed answers of the queries.
mod reads {
    pub use funnel_app::query::leads::LeadList;
    pub use funnel_app::query::log::{EventPage, ProjectionsReport};
    pub use funnel_app::query::org::Me;
    pub use funnel_app::query::reports::{
        ActorAudit, ConflictsReport, LeadAudit, PipelineReport, PlansReport,
    };
    pub use funnel_app::query::work::{TaskList, WorkflowDetail, WorkflowPage};
}
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

fn generator() -> SchemaGenerator {
    schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator()
}

fn problem_responses(g: &mut SchemaGenerator) -> Value {
    let problem = g.subschema_for::<Problem>();
    let body = json!({ "application/problem+json": { "schema": problem } });
    json!({
        "400": { "description": "Malformed request", "content": body },
        "401": { "description": "Missing, unknown or revoked token", "content": body },
        "403": { "description": "Not permitted (authority refusal codes)", "content": body },
        "404": { "description": "Not found", "content": body },
        "409": { "description": "Conflict or wrong state", "content": body },
        "413": { "description": "Request body too large", "content": body },
        "422": { "description": "Invalid body or validation refusal", "content": body },
        "503": { "description": "Temporarily unavailable; retry with the same Idempotency-Key", "content": body },
    })
}

/// What `Idempotency-Key` takes: 1 to 200 visible ASCII characters, spaces only inside.
fn idempotency_key_schema() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]([ -~]{0,198}[!-~])?$" })
}

/// Every declared command (`routes::write::writes`) as an operation: its path parameters, the
/// `Idempotency-Key`, its body and its answer.
fn write_paths(g: &mut SchemaGenerator, paths: &mut Map<String, Value>) {
    use crate::routes::write::{Answer, Param, writes};
    for w in writes() {
        let mut responses = problem_responses(g);
        let written = g.subschema_for::<WriteResult>();
        match w.write.answer {
            Answer::Written => {
                responses["200"] = json!({
                    "description": "Accepted (or, for a retried Idempotency-Key, accepted before)",
                    "content": { "application/json": { "schema": written } },
                });
            }
            Answer::Created => {
                let content = json!({ "application/json": { "schema": written } });
                responses["201"] = json!({ "description": "Created", "content": content });
                responses["200"] = json!({
                    "description": "Created before: a retry with the same Idempotency-Key",
                    "content": content,
                });
            }
            Answer::Token => {
                let issued = g.subschema_for::<crate::routes::org::IssuedToken>();
                responses["201"] = json!({
                    "description": "Issued: the token is in this answer only",
                    "content": { "application/json": { "schema": issued } },
                });
            }
        }
        let mut parameters: Vec<Value> = w
            .params
            .iter()
            .map(|p| match p {
                Param::Uuid(name) => path_param(name),
                Param::Staff => json!({ "name": "id", "in": "path", "required": true,
                    "description": "A member of staff: id or name (brackets, spacing and case as you like, or a unique beginning; a miss lists the closest names)", "schema": { "type": "string" } }),
                Param::Year => json!({ "name": "year", "in": "path", "required": true,
                    "schema": { "type": "integer", "minimum": 0, "maximum": 9999 } }),
            })
            .collect();
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "A retry key, the caller's alone: a UUID or any text. The same key with the same request (command, target and JSON body) from the same caller answers the original result (a creating command creates nothing new); with another request it is refused (422, request.idempotency_key_reused).",
            "schema": idempotency_key_schema(),
        }));
        let mut op = json!({
            "operationId": w.write.operation_id, "summary": w.write.summary,
            "parameters": parameters, "responses": responses,
        });
        if let Some(body) = w.body {
            op["requestBody"] = json!({ "required": true,
                "content": { "application/json": { "schema": body(g) } } });
        }
        let item = paths
            .entry(w.write.path.clone())
            .or_insert_with(|| json!({}));
        item[w.write.method.as_str().to_ascii_lowercase()] = op;
    }
}

/// `GET /leads` (the `POST` beside it is a command, from [`write_paths`]).
fn leads_path(
    g: &mut SchemaGenerator,
    paths: &mut Map<String, Value>,
    office: &Value,
    at_least: &Value,
) {
    use funnel_app::query::leads::{LeadSortKey, MAX_LIMIT, SortOrder};
    use funnel_domain::model::{Channel, PurchaseMode, Stage, Tier};
    let params = vec![
        query(
            "q",
            "Text in the customer, the project or a contact's name (full or half width, spacing, punctuation and look-alike letters do not count), or three or more digits of a contact's phone (a +86 prefix does not count)",
            json!({ "type": "string" }),
        ),
        office.clone(),
        query(
            "owner",
            "The owning engineer: id or exact name",
            json!({ "type": "string" }),
        ),
        query(
            "stage",
            "Only leads in this stage",
            g.subschema_for::<Stage>().to_value(),
        ),
        query(
            "tier",
            "Only prospects of this tier",
            g.subschema_for::<Tier>().to_value(),
        ),
        query(
            "channel",
            "Only leads from this channel",
            g.subschema_for::<Channel>().to_value(),
        ),
        query(
            "purchase_mode",
            "Only leads of this purchase mode",
            g.subschema_for::<PurchaseMode>().to_value(),
        ),
        query(
            "ageing",
            "true: only ageing leads (open and more than 30 days without a visit); false: only the others",
            json!({ "type": "boolean" }),
        ),
        query(
            "sort",
            "Sort key (default: registered)",
            g.subschema_for::<LeadSortKey>().to_value(),
        ),
        query(
            "order",
            "Sort order (default: desc)",
            g.subschema_for::<SortOrder>().to_value(),
        ),
        query(
            "limit",
            &format!("Leads per page, 1 to {MAX_LIMIT} (50 by default)"),
            json!({ "type": "integer", "minimum": 1, "maximum": MAX_LIMIT }),
        ),
        query(
            "offset",
            "Leads skipped before the page (the previous page's `next_offset`)",
            position(),
        ),
        query(
            "after",
            "The page after the previous page's `next_after` (a cursor of the same `sort` and `order`): stable while leads are registered or change; not with `offset`",
            json!({ "type": "string", "minLength": 1, "maxLength": 2000, "pattern": "^[A-Za-z0-9_-]+$" }),
        ),
        at_least.clone(),
    ];
    let op = read_op::<reads::LeadList>(
        g,
        "find_leads",
        "Find leads in the persisted lead index: search text, filters, sort, a page at a time (office roles: their office)",
        params,
    );
    paths.insert("/leads".into(), op);
}

/// A log position (or another `u64` counter) in a query.
fn position() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX })
}

/// Sets the range of every integer schema with a `format` (as `schemars` derives them from
/// `u32`, `i64` …) that says no `minimum` or `maximum` of its own: a format alone is only an
/// annotation, and a value beyond the Rust type does not parse.
fn explicit_ranges(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let range: Option<(i128, i128)> = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some((0, u8::MAX.into())),
                Some("uint16") => Some((0, u16::MAX.into())),
                Some("uint32") => Some((0, u32::MAX.into())),
                Some("uint64" | "uint") => Some((0, u64::MAX.into())),
                Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
                Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
                Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                Some("int64" | "int") => Some((i64::MIN.into(), i64::MAX.into())),
                _ => None,
            };
            if let Some((min, max)) = range {
                for (key, bound) in [("minimum", min), ("maximum", max)] {
                    if !map.contains_key(key) {
                        let n = u64::try_from(bound)
                            .map(Value::from)
                            .unwrap_or_else(|_| Value::from(bound as i64));
                        map.insert(key.into(), n);
                    }
                }
            }
            map.values_mut().for_each(explicit_ranges);
        }
        Value::Array(items) => items.iter_mut().for_each(explicit_ranges),
        _ => {}
    }
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string", "format": "uuid" } })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// A query parameter the server cannot answer without.
fn required(mut param: Value) -> Value {
    param["required"] = json!(true);
    param
}

/// The `after` and `limit` parameters of a paginated list; `next` in the answer is the `after` of
/// the following page (`null` on the last).
fn paging(after: &str, cursor: Value) -> [Value; 2] {
    [
        query(
            "after",
            &format!("{after} (the previous page's `next`)"),
            cursor,
        ),
        query(
            "limit",
            "Items per page, 1 to 1000 (100 by default)",
            json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
        ),
    ]
}

/// A `GET` answering `T` (a typed answer of `funnel_app::query`) as JSON.
fn read_op<T: JsonSchema>(
    g: &mut SchemaGenerator,
    id: &str,
    summary: &str,
    params: Vec<Value>,
) -> Value {
    let mut responses = problem_responses(g);
    responses["200"] = json!({
        "description": "The answer",
        "content": { "application/json": { "schema": g.subschema_for::<T>() } },
    });
    json!({ "get": { "operationId": id, "summary": summary, "parameters": params, "responses": responses } })
}

fn public_get(id: &str, summary: &str, schema: Value) -> Value {
    json!({ "get": { "operationId": id, "summary": summary, "security": [],
        "responses": { "200": { "description": "OK", "content": { "application/json": { "schema": schema } } } } } })
}

/// One operation: `method` with an optional JSON body, answering `status` with an optional schema.
#[allow(clippy::too_many_arguments)]
fn operation(
    g: &mut SchemaGenerator,
    id: &str,
    summary: &str,
    params: Vec<Value>,
    body: Option<Schema>,
    status: &str,
    answer: Option<Schema>,
) -> Value {
    let mut responses = problem_responses(g);
    responses[status] = match answer {
        Some(schema) => {
            json!({ "description": "OK", "content": { "application/json": { "schema": schema } } })
        }
        None => json!({ "description": "Done" }),
    };
    let mut op = json!({ "operationId": id, "summary": summary, "parameters": params, "responses": responses });
    if let Some(body) = body {
        op["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": body } } });
    }
    op
}

/// The webhook subscription endpoints.
fn webhook_paths(g: &mut SchemaGenerator, paths: &mut Map<String, Value>) {
    use crate::routes::webhooks::{CreateWebhook, CreatedWebhook, ReplayWebhook};
    use funnel_notify::webhooks::Subscription;
    let id = || vec![path_param("id")];
    let (create, created) = (schema::<CreateWebhook>(g), schema::<CreatedWebhook>(g));
    let list = schema::<funnel_app::query::webhooks::SubscriptionPage>(g);
    paths.insert("/webhooks".into(), json!({
        "post": operation(g, "create_webhook", "Subscribe a URL to events by office and kind (the secret is answered once)", vec![], Some(create), "201", Some(created)),
        "get": operation(g, "list_webhooks", "Webhook subscriptions the caller may see, by id, a page at a time", paging("Subscriptions after this id", json!({ "type": "string", "format": "uuid" })).to_vec(), None, "200", Some(list)),
    }));
    let sub = schema::<Subscription>(g);
    paths.insert("/webhooks/{id}".into(), json!({
        "get": operation(g, "get_webhook", "A subscription: cursor, delivered count, current failure", id(), None, "200", Some(sub.clone())),
        "delete": operation(g, "delete_webhook", "Remove a subscription and its delivery log", id(), None, "204", None),
    }));
    for (action, summary) in [
        ("pause", "Stop delivering; the cursor stays"),
        ("resume", "Deliver again from the cursor"),
    ] {
        let op = operation(
            g,
            &format!("{action}_webhook"),
            summary,
            id(),
            None,
            "200",
            Some(sub.clone()),
        );
        paths.insert(format!("/webhooks/{{id}}/{action}"), json!({ "post": op }));
    }
    let replay = schema::<ReplayWebhook>(g);
    let op = operation(
        g,
        "replay_webhook",
        "Deliver again every selected event after a position",
        id(),
        Some(replay),
        "200",
        Some(sub),
    );
    paths.insert("/webhooks/{id}/replay".into(), json!({ "post": op }));
    let page = schema::<funnel_app::query::webhooks::DeliveryPage>(g);
    let mut params = id();
    params.push(query(
        "before",
        "Attempts older than this `seq`",
        position(),
    ));
    params.push(query(
        "limit",
        "Attempts per page, 1 to 1000",
        json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
    ));
    let op = operation(
        g,
        "webhook_deliveries",
        "The delivery log, newest first",
        params,
        None,
        "200",
        Some(page),
    );
    paths.insert("/webhooks/{id}/deliveries".into(), json!({ "get": op }));
}

/// An operation whose body may be left out: an empty body reads as `{}` (the endpoints that take
/// no fields, e.g. a rebuild or a retry, are called with none).
fn body_optional(mut op: Value) -> Value {
    if let Some(body) = op.get_mut("requestBody") {
        body["required"] = json!(false);
    }
    op
}

/// The reads of offices, staff and the calendar (their writes are declared commands).
fn org_paths(g: &mut SchemaGenerator, paths: &mut Map<String, Value>, at_least: &Value) {
    use funnel_app::query::org::{CalendarYear, OfficeList, StaffPage};
    paths.insert("/offices".into(), json!({
        "get": read_op::<OfficeList>(g, "list_offices", "Every office with its code, time zone and active staff", vec![at_least.clone()])["get"].clone(),
    }));
    let office = query(
        "office",
        "One office, by id, code or name (office roles: only their own)",
        json!({ "type": "string" }),
    );
    paths.insert("/staff".into(), json!({
        "get": read_op::<StaffPage>(g, "list_staff", "Members of staff the caller may see (token ids for headquarters, auditors and oneself)", [vec![office, at_least.clone()], paging("Members of staff after this id", json!({ "type": "string", "format": "uuid" })).to_vec()].concat())["get"].clone(),
    }));
    let who = json!({ "name": "id", "in": "path", "required": true,
        "description": "A member of staff: id or exact name", "schema": { "type": "string" } });
    paths.insert("/staff/{id}".into(), json!({
        "get": read_op::<funnel_app::query::record::StaffRecord>(g, "staff_record", "A member of staff the caller may see (like /staff): role, office, managers, the leads they own, and for those who may read their work their open tasks and latest touches", vec![who, at_least.clone()])["get"].clone(),
    }));
    let year = json!({ "name": "year", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 0, "maximum": 9999 } });
    paths.insert("/calendar/{year}".into(), json!({
        "get": read_op::<CalendarYear>(g, "calendar", "A year's public holidays and make-up working days (none published: Monday to Friday)", vec![year])["get"].clone(),
    }));
}

/// Browser sign-in: `/session` and `/session/revoke-all`.
fn session_paths(g: &mut SchemaGenerator, paths: &mut Map<String, Value>) {
    use crate::routes::session::SignIn;
    use funnel_app::query::org::{SessionAnswer, SignedOut};
    let (sign_in, answer, out) = (
        schema::<SignIn>(g),
        schema::<SessionAnswer>(g),
        schema::<SignedOut>(g),
    );
    let mut post = operation(
        g,
        "sign_in",
        "Sign in: sets the session cookie `funnel_session` (HttpOnly, SameSite=Strict) and the CSRF cookie `funnel_csrf`",
        vec![],
        Some(sign_in),
        "201",
        Some(answer.clone()),
    );
    post["security"] = json!([]);
    let mut get = operation(
        g,
        "session",
        "Who the session cookie signs in, with the session's CSRF token",
        vec![],
        None,
        "200",
        Some(answer),
    );
    get["security"] = json!([{ "session": [] }]);
    let mut delete = operation(
        g,
        "sign_out",
        "Sign out of this session (needs X-CSRF-Token); clears the cookies",
        vec![],
        None,
        "200",
        Some(out.clone()),
    );
    delete["security"] = json!([{ "session": [] }]);
    paths.insert(
        "/session".into(),
        json!({ "post": post, "get": get, "delete": delete }),
    );
    let op = operation(
        g,
        "sign_out_everywhere",
        "Sign out of every session of the caller, in every browser",
        vec![],
        None,
        "200",
        Some(out),
    );
    paths.insert("/session/revoke-all".into(), json!({ "post": op }));
    use crate::routes::session::AcceptInvitation;
    use funnel_app::query::org::{InvitationAnswer, SignInChanged};
    let staff = || {
        vec![json!({ "name": "id", "in": "path", "required": true,
            "description": "A member of staff: id or exact name", "schema": { "type": "string" } })]
    };
    let (invitation, changed, accept) = (
        schema::<InvitationAnswer>(g),
        schema::<SignInChanged>(g),
        schema::<AcceptInvitation>(g),
    );
    let op = operation(
        g,
        "invite",
        "Invite a member of staff to set a password: a one-time link (the token is answered once) that expires (sales department, executives)",
        staff(),
        None,
        "201",
        Some(invitation),
    );
    paths.insert(
        "/staff/{id}/invitation".into(),
        json!({ "post": body_optional(op) }),
    );
    let op = operation(
        g,
        "unlock_sign_in",
        "Open a member of staff's locked password sign-in (sales department, executives)",
        staff(),
        None,
        "200",
        Some(changed.clone()),
    );
    paths.insert(
        "/staff/{id}/unlock".into(),
        json!({ "post": body_optional(op) }),
    );
    let mut op = operation(
        g,
        "accept_invitation",
        "Accept an invitation: set the password (Argon2id, kept apart from the log)",
        vec![json!({ "name": "token", "in": "path", "required": true,
            "description": "The invitation's token", "schema": { "type": "string" } })],
        Some(accept),
        "200",
        Some(changed),
    );
    op["security"] = json!([]);
    let page = json!({ "text/html": { "schema": { "type": "string" } } });
    let get = json!({
        "operationId": "invitation_page",
        "summary": "The page an invitation link opens: whom it invites, a form to set the password and, when an OpenID Connect provider is configured, the button that links the company account (HTML)",
        "security": [],
        "parameters": [{ "name": "token", "in": "path", "required": true,
            "description": "The invitation's token", "schema": { "type": "string" } }],
        "responses": {
            "200": { "description": "The page", "content": page },
            "404": { "description": "An unknown, used, replaced or expired invitation, said on a page", "content": page },
        },
    });
    paths.insert(
        "/invitations/{token}".into(),
        json!({ "post": op, "get": get }),
    );
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// The whole document.
pub fn document() -> Value {
    let mut g = generator();
    let mut paths = Map::new();
    let at_least = query(
        "at_least",
        "Wait until the read models reflect this log position (read-your-writes); a position beyond the log head is refused (`request.beyond_head`)",
        position(),
    );
    let office = query(
        "office",
        "Limit to one office, by id, code or name (office roles may name only their own)",
        json!({ "type": "string" }),
    );
    paths.insert(
        "/healthz".into(),
        public_get(
            "healthz",
            "The process is up",
            json!({ "type": "object", "required": ["status"], "additionalProperties": false,
                "properties": { "status": { "const": "ok" } } }),
        ),
    );
    paths.insert(
        "/readyz".into(),
        public_get(
            "readyz",
            "The store answers and the read models are caught up; which leases this process holds",
            json!({ "type": "object", "required": ["status", "head", "checkpoint", "lag", "leases"],
                "additionalProperties": false, "properties": {
                    "status": { "const": "ready" },
                    "head": { "type": "integer", "minimum": 0, "description": "The log head" },
                    "checkpoint": { "type": "integer", "minimum": 0, "description": "The position the read models reflect" },
                    "lag": { "type": "integer", "minimum": 0, "description": "Positions the read models are behind" },
                    "leases": {
                        "description": "JetStream: per lease (`sagas`), whether this process holds it, its term (the fencing token) when it does, and the holder when known; null on the embedded store, where one process runs everything",
                        "type": ["object", "null"],
                        "additionalProperties": {
                            "type": "object", "required": ["held", "term", "holder"],
                            "additionalProperties": false, "properties": {
                                "held": { "type": "boolean" },
                                "term": { "type": ["integer", "null"], "minimum": 0 },
                                "holder": { "type": ["string", "null"] } } } } } }),
        ),
    );
    // A token of a role that reads every office; without one only on `http.metrics_listen`.
    paths.insert(
        "/metrics".into(),
        json!({ "get": { "operationId": "metrics",
            "summary": "Prometheus metrics (executives, departments, auditors)",
            "responses": {
                "200": { "description": "OK", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } },
                "401": { "description": "No valid token" },
                "403": { "description": "The role does not read every office" } } } }),
    );
    paths.insert(
        "/openapi.json".into(),
        public_get(
            "openapi",
            "This document",
            json!({ "type": "object", "required": ["openapi", "info", "paths", "components"],
                "description": "An OpenAPI 3.1 document",
                "properties": { "openapi": { "type": "string" }, "info": { "type": "object" },
                    "paths": { "type": "object" }, "components": { "type": "object" } } }),
        ),
    );
    paths.insert(
        "/me".into(),
        read_op::<reads::Me>(&mut g, "me", "Who the token belongs to", vec![]),
    );
    let audit = read_op::<reads::LeadAudit>(
        &mut g,
        "lead_audit",
        "Who changed or tried to change a lead, in log order, a page at a time",
        [
            vec![path_param("id"), at_least.clone()],
            paging("Touches after this log position", position()).to_vec(),
        ]
        .concat(),
    );
    paths.insert("/leads/{id}/audit".into(), audit);
    let record_as_of = query(
        "as_of",
        "Show the lead as it stood then: a position, a date (YYYY-MM-DD: the end of that day in the lead's office's time zone) or an RFC 3339 time",
        json!({ "anyOf": [
            { "type": "string", "pattern": "^[0-9]{1,19}$" },
            { "type": "string", "format": "date" },
            { "type": "string", "format": "date-time" },
        ] }),
    );
    let record = read_op::<funnel_app::query::record::LeadRecord>(
        &mut g,
        "lead_record",
        "A lead's whole current record (Table 1, stage and checklist, key persons, visits, declarations, contracts, owner history) and its timeline of every event and refused attempt, named, on the office's clock (callers who may read the lead's office); with `as_of`, as it stood then",
        vec![path_param("id"), at_least.clone(), record_as_of],
    );
    paths.insert("/leads/{id}".into(), record);
    leads_path(&mut g, &mut paths, &office, &at_least);
    let as_of = query(
        "as_of",
        "A position, a date (YYYY-MM-DD: the end of that day in the office's time zone — the office asked for, else the caller's, else headquarters'; the answer's `time_zone` names it) or an RFC 3339 time",
        json!({ "anyOf": [
            { "type": "string", "pattern": "^[0-9]{1,19}$" },
            { "type": "string", "format": "date" },
            { "type": "string", "format": "date-time" },
        ] }),
    );
    let op = read_op::<reads::PipelineReport>(
        &mut g,
        "pipeline",
        "Pipeline and funnel per office",
        vec![office.clone(), as_of, at_least.clone()],
    );
    paths.insert("/pipeline".into(), op);
    let op = read_op::<reads::ConflictsReport>(
        &mut g,
        "audit_conflicts",
        "Ownership-conflict audit",
        vec![office.clone(), at_least.clone()],
    );
    paths.insert("/audit/conflicts".into(), op);
    let op = read_op::<reads::PlansReport>(
        &mut g,
        "audit_plans",
        "Visit-plan compliance",
        vec![office.clone(), at_least.clone()],
    );
    paths.insert("/audit/plans".into(), op);
    let staff = json!({ "name": "staff", "in": "path", "required": true,
        "description": "A member of staff: id or name (brackets, spacing and case as you like, or a unique beginning; a miss lists the closest names)", "schema": { "type": "string" } });
    let day =
        |name: &str, what: &str| query(name, what, json!({ "type": "string", "format": "date" }));
    let op = read_op::<reads::ActorAudit>(
        &mut g,
        "audit_actor",
        "Every lead a member of staff changed or tried to change (themselves; managers their office; headquarters and auditors everyone)",
        vec![
            staff,
            day("from", "First day, inclusive, in the time zone of the person's office (headquarters' for none; the answer's `time_zone` names it)"),
            day("to", "Last day, inclusive, in the same time zone"),
            at_least.clone(),
        ]
        .into_iter()
        .chain(paging("Touches after this log position", position()))
        .collect(),
    );
    paths.insert("/audit/actor/{staff}".into(), op);
    let op = read_op::<reads::TaskList>(
        &mut g,
        "tasks",
        "Open tasks a member of staff must act on, oldest first (default: the caller's)",
        vec![
            query(
                "staff",
                "Whose tasks: id or name, as for `staff` paths (managers: their office; headquarters and auditors: anyone)",
                json!({ "type": "string" }),
            ),
            at_least.clone(),
        ]
        .into_iter()
        .chain(paging(
            "Tasks after this opaque cursor",
            json!({ "type": "string" }),
        ))
        .collect(),
    );
    paths.insert("/tasks".into(), op);
    let kinds: Vec<&str> = funnel_domain::events::WorkflowKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let op = read_op::<reads::WorkflowPage>(
        &mut g,
        "list_workflows",
        "Saga instances in id order, a page at a time: kind, status, open tasks, pending timers, parked reactions",
        vec![
            office.clone(),
            query(
                "kind",
                "One kind of workflow",
                json!({ "type": "string", "enum": kinds }),
            ),
            query(
                "status",
                "`active`, `parked` (a reaction waits for a retry) or `completed`",
                json!({ "type": "string", "enum": ["active", "parked", "completed"] }),
            ),
            query(
                "after",
                "Instances after this id (the previous page's `next`)",
                json!({ "type": "string", "format": "uuid" }),
            ),
            query(
                "limit",
                "Instances per page, 1 to 1000",
                json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
            ),
            at_least.clone(),
        ],
    );
    paths.insert("/workflows".into(), op);
    let mut responses = problem_responses(&mut g);
    responses["200"] = json!({
        "description": "The form: a printable page, or a spreadsheet with a byte-order mark",
        "content": {
            "text/html": { "schema": { "type": "string" } },
            "text/csv": { "schema": { "type": "string" } },
        },
    });
    paths.insert(
        "/forms/{n}/{id}".into(),
        json!({ "get": {
            "operationId": "form",
            "summary": "One of the manual's standard forms built from the record: 1 customer info, 2 follow-ups, 5 key persons, 6 prospect declaration (of a lead), 3 office summary (of a summary), 4 visit plan (of a plan)",
            "parameters": [
                { "name": "n", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1, "maximum": 6 } },
                path_param("id"),
                query("format", "`html` (printable, the default) or `csv`", json!({ "type": "string", "enum": ["html", "csv"] })),
            ],
            "responses": responses,
        }}),
    );
    let mut responses = problem_responses(&mut g);
    responses["200"] = json!({
        "description": "The workbook: a sheet per form (1 to 6) with Chinese headers, every cell text",
        "content": {
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": { "schema": { "type": "string", "format": "binary" } },
        },
    });
    paths.insert(
        "/forms/office/{office}".into(),
        json!({ "get": {
            "operationId": "office_forms",
            "summary": "An office's forms for a period as one spreadsheet workbook: forms 1, 2, 5 and 6 of each lead, 3 of each summary and 4 of each plan with an event in the period (office roles: their office)",
            "parameters": [
                { "name": "office", "in": "path", "required": true, "description": "Office id, code or name", "schema": { "type": "string" } },
                required(query("from", "First day (YYYY-MM-DD, office time)", json!({ "type": "string", "format": "date" }))),
                required(query("to", "Last day, included (YYYY-MM-DD, office time)", json!({ "type": "string", "format": "date" }))),
            ],
            "responses": responses,
        }}),
    );
    let op = read_op::<reads::WorkflowDetail>(
        &mut g,
        "show_workflow",
        "One saga instance and its own events",
        vec![path_param("id"), at_least.clone()],
    );
    paths.insert("/workflows/{id}".into(), op);
    let empty = schema::<dto::Empty>(&mut g);
    let retried = schema::<funnel_app::query::work::RetryAnswer>(&mut g);
    let op = operation(
        &mut g,
        "retry_workflow",
        "Run an instance's parked reactions again in this server's saga runtime (sales department, executives)",
        vec![path_param("id")],
        Some(empty),
        "200",
        Some(retried),
    );
    paths.insert(
        "/workflows/{id}/retry".into(),
        json!({ "post": body_optional(op) }),
    );
    let events = vec![
        query(
            "after",
            "Events after this position (the previous page's `next`)",
            position(),
        ),
        query(
            "limit",
            "Events per page, 1 to 1000",
            json!({ "type": "integer", "minimum": 1, "maximum": 1000 }),
        ),
    ];
    let op = read_op::<reads::EventPage>(&mut g, "events", "The raw log, paginated", events);
    paths.insert("/events".into(), op);
    let mut responses = problem_responses(&mut g);
    responses["200"] = json!({
        "description": "A Parquet file, streamed as it is written: one row per event the caller may read, in log order, with typed columns for the envelope and the payload as JSON text (the layout of `funnel export events --format parquet`)",
        "content": {
            "application/vnd.apache.parquet": { "schema": { "type": "string", "format": "binary" } },
        },
    });
    paths.insert(
        "/export/events.parquet".into(),
        json!({ "get": {
            "operationId": "export_events_parquet",
            "summary": "The log as a Parquet file, with the caller's read scope (office roles: their office's events)",
            "parameters": [],
            "responses": responses,
        }}),
    );
    let op =
        read_op::<reads::ProjectionsReport>(&mut g, "projections", "Read-model status", vec![]);
    paths.insert("/projections".into(), op);
    let op = read_op::<funnel_app::chain::VerifyReport>(
        &mut g,
        "verify",
        "Walk the log, its hash chain and the signed checkpoints of its head: the first position changed, removed, reordered, inserted or cut off (auditors)",
        vec![
            json!({ "name": "again", "in": "query", "required": false, "schema": { "type": "boolean" },
            "description": "Walk again even if neither the head nor the checkpoints moved since the last walk" }),
        ],
    );
    paths.insert("/verify".into(), op);
    let empty = schema::<dto::Empty>(&mut g);
    let status = schema::<reads::ProjectionsReport>(&mut g);
    let op = operation(
        &mut g,
        "rebuild_projection",
        "Rebuild a read model from position zero beside the live one, which keeps serving (sales department, executives)",
        vec![
            json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }),
        ],
        Some(empty),
        "202",
        Some(status),
    );
    paths.insert(
        "/projections/{name}/rebuild".into(),
        json!({ "post": body_optional(op) }),
    );
    org_paths(&mut g, &mut paths, &at_least);
    session_paths(&mut g, &mut paths);
    write_paths(&mut g, &mut paths);
    webhook_paths(&mut g, &mut paths);
    let schemas = g.take_definitions(true);
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Funnel",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Event-sourced sales workflow engine. Errors are RFC 9457 problem documents with stable refusal codes and messages in English and Chinese.",
        },
        "security": [{ "bearer": [] }, { "session": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A token from `funnel staff token STAFF`" },
                "session": { "type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE,
                    "description": "A browser session from `POST /session`. A request it authenticates that changes something (POST, PUT, PATCH, DELETE) must also send the session's CSRF token as `X-CSRF-Token` (403 `auth.csrf` otherwise)." },
            },
        },
    });
    explicit_ranges(&mut doc);
    doc
}
