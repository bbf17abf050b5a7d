//! The vocabulary of the sales manual: industries, purchase modes, channels, stages, key-person
//! roles, relationship levels and prospect tiers (process §2–§8). Each value has a stable wire name
//! and the Chinese label users read.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Generates `ALL`, `as_str` (wire name) and `label_zh` for a field-less enum.
macro_rules! labelled_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal, $zh:literal;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)* }
            }

            pub fn label_zh(self) -> &'static str {
                match self { $($name::$variant => $zh,)* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown {} `{s}` (expected one of: {})", stringify!($name), names.join(", "))
                })
            }
        }
    };
}
pub(crate) use labelled_enum;

labelled_enum!(
    /// Customer industry (§2.1.1).
    Industry {
        RealEstate = "real_estate", "房地产行业";
        Hotel = "hotel", "酒店";
        OfficeBuilding = "office_building", "写字楼";
        Bank = "bank", "银行";
        Prison = "prison", "监狱";
        Hospital = "hospital", "医院";
        CustomsCheckpoint = "customs_checkpoint", "海关口岸";
        HighwayCommunications = "highway_communications", "高速公路通信";
        Other = "other", "其他行业";
    }
);

labelled_enum!(
    /// How the customer buys (§2): decides who works the lead and which stage criteria apply.
    PurchaseMode {
        /// 单独采购: project-type or regional developer, or a group branch buying on its own.
        Independent = "independent", "单独采购";
        /// 集团采购: cross-region developer buying once from HQ.
        Group = "group", "集团采购";
        /// 战略采购: mature national group with a supplier list.
        Strategic = "strategic", "战略采购";
    }
);

labelled_enum!(
    /// Where a lead came from (§3).
    Channel {
        BuildingSweep = "building_sweep", "扫楼";
        Internet = "internet", "互联网";
        TradePressAndAds = "trade_press_and_ads", "行业媒体及户外广告";
        Relationship = "relationship", "关系渠道";
        TradeShow = "trade_show", "展会";
        IndustryAssociation = "industry_association", "行业协会/设计院";
        ProductLaunch = "product_launch", "产品推介会";
        OutsourcedInformation = "outsourced_information", "信息外包";
        GovernmentOffice = "government_office", "政府部门";
        OtherActive = "other_active", "其他";
        Inquiry = "inquiry", "上门咨询";
        Referral = "referral", "客户介绍";
        TenderInvitation = "tender_invitation", "招标";
    }
);

/// Who decides a new lead's owner (§5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// Found by the engineer: the first to register owns it (§5.1).
    FirstToRegister,
    /// Event and passive leads: the office manager assigns them (§5.3, §5.4).
    ManagerAssigns,
}

impl Channel {
    /// Passive channels are customer-initiated (被动式); all others are active (主动式).
    pub fn is_passive(self) -> bool {
        matches!(
            self,
            Channel::Inquiry | Channel::Referral | Channel::TenderInvitation
        )
    }

    pub fn allocation(self) -> Allocation {
        match self {
            Channel::TradeShow
            | Channel::IndustryAssociation
            | Channel::ProductLaunch
            | Channel::Inquiry
            | Channel::Referral
            | Channel::TenderInvitation => Allocation::ManagerAssigns,
            _ => Allocation::FirstToRegister,
        }
    }
}

labelled_enum!(
    /// Funnel stage of a lead (§4), plus the side exits.
    Stage {
        Ordinary = "ordinary", "普通信息";
        Valid = "valid", "有效信息";
        Prospect = "prospect", "准客户";
        Contract = "contract", "合同签订";
        Suspended = "suspended", "中止";
        Lost = "lost", "丢失";
    }
);

impl Stage {
    /// The funnel stages in order (side exits excluded).
    pub const FUNNEL: [Stage; 4] = [
        Stage::Ordinary,
        Stage::Valid,
        Stage::Prospect,
        Stage::Contract,
    ];

    pub fn is_open(self) -> bool {
        matches!(self, Stage::Ordinary | Stage::Valid | Stage::Prospect)
    }
}

labelled_enum!(
    /// The five key-person roles on the customer's decision chain (§7).
    KeyPersonRole {
        DecisionMaker = "decision_maker", "决策者";
        Influencer = "influencer", "影响者";
        Gatekeeper = "gatekeeper", "把关者";
        User = "user", "使用者";
        Purchaser = "purchaser", "采购者";
    }
);

labelled_enum!(
    /// Relationship level on either axis (§7): C is the lowest, A the highest.
    Level {
        C = "c", "C";
        B = "b", "B";
        A = "a", "A";
    }
);

impl Level {
    /// Whether this level is at least `other` (A ≥ B ≥ C).
    pub fn at_least(self, other: Level) -> bool {
        self >= other
    }
}

labelled_enum!(
    /// Prospect tier (准客户类型, §8), decided by the purchase amount.
    Tier {
        Strategic = "strategic", "战略客户";
        Important = "important", "重要客户";
        Ordinary = "ordinary", "普通客户";
    }
);

impl Tier {
    /// Over 3M CNY is strategic, 1M–3M important, below 1M ordinary (amounts in whole yuan).
    pub fn for_amount(amount_cny: u64) -> Tier {
        if amount_cny > 3_000_000 {
            Tier::Strategic
        } else if amount_cny >= 1_000_000 {
            Tier::Important
        } else {
            Tier::Ordinary
        }
    }
}

labelled_enum!(
    /// Purpose of a visit (§6).
    VisitPurpose {
        PromoteCompanyAndProduct = "promote_company_and_product", "宣传公司及产品";
        CollectNeeds = "collect_needs", "收集需求";
        BuildRelationship = "build_relationship", "建立和维护关系";
        MarketTrends = "market_trends", "了解市场动态";
        CompetitorInformation = "competitor_information", "收集竞争对手信息";
    }
);

labelled_enum!(
    /// How a follow-up happened (Table 2).
    ContactKind {
        Visit = "visit", "拜访";
        Phone = "phone", "电话";
        Meeting = "meeting", "会议";
        Other = "other", "其他";
    }
);

impl ContactKind {
    /// A contact in person (a visit or a meeting), which the insider rule counts as a visit (拜访,
    /// §7); a phone call or another kind of contact is not one.
    pub fn in_person(self) -> bool {
        matches!(self, ContactKind::Visit | ContactKind::Meeting)
    }
}

/// Qualitative judgement on a prospect (§8): scale, nature and influence beside the amount.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualitativeFlags {
    /// Group that steers its subsidiaries or buys centrally.
    #[serde(default)]
    pub group_purchasing: bool,
    /// Industry benchmark with wide influence.
    #[serde(default)]
    pub industry_benchmark: bool,
    /// Strong continuing purchases expected.
    #[serde(default)]
    pub continuing_purchases: bool,
    /// Willing to be a reference site.
    #[serde(default)]
    pub reference_site: bool,
    /// Loyal and refers others.
    #[serde(default)]
    pub refers_others: bool,
}

/// A person and a phone number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    pub phone: String,
}

/// The period a visit plan or office summary covers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Period {
    /// The ISO week starting on this Monday.
    Week { monday: chrono::NaiveDate },
    /// A calendar month.
    Month { year: i32, month: u32 },
}

impl Period {
    /// A stable short name: `2026-W48` or `2026-11`.
    pub fn key(&self) -> String {
        use chrono::Datelike;
        match self {
            Period::Week { monday } => {
                let w = monday.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Period::Month { year, month } => format!("{year}-{month:02}"),
        }
    }
}
