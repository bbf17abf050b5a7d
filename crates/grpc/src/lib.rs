//! The KurrentDB/EventStoreDB-compatible gRPC endpoint (`funnel serve --grpc ADDR`): the official
//! clients (`kurrentdb://host:port?tls=false`, `esdb://…`) connect to Funnel as to a single node
//! and read its log.
//!
//! - `Streams.Read`: a stream forwards or backwards from a revision (Funnel version − 1), `$all`
//!   forwards or backwards from a position (commit = prepare = Funnel's position) with the clients'
//!   stream-prefix, stream-regex and event-type filters, and catch-up subscriptions to a stream or
//!   to `$all` (confirmation, events, caught-up, checkpoints of filtered subscriptions, live tail).
//! - `ServerFeatures.GetSupportedMethods` and `Gossip.Read` (one member, the leader: this process).
//! - `Streams.Append`, `BatchAppend`, `Delete` and `Tombstone` are refused with the protocol's
//!   access-denied error: Funnel's log is written only through its commands.
//!
//! Every call is authenticated (`auth.rs`): the clients' basic credentials carry a Funnel API
//! token as the password, and the caller reads exactly what the HTTP API lets them read.

mod auth;
mod convert;
mod features;
mod filter;
pub mod proto;
mod read;
mod streams;

use funnel_app::Reads;
use proto::event_store::client::{
    gossip::gossip_server::GossipServer,
    server_features::server_features_server::ServerFeaturesServer,
    streams::streams_server::StreamsServer,
};
use std::time::Duration;

pub use features::SERVER_VERSION;

/// The gRPC services over `reads`, ready to serve.
pub fn routes(reads: Reads) -> tonic::service::Routes {
    let streams = streams::StreamsService::new(reads);
    tonic::service::Routes::new(StreamsServer::new(streams))
        .add_service(ServerFeaturesServer::new(features::Features))
        .add_service(GossipServer::new(features::GossipService::new()))
}

/// A certificate chain and its private key, PEM, for serving over TLS.
#[derive(Clone)]
pub struct Tls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in a log line.
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// Serves the endpoint on `listener` until `shutdown` completes: over TLS when `tls` is given,
/// else plaintext HTTP/2 (for local use: credentials then cross the network in the clear, and the
/// Python client sends none over plaintext). Idle and unresponsive clients are dropped: HTTP/2
/// pings every 30 s must be answered within 20 s, and a subscriber that reads nothing for a
/// minute is disconnected (`read.rs`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    reads: Reads,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        // rustls picks its cryptography from the process default when more than one provider is
        // compiled in (another crate of the build may enable aws-lc-rs): name ring, always.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let identity = tonic::transport::Identity::from_pem(tls.cert_pem, tls.key_pem);
        builder =
            builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    builder
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .concurrency_limit_per_connection(256)
        .max_concurrent_streams(Some(256))
        .add_routes(routes(reads))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
}
