//! Signing secrets at rest: encrypted with XChaCha20-Poly1305 under a key kept outside the
//! database (a key file beside it, made `0600`), bound to the subscription id, so a copy of the
//! database, its `-wal` or a backup of them shows no secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::path::Path;
use uuid::Uuid;

/// What a sealed secret starts with in the database.
pub const SEALED: &str = "sealed1:";

/// The key secrets are sealed with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SealKey(chacha20poly1305::Key);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(…)")
    }
}

impl SealKey {
    /// A new random key (for databases in memory).
    pub fn random() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(bytes.into())
    }

    /// Reads the key file at `path`, or makes one (readable by its owner only) when there is none
    /// (`funnel_store::keyfile`: processes starting at once all end up with the one key written
    /// first; a file other users may read is refused).
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        funnel_store::keyfile::load_or_create(path)
            .map(|k| Self(k.into()))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }

    /// A name of the key that shows nothing of it (a keyed hash of a fixed text), so that
    /// processes sharing subscriptions can tell whether they were given the same key.
    pub fn id(&self) -> String {
        use hmac::Mac as _;
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(self.0.as_slice())
                .expect("HMAC takes a key of any length");
        mac.update(b"funnel webhook key id");
        let bytes = mac.finalize().into_bytes();
        bytes[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The sealed form of subscription `id`'s secret.
    pub fn seal(&self, id: Uuid, secret: &str) -> String {
        let sealed = funnel_privacy::aead::seal(&self.0.into(), id.as_bytes(), secret.as_bytes());
        format!("{SEALED}{}", STANDARD.encode(sealed))
    }

    /// The secret a sealed text holds, `None` when it was not sealed with this key for `id`.
    pub fn open(&self, id: Uuid, text: &str) -> Option<String> {
        let bytes = STANDARD.decode(text.strip_prefix(SEALED)?).ok()?;
        let plain = funnel_privacy::aead::open(&self.0.into(), id.as_bytes(), &bytes)?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_id() {
        let key = SealKey::random();
        let id = Uuid::now_v7();
        let sealed = key.seal(id, "whsec_abc");
        assert!(sealed.starts_with(SEALED) && !sealed.contains("abc"));
        assert_eq!(key.open(id, &sealed).as_deref(), Some("whsec_abc"));
        assert_eq!(key.open(Uuid::now_v7(), &sealed), None);
        assert_eq!(SealKey::random().open(id, &sealed), None);
        assert_eq!(key.open(id, "whsec_abc"), None);
    }

    #[test]
    fn the_key_file_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hooks.key");
        let key = SealKey::load_or_create(&path).unwrap();
        let again = SealKey::load_or_create(&path).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(again.open(id, &key.seal(id, "s")).as_deref(), Some("s"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn processes_making_the_key_file_at_once_all_get_the_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.key");
        let ids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| SealKey::load_or_create(&path).unwrap().id()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_eq!(SealKey::load_or_create(&path).unwrap().id(), ids[0]);
        assert_eq!(ids[0].len(), 16);
        // Nothing is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
