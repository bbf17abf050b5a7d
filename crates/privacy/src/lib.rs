//! Crypto-shredding: the personal fields of an event (`funnel_domain::privacy`) are sealed with a
//! key of their data subject (a customer's contact, a key person) before the event is stored, and
//! opened when it is read. The subject keys live apart from the log, each wrapped by a master key
//! ([`subjects::SubjectKeys`]); destroying a subject's key erases every field about them from
//! every copy of the log at once, while the log itself (and its hash chain, which covers the
//! sealed bytes) stays as written. A field whose key is gone reads as the marker
//! [`funnel_domain::privacy::ERASED`].
//!
//! - [`aead`]: XChaCha20-Poly1305 with a random 24-byte nonce, bound to associated data.
//! - [`fields`]: sealing and opening the personal fields of one payload.
//! - [`subjects`]: the subject keys in SQLite, wrapped by the master key (a key file:
//!   `funnel_store::keyfile`).

pub mod aead;
pub mod fields;
pub mod store;
pub mod subjects;

pub use fields::{KeyState, Keys, Opened, open_payload, seal_payload, subject_of};
pub use store::{KeyStore, SealedStore};
pub use subjects::{SqliteKeyStore, SubjectKeys};
