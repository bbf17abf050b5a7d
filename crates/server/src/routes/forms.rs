//! `GET /forms/{n}/{id}?format=html|csv`: the manual's standard forms (Part 3) built from the record
//! — forms 1, 2, 5 and 6 of a lead, 3 of an office summary, 4 of a visit plan — as a printable page
//! or a spreadsheet. Office roles get the forms of their office; headquarters and auditors all.

use crate::AppState;
use crate::auth::{Access, Caller};
use crate::extract::{Q, path_id};
use crate::problem::Problem;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use funnel_forms::{FormError, FormKind, NameBook};
use funnel_store::read_whole_stream;
use funnel_types::StreamId;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormParams {
    /// `html` (the default, printable) or `csv` (a spreadsheet).
    pub format: Option<Format>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Html,
    Csv,
}

/// Names of staff and offices, and an office's time zone, from the access model.
pub fn name_book(access: &Access) -> NameBook {
    NameBook {
        staff: access
            .staff
            .iter()
            .map(|(id, s)| (*id, s.name.clone()))
            .collect(),
        offices: access
            .offices
            .iter()
            .map(|(id, o)| (*id, o.name.clone()))
            .collect(),
    }
}

pub async fn form(
    State(state): State<AppState>,
    caller: Caller,
    Path((n, id)): Path<(String, String)>,
    Q(params): Q<FormParams>,
) -> Result<Response, Problem> {
    let kind = n
        .parse::<u8>()
        .ok()
        .and_then(FormKind::from_number)
        .ok_or_else(|| {
            Problem::not_found(
                "form.unknown",
                format!("no form `{n}`; the manual's forms are 1 to 6"),
                format!("没有表 `{n}`，手册中的表为 1 至 6"),
            )
        })?;
    let id: uuid::Uuid = path_id("id", &id)?;
    let stream = StreamId::new(kind.category(), id).map_err(Problem::internal)?;
    let records = read_whole_stream(state.store().as_ref(), &stream).await?;
    let events = records
        .iter()
        .map(funnel_codec::decode_recorded)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Problem::internal)?;
    let office = events.iter().find_map(|e| e.meta.office);
    if let Some(office) = office {
        caller.check_read(office)?;
    } else if !events.is_empty() && !caller.reads_all() {
        return Err(Problem::forbidden(
            funnel_domain::RefusalCode::OtherOffice,
            "this record belongs to no office; office roles read their own office's",
            "该记录不属于任何办事处，办事处人员只能查看本办事处的记录",
        ));
    }
    let (names, tz) = {
        let r = state.runner().read().await;
        let access = r.get::<Access>();
        let names = access.map(name_book).unwrap_or_default();
        let tz = office
            .and_then(|o| access.and_then(|a| a.offices.get(&o)))
            .map(|o| o.timezone.as_str());
        let tz = funnel_domain::time::zone(tz);
        (names, tz)
    };
    let mut form = funnel_forms::build(kind, &events, &names, tz).map_err(|e| match e {
        FormError::NotFound(m) => Problem::not_found(
            "form.no_record",
            format!(
                "{m} (form {} is made from a {} id)",
                kind.number(),
                kind.category()
            ),
            format!("没有可生成表{}的记录", kind.number()),
        ),
        FormError::NotYet(m) => Problem::new(
            StatusCode::CONFLICT,
            "form.not_yet",
            m,
            format!("该记录尚无表{}的内容", kind.number()),
        ),
    })?;
    form.printed = Some(state.engine().now().with_timezone(&tz).date_naive());
    let file = format!("form-{}-{id}", kind.number());
    Ok(match params.format.unwrap_or_default() {
        Format::Html => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'".to_string(),
                ),
            ],
            funnel_forms::to_html(&form),
        )
            .into_response(),
        Format::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file}.csv\""),
                ),
            ],
            funnel_forms::to_csv(&form),
        )
            .into_response(),
    })
}

/// Query of `GET /forms/office/{office}`: the period, in days on the office's clock.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfficeFormsParams {
    /// First day (`YYYY-MM-DD`).
    pub from: chrono::NaiveDate,
    /// Last day (`YYYY-MM-DD`), included.
    pub to: chrono::NaiveDate,
}

/// The forms of an office's records that changed in a period (`from`..=`to`, days on the office's
/// clock): forms 1, 2 and 5 of each lead with an event in it (and 6 when it has a prospect
/// declaration), 3 of each summary and 4 of each plan with an event in it. Records are read whole,
/// so each form shows its record as of now. Reads the log once; holds the office's events only.
pub async fn office_forms(
    store: &dyn funnel_store::EventStore,
    names: &NameBook,
    office: funnel_types::OfficeId,
    tz: chrono_tz::Tz,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Result<Vec<funnel_forms::Form>, Problem> {
    use std::collections::BTreeMap;
    let (start, end) = (
        funnel_domain::time::start_of_day(from, tz),
        funnel_domain::time::end_of_day(to, tz),
    );
    let mut streams: BTreeMap<String, (bool, Vec<funnel_types::Envelope<funnel_domain::Event>>)> =
        BTreeMap::new();
    let mut after = funnel_types::Position::START;
    loop {
        let page = store
            .read_all(after, &funnel_store::Filter::All, 2000)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.meta.position;
        for rec in page.iter().filter(|r| {
            r.meta.office == Some(office)
                && matches!(r.meta.stream.category(), "lead" | "summary" | "plan")
        }) {
            let env = funnel_codec::decode_recorded(rec).map_err(Problem::internal)?;
            let inside = (start..=end).contains(&env.meta.occurred_at);
            let entry = streams.entry(env.meta.stream.to_string()).or_default();
            entry.0 |= inside;
            entry.1.push(env);
        }
    }
    let mut forms = Vec::new();
    for (stream, (inside, events)) in streams {
        if !inside {
            continue;
        }
        let kinds: &[FormKind] = match stream.split('-').next() {
            Some("summary") => &[FormKind::OfficeSummary],
            Some("plan") => &[FormKind::VisitPlan],
            _ => &[
                FormKind::CustomerRecord,
                FormKind::FollowUps,
                FormKind::KeyPersons,
                FormKind::ProspectDeclaration,
            ],
        };
        for kind in kinds {
            // A record without a form's subject (no prospect declaration yet) has no such form.
            if let Ok(form) = funnel_forms::build(*kind, &events, names, tz) {
                forms.push(form);
            }
        }
    }
    Ok(forms)
}

/// `GET /forms/office/{office}?from=&to=`: an office's forms for a period as one workbook
/// (`.xlsx`), a sheet per form with Chinese headers ([`office_forms`]); office roles get their own
/// office's, headquarters and auditors any office's.
pub async fn office_workbook(
    State(state): State<AppState>,
    caller: Caller,
    Path(office): Path<String>,
    Q(params): Q<OfficeFormsParams>,
) -> Result<Response, Problem> {
    let office = state.reads().office(&office).await?;
    caller.check_read(office)?;
    if params.to < params.from {
        // Each date is well formed; their order is a rule of the question, not of the shape.
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation.period_reversed",
            format!(
                "the period ends ({}) before it starts ({})",
                params.to, params.from
            ),
            format!("期间的结束日（{}）早于开始日（{}）", params.to, params.from),
        ));
    }
    let (names, tz, code) = {
        let r = state.runner().read().await;
        let access = r.get::<Access>();
        let entry = access.and_then(|a| a.offices.get(&office));
        (
            access.map(name_book).unwrap_or_default(),
            funnel_domain::time::zone(entry.map(|o| o.timezone.as_str())),
            entry
                .map(|o| o.code.clone())
                .unwrap_or_else(|| office.to_string()),
        )
    };
    let today = state.engine().now().with_timezone(&tz).date_naive();
    let mut forms = office_forms(
        state.store().as_ref(),
        &names,
        office,
        tz,
        params.from,
        params.to,
    )
    .await?;
    for f in &mut forms {
        f.printed = Some(today);
    }
    let bytes = funnel_forms::to_xlsx(&forms).map_err(Problem::internal)?;
    let file = format!("forms-{code}-{}-{}.xlsx", params.from, params.to);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
