//! The forms from random lead histories (made by the real deciders) and from hand-made records: a
//! form exists exactly when its record does, its rows are the record's, the CSV reads back as
//! written, and nothing a user typed reaches the HTML unescaped.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use funnel_domain::Event;
use funnel_domain::events::*;
use funnel_domain::model::*;
use funnel_domain::{Policy, testing};
use funnel_forms::{FormError, FormKind, NameBook, build, csv_cell, to_csv, to_html};
use funnel_types::*;
use proptest::prelude::*;

const TZ: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// The events of one stream, in envelopes.
fn envelopes(stream: &str, events: Vec<Event>) -> Vec<Envelope<Event>> {
    let start = Utc
        .with_ymd_and_hms(2026, 3, 2, 1, 0, 0)
        .single()
        .expect("time");
    events
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let n = i as u64 + 1;
            let id = uuid::Uuid::from_u128(u128::from(n));
            Envelope {
                meta: Metadata {
                    event_id: EventId(id),
                    event_type: payload.event_type().to_string(),
                    schema_version: payload.schema_version(),
                    stream: StreamId::parse(stream).expect("stream"),
                    version: Version(n),
                    position: Position(n),
                    occurred_at: start + Duration::hours(i as i64),
                    recorded_at: start + Duration::hours(i as i64),
                    actor: Actor::system("test"),
                    office: Some(testing::office()),
                    command_id: CommandId(id),
                    correlation_id: CorrelationId(id),
                    causation_id: id,
                },
                payload,
            }
        })
        .collect()
}

fn names() -> NameBook {
    let mut n = NameBook::default();
    for (i, s) in testing::staff().iter().enumerate() {
        n.staff.insert(s.id, format!("员工{i}"));
    }
    n.offices.insert(testing::office(), "上海办事处".into());
    n
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let body = text
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark first");
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body.as_bytes())
        .records()
        .map(|r| {
            r.expect("a CSV record")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// Whether a spreadsheet would read the cell as a formula (a plain number is not one).
fn starts_a_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.parse::<f64>().is_err()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn forms_follow_the_record(steps in testing::steps(40)) {
        let (_, events) = testing::run(&steps, &Policy::default());
        let registered = events.iter().any(|e| matches!(e, Event::LeadRegistered(_)));
        let visits = events.iter().filter(|e| matches!(e, Event::VisitLogged(_))).count();
        let people: std::collections::BTreeSet<KeyPersonId> = events.iter().filter_map(|e| match e {
            Event::KeyPersonRecorded(k) => Some(k.key_person_id),
            _ => None,
        }).collect();
        let declared = events.iter().any(|e| matches!(e, Event::ProspectDeclared(_)));
        let env = envelopes("lead-prop", events);
        let names = names();
        for kind in [FormKind::CustomerRecord, FormKind::FollowUps, FormKind::KeyPersons, FormKind::ProspectDeclaration] {
            let form = build(kind, &env, &names, TZ);
            match (registered, kind) {
                (false, _) => prop_assert!(matches!(form, Err(FormError::NotFound(_)))),
                (true, FormKind::ProspectDeclaration) if !declared => {
                    prop_assert!(matches!(form, Err(FormError::NotYet(_))));
                }
                (true, _) => {
                    let form = form.expect("a form");
                    match kind {
                        FormKind::FollowUps => prop_assert_eq!(form.rows.len(), visits),
                        FormKind::KeyPersons => prop_assert_eq!(form.rows.len(), people.len()),
                        _ => prop_assert!(form.rows.is_empty()),
                    }
                    for r in &form.rows {
                        prop_assert_eq!(r.len(), form.columns.len());
                    }
                    // The CSV holds the head and every row, cell for cell (neutralised so no cell
                    // starts a formula).
                    let rows = csv_rows(&to_csv(&form));
                    for f in &form.fields {
                        let value = csv_cell(&f.value).into_owned();
                        prop_assert!(rows.iter().any(|r| r.get(1) == Some(&value)), "field {} missing", f.label_en);
                    }
                    for r in &form.rows {
                        let r: Vec<String> = r.iter().map(|c| csv_cell(c).into_owned()).collect();
                        prop_assert!(rows.contains(&r), "row {r:?} missing");
                    }
                    for cell in rows.iter().flatten() {
                        prop_assert!(!starts_a_formula(cell), "cell {cell:?} starts a formula");
                    }
                    let html = to_html(&form);
                    prop_assert!(html.starts_with("<!doctype html>"));
                    prop_assert!(!html.contains("<script"));
                }
            }
        }
    }
}

fn date(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).expect("date")
}

fn at(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    TZ.with_ymd_and_hms(2026, m, d, h, 0, 0)
        .single()
        .expect("time")
        .with_timezone(&Utc)
}

/// A lead with everything the lead forms show, some of it typed by a mischievous user.
fn lead() -> Vec<Envelope<Event>> {
    let lead_id = LeadId::derived("万科/城市花园二期");
    let wang = StaffId::derived("e1");
    let kp = KeyPersonId::derived("kp");
    let declaration_id = DeclarationId::derived("d");
    envelopes(
        &format!("lead-{lead_id}"),
        vec![
            Event::LeadRegistered(LeadRegistered {
                lead_id,
                customer_key: "万科/城市花园二期".into(),
                key_version: 2,
                customer_name: "万科".into(),
                project_name: "城市花园二期".into(),
                industry: Industry::RealEstate,
                purchase_mode: PurchaseMode::Independent,
                channel: Channel::BuildingSweep,
                office: testing::office(),
                location: "上海市浦东新区".into(),
                contact: Contact {
                    name: "李经理".into(),
                    phone: "13800000000".into(),
                },
                need: "新建 1,200 户，需要数字楼宇对讲".into(),
                registered_by: wang,
                registered_at: at(3, 2, 9),
            }),
            Event::LeadOwnerAssigned(LeadOwnerAssigned {
                lead_id,
                owner: wang,
                previous: None,
                basis: AssignmentBasis::FirstToRegister,
            }),
            Event::KeyPersonRecorded(KeyPersonRecorded {
                lead_id,
                key_person_id: kp,
                name: "张工".into(),
                title: "弱电工程师".into(),
                role: KeyPersonRole::Gatekeeper,
                phone: "13900000000".into(),
                personal_notes: "喜欢钓鱼, \"老乡\"\n<b>重要</b>".into(),
            }),
            Event::InsiderDeveloped(InsiderDeveloped {
                lead_id,
                key_person_id: kp,
                note: String::new(),
            }),
            Event::VisitLogged(VisitLogged {
                lead_id,
                visit_id: VisitId::derived("v1"),
                engineer: wang,
                kind: ContactKind::Visit,
                visited_at: at(3, 3, 10),
                purposes: vec![VisitPurpose::CollectNeeds, VisitPurpose::BuildRelationship],
                summary: "介绍产品".into(),
                information_gained: "预算 300 万".into(),
                customer_feedback: "满意".into(),
                next_step: "下周演示".into(),
                met: vec![kp],
                visit_number: 1,
            }),
            Event::LeadDetailsUpdated(LeadDetailsUpdated {
                lead_id,
                location: None,
                contact: None,
                need: None,
                purchase_mode: None,
                industry: None,
                purchase_scale: Some("1,200 户，可视对讲室内机".into()),
            }),
            Event::ProspectDeclared(ProspectDeclared {
                lead_id,
                declaration_id,
                declared_by: wang,
                amount_cny: 2_400_000,
                tier: Tier::Important,
                flags: QualitativeFlags {
                    continuing_purchases: true,
                    ..QualitativeFlags::default()
                },
                company_level: Level::B,
                personal_level: Level::B,
                quoting_strategy: "标准价九五折".into(),
                criteria: vec![],
            }),
            Event::DeclarationReviewed(DeclarationReviewed {
                lead_id,
                declaration_id,
                reviewed_by: StaffId::derived("om"),
                approved: true,
                note: "同意".into(),
            }),
        ],
    )
}

#[test]
fn a_lead_s_forms_show_its_record() {
    let env = lead();
    let names = names();
    let f1 = build(FormKind::CustomerRecord, &env, &names, TZ).expect("form 1");
    let value = |f: &funnel_forms::Form, en: &str| {
        f.fields
            .iter()
            .find(|x| x.label_en == en)
            .map(|x| x.value.clone())
            .unwrap_or_else(|| panic!("no field {en}"))
    };
    assert_eq!(f1.subject, "万科 · 城市花园二期");
    assert_eq!(value(&f1, "Industry (project type)"), "房地产行业");
    assert_eq!(
        value(&f1, "Purchase scale and product requirements"),
        "1,200 户，可视对讲室内机"
    );
    assert_eq!(value(&f1, "Engineer in charge"), "员工0");
    assert_eq!(value(&f1, "Office"), "上海办事处");
    assert_eq!(value(&f1, "Registered at"), "2026-03-02 09:00");
    let f2 = build(FormKind::FollowUps, &env, &names, TZ).expect("form 2");
    assert_eq!(f2.rows.len(), 1);
    assert_eq!(f2.rows[0][1], "2026-03-03 10:00", "office time");
    assert_eq!(f2.rows[0][5], "张工");
    let f5 = build(FormKind::KeyPersons, &env, &names, TZ).expect("form 5");
    assert_eq!(f5.rows[0][4], "是", "an insider");
    let f6 = build(FormKind::ProspectDeclaration, &env, &names, TZ).expect("form 6");
    assert_eq!(value(&f6, "Expected purchase"), "2,400,000 元");
    assert_eq!(value(&f6, "Tier"), "重要客户");
    assert!(value(&f6, "Office manager's review").starts_with("员工4，同意"));
    assert_eq!(value(&f6, "Filed with the sales department"), "");
    assert!(f6.source.ends_with(" v8"), "{}", f6.source);
    // The review line is filled from the record, the filing line is left to sign, and the
    // printed form says when it was printed.
    assert_eq!(
        f6.sign_off.reviewed.as_deref(),
        Some("员工4，2026-03-02 16:00"),
        "{:?}",
        f6.sign_off
    );
    assert_eq!(f6.sign_off.filed, None);
    assert_eq!(f1.sign_off, f6.sign_off, "the lead's latest declaration");
    let mut printed = f6.clone();
    printed.printed = Some(date(3, 20));
    let html = to_html(&printed);
    assert!(html.contains("打印日期 Printed: 2026-03-20"), "{html}");
    assert!(
        html.contains("审核 Reviewed: 员工4，2026-03-02 16:00"),
        "{html}"
    );
    assert!(html.contains("存档 Filed: ____________"), "{html}");
    let rows = csv_rows(&to_csv(&printed));
    assert!(
        rows.iter()
            .any(|r| r == &["打印日期 Printed", "2026-03-20"]),
        "{rows:?}"
    );

    // What a user typed is escaped in HTML and quoted in CSV.
    let html = to_html(&f5);
    assert!(html.contains("&lt;b&gt;重要&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<b>"));
    let rows = csv_rows(&to_csv(&f5));
    assert!(
        rows.iter()
            .any(|r| r.get(5).is_some_and(|c| c.contains("\"老乡\"\n<b>")))
    );
    insta::assert_snapshot!("form2_csv", to_csv(&f2));
    insta::assert_snapshot!("form6_html", to_html(&f6));
}

#[test]
fn plans_and_summaries_have_their_forms() {
    let names = names();
    let wang = StaffId::derived("e1");
    let period = Period::Week { monday: date(3, 9) };
    let plan = envelopes(
        "plan-p",
        vec![
            Event::VisitPlanSubmitted(VisitPlanSubmitted {
                plan_id: PlanId::derived("p"),
                engineer: wang,
                office: testing::office(),
                period,
                visits: vec![
                    PlannedVisit {
                        date: date(3, 9),
                        lead_id: Some(LeadId::derived("x")),
                        customer: "万科".into(),
                        purpose: "演示".into(),
                    },
                    PlannedVisit {
                        date: date(3, 10),
                        lead_id: None,
                        customer: "张江片区".into(),
                        purpose: "扫楼".into(),
                    },
                ],
                submitted_at: at(3, 6, 16),
                due_at: at(3, 6, 17) + Duration::minutes(30),
                on_time: true,
                revision: 1,
            }),
            Event::VisitPlanFiled(VisitPlanFiled {
                plan_id: PlanId::derived("p"),
                filed_by: StaffId::derived("as"),
            }),
        ],
    );
    let f4 = build(FormKind::VisitPlan, &plan, &names, TZ).expect("form 4");
    assert_eq!(f4.rows.len(), 2);
    assert_eq!(f4.rows[1][3], "空白区域/重点目标");
    assert_eq!(f4.subject, "员工0 2026-W11");
    insta::assert_snapshot!("form4_csv", to_csv(&f4));
    let overdue = envelopes(
        "plan-q",
        vec![Event::VisitPlanOverdue(VisitPlanOverdue {
            plan_id: PlanId::derived("q"),
            engineer: wang,
            office: testing::office(),
            period,
            due_at: at(3, 6, 17),
        })],
    );
    let f4 = build(FormKind::VisitPlan, &overdue, &names, TZ).expect("form 4 of a missing plan");
    assert!(f4.rows.is_empty());
    assert!(f4.fields.iter().any(|f| f.value == "逾期未交"));

    let summary = envelopes(
        "summary-s",
        vec![
            Event::SummaryCompiled(SummaryCompiled {
                summary_id: SummaryId::derived("s"),
                office: testing::office(),
                period: Period::Month {
                    year: 2026,
                    month: 3,
                },
                compiled_by: StaffId::derived("as"),
                lines: vec![SummaryLine {
                    lead_id: LeadId::derived("x"),
                    engineer: wang,
                    customer: "万科".into(),
                }],
            }),
            Event::SummaryReviewed(SummaryReviewed {
                summary_id: SummaryId::derived("s"),
                reviewed_by: StaffId::derived("om"),
                approved: false,
                note: "补充".into(),
            }),
        ],
    );
    let f3 = build(FormKind::OfficeSummary, &summary, &names, TZ).expect("form 3");
    assert_eq!(f3.subject, "上海办事处 2026-03");
    assert_eq!(f3.rows[0][1], "万科");
    assert!(f3.fields.iter().any(|f| f.value.contains("退回")));
    // A plan's stream has no summary, and nothing has nothing.
    assert!(matches!(
        build(FormKind::OfficeSummary, &plan, &names, TZ),
        Err(FormError::NotFound(_))
    ));
    assert!(matches!(
        build(FormKind::CustomerRecord, &[], &names, TZ),
        Err(FormError::NotFound(_))
    ));
}

#[test]
fn csv_cells_never_start_a_formula() {
    let form = funnel_forms::Form {
        kind: FormKind::CustomerRecord,
        subject: "=HYPERLINK(\"http://x\",\"y\")".into(),
        fields: vec![funnel_forms::Field {
            label_zh: "客户名称",
            label_en: "Customer",
            value: "@SUM(1+1)*cmd|' /C calc'!A0".into(),
        }],
        columns: vec![funnel_forms::Column {
            label_zh: "备注",
            label_en: "Note",
        }],
        rows: vec![
            vec!["+1+2".into()],
            vec!["-2+3".into()],
            vec!["\t=1".into()],
            vec!["\r=1".into()],
            vec!["-12.5".into()],
            vec!["万科".into()],
        ],
        source: "lead-x@1".into(),
        sign_off: funnel_forms::SignOff::default(),
        printed: None,
    };
    let rows = csv_rows(&to_csv(&form));
    assert_eq!(
        rows[0][1], "'=HYPERLINK(\"http://x\",\"y\")",
        "readable, quoted"
    );
    assert_eq!(rows[1][1], "'@SUM(1+1)*cmd|' /C calc'!A0");
    let cells: Vec<&str> = rows.iter().flatten().map(String::as_str).collect();
    for expected in ["'+1+2", "'-2+3", "'\t=1", "'\r=1", "-12.5", "万科"] {
        assert!(cells.contains(&expected), "{expected:?} in {cells:?}");
    }
    for cell in cells {
        assert!(!starts_a_formula(cell), "{cell:?}");
    }
}

/// The parts of an `.xlsx` file (a zip of XML files) by name.
fn xlsx_parts(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("an xlsx is a zip");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).expect("part");
            let mut text = String::new();
            f.read_to_string(&mut text).expect("xml");
            (f.name().expect("a part name").to_string(), text)
        })
        .collect()
}

#[test]
fn a_workbook_has_a_sheet_per_form_and_no_formula_in_any_cell() {
    let names = names();
    let mut env = lead();
    // A customer whose name would run as a formula if the cell were one.
    if let Event::LeadRegistered(r) = &mut env[0].payload {
        r.customer_name = "=HYPERLINK(\"http://evil\",\"点我\")".into();
    }
    let forms: Vec<funnel_forms::Form> = [
        FormKind::CustomerRecord,
        FormKind::FollowUps,
        FormKind::KeyPersons,
        FormKind::ProspectDeclaration,
    ]
    .into_iter()
    .map(|k| build(k, &env, &names, TZ).expect("form"))
    .collect();
    let parts = xlsx_parts(&funnel_forms::to_xlsx(&forms).expect("workbook"));
    let book = &parts["xl/workbook.xml"];
    for kind in FormKind::ALL {
        let name = funnel_forms::sheet_name(kind);
        assert!(book.contains(&format!("name=\"{name}\"")), "{name}: {book}");
    }
    assert!(
        book.contains("表3 办事处周、月新增客户信息汇总表"),
        "no `/` in a sheet name"
    );
    let sheets: Vec<&String> = parts
        .iter()
        .filter(|(n, _)| n.starts_with("xl/worksheets/sheet"))
        .map(|(_, x)| x)
        .collect();
    assert_eq!(sheets.len(), 6);
    for xml in &sheets {
        assert!(
            !xml.contains("<f>") && !xml.contains("<f "),
            "a formula cell: {xml}"
        );
    }
    // The name is there, as text, with the Chinese headers.
    let strings = &parts["xl/sharedStrings.xml"];
    assert!(
        strings.contains("<t>=HYPERLINK(\"http://evil\",\"点我\")</t>"),
        "{strings}"
    );
    for header in ["客户名称", "对象", "审核", "存档"] {
        assert!(strings.contains(header), "{header}: {strings}");
    }
}
