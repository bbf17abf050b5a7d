//! The demo's organisation: three offices, their staff and headquarters.

use funnel_types::{OfficeId, Role, StaffId};

#[derive(Clone, Debug)]
pub struct Office {
    pub id: OfficeId,
    pub name: &'static str,
    pub code: &'static str,
    pub region: &'static str,
    /// The office's IANA time zone: its working days and hours are on this clock.
    pub timezone: &'static str,
    pub city: usize,
    pub manager: StaffId,
    pub assistant: StaffId,
    pub engineers: Vec<StaffId>,
}

impl Office {
    /// The zone of [`Office::timezone`].
    pub fn tz(&self) -> chrono_tz::Tz {
        funnel_domain::time::zone(Some(self.timezone))
    }
}

#[derive(Clone, Debug)]
pub struct Person {
    pub id: StaffId,
    pub name: String,
    pub role: Role,
    pub office: Option<OfficeId>,
}

/// Everyone in the demo.
#[derive(Clone, Debug)]
pub struct World {
    pub offices: Vec<Office>,
    pub people: Vec<Person>,
    pub sales_department: Vec<StaffId>,
    pub key_account: StaffId,
    pub executive: StaffId,
    pub auditor: StaffId,
}

impl World {
    pub fn staff_count(&self) -> usize {
        self.people.len()
    }

    pub fn new() -> Self {
        let mut people = Vec::new();
        let mut person = |name: String, role: Role, office: Option<OfficeId>| {
            let id = StaffId::derived(&format!("demo:{name}"));
            people.push(Person {
                id,
                name,
                role,
                office,
            });
            id
        };
        let specs = [
            (
                "上海办事处",
                "SH",
                "华东",
                0,
                ["王", "李", "张", "刘"],
                "陈",
                "周",
            ),
            (
                "北京办事处",
                "BJ",
                "华北",
                1,
                ["杨", "黄", "赵", "吴"],
                "徐",
                "孙",
            ),
            (
                "广州办事处",
                "GZ",
                "华南",
                2,
                ["马", "朱", "胡", "郭"],
                "何",
                "林",
            ),
        ];
        let mut offices = Vec::new();
        for (name, code, region, city, engineers, manager, assistant) in specs {
            let id = OfficeId::derived(&format!("demo:{code}"));
            let manager = person(
                format!("{manager}经理（{code}）"),
                Role::OfficeManager,
                Some(id),
            );
            let assistant = person(
                format!("{assistant}助理（{code}）"),
                Role::OfficeAssistant,
                Some(id),
            );
            let engineers = engineers
                .iter()
                .map(|s| person(format!("{s}工（{code}）"), Role::SalesEngineer, Some(id)))
                .collect();
            offices.push(Office {
                id,
                name,
                code,
                region,
                timezone: "Asia/Shanghai",
                city,
                manager,
                assistant,
                engineers,
            });
        }
        let sales_department = vec![
            person("销售部·高".into(), Role::SalesDepartment, None),
            person("销售部·罗".into(), Role::SalesDepartment, None),
        ];
        let key_account = person("大客户部·郑".into(), Role::KeyAccountDepartment, None);
        let executive = person("总经理·梁".into(), Role::Executive, None);
        let auditor = person("运营审计·谢".into(), Role::Auditor, None);
        Self {
            offices,
            people,
            sales_department,
            key_account,
            executive,
            auditor,
        }
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}
