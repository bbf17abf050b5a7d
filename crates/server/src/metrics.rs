//! Prometheus metrics (text exposition format) with `prometheus-client`: commands by outcome,
//! refusals by code, append latency, HTTP responses by status class, and projection lag (read from
//! the runner at scrape time).

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
    append_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    responses: Family<Labels, Counter>,
    lag: Family<Labels, Gauge>,
    workflows_running: Gauge,
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
        let append_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let responses = Family::<Labels, Counter>::default();
        let lag = Family::<Labels, Gauge>::default();
        let workflows_running = Gauge::default();
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
            append_seconds,
            responses,
            lag,
            workflows_running,
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

    pub fn workflows_running(&self, running: bool) {
        self.workflows_running.set(i64::from(running));
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
