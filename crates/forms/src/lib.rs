//! The six standard forms of the sales manual (Part 3), built from the record: users print and
//! file them, so each can be had as a spreadsheet (CSV, UTF-8 with a byte-order mark so spreadsheet
//! programs read the Chinese) and as a printable HTML page. No CSV cell can start a formula
//! ([`csv_cell`]).
//!
//! | form | Chinese | built from |
//! |---|---|---|
//! | 1 | 客户信息记录表 customer info record | a lead's stream |
//! | 2 | 客户跟进记录表 follow-up record | a lead's stream (one row per contact) |
//! | 3 | 办事处周/月新增客户信息汇总表 office summary of new leads | a summary's stream |
//! | 4 | 月/周度市场拜访计划表 visit plan | a plan's stream |
//! | 5 | 客户关键人个人信息表 key persons | a lead's stream (one row per key person) |
//! | 6 | 准客户申报表 prospect declaration | a lead's stream (its latest prospect declaration) |
//!
//! Building is pure: the events of one aggregate in, a [`Form`] out; names of people and offices
//! come from a [`NameBook`], times are shown in the office's time zone.

mod build;
mod render;
mod workbook;

pub use build::build;
pub use render::{csv_cell, to_csv, to_html};
pub use workbook::{sheet_name, to_xlsx};

use funnel_types::{OfficeId, StaffId};
use std::collections::BTreeMap;

/// Which form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FormKind {
    CustomerRecord,
    FollowUps,
    OfficeSummary,
    VisitPlan,
    KeyPersons,
    ProspectDeclaration,
}

impl FormKind {
    pub const ALL: [FormKind; 6] = [
        FormKind::CustomerRecord,
        FormKind::FollowUps,
        FormKind::OfficeSummary,
        FormKind::VisitPlan,
        FormKind::KeyPersons,
        FormKind::ProspectDeclaration,
    ];

    /// The table number in the manual.
    pub fn number(self) -> u8 {
        match self {
            FormKind::CustomerRecord => 1,
            FormKind::FollowUps => 2,
            FormKind::OfficeSummary => 3,
            FormKind::VisitPlan => 4,
            FormKind::KeyPersons => 5,
            FormKind::ProspectDeclaration => 6,
        }
    }

    /// The form with this number.
    pub fn from_number(n: u8) -> Option<FormKind> {
        FormKind::ALL.into_iter().find(|k| k.number() == n)
    }

    pub fn title_zh(self) -> &'static str {
        match self {
            FormKind::CustomerRecord => "客户信息记录表",
            FormKind::FollowUps => "客户跟进记录表",
            FormKind::OfficeSummary => "办事处周/月新增客户信息汇总表",
            FormKind::VisitPlan => "月/周度市场拜访计划表",
            FormKind::KeyPersons => "客户关键人个人信息表",
            FormKind::ProspectDeclaration => "准客户申报表",
        }
    }

    pub fn title_en(self) -> &'static str {
        match self {
            FormKind::CustomerRecord => "Customer info record",
            FormKind::FollowUps => "Follow-up record",
            FormKind::OfficeSummary => "Office summary of new leads",
            FormKind::VisitPlan => "Visit plan",
            FormKind::KeyPersons => "Key persons",
            FormKind::ProspectDeclaration => "Prospect declaration",
        }
    }

    /// The category of the stream the form is built from: `lead`, `summary` or `plan`.
    pub fn category(self) -> &'static str {
        match self {
            FormKind::OfficeSummary => "summary",
            FormKind::VisitPlan => "plan",
            _ => "lead",
        }
    }
}

/// Names to print instead of ids.
#[derive(Clone, Debug, Default)]
pub struct NameBook {
    pub staff: BTreeMap<StaffId, String>,
    pub offices: BTreeMap<OfficeId, String>,
}

impl NameBook {
    pub fn staff(&self, id: StaffId) -> String {
        self.staff
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    pub fn office(&self, id: OfficeId) -> String {
        self.offices
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }
}

/// A labelled value in the head of a form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub label_zh: &'static str,
    pub label_en: &'static str,
    pub value: String,
}

/// A column of a form's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub label_zh: &'static str,
    pub label_en: &'static str,
}

/// A form, ready to render: its head (labelled values) and, for forms with rows, a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    pub kind: FormKind,
    /// What the form is about, for file names and titles: the customer and project, the office
    /// and period, or the engineer and period.
    pub subject: String,
    pub fields: Vec<Field>,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
    /// The stream and version the form was built from.
    pub source: String,
    /// The review and filing lines at the foot of the printed form, filled from the record.
    pub sign_off: SignOff,
    /// The day it was printed (on the office's clock), set by whoever prints it: building is pure.
    pub printed: Option<chrono::NaiveDate>,
}

/// Who reviewed and who filed what a form shows, and when (`None`: not yet, a blank line to sign).
///
/// Lead forms (1, 2, 5): the approval and filing of the lead's latest declaration; form 6: of its
/// prospect declaration; form 3: of the latest compilation of the summary; form 4: its filing
/// (plans are filed, not reviewed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignOff {
    pub reviewed: Option<String>,
    pub filed: Option<String>,
}

/// Why a form cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The stream holds nothing the form is made from (no such lead, plan or summary).
    #[error("{0}")]
    NotFound(String),
    /// The record exists but the form's subject does not yet (no prospect declaration).
    #[error("{0}")]
    NotYet(String),
}
