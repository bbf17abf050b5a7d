//! Running the server: open the store and the read models, follow the log, run the sagas and the
//! notifications (webhook delivery; on JetStream the per-office subjects), serve HTTP, and on
//! shutdown stop accepting, let in-flight requests finish (within `http.shutdown_grace_ms`, then
//! drop them), then stop the follower
//! (which saves the read models) and the sagas.

use crate::config::{LogFormat, LogOptions, ServeOptions};
use crate::{AppState, router};
use funnel_app::StoreUrl;
use funnel_domain::Policy;
use funnel_engine::Engine;
use funnel_notify::nats::{RepublishError, RepublishOptions, Republisher};
use funnel_notify::webhooks::{Dispatcher, Webhooks};
use funnel_projections::models::{Conflicts, Pipeline, PlanCompliance, TouchIndex};
use funnel_projections::{Runner, RunnerError, RunnerOptions};
use funnel_store::lease::{Fence, FencedStore, Holding, Lease};
use funnel_types::SystemClock;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{RwLock, watch};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    #[error("cannot open store {url}: {source}")]
    Store {
        url: String,
        source: funnel_store::StoreError,
    },
    #[error("read models at {path}: {source}")]
    Runner { path: PathBuf, source: RunnerError },
    #[error("webhook subscriptions at {path}: {source}")]
    Webhooks {
        path: PathBuf,
        source: funnel_notify::webhooks::WebhookError,
    },
    #[error("credential store at {path}: {source}")]
    Credentials {
        path: PathBuf,
        source: funnel_app::credentials::CredentialError,
    },
    #[error("cannot make the webhook HTTP client: {0}")]
    WebhookClient(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// Sets up structured logs on standard error (JSON lines with `json`). `RUST_LOG` overrides the
/// configured filter. Calling it twice is harmless.
pub fn init_logging(options: &LogOptions) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&options.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match options.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Where the read models of a store are kept unless configured: beside the SQLite file, or under
/// `.funnel/` for NATS (the same place the CLI's queries use).
pub fn projections_path(url: &StoreUrl) -> PathBuf {
    beside_store(url, "projections", "db")
}

/// A local file that belongs to a store: `<stem>.<name>.<ext>` beside a SQLite file, or
/// `.funnel/<name>-<hash of the URL>.<ext>` for NATS.
pub fn beside_store(url: &StoreUrl, name: &str, ext: &str) -> PathBuf {
    match url {
        StoreUrl::Sqlite(p) => {
            let mut file = p.file_stem().map(|s| s.to_os_string()).unwrap_or_default();
            file.push(format!(".{name}.{ext}"));
            p.with_file_name(file)
        }
        StoreUrl::Nats(u) => {
            let digest = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, u.as_bytes())
                .simple()
                .to_string();
            PathBuf::from(format!(".funnel/{name}-{}.{ext}", &digest[..12]))
        }
    }
}

/// Opens the runner with the server's read models: the access model, the four the CLI uses, and
/// the open tasks and instances of the sagas.
pub fn open_runner(path: &Path) -> Result<Runner, RunnerError> {
    open_runner_with(path, RunnerOptions::default())
}

/// [`open_runner`] with these settings.
pub fn open_runner_with(path: &Path, options: RunnerOptions) -> Result<Runner, RunnerError> {
    let mut runner = Runner::open(path, options)?;
    runner
        .register::<funnel_app::auth::Access>()?
        .register::<Pipeline>()?
        .register_tables::<TouchIndex>()?
        .register::<Conflicts>()?
        .register::<PlanCompliance>()?
        .register::<funnel_workflows::Tasks>()?
        .register::<funnel_workflows::Instances>()?
        .register_tables::<funnel_projections::models::LeadIndex>()?;
    Ok(runner)
}

/// Runs `funnel serve` until `shutdown` completes. `on_listening` is told the bound address.
pub async fn serve(
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), ServeError> {
    options.validate()?;
    // The gRPC certificate is read and checked before the store opens or anything listens.
    let grpc_tls = match options.grpc_addr()? {
        Some(_) => grpc_tls(&options.grpc)?,
        None => None,
    };
    // So is the OpenID Connect client secret's file.
    let oidc = crate::oidc::Oidc::from_options(&options.oidc)?;
    let url: StoreUrl = options.store.url.parse().map_err(crate::ConfigError)?;
    let replicas = options.store.log_replicas(&options.store.url);
    let store_error = |source| ServeError::Store {
        url: options.store.url.clone(),
        source,
    };
    // With a master key, the sealing store is kept as such: the retention policy reads its keys.
    let (store, sealed): (Arc<dyn funnel_store::EventStore>, _) =
        match &options.privacy.master_key_file {
            Some(_) => {
                let sealed = funnel_app::privacy::open_sealed_with(
                    &url,
                    Some(replicas),
                    &options.privacy.settings(),
                )
                .await
                .map_err(store_error)?;
                (sealed.clone(), Some(sealed))
            }
            None => (
                funnel_app::open_store_with(&url, Some(replicas), &options.privacy.settings())
                    .await
                    .map_err(store_error)?,
                None,
            ),
        };
    let path = options
        .store
        .projections
        .clone()
        .unwrap_or_else(|| projections_path(&url));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = funnel_store::files::create_private_dir_all(dir);
    }
    let runner_options = RunnerOptions {
        history_every: options.store.history_every,
        ..RunnerOptions::default()
    };
    let runner = open_runner_with(&path, runner_options).map_err(|source| ServeError::Runner {
        path: path.clone(),
        source,
    })?;
    let runner = Arc::new(RwLock::new(runner));
    let hooks = open_webhooks(&url, &path, replicas, &options).await?;
    hooks.set_targets(options.notify.targets().map_err(crate::ConfigError)?);
    hooks.set_robot_origins(options.notify.robot_origins().map_err(crate::ConfigError)?);
    let engine = Engine::new(store.clone(), Policy::default(), Arc::new(SystemClock));
    // Leads registered before customer keys folded look-alikes get their current key reserved
    // before the first request (idempotent; `funnel reserve-keys` does the same on demand).
    match engine.reserve_legacy_keys().await {
        Ok(r) if r.reserved > 0 || !r.taken.is_empty() || !r.refused.is_empty() => {
            tracing::info!(
                reserved = r.reserved,
                taken = r.taken.len(),
                refused = r.refused.len(),
                "customer keys reserved"
            )
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "reserving customer keys failed; run `funnel reserve-keys`")
        }
    }
    // Passwords: beside the read models on the embedded store; on JetStream in a bucket beside
    // the log, so that every process on the cluster knows them.
    let credentials = match &url {
        StoreUrl::Nats(nats_url) => {
            let defaults = funnel_store_nats::NatsOptions::default();
            funnel_app::credentials::Credentials::on_nats(
                nats_url,
                &defaults.stream_name,
                replicas,
                defaults.request_timeout,
            )
            .await
            .map_err(|source| ServeError::Credentials {
                path: PathBuf::from(funnel_store_nats::credentials_bucket(&defaults.stream_name)),
                source,
            })?
        }
        StoreUrl::Sqlite(_) => {
            let credentials_path = sibling(&path, "credentials.db");
            funnel_app::credentials::Credentials::open(&credentials_path).map_err(|source| {
                ServeError::Credentials {
                    path: credentials_path.clone(),
                    source,
                }
            })?
        }
    };
    let state = AppState::new(
        engine.clone(),
        runner.clone(),
        hooks,
        credentials,
        options.clone(),
    );
    if let Some(oidc) = oidc {
        tracing::info!(
            ?oidc,
            "signing in through the company's OpenID Connect provider"
        );
        state.set_oidc(oidc);
    }
    // The hash chain: signed checkpoints of its head, and walks of the log.
    let signer = match &options.chain.signing_key_file {
        Some(p) => Some(Arc::new(
            funnel_store::checkpoint::CheckpointSigner::load(p)
                .map_err(|e| crate::ConfigError(format!("chain.signing_key_file: {e}")))?,
        )),
        None => None,
    };
    let chain = Arc::new(funnel_app::chain::ChainAudit::new(crate::chain_settings(
        &options, signer,
    )));
    state.set_chain(chain.clone());
    let witness = match &options.chain.witness_url {
        Some(u) => Some(Arc::new(
            Witness::new(u, &options.notify)
                .await
                .map_err(crate::ConfigError)?,
        )),
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let (control_tx, control_rx) = tokio::sync::mpsc::channel(8);
    if options.workflows.enabled {
        state.set_workflow_control(control_tx);
    }

    let follower = tokio::spawn(follow_forever(state.clone(), stop_rx.clone()));
    let head = store.head().await.map_err(store_error)?;
    let mut background = vec![tokio::spawn(forget_erased_forever(
        engine.clone(),
        store.clone(),
        head,
        stop_rx.clone(),
    ))];
    // On JetStream several processes may serve one log: the sagas run only in the process holding
    // their lease. On the embedded store this process is the only one and runs them.
    let mut saga_fence = None;
    let mut webhook_fence = None;
    let mut retention_fence = None;
    let retention = sealed.filter(|_| options.privacy.retention_years.is_some());
    if let StoreUrl::Nats(nats_url) = &url {
        let leases = funnel_store_nats::NatsLeases::connect(
            nats_url,
            &funnel_store_nats::NatsOptions::default().stream_name,
            replicas,
            Duration::from_millis(options.store.lease_ttl_ms),
            funnel_store_nats::NatsOptions::default().request_timeout,
        )
        .await
        .map_err(|source| ServeError::Store {
            url: options.store.url.clone(),
            source,
        })?;
        let leases: Arc<dyn funnel_store::lease::LeaseStore> = Arc::new(leases);
        let holder = holder_id();
        let mut views = Vec::new();
        // The sagas and the webhook dispatch each run in the one process holding their lease.
        for (name, wanted, fence) in [
            (SAGAS_LEASE, options.workflows.enabled, &mut saga_fence),
            (WEBHOOKS_LEASE, options.notify.webhooks, &mut webhook_fence),
            (RETENTION_LEASE, retention.is_some(), &mut retention_fence),
        ] {
            if !wanted {
                continue;
            }
            let lease = Arc::new(Lease::new(name, holder.clone(), leases.clone()));
            views.push(crate::LeaseView {
                name: name.into(),
                holder: holder.clone(),
                state: lease.watch(),
            });
            *fence = Some(lease.fence());
            let stop = stop_rx.clone();
            background.push(tokio::spawn(async move {
                lease.run(stopped(stop)).await;
            }));
            tracing::info!(%holder, lease = name, "taking part in a lease of the log");
        }
        state.set_leases(views);
    }
    if options.notify.webhooks {
        let hooks = state.webhooks().clone();
        let store = store.clone();
        let delivery = options.notify.delivery();
        // Fail at start on a client that cannot be made, not at the first holding.
        Dispatcher::new(hooks.clone(), store.clone(), delivery.clone())
            .map_err(|e| ServeError::WebhookClient(e.to_string()))?;
        let stop = stop_rx.clone();
        background.push(tokio::spawn(async move {
            // On JetStream, only while this process holds the `webhooks` lease; every attempt
            // first passes its fence.
            while_held(webhook_fence, stop, |term, until| {
                let hooks = hooks.clone();
                let store = store.clone();
                let delivery = delivery.clone();
                async move {
                    match Dispatcher::new(hooks, store, delivery) {
                        Ok(d) => d.fenced(term).run(until).await,
                        Err(e) => tracing::error!(error = %e, "cannot start the webhook dispatch"),
                    }
                }
            })
            .await;
        }));
    }
    if let (Some(sealed), Some(years)) = (retention, options.privacy.retention_years) {
        let engine = engine.clone();
        let every = Duration::from_secs(options.privacy.retention_every_hours * 3600);
        let stop = stop_rx.clone();
        background.push(tokio::spawn(async move {
            // On JetStream, only while this process holds the `retention` lease.
            while_held(retention_fence, stop, |_, until| {
                retention_forever(sealed.clone(), engine.clone(), years, every, until)
            })
            .await;
        }));
    }
    let signing = match (&chain.settings().signer, &chain.settings().checkpoints) {
        (Some(signer), Some(place)) => Some(Arc::new(Signing {
            store: store.clone(),
            signer: signer.clone(),
            place: place.clone(),
            witness,
        })),
        _ => None,
    };
    background.push(tokio::spawn(chain_forever(
        store.clone(),
        chain.clone(),
        signing.clone(),
        options.chain.clone(),
        stop_rx.clone(),
    )));
    if let (StoreUrl::Nats(nats_url), true) = (&url, options.notify.nats_subjects) {
        background.push(tokio::spawn(republish_forever(
            nats_url.clone(),
            store.clone(),
            RepublishOptions {
                replicas: options.store.notify_replicas(nats_url),
                ..options.notify.republish()
            },
            stop_rx.clone(),
        )));
    }
    let addr = options.listen_addr()?;
    let listener = bind(addr).await?;
    let bound = listener.local_addr().map_err(ServeError::Http)?;
    let metrics_listener = match options.metrics_addr()? {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let grpc_listener = match options.grpc_addr()? {
        Some(a) => Some((bind(a).await?, grpc_tls)),
        None => None,
    };
    tracing::info!(%bound, store = %options.store.url, projections = %path.display(), "listening");
    on_listening(bound);
    if let Some((g, tls)) = &grpc_listener {
        let g = g.local_addr().map_err(ServeError::Http)?;
        let tls = tls.is_some();
        tracing::info!(%g, tls, "serving the KurrentDB-compatible gRPC endpoint");
        // Beside the first line, for scripts and tests that asked for port 0.
        println!("funnel serve grpc on {g}");
    }
    if let Some(m) = &metrics_listener {
        let m = m.local_addr().map_err(ServeError::Http)?;
        tracing::info!(%m, "serving /metrics without a token");
        // Beside the first line, for scripts and tests that asked for port 0.
        println!("funnel serve metrics on http://{m}/metrics");
    }
    let (http_stop_tx, http_stop_rx) = watch::channel(false);
    let http = async {
        let limits = Limits::from(&options.http);
        let connections = Arc::new(tokio::sync::Semaphore::new(options.http.max_connections));
        let body_deadline = Duration::from_millis(options.http.body_timeout_ms);
        let app = router(state.clone()).layer(tower::util::MapRequestLayer::new(
            move |req: axum::extract::Request| {
                req.map(|body| axum::body::Body::new(DeadlineBody::new(body, body_deadline)))
            },
        ));
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; finishing requests in flight");
            let _ = http_stop_tx.send(true);
        };
        let main = serve_http(
            listener,
            app,
            limits,
            connections.clone(),
            http_stop_rx.clone(),
        );
        let metrics = async {
            if let Some(l) = metrics_listener {
                let app = crate::routes::ops::metrics_router(state.clone());
                serve_http(l, app, limits, connections.clone(), http_stop_rx.clone()).await;
            }
        };
        let grpc = async {
            if let Some((l, tls)) = grpc_listener {
                let mut stop = http_stop_rx.clone();
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = funnel_grpc::serve(
                    l,
                    state.reads().clone(),
                    tls,
                    options.grpc.max_connections,
                    stopped,
                )
                .await
                {
                    tracing::error!(error = %e, "the gRPC endpoint stopped");
                }
            }
        };
        tokio::join!(signal, main, metrics, grpc);
        // HTTP is drained (or its deadline passed): stop following (which saves the read
        // models) and the sagas.
        let _ = stop_tx.send(true);
        Ok::<(), std::io::Error>(())
    };
    // The saga runtime's future is not `Send`, so it runs on this task beside the HTTP accept
    // loop (connections are served on their own tasks) rather than being spawned.
    let sagas = async {
        if options.workflows.enabled {
            let checkpoint = sibling(&path, "workflows.db");
            let control = Arc::new(tokio::sync::Mutex::new(control_rx));
            let state = &state;
            let checkpoint = &checkpoint;
            let engine = &engine;
            while_held(saga_fence, stop_rx.clone(), |term, until| {
                let control = control.clone();
                async move {
                    let mut control = control.lock().await;
                    // Under a lease every append of the sagas (their commands through the engine
                    // and the instances' own events) passes the fence under this term first.
                    let engine = match term {
                        Some((fence, term)) => Engine::new(
                            Arc::new(FencedStore::new(engine.store().clone(), fence, term)),
                            Policy::default(),
                            Arc::new(SystemClock),
                        ),
                        None => engine.clone(),
                    };
                    workflows_forever(
                        state.clone(),
                        engine,
                        checkpoint.clone(),
                        &mut control,
                        until,
                    )
                    .await;
                }
            })
            .await;
        }
    };
    let (served, ()) = tokio::join!(http, sagas);
    if let Err(e) = follower.await {
        tracing::error!(error = %e, "the projection follower ended abnormally");
    }
    for task in background {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "a background task ended abnormally");
        }
    }
    // Nothing appends any more: the last checkpoint covers everything this process wrote.
    if let Some(s) = &signing {
        s.sign(None).await;
    }
    tracing::info!("stopped");
    served.map_err(ServeError::Http)
}

/// The gRPC endpoint's certificate and key, when it serves over TLS.
fn grpc_tls(options: &crate::config::GrpcOptions) -> Result<Option<funnel_grpc::Tls>, ServeError> {
    let (Some(cert), Some(key)) = (&options.tls_cert, &options.tls_key) else {
        return Ok(None);
    };
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|e| {
            ServeError::Config(crate::ConfigError(format!(
                "{what} `{}` cannot be read: {e}",
                path.display()
            )))
        })
    };
    let tls = funnel_grpc::Tls {
        cert_pem: read(cert, "grpc.tls_cert")?,
        key_pem: read(key, "grpc.tls_key")?,
    };
    // A certificate that cannot serve stops the start, before anything listens.
    tls.check()
        .map_err(|e| ServeError::Config(crate::ConfigError(e.to_string())))?;
    Ok(Some(tls))
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// The limits every connection is served with (`http.*` settings).
#[derive(Clone, Copy, Debug)]
struct Limits {
    header_read: Duration,
    grace: Duration,
}

impl From<&crate::config::HttpOptions> for Limits {
    fn from(h: &crate::config::HttpOptions) -> Self {
        Self {
            header_read: Duration::from_millis(h.header_read_timeout_ms),
            grace: Duration::from_millis(h.shutdown_grace_ms),
        }
    }
}

/// Serves `app` on `listener` over HTTP/1.1 until `stop` turns true: every connection holds a
/// permit of `connections` (one over the limit is answered `503` and closed), must send each
/// request head within `header_read` (which also ends idle keep-alive connections), and on stop
/// gets `grace` to finish what is in flight; connections still open then are dropped.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: Limits,
    connections: Arc<tokio::sync::Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut tasks = tokio::task::JoinSet::new();
    // Refusals of connections over the limit are bounded too: past these, a connection is just
    // closed, so a flood cannot run the process out of file descriptors through them.
    let refusals = Arc::new(tokio::sync::Semaphore::new(REFUSALS_AT_ONCE));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            match refusals.clone().try_acquire_owned() {
                Ok(refusing) => {
                    tracing::warn!(%peer, "too many connections; answering 503");
                    tasks.spawn(async move {
                        refuse_busy(stream).await;
                        drop(refusing);
                    });
                }
                Err(_) => {
                    tracing::warn!(%peer, "too many connections; closing without an answer");
                    drop(stream);
                }
            }
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http1.serve_connection(TokioIo::new(stream), service));
        tasks.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.grace) => {
            tracing::warn!(
                connections = tasks.len(),
                "shutdown deadline passed; dropping the connections still open"
            );
        }
    }
    tasks.shutdown().await;
}

/// Connections over the limit answered with a `503` at once, at most.
const REFUSALS_AT_ONCE: usize = 64;

/// Answers a connection over the limit with `503` and a problem document, then closes it. The
/// request is not read; the write is bounded so a client that does not read cannot hold the task.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let problem = crate::problem::Problem::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "server.busy",
        "the server has too many connections open; try again shortly",
        "服务器连接数已满，请稍后重试",
    );
    let body = serde_json::to_string(&problem).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Drain what the client sent so closing does not reset the connection before it reads.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The outside witness signed checkpoints are also sent to (`chain.witness_url`): through the
/// client every outgoing request uses (the target rule decides where it may connect), with the
/// webhooks' timeout. A checkpoint it does not take is logged and not sent again: each one is
/// whole on its own, and the next one covers everything before it.
#[derive(Debug)]
struct Witness {
    url: url::Url,
    client: reqwest::Client,
    timeout: Duration,
}

impl Witness {
    async fn new(url: &str, notify: &crate::config::NotifyOptions) -> Result<Witness, String> {
        // The URL may carry a credential: errors name its host only.
        let url =
            url::Url::parse(url).map_err(|e| format!("chain.witness_url is not a URL: {e}"))?;
        let targets = Arc::new(notify.targets()?);
        targets.check_url(&url).await.map_err(|e| {
            format!(
                "chain.witness_url (host {}): {e}",
                url.host_str().unwrap_or_default()
            )
        })?;
        let client = funnel_notify::webhooks::guarded_client(
            targets,
            concat!("funnel-witness/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| format!("chain.witness_url: {e}"))?;
        Ok(Witness {
            url,
            client,
            timeout: Duration::from_millis(notify.webhook_timeout_ms),
        })
    }

    async fn send(&self, c: &funnel_store::checkpoint::Checkpoint) {
        let body = serde_json::to_vec(c).unwrap_or_default();
        let sent = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(position = %c.position, "the checkpoint witness took a checkpoint")
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), position = %c.position, "the checkpoint witness refused a checkpoint")
            }
            Err(e) => {
                tracing::warn!(error = %e, position = %c.position, "the checkpoint witness cannot be reached")
            }
        }
    }
}

/// Signing the chain's head into the checkpoint file, each checkpoint also sent to the witness.
#[derive(Debug)]
struct Signing {
    store: Arc<dyn funnel_store::EventStore>,
    signer: Arc<funnel_store::checkpoint::CheckpointSigner>,
    place: funnel_app::chain::Checkpoints,
    witness: Option<Arc<Witness>>,
}

impl Signing {
    /// Signs the head unless it is `last`; the position signed, if one was.
    async fn sign(&self, last: Option<funnel_types::Position>) -> Option<funnel_types::Position> {
        match funnel_app::chain::sign_head(self.store.as_ref(), &self.signer, &self.place, last)
            .await
        {
            Ok(Some(c)) => {
                tracing::info!(position = %c.position, "signed a checkpoint of the chain's head");
                if let Some(w) = &self.witness {
                    w.send(&c).await;
                }
                Some(c.position)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "signing the chain's head failed");
                None
            }
        }
    }
}

/// Signs the chain's head every `chain.checkpoint_every_s` when it moved (with a signing key), and
/// walks the whole log every `chain.verify_every_minutes` (the first walk a minute after start),
/// until told to stop.
async fn chain_forever(
    store: Arc<dyn funnel_store::EventStore>,
    chain: Arc<funnel_app::chain::ChainAudit>,
    signing: Option<Arc<Signing>>,
    options: crate::config::ChainOptions,
    stop: watch::Receiver<bool>,
) {
    let sign_every = Duration::from_secs(options.checkpoint_every_s);
    let verify_every = Duration::from_secs(options.verify_every_minutes * 60);
    let mut next_sign = tokio::time::Instant::now();
    let mut next_walk = (options.verify_every_minutes > 0)
        .then(|| tokio::time::Instant::now() + Duration::from_secs(60));
    let mut signed = None;
    loop {
        let now = tokio::time::Instant::now();
        if let Some(s) = &signing
            && now >= next_sign
        {
            if let Some(p) = s.sign(signed).await {
                signed = Some(p);
            }
            next_sign = now + sign_every;
        }
        if let Some(at) = next_walk.filter(|at| now >= *at) {
            if let Err(e) = chain.current(store.as_ref(), true).await {
                tracing::error!(error = %e, "walking the log's hash chain failed");
            }
            next_walk = Some(at.max(now) + verify_every);
        }
        let wake = match (&signing, next_walk) {
            (Some(_), Some(w)) => next_sign.min(w),
            (Some(_), None) => next_sign,
            (None, Some(w)) => w,
            (None, None) => return,
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = stopped(stop.clone()) => return,
        }
    }
}

/// Who the log records as having erased the people the retention policy reaches.
pub const RETENTION_BY: &str = "funnel serve retention";

/// Runs the retention policy of `years` years at start (or on taking its lease) and then every
/// `every`, until `until` completes. A run that fails is logged and tried again at the next.
async fn retention_forever(
    sealed: Arc<funnel_app::privacy::SealedStore>,
    engine: Engine,
    years: u32,
    every: Duration,
    until: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
) {
    let runs = async {
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::time::sleep_until(next).await;
            next = tokio::time::Instant::now() + every;
            match funnel_app::privacy::retention(
                &sealed,
                years,
                chrono::Utc::now(),
                Some((&engine, RETENTION_BY)),
                &mut |_| {},
            )
            .await
            {
                Ok(run) => tracing::info!(
                    years,
                    cutoff = %run.cutoff,
                    leads = run.leads.len(),
                    erased = run.erased.len(),
                    "retention policy applied"
                ),
                Err(e) => tracing::error!(error = %e, "applying the retention policy failed"),
            }
        }
    };
    tokio::select! {
        () = runs => {}
        () = until => {}
    }
}

/// Follows the erasures recorded in the log after `from` (`privacy.subject_erased`, category
/// `erasure`) and drops each erased person's lead from `engine`'s memory, so that this process
/// folds it again, reading the person's fields as erased, whoever recorded the erasure: another
/// process of the cluster, or `funnel privacy erase` at the command line. Resumes after an error
/// from the last erasure seen, until `stop`.
pub async fn forget_erased_forever(
    engine: Engine,
    store: Arc<dyn funnel_store::EventStore>,
    from: funnel_types::Position,
    stop: watch::Receiver<bool>,
) {
    use funnel_store::{Filter, SubscriptionItem};
    use futures::StreamExt;
    let mut after = from;
    loop {
        let mut erasures = store.clone().subscribe(after, Filter::category("erasure"));
        loop {
            let item = tokio::select! {
                item = erasures.next() => item,
                () = stopped(stop.clone()) => return,
            };
            match item {
                Some(Ok(SubscriptionItem::Event(e))) => {
                    after = e.meta.position;
                    if e.meta.event_type == funnel_domain::erasure::SUBJECT_ERASED
                        && let Some(lead) = serde_json::from_slice::<serde_json::Value>(&e.payload)
                            .ok()
                            .and_then(|v| v["lead_id"].as_str()?.parse().ok())
                    {
                        engine.forget_lead(funnel_types::LeadId(lead));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::error!(error = %e, "following erasures failed; resuming in 1 s");
                    break;
                }
                None => break,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = stopped(stop.clone()) => return,
        }
    }
}

/// Follows the log with the runner until told to stop, restarting after an error.
async fn follow_forever(state: AppState, stop: watch::Receiver<bool>) {
    loop {
        let result = funnel_projections::follow(
            state.runner(),
            state.store().as_ref(),
            stopped(stop.clone()),
            &mut |_| {},
        )
        .await;
        match result {
            Ok(()) => return,
            Err(e) => tracing::error!(error = %e, "projection follower failed; restarting in 1 s"),
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = stopped(stop.clone()) => return,
        }
    }
}

/// Republishes the log on the per-office NATS subjects until told to stop, reconnecting and
/// resuming after an error.
async fn republish_forever(
    url: String,
    store: Arc<dyn funnel_store::EventStore>,
    options: RepublishOptions,
    stop: watch::Receiver<bool>,
) {
    loop {
        let result = async {
            let addrs = funnel_store_nats::server_addrs(&url)?;
            let client = async_nats::ConnectOptions::new()
                .name("funnel-notify")
                .max_reconnects(None)
                .connect(addrs)
                .await
                .map_err(|e| RepublishError::Nats(e.to_string()))?;
            Republisher::new(client, store.clone(), options.clone())
                .run(stopped(stop.clone()))
                .await
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, "republishing on funnel.notify failed; retrying in 1 s")
            }
        }
        // Soon: a leader election of the log or the notification stream ends within seconds.
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = stopped(stop.clone()) => return,
        }
    }
}

/// The lease of the saga runtime.
pub const SAGAS_LEASE: &str = "sagas";

/// The name of the lease whose holder applies the retention policy.
pub const RETENTION_LEASE: &str = "retention";

/// The name of the lease whose holder delivers the webhook subscriptions.
pub const WEBHOOKS_LEASE: &str = "webhooks";

/// The webhook subscriptions: beside the read models on the embedded store; on JetStream in
/// buckets of the log's cluster, shared by every process on the log, their secrets sealed with
/// `notify.webhook_key_file`. Subscriptions a process kept in its own file before they were
/// shared are moved into the buckets once (and the file deleted).
async fn open_webhooks(
    url: &StoreUrl,
    path: &Path,
    replicas: usize,
    options: &ServeOptions,
) -> Result<Webhooks, ServeError> {
    let local = sibling(path, "webhooks.db");
    let StoreUrl::Nats(nats_url) = url else {
        return Webhooks::open(&local).map_err(|source| ServeError::Webhooks {
            path: local.clone(),
            source,
        });
    };
    let defaults = funnel_store_nats::NatsOptions::default();
    let key_file = options
        .notify
        .webhook_key_file
        .clone()
        .unwrap_or_else(|| sibling(path, "webhooks.key"));
    let bucket = PathBuf::from(funnel_notify::webhooks::kv::subscriptions_bucket(
        &defaults.stream_name,
    ));
    let hooks = Webhooks::open_on_cluster(
        nats_url,
        &defaults.stream_name,
        replicas,
        defaults.request_timeout,
        &key_file,
    )
    .await
    .map_err(|source| ServeError::Webhooks {
        path: bucket.clone(),
        source,
    })?;
    if local.exists() {
        let err = |source| ServeError::Webhooks {
            path: local.clone(),
            source,
        };
        let old = Webhooks::open(&local).map_err(err)?;
        let moved = hooks.import(&old).await.map_err(err)?;
        drop(old);
        for suffix in ["", "-wal", "-shm"] {
            let mut name = local.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(name));
        }
        tracing::info!(
            subscriptions = moved,
            from = %local.display(),
            to = %bucket.display(),
            "webhook subscriptions moved into the log's cluster"
        );
    }
    Ok(hooks)
}

/// This process's identity in lease records: host, process id and a random part, so a restarted
/// process (same host and, possibly, the same id) is a new holder.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let nonce = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}/{}/{}", std::process::id(), &nonce[24..])
}

/// Runs `work` while this process holds the lease behind `fence` (always, without one: the
/// embedded store), until `stop`. `work` gets the fence and term of the holding and a future that
/// completes when the holding ends or the server stops; after it returns the lease is waited for
/// again.
async fn while_held<F, Fut>(fence: Option<Fence>, stop: watch::Receiver<bool>, mut work: F)
where
    F: FnMut(Option<(Fence, u64)>, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(fence) = fence else {
        work(None, Box::pin(stopped(stop))).await;
        return;
    };
    loop {
        let mut holding = fence.watch();
        let term = tokio::select! {
            held = holding.wait_for(|h| h.term_now().is_some()) => match held {
                Ok(h) => h.term_now(),
                Err(_) => return,
            },
            () = stopped(stop.clone()) => return,
        };
        let Some(term) = term else { continue };
        tracing::info!(
            lease = fence.name(),
            term,
            "this process holds the lease; starting its work"
        );
        let stop_work = stop.clone();
        let until = Box::pin(async move {
            tokio::select! {
                _ = holding.wait_for(|h| !matches!(h, Holding::Yes { term: t, .. } if *t == term)) => {}
                () = stopped(stop_work) => {}
            }
        });
        work(Some((fence.clone(), term)), until).await;
        if *stop.borrow() {
            return;
        }
        tracing::warn!(
            lease = fence.name(),
            term,
            "the lease is no longer held here; its work stopped"
        );
    }
}

/// `<stem>.<suffix>` beside `path`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_default();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// Runs the sagas (`funnel_workflows::WorkflowRuntime::run`) until told to stop, restarting after
/// an error. Their checkpoint is kept beside the read models.
async fn workflows_forever(
    state: AppState,
    engine: Engine,
    checkpoint: PathBuf,
    control: &mut tokio::sync::mpsc::Receiver<funnel_workflows::Control>,
    until: impl Future<Output = ()>,
) {
    // `until` becomes a flag the restarts below can look at.
    let (stop_tx, stop) = watch::channel(false);
    let relay = async move {
        until.await;
        let _ = stop_tx.send(true);
    };
    tokio::pin!(relay);
    let run = workflows_loop(state, engine, checkpoint, control, stop);
    tokio::pin!(run);
    tokio::select! {
        () = &mut run => {}
        () = &mut relay => run.await,
    }
}

async fn workflows_loop(
    state: AppState,
    engine: Engine,
    checkpoint: PathBuf,
    control: &mut tokio::sync::mpsc::Receiver<funnel_workflows::Control>,
    stop: watch::Receiver<bool>,
) {
    state.metrics().workflows_running(true);
    loop {
        let runtime = funnel_workflows::WorkflowRuntime::new(
            engine.clone(),
            Arc::new(SystemClock),
            Some(&checkpoint),
        );
        let result = match runtime {
            Ok(mut runtime) => {
                let metrics = state.metrics().clone();
                runtime
                    .run_controlled(
                        stopped(stop.clone()),
                        &mut |b| metrics.saga_backlog(b),
                        control,
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => break,
            Err(e) => tracing::error!(error = %e, "saga runtime failed; restarting in 5 s"),
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            () = stopped(stop.clone()) => break,
        }
    }
    state.metrics().workflows_running(false);
}

/// A request body that must arrive whole within a deadline counted from the request's start (not
/// from its last chunk: a client dripping a byte at a time cannot hold a connection for ever).
/// Past it, reading fails, which the handlers answer with `400 request.unreadable_body`.
struct DeadlineBody {
    inner: axum::body::Body,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: axum::body::Body, within: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(within)),
        }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if self.inner.is_end_stream() {
            return std::task::Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Some(Err(axum::Error::new(
                "the request body did not arrive within http.body_timeout_ms",
            ))));
        }
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
