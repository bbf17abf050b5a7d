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
mod limit;
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

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

impl Tls {
    /// Checks, before anything listens, that the certificate chain and the key parse as PEM and
    /// that the key belongs to the first certificate, so that a wrong file stops `funnel serve`
    /// at start with a message rather than failing every client's handshake later.
    pub fn check(&self) -> Result<(), TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::Certificate(
                "no `BEGIN CERTIFICATE` block / 没有证书块".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| TlsError::Key(e.to_string()))?;
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
        Ok(())
    }
}

/// Why the endpoint's certificate and key cannot serve TLS (in English and Chinese: it is shown
/// to whoever starts the server).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "grpc.tls_cert holds no usable PEM certificate ({0}) / grpc.tls_cert 中没有可用的 PEM 证书"
    )]
    Certificate(String),
    #[error(
        "grpc.tls_key holds no usable PEM private key ({0}) / grpc.tls_key 中没有可用的 PEM 私钥"
    )]
    Key(String),
    #[error(
        "grpc.tls_key does not belong to the certificate in grpc.tls_cert, or cannot sign ({0}) / grpc.tls_key 与 grpc.tls_cert 中的证书不匹配或无法使用"
    )]
    Mismatch(String),
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
/// minute is disconnected (`read.rs`). At most `max_connections` are open at once; one more is
/// closed at once (`limit.rs`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    reads: Reads,
    tls: Option<Tls>,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        // rustls picks its cryptography from the process default when more than one provider is
        // compiled in (another crate of the build may enable aws-lc-rs): name ring, always.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let identity = tonic::transport::Identity::from_pem(tls.cert_pem, tls.key_pem);
        // A client that opens a connection and never finishes the handshake is dropped.
        builder = builder.tls_config(
            tonic::transport::ServerTlsConfig::new()
                .identity(identity)
                .timeout(HANDSHAKE_TIMEOUT),
        )?;
    }
    builder
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .concurrency_limit_per_connection(256)
        .max_concurrent_streams(Some(256))
        .add_routes(routes(reads))
        .serve_with_incoming_shutdown(
            limit::capped(
                listener,
                std::sync::Arc::new(tokio::sync::Semaphore::new(max_connections)),
            ),
            shutdown,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Vec<u8>, Vec<u8>) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (
            c.cert.pem().into_bytes(),
            c.signing_key.serialize_pem().into_bytes(),
        )
    }

    #[test]
    fn a_certificate_with_its_own_key_passes_the_check() {
        let (cert_pem, key_pem) = pair();
        Tls { cert_pem, key_pem }.check().unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_at_start() {
        let (cert_pem, _) = pair();
        let (_, key_pem) = pair();
        let e = Tls { cert_pem, key_pem }.check().unwrap_err();
        assert!(matches!(e, TlsError::Mismatch(_)), "{e}");
        assert!(e.to_string().contains("不匹配"), "{e}");
    }

    #[test]
    fn files_that_are_not_pem_are_refused_with_which_one() {
        let (cert_pem, key_pem) = pair();
        let e = Tls {
            cert_pem: b"not a certificate".to_vec(),
            key_pem: key_pem.clone(),
        }
        .check()
        .unwrap_err();
        assert!(matches!(e, TlsError::Certificate(_)), "{e}");
        let e = Tls {
            cert_pem: cert_pem.clone(),
            key_pem: cert_pem,
        }
        .check()
        .unwrap_err();
        assert!(matches!(e, TlsError::Key(_)), "{e}");
        assert!(e.to_string().contains("grpc.tls_key"), "{e}");
    }
}
