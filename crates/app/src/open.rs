//! Choosing a store from a URL: `sqlite:PATH` (the embedded default) or `nats://HOST:PORT` (also a
//! comma-separated list of cluster members).

use funnel_store::{EventStore, StoreError};
use funnel_store_nats::{NatsOptions, NatsStore};
use funnel_store_sqlite::SqliteStore;
use std::path::PathBuf;
use std::sync::Arc;

/// A parsed store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Nats(String),
}

impl std::str::FromStr for StoreUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("`sqlite:` needs a file path, e.g. sqlite:.funnel/funnel.db".into());
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("nats://") || s.starts_with("tls://") {
            return Ok(StoreUrl::Nats(s.to_string()));
        }
        Err(format!(
            "unknown store `{s}`: use sqlite:PATH or nats://HOST:PORT"
        ))
    }
}

/// A store that did not open, with the URL that named it.
#[derive(Debug)]
pub struct OpenError {
    pub url: StoreUrl,
    pub error: StoreError,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot open store {:?}: {}", self.url, self.error)
    }
}

impl std::error::Error for OpenError {}

/// [`open_store`] with the URL in its error, for an interface that shows the error to a person.
pub async fn open(url: &StoreUrl) -> Result<Arc<dyn EventStore>, OpenError> {
    open_store(url).await.map_err(|error| OpenError {
        url: url.clone(),
        error,
    })
}

/// Opens the store a URL names, creating the SQLite file's directory when needed. A JetStream log
/// created here gets [`funnel_store_nats::default_replicas`] (3 when the URL names several
/// cluster members).
pub async fn open_store(url: &StoreUrl) -> Result<Arc<dyn EventStore>, StoreError> {
    open_store_with_replicas(url, None).await
}

/// [`open_store`] with the JetStream replicas of the log when it is created (`None`: the default
/// for the URL; ignored on SQLite). An existing stream keeps its replicas; a difference is logged.
pub async fn open_store_with_replicas(
    url: &StoreUrl,
    replicas: Option<usize>,
) -> Result<Arc<dyn EventStore>, StoreError> {
    open_store_with(url, replicas, &crate::privacy::default_settings()).await
}

/// [`open_store_with_replicas`] with the given privacy settings ([`crate::privacy`]): the store
/// returned seals and opens personal fields when they give a master key.
pub async fn open_store_with(
    url: &StoreUrl,
    replicas: Option<usize>,
    privacy: &crate::privacy::PrivacySettings,
) -> Result<Arc<dyn EventStore>, StoreError> {
    let store = open_log(url, replicas).await?;
    crate::privacy::wrap(url, store, privacy).await
}

pub(crate) async fn open_log(
    url: &StoreUrl,
    replicas: Option<usize>,
) -> Result<Arc<dyn EventStore>, StoreError> {
    match url {
        StoreUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                funnel_store::files::create_private_dir_all(dir).map_err(|e| {
                    StoreError::Backend {
                        backend: "sqlite",
                        message: format!("cannot create {}: {e}", dir.display()),
                    }
                })?;
            }
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(path))
                .await
                .map_err(|e| StoreError::Backend {
                    backend: "sqlite",
                    message: e.to_string(),
                })??;
            Ok(Arc::new(store))
        }
        StoreUrl::Nats(url) => {
            let options = NatsOptions {
                replicas: replicas.unwrap_or_else(|| funnel_store_nats::default_replicas(url)),
                ..NatsOptions::new(url.clone())
            };
            Ok(Arc::new(NatsStore::connect(options).await?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_store_that_does_not_open_is_named_in_the_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").expect("file");
        let url = StoreUrl::Sqlite(file.join("funnel.db"));
        let Err(e) = open(&url).await else {
            panic!("a store under a plain file opened");
        };
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("cannot open store {url:?}: ")),
            "{text}"
        );
        assert!(text.contains("cannot create"), "{text}");
    }

    #[test]
    fn urls_parse_with_clear_errors() {
        assert_eq!(
            "sqlite:a/b.db".parse(),
            Ok(StoreUrl::Sqlite("a/b.db".into()))
        );
        assert_eq!(
            "sqlite:///tmp/x.db".parse(),
            Ok(StoreUrl::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(
            "nats://127.0.0.1:4222".parse(),
            Ok(StoreUrl::Nats("nats://127.0.0.1:4222".into()))
        );
        assert!(
            "sqlite:"
                .parse::<StoreUrl>()
                .unwrap_err()
                .contains("file path")
        );
        assert!(
            "postgres://x"
                .parse::<StoreUrl>()
                .unwrap_err()
                .contains("sqlite:PATH")
        );
    }
}
