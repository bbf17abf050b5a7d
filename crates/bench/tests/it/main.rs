//! Runs a tiny benchmark on each backend (a temporary SQLite file, a testkit `nats-server`) and checks
//! that the report is well formed: every rate positive, every ratio finite, the JSON form complete.
//! Nothing here asserts on speed.

use funnel_bench::{StoreBenchOptions, StoreBenchReport, Target, bench_store};
use funnel_testkit::NatsServer;
use std::cell::RefCell;

fn tiny() -> StoreBenchOptions {
    StoreBenchOptions {
        events: 500,
        payload_bytes: 100,
        in_flight: 16,
        streams: 50,
        sealed: false,
    }
}

/// Runs the benchmark, collecting the distinct phases the progress callback named.
async fn run(target: Target) -> (StoreBenchReport, Vec<String>) {
    run_with(target, tiny()).await
}

async fn run_with(target: Target, opts: StoreBenchOptions) -> (StoreBenchReport, Vec<String>) {
    let phases = RefCell::new(Vec::<String>::new());
    let progress = |phase: &str, done: u64, total: u64| {
        assert!(done <= total, "{phase}: {done} of {total}");
        let mut phases = phases.borrow_mut();
        if !phases.iter().any(|p| p == phase) {
            phases.push(phase.to_string());
        }
    };
    let report = bench_store(target, opts, &progress)
        .await
        .expect("the benchmark runs");
    (report, phases.into_inner())
}

fn check_well_formed(report: &StoreBenchReport, backend: &str) {
    assert_eq!(report.backend, backend);
    assert_eq!(report.events, 500);
    let rates = [
        report.raw_append_per_s,
        report.funnel_append_per_s,
        report.raw_read_all_per_s,
        report.funnel_read_all_per_s,
    ];
    assert!(
        rates.iter().all(|r| r.is_finite() && *r > 0.0),
        "{report:?}"
    );
    for r in [report.append_ratio, report.read_all_ratio] {
        assert!(r.is_finite() && r > 0.0, "{report:?}");
    }
    let json = serde_json::to_value(report).expect("the report serializes");
    for key in [
        "raw_append_per_s",
        "funnel_append_per_s",
        "append_ratio",
        "raw_read_all_per_s",
        "funnel_read_all_per_s",
        "read_all_ratio",
        "backend",
        "events",
        "payload_bytes",
        "in_flight",
        "notes",
    ] {
        assert!(json.get(key).is_some(), "JSON report lacks {key}: {json}");
    }
    let table = report.to_string();
    assert!(
        table.contains("append") && table.contains("read-all"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_sqlite_bench_gives_a_well_formed_report_and_cleans_up() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let target = dir.path().join("funnel.sqlite");
    let (report, phases) = run(Target::Sqlite {
        path: target.clone(),
    })
    .await;
    check_well_formed(&report, "sqlite");
    assert!(report.sqlite_version.is_some());
    assert_eq!(report.sqlite_synchronous.as_deref(), Some("FULL"));
    let group = report
        .raw_group_commit_append_per_s
        .expect("group-commit baseline");
    assert!(group.is_finite() && group > 0.0);
    assert_eq!(phases.len(), 5, "{phases:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list the directory")
        .collect();
    assert!(left.is_empty(), "the benchmark left files behind: {left:?}");
    assert!(!target.exists());
}

/// Sealed, every event read back must open to the bytes appended (the read-all checks the bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_sqlite_bench_reads_back_what_it_appended() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let opts = StoreBenchOptions {
        sealed: true,
        ..tiny()
    };
    let (report, _) = run_with(
        Target::Sqlite {
            path: dir.path().join("funnel.sqlite"),
        },
        opts,
    )
    .await;
    check_well_formed(&report, "sqlite");
    assert!(report.notes.iter().any(|n| n.starts_with("sealed")));
    let too_small = StoreBenchOptions {
        payload_bytes: 40,
        ..opts
    };
    assert!(too_small.validate().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_nats_bench_gives_a_well_formed_report_and_deletes_its_streams() {
    let server = NatsServer::start();
    let (report, phases) = run(Target::Nats { url: server.url() }).await;
    check_well_formed(&report, "nats");
    assert!(report.server_version.is_some());
    assert_eq!(phases.len(), 4, "{phases:?}");
    assert!(
        !report.notes.iter().any(|n| n.contains("could not delete")),
        "{:?}",
        report.notes
    );
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = futures::StreamExt::collect::<Vec<_>>(js.stream_names())
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("list streams");
    assert!(names.is_empty(), "streams left behind: {names:?}");
}

fn tiny_engine() -> funnel_bench::EngineBenchOptions {
    funnel_bench::EngineBenchOptions {
        long_stream: 120,
        short_stream: 10,
        flat_commands: 10,
        flat_rounds: 1,
        ratio_commands: 200,
        aggregates: 20,
        in_flight: 8,
    }
}

/// The engine benchmark's JSON holds exactly `flatness` and `engine_ratio`, both positive and
/// finite, on both backends; the long lead really holds the long history and has a snapshot.
async fn check_engine(target: Target) {
    let (report, details) = funnel_bench::bench_engine(target, &tiny_engine(), &|_, _, _| {})
        .await
        .expect("engine bench");
    let json = serde_json::to_value(&report).expect("json");
    let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["engine_ratio", "flatness"]);
    for v in [report.flatness, report.engine_ratio] {
        assert!(v.is_finite() && v > 0.0, "{report:?}");
    }
    assert!(details.raw_per_s > 0.0 && details.engine_per_s > 0.0);
    assert!(
        details.snapshot_bytes.is_some(),
        "the long lead has a snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_bench_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    check_engine(Target::Sqlite {
        path: dir.path().join("funnel.db"),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_bench_on_nats() {
    let server = NatsServer::start();
    check_engine(Target::Nats { url: server.url() }).await;
}

/// The export benchmark writes every generated event as a row and reports a positive, finite
/// ratio against the store's read-all rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_export_bench_writes_every_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = funnel_bench::bench_export_on(
        Target::Sqlite {
            path: dir.path().join("funnel.db"),
        },
        2_000,
        &|_, _, _| {},
    )
    .await
    .expect("export bench");
    assert!(report.events >= 2_000, "{report:?}");
    for v in [
        report.rows_per_s,
        report.read_all_per_s,
        report.export_ratio,
    ] {
        assert!(v.is_finite() && v > 0.0, "{report:?}");
    }
    assert!(report.file_mb > 0.0, "{report:?}");
}

/// The HTTP benchmark runs `funnel serve` on a small generated log; its JSON holds exactly the
/// five keys the project names, each positive and finite (every request it timed succeeded, or
/// the run would have failed with the server's answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_http_bench_gives_exactly_its_five_figures() {
    let opts = funnel_bench::HttpBenchOptions {
        events: 3_000,
        connections: 4,
        registrations: 20,
        pipelines: 5,
        as_ofs: 3,
        audits: 5,
    };
    let (report, _details) = funnel_bench::bench_http(opts, &|_, _, _| {})
        .await
        .expect("http bench");
    let json = serde_json::to_value(&report).expect("json");
    let mut keys: Vec<&String> = json.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "as_of_p99_ms",
            "audit_lead_p99_ms",
            "pipeline_p99_ms",
            "register_p99_ms",
            "register_per_s"
        ]
    );
    for (key, v) in json.as_object().expect("object") {
        let v = v.as_f64().expect("a number");
        assert!(v.is_finite() && v > 0.0, "{key}: {v}");
    }
}

/// The projections benchmark rebuilds the log and the log grown five times, and reports the peak
/// memory of both and their ratio under the keys the project names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_projections_bench_reports_the_memory_of_both_sizes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = funnel_bench::ProjectionBenchOptions {
        events: 2_000,
        in_flight: 8,
        growth: true,
    };
    let report = funnel_bench::bench_projections_on(
        Target::Sqlite {
            path: dir.path().join("funnel.db"),
        },
        opts,
        &|_, _, _| {},
    )
    .await
    .expect("projections bench");
    assert!(report.events >= 2_000, "{report:?}");
    assert!(report.rebuild_ratio.is_finite() && report.rebuild_ratio > 0.0);
    let json = serde_json::to_value(&report).expect("json");
    for key in ["rebuild_ratio", "rss_mb_1m", "rss_mb_5m", "rss_growth"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    if cfg!(target_os = "linux") {
        let (one, five) = (
            report.rss_mb_1m.expect("peak RSS"),
            report.rss_mb_5m.expect("peak RSS"),
        );
        assert!(one > 0.0 && five > 0.0, "{report:?}");
        assert_eq!(report.rss_growth, Some(five / one));
    }
}
