//! Signing in through the company's OpenID Connect provider: the authorization code flow with
//! PKCE, `state` and `nonce`, as a confidential client (with `oidc.client_secret_file`) or a public
//! one. The protocol is the `openidconnect` crate's: discovery (the document's issuer must be the
//! configured one), the token request, and the ID token's checks (signature by a key of the
//! provider's JWKS with an asymmetric algorithm, issuer, audience, expiry, nonce).
//!
//! Nothing is kept on the server between the two legs: what the callback must check (state, nonce,
//! PKCE verifier, the invitation being accepted, where to go next) travels in a short-lived
//! `HttpOnly` cookie scoped to the callback's path, so any process behind a load balancer can
//! finish a sign-in another began. Requests to the provider time out and follow no redirects.
//!
//! Signing out of a session begun here also offers the provider's end-session endpoint
//! (RP-initiated logout 1.0), with `client_id` and, as `post_logout_redirect_uri`, the sign-in page
//! on the origin of `oidc.redirect_url` (which must be registered at the provider beside the
//! callback). No ID token is kept after the sign-in, so no `id_token_hint` is sent.

use crate::config::{ConfigError, OidcOptions};
use crate::problem::Problem;
use axum::http::StatusCode;
use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, LogoutRequest, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A client of the provider as discovery describes it: an authorization endpoint, and a token
/// endpoint the document may or may not name.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The cookie that carries a sign-in between its two legs.
pub const FLOW_COOKIE: &str = "funnel_oidc";
/// The path the provider sends the browser back to.
pub const CALLBACK_PATH: &str = "/sign-in/oidc/callback";
/// How long a sign-in may take at the provider.
pub const FLOW_MINUTES: i64 = 10;
/// How long a request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the provider's discovery document and keys are kept before they are read again.
const METADATA_TTL: Duration = Duration::from_secs(600);

/// Checks that `url` (the setting `name`) is an absolute `https` URL, or `http` on a loopback
/// address (a provider on this machine, for trials and tests).
pub fn check_url(name: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| ConfigError(format!("{name} `{url}` is not a URL: {e}")))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(ConfigError(format!(
            "{name} `{url}` must be an https URL (http only on this machine: localhost, 127.0.0.1, ::1)"
        ))),
    }
}

/// What the callback checks, carried by [`FLOW_COOKIE`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flow {
    /// The `state` sent to the provider.
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// The secret of the invitation being accepted, when the sign-in links an account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<String>,
    /// Where to go once signed in (a path on this server).
    pub next: String,
}

impl Flow {
    /// The cookie value: base64url of the JSON.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a flow serializes");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(value: &str) -> Option<Flow> {
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// Who the provider says signed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
}

/// The configured provider.
pub struct Oidc {
    issuer: IssuerUrl,
    client_id: ClientId,
    secret: Option<ClientSecret>,
    redirect: RedirectUrl,
    /// What the sign-in button calls the provider (Chinese, English).
    pub display_name: Option<String>,
    http: reqwest::Client,
    metadata: tokio::sync::Mutex<Option<(Instant, ProviderMetadataWithLogout)>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client secret never reaches a log line.
        f.debug_struct("Oidc")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .finish_non_exhaustive()
    }
}

/// Why a setting of the provider cannot be used (at start).
fn setting(e: impl std::fmt::Display) -> ConfigError {
    ConfigError(e.to_string())
}

impl Oidc {
    /// The provider `options` configure, or none when `oidc.issuer` is not set. Reads the client
    /// secret's file, which must not be readable by other users.
    pub fn from_options(options: &OidcOptions) -> Result<Option<Oidc>, ConfigError> {
        let Some(issuer) = &options.issuer else {
            return Ok(None);
        };
        let issuer = IssuerUrl::new(issuer.clone())
            .map_err(|e| setting(format!("oidc.issuer `{issuer}`: {e}")))?;
        let client_id = ClientId::new(options.client_id.clone().unwrap_or_default());
        let redirect = RedirectUrl::new(options.redirect_url.clone().unwrap_or_default())
            .map_err(|e| setting(format!("oidc.redirect_url: {e}")))?;
        let secret = match &options.client_secret_file {
            None => None,
            Some(path) => Some(ClientSecret::new(read_secret(path)?)),
        };
        let http = reqwest::Client::builder()
            // A provider's answer must not send this server elsewhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| setting(format!("oidc: cannot build an HTTP client: {e}")))?;
        Ok(Some(Oidc {
            issuer,
            client_id,
            secret,
            redirect,
            display_name: options.display_name.clone(),
            http,
            metadata: tokio::sync::Mutex::new(None),
        }))
    }

    /// The provider's discovery document and keys, read again when older than [`METADATA_TTL`]
    /// or when `fresh` (an ID token signed by a key not seen yet: the provider rotated them).
    async fn metadata(&self, fresh: bool) -> Result<ProviderMetadataWithLogout, Problem> {
        let mut kept = self.metadata.lock().await;
        if let Some((at, m)) = kept.as_ref()
            && !fresh
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let m = ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                tracing::warn!(issuer = %self.issuer.as_str(), error = %e, "OpenID Connect discovery failed");
                unreachable_provider()
            })?;
        *kept = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    fn client(&self, m: ProviderMetadataWithLogout) -> Client {
        CoreClient::from_provider_metadata(m, self.client_id.clone(), self.secret.clone())
            .set_redirect_uri(self.redirect.clone())
    }

    /// Where to send the browser to sign in, and what the callback will check.
    pub async fn begin(
        &self,
        invitation: Option<String>,
        next: String,
    ) -> Result<(url::Url, Flow), Problem> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge)
            .url();
        let flow = Flow {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            invitation,
            next,
        };
        Ok((url, flow))
    }

    /// Exchanges `code` for tokens and checks the ID token against `flow`: who signed in.
    pub async fn finish(&self, flow: &Flow, code: String) -> Result<Identity, Problem> {
        let client = self.client(self.metadata(false).await?);
        let token = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| {
                tracing::warn!(error = %e, "the OpenID Connect provider names no token endpoint");
                unreachable_provider()
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "the OpenID Connect token request failed");
                not_signed_in("the provider did not accept the sign-in (token request refused)")
            })?;
        let id_token = token
            .id_token()
            .ok_or_else(|| not_signed_in("the provider's answer holds no ID token"))?;
        let nonce = Nonce::new(flow.nonce.clone());
        let verify = |client: &Client| {
            let verifier = client.id_token_verifier().set_allowed_algs(ASYMMETRIC);
            id_token.claims(&verifier, &nonce).map(|c| Identity {
                issuer: c.issuer().as_str().to_string(),
                subject: c.subject().as_str().to_string(),
            })
        };
        match verify(&client) {
            Ok(identity) => Ok(identity),
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                // Perhaps a key the provider rotated in since its keys were read: once more.
                let client = self.client(self.metadata(true).await?);
                verify(&client).map_err(|e| {
                    tracing::warn!(error = %e, "an ID token failed its checks");
                    not_signed_in("the provider's ID token failed its checks")
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "an ID token failed its checks");
                Err(not_signed_in("the provider's ID token failed its checks"))
            }
        }
    }
}

impl Oidc {
    /// Where the browser signs out at the provider too, when its discovery document names an
    /// end-session endpoint. `None` also when the provider cannot be reached just now: signing out
    /// of Funnel does not depend on it.
    pub async fn sign_out_url(&self) -> Option<url::Url> {
        let m = self.metadata(false).await.ok()?;
        let endpoint = m.additional_metadata().end_session_endpoint.clone()?;
        let mut back = self.redirect.url().clone();
        back.set_path("/sign-in");
        back.set_query(None);
        back.set_fragment(None);
        Some(
            LogoutRequest::from(endpoint)
                .set_client_id(self.client_id.clone())
                .set_post_logout_redirect_uri(PostLogoutRedirectUrl::from_url(back))
                .http_get_url(),
        )
    }
}

/// The signature algorithms an ID token may use: the asymmetric ones (a token signed with the
/// client secret could be made by anyone who holds the secret, this server included).
const ASYMMETRIC: [CoreJwsSigningAlgorithm; 7] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Reads the client secret from `path`, refusing a file other users may read.
fn read_secret(path: &std::path::Path) -> Result<String, ConfigError> {
    let shown = path.display();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| {
            setting(format!(
                "oidc.client_secret_file `{shown}` cannot be read: {e}"
            ))
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(setting(format!(
                "oidc.client_secret_file `{shown}` may be read by other users: make it readable by the server's user only (chmod 600)"
            )));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        setting(format!(
            "oidc.client_secret_file `{shown}` cannot be read: {e}"
        ))
    })?;
    let secret = text.trim().to_string();
    if secret.is_empty() {
        return Err(setting(format!(
            "oidc.client_secret_file `{shown}` is empty"
        )));
    }
    Ok(secret)
}

fn unreachable_provider() -> Problem {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "auth.oidc_unavailable",
        "the company's sign-in service cannot be reached just now; try again, or sign in with your password",
        "暂时无法连接公司统一登录服务，请稍后重试，或使用密码登录",
    )
}

fn not_signed_in(why: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "auth.oidc_failed",
        format!("signing in through the company's account did not succeed: {why}; start again"),
        "使用公司账号登录未成功，请重新开始",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_is_reached_over_https_or_on_this_machine_only() {
        for ok in [
            "https://sso.example.com",
            "https://sso.example.com/realms/sales",
            "http://127.0.0.1:8080",
            "http://localhost:9000/",
            "http://[::1]:8000",
        ] {
            check_url("oidc.issuer", ok).unwrap_or_else(|e| panic!("{ok}: {}", e.0));
        }
        for bad in [
            "http://sso.example.com",
            "http://10.0.0.5",
            "ftp://sso.example.com",
            "sso.example.com",
            "https://",
        ] {
            assert!(check_url("oidc.issuer", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_flow_survives_its_cookie_and_garbage_is_no_flow() {
        let flow = Flow {
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            invitation: Some("t".into()),
            next: "/console/inbox".into(),
        };
        let back = Flow::decode(&flow.encode()).expect("decodes");
        assert_eq!(
            (
                back.state,
                back.nonce,
                back.pkce_verifier,
                back.invitation,
                back.next
            ),
            (
                "s".into(),
                "n".into(),
                "v".into(),
                Some("t".into()),
                "/console/inbox".into()
            )
        );
        assert!(Flow::decode("not base64 !").is_none());
        assert!(Flow::decode("e30").is_none(), "{{}} lacks the fields");
    }
}
