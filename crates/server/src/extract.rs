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

/// Who a write is and under which key: the command id the engine runs it with and, when the caller
/// sent an `Idempotency-Key`, the key scoped to the caller.
#[derive(Clone, Copy, Debug)]
pub struct WriteId {
    pub command_id: CommandId,
    /// UUIDv5 of the caller's staff id and the key's text: the same for every request the caller
    /// sends with this key, different for every other caller. The engine writes it as the
    /// correlation id of the command's events.
    pub key: Option<uuid::Uuid>,
}

/// The identity of a write. Without an `Idempotency-Key` it is a fresh command id. With one (a
/// UUID or any other text, treated alike) the command id is derived from the caller's staff id, the
/// key, the request's `route` (method, target and command, e.g. `POST /leads/{id}/commands/assign`)
/// and a digest of its body (as canonical JSON when it parses, so key order and spacing do not
/// matter). So no caller can choose a raw command id, two callers' keys never meet, and the same key
/// with another request is another command (which the engine and the server's key ledger refuse).
pub fn write_id(
    headers: &axum::http::HeaderMap,
    caller: &Caller,
    route: &str,
    body: &[u8],
) -> Result<WriteId, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(WriteId {
            command_id: CommandId::new(),
            key: None,
        });
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
    let key = CommandId::derived(&format!("idempotency:{}:{text}", caller.staff_id)).0;
    let digest = body_digest(body);
    Ok(WriteId {
        command_id: CommandId(uuid::Uuid::new_v5(
            &key,
            format!("{route}\n{digest}").as_bytes(),
        )),
        key: Some(key),
    })
}

/// SHA-256 (hex) of a request body: of its canonical JSON (keys sorted, no spaces, whole numbers as
/// integers as [`from_json`] reads them; an empty body reads as `{}`) when it is JSON, else of its bytes.
fn body_digest(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let canonical = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".to_vec()
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            // As the body is read: `2.0` and `2` are the same request.
            Ok(mut v) => {
                whole_numbers(&mut v);
                canonical_json(&v).into_bytes()
            }
            Err(_) => body.to_vec(),
        }
    };
    hex::encode(Sha256::digest(&canonical))
}

/// JSON text with object keys sorted at every level, whatever order the parser kept.
fn canonical_json(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_digest_ignores_key_order_and_spacing_but_not_values() {
        let a = body_digest(br#"{"b": [1, {"y": 2, "x": 1}], "a": "t"}"#);
        let b = body_digest(br#"{"a":"t","b":[1,{"x":1,"y":2}]}"#);
        let c = body_digest(br#"{"a":"t","b":[1,{"x":1,"y":3}]}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(body_digest(b" "), body_digest(b"{}"));
    }

    #[test]
    fn the_body_digest_reads_whole_numbers_as_the_body_is_read() {
        // A retry that writes `2` as `2.0` is the same request, as the handler reads it.
        assert_eq!(
            body_digest(br#"{"year":2026,"n":[2e1]}"#),
            body_digest(br#"{"year":2026.0,"n":[20]}"#)
        );
        assert_ne!(body_digest(br#"{"x":2.5}"#), body_digest(br#"{"x":2}"#));
    }
}
