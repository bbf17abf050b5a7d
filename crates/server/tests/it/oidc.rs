//! Signing in through an OpenID Connect provider, against a provider on this machine that behaves
//! as a real one: discovery, keys, and a token endpoint that checks the client's credentials, the
//! redirect URI and the PKCE verifier, and answers an ES256-signed ID token. The test plays the
//! browser: it follows the redirect to the provider, "signs in" there (registers the code the
//! provider will accept) and comes back to the callback with the flow cookie.

use crate::common;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use funnel_server::ServeOptions;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const CLIENT_ID: &str = "funnel-console";
const CLIENT_SECRET: &str = "a client secret of the test provider";
const REDIRECT: &str = "https://funnel.example.com/sign-in/oidc/callback";

/// How the provider misbehaves for one grant.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Twist {
    None,
    OtherNonce,
    OtherKey,
    OtherAudience,
    Expired,
}

#[derive(Clone)]
struct Grant {
    challenge: String,
    nonce: String,
    subject: String,
    twist: Twist,
}

#[derive(Clone)]
struct Provider {
    issuer: String,
    key: Arc<EcdsaKeyPair>,
    /// A key the provider does not publish, under the same key id.
    stranger: Arc<EcdsaKeyPair>,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    token_requests: Arc<Mutex<Vec<String>>>,
}

fn key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

impl Provider {
    fn id_token(&self, g: &Grant) -> String {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "ES256", "kid": "k1", "typ": "JWT"});
        let claims = json!({
            "iss": self.issuer,
            "sub": g.subject,
            "aud": if g.twist == Twist::OtherAudience { "another-app" } else { CLIENT_ID },
            "iat": now - 5,
            "exp": if g.twist == Twist::Expired { now - 600 } else { now + 300 },
            "nonce": if g.twist == Twist::OtherNonce { "not the nonce" } else { g.nonce.as_str() },
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = if g.twist == Twist::OtherKey {
            &self.stranger
        } else {
            &self.key
        };
        let sig = key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .unwrap();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

async fn discovery(State(p): State<Provider>) -> Json<Value> {
    Json(json!({
        "issuer": p.issuer,
        "authorization_endpoint": format!("{}/authorize", p.issuer),
        "token_endpoint": format!("{}/token", p.issuer),
        "jwks_uri": format!("{}/jwks", p.issuer),
        "end_session_endpoint": format!("{}/logout?realm=sales", p.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

async fn jwks(State(p): State<Provider>) -> Json<Value> {
    let point = p.key.public_key().as_ref();
    Json(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]}))
}

/// The token endpoint: the client's basic credentials, the code, the redirect URI and the PKCE
/// verifier must all be right, as a provider requires.
async fn token(
    State(p): State<Provider>,
    headers: axum::http::HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let code = form.get("code").cloned().unwrap_or_default();
    p.token_requests.lock().unwrap().push(code.clone());
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            urlencode(CLIENT_ID),
            urlencode(CLIENT_SECRET)
        ))
    );
    let refuse = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": why})),
        )
    };
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        );
    }
    let Some(grant) = p.grants.lock().unwrap().remove(&code) else {
        return refuse("unknown or used code");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if challenge != grant.challenge
        || form.get("grant_type").map(String::as_str) != Some("authorization_code")
        || form.get("redirect_uri").map(String::as_str) != Some(REDIRECT)
    {
        return refuse("verifier, grant type or redirect URI");
    }
    (
        StatusCode::OK,
        Json(json!({
            "access_token": "an access token",
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": p.id_token(&grant),
        })),
    )
}

/// The form encoding of client credentials in basic authentication (RFC 6749 §2.3.1).
fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn provider() -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let p = Provider {
        issuer,
        key: Arc::new(key()),
        stranger: Arc::new(key()),
        grants: Arc::default(),
        token_requests: Arc::default(),
    };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    p
}

async fn world_with_provider(p: &Provider) -> World {
    world_with_provider_and(p, |_| {}).await
}

async fn world_with_provider_and(p: &Provider, more: impl FnOnce(&mut ServeOptions)) -> World {
    let mut options = ServeOptions::default();
    more(&mut options);
    let dir = tempfile::tempdir().unwrap().keep();
    let secret = dir.join("client-secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    options.oidc.issuer = Some(p.issuer.clone());
    options.oidc.client_id = Some(CLIENT_ID.into());
    options.oidc.client_secret_file = Some(secret);
    options.oidc.redirect_url = Some(REDIRECT.into());
    options.validate().expect("valid settings");
    world_with(options).await
}

/// What the browser holds after the first leg: the provider's authorization URL and the flow
/// cookie.
struct Leg {
    params: HashMap<String, String>,
    flow: String,
}

async fn begin(w: &World, query: &str) -> Leg {
    let r = w
        .raw(
            Method::GET,
            &format!("/sign-in/oidc{query}"),
            None,
            vec![],
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let location = r.headers["location"].to_str().unwrap();
    let url = url::Url::parse(location).unwrap();
    let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let cookie = set_cookie(&r, "funnel_oidc");
    let attrs = cookie.to_ascii_lowercase();
    assert!(
        attrs.contains("httponly")
            && attrs.contains("samesite=lax")
            && attrs.contains("path=/sign-in/oidc"),
        "{cookie}"
    );
    Leg {
        params,
        flow: cookie_value(cookie),
    }
}

/// Signs in at the provider as `subject` (with a `twist`) and comes back to the callback.
async fn come_back(w: &World, p: &Provider, leg: &Leg, subject: &str, twist: Twist) -> Reply {
    let code = format!("code-{}", uuid::Uuid::now_v7());
    p.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            challenge: leg.params["code_challenge"].clone(),
            nonce: leg.params["nonce"].clone(),
            subject: subject.into(),
            twist,
        },
    );
    let cookie = format!("funnel_oidc={}", leg.flow);
    w.raw(
        Method::GET,
        &format!(
            "/sign-in/oidc/callback?code={code}&state={}",
            leg.params["state"]
        ),
        None,
        vec![],
        &[("cookie", cookie.as_str())],
    )
    .await
}

/// Who the session a reply set signs in, and by which method.
async fn session_of(w: &World, r: &Reply) -> (String, String) {
    let session = cookie_value(set_cookie(r, "funnel_session"));
    let me = w
        .raw(
            Method::GET,
            "/session",
            None,
            vec![],
            &[("cookie", &format!("funnel_session={session}"))],
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    (
        me.body["me"]["name"].as_str().unwrap().to_string(),
        me.body["method"].as_str().unwrap().to_string(),
    )
}

async fn invitation(w: &World, who: &str) -> String {
    let r = w
        .post(
            &format!("/staff/{}/invitation", w.ids[who]),
            "sales_dept",
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_links_the_company_account_which_then_signs_the_person_in() {
    let p = provider().await;
    let w = world_with_provider(&p).await;
    let token = invitation(&w, "eng_a").await;

    // The invitation page offers the company account beside a password.
    let page = w
        .raw(
            Method::GET,
            &format!("/invitations/{token}"),
            None,
            vec![],
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("eng_a") && page.text.contains("/sign-in/oidc?invitation="));
    assert_eq!(page.headers["referrer-policy"], "no-referrer");

    let leg = begin(&w, &format!("?invitation={token}&next=/console/inbox")).await;
    assert_eq!(leg.params["client_id"], CLIENT_ID);
    assert_eq!(leg.params["redirect_uri"], REDIRECT);
    assert_eq!(leg.params["code_challenge_method"], "S256");
    assert_eq!(leg.params["response_type"], "code");
    assert!(leg.params["scope"].split(' ').any(|s| s == "openid"));
    let back = come_back(&w, &p, &leg, "sub-eng-a", Twist::None).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    assert!(back.text.contains("/console/inbox"));
    assert_eq!(back.headers["refresh"], "0; url=/console/inbox");
    // The flow cookie is spent.
    assert!(set_cookie(&back, "funnel_oidc").contains("Max-Age=0"));
    assert_eq!(session_of(&w, &back).await, ("eng_a".into(), "oidc".into()));

    // The log records the link (the identity, never a token) and the invitation is used up.
    let linked: Vec<_> = funnel_store::read_whole_stream(
        w.state.store().as_ref(),
        &funnel_types::StreamId::new("staff", w.ids["eng_a"]).unwrap(),
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|r| r.meta.event_type == "staff.oidc_linked")
    .collect();
    assert_eq!(linked.len(), 1);
    let e: Value = serde_json::from_slice(&linked[0].payload).unwrap();
    assert_eq!(
        (e["issuer"].as_str(), e["subject"].as_str()),
        (Some(p.issuer.as_str()), Some("sub-eng-a"))
    );
    let reuse = w
        .raw(
            Method::GET,
            &format!("/sign-in/oidc?invitation={token}"),
            None,
            vec![],
            &[],
        )
        .await;
    assert_eq!(reuse.status, StatusCode::NOT_FOUND, "{}", reuse.text);

    // Later sign-ins need no invitation.
    let leg = begin(&w, "").await;
    let back = come_back(&w, &p, &leg, "sub-eng-a", Twist::None).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    assert_eq!(session_of(&w, &back).await, ("eng_a".into(), "oidc".into()));
    assert_eq!(back.headers["refresh"], "0; url=/");

    // The same account cannot be linked to someone else.
    let other = invitation(&w, "eng_b").await;
    let leg = begin(&w, &format!("?invitation={other}")).await;
    let back = come_back(&w, &p, &leg, "sub-eng-a", Twist::None).await;
    assert_eq!(back.status, StatusCode::CONFLICT, "{}", back.text);
    assert!(sets_cookie(&back, "funnel_session").is_none());

    // The sign-in page offers the provider.
    let page = w.raw(Method::GET, "/sign-in", None, vec![], &[]).await;
    assert!(page.text.contains("/sign-in/oidc?next="), "{}", page.text);
}

/// A company account linked a moment ago (by another process on the same log, say) signs in
/// although this process's read models have not reached the link yet: the callback brings them up
/// to the log's head before it calls the account unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_linked_a_moment_ago_signs_in_while_the_read_models_catch_up() {
    use funnel_domain::org::{SessionCommand, StaffCommand};
    use funnel_engine::{Command, CommandMeta, Who};
    let p = provider().await;
    let mut w = world_with_provider_and(&p, |o| o.http.auth_wait_ms = 30_000).await;
    let token = invitation(&w, "eng_a").await;
    w.pause_following().await;
    let staff_id = w.ids["eng_a"];
    w.engine
        .execute(
            CommandMeta::new(Who::Staff(staff_id)),
            Command::Staff {
                staff_id,
                cmd: StaffCommand::Session(SessionCommand::LinkOidc {
                    secret_hash: funnel_app::auth::token_hash(&token),
                    issuer: p.issuer.clone(),
                    subject: "sub-late".into(),
                }),
            },
        )
        .await
        .expect("linked");
    let leg = begin(&w, "").await;
    w.follow_after(std::time::Duration::from_millis(300));
    let back = come_back(&w, &p, &leg, "sub-late", Twist::None).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    assert_eq!(session_of(&w, &back).await, ("eng_a".into(), "oidc".into()));
}

/// Signs out of the session a reply began; the answer.
async fn sign_out(w: &World, r: &Reply) -> Reply {
    let session = cookie_value(set_cookie(r, "funnel_session"));
    let csrf = cookie_value(set_cookie(r, "funnel_csrf"));
    let cookies = format!("funnel_session={session}; funnel_csrf={csrf}");
    let out = w
        .raw(
            Method::DELETE,
            "/session",
            None,
            vec![],
            &[
                ("cookie", cookies.as_str()),
                ("x-csrf-token", csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    assert_eq!(out.body["ended"], 1, "{}", out.text);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_of_a_company_sign_in_signs_out_at_the_provider_too() {
    let p = provider().await;
    let w = world_with_provider(&p).await;
    let token = invitation(&w, "eng_a").await;
    let leg = begin(&w, &format!("?invitation={token}")).await;
    let back = come_back(&w, &p, &leg, "sub-eng-a", Twist::None).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    let out = sign_out(&w, &back).await;
    let url = out.body["provider_sign_out"]
        .as_str()
        .unwrap_or_else(|| panic!("no provider sign-out: {}", out.text));
    let url = url::Url::parse(url).unwrap();
    assert_eq!(
        url[..url::Position::AfterPath],
        format!("{}/logout", p.issuer)
    );
    let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(params["realm"], "sales", "the endpoint's own query is kept");
    assert_eq!(params["client_id"], CLIENT_ID);
    assert_eq!(
        params["post_logout_redirect_uri"],
        "https://funnel.example.com/sign-in"
    );
    assert!(!params.contains_key("id_token_hint"), "{url}");

    // A session begun with a password or token is not sent to the provider.
    let body = json!({ "token": w.tokens["eng_b"] })
        .to_string()
        .into_bytes();
    let r = w.raw(Method::POST, "/session", None, body, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let out = sign_out(&w, &r).await;
    assert!(out.body.get("provider_sign_out").is_none(), "{}", out.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_that_fails_a_check_begins_no_session() {
    let p = provider().await;
    let w = world_with_provider(&p).await;
    let token = invitation(&w, "eng_a").await;
    let leg = begin(&w, &format!("?invitation={token}")).await;
    assert_eq!(
        come_back(&w, &p, &leg, "sub-eng-a", Twist::None)
            .await
            .status,
        StatusCode::OK
    );

    for (twist, why) in [
        (Twist::OtherNonce, "a replayed ID token (another nonce)"),
        (
            Twist::OtherKey,
            "a token signed by a key the provider does not publish",
        ),
        (Twist::OtherAudience, "a token for another application"),
        (Twist::Expired, "an expired token"),
    ] {
        let leg = begin(&w, "").await;
        let r = come_back(&w, &p, &leg, "sub-eng-a", twist).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{why}: {}", r.text);
        assert!(r.text.contains("auth.oidc_failed"), "{why}");
        assert!(sets_cookie(&r, "funnel_session").is_none(), "{why}");
    }

    // An identity nobody is linked to.
    let leg = begin(&w, "").await;
    let r = come_back(&w, &p, &leg, "sub-stranger", Twist::None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(sets_cookie(&r, "funnel_session").is_none());

    // A state that is not the flow's, or no flow cookie: refused before the provider is asked.
    let asked = p.token_requests.lock().unwrap().len();
    let leg = begin(&w, "").await;
    let forged = w
        .raw(
            Method::GET,
            "/sign-in/oidc/callback?code=c&state=forged",
            None,
            vec![],
            &[("cookie", &format!("funnel_oidc={}", leg.flow))],
        )
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{}", forged.text);
    let cookieless = w
        .raw(
            Method::GET,
            &format!(
                "/sign-in/oidc/callback?code=c&state={}",
                leg.params["state"]
            ),
            None,
            vec![],
            &[],
        )
        .await;
    assert_eq!(cookieless.status, StatusCode::BAD_REQUEST);
    assert_eq!(p.token_requests.lock().unwrap().len(), asked);

    // The provider's own refusal is shown by its code.
    let leg = begin(&w, "").await;
    let denied = w
        .raw(
            Method::GET,
            &format!(
                "/sign-in/oidc/callback?error=access_denied&error_description=%3Cscript%3E&state={}",
                leg.params["state"]
            ),
            None,
            vec![],
            &[("cookie", &format!("funnel_oidc={}", leg.flow))],
        )
        .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert!(denied.text.contains("access_denied") && !denied.text.contains("<script>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_the_company_account_is_not_offered() {
    let w = world().await;
    let r = w.raw(Method::GET, "/sign-in/oidc", None, vec![], &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("auth.oidc_off"));
    let page = w.raw(Method::GET, "/sign-in", None, vec![], &[]).await;
    assert!(!page.text.contains("/sign-in/oidc"));
    let token = invitation(&w, "eng_a").await;
    let page = w
        .raw(
            Method::GET,
            &format!("/invitations/{token}"),
            None,
            vec![],
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("accept-invitation") && !page.text.contains("/sign-in/oidc"));
}

#[test]
fn provider_settings_are_checked_and_the_secret_file_must_be_private() {
    let mut options = ServeOptions::default();
    options.oidc.issuer = Some("http://sso.example.com".into());
    options.oidc.client_id = Some(CLIENT_ID.into());
    options.oidc.redirect_url = Some(REDIRECT.into());
    let e = options.validate().expect_err("plain http to another host");
    assert!(e.0.contains("oidc.issuer"), "{}", e.0);
    options.oidc.issuer = Some("https://sso.example.com".into());
    options.oidc.redirect_url = None;
    assert!(
        options
            .validate()
            .expect_err("no redirect")
            .0
            .contains("oidc.redirect_url")
    );
    options.oidc.redirect_url = Some(REDIRECT.into());
    options.oidc.client_id = None;
    assert!(
        options
            .validate()
            .expect_err("no client")
            .0
            .contains("oidc.client_id")
    );
    options.oidc.client_id = Some(CLIENT_ID.into());
    options.validate().expect("complete");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        options.oidc.client_secret_file = Some(secret.clone());
        let e =
            funnel_server::oidc::Oidc::from_options(&options.oidc).expect_err("readable by all");
        assert!(
            e.0.contains("chmod 600") && !e.0.contains("s3cret"),
            "{}",
            e.0
        );
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let oidc = funnel_server::oidc::Oidc::from_options(&options.oidc)
            .expect("private")
            .expect("configured");
        assert!(!format!("{oidc:?}").contains("s3cret"));
    }
}
