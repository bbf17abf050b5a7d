//! Authenticated encryption of short values: XChaCha20-Poly1305, a random 24-byte nonce per
//! sealing (safe to draw at random at this nonce size), the nonce kept before the ciphertext.
//! The associated data binds a sealed value to where it belongs: opened anywhere else, it fails.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE: usize = 24;

/// `msg` sealed with `key` for `aad`: the nonce, then the ciphertext and its tag.
pub fn seal(key: &[u8; 32], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE] = rand::random();
    let sealed = XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg, aad })
        .expect("XChaCha20-Poly1305 seals any message that fits in memory");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

/// What [`seal`] sealed, when `bytes` were sealed with `key` for `aad` and not changed since.
pub fn open(key: &[u8; 32], aad: &[u8], bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < NONCE {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(NONCE);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_associated_data_only() {
        let key: [u8; 32] = rand::random();
        let sealed = seal(&key, b"here", b"13800000000");
        assert!(!sealed.windows(11).any(|w| w == b"13800000000"));
        assert_eq!(
            open(&key, b"here", &sealed).as_deref(),
            Some(&b"13800000000"[..])
        );
        assert_eq!(open(&key, b"there", &sealed), None);
        assert_eq!(open(&rand::random(), b"here", &sealed), None);
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(open(&key, b"here", &flipped), None);
        assert_eq!(open(&key, b"here", &sealed[..10]), None);
        // A fresh nonce each time: the same value never seals alike.
        assert_ne!(seal(&key, b"here", b"x"), seal(&key, b"here", b"x"));
    }
}
