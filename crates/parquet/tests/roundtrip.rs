//! An events file holds every event given, in order, with the envelope in typed columns and the
//! payload as the JSON the NDJSON export carries; a leads file one row per lead of the pipeline.

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMicrosecondType, UInt16Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use funnel_app::query::reports::LeadExport;
use funnel_domain::Event;
use funnel_domain::model::{Channel, PurchaseMode, Stage, Tier};
use funnel_parquet::{EventsWriter, ROWS_PER_GROUP, events_schema, leads_schema, write_leads};
use funnel_types::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn envelope(i: u64, payload: Event, actor: Actor) -> Envelope<Event> {
    let at =
        Utc.with_ymd_and_hms(2026, 9, 30, 10, 0, 0).unwrap() + chrono::Duration::seconds(i as i64);
    Envelope {
        meta: Metadata {
            event_id: EventId::v7_from_parts(at.timestamp_millis() as u64, [i as u8; 10]),
            event_type: payload.event_type().into(),
            schema_version: payload.schema_version(),
            stream: StreamId::new("lead", i).unwrap(),
            version: Version(i + 1),
            position: Position(1_000 + i),
            occurred_at: at,
            recorded_at: at + chrono::Duration::milliseconds(5),
            actor,
            office: i.is_multiple_of(2).then(|| OfficeId::derived("sh")),
            command_id: CommandId::derived(&format!("c{i}")),
            correlation_id: CorrelationId::derived(&format!("k{i}")),
            causation_id: uuid::Uuid::from_u128(u128::from(i)),
        },
        payload,
    }
}

fn read(bytes: Vec<u8>) -> (Vec<RecordBatch>, usize) {
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
    let groups = builder.metadata().num_row_groups();
    let batches = builder.build().unwrap().map(Result::unwrap).collect();
    (batches, groups)
}

#[test]
fn every_event_is_a_row_with_its_envelope_and_payload() {
    let examples = funnel_codec::examples();
    let envs: Vec<_> = examples
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let actor = if i % 3 == 0 {
                Actor::system("timer")
            } else {
                Actor::staff(StaffId::derived("eng"), Role::SalesEngineer)
            };
            envelope(i as u64, e, actor)
        })
        .collect();
    let mut w = EventsWriter::new(Vec::new()).unwrap();
    for env in &envs {
        w.push(env).unwrap();
    }
    assert_eq!(w.rows(), envs.len() as u64);
    let (batches, _) = read(w.finish().unwrap());
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, envs.len());
    let b = arrow_select_concat(&batches);
    assert_eq!(b.schema().fields(), events_schema().fields());
    let col = |name: &str| b.column_by_name(name).unwrap().clone();
    for (i, env) in envs.iter().enumerate() {
        let m = &env.meta;
        assert_eq!(
            col("position").as_primitive::<UInt64Type>().value(i),
            m.position.0
        );
        assert_eq!(
            col("version").as_primitive::<UInt64Type>().value(i),
            m.version.0
        );
        assert_eq!(
            col("schema_version").as_primitive::<UInt16Type>().value(i),
            m.schema_version
        );
        assert_eq!(col("type").as_string::<i32>().value(i), m.event_type);
        assert_eq!(col("stream").as_string::<i32>().value(i), m.stream.as_str());
        assert_eq!(
            col("event_id").as_string::<i32>().value(i),
            m.event_id.to_string()
        );
        assert_eq!(
            col("occurred_at")
                .as_primitive::<TimestampMicrosecondType>()
                .value(i),
            m.occurred_at.timestamp_micros()
        );
        assert_eq!(
            col("recorded_at")
                .as_primitive::<TimestampMicrosecondType>()
                .value(i),
            m.recorded_at.timestamp_micros()
        );
        let office = col("office_id");
        assert_eq!(office.is_null(i), m.office.is_none());
        match &m.actor {
            Actor::Staff { id, role } => {
                assert_eq!(col("actor_kind").as_string::<i32>().value(i), "staff");
                assert_eq!(col("actor_id").as_string::<i32>().value(i), id.to_string());
                assert_eq!(col("actor_role").as_string::<i32>().value(i), role.as_str());
                assert!(col("actor_name").is_null(i));
            }
            Actor::System { name } => {
                assert_eq!(col("actor_kind").as_string::<i32>().value(i), "system");
                assert!(col("actor_id").is_null(i));
                assert_eq!(col("actor_name").as_string::<i32>().value(i), name);
            }
        }
        assert_eq!(
            col("command_id").as_string::<i32>().value(i),
            m.command_id.to_string()
        );
        assert_eq!(
            col("correlation_id").as_string::<i32>().value(i),
            m.correlation_id.to_string()
        );
        assert_eq!(
            col("causation_id").as_string::<i32>().value(i),
            m.causation_id.to_string()
        );
        // The payload is the NDJSON export's `payload`, and decodes back to the event.
        let payload: serde_json::Value =
            serde_json::from_str(col("payload").as_string::<i32>().value(i)).unwrap();
        assert_eq!(payload, funnel_codec::to_ndjson(env)["payload"]);
        let back = funnel_codec::decode(
            m.position,
            &m.event_type,
            m.schema_version,
            payload.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(back, env.payload);
    }
}

fn arrow_select_concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).unwrap()
}

#[test]
fn a_long_log_is_written_in_bounded_row_groups() {
    let example = funnel_codec::examples().remove(0);
    let n = ROWS_PER_GROUP as u64 * 2 + 10;
    let mut w = EventsWriter::new(Vec::new()).unwrap();
    for i in 0..n {
        w.push(&envelope(i, example.clone(), Actor::system("demo")))
            .unwrap();
    }
    let (batches, groups) = read(w.finish().unwrap());
    assert_eq!(groups, 3, "row groups of at most {ROWS_PER_GROUP} rows");
    let positions: Vec<u64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("position")
                .unwrap()
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(positions.len() as u64, n);
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "log order kept");
}

#[test]
fn an_empty_log_is_a_valid_file_with_the_columns() {
    let w = EventsWriter::new(Vec::new()).unwrap();
    let bytes = w.finish().unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
    assert_eq!(builder.schema().fields(), events_schema().fields());
    assert_eq!(builder.metadata().file_metadata().num_rows(), 0);
}

fn lead(i: u64, amount: Option<u64>) -> LeadExport {
    let at = Utc.with_ymd_and_hms(2026, 9, 1, 2, 0, 0).unwrap();
    LeadExport {
        lead_id: LeadId::derived(&format!("lead-{i}")),
        office_id: OfficeId::derived("sh"),
        office_code: Some("SH".into()),
        office_name: Some("上海办事处".into()),
        customer: format!("万科·城市花园 {i}"),
        owner_id: amount.map(|_| StaffId::derived("eng")),
        owner_name: amount.map(|_| "张伟".into()),
        channel: Channel::ALL[0],
        purchase_mode: PurchaseMode::ALL[0],
        stage: Stage::ALL[(i as usize) % Stage::ALL.len()],
        stage_since: at,
        registered_at: at,
        amount_cny: amount,
        tier: amount.map(|_| Tier::ALL[0]),
        declared_amount_cny: None,
        declared_tier: None,
        last_visit_at: amount.map(|_| at + chrono::Duration::days(3)),
        idle_days: Some(i as i64),
        ageing: i.is_multiple_of(2),
        reached_valid: true,
        reached_prospect: amount.is_some(),
        reached_contract: false,
        as_of: Some(at + chrono::Duration::days(30)),
    }
}

#[test]
fn every_lead_is_a_row_with_its_record() {
    let leads = vec![lead(0, Some(2_500_000)), lead(1, None), lead(2, Some(0))];
    let (bytes, rows) = write_leads(&leads, Vec::new()).unwrap();
    assert_eq!(rows, 3);
    let (batches, _) = read(bytes);
    let b = arrow_select_concat(&batches);
    assert_eq!(b.schema().fields(), leads_schema().fields());
    assert_eq!(b.num_rows(), leads.len());
    for (i, l) in leads.iter().enumerate() {
        let text = |name: &str| {
            let c = b.column_by_name(name).unwrap();
            (!c.is_null(i)).then(|| c.as_string::<i32>().value(i).to_string())
        };
        assert_eq!(text("lead_id"), Some(l.lead_id.to_string()));
        assert_eq!(text("customer"), Some(l.customer.clone()));
        assert_eq!(text("stage").as_deref(), Some(l.stage.as_str()));
        assert_eq!(text("channel").as_deref(), Some(l.channel.as_str()));
        assert_eq!(text("owner_name"), l.owner_name);
        assert_eq!(text("tier").as_deref(), l.tier.map(|t| t.as_str()));
        let amount = b.column_by_name("amount_cny").unwrap();
        assert_eq!(amount.is_null(i), l.amount_cny.is_none());
        if let Some(a) = l.amount_cny {
            assert_eq!(amount.as_primitive::<UInt64Type>().value(i), a);
        }
        let visit = b.column_by_name("last_visit_at").unwrap();
        assert_eq!(
            (!visit.is_null(i)).then(|| visit.as_primitive::<TimestampMicrosecondType>().value(i)),
            l.last_visit_at.map(|t| t.timestamp_micros())
        );
        let ageing = b.column_by_name("ageing").unwrap().as_boolean().value(i);
        assert_eq!(ageing, l.ageing);
    }
}
