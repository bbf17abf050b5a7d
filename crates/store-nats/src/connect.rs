//! Connecting: options, server version check, JetStream availability, and creating or updating the
//! one JetStream stream that holds the log. Also the mapping of client errors to [`StoreError`].

use crate::NatsOptions;
use async_nats::jetstream::{self, stream};
use funnel_store::StoreError;
use std::time::{Duration, Instant};

pub(crate) const BACKEND: &str = "nats";

/// Oldest server Funnel supports (multi-subject consumer filters arrived in 2.10).
pub const MIN_SERVER_VERSION: &str = "2.10.0";

/// Parses a server version such as `2.15.1`, `v2.10.0` or `2.11.0-RC.1` into (major, minor, patch).
pub fn parse_server_version(version: &str) -> Option<(u64, u64, u64)> {
    let v = version.trim().trim_start_matches('v');
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    Some((major, minor, patch))
}

/// Refuses servers older than [`MIN_SERVER_VERSION`] (and versions that cannot be read).
pub fn check_server_version(found: &str) -> Result<(), StoreError> {
    let required = parse_server_version(MIN_SERVER_VERSION).unwrap_or((2, 10, 0));
    match parse_server_version(found) {
        Some(v) if v >= required => Ok(()),
        _ => Err(StoreError::UnsupportedServer {
            found: found.to_string(),
            required: MIN_SERVER_VERSION.to_string(),
        }),
    }
}

/// An [`StoreError::Unavailable`] with the given message.
pub(crate) fn unavailable(message: impl Into<String>) -> StoreError {
    StoreError::Unavailable {
        backend: BACKEND,
        message: message.into(),
    }
}

/// A [`StoreError::Backend`] with the given message.
pub(crate) fn backend(message: impl Into<String>) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: message.into(),
    }
}

/// Whether an error's text says the server did not answer or JetStream is temporarily unable to.
pub(crate) fn looks_transient(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "timed out",
        "timeout",
        "no responders",
        "broken pipe",
        "temporarily unavailable",
        "disconnected",
        "not connected",
        // JetStream API errors while a stream or the meta group has no leader (an election
        // after a node was lost): cluster not available, not active, not leader, no peers.
        "error code 10008",
        "error code 10006",
        "error code 10009",
        "no leader",
        "not leader",
    ]
    .iter()
    .any(|needle| t.contains(needle))
}

/// Everything `connect` sets up.
pub(crate) struct Connected {
    pub client: async_nats::Client,
    pub context: jetstream::Context,
    pub stream: stream::Stream<()>,
    pub max_payload: usize,
    /// The log stream's replicas, when they differ from the setting.
    pub replicas: Option<crate::replicas::ReplicaMismatch>,
}

/// Connects, checks the server, and makes sure the log's stream exists with the right settings.
/// The servers of a NATS URL (several cluster members separated by commas).
pub fn server_addrs(url: &str) -> Result<Vec<async_nats::ServerAddr>, StoreError> {
    url.split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::InvalidRequest(format!("bad NATS url `{url}`: {e}")))
}

pub(crate) async fn connect(opts: &NatsOptions) -> Result<Connected, StoreError> {
    opts.validate()?;
    let addrs = server_addrs(&opts.url)?;
    let client = async_nats::ConnectOptions::new()
        .name("funnel")
        .connection_timeout(opts.connect_timeout)
        .request_timeout(Some(opts.request_timeout))
        // Reconnect soon after the server returns, forever.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(1000))
        })
        .max_reconnects(None)
        .connect(addrs)
        .await
        .map_err(|e| unavailable(format!("cannot connect to {}: {e}", opts.url)))?;
    check_server_version(&client.server_info().version)?;
    let max_payload = client.server_info().max_payload;
    let context = jetstream::ContextBuilder::new()
        .timeout(opts.request_timeout)
        .build(client.clone());

    let config = stream::Config {
        max_message_size: i32::try_from(max_payload).unwrap_or(i32::MAX),
        duplicate_window: opts.duplicate_window,
        deny_delete: !opts.allow_message_deletes,
        deny_purge: !opts.allow_message_deletes,
        ..crate::replicas::keeping_everything(
            &opts.stream_name,
            "Funnel event log: one message per command",
            vec![format!("{}.log.>", opts.subject_prefix)],
            opts.replicas,
        )
    };

    // A fresh cluster may still be electing its JetStream leaders: retry until the connect timeout.
    let deadline = Instant::now() + opts.connect_timeout.max(Duration::from_secs(1));
    let replicas = loop {
        let attempt = async {
            context.query_account().await.map_err(|e| {
                backend(format!(
                    "JetStream is not available on {} (is the server running with JetStream enabled, `-js`?): {e}",
                    opts.url
                ))
            })?;
            crate::replicas::prepare_stream(&context, config.clone(), &opts.url, true).await
        };
        match attempt.await {
            Ok(mismatch) => break mismatch,
            // Too few servers for the replicas asked for is retried too: a member that has just
            // (re)started may not count as online yet. After the deadline it is the answer.
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "JetStream not ready yet, retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let stream = context
        .get_stream_no_info(&opts.stream_name)
        .await
        .map_err(|e| {
            backend(format!(
                "cannot open JetStream stream {}: {e}",
                opts.stream_name
            ))
        })?;
    Ok(Connected {
        client,
        context,
        stream,
        max_payload,
        replicas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_prefixes_and_suffixes() {
        assert_eq!(parse_server_version("2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_server_version("v2.10.0"), Some((2, 10, 0)));
        assert_eq!(parse_server_version("2.11.0-RC.1"), Some((2, 11, 0)));
        assert_eq!(parse_server_version("2.10"), Some((2, 10, 0)));
        assert_eq!(parse_server_version("banana"), None);
    }

    #[test]
    fn servers_older_than_2_10_are_refused_naming_both_versions() {
        assert!(check_server_version("2.10.0").is_ok());
        assert!(check_server_version("2.15.1").is_ok());
        assert!(check_server_version("3.0.0").is_ok());
        for old in ["2.9.25", "2.9.10", "1.4.1", "garbage"] {
            let err = check_server_version(old).expect_err("old server accepted");
            assert_eq!(
                err,
                StoreError::UnsupportedServer {
                    found: old.to_string(),
                    required: "2.10.0".to_string()
                }
            );
            let text = err.to_string();
            assert!(text.contains(old) && text.contains("2.10.0"), "{text}");
        }
    }
}
