//! Apache Parquet files of Funnel's record, for analysts' own tools (DuckDB, Polars, pandas, a
//! spreadsheet through any of them):
//!
//! - [`EventsWriter`]: one row per event, with typed columns for the envelope and the payload as
//!   JSON text ([`events_schema`]);
//! - [`write_leads`]: one row per lead (`funnel_app::query::reports::leads`) as of a moment
//!   ([`leads_schema`]).
//!
//! Rows are gathered in batches of [`ROWS_PER_BATCH`] and written in row groups of at most
//! [`ROWS_PER_GROUP`] rows, so the memory an export needs is bounded by a row group, not by the
//! length of the log. Times are UTC instants (`TIMESTAMP WITH TIME ZONE` in DuckDB); enumerations
//! are their stable English codes, as in the JSON API. Compression is Snappy, which every reader
//! supports.

use arrow_array::builder::{
    BooleanBuilder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt16Builder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use funnel_app::query::reports::LeadExport;
use funnel_domain::Event;
use funnel_types::{Actor, Envelope};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::io::Write;
use std::sync::Arc;

/// Rows gathered before they are handed to the Parquet writer as one Arrow batch.
pub const ROWS_PER_BATCH: usize = 8192;
/// The most rows in one row group (the writer's unit of memory).
pub const ROWS_PER_GROUP: usize = 65_536;

/// What can go wrong writing an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("building Arrow columns: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

fn instant() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn instants() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        .set_created_by(format!("funnel {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The columns of an events file, in order.
pub fn events_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("position", DataType::UInt64, false),
        text("event_id", false),
        text("stream", false),
        Field::new("version", DataType::UInt64, false),
        text("type", false),
        Field::new("schema_version", DataType::UInt16, false),
        Field::new("occurred_at", instant(), false),
        Field::new("recorded_at", instant(), false),
        text("office_id", true),
        text("actor_kind", false),
        text("actor_id", true),
        text("actor_role", true),
        text("actor_name", true),
        text("command_id", false),
        text("correlation_id", false),
        text("causation_id", false),
        text("payload", false),
    ]))
}

/// The columns of [`events_schema`] being filled.
struct EventColumns {
    position: UInt64Builder,
    event_id: StringBuilder,
    stream: StringBuilder,
    version: UInt64Builder,
    event_type: StringBuilder,
    schema_version: UInt16Builder,
    occurred_at: TimestampMicrosecondBuilder,
    recorded_at: TimestampMicrosecondBuilder,
    office_id: StringBuilder,
    actor_kind: StringBuilder,
    actor_id: StringBuilder,
    actor_role: StringBuilder,
    actor_name: StringBuilder,
    command_id: StringBuilder,
    correlation_id: StringBuilder,
    causation_id: StringBuilder,
    payload: StringBuilder,
    rows: usize,
}

impl EventColumns {
    fn new() -> Self {
        EventColumns {
            position: UInt64Builder::new(),
            event_id: StringBuilder::new(),
            stream: StringBuilder::new(),
            version: UInt64Builder::new(),
            event_type: StringBuilder::new(),
            schema_version: UInt16Builder::new(),
            occurred_at: instants(),
            recorded_at: instants(),
            office_id: StringBuilder::new(),
            actor_kind: StringBuilder::new(),
            actor_id: StringBuilder::new(),
            actor_role: StringBuilder::new(),
            actor_name: StringBuilder::new(),
            command_id: StringBuilder::new(),
            correlation_id: StringBuilder::new(),
            causation_id: StringBuilder::new(),
            payload: StringBuilder::new(),
            rows: 0,
        }
    }

    fn push(&mut self, env: &Envelope<Event>) {
        let m = &env.meta;
        self.position.append_value(m.position.0);
        self.event_id.append_value(m.event_id.to_string());
        self.stream.append_value(m.stream.as_str());
        self.version.append_value(m.version.0);
        self.event_type.append_value(&m.event_type);
        self.schema_version.append_value(m.schema_version);
        self.occurred_at.append_value(micros(m.occurred_at));
        self.recorded_at.append_value(micros(m.recorded_at));
        self.office_id
            .append_option(m.office.map(|o| o.to_string()));
        match &m.actor {
            Actor::Staff { id, role } => {
                self.actor_kind.append_value("staff");
                self.actor_id.append_value(id.to_string());
                self.actor_role.append_value(role.as_str());
                self.actor_name.append_null();
            }
            Actor::System { name } => {
                self.actor_kind.append_value("system");
                self.actor_id.append_null();
                self.actor_role.append_null();
                self.actor_name.append_value(name);
            }
        }
        self.command_id.append_value(m.command_id.to_string());
        self.correlation_id
            .append_value(m.correlation_id.to_string());
        self.causation_id.append_value(m.causation_id.to_string());
        self.payload
            .append_value(funnel_codec::payload_value(&env.payload).to_string());
        self.rows += 1;
    }

    fn finish(&mut self) -> Result<RecordBatch, ExportError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.position.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.stream.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.schema_version.finish()),
            Arc::new(self.occurred_at.finish()),
            Arc::new(self.recorded_at.finish()),
            Arc::new(self.office_id.finish()),
            Arc::new(self.actor_kind.finish()),
            Arc::new(self.actor_id.finish()),
            Arc::new(self.actor_role.finish()),
            Arc::new(self.actor_name.finish()),
            Arc::new(self.command_id.finish()),
            Arc::new(self.correlation_id.finish()),
            Arc::new(self.causation_id.finish()),
            Arc::new(self.payload.finish()),
        ];
        self.rows = 0;
        Ok(RecordBatch::try_new(events_schema(), columns)?)
    }
}

/// Writes events, in the order given, as rows of an events file ([`events_schema`]).
pub struct EventsWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    columns: EventColumns,
    rows: u64,
}

impl<W: Write + Send> std::fmt::Debug for EventsWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsWriter")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> EventsWriter<W> {
    pub fn new(out: W) -> Result<Self, ExportError> {
        Ok(EventsWriter {
            writer: ArrowWriter::try_new(out, events_schema(), Some(properties()))?,
            columns: EventColumns::new(),
            rows: 0,
        })
    }

    /// Adds one event as the next row.
    pub fn push(&mut self, env: &Envelope<Event>) -> Result<(), ExportError> {
        self.columns.push(env);
        self.rows += 1;
        if self.columns.rows >= ROWS_PER_BATCH {
            let batch = self.columns.finish()?;
            self.writer.write(&batch)?;
        }
        Ok(())
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the last rows and the file's footer, and gives the output back.
    pub fn finish(mut self) -> Result<W, ExportError> {
        if self.columns.rows > 0 {
            let batch = self.columns.finish()?;
            self.writer.write(&batch)?;
        }
        Ok(self.writer.into_inner()?)
    }
}

/// Why the log could not be written as Parquet.
#[derive(Debug, thiserror::Error)]
pub enum LogExportError {
    #[error(transparent)]
    Store(#[from] funnel_store::StoreError),
    #[error(transparent)]
    Decode(#[from] funnel_codec::DecodeError),
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// Writes the events of `store` after `after` that `filter` selects into `out`, a page of the log
/// at a time (memory stays bounded), calling `progress` with the rows written after each page:
/// `funnel export events --format parquet`, and what `funnel bench export` measures. Gives the
/// output back with the number of rows.
pub async fn write_log<W: Write + Send>(
    store: &dyn funnel_store::EventStore,
    after: funnel_types::Position,
    filter: &funnel_store::Filter,
    out: W,
    mut progress: impl FnMut(u64),
) -> Result<(W, u64), LogExportError> {
    let mut writer = EventsWriter::new(out)?;
    let mut after = after;
    loop {
        let batch = store.read_all(after, filter, 4096).await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        for rec in &batch {
            writer.push(&funnel_codec::decode_recorded(rec)?)?;
        }
        progress(writer.rows());
    }
    let rows = writer.rows();
    Ok((writer.finish()?, rows))
}

/// The columns of a leads file, in order.
pub fn leads_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("lead_id", false),
        text("office_id", false),
        text("office_code", true),
        text("office_name", true),
        text("customer", false),
        text("owner_id", true),
        text("owner_name", true),
        text("channel", false),
        text("purchase_mode", false),
        text("stage", false),
        Field::new("stage_since", instant(), false),
        Field::new("registered_at", instant(), false),
        Field::new("amount_cny", DataType::UInt64, true),
        text("tier", true),
        Field::new("declared_amount_cny", DataType::UInt64, true),
        text("declared_tier", true),
        Field::new("last_visit_at", instant(), true),
        Field::new("idle_days", DataType::Int64, true),
        Field::new("ageing", DataType::Boolean, false),
        Field::new("reached_valid", DataType::Boolean, false),
        Field::new("reached_prospect", DataType::Boolean, false),
        Field::new("reached_contract", DataType::Boolean, false),
        Field::new("as_of", instant(), true),
    ]))
}

/// Writes leads (the rows of `funnel_app::query::reports::leads`) as a leads file, and gives
/// the output back with the number of rows.
pub fn write_leads<W: Write + Send>(leads: &[LeadExport], out: W) -> Result<(W, u64), ExportError> {
    let mut writer = ArrowWriter::try_new(out, leads_schema(), Some(properties()))?;
    let mut rows = 0u64;
    for chunk in leads.chunks(ROWS_PER_BATCH) {
        let text = |f: &dyn Fn(&LeadExport) -> Option<&str>| -> ArrayRef {
            let mut b = StringBuilder::new();
            chunk.iter().for_each(|r| b.append_option(f(r)));
            Arc::new(b.finish())
        };
        let time = |f: &dyn Fn(&LeadExport) -> Option<DateTime<Utc>>| -> ArrayRef {
            let mut b = instants();
            chunk.iter().for_each(|r| b.append_option(f(r).map(micros)));
            Arc::new(b.finish())
        };
        let amount = |f: &dyn Fn(&LeadExport) -> Option<u64>| -> ArrayRef {
            let mut b = UInt64Builder::new();
            chunk.iter().for_each(|r| b.append_option(f(r)));
            Arc::new(b.finish())
        };
        let flag = |f: &dyn Fn(&LeadExport) -> bool| -> ArrayRef {
            let mut b = BooleanBuilder::new();
            chunk.iter().for_each(|r| b.append_value(f(r)));
            Arc::new(b.finish())
        };
        let mut idle = Int64Builder::new();
        chunk.iter().for_each(|r| idle.append_option(r.idle_days));
        let ids = |f: &dyn Fn(&LeadExport) -> Option<String>| -> ArrayRef {
            let mut b = StringBuilder::new();
            chunk.iter().for_each(|r| b.append_option(f(r)));
            Arc::new(b.finish())
        };
        let columns: Vec<ArrayRef> = vec![
            ids(&|r| Some(r.lead_id.to_string())),
            ids(&|r| Some(r.office_id.to_string())),
            text(&|r| r.office_code.as_deref()),
            text(&|r| r.office_name.as_deref()),
            text(&|r| Some(&r.customer)),
            ids(&|r| r.owner_id.map(|s| s.to_string())),
            text(&|r| r.owner_name.as_deref()),
            text(&|r| Some(r.channel.as_str())),
            text(&|r| Some(r.purchase_mode.as_str())),
            text(&|r| Some(r.stage.as_str())),
            time(&|r| Some(r.stage_since)),
            time(&|r| Some(r.registered_at)),
            amount(&|r| r.amount_cny),
            text(&|r| r.tier.map(|t| t.as_str())),
            amount(&|r| r.declared_amount_cny),
            text(&|r| r.declared_tier.map(|t| t.as_str())),
            time(&|r| r.last_visit_at),
            Arc::new(idle.finish()),
            flag(&|r| r.ageing),
            flag(&|r| r.reached_valid),
            flag(&|r| r.reached_prospect),
            flag(&|r| r.reached_contract),
            time(&|r| r.as_of),
        ];
        writer.write(&RecordBatch::try_new(leads_schema(), columns)?)?;
        rows += chunk.len() as u64;
    }
    Ok((writer.into_inner()?, rows))
}
