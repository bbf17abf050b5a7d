//! Stream names, per-stream versions, global positions and the optimistic-concurrency expectation.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Name of one aggregate instance's stream: `<category>-<id>`, e.g. `lead-0190…`. The category is the
/// part before the first `-`. Names are restricted to characters that are safe in a NATS subject token
/// and an SQL literal: category `[a-z][a-z0-9_]*`, id `[A-Za-z0-9_-]+`, 200 bytes at most.
#[derive(
    Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

/// Why a string is not a valid stream name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("stream name `{0}` has no `-` between category and id")]
    MissingSeparator(String),
    #[error("stream name `{0}`: category must match [a-z][a-z0-9_]*")]
    BadCategory(String),
    #[error("stream name `{0}`: id must match [A-Za-z0-9_-]+")]
    BadId(String),
    #[error("stream name is {0} bytes long; the limit is 200")]
    TooLong(usize),
}

impl StreamId {
    pub const MAX_LEN: usize = 200;

    pub fn new(category: &str, id: impl fmt::Display) -> Result<Self, StreamIdError> {
        Self::parse(format!("{category}-{id}"))
    }

    pub fn parse(s: impl Into<String>) -> Result<Self, StreamIdError> {
        let s = s.into();
        if s.len() > Self::MAX_LEN {
            return Err(StreamIdError::TooLong(s.len()));
        }
        let Some((cat, id)) = s.split_once('-') else {
            return Err(StreamIdError::MissingSeparator(s));
        };
        if !valid_category(cat) {
            return Err(StreamIdError::BadCategory(s));
        }
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(StreamIdError::BadId(s));
        }
        Ok(Self(s))
    }

    pub fn category(&self) -> &str {
        self.0.split_once('-').map(|(c, _)| c).unwrap_or(&self.0)
    }

    /// The part after the category.
    pub fn id_part(&self) -> &str {
        self.0.split_once('-').map(|(_, i)| i).unwrap_or("")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True when `cat` is a valid category name (also used to validate category filters).
pub fn valid_category(cat: &str) -> bool {
    let mut bytes = cat.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl TryFrom<String> for StreamId {
    type Error = StreamIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<StreamId> for String {
    fn from(s: StreamId) -> String {
        s.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

impl std::str::FromStr for StreamId {
    type Err = StreamIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Dense version of an event within its stream: the first event is 1, then 2, 3 … with no gaps.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Version(pub u64);

impl Version {
    pub const FIRST: Version = Version(1);

    pub fn next(self) -> Version {
        Version(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Global position of an event in the whole log: strictly increasing in read-all order, starting at 1.
/// Position 0 means "before the first event" (read from the start).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    pub const START: Position = Position(0);

    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What the writer believes about the stream it appends to (optimistic concurrency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedVersion {
    /// No expectation.
    Any,
    /// The stream must not exist yet (reservations, creation).
    NoStream,
    /// The stream must exist, at any version.
    Exists,
    /// The stream's last event must have exactly this version.
    Exact(Version),
}

impl ExpectedVersion {
    /// Whether a stream whose current version is `current` (None when absent) meets the expectation.
    pub fn admits(self, current: Option<Version>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current.is_none(),
            ExpectedVersion::Exists => current.is_some(),
            ExpectedVersion::Exact(v) => current == Some(v),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn category_is_the_part_before_the_first_dash() {
        let s = StreamId::parse("lead-0190a3b2-1111-7000-8000-000000000000").unwrap();
        assert_eq!(s.category(), "lead");
        assert_eq!(s.id_part(), "0190a3b2-1111-7000-8000-000000000000");
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        assert!(matches!(
            StreamId::parse("lead"),
            Err(StreamIdError::MissingSeparator(_))
        ));
        assert!(matches!(
            StreamId::parse("Lead-1"),
            Err(StreamIdError::BadCategory(_))
        ));
        assert!(matches!(
            StreamId::parse("lead-a.b"),
            Err(StreamIdError::BadId(_))
        ));
        assert!(matches!(
            StreamId::parse("lead-*"),
            Err(StreamIdError::BadId(_))
        ));
        assert!(matches!(
            StreamId::parse("lead-"),
            Err(StreamIdError::BadId(_))
        ));
        assert!(matches!(
            StreamId::parse(format!("lead-{}", "x".repeat(300))),
            Err(StreamIdError::TooLong(_))
        ));
    }

    #[test]
    fn expectations_admit_the_right_states() {
        use ExpectedVersion::*;
        assert!(Any.admits(None) && Any.admits(Some(Version(3))));
        assert!(NoStream.admits(None) && !NoStream.admits(Some(Version(1))));
        assert!(!Exists.admits(None) && Exists.admits(Some(Version(1))));
        assert!(
            Exact(Version(2)).admits(Some(Version(2)))
                && !Exact(Version(2)).admits(Some(Version(3)))
        );
        assert!(!Exact(Version(1)).admits(None));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_valid_names_round_trip(s in ".{0,64}") {
            if let Ok(id) = StreamId::parse(s.clone()) {
                prop_assert_eq!(id.as_str(), s.as_str());
                prop_assert!(valid_category(id.category()));
            }
        }
    }
}
