//! What an engineer enters on a phone besides a registration and a visit: a key person with the
//! relationship levels (Table 5) from the lead's record page, a contract (its file) submitted for
//! review or amended, and a visit plan (Table 4) for a week or a month. They run the same commands
//! as the API (`record_key_person`, `submit_contract` and `amend_contract`, `POST /plans`) as the
//! signed-in person; the domain decides.

use super::inbox::{answer, form_to_json, run_lead_json};
use super::{Shell, Tr, Viewer, html};
use crate::AppState;
use crate::extract::{path_id, write_id};
use crate::problem::Problem;
use crate::routes::write;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{Datelike, Duration, NaiveDate};
use funnel_domain::Event;
use funnel_domain::events::PlannedVisit;
use funnel_domain::model::Period;
use funnel_types::{LeadId, StreamId};
use serde::Deserialize;
use serde_json::{Value, json};

/// `POST /console/leads/{id}/key-persons`: records a key person and, when both are given, the
/// relationship levels assessed with them (company and personal, A to C). The levels are a second
/// command naming the person just recorded; if it is refused, the person stays recorded and the
/// answer says so.
pub async fn key_person(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(lead): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tr = viewer.tr;
    let outcome = async {
        let lead: LeadId = path_id("lead id", &lead)?;
        let mut json = form_to_json(&body, viewer.zone)?;
        let fields = json
            .as_object_mut()
            .ok_or_else(|| Problem::bad_body("a form"))?;
        let levels = match (fields.remove("company"), fields.remove("personal")) {
            (None, None) => None,
            (Some(company), Some(personal)) => {
                Some(json!({ "company": company, "personal": personal }))
            }
            _ => {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "request.field_required",
                    "give both relationship levels (company and personal), or neither",
                    "公司关系与个人关系等级须同时填写，或同时留空",
                ));
            }
        };
        // A title may be left empty (the command takes it as text, not as optional).
        fields.entry("title").or_insert_with(|| json!(""));
        let with_levels = levels.is_some();
        if let Some(levels) = levels {
            fields.insert("levels".into(), levels);
        }
        // One command: the person and the levels are recorded together or not at all.
        run_lead_json(&state, &viewer, lead, "record_key_person", &headers, &json).await?;
        Ok(if with_levels {
            tr.t(
                "已记录关键人物及关系等级。",
                "Key person and relationship levels recorded.",
            )
        } else {
            tr.t("已记录关键人物。", "Key person recorded.")
        }
        .to_string())
    }
    .await;
    answer(&viewer, &headers, outcome)
}

/// The largest contract file the console takes (its fingerprint is computed as it arrives; the
/// file itself is not kept).
pub const CONTRACT_FILE_LIMIT: usize = 10 * 1024 * 1024;

fn unreadable_upload(e: axum::extract::multipart::MultipartError) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "request.bad_body",
        format!(
            "the form with the contract's file could not be read ({e}); a file may be at most {} MiB",
            CONTRACT_FILE_LIMIT / (1024 * 1024)
        ),
        format!(
            "无法读取带合同文件的表单（{e}）；文件不得超过 {} MiB",
            CONTRACT_FILE_LIMIT / (1024 * 1024)
        ),
    )
}

/// `POST /console/leads/{id}/contracts` (`multipart/form-data`): submits the lead's contract for
/// review (`command=submit_contract`) or amends it (`command=amend_contract` with `contract_id`
/// and `reason`), with the amount in 万元 (`amount_cny:wan`) and the contract's file (`file`). The
/// command carries the file's SHA-256, which every reviewer's approval is bound to; the file is
/// read once, as it arrives, and not kept.
pub async fn contract(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(lead): Path<String>,
    headers: HeaderMap,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    use sha2::Digest;
    let tr = viewer.tr;
    let outcome = async {
        let lead: LeadId = path_id("lead id", &lead)?;
        // Not a multipart form at all: said in both languages, as every refusal is.
        let mut form = form.map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "request.bad_body",
                "the contract form must be sent as multipart/form-data with the contract's file",
                "合同表单须以 multipart/form-data 提交，并附合同文件",
            )
        })?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut fingerprint = None;
        while let Some(mut field) = form.next_field().await.map_err(unreadable_upload)? {
            let name = field.name().unwrap_or_default().to_string();
            if name == "file" {
                let mut hash = sha2::Sha256::new();
                let mut size = 0usize;
                while let Some(chunk) = field.chunk().await.map_err(unreadable_upload)? {
                    size += chunk.len();
                    hash.update(&chunk);
                }
                // A form sent with no file chosen still has the field, empty.
                if size > 0 {
                    fingerprint = Some((hex::encode(hash.finalize()), size));
                }
            } else {
                pairs.push((name, field.text().await.map_err(unreadable_upload)?));
            }
        }
        let command = pairs
            .iter()
            .position(|(k, _)| k == "command")
            .map(|i| pairs.remove(i).1)
            .unwrap_or_default();
        if !matches!(command.as_str(), "submit_contract" | "amend_contract") {
            return Err(Problem::bad_request(
                "command",
                "`submit_contract` or `amend_contract`",
            ));
        }
        let (hash, size) = fingerprint.ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "request.field_required",
                "choose the contract's file: its fingerprint is what the reviewers approve",
                "请选择合同文件：评审人员批准的是该文件的指纹",
            )
        })?;
        // The other fields as the console's other forms send them (`amount_cny:wan` …).
        let encoded = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        let mut json = form_to_json(encoded.as_bytes(), viewer.zone)?;
        json.as_object_mut()
            .ok_or_else(|| Problem::bad_body("a form"))?
            .insert("content_hash".into(), json!(hash));
        run_lead_json(&state, &viewer, lead, &command, &headers, &json).await?;
        let short = hash.get(..12).unwrap_or(&hash);
        Ok(match tr.lang {
            super::Lang::Zh => format!(
                "已提交，已记录。合同文件 {size} 字节，指纹（SHA-256）{short}…；评审人员据此审批。"
            ),
            super::Lang::En => format!(
                "Done: recorded. The contract's file has {size} bytes, fingerprint (SHA-256) {short}…; the reviewers approve that."
            ),
        })
    }
    .await;
    answer(&viewer, &headers, outcome)
}

/// A period the plan page offers.
pub struct PeriodOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One row of the plan form.
pub struct PlanRow {
    pub date: String,
    pub customer: String,
    pub purpose: String,
    pub lead_id: String,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    shell: Shell,
    periods: Vec<PeriodOption>,
    /// The hidden fields that name the period in the command.
    period_fields: Vec<(String, String)>,
    first: String,
    last: String,
    due: String,
    /// The plan as submitted so far: its revision and whether it was on time.
    submitted: Option<(u32, bool)>,
    rows: Vec<PlanRow>,
    lead: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct PlanQuery {
    /// `week:YYYY-MM-DD` (a Monday) or `month:YYYY-MM`.
    #[serde(default)]
    period: String,
    /// A lead to add to the plan.
    #[serde(default)]
    lead: String,
    #[serde(default)]
    #[allow(dead_code)]
    lang: Option<String>,
}

fn period_value(p: &Period) -> String {
    match p {
        Period::Week { monday } => format!("week:{monday}"),
        Period::Month { year, month } => format!("month:{year}-{month:02}"),
    }
}

fn parse_period(text: &str) -> Option<Period> {
    let (kind, rest) = text.split_once(':')?;
    match kind {
        "week" => {
            let monday: NaiveDate = rest.parse().ok()?;
            (monday.weekday() == chrono::Weekday::Mon).then_some(Period::Week { monday })
        }
        "month" => {
            let (y, m) = rest.split_once('-')?;
            let (year, month) = (y.parse().ok()?, m.parse().ok()?);
            (1..=12)
                .contains(&month)
                .then_some(Period::Month { year, month })
        }
        _ => None,
    }
}

fn period_label(tr: Tr, p: &Period, which: &str) -> String {
    match p {
        Period::Week { monday } => format!(
            "{which} · {} {} – {}",
            tr.t("周计划", "week"),
            monday.format("%m-%d"),
            (*monday + Duration::days(6)).format("%m-%d")
        ),
        Period::Month { year, month } => {
            format!("{which} · {} {year}-{month:02}", tr.t("月计划", "month"))
        }
    }
}

/// The periods an engineer plans on `today`: next week (due this Friday), this week, next month
/// (due the 28th) and this month.
fn periods(tr: Tr, today: NaiveDate) -> Vec<(Period, String)> {
    let this_monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
    let (y, m) = (today.year(), today.month());
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    vec![
        Period::Week {
            monday: this_monday + Duration::days(7),
        },
        Period::Week {
            monday: this_monday,
        },
        Period::Month {
            year: ny,
            month: nm,
        },
        Period::Month { year: y, month: m },
    ]
    .into_iter()
    .zip([
        tr.t("下周", "next week"),
        tr.t("本周", "this week"),
        tr.t("下月", "next month"),
        tr.t("本月", "this month"),
    ])
    .map(|(p, which)| {
        let label = period_label(tr, &p, which);
        (p, label)
    })
    .collect()
}

/// The visits of the caller's plan for a period as last submitted, its revision and whether it
/// was on time (none before the first submission).
async fn submitted_plan(
    state: &AppState,
    viewer: &Viewer,
    period: &Period,
) -> Result<Option<(Vec<PlannedVisit>, u32, bool)>, Problem> {
    let plan = funnel_domain::plan::plan_id(viewer.caller.staff_id, period);
    let stream = StreamId::new("plan", plan).map_err(Problem::internal)?;
    let records = funnel_store::read_whole_stream(state.store().as_ref(), &stream).await?;
    let mut last = None;
    for r in &records {
        let env = funnel_codec::decode_recorded(r).map_err(Problem::internal)?;
        if let Event::VisitPlanSubmitted(e) = env.payload {
            last = Some((e.visits, e.revision, e.on_time));
        }
    }
    Ok(last)
}

/// `GET /console/plans?period=&lead=`: the signed-in engineer's visit plan for a period (next week
/// unless another is chosen), as submitted so far, with the lead of `lead` added as a row and room
/// for more; submitting it again is a revision that replaces the plan's visits.
pub async fn plan_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<PlanQuery>,
) -> Response {
    let tr = viewer.tr;
    let shell = Shell::new(
        tr,
        tr.t("拜访计划", "Visit plan"),
        "/console/plans",
        Some(&viewer),
    )
    .with_query(&[("period", q.period.clone()), ("lead", q.lead.clone())]);
    let today = state
        .engine()
        .clock()
        .now()
        .with_timezone(&viewer.zone)
        .date_naive();
    let offered = periods(tr, today);
    let period = parse_period(&q.period).unwrap_or(offered[0].0);
    let mut periods: Vec<PeriodOption> = offered
        .iter()
        .map(|(p, label)| PeriodOption {
            value: period_value(p),
            label: label.clone(),
            selected: *p == period,
        })
        .collect();
    if !periods.iter().any(|p| p.selected) {
        periods.push(PeriodOption {
            value: period_value(&period),
            label: period_label(tr, &period, tr.t("所选", "chosen")),
            selected: true,
        });
    }
    let Some((first, last)) = funnel_domain::plan::period_days(&period) else {
        return super::problem_page(shell, &Problem::bad_request("period", "not a period"));
    };
    let due = funnel_domain::plan::due_at(&period, viewer.zone)
        .map(|d| super::local_time(d, viewer.zone))
        .unwrap_or_default();
    let submitted = match submitted_plan(&state, &viewer, &period).await {
        Ok(s) => s,
        Err(p) => return super::problem_page(shell, &p),
    };
    let mut rows: Vec<PlanRow> = submitted
        .as_ref()
        .map(|(visits, _, _)| {
            visits
                .iter()
                .map(|v| PlanRow {
                    date: v.date.to_string(),
                    customer: v.customer.clone(),
                    purpose: v.purpose.clone(),
                    lead_id: v.lead_id.map(|l| l.to_string()).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    if let Ok(lead) = q.lead.parse::<LeadId>()
        && !rows.iter().any(|r| r.lead_id == lead.to_string())
    {
        match funnel_app::query::record::lead_record(
            state.reads(),
            &viewer.caller,
            lead,
            None,
            None,
        )
        .await
        {
            Ok(r) => rows.push(PlanRow {
                date: first.max(today).min(last).to_string(),
                customer: r.fields.customer_name.clone(),
                purpose: String::new(),
                lead_id: lead.to_string(),
            }),
            Err(e) => return super::problem_page(shell, &Problem::from(e)),
        }
    }
    for _ in 0..3 {
        rows.push(PlanRow {
            date: String::new(),
            customer: String::new(),
            purpose: String::new(),
            lead_id: String::new(),
        });
    }
    let period_fields = match period {
        Period::Week { monday } => vec![
            ("period.kind".into(), "week".into()),
            ("period.monday".into(), monday.to_string()),
        ],
        Period::Month { year, month } => vec![
            ("period.kind".into(), "month".into()),
            ("period.year:int".into(), year.to_string()),
            ("period.month:int".into(), month.to_string()),
        ],
    };
    html(
        PlanPage {
            shell,
            periods,
            period_fields,
            first: first.to_string(),
            last: last.to_string(),
            due,
            submitted: submitted.map(|(_, revision, on_time)| (revision, on_time)),
            rows,
            lead: q.lead,
        }
        .render(),
    )
}

/// The visits of a plan form: rows left wholly empty are dropped; a row with anything in it keeps
/// every field (an empty customer is refused by the domain with its message).
fn plan_visits(json: &mut Value) {
    let Some(visits) = json.get_mut("visits") else {
        json["visits"] = json!([]);
        return;
    };
    if let Value::Array(rows) = visits {
        rows.retain(|r| {
            r.as_object()
                .is_some_and(|o| o.keys().any(|k| k != "lead_id"))
        });
        for row in rows.iter_mut() {
            if let Value::Object(o) = row {
                for k in ["customer", "purpose"] {
                    o.entry(k).or_insert_with(|| json!(""));
                }
                o.entry("date").or_insert_with(|| json!(""));
            }
        }
    }
}

/// `POST /console/plans`: submits (or revises) the signed-in engineer's visit plan, as
/// `POST /plans` does.
pub async fn submit_plan(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tr = viewer.tr;
    let outcome = async {
        let mut json = form_to_json(&body, viewer.zone)?;
        plan_visits(&mut json);
        // Say which row misses what (the command would name only the field).
        for (i, row) in json["visits"].as_array().into_iter().flatten().enumerate() {
            for (field, zh) in [("date", "日期"), ("customer", "客户")] {
                if row[field].as_str().is_some_and(|v| v.trim().is_empty()) {
                    return Err(Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "request.field_required",
                        format!("visit {} has no {field}", i + 1),
                        format!("第 {} 行拜访未填{zh}", i + 1),
                    ));
                }
            }
        }
        let visits = json["visits"].as_array().map(Vec::len).unwrap_or_default();
        let json = serde_json::to_vec(&json).unwrap_or_default();
        let id = write_id(&headers, &viewer.caller, "POST /plans", &json)?;
        let dto: crate::dto::SubmitPlan =
            crate::extract::from_json(&json).map_err(crate::extract::json_problem)?;
        write::run(
            &state,
            &viewer.caller,
            id,
            "submit_plan",
            funnel_engine::Command::Plan {
                plan_id: None,
                cmd: dto.into_command(),
            },
        )
        .await?;
        Ok(if tr.en() {
            format!("Plan submitted with {visits} visits.")
        } else {
            format!("拜访计划已提交，共 {visits} 次拜访。")
        })
    }
    .await;
    answer(&viewer, &headers, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_round_trip_and_refuse_what_is_not_one() {
        let week = Period::Week {
            monday: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
        };
        assert_eq!(parse_period(&period_value(&week)), Some(week));
        let month = Period::Month {
            year: 2027,
            month: 1,
        };
        assert_eq!(parse_period(&period_value(&month)), Some(month));
        assert_eq!(parse_period("week:2026-12-08"), None, "not a Monday");
        assert_eq!(parse_period("month:2026-13"), None);
        assert_eq!(parse_period("day:2026-12-07"), None);
    }

    #[test]
    fn next_week_is_offered_first() {
        let tr = Tr {
            lang: super::super::Lang::Zh,
        };
        // A Saturday: next week starts on the Monday after.
        let p = periods(tr, NaiveDate::from_ymd_opt(2026, 12, 5).unwrap());
        assert_eq!(
            p[0].0,
            Period::Week {
                monday: NaiveDate::from_ymd_opt(2026, 12, 7).unwrap()
            }
        );
        assert_eq!(
            p[2].0,
            Period::Month {
                year: 2027,
                month: 1
            }
        );
    }

    #[test]
    fn empty_rows_are_dropped_and_partial_rows_kept() {
        let mut v = json!({"visits": [
            {"date": "2026-12-07", "customer": "万科", "lead_id": "x"},
            null,
            {"lead_id": "y"},
            {"purpose": "回访"},
        ]});
        plan_visits(&mut v);
        assert_eq!(
            v["visits"],
            json!([
                {"date": "2026-12-07", "customer": "万科", "lead_id": "x", "purpose": ""},
                {"date": "", "customer": "", "purpose": "回访"},
            ])
        );
    }
}
