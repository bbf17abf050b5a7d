//! Extractors that answer bad input with a problem document instead of axum's plain-text
//! rejections: the raw body (size-limited), query strings, path ids and the `Idempotency-Key`.

use crate::auth::Caller;
use crate::problem::Problem;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use funnel_types::CommandId;
use serde::de::DeserializeOwned;

/// The request body, at most the configured size.
#[derive(Debug)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.too_large",
                "the request body is larger than this server accepts",
                "请求体超过服务器允许的大小",
            )),
            Err(e) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "request.unreadable_body",
                format!("the request body cannot be read: {}", e.body_text()),
                "无法读取请求体",
            )),
        }
    }
}

impl RawBody {
    /// Parses the body as `T`; an empty body reads as `{}`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        let bytes: &[u8] = if self.0.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.0
        };
        from_json(bytes).map_err(json_problem)
    }
}

/// Parses a JSON body into `T`. JSON has one kind of number, and JSON Schema (so the OpenAPI
/// document) counts `2.0` and `2e3` as the integers 2 and 2000: a whole number written with a
/// fraction or an exponent is read as that integer, so every body the document allows parses.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    whole_numbers(&mut value);
    serde_json::from_value(value)
}

/// Turns every whole floating-point number in `value` that fits an `i64` or `u64` into an integer.
fn whole_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // The bounds are powers of two, so exact as floats; inside them the cast is exact.
            if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) {
                *value = Value::from(f as u64);
            } else if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// The problem for a body that is not the JSON an endpoint takes: syntax errors are 400, wrong
/// types, missing and unknown fields 422.
pub fn json_problem(e: serde_json::Error) -> Problem {
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => Problem::new(
            StatusCode::BAD_REQUEST,
            "request.malformed_json",
            format!("the request body is not valid JSON: {e}"),
            format!("请求体不是有效的 JSON：{e}"),
        ),
        _ => Problem::bad_body(e),
    }
}

/// A query string parsed into `T`.
#[derive(Debug)]
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Q(q.0))
            .map_err(|e| Problem::bad_request("query", e.body_text()))
    }
}

/// Parses an id from a path segment.
pub fn path_id<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, Problem> {
    text.parse()
        .map_err(|_| Problem::bad_request(what, format!("`{text}` is not a UUID")))
}

/// The command id of a write: the `Idempotency-Key` header when given (a UUID as is; any other
/// text gives a UUIDv5 of the caller's staff id and the text, so two callers' keys never
/// collide), else a fresh id.
pub fn command_id(parts: &axum::http::HeaderMap, caller: &Caller) -> Result<CommandId, Problem> {
    let Some(value) = parts.get("idempotency-key") else {
        return Ok(CommandId::new());
    };
    let text = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or_else(|| {
            Problem::bad_request(
                "Idempotency-Key",
                "it must be 1 to 200 visible ASCII characters (ideally a UUID)",
            )
        })?;
    if let Ok(id) = text.parse::<uuid::Uuid>() {
        return Ok(CommandId(id));
    }
    Ok(CommandId::derived(&format!(
        "idempotency:{}:{text}",
        caller.staff_id
    )))
}
