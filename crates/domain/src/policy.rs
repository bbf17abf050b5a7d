//! Settings of the process that the manual leaves to the organisation: windows, thresholds and
//! contract reviewers. Deciders read them; they never read the clock or configuration files.

use funnel_types::Role;

/// One seat on the contract review board: a name (e.g. `finance`) and the role that may fill it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewerSeat {
    pub seat: String,
    pub role: Role,
}

/// The organisation's process settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Two registrations of the same customer key closer than this are a conflict for the office
    /// manager (§5.2, 相近时间); later ones are refused (first to register owns it).
    pub duplicate_window: chrono::Duration,
    /// Visits without an insider before the office manager is asked for help (§7). Only contacts in
    /// person count (a visit or a meeting, not a phone call): the manual's 拜访.
    pub insider_visit_limit: u32,
    /// Visits with both relationship levels still C before a stagnation review (§8).
    pub stagnation_visits: u32,
    /// Seats that must all approve a contract before it can be signed (§9).
    pub contract_reviewers: Vec<ReviewerSeat>,
    /// How long a reassignment request waits for both approvals before it expires.
    pub reassignment_expiry: chrono::Duration,
    /// A year's calendar that takes more weekdays off than this (holidays less make-up working
    /// days) is published by an executive only: a wrong calendar moves every deadline.
    pub calendar_days_off_without_executive: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            duplicate_window: chrono::Duration::days(3),
            insider_visit_limit: 3,
            stagnation_visits: 5,
            contract_reviewers: vec![
                ReviewerSeat {
                    seat: "sales_department".into(),
                    role: Role::SalesDepartment,
                },
                ReviewerSeat {
                    seat: "office_manager".into(),
                    role: Role::OfficeManager,
                },
                ReviewerSeat {
                    seat: "finance".into(),
                    role: Role::Executive,
                },
            ],
            reassignment_expiry: chrono::Duration::days(14),
            calendar_days_off_without_executive: 30,
        }
    }
}

/// A contract review seat (`Policy::contract_reviewers`) as users read it in Chinese: a seat named
/// by a role code takes the role's label (`sales_department` → 销售部), `finance` is 财务 and
/// `legal` 法务; any other seat keeps its name.
pub fn seat_label_zh(seat: &str) -> String {
    match seat.parse::<Role>() {
        Ok(role) => role.label_zh().to_string(),
        Err(_) => match seat {
            "finance" => "财务".into(),
            "legal" => "法务".into(),
            other => other.to_string(),
        },
    }
}

/// The same seat in English: its code with spaces (`sales department`, `finance`).
pub fn seat_label_en(seat: &str) -> String {
    seat.replace('_', " ")
}

#[cfg(test)]
mod seat_tests {
    use super::*;

    #[test]
    fn seats_read_as_their_roles_or_their_functions() {
        assert_eq!(seat_label_zh("sales_department"), "销售部");
        assert_eq!(seat_label_zh("office_manager"), "办事处经理");
        assert_eq!(seat_label_zh("finance"), "财务");
        assert_eq!(seat_label_zh("legal"), "法务");
        assert_eq!(seat_label_zh("board"), "board");
        assert_eq!(seat_label_en("sales_department"), "sales department");
        for seat in Policy::default().contract_reviewers {
            assert_ne!(seat_label_zh(&seat.seat), seat.seat, "{}", seat.seat);
        }
    }
}
