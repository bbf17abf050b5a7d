//! One example of every event type, with fixed ids and times: the golden files, the schema tests
//! and the documentation are built from these.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use funnel_domain::Event;
use funnel_domain::events::*;
use funnel_domain::lead::Criterion;
use funnel_domain::model::*;
use funnel_types::*;

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, 30, 0)
        .single()
        .unwrap_or_default()
}

/// Every event type once, in the order of [`funnel_domain::EVENT_TYPES`].
pub fn examples() -> Vec<Event> {
    let office = OfficeId::derived("example-office");
    let eng = StaffId::derived("example-engineer");
    let eng2 = StaffId::derived("example-engineer-2");
    let mgr = StaffId::derived("example-manager");
    let hq = StaffId::derived("example-sales-department");
    let asst = StaffId::derived("example-assistant");
    let key = "万科/城市花园二期".to_string();
    let lead = LeadId::derived(&key);
    let kp = KeyPersonId::derived("example-key-person");
    let conflict = ConflictId::derived("example-conflict");
    let re = ReassignmentId::derived("example-reassignment");
    let decl = DeclarationId::derived("example-declaration");
    let contract = ContractId::derived("example-contract");
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_string();
    let week = Period::Week {
        monday: NaiveDate::from_ymd_opt(2026, 3, 9).unwrap_or_default(),
    };
    let plan = PlanId::derived("example-plan");
    let summary = SummaryId::derived("example-summary");
    let workflow = WorkflowId::derived("example-workflow");
    let task = TaskId::derived("example-task");
    let timer = TimerId::derived("example-timer");
    let erasure = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"example-erasure");
    vec![
        OfficeOpened {
            office_id: office,
            name: "上海办事处".into(),
            code: "SH".into(),
            timezone: "Asia/Shanghai".into(),
            region: "华东".into(),
        }
        .into(),
        StaffJoined {
            staff_id: eng,
            name: "王工".into(),
            role: Role::SalesEngineer,
            office: Some(office),
        }
        .into(),
        StaffRoleChanged {
            staff_id: eng,
            from: Role::SalesEngineer,
            to: Role::OfficeManager,
        }
        .into(),
        StaffMovedOffice {
            staff_id: eng,
            from: Some(office),
            to: None,
        }
        .into(),
        StaffLeft {
            staff_id: eng,
            reason: "离职".into(),
        }
        .into(),
        LeadRegistered {
            lead_id: lead,
            customer_key: key.clone(),
            key_version: 2,
            customer_name: "万科".into(),
            project_name: "城市花园（二期）".into(),
            industry: Industry::RealEstate,
            purchase_mode: PurchaseMode::Independent,
            channel: Channel::BuildingSweep,
            office,
            location: "上海市浦东新区".into(),
            contact: Contact {
                name: "李经理".into(),
                phone: "13800000000".into(),
            },
            need: "需要楼宇对讲系统".into(),
            registered_by: eng,
            registered_at: at(1),
        }
        .into(),
        LeadOwnerAssigned {
            lead_id: lead,
            owner: eng,
            previous: None,
            basis: AssignmentBasis::FirstToRegister,
        }
        .into(),
        DuplicateRegistrationReceived {
            lead_id: lead,
            registered_by: eng2,
            customer_name: "万科".into(),
            project_name: "城市花园(二期)".into(),
            channel: Channel::Internet,
            registered_at: at(2),
        }
        .into(),
        OwnershipConflictOpened {
            lead_id: lead,
            conflict_id: conflict,
            claimants: vec![eng, eng2],
            opened_at: at(2),
        }
        .into(),
        OwnershipConflictDecided {
            lead_id: lead,
            conflict_id: conflict,
            winner: eng2,
            decided_by: mgr,
            grounds: vec![ConflictGround::ReachedDecisionMaker],
            note: "已接触决策人".into(),
        }
        .into(),
        TouchRefused {
            lead_id: lead,
            attempted_by: eng,
            role: Role::SalesEngineer,
            action: "log_visit".into(),
            owner: Some(eng2),
            code: "lead.not_owner".into(),
        }
        .into(),
        ReassignmentRequested {
            lead_id: lead,
            reassignment_id: re,
            from: eng2,
            to: eng,
            requested_by: mgr,
            evidence: "客户要求".into(),
            requested_at: at(3),
            expires_at: at(3) + chrono::Duration::days(14),
        }
        .into(),
        ReassignmentApproved {
            lead_id: lead,
            reassignment_id: re,
            party: ApprovalParty::SalesDepartment,
            approved_by: hq,
            note: String::new(),
        }
        .into(),
        ReassignmentDenied {
            lead_id: lead,
            reassignment_id: re,
            party: ApprovalParty::OriginalOwner,
            denied_by: eng2,
            reason: "我正在跟进".into(),
        }
        .into(),
        ReassignmentExpired {
            lead_id: lead,
            reassignment_id: re,
        }
        .into(),
        VisitLogged {
            lead_id: lead,
            visit_id: VisitId::derived("example-visit"),
            engineer: eng2,
            kind: ContactKind::Visit,
            visited_at: at(4),
            purposes: vec![VisitPurpose::CollectNeeds, VisitPurpose::BuildRelationship],
            summary: "介绍数字对讲方案".into(),
            information_gained: "项目六月开工".into(),
            customer_feedback: "有兴趣".into(),
            next_step: "下周演示".into(),
            met: vec![kp],
            visit_number: 1,
        }
        .into(),
        KeyPersonRecorded {
            lead_id: lead,
            key_person_id: kp,
            name: "张工".into(),
            title: "弱电工程师".into(),
            role: KeyPersonRole::Gatekeeper,
            phone: "13900000000".into(),
            personal_notes: "喜欢钓鱼".into(),
        }
        .into(),
        InsiderDeveloped {
            lead_id: lead,
            key_person_id: kp,
            note: "愿意提供信息".into(),
        }
        .into(),
        RelationshipAssessed {
            lead_id: lead,
            company: Level::B,
            personal: Level::C,
            key_person_id: Some(kp),
            note: String::new(),
        }
        .into(),
        CriterionMet {
            lead_id: lead,
            criterion: Criterion::ProductDemo,
            evidence: "3月2日演示".into(),
        }
        .into(),
        LeadDetailsUpdated {
            lead_id: lead,
            location: None,
            contact: Some(Contact {
                name: "李总".into(),
                phone: "13700000000".into(),
            }),
            need: None,
            purchase_mode: None,
            industry: None,
            purchase_scale: Some("1200户".into()),
        }
        .into(),
        InsiderEscalationRaised {
            lead_id: lead,
            owner: eng2,
            visits_without_insider: 3,
        }
        .into(),
        StagnationReviewOpened {
            lead_id: lead,
            owner: eng2,
            visits: 5,
        }
        .into(),
        StagnationReviewDecided {
            lead_id: lead,
            decided_by: mgr,
            outcome: StagnationOutcome::ChangeKeyPerson {
                key_person_id: Some(kp),
            },
            note: String::new(),
        }
        .into(),
        ValidInfoDeclared {
            lead_id: lead,
            declaration_id: decl,
            declared_by: eng2,
            criteria: vec![Criterion::DeveloperContact, Criterion::ProductDemo],
            note: String::new(),
        }
        .into(),
        ProspectDeclared {
            lead_id: lead,
            declaration_id: decl,
            declared_by: eng2,
            amount_cny: 1_500_000,
            tier: Tier::Important,
            flags: QualitativeFlags {
                continuing_purchases: true,
                ..Default::default()
            },
            company_level: Level::B,
            personal_level: Level::B,
            quoting_strategy: "分期报价".into(),
            criteria: vec![Criterion::PreliminaryQuote],
        }
        .into(),
        DeclarationReviewed {
            lead_id: lead,
            declaration_id: decl,
            reviewed_by: mgr,
            approved: true,
            note: String::new(),
        }
        .into(),
        DeclarationFiled {
            lead_id: lead,
            declaration_id: decl,
            filed_by: hq,
            key_account_involved: false,
        }
        .into(),
        DeclarationWithdrawn {
            lead_id: lead,
            declaration_id: decl,
            lead_stage: Stage::Lost,
        }
        .into(),
        StageChanged {
            lead_id: lead,
            office,
            from: Stage::Ordinary,
            to: Stage::Valid,
            owner: Some(eng2),
        }
        .into(),
        NegotiationNoted {
            lead_id: lead,
            author: eng2,
            note: "让步方案".into(),
            executives_invited: true,
        }
        .into(),
        ContractSubmitted {
            lead_id: lead,
            contract_id: contract,
            amount_cny: 1_480_000,
            content_hash: hash.clone(),
            reviewers: vec!["sales_department".into(), "finance".into()],
            submitted_by: eng2,
        }
        .into(),
        ContractAmended {
            lead_id: lead,
            contract_id: contract,
            amount_cny: 1_450_000,
            content_hash: hash.clone(),
            amended_by: eng2,
            reason: "付款条件".into(),
        }
        .into(),
        ContractApproved {
            lead_id: lead,
            contract_id: contract,
            seat: "finance".into(),
            approved_by: hq,
            content_hash: hash.clone(),
        }
        .into(),
        ContractRejected {
            lead_id: lead,
            contract_id: contract,
            seat: "sales_department".into(),
            rejected_by: hq,
            content_hash: hash.clone(),
            reasons: "折扣过高".into(),
        }
        .into(),
        ContractSigned {
            lead_id: lead,
            contract_id: contract,
            amount_cny: 1_450_000,
            content_hash: hash,
            signed_by: eng2,
        }
        .into(),
        OrderProcessed {
            lead_id: lead,
            contract_id: contract,
            order_ref: "SO-2026-0001".into(),
            processed_by: hq,
        }
        .into(),
        AfterSalesCareLogged {
            lead_id: lead,
            by: eng2,
            note: "回访".into(),
        }
        .into(),
        LeadSuspended {
            lead_id: lead,
            by: mgr,
            from: Stage::Valid,
            reason: "项目暂停".into(),
        }
        .into(),
        LeadLost {
            lead_id: lead,
            by: eng2,
            from: Stage::Prospect,
            reason: "价格".into(),
            competitor: "某品牌".into(),
        }
        .into(),
        LeadReactivated {
            lead_id: lead,
            by: eng2,
            to: Stage::Valid,
            reason: "项目重启".into(),
        }
        .into(),
        VisitPlanSubmitted {
            plan_id: plan,
            engineer: eng2,
            office,
            period: week,
            visits: vec![PlannedVisit {
                date: NaiveDate::from_ymd_opt(2026, 3, 10).unwrap_or_default(),
                lead_id: Some(lead),
                customer: "万科".into(),
                purpose: "产品演示".into(),
            }],
            submitted_at: at(8),
            due_at: Utc
                .with_ymd_and_hms(2026, 3, 6, 9, 30, 0)
                .single()
                .unwrap_or_default(),
            on_time: false,
            revision: 1,
        }
        .into(),
        VisitPlanOverdue {
            plan_id: plan,
            engineer: eng,
            office,
            period: Period::Month {
                year: 2026,
                month: 4,
            },
            due_at: Utc
                .with_ymd_and_hms(2026, 3, 28, 15, 59, 59)
                .single()
                .unwrap_or_default(),
        }
        .into(),
        VisitPlanFiled {
            plan_id: plan,
            filed_by: asst,
        }
        .into(),
        SummaryCompiled {
            summary_id: summary,
            office,
            period: week,
            compiled_by: asst,
            lines: vec![SummaryLine {
                lead_id: lead,
                engineer: eng2,
                customer: "万科 城市花园（二期）".into(),
            }],
        }
        .into(),
        SummaryVerified {
            summary_id: summary,
            verified_by: asst,
            note: String::new(),
        }
        .into(),
        SummaryReviewed {
            summary_id: summary,
            reviewed_by: mgr,
            approved: true,
            note: String::new(),
        }
        .into(),
        SummaryFiled {
            summary_id: summary,
            filed_by: asst,
        }
        .into(),
        WorkflowStarted {
            workflow_id: workflow,
            kind: WorkflowKind::OwnershipConflict,
            lead_id: Some(lead),
            office: Some(office),
            subject: format!("conflict {conflict}"),
        }
        .into(),
        TaskOpened {
            workflow_id: workflow,
            task_id: task,
            name: "decide_conflict".into(),
            assignee: Assignee {
                role: Role::OfficeManager,
                office: Some(office),
                staff: None,
            },
            lead_id: Some(lead),
            title_en: "Decide who owns the lead".into(),
            title_zh: "裁定客户归属".into(),
            due_at: Some(at(9)),
        }
        .into(),
        TaskClosed {
            workflow_id: workflow,
            task_id: task,
            outcome: "decided".into(),
        }
        .into(),
        TimerScheduled {
            workflow_id: workflow,
            timer_id: timer,
            purpose: TimerPurpose::Reminder { task_id: task },
            due_at: at(9),
        }
        .into(),
        TimerCancelled {
            workflow_id: workflow,
            timer_id: timer,
        }
        .into(),
        TimerFired {
            workflow_id: workflow,
            timer_id: timer,
            purpose: TimerPurpose::PlanDeadline { period: week },
            due_at: at(9),
            fired_at: at(10),
            late: true,
        }
        .into(),
        ReminderRaised {
            workflow_id: workflow,
            to: Assignee {
                role: Role::SalesEngineer,
                office: Some(office),
                staff: Some(eng),
            },
            task_id: None,
            message_en: "Your visit plan is due tomorrow".into(),
            message_zh: "您的拜访计划明天截止".into(),
        }
        .into(),
        TaskEscalated {
            workflow_id: workflow,
            task_id: task,
            to: Assignee {
                role: Role::SalesDepartment,
                office: None,
                staff: None,
            },
        }
        .into(),
        WorkflowCommandSent {
            workflow_id: workflow,
            command_id: CommandId::derived("example-command"),
            command: "expire_reassignment".into(),
            outcome: "accepted".into(),
        }
        .into(),
        WorkflowNoted {
            workflow_id: workflow,
            key: "plan:2026-W11".into(),
            value: "on_time".into(),
        }
        .into(),
        ReactionParked {
            workflow_id: workflow,
            cause: EventId::derived("example-event"),
            position: Some(Position(42)),
            reason: "sqlite store unavailable: database is locked".into(),
        }
        .into(),
        ReactionRetried {
            workflow_id: workflow,
            cause: EventId::derived("example-event"),
        }
        .into(),
        WorkflowCompleted {
            workflow_id: workflow,
            outcome: "decided".into(),
        }
        .into(),
        StaffTokenIssued {
            staff_id: eng,
            token_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"example-token"),
            token_hash: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".into(),
        }
        .into(),
        StaffTokenRevoked {
            staff_id: eng,
            token_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"example-token"),
        }
        .into(),
        StaffSessionStarted {
            staff_id: eng,
            session_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"example-session"),
            secret_hash: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9".into(),
            method: SignInMethod::Password,
            expires_at: Utc.with_ymd_and_hms(2026, 9, 2, 2, 0, 0).unwrap(),
            idle_minutes: 60,
        }
        .into(),
        StaffSessionRenewed {
            staff_id: eng,
            session_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"example-session"),
        }
        .into(),
        StaffSessionsEnded {
            staff_id: eng,
            sessions: vec![uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                b"example-session",
            )],
            everywhere: false,
        }
        .into(),
        StaffInvited {
            staff_id: eng,
            invitation_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"example-invitation"),
            secret_hash: "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4".into(),
            expires_at: Utc.with_ymd_and_hms(2026, 9, 4, 2, 0, 0).unwrap(),
        }
        .into(),
        StaffInvitationAccepted {
            staff_id: eng,
            invitation_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"example-invitation"),
        }
        .into(),
        StaffSignInLocked {
            staff_id: eng,
            failures: 5,
            until: Utc.with_ymd_and_hms(2026, 9, 1, 2, 15, 0).unwrap(),
        }
        .into(),
        StaffSignInUnlocked { staff_id: eng }.into(),
        StaffPhoneChanged {
            staff_id: eng,
            phone: Some("13800138000".into()),
        }
        .into(),
        StaffOidcLinked {
            staff_id: eng,
            invitation_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"example-invitation"),
            issuer: "https://sso.example.com".into(),
            subject: "248289761001".into(),
        }
        .into(),
        CalendarPublished {
            year: 2026,
            holidays: [(10, 1), (10, 2), (10, 5), (10, 6), (10, 7)]
                .into_iter()
                .filter_map(|(m, d)| NaiveDate::from_ymd_opt(2026, m, d))
                .collect(),
            workdays: [(9, 27), (10, 10)]
                .into_iter()
                .filter_map(|(m, d)| NaiveDate::from_ymd_opt(2026, m, d))
                .collect(),
            note: "国庆节".into(),
        }
        .into(),
        LeadKeyReserved {
            lead_id: LeadId::derived("v\u{430}nke/"),
            customer_key: "vanke/".into(),
            key_version: 2,
            registered_key: "v\u{430}nke/".into(),
            registered_key_version: 1,
            office,
        }
        .into(),
        ErasureRequested {
            erasure_id: erasure,
            subject: format!("key_person:{kp}"),
            lead_id: lead,
            reason: "PIPL request 2026-17".into(),
            requested_by: hq,
        }
        .into(),
        ErasureApproved {
            erasure_id: erasure,
        }
        .into(),
        ErasureRejected {
            erasure_id: erasure,
            reason: "the person is a party to an open contract".into(),
        }
        .into(),
        SubjectErased {
            erasure_id: erasure,
            subject: format!("key_person:{kp}"),
            lead_id: lead,
            reason: "PIPL request 2026-17".into(),
        }
        .into(),
    ]
}
