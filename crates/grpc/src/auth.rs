//! Who is calling: the clients' credentials → a Funnel API token → [`Caller`].
//!
//! The clients send `authorization: Basic base64(user:password)` (from `esdb://user:password@…`
//! or their `username`/`password` settings). Funnel has no user names on this endpoint: the
//! **password is an API token** (`funnel tokens issue`, `POST /staff/{id}/tokens`), and the user
//! name is not checked (any, e.g. `funnel`). `authorization: Bearer TOKEN` (the .NET client's
//! token credentials) is accepted too. The token goes through `funnel_app::auth::authenticate`,
//! the function the HTTP API uses, so revoked tokens and people who left are refused the same way.

use base64::Engine as _;
use funnel_app::auth::{Caller, authenticate};
use funnel_app::{ErrorKind, Reads};
use tonic::metadata::MetadataMap;

/// The caller named by the request's credentials, or the protocol's error.
pub async fn caller(reads: &Reads, metadata: &MetadataMap) -> Result<Caller, tonic::Status> {
    let token = token(metadata)?;
    authenticate(reads, &token).await.map_err(|e| match e.kind {
        ErrorKind::Unauthenticated => {
            unauthenticated(&format!("{} / {}", e.message_en, e.message_zh))
        }
        _ => crate::convert::app_status(e),
    })
}

fn token(metadata: &MetadataMap) -> Result<String, tonic::Status> {
    let Some(value) = metadata.get("authorization") else {
        return Err(unauthenticated(
            "credentials are required: give a Funnel API token as the password \
             (esdb://funnel:TOKEN@host:port?tls=false) / 需要凭据：请以 Funnel API 令牌作为密码",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthenticated("the authorization header is not text / 授权头不是文本"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        if let Some((_user, password)) = decoded.as_deref().and_then(|d| d.split_once(':'))
            && !password.is_empty()
        {
            return Ok(password.to_string());
        }
    }
    Err(unauthenticated(
        "malformed credentials: send basic credentials whose password is a Funnel API token \
         / 凭据格式错误：请使用以 Funnel API 令牌为密码的基本凭据",
    ))
}

fn unauthenticated(message: &str) -> tonic::Status {
    tonic::Status::unauthenticated(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn with(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", MetadataValue::try_from(value).unwrap());
        m
    }

    #[test]
    fn the_password_of_basic_credentials_is_the_token() {
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:tok:en");
        assert_eq!(token(&with(&format!("Basic {basic}"))).unwrap(), "tok:en");
        assert_eq!(token(&with("Bearer abc")).unwrap(), "abc");
    }

    #[test]
    fn missing_or_malformed_credentials_are_refused() {
        assert!(token(&MetadataMap::new()).is_err());
        let empty = base64::engine::general_purpose::STANDARD.encode("user:");
        assert!(token(&with(&format!("Basic {empty}"))).is_err());
        assert!(token(&with("Basic !!!")).is_err());
        assert!(token(&with("Bearer ")).is_err());
    }
}
