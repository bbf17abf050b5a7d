//! Authentication at the HTTP edge: the `Authorization: Bearer` header is read here and handed to
//! [`funnel_app::auth::authenticate`], the one place that turns a credential into the acting
//! person and their read scope. The access read model, token hashing and the caller's scope live
//! in `funnel_app::auth` and are re-exported here.

use crate::AppState;
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

pub use funnel_app::auth::{
    Access, Caller, OfficeEntry, ReadScope, StaffEntry, TokenEntry, new_token, token_hash,
};

fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            Problem::unauthorized(
                "this endpoint needs `Authorization: Bearer <token>`; `funnel staff token` issues one",
                "此接口需要 `Authorization: Bearer <令牌>`，可用 `funnel staff token` 签发",
            )
        })?;
    let text = value.to_str().ok().and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    });
    text.filter(|t| !t.is_empty()).ok_or_else(|| {
        Problem::unauthorized(
            "the Authorization header must be `Bearer <token>`",
            "Authorization 头必须为 `Bearer <令牌>`",
        )
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let caller = funnel_app::auth::authenticate(state.reads(), bearer(parts)?).await?;
        tracing::Span::current().record("staff", tracing::field::display(caller.staff_id));
        Ok(caller)
    }
}
