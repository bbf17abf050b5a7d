//! The HTTP API of `funnel serve`: one process serving commands and queries over JSON, following
//! the log with the projection runner and running the sagas.
//!
//! - [`router`] builds the whole API over an [`AppState`] (testable with
//!   `tower::ServiceExt::oneshot`); [`serve`] runs it with the runner and the workflows until
//!   shutdown.
//! - Authentication: bearer tokens, or browser sessions (a cookie and a CSRF token), both recorded
//!   as SHA-256 hashes by staff events ([`auth`]).
//! - Authorization: the domain deciders authorize writes (and record refused touches); reads are
//!   scoped by role and office ([`auth::Caller`]).
//! - Errors are RFC 9457 problem documents with stable refusal codes ([`problem`]).

// A `Problem` is the response itself, built at most once per failed request; boxing it would only
// add an allocation on the error path.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod config;
pub mod console;
pub mod dto;
mod extract;
mod keys;
pub mod metrics;
pub mod oidc;
pub mod openapi;
pub mod problem;
mod routes;
pub use funnel_app::Replays;
pub use routes::write::{NOT_COMMANDS, declared as declared_writes};
mod run;
pub mod tokens;

pub use config::{ConfigError, LogFormat, ServeOptions};
pub use routes::forms::name_book as forms_names;
pub use routes::forms::office_forms;
pub use run::{
    ServeError, beside_store, forget_erased_forever, init_logging, open_runner, projections_path,
    serve,
};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use funnel_engine::Engine;
use funnel_projections::Runner;
use funnel_store::EventStore;
use std::sync::Arc;
use tokio::sync::RwLock;

/// What every handler shares. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    runner: Arc<RwLock<Runner>>,
    webhooks: funnel_notify::webhooks::Webhooks,
    metrics: metrics::Metrics,
    keys: keys::KeyLedger,
    options: ServeOptions,
    /// Requests to the saga runtime of this process, when it runs one.
    workflows: std::sync::OnceLock<tokio::sync::mpsc::Sender<funnel_workflows::Control>>,
    /// What the queries read: the store, the read models, the as-of replays.
    reads: funnel_app::Reads,
    /// Password hashes and failed sign-ins, kept apart from the log.
    credentials: funnel_app::credentials::Credentials,
    /// The leases this process takes part in (JetStream only; on the embedded store there are
    /// none and this process does everything).
    leases: std::sync::OnceLock<Vec<LeaseView>>,
    /// The company's OpenID Connect provider, when one is configured (set once, at start).
    oidc: std::sync::OnceLock<Arc<oidc::Oidc>>,
    /// The walks of the log's hash chain and where its signed checkpoints are (set at start,
    /// else made from the settings without a signing key on first use).
    chain: std::sync::OnceLock<Arc<funnel_app::chain::ChainAudit>>,
}

/// One lease as this process sees it: its name and what this process holds of it.
#[derive(Clone, Debug)]
pub struct LeaseView {
    pub name: String,
    /// This process's identity in the lease records.
    pub holder: String,
    pub state: tokio::sync::watch::Receiver<funnel_store::lease::Holding>,
}

impl LeaseView {
    /// Whether this process holds the lease now (its local deadline not passed).
    pub fn held(&self) -> Option<u64> {
        self.state.borrow().term_now()
    }
}

/// The chain settings of `options`, with `signer` (the signing key, loaded by whoever runs the
/// server): the checkpoint file (by default beside the embedded store) and the trusted key.
pub fn chain_settings(
    options: &ServeOptions,
    signer: Option<Arc<funnel_store::checkpoint::CheckpointSigner>>,
) -> funnel_app::chain::ChainSettings {
    let url = options.store.url.parse::<funnel_app::StoreUrl>().ok();
    funnel_app::chain::ChainSettings {
        checkpoints: match (&options.chain.checkpoints_file, &url) {
            (Some(file), _) => Some(funnel_app::chain::Checkpoints::File(file.clone())),
            (None, Some(funnel_app::StoreUrl::Nats(nats))) => {
                Some(funnel_app::chain::Checkpoints::Stream(
                    funnel_app::chain::CheckpointStream::new(nats)
                        .with_replicas(options.store.replicas),
                ))
            }
            (None, Some(url)) => Some(funnel_app::chain::default_checkpoints(url)),
            (None, None) => None,
        },
        signer,
        public_key: options
            .chain
            .public_key
            .as_deref()
            .and_then(|k| funnel_store::checkpoint::PublicKey::from_hex(k).ok()),
    }
}

impl AppState {
    /// The state over an engine (and its store) and a runner that something keeps following the log
    /// (see [`funnel_projections::follow`]); the runner must have [`auth::Access`] registered (see [`open_runner`]).
    /// The webhook subscriptions are kept in `webhooks` (their dispatcher runs apart), the
    /// passwords in `credentials`.
    pub fn new(
        engine: Engine,
        runner: Arc<RwLock<Runner>>,
        webhooks: funnel_notify::webhooks::Webhooks,
        credentials: funnel_app::credentials::Credentials,
        options: ServeOptions,
    ) -> Self {
        let reads = funnel_app::Reads::new(
            engine.store().clone(),
            runner.clone(),
            funnel_app::ReadOptions {
                read_wait: std::time::Duration::from_millis(options.http.read_wait_ms),
                auth_wait: std::time::Duration::from_millis(options.http.auth_wait_ms),
                max_replays: options.http.max_replays,
                replay_cache: options.http.replay_cache,
            },
        );
        Self {
            inner: Arc::new(Inner {
                engine,
                runner,
                webhooks,
                metrics: metrics::Metrics::default(),
                keys: keys::KeyLedger::default(),
                workflows: std::sync::OnceLock::new(),
                leases: std::sync::OnceLock::new(),
                oidc: std::sync::OnceLock::new(),
                chain: std::sync::OnceLock::new(),
                reads,
                credentials,
                options,
            }),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        self.inner.engine.store()
    }

    pub fn runner(&self) -> &Arc<RwLock<Runner>> {
        &self.inner.runner
    }

    pub fn webhooks(&self) -> &funnel_notify::webhooks::Webhooks {
        &self.inner.webhooks
    }

    /// The as-of replays' limit and cache.
    pub fn replays(&self) -> &Replays {
        self.inner.reads.replays()
    }

    /// The read side the queries of `funnel_app::query` run against.
    pub fn reads(&self) -> &funnel_app::Reads {
        &self.inner.reads
    }

    /// Password hashes and failed sign-ins.
    pub fn credentials(&self) -> &funnel_app::credentials::Credentials {
        &self.inner.credentials
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    fn keys(&self) -> &keys::KeyLedger {
        &self.inner.keys
    }

    pub fn options(&self) -> &ServeOptions {
        &self.inner.options
    }

    /// Signs people in through `oidc` (set once, at start: see [`oidc::Oidc::from_options`]).
    pub fn set_oidc(&self, oidc: oidc::Oidc) {
        let _ = self.inner.oidc.set(Arc::new(oidc));
    }

    /// The company's OpenID Connect provider, when one is configured.
    pub fn oidc(&self) -> Option<&Arc<oidc::Oidc>> {
        self.inner.oidc.get()
    }

    /// Walks the log's hash chain with `audit`'s settings (set once, at start).
    pub fn set_chain(&self, audit: Arc<funnel_app::chain::ChainAudit>) {
        let _ = self.inner.chain.set(audit);
    }

    /// The walks of the log's hash chain: as set at start, else with the checkpoint file and
    /// public key of the settings (the key was checked when they were validated).
    pub fn chain(&self) -> &Arc<funnel_app::chain::ChainAudit> {
        self.inner.chain.get_or_init(|| {
            let options = &self.inner.options;
            Arc::new(funnel_app::chain::ChainAudit::new(chain_settings(
                options, None,
            )))
        })
    }

    /// Where to send requests to this process's saga runtime (set once, by whoever runs it).
    pub fn set_workflow_control(&self, tx: tokio::sync::mpsc::Sender<funnel_workflows::Control>) {
        let _ = self.inner.workflows.set(tx);
    }

    pub fn workflow_control(
        &self,
    ) -> Option<&tokio::sync::mpsc::Sender<funnel_workflows::Control>> {
        self.inner.workflows.get()
    }

    /// Records the leases this process takes part in (set once, at start).
    pub fn set_leases(&self, leases: Vec<LeaseView>) {
        let _ = self.inner.leases.set(leases);
    }

    /// The leases this process takes part in; empty on the embedded store, where one process
    /// runs everything.
    pub fn leases(&self) -> &[LeaseView] {
        self.inner.leases.get().map_or(&[], Vec::as_slice)
    }

    /// The lease named `name`, when this process takes part in one.
    pub fn lease(&self, name: &str) -> Option<&LeaseView> {
        self.leases().iter().find(|l| l.name == name)
    }
}

/// A request's path as the logs show it: without the secret of an invitation link
/// (`/invitations/{token}`), and without the query string.
pub fn loggable_path(path: &str) -> &str {
    if path.starts_with("/invitations/") {
        "/invitations/…"
    } else {
        path
    }
}

/// The whole API and the console. Every route but `/healthz`, `/readyz`, `/openapi.json`,
/// `POST /session` (signing in), the console's sign-in page and its assets needs a bearer token or
/// a session cookie; a console page without them sends the visitor to the sign-in page (see
/// [`console`]).
pub fn router(state: AppState) -> Router {
    use routes::{export, forms, ops, org, read, session, webhooks, workflows, write};
    let limit = state.options().http.body_limit;
    let mut router = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/me", get(read::me))
        .route("/leads/{id}", get(read::lead_record))
        .route(
            "/session",
            post(session::sign_in)
                .get(session::current)
                .delete(session::sign_out),
        )
        .route("/session/revoke-all", post(session::revoke_all))
        .route("/staff/{id}/invitation", post(session::invite))
        .route("/staff/{id}/unlock", post(session::unlock))
        .route(
            "/invitations/{token}",
            post(session::accept_invitation).get(console::invitation_page),
        )
        .route("/leads/{id}/audit", get(read::lead_audit))
        .route("/offices", get(org::list_offices))
        .route("/staff", get(org::list_staff))
        .route("/staff/{id}", get(read::staff_record))
        .route("/calendar/{year}", get(org::calendar));
    // Every command, from its one declaration; then the names no command has.
    for w in write::writes() {
        router = router.route(&w.write.path, w.handler);
    }
    router
        .route(
            "/leads/{id}/commands/{name}",
            post(write::unknown_lead_command),
        )
        .route(
            "/summaries/{id}/{action}",
            post(write::unknown_summary_step),
        )
        .route("/staff/{id}/{action}", post(write::unknown_staff_change))
        .route("/leads", get(read::leads))
        .route("/pipeline", get(read::pipeline))
        .route("/audit/conflicts", get(read::conflicts))
        .route("/audit/plans", get(read::plans))
        .route("/audit/actor/{staff}", get(read::actor_audit))
        .route("/tasks", get(read::tasks))
        .route("/forms/{n}/{id}", get(forms::form))
        .route("/forms/office/{office}", get(forms::office_workbook))
        .route("/workflows", get(workflows::list))
        .route("/workflows/{id}", get(workflows::show))
        .route("/workflows/{id}/retry", post(workflows::retry))
        .route("/events", get(read::events))
        .route("/export/events.parquet", get(export::events_parquet))
        .route("/projections", get(read::projections))
        .route("/verify", get(read::verify))
        .route(
            "/projections/{name}/rebuild",
            post(read::rebuild_projection),
        )
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/webhooks/{id}/{action}", post(webhooks::change))
        .merge(console::routes(limit))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::count_responses,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            ops::panic_problem,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &axum::http::Request<axum::body::Body>| {
                    tracing::debug_span!(
                        "request",
                        method = %req.method(),
                        path = %loggable_path(req.uri().path()),
                        staff = tracing::field::Empty,
                    )
                },
            ),
        )
        .with_state(state)
}
