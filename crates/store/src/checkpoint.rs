//! Signed checkpoints of the hash chain's head ([`crate::chain`]): evidence kept outside the log.
//!
//! The chain shows that the log is consistent with itself; someone who can write the store can
//! still change an event and recompute every hash after it, or cut the tail off. A checkpoint is
//! the chain's head (the last position of a commit and its hash) at a moment, signed with an
//! Ed25519 key the log's writers do not need, and written where they cannot rewrite it silently
//! (a separate file, one JSON object per line). [`check`] compares the checkpoints signed by the
//! trusted public key with the chain recorded in the store: a head that no longer matches means
//! the chain was rewritten up to it; a head beyond the end of the log means the log was cut; and
//! whatever came after the last checkpoint is reported as not witnessed (it could have been
//! removed or rewritten without a trace).

use crate::chain::{ChainHash, Finding, Tamper};
use crate::keyfile::{self, KeyFileError};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use funnel_types::Position;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::Path;

/// The tag every signed message starts with: a checkpoint's signature can never be taken for the
/// signature of anything else made with the same key.
const TAG: &[u8] = b"funnel-checkpoint-v1";

/// One signed checkpoint, as kept (one JSON object per line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last position of the commit at the chain's head.
    pub position: Position,
    /// That commit's hash (lower-case hex).
    pub hash: String,
    /// When it was signed (whole seconds).
    pub at: DateTime<Utc>,
    /// The public key it was signed with (hex).
    pub key: String,
    /// The Ed25519 signature (hex) over the tag, the position, the hash and the time.
    pub signature: String,
}

fn message(position: Position, hash: &ChainHash, at: &DateTime<Utc>) -> Vec<u8> {
    let mut m = Vec::with_capacity(TAG.len() + 8 + 32 + 8);
    m.extend_from_slice(TAG);
    m.extend_from_slice(&position.0.to_le_bytes());
    m.extend_from_slice(&hash.0);
    m.extend_from_slice(&at.timestamp().to_le_bytes());
    m
}

impl Checkpoint {
    /// The head it names, when its hash is well formed.
    fn head(&self) -> Option<ChainHash> {
        let bytes = hex::decode(&self.hash).ok()?;
        ChainHash::from_slice(&bytes)
    }

    /// Whether `key` signed exactly this checkpoint.
    pub fn signed_by(&self, key: &PublicKey) -> bool {
        self.head_signed_by(key).is_some()
    }

    /// The head it names, when `key` signed exactly this checkpoint.
    fn head_signed_by(&self, key: &PublicKey) -> Option<ChainHash> {
        let head = self.head()?;
        let sig = hex::decode(&self.signature).ok()?;
        let sig = <[u8; 64]>::try_from(sig.as_slice()).ok()?;
        key.0
            .verify_strict(
                &message(self.position, &head, &self.at),
                &Signature::from_bytes(&sig),
            )
            .ok()
            .map(|()| head)
    }
}

/// An Ed25519 public key: what an auditor trusts checkpoints by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// From 64 hex digits.
    pub fn from_hex(text: &str) -> Result<PublicKey, String> {
        let bytes = hex::decode(text.trim()).map_err(|_| "not hexadecimal".to_string())?;
        let bytes = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| format!("{} bytes, not 32", bytes.len()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| "not an Ed25519 public key".to_string())
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The private key that signs checkpoints. Its `Debug` shows the public half only; it is read
/// from a file only its owner may read, and never written anywhere else.
pub struct CheckpointSigner(SigningKey);

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointSigner(public {})", self.public())
    }
}

impl CheckpointSigner {
    /// A new random key.
    pub fn generate() -> CheckpointSigner {
        let seed: [u8; 32] = rand::random();
        CheckpointSigner(SigningKey::from_bytes(&seed))
    }

    /// Writes a new random key to `path` (base64 of its 32-byte seed, readable by its owner
    /// only); refuses to replace a file that exists.
    pub fn create(path: &Path) -> Result<CheckpointSigner, KeyFileError> {
        let key = CheckpointSigner::generate();
        keyfile::create(path, &key.0.to_bytes())?;
        Ok(key)
    }

    /// Reads the key at `path`, refusing a file other users may read.
    pub fn load(path: &Path) -> Result<CheckpointSigner, KeyFileError> {
        Ok(CheckpointSigner(SigningKey::from_bytes(&keyfile::load(
            path,
        )?)))
    }

    /// The public half, for auditors.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs the chain's head `hash` at `position`, at `at` (kept to whole seconds).
    pub fn sign(&self, position: Position, hash: &ChainHash, at: DateTime<Utc>) -> Checkpoint {
        let at = DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at);
        let signature = self.0.sign(&message(position, hash, &at));
        Checkpoint {
            position,
            hash: hash.to_hex(),
            at,
            key: self.public().to_hex(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

/// Appends a checkpoint to the file at `path` (made readable by its owner only when new) and
/// flushes it to disk before returning.
pub fn append(path: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let mut line = serde_json::to_vec(checkpoint).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_data()
}

/// The lines of a checkpoint file, each a checkpoint or the reason it is not one; no file: none.
pub fn read(path: &Path) -> std::io::Result<Vec<Result<Checkpoint, String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect())
}

/// The checkpoints to check and the key they are trusted by.
#[derive(Clone, Debug)]
pub struct Witness {
    pub key: PublicKey,
    /// Every line of the checkpoint file, in order.
    pub lines: Vec<Result<Checkpoint, String>>,
}

/// The last checkpoint that matched the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct WitnessedHead {
    pub position: Position,
    pub hash: String,
    pub at: DateTime<Utc>,
}

/// A checkpoint line that is not a valid checkpoint signed by the trusted key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BadCheckpoint {
    /// Its line in the file, from 1.
    pub line: usize,
    pub reason: String,
    pub reason_zh: String,
}

/// What the signed checkpoints say about the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Witnessed {
    /// The public key the checkpoints were checked with.
    pub key: String,
    /// Checkpoints read.
    pub checkpoints: u64,
    /// Checkpoints signed by the key whose head the recorded chain still has.
    pub matched: u64,
    /// Checkpoints signed with another key (not checked).
    pub other_keys: u64,
    /// The furthest checkpoint that matched.
    pub last: Option<WitnessedHead>,
    /// Positions after the last matched checkpoint, up to the head: no checkpoint covers them, so
    /// they could have been cut off or rewritten without a trace.
    pub unwitnessed_positions: u64,
    /// The first line that is not a checkpoint, or whose signature does not verify (the file
    /// was edited, or a checkpoint forged).
    pub bad_checkpoint: Option<BadCheckpoint>,
    /// The first disagreement between a checkpoint and the log.
    pub finding: Option<Finding>,
}

/// Checks every checkpoint of `witness` against the log whose last position is `head`, with
/// `recorded` giving the recorded hash of the commit ending at a position (`None`: no commit ends
/// there).
pub fn check<E>(
    witness: &Witness,
    head: Position,
    recorded: &mut dyn FnMut(Position) -> Result<Option<ChainHash>, E>,
) -> Result<Witnessed, E> {
    let key = witness.key.to_hex();
    let mut report = Witnessed {
        key: key.clone(),
        checkpoints: witness.lines.len() as u64,
        matched: 0,
        other_keys: 0,
        last: None,
        unwitnessed_positions: 0,
        bad_checkpoint: None,
        finding: None,
    };
    for (n, line) in witness.lines.iter().enumerate() {
        let bad = |reason: &str, zh: &str| BadCheckpoint {
            line: n + 1,
            reason: reason.to_string(),
            reason_zh: zh.to_string(),
        };
        let c = match line {
            Ok(c) => c,
            Err(_) => {
                report.bad_checkpoint.get_or_insert(bad(
                    "not a checkpoint (the file was edited)",
                    "不是检查点（文件被修改过）",
                ));
                continue;
            }
        };
        if c.key != key {
            report.other_keys += 1;
            continue;
        }
        let Some(hash) = c.head_signed_by(&witness.key) else {
            report.bad_checkpoint.get_or_insert(bad(
                "its signature does not verify (forged, or edited after signing)",
                "签名无法验证（伪造，或签名后被修改）",
            ));
            continue;
        };
        if c.position > head {
            report.finding.get_or_insert(Finding {
                position: Position(head.0 + 1),
                tamper: Tamper::Truncated,
                until: Some(c.position),
            });
            continue;
        }
        if recorded(c.position)? != Some(hash) {
            // From after the furthest checkpoint that matched so far (only the first finding is
            // kept, so later matches never move it).
            let good = report.last.as_ref().map_or(Position::START, |l| l.position);
            report.finding.get_or_insert(Finding {
                position: Position(good.0 + 1),
                tamper: Tamper::Rewritten,
                until: Some(c.position),
            });
            continue;
        }
        report.matched += 1;
        if report.last.as_ref().is_none_or(|l| l.position < c.position) {
            report.last = Some(WitnessedHead {
                position: c.position,
                hash: c.hash.clone(),
                at: c.at,
            });
        }
    }
    let last = report.last.as_ref().map_or(Position::START, |l| l.position);
    report.unwitnessed_positions = head.0.saturating_sub(last.0);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Link;

    fn hash(n: u8) -> ChainHash {
        let mut l = Link::after(&ChainHash::GENESIS);
        l.bytes(&[n]);
        l.finish()
    }

    fn t() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 123).unwrap()
    }

    /// A log whose commits end at 3, 7 and 10 with hashes 1, 2 and 3.
    fn recorded(p: Position) -> Result<Option<ChainHash>, ()> {
        Ok(match p.0 {
            3 => Some(hash(1)),
            7 => Some(hash(2)),
            10 => Some(hash(3)),
            _ => None,
        })
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_only_and_not_once_edited() {
        let key = CheckpointSigner::generate();
        let c = key.sign(Position(7), &hash(2), t());
        assert_eq!(c.at.timestamp_subsec_nanos(), 0);
        assert!(c.signed_by(&key.public()));
        assert!(!c.signed_by(&CheckpointSigner::generate().public()));
        for edit in [
            Checkpoint {
                position: Position(8),
                ..c.clone()
            },
            Checkpoint {
                hash: hash(3).to_hex(),
                ..c.clone()
            },
            Checkpoint {
                at: c.at + chrono::Duration::seconds(1),
                ..c.clone()
            },
            Checkpoint {
                signature: "00".repeat(64),
                ..c.clone()
            },
        ] {
            assert!(!edit.signed_by(&key.public()), "{edit:?}");
        }
        let round: Checkpoint = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert!(round.signed_by(&key.public()));
        assert_eq!(
            PublicKey::from_hex(&key.public().to_hex()).unwrap(),
            key.public()
        );
        assert!(format!("{key:?}").contains(&key.public().to_hex()));
    }

    #[test]
    fn checkpoints_name_a_rewritten_chain_a_cut_log_and_the_unwitnessed_tail() {
        let key = CheckpointSigner::generate();
        let other = CheckpointSigner::generate();
        let witness = |lines: Vec<Result<Checkpoint, String>>| Witness {
            key: key.public(),
            lines,
        };
        // Both match: witnessed to 7, three positions after it.
        let w = witness(vec![
            Ok(key.sign(Position(3), &hash(1), t())),
            Ok(key.sign(Position(7), &hash(2), t())),
            Ok(other.sign(Position(10), &hash(9), t())),
        ]);
        let r = check(&w, Position(10), &mut recorded).unwrap();
        assert_eq!((r.matched, r.other_keys, r.finding), (2, 1, None));
        assert_eq!(r.last.unwrap().position, Position(7));
        assert_eq!(r.unwitnessed_positions, 3);
        // The chain at 7 is not what was signed: rewritten after 3, up to 7.
        let w = witness(vec![
            Ok(key.sign(Position(3), &hash(1), t())),
            Ok(key.sign(Position(7), &hash(5), t())),
            Ok(key.sign(Position(10), &hash(3), t())),
        ]);
        let r = check(&w, Position(10), &mut recorded).unwrap();
        assert_eq!(
            r.finding,
            Some(Finding {
                position: Position(4),
                tamper: Tamper::Rewritten,
                until: Some(Position(7))
            })
        );
        // No commit ends where a checkpoint says one did.
        let w = witness(vec![Ok(key.sign(Position(5), &hash(1), t()))]);
        let r = check(&w, Position(10), &mut recorded).unwrap();
        assert_eq!(r.finding.unwrap().tamper, Tamper::Rewritten);
        // A checkpoint beyond the end: the log was cut after 10.
        let w = witness(vec![
            Ok(key.sign(Position(10), &hash(3), t())),
            Ok(key.sign(Position(14), &hash(4), t())),
        ]);
        let r = check(&w, Position(10), &mut recorded).unwrap();
        assert_eq!(
            r.finding,
            Some(Finding {
                position: Position(11),
                tamper: Tamper::Truncated,
                until: Some(Position(14))
            })
        );
        assert_eq!(r.unwitnessed_positions, 0);
        // A forged line and a line that is not one are named, and prove nothing.
        let mut forged = key.sign(Position(10), &hash(3), t());
        forged.position = Position(3);
        let w = witness(vec![Err("garbage".into()), Ok(forged)]);
        let r = check(&w, Position(10), &mut recorded).unwrap();
        assert_eq!(r.bad_checkpoint.unwrap().line, 1);
        assert_eq!((r.matched, r.last, r.finding), (0, None, None));
        assert_eq!(r.unwitnessed_positions, 10);
    }

    #[test]
    fn a_key_file_is_private_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.key");
        let key = CheckpointSigner::create(&path).unwrap();
        assert_eq!(
            CheckpointSigner::load(&path).unwrap().public(),
            key.public()
        );
        assert!(CheckpointSigner::create(&path).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = CheckpointSigner::load(&path).unwrap_err();
            assert!(e.en.contains("other users"), "{e}");
        }
        let file = dir.path().join("checkpoints");
        assert!(read(&file).unwrap().is_empty());
        let c = key.sign(Position(1), &hash(1), t());
        append(&file, &c).unwrap();
        append(&file, &c).unwrap();
        assert_eq!(read(&file).unwrap(), vec![Ok(c.clone()), Ok(c)]);
    }
}
