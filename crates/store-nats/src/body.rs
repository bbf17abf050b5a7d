//! The binary body of a commit. Funnel writes format `FNL3`:
//!
//! ```text
//! "FNL3"  u64 last version  u16 event count  16 B command id
//! per event:
//!   u8 flags: bit 0 an office id follows; bit 1 the correlation id is the command id (not
//!             stored); bit 2 the causation id is the command id (not stored); no other bit set
//!   16 B event id  [16 B correlation id]  [16 B causation id]
//!   i64 occurred_at seconds  u32 occurred_at nanoseconds  u16 schema version  [16 B office id]
//!   u8 actor kind: 0 staff (16 B staff id, u8 length + role name), 1 system (u16 length + name)
//!   u16 length + event type  u32 length + payload bytes exactly as given
//! ```
//!
//! (the engine's events take the command id as correlation and causation id unless told otherwise,
//! so those usually cost nothing), and reads `FNL3` and the older `FNL2`, which keeps the command id
//! only in the message's `Nats-Msg-Id` header:
//!
//! ```text
//! "FNL2"  u64 last version  u16 event count
//! per event:
//!   16 B event id  16 B correlation id  16 B causation id
//!   i64 occurred_at seconds  u32 occurred_at nanoseconds  u16 schema version
//!   u8 flags (bit 0: an office id follows; no other bit may be set)  [16 B office id]
//!   actor, event type and payload as in FNL3
//! ```
//!
//! Integers are big-endian, UUIDs are their 16 bytes, strings are UTF-8. Roles are stored by their
//! stable wire name ([`Role::as_str`]), so reordering or adding roles never changes stored bytes.
//! Decoding never panics: every read is bounds-checked and reports what it could not read.

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use funnel_store::{ProposedEvent, StoreError};
use funnel_types::{Actor, CommandId, CorrelationId, EventId, OfficeId, Role, StaffId};

/// Magic prefix of the body Funnel writes, format version 3 (with the command id).
pub(crate) const MAGIC: &[u8; 4] = b"FNL3";

/// Magic prefix of the older body, format version 2 (the command id only in a header).
pub(crate) const MAGIC_V2: &[u8; 4] = b"FNL2";

/// Bytes of an `FNL2` body before its first event: the magic, the last version and the count.
pub(crate) const PREFIX_LEN_V2: usize = 4 + 8 + 2;

/// Bytes of an `FNL3` body before its first event: as `FNL2`, then the command id.
pub(crate) const PREFIX_LEN: usize = PREFIX_LEN_V2 + 16;

/// Flag bit: an office id follows.
const FLAG_OFFICE: u8 = 1;
/// Flag bit (`FNL3`): the correlation id is the command id and is not stored.
const FLAG_CORRELATION_IS_COMMAND: u8 = 2;
/// Flag bit (`FNL3`): the causation id is the command id and is not stored.
const FLAG_CAUSATION_IS_COMMAND: u8 = 4;

const ACTOR_STAFF: u8 = 0;
const ACTOR_SYSTEM: u8 = 1;

/// Bytes of one `FNL3` event besides its optional ids, actor and the event type and payload bytes:
/// the flags, the event id, the time, the schema version, the actor kind and the two lengths.
const EVENT_FIXED_LEN: usize = 1 + 16 + 8 + 4 + 2 + 1 + 2 + 4;

/// The event-independent part of a stored body: the dense version of its last event, how many
/// events it holds, its command id (`FNL3`; `None` for an `FNL2` body) and where its first event
/// starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyPrefix {
    pub last_version: u64,
    pub count: u16,
    pub command_id: Option<CommandId>,
    pub events_at: usize,
}

/// The flags of `e` in an `FNL3` body of command `command_id`.
fn flags(e: &ProposedEvent, command_id: CommandId) -> u8 {
    let mut flags = 0;
    if e.office.is_some() {
        flags |= FLAG_OFFICE;
    }
    if e.correlation_id.0 == command_id.0 {
        flags |= FLAG_CORRELATION_IS_COMMAND;
    }
    if e.causation_id == command_id.0 {
        flags |= FLAG_CAUSATION_IS_COMMAND;
    }
    flags
}

/// The exact size of the `FNL3` body holding the `events` of command `command_id`, or why they
/// cannot be encoded (a field too long for its length prefix).
pub(crate) fn encoded_len(
    command_id: CommandId,
    events: &[ProposedEvent],
) -> Result<usize, StoreError> {
    fits::<u16>(events.len(), u16::MAX as usize, "events in one append")?;
    let mut size = PREFIX_LEN;
    for e in events {
        let flags = flags(e, command_id);
        let mut ids = 0;
        if flags & FLAG_CORRELATION_IS_COMMAND == 0 {
            ids += 16;
        }
        if flags & FLAG_CAUSATION_IS_COMMAND == 0 {
            ids += 16;
        }
        if flags & FLAG_OFFICE != 0 {
            ids += 16;
        }
        size += EVENT_FIXED_LEN + ids + tail_len(e)?;
    }
    Ok(size)
}

/// Bytes of the actor, event type and payload of `e` besides the actor kind and the two lengths.
fn tail_len(e: &ProposedEvent) -> Result<usize, StoreError> {
    fits::<u16>(
        e.event_type.len(),
        u16::MAX as usize,
        "bytes in an event type",
    )?;
    fits::<u32>(
        e.payload.len(),
        u32::MAX as usize,
        "bytes in one event payload",
    )?;
    let actor = match &e.actor {
        Actor::Staff { role, .. } => {
            fits::<u8>(
                role.as_str().len(),
                u8::MAX as usize,
                "bytes in a role name",
            )?;
            16 + 1 + role.as_str().len()
        }
        Actor::System { name } => {
            fits::<u16>(
                name.len(),
                u16::MAX as usize,
                "bytes in a system actor name",
            )?;
            2 + name.len()
        }
    };
    Ok(actor + e.event_type.len() + e.payload.len())
}

/// Encodes the events of command `command_id` whose last event gets version `last_version`, as an
/// `FNL3` body.
pub(crate) fn encode(
    last_version: u64,
    command_id: CommandId,
    events: &[ProposedEvent],
) -> Result<Bytes, StoreError> {
    let size = encoded_len(command_id, events)?;
    let mut out = BytesMut::with_capacity(size);
    out.put_slice(MAGIC);
    out.put_u64(last_version);
    // `encoded_len` checked that every count and length fits its prefix.
    out.put_u16(events.len() as u16);
    out.put_slice(command_id.0.as_bytes());
    for e in events {
        let flags = flags(e, command_id);
        out.put_u8(flags);
        out.put_slice(e.event_id.0.as_bytes());
        if flags & FLAG_CORRELATION_IS_COMMAND == 0 {
            out.put_slice(e.correlation_id.0.as_bytes());
        }
        if flags & FLAG_CAUSATION_IS_COMMAND == 0 {
            out.put_slice(e.causation_id.as_bytes());
        }
        out.put_i64(e.occurred_at.timestamp());
        out.put_u32(e.occurred_at.timestamp_subsec_nanos());
        out.put_u16(e.schema_version);
        if let Some(office) = e.office {
            out.put_slice(office.0.as_bytes());
        }
        put_tail(&mut out, e);
    }
    debug_assert_eq!(out.len(), size);
    Ok(out.freeze())
}

/// Encodes an `FNL2` body, as Funnel wrote before `FNL3` (tests of reading old commits).
#[cfg(test)]
pub(crate) fn encode_v2(last_version: u64, events: &[ProposedEvent]) -> Result<Bytes, StoreError> {
    let mut out = BytesMut::new();
    out.put_slice(MAGIC_V2);
    out.put_u64(last_version);
    out.put_u16(u16::try_from(events.len()).unwrap_or(u16::MAX));
    for e in events {
        tail_len(e)?;
        out.put_slice(e.event_id.0.as_bytes());
        out.put_slice(e.correlation_id.0.as_bytes());
        out.put_slice(e.causation_id.as_bytes());
        out.put_i64(e.occurred_at.timestamp());
        out.put_u32(e.occurred_at.timestamp_subsec_nanos());
        out.put_u16(e.schema_version);
        match e.office {
            Some(office) => {
                out.put_u8(FLAG_OFFICE);
                out.put_slice(office.0.as_bytes());
            }
            None => out.put_u8(0),
        }
        put_tail(&mut out, e);
    }
    Ok(out.freeze())
}

/// Appends the actor, event type and payload of `e` (`tail_len` having checked their lengths).
fn put_tail(out: &mut BytesMut, e: &ProposedEvent) {
    match &e.actor {
        Actor::Staff { id, role } => {
            out.put_u8(ACTOR_STAFF);
            out.put_slice(id.0.as_bytes());
            let name = role.as_str();
            out.put_u8(name.len() as u8);
            out.put_slice(name.as_bytes());
        }
        Actor::System { name } => {
            out.put_u8(ACTOR_SYSTEM);
            out.put_u16(name.len() as u16);
            out.put_slice(name.as_bytes());
        }
    }
    out.put_u16(e.event_type.len() as u16);
    out.put_slice(e.event_type.as_bytes());
    out.put_u32(e.payload.len() as u32);
    out.put_slice(&e.payload);
}

/// `len` as a length prefix of type `T` (whose largest value is `limit`), or `TooLarge`.
fn fits<T: TryFrom<usize>>(len: usize, limit: usize, what: &'static str) -> Result<T, StoreError> {
    T::try_from(len).map_err(|_| StoreError::TooLarge {
        what,
        size: len,
        limit,
    })
}

/// Reads the magic, last version, count and (`FNL3`) command id of a body.
pub(crate) fn read_prefix(body: &[u8]) -> Result<BodyPrefix, String> {
    let v3 = match body.get(..MAGIC.len()) {
        Some(m) if m == MAGIC => true,
        Some(m) if m == MAGIC_V2 => false,
        _ => return Err("body does not start with an FNL3 or FNL2 commit marker".into()),
    };
    let mut r = Reader::new(body);
    r.at = MAGIC.len();
    let last_version = r.u64("the last version")?;
    let count = r.u16("the event count")?;
    let command_id = if v3 {
        Some(CommandId(r.uuid("the command id")?))
    } else {
        None
    };
    Ok(BodyPrefix {
        last_version,
        count,
        command_id,
        events_at: r.at,
    })
}

/// The metadata of one stored event, borrowed from the body, and where its payload lies in it.
pub(crate) struct EventView<'a> {
    pub event_id: EventId,
    pub correlation_id: CorrelationId,
    pub causation_id: uuid::Uuid,
    pub occurred_at: DateTime<Utc>,
    pub schema_version: u16,
    pub office: Option<OfficeId>,
    pub actor: Actor,
    pub event_type: &'a str,
    pub payload: std::ops::Range<usize>,
}

/// The part of a stored event before its actor.
struct EventHead {
    event_id: EventId,
    correlation_id: CorrelationId,
    causation_id: uuid::Uuid,
    occurred_at: DateTime<Utc>,
    schema_version: u16,
    office: Option<OfficeId>,
}

/// A bounds-checked cursor over a body; errors name what could not be read.
pub(crate) struct Reader<'a> {
    body: &'a [u8],
    at: usize,
    /// The command id of an `FNL3` body (`None`: `FNL2`).
    command_id: Option<CommandId>,
}

impl<'a> Reader<'a> {
    /// A cursor at the first event of `body`, whose prefix is `prefix`.
    pub fn events(body: &'a [u8], prefix: &BodyPrefix) -> Self {
        Self {
            body,
            at: prefix.events_at,
            command_id: prefix.command_id,
        }
    }

    fn new(body: &'a [u8]) -> Self {
        Self {
            body,
            at: 0,
            command_id: None,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.body.len().saturating_sub(self.at)
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.body.len())
            .ok_or_else(|| format!("body ends inside {what}"))?;
        let bytes = &self.body[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn uuid(&mut self, what: &str) -> Result<uuid::Uuid, String> {
        Ok(uuid::Uuid::from_bytes(self.array(what)?))
    }

    fn str(&mut self, len: usize, what: &str) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(len, what)?).map_err(|_| format!("{what} is not UTF-8"))
    }

    /// The ids, time, schema version and office of an `FNL3` event.
    fn head_v3(&mut self, command_id: CommandId) -> Result<EventHead, String> {
        let flags = self.u8("the event flags")?;
        let known = FLAG_OFFICE | FLAG_CORRELATION_IS_COMMAND | FLAG_CAUSATION_IS_COMMAND;
        if flags & !known != 0 {
            return Err(format!("unknown event flags {flags:#04x}"));
        }
        let event_id = EventId(self.uuid("an event id")?);
        let correlation_id = if flags & FLAG_CORRELATION_IS_COMMAND != 0 {
            CorrelationId(command_id.0)
        } else {
            CorrelationId(self.uuid("a correlation id")?)
        };
        let causation_id = if flags & FLAG_CAUSATION_IS_COMMAND != 0 {
            command_id.0
        } else {
            self.uuid("a causation id")?
        };
        let occurred_at = self.time()?;
        let schema_version = self.u16("a schema version")?;
        let office = if flags & FLAG_OFFICE != 0 {
            Some(OfficeId(self.uuid("an office id")?))
        } else {
            None
        };
        Ok(EventHead {
            event_id,
            correlation_id,
            causation_id,
            occurred_at,
            schema_version,
            office,
        })
    }

    /// The ids, time, schema version and office of an `FNL2` event.
    fn head_v2(&mut self) -> Result<EventHead, String> {
        let event_id = EventId(self.uuid("an event id")?);
        let correlation_id = CorrelationId(self.uuid("a correlation id")?);
        let causation_id = self.uuid("a causation id")?;
        let occurred_at = self.time()?;
        let schema_version = self.u16("a schema version")?;
        let office = match self.u8("the event flags")? {
            0 => None,
            FLAG_OFFICE => Some(OfficeId(self.uuid("an office id")?)),
            flags => return Err(format!("unknown event flags {flags:#04x}")),
        };
        Ok(EventHead {
            event_id,
            correlation_id,
            causation_id,
            occurred_at,
            schema_version,
            office,
        })
    }

    /// An occurrence time: seconds and nanoseconds.
    fn time(&mut self) -> Result<DateTime<Utc>, String> {
        let secs = i64::from_be_bytes(self.array("an occurrence time")?);
        let nanos = self.u32("an occurrence time")?;
        DateTime::<Utc>::from_timestamp(secs, nanos)
            .ok_or_else(|| format!("occurrence time {secs}s {nanos}ns is out of range"))
    }

    /// Reads the next event.
    pub fn event(&mut self) -> Result<EventView<'a>, String> {
        let EventHead {
            event_id,
            correlation_id,
            causation_id,
            occurred_at,
            schema_version,
            office,
        } = match self.command_id {
            Some(command_id) => self.head_v3(command_id)?,
            None => self.head_v2()?,
        };
        let actor = match self.u8("the actor kind")? {
            ACTOR_STAFF => {
                let id = StaffId(self.uuid("a staff id")?);
                let len = self.u8("the length of a role")? as usize;
                let role: Role = self.str(len, "a role")?.parse()?;
                Actor::Staff { id, role }
            }
            ACTOR_SYSTEM => {
                let len = self.u16("the length of an actor name")? as usize;
                Actor::System {
                    name: self.str(len, "an actor name")?.to_owned(),
                }
            }
            kind => return Err(format!("unknown actor kind {kind}")),
        };
        let len = self.u16("the length of an event type")? as usize;
        let event_type = self.str(len, "an event type")?;
        let len = self.u32("the length of a payload")? as usize;
        let start = self.at;
        self.take(len, "a payload")?;
        Ok(EventView {
            event_id,
            correlation_id,
            causation_id,
            occurred_at,
            schema_version,
            office,
            actor,
            event_type,
            payload: start..self.at,
        })
    }
}
