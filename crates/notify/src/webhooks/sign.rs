//! Webhook signatures as the Standard Webhooks specification defines them
//! (<https://www.standardwebhooks.com/>), so receivers can verify them with its libraries:
//!
//! - the secret is `whsec_` followed by the base64 of the key bytes;
//! - the signed content is `<webhook-id>.<webhook-timestamp>.<body>`;
//! - `webhook-signature` is `v1,<base64 of HMAC-SHA256(key, content)>` (several, separated by
//!   spaces, while a secret is being rotated).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// A new random secret (24 bytes of key).
pub fn new_secret() -> String {
    let key: [u8; 24] = rand::random();
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// The key bytes of a secret (the `whsec_` prefix is optional).
fn key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix(PREFIX).unwrap_or(secret))
        .ok()
}

fn mac(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)?).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The `webhook-signature` header value for a message. `None` when the secret is not valid base64
/// (secrets are made by [`new_secret`], so only a damaged database yields it).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let tag = mac(secret, id, timestamp, body)?.finalize().into_bytes();
    Some(format!("v1,{}", STANDARD.encode(tag)))
}

/// Whether any `v1` signature in a `webhook-signature` header is valid for the message
/// (compared in constant time). Receivers should also refuse stale timestamps.
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    header.split_whitespace().any(|sig| {
        let Some(b64) = sig.strip_prefix("v1,") else {
            return false;
        };
        let (Ok(tag), Some(mac)) = (STANDARD.decode(b64), mac(secret, id, timestamp, body)) else {
            return false;
        };
        mac.verify_slice(&tag).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn matches_the_specification_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let ts = 1_614_265_330;
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(secret, id, ts, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(secret, id, ts, body, &format!("v1,bogus {sig}")));
        assert!(!verify(secret, id, ts + 1, body, &sig));
        assert!(!verify(new_secret().as_str(), id, ts, body, &sig));
        assert!(!verify(secret, id, ts, body, "v2,whatever"));
    }

    #[test]
    fn new_secrets_differ_and_have_the_prefix() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with(PREFIX) && a != b);
        assert_eq!(key(&a).unwrap().len(), 24);
    }
}
