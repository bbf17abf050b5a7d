//! `funnel serve` settings, layered: defaults → a TOML file → `FUNNEL__SECTION__KEY` environment
//! variables → command-line flags, then validated once at start with messages that name the
//! setting and where it came from. Unknown settings are refused, so a typo never goes unnoticed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Every setting of `funnel serve`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServeOptions {
    pub http: HttpOptions,
    pub store: StoreOptions,
    pub log: LogOptions,
    pub ready: ReadyOptions,
    pub workflows: WorkflowOptions,
    pub notify: NotifyOptions,
    pub sessions: SessionOptions,
    pub grpc: GrpcOptions,
    pub oidc: OidcOptions,
    pub chain: ChainOptions,
    pub privacy: PrivacyOptions,
}

/// Personal fields of customers' contacts and key persons, sealed with a key per person so that
/// destroying the key erases them (`funnel privacy erase`). On JetStream the keys are in the
/// bucket `<log stream>_KEYS`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyOptions {
    /// The master key that wraps every person's key (`funnel privacy keygen` makes one; readable
    /// by the server's user only; never in the store's folder if backups of it leave the
    /// machine). None: personal fields are written in the clear.
    pub master_key_file: Option<PathBuf>,
    /// The people's keys on the embedded store, wrapped by the master key; none: `<store>.keys`.
    pub keys_file: Option<PathBuf>,
    /// The retention policy: the people of leads that ended (lost, suspended, or signed) and saw
    /// nothing for this many years (1 to 100) are erased, recorded in the log as erased by
    /// `funnel serve retention` with the rule as the reason. Needs `master_key_file`. None: off
    /// (`funnel privacy retention` lists and applies it by hand).
    #[serde(deserialize_with = "optional_number")]
    pub retention_years: Option<u32>,
    /// Hours between two runs of the retention policy (1 to 8760); the first runs at start. On
    /// JetStream only the process holding the lease `retention` runs it.
    pub retention_every_hours: u64,
}

impl Default for PrivacyOptions {
    fn default() -> Self {
        PrivacyOptions {
            master_key_file: None,
            keys_file: None,
            retention_years: None,
            retention_every_hours: 24,
        }
    }
}

impl PrivacyOptions {
    /// As the application layer takes them.
    pub fn settings(&self) -> funnel_app::privacy::PrivacySettings {
        funnel_app::privacy::PrivacySettings {
            master_key_file: self.master_key_file.clone(),
            keys_file: self.keys_file.clone(),
        }
    }
}

/// The hash chain's signed checkpoints and walks (both backends).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ChainOptions {
    /// The Ed25519 key that signs checkpoints of the chain's head (`funnel checkpoint keygen`
    /// makes one; readable by the server's user only). None: no checkpoints are signed.
    pub signing_key_file: Option<PathBuf>,
    /// The public key (hex) checkpoints are checked with; none: the signing key's.
    pub public_key: Option<String>,
    /// A file checkpoints are appended to and read from; none: `<store>.checkpoints` beside the
    /// embedded store, the stream `FUNNEL_CHECKPOINTS` beside a JetStream log. Keep it (or a
    /// copy) where whoever can write the store cannot rewrite it.
    pub checkpoints_file: Option<PathBuf>,
    /// Seconds between two checkpoints, when the head moved (10 to 86400); one more is signed at
    /// shutdown.
    pub checkpoint_every_s: u64,
    /// Minutes between two walks of the whole log, whose outcome the auditor's console shows (0:
    /// only when asked, `GET /verify`).
    pub verify_every_minutes: u64,
    /// An outside witness each signed checkpoint is also sent to (`POST`, the checkpoint as JSON;
    /// `http`/`https`, a public address unless `notify.webhook_allowed_hosts` allows it; the
    /// timeout is `notify.webhook_timeout_ms`). None: the file only.
    pub witness_url: Option<String>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            signing_key_file: None,
            public_key: None,
            checkpoints_file: None,
            checkpoint_every_s: 300,
            verify_every_minutes: 60,
            witness_url: None,
        }
    }
}

/// Signing in through the company's OpenID Connect provider (authorization code flow with PKCE),
/// off unless `issuer` is given. A person links their account by opening an invitation link and
/// choosing the provider; from then on the provider's identity signs them in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OidcOptions {
    /// The provider's issuer URL, exactly as its ID tokens name it (its discovery document is
    /// `{issuer}/.well-known/openid-configuration`); `https`, or `http` on a loopback address.
    pub issuer: Option<String>,
    /// This application's client id at the provider.
    pub client_id: Option<String>,
    /// A file holding the client secret (readable by the server's user only); none: a public
    /// client (PKCE only).
    pub client_secret_file: Option<PathBuf>,
    /// Where the provider sends the browser back: this server's public address followed by
    /// `/sign-in/oidc/callback` (register it at the provider).
    pub redirect_url: Option<String>,
    /// What the sign-in button calls the provider (e.g. `企业微信`); none: 公司账号 / company
    /// account.
    pub display_name: Option<String>,
}

/// The KurrentDB/EventStoreDB-compatible gRPC endpoint (`funnel_grpc`), off unless given an
/// address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcOptions {
    /// Address to serve gRPC on (e.g. `127.0.0.1:2113`); none: off.
    pub listen: Option<String>,
    /// A PEM certificate chain to serve gRPC over TLS with (with `tls_key`); none: plaintext.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// At most this many gRPC connections are open at once; one more is closed at once (clients
    /// retry it as an unavailable node).
    pub max_connections: usize,
}

impl Default for GrpcOptions {
    fn default() -> Self {
        GrpcOptions {
            listen: None,
            tls_cert: None,
            tls_key: None,
            max_connections: 256,
        }
    }
}

/// Browser sessions (`POST /session`): how long one lasts and how its cookie is sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SessionOptions {
    /// A session ends after this many minutes without a request (idle expiry).
    pub idle_minutes: u32,
    /// A session ends this many hours after sign-in, however it is used (absolute expiry).
    pub absolute_hours: u32,
    /// Always mark the session cookies `Secure` (sent over HTTPS only). Without it they are marked
    /// so when the request came over HTTPS as a proxy in front says (`X-Forwarded-Proto: https`
    /// or `Forwarded: proto=https`).
    pub secure_cookie: bool,
    /// Password sign-in locks after this many failures …
    pub lockout_failures: u32,
    /// … within this many minutes …
    pub lockout_window_minutes: u32,
    /// … for this many minutes (headquarters may unlock sooner: `POST /staff/{id}/unlock`).
    pub lockout_minutes: u32,
    /// An invitation link to set a password works for this many hours.
    pub invitation_hours: u32,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            idle_minutes: 60,
            absolute_hours: 12,
            secure_cookie: false,
            lockout_failures: 5,
            lockout_window_minutes: 15,
            lockout_minutes: 15,
            invitation_hours: 72,
        }
    }
}

/// The HTTP listener and request handling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HttpOptions {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a read with `at_least` waits for the read models, in milliseconds.
    pub read_wait_ms: u64,
    /// How long authentication waits for a just-issued token to be projected, in milliseconds.
    pub auth_wait_ms: u64,
    /// A client must send a whole request head within this, in milliseconds, counted from the
    /// moment the connection opens or the previous response was sent: it is also how long an idle
    /// keep-alive connection is kept. A half-sent request is closed after it.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive within this, in milliseconds (else `400`, an unreadable body).
    pub body_timeout_ms: u64,
    /// At most this many connections are served at once; one more is answered `503` and closed.
    pub max_connections: usize,
    /// On shutdown, requests in flight get this long to finish, in milliseconds; then their
    /// connections are dropped (a write either committed or did not) and the read models saved.
    pub shutdown_grace_ms: u64,
    /// A second address that serves `/metrics` without a token (e.g. `127.0.0.1:9090`, for the
    /// scraper); none by default. On `listen`, `/metrics` needs the token of an executive, the
    /// sales department or an auditor.
    pub metrics_listen: Option<String>,
    /// At most this many `/pipeline?as_of=` replays of the log run at once; one more is answered
    /// `503` with `Retry-After`.
    pub max_replays: usize,
    /// How many as-of results are kept, by (log head, moment), for repeated questions.
    pub replay_cache: usize,
}

/// Where the log and the read models live.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StoreOptions {
    /// `sqlite:PATH` or `nats://HOST:PORT`.
    pub url: String,
    /// The read models' file; beside the store (or under `.funnel/` for NATS) when absent.
    pub projections: Option<PathBuf>,
    /// JetStream replicas of the log stream when it is created (1 to 5). Absent: 3 when the URL
    /// names several cluster members, else 1. An existing stream keeps its own (a warning at start
    /// says so; `funnel store set-replicas N` changes them).
    #[serde(deserialize_with = "replicas_setting")]
    pub replicas: Option<usize>,
    /// The same for the notification stream (`notify.nats_stream`); absent: as `replicas`.
    #[serde(deserialize_with = "replicas_setting")]
    pub notify_replicas: Option<usize>,
    /// JetStream only: the time to live of the lease that chooses which process runs the sagas
    /// (1000 to 300000). A holder renews every third of it; when
    /// it dies another takes over after at most this long.
    pub lease_ttl_ms: u64,
    /// Events between two history snapshots of the read models that reports are asked for as of
    /// a past date (0, or 1000 to 10000000; 0 keeps none and every as-of report replays the log
    /// from its start). Fewer events: faster as-of reports, more disk in the read models' file.
    pub history_every: u64,
}

impl StoreOptions {
    /// The log stream's replicas for `url`: the setting, else the default for the URL.
    pub fn log_replicas(&self, url: &str) -> usize {
        self.replicas
            .unwrap_or_else(|| funnel_store_nats::default_replicas(url))
    }

    /// The notification stream's replicas for `url`.
    pub fn notify_replicas(&self, url: &str) -> usize {
        self.notify_replicas
            .unwrap_or_else(|| self.log_replicas(url))
    }
}

/// A replicas setting: a number, or a number in a string (as environment variables give it).
fn replicas_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    number_or_text(d, |t| {
        format!("replicas must be a number from 1 to 5, not `{t}`")
    })
}

/// An optional whole number: a number, or a number in a string (as environment variables give it).
fn optional_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    number_or_text(d, |t| format!("expected a whole number, not `{t}`"))
}

fn number_or_text<'de, D, T>(d: D, refused: impl Fn(&str) -> String) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + std::str::FromStr,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw<T> {
        Number(T),
        Text(String),
    }
    match Option::<Raw<T>>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Number(n)) => Ok(Some(n)),
        Some(Raw::Text(t)) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(refused(&t))),
    }
}

/// Log output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogOptions {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info,funnel_server=debug` (`RUST_LOG` wins when set).
    pub filter: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// When `/readyz` says ready.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReadyOptions {
    /// The read models may be at most this many positions behind the log head (on JetStream a
    /// message counts 1024 positions).
    pub max_lag: u64,
    /// How long the store may take to answer the readiness probe, in milliseconds.
    pub store_timeout_ms: u64,
}

/// The saga runtime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkflowOptions {
    /// Run the workflows (sagas and timers) in this process.
    pub enabled: bool,
}

/// Notifications: webhooks and, on the JetStream backend, per-office NATS subjects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyOptions {
    /// Deliver webhook subscriptions from this process.
    pub webhooks: bool,
    /// How long a webhook receiver has to answer, in milliseconds.
    pub webhook_timeout_ms: u64,
    /// The wait after a failed delivery, in milliseconds; it doubles with each failure …
    pub webhook_backoff_initial_ms: u64,
    /// … up to this.
    pub webhook_backoff_max_ms: u64,
    /// Internal webhook targets allowed despite the rule that targets be public addresses: host
    /// names (exact), IP addresses and CIDR networks, e.g. `["hooks.corp", "10.20.0.0/16"]`.
    pub webhook_allowed_hosts: Vec<String>,
    /// The key file webhook and chat robot secrets are sealed with (made `0600` when missing).
    /// None: `<read models>.webhooks.key` beside the read models. On JetStream every process on
    /// one log must be given the same file (copy it to each machine).
    pub webhook_key_file: Option<PathBuf>,
    /// The dashboard's public address (e.g. `https://funnel.example.com/`): chat robot messages
    /// link to it. None: messages carry no link.
    pub dashboard_url: Option<String>,
    /// Origins (`scheme://host[:port]`) accepted for chat robot URLs besides the vendors' own,
    /// by kind (`dingtalk`, `wecom`, `feishu`), e.g. an egress gateway that forwards to the
    /// vendor. The target rule still applies to them.
    pub robot_origins: std::collections::BTreeMap<String, Vec<String>>,
    /// On the JetStream backend, publish every event again on
    /// `funnel.notify.<office>.<event type>` (ignored on SQLite).
    pub nats_subjects: bool,
    /// The JetStream stream that keeps those notifications.
    pub nats_stream: String,
    /// How long notifications are kept, in hours.
    pub nats_max_age_hours: u64,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        Self {
            webhooks: true,
            webhook_timeout_ms: 10_000,
            webhook_backoff_initial_ms: 1_000,
            webhook_backoff_max_ms: 600_000,
            webhook_allowed_hosts: Vec::new(),
            webhook_key_file: None,
            dashboard_url: None,
            robot_origins: Default::default(),
            nats_subjects: true,
            nats_stream: "FUNNEL_NOTIFY".into(),
            nats_max_age_hours: 30 * 24,
        }
    }
}

impl NotifyOptions {
    pub fn delivery(&self) -> funnel_notify::webhooks::DeliveryOptions {
        use std::time::Duration;
        funnel_notify::webhooks::DeliveryOptions {
            timeout: Duration::from_millis(self.webhook_timeout_ms),
            backoff_initial: Duration::from_millis(self.webhook_backoff_initial_ms),
            backoff_max: Duration::from_millis(self.webhook_backoff_max_ms),
            dashboard_url: self.dashboard_url.clone(),
            ..Default::default()
        }
    }

    /// The webhook target rule with `webhook_allowed_hosts` as its exceptions.
    pub fn targets(&self) -> Result<funnel_notify::webhooks::Targets, String> {
        funnel_notify::webhooks::Targets::new(&self.webhook_allowed_hosts)
            .map_err(|e| format!("notify.webhook_allowed_hosts: {e}"))
    }

    /// The origins `robot_origins` adds for chat robots.
    pub fn robot_origins(&self) -> Result<funnel_notify::webhooks::RobotOrigins, String> {
        use funnel_notify::webhooks::{RobotOrigins, TargetKind};
        let mut out = RobotOrigins::default();
        for (kind, origins) in &self.robot_origins {
            let k = TargetKind::parse(kind)
                .filter(|k| k.is_robot())
                .ok_or_else(|| {
                    format!("notify.robot_origins: `{kind}` is not dingtalk, wecom or feishu")
                })?;
            for o in origins {
                out = out
                    .with(k, o)
                    .map_err(|e| format!("notify.robot_origins.{kind}: `{o}`: {e}"))?;
            }
        }
        Ok(out)
    }

    pub fn republish(&self) -> funnel_notify::nats::RepublishOptions {
        funnel_notify::nats::RepublishOptions {
            stream: self.nats_stream.clone(),
            max_age: std::time::Duration::from_secs(self.nats_max_age_hours.saturating_mul(3600)),
            ..Default::default()
        }
    }
}

impl Default for WorkflowOptions {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            body_limit: 256 * 1024,
            read_wait_ms: 5_000,
            auth_wait_ms: 1_000,
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            max_connections: 1_024,
            shutdown_grace_ms: 10_000,
            metrics_listen: None,
            max_replays: 2,
            replay_cache: 16,
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            url: "sqlite:.funnel/funnel.db".into(),
            projections: None,
            replicas: None,
            notify_replicas: None,
            lease_ttl_ms: 10_000,
            history_every: funnel_projections::RunnerOptions::default().history_every,
        }
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

impl Default for ReadyOptions {
    fn default() -> Self {
        Self {
            max_lag: 10_000,
            store_timeout_ms: 2_000,
        }
    }
}

/// A setting that cannot be used; the message names it and says why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The prefix of environment variables that set options: `FUNNEL__HTTP__LISTEN=0.0.0.0:8080`.
pub const ENV_PREFIX: &str = "FUNNEL__";

impl ServeOptions {
    /// Layers the settings: defaults, then `file` (TOML), then `env` (`FUNNEL__SECTION__KEY`
    /// variables; others are ignored), then `flags` (dotted path → value), and validates them.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, Value)],
    ) -> Result<Self, ConfigError> {
        let defaults = serde_json::to_value(Self::default())
            .map_err(|e| ConfigError(format!("default settings: {e}")))?;
        let mut merged = defaults.clone();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| ConfigError(format!("{} is not valid TOML: {e}", path.display())))?;
            let value = serde_json::to_value(table)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            Self::check(&value, &format!("{}", path.display()))?;
            merge(&mut merged, value);
        }
        for (key, raw) in env {
            let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            let value = typed_like(&defaults, &path, &raw);
            set(&mut merged, &path, value);
            Self::check(&merged, &format!("environment variable {key}"))?;
        }
        for (path, value) in flags {
            let path: Vec<String> = path.split('.').map(str::to_string).collect();
            set(&mut merged, &path, value.clone());
        }
        let options = Self::check(&merged, "the settings")?;
        options.validate()?;
        Ok(options)
    }

    fn check(value: &Value, origin: &str) -> Result<Self, ConfigError> {
        let mut full = serde_json::to_value(Self::default())
            .map_err(|e| ConfigError(format!("default settings: {e}")))?;
        merge(&mut full, value.clone());
        serde_json::from_value(full).map_err(|e| ConfigError(format!("{origin}: {e}")))
    }

    /// Checks values serde cannot: addresses, URLs, ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.grpc_addr()?;
        if self.grpc.tls_cert.is_some() != self.grpc.tls_key.is_some() {
            return Err(ConfigError(
                "grpc.tls_cert and grpc.tls_key go together: give both files or neither".into(),
            ));
        }
        self.store
            .url
            .parse::<funnel_app::StoreUrl>()
            .map_err(|e| ConfigError(format!("store.url `{}`: {e}", self.store.url)))?;
        for (name, value) in [
            ("store.replicas", self.store.replicas),
            ("store.notify_replicas", self.store.notify_replicas),
        ] {
            if let Some(n) = value.filter(|n| !(1..=5).contains(n)) {
                return Err(ConfigError(format!(
                    "{name} is {n}; JetStream keeps 1 to 5 replicas of a stream (3 on a \
                     three-node cluster)"
                )));
            }
        }
        if !(10..=86_400).contains(&self.chain.checkpoint_every_s) {
            return Err(ConfigError(format!(
                "chain.checkpoint_every_s is {}; give 10 to 86400 seconds",
                self.chain.checkpoint_every_s
            )));
        }
        if let Some(u) = &self.chain.witness_url {
            if self.chain.signing_key_file.is_none() {
                return Err(ConfigError(
                    "chain.witness_url needs chain.signing_key_file: only signed checkpoints are sent"
                        .into(),
                ));
            }
            let url = url::Url::parse(u)
                .map_err(|e| ConfigError(format!("chain.witness_url is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(ConfigError(format!(
                    "chain.witness_url: give an http or https URL, not {}",
                    url.scheme()
                )));
            }
        }
        if let Some(key) = &self.chain.public_key {
            funnel_store::checkpoint::PublicKey::from_hex(key).map_err(|e| {
                ConfigError(format!(
                    "chain.public_key is not an Ed25519 public key in hex: {e}"
                ))
            })?;
        }
        if let Some(years) = self.privacy.retention_years {
            if !(1..=100).contains(&years) {
                return Err(ConfigError(format!(
                    "privacy.retention_years is {years}; give 1 to 100 years"
                )));
            }
            if self.privacy.master_key_file.is_none() {
                return Err(ConfigError(
                    "privacy.retention_years needs privacy.master_key_file: only sealed personal \
                     fields can be erased"
                        .into(),
                ));
            }
        }
        if !(1..=8760).contains(&self.privacy.retention_every_hours) {
            return Err(ConfigError(format!(
                "privacy.retention_every_hours is {}; give 1 to 8760 hours",
                self.privacy.retention_every_hours
            )));
        }
        if !(1000..=300_000).contains(&self.store.lease_ttl_ms) {
            return Err(ConfigError(format!(
                "store.lease_ttl_ms is {}; it must be between 1000 and 300000",
                self.store.lease_ttl_ms
            )));
        }
        let every = self.store.history_every;
        if every != 0 && !(1_000..=10_000_000).contains(&every) {
            return Err(ConfigError(format!(
                "store.history_every is {every}; it must be 0 (no history snapshots) or between \
                 1000 and 10000000 events"
            )));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.http.body_limit) {
            return Err(ConfigError(format!(
                "http.body_limit is {} bytes; it must be between 1 KiB and 16 MiB",
                self.http.body_limit
            )));
        }
        if self.http.read_wait_ms > 60_000 || self.http.auth_wait_ms > 60_000 {
            return Err(ConfigError(
                "http.read_wait_ms and http.auth_wait_ms must be at most 60000".into(),
            ));
        }
        let h = &self.http;
        for (name, value, max) in [
            (
                "http.header_read_timeout_ms",
                h.header_read_timeout_ms,
                300_000,
            ),
            ("http.body_timeout_ms", h.body_timeout_ms, 600_000),
            ("http.shutdown_grace_ms", h.shutdown_grace_ms, 600_000),
        ] {
            if !(10..=max).contains(&value) {
                return Err(ConfigError(format!(
                    "{name} is {value}; it must be between 10 and {max}"
                )));
            }
        }
        if !(1..=100_000).contains(&h.max_connections) {
            return Err(ConfigError(format!(
                "http.max_connections is {}; it must be between 1 and 100000",
                h.max_connections
            )));
        }
        if let Some(issuer) = &self.oidc.issuer {
            crate::oidc::check_url("oidc.issuer", issuer)?;
            match &self.oidc.redirect_url {
                Some(r) => crate::oidc::check_url("oidc.redirect_url", r)?,
                None => {
                    return Err(ConfigError(
                        "oidc.redirect_url is needed with oidc.issuer: this server's public address followed by /sign-in/oidc/callback".into(),
                    ));
                }
            }
            if self
                .oidc
                .client_id
                .as_deref()
                .is_none_or(|c| c.trim().is_empty())
            {
                return Err(ConfigError(
                    "oidc.client_id is needed with oidc.issuer: the client id the provider gave this application".into(),
                ));
            }
        }
        if !(1..=100_000).contains(&self.grpc.max_connections) {
            return Err(ConfigError(format!(
                "grpc.max_connections is {}; it must be between 1 and 100000",
                self.grpc.max_connections
            )));
        }
        if !(1..=64).contains(&h.max_replays) || h.replay_cache > 1_024 {
            return Err(ConfigError(format!(
                "http.max_replays ({}) must be between 1 and 64 and http.replay_cache ({}) at \
                 most 1024",
                h.max_replays, h.replay_cache
            )));
        }
        self.metrics_addr()?;
        let sess = &self.sessions;
        if !(1..=7 * 24 * 60).contains(&sess.idle_minutes)
            || !(1..=30 * 24).contains(&sess.absolute_hours)
            || u64::from(sess.idle_minutes) > u64::from(sess.absolute_hours) * 60
        {
            return Err(ConfigError(format!(
                "sessions.idle_minutes ({}) must be between 1 and 10080 and \
                 sessions.absolute_hours ({}) between 1 and 720, and a session may not idle \
                 longer than it lasts",
                sess.idle_minutes, sess.absolute_hours
            )));
        }
        for (name, value, max) in [
            ("sessions.lockout_failures", sess.lockout_failures, 100),
            (
                "sessions.lockout_window_minutes",
                sess.lockout_window_minutes,
                24 * 60,
            ),
            (
                "sessions.lockout_minutes",
                sess.lockout_minutes,
                7 * 24 * 60,
            ),
            ("sessions.invitation_hours", sess.invitation_hours, 30 * 24),
        ] {
            if !(1..=max).contains(&value) {
                return Err(ConfigError(format!(
                    "{name} is {value}; it must be between 1 and {max}"
                )));
            }
        }
        let n = &self.notify;
        if !(100..=300_000).contains(&n.webhook_timeout_ms) {
            return Err(ConfigError(format!(
                "notify.webhook_timeout_ms is {}; it must be between 100 and 300000",
                n.webhook_timeout_ms
            )));
        }
        if n.webhook_backoff_initial_ms < 10
            || n.webhook_backoff_max_ms < n.webhook_backoff_initial_ms
        {
            return Err(ConfigError(format!(
                "notify.webhook_backoff_initial_ms ({}) must be at least 10 and at most \
                 notify.webhook_backoff_max_ms ({})",
                n.webhook_backoff_initial_ms, n.webhook_backoff_max_ms
            )));
        }
        n.targets().map_err(ConfigError)?;
        n.robot_origins().map_err(ConfigError)?;
        if let Some(u) = &n.dashboard_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(ConfigError(format!(
                "notify.dashboard_url `{u}` must be an absolute http or https URL"
            )));
        }
        if n.nats_max_age_hours == 0 || n.nats_stream.is_empty() {
            return Err(ConfigError(
                "notify.nats_stream must be named and notify.nats_max_age_hours above 0".into(),
            ));
        }
        if self.ready.store_timeout_ms == 0 {
            return Err(ConfigError("ready.store_timeout_ms must be above 0".into()));
        }
        Ok(())
    }

    /// The separate address that serves `/metrics` without a token, if any.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        self.http
            .metrics_listen
            .as_deref()
            .map(|a| {
                a.parse().map_err(|e| {
                    ConfigError(format!(
                        "http.metrics_listen `{a}` is not an address like 127.0.0.1:9090: {e}"
                    ))
                })
            })
            .transpose()
    }

    /// The gRPC endpoint's address, when it is on.
    pub fn grpc_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        self.grpc
            .listen
            .as_deref()
            .map(|a| {
                a.parse().map_err(|e| {
                    ConfigError(format!(
                        "grpc.listen `{a}` is not an address like 127.0.0.1:2113: {e}"
                    ))
                })
            })
            .transpose()
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http.listen.parse().map_err(|e| {
            ConfigError(format!(
                "http.listen `{}` is not an address like 127.0.0.1:8080: {e}",
                self.http.listen
            ))
        })
    }
}

/// Merges `over` into `base`, table by table.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn set(base: &mut Value, path: &[String], value: Value) {
    let mut nested = value;
    for key in path.iter().rev() {
        let mut m = Map::new();
        m.insert(key.clone(), nested);
        nested = Value::Object(m);
    }
    merge(base, nested);
}

/// An environment value typed like the default at the same path (numbers and booleans parsed),
/// a string otherwise.
fn typed_like(defaults: &Value, path: &[String], raw: &str) -> Value {
    let default = path.iter().try_fold(defaults, |v, k| v.get(k));
    match default {
        Some(Value::Bool(_)) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" => Value::Bool(false),
            _ => Value::String(raw.into()),
        },
        Some(Value::Number(_)) => raw
            .trim()
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(raw.into())),
        // Lists: comma-separated.
        Some(Value::Array(_)) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.into()))
                .collect(),
        ),
        _ => Value::String(raw.into()),
    }
}
