//! Prometheus metrics (text exposition format) with `prometheus-client`: commands by outcome,
//! refusals by code, append latency, HTTP responses by status class, projection lag (read from the
//! runner at scrape time), the saga backlog and each webhook subscription's lag and failures.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

type Labels = Vec<(String, String)>;

/// The server's metrics. Cheap to clone; clones share the values.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    commands: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    suppressed: Family<Labels, Counter>,
    append_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    responses: Family<Labels, Counter>,
    lag: Family<Labels, Gauge>,
    workflows_running: Gauge,
    saga: Family<Labels, Gauge>,
    saga_position: Arc<std::sync::atomic::AtomicU64>,
    webhooks: Family<Labels, Gauge>,
    leases: Family<Labels, Gauge>,
    lease_terms: Family<Labels, Gauge>,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("funnel");
        let commands = Family::<Labels, Counter>::default();
        let refusals = Family::<Labels, Counter>::default();
        let suppressed = Family::<Labels, Counter>::default();
        let append_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let responses = Family::<Labels, Counter>::default();
        let lag = Family::<Labels, Gauge>::default();
        let workflows_running = Gauge::default();
        let saga = Family::<Labels, Gauge>::default();
        let webhooks = Family::<Labels, Gauge>::default();
        let leases = Family::<Labels, Gauge>::default();
        let lease_terms = Family::<Labels, Gauge>::default();
        registry.register(
            "lease_held",
            "JetStream: 1 while this process holds the lease (`sagas`: runs the saga runtime), \
             else 0",
            leases.clone(),
        );
        registry.register(
            "lease_term",
            "JetStream: the fencing token (term) of the lease while this process holds it, else 0",
            lease_terms.clone(),
        );
        registry.register(
            "saga_backlog",
            "What the saga runtime has not done yet: `lag_positions` behind the log head, \
             `timers_pending`, `timers_overdue`, `reactions_parked`, `instances_active`",
            saga.clone(),
        );
        registry.register(
            "webhook",
            "Per webhook subscription: `lag_positions` behind the log head, `failing` (1 while \
             the current event keeps failing), `failed_attempts` of it, `paused`, `delivered`",
            webhooks.clone(),
        );
        registry.register(
            "commands",
            "Commands handled over HTTP, by command and outcome",
            commands.clone(),
        );
        registry.register(
            "refusals",
            "Refused commands, by refusal code",
            refusals.clone(),
        );
        registry.register(
            "refusal_records_suppressed",
            "Refusals answered but not recorded because the member of staff's budget of refusal \
             records was spent, by refusal code",
            suppressed.clone(),
        );
        registry.register(
            "command_seconds",
            "Time to decide and append a command (the engine's whole path), by command",
            append_seconds.clone(),
        );
        registry.register(
            "http_responses",
            "HTTP responses, by status class",
            responses.clone(),
        );
        registry.register(
            "projection_lag_positions",
            "Positions between the log head and each read model's checkpoint",
            lag.clone(),
        );
        registry.register(
            "workflows_running",
            "1 while the saga runtime runs in this process",
            workflows_running.clone(),
        );
        Self {
            registry: Arc::new(registry),
            commands,
            refusals,
            suppressed,
            append_seconds,
            responses,
            lag,
            workflows_running,
            saga,
            saga_position: Arc::default(),
            webhooks,
            leases,
            lease_terms,
        }
    }
}

impl Metrics {
    /// Records one command's outcome (`accepted`, `duplicate`, `refused` or `failed`) and time.
    pub fn command(&self, name: &str, outcome: &str, seconds: f64, refusal: Option<&str>) {
        self.commands
            .get_or_create(&vec![
                ("command".into(), name.into()),
                ("outcome".into(), outcome.into()),
            ])
            .inc();
        self.append_seconds
            .get_or_create(&vec![("command".into(), name.into())])
            .observe(seconds);
        if let Some(code) = refusal {
            self.refusals
                .get_or_create(&vec![("code".into(), code.into())])
                .inc();
        }
    }

    /// Counts a refusal record the engine left out (the actor's record budget was spent).
    pub fn refusal_record_suppressed(&self, code: &str) {
        self.suppressed
            .get_or_create(&vec![("code".into(), code.into())])
            .inc();
    }

    /// Counts a response by its status class (`2xx` …).
    pub fn response(&self, status: u16) {
        let class = format!("{}xx", status / 100);
        self.responses
            .get_or_create(&vec![("class".into(), class)])
            .inc();
    }

    /// Sets a read model's lag.
    pub fn projection_lag(&self, name: &str, lag: u64) {
        self.lag
            .get_or_create(&vec![("projection".into(), name.into())])
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    /// Records whether this process holds the lease `name`, and its term.
    pub fn lease(&self, name: &str, term: Option<u64>) {
        let labels = vec![("lease".to_string(), name.to_string())];
        self.leases
            .get_or_create(&labels)
            .set(i64::from(term.is_some()));
        self.lease_terms
            .get_or_create(&labels)
            .set(term.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)));
    }

    pub fn workflows_running(&self, running: bool) {
        self.workflows_running.set(i64::from(running));
    }

    /// Records the saga runtime's backlog (its lag is computed against the head at scrape time).
    pub fn saga_backlog(&self, b: &funnel_workflows::Backlog) {
        self.saga_position
            .store(b.position.0, std::sync::atomic::Ordering::Relaxed);
        for (what, n) in [
            ("timers_pending", b.timers_pending),
            ("timers_overdue", b.timers_overdue),
            ("reactions_parked", b.reactions_parked),
            ("instances_active", b.instances_active),
        ] {
            self.saga_gauge(what)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn saga_gauge(&self, what: &str) -> Gauge {
        self.saga
            .get_or_create(&vec![("what".into(), what.into())])
            .clone()
    }

    /// Sets the lags behind `head` that are computed at scrape time: the sagas' (when they run
    /// here) and each webhook subscription's.
    pub fn scrape(
        &self,
        head: u64,
        workflows: bool,
        webhooks: &[funnel_notify::webhooks::Subscription],
    ) {
        if workflows {
            let at = self
                .saga_position
                .load(std::sync::atomic::Ordering::Relaxed);
            self.saga_gauge("lag_positions")
                .set(i64::try_from(head.saturating_sub(at)).unwrap_or(i64::MAX));
        }
        self.webhooks.clear();
        for sub in webhooks {
            let id = sub.id.to_string();
            let failing = sub.failing.as_ref();
            for (what, n) in [
                ("lag_positions", head.saturating_sub(sub.cursor.0)),
                ("failing", u64::from(failing.is_some())),
                (
                    "failed_attempts",
                    failing.map_or(0, |f| u64::from(f.attempts)),
                ),
                ("paused", u64::from(sub.paused)),
                ("delivered", sub.delivered),
            ] {
                self.webhooks
                    .get_or_create(&vec![
                        ("subscription".into(), id.clone()),
                        ("what".into(), what.into()),
                    ])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            tracing::error!("cannot encode the metrics");
        }
        out
    }
}
