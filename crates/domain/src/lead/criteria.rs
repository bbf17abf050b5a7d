//! Stage criteria per purchase mode (process §4) as named checklist items. A stage is reached only
//! when every item of its checklist is met; each item is met by an event carrying its evidence.

use crate::model::{PurchaseMode, Stage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

crate::model::labelled_enum!(
    /// One checklist item of the stage criteria.
    Criterion {
        /// Project name and location known (ordinary, independent).
        ProjectNameAndLocation = "project_name_and_location", "项目名称及地点";
        /// Company name and location known (ordinary, group and strategic).
        CompanyNameAndLocation = "company_name_and_location", "公司名称及地点";
        /// Contact person and phone known.
        ContactAndPhone = "contact_and_phone", "联系人及电话";
        /// Explicit need for building intercom.
        ExplicitNeed = "explicit_need", "明确的楼宇对讲需求";
        /// Developer name, contact and phone known (valid, independent).
        DeveloperContact = "developer_contact", "开发商名称、联系人及电话";
        /// Company profile known: scale, nature, influence (valid, group and strategic).
        CompanyProfile = "company_profile", "公司概况（规模、性质、影响力）";
        /// Project details: schedule, purchase scale, sale price.
        ProjectDetails = "project_details", "项目详情（进度、采购规模、售价）";
        /// Product demonstration done.
        ProductDemo = "product_demo", "产品演示";
        /// Explicit need for digital intercom.
        DigitalIntercomNeed = "digital_intercom_need", "明确的数字对讲需求";
        /// An insider (内线) developed; met by recording an insider.
        InsiderDeveloped = "insider_developed", "发展内线";
        /// Decision chain and key persons' contacts known.
        DecisionChainKnown = "decision_chain_known", "决策链及关键人联系方式";
        /// Competitors and their products known.
        CompetitorsKnown = "competitors_known", "竞争对手及其产品";
        /// First tender shortlisting (strategic).
        FirstTenderShortlist = "first_tender_shortlist", "初次招投标入围";
        /// Customer invited to HQ or a reference site.
        HqOrReferenceVisit = "hq_or_reference_visit", "邀请参观总部或样板工程";
        /// Design proposal submitted or tender entered.
        DesignProposalOrTender = "design_proposal_or_tender", "提交设计方案或参与投标";
        /// Preliminary quote given.
        PreliminaryQuote = "preliminary_quote", "初步报价";
        /// Several exchanges along the decision chain.
        DecisionChainExchanges = "decision_chain_exchanges", "与决策链多次交流";
        /// Decision-chain people developed into insider key persons.
        InsiderKeyPersons = "insider_key_persons", "决策链人员发展为内线关键人";
        /// Second tender shortlisting (strategic).
        SecondTenderShortlist = "second_tender_shortlist", "二次入围";
    }
);

impl Criterion {
    /// Items met by other events rather than by a criterion record.
    pub fn is_derived(self) -> bool {
        matches!(
            self,
            Criterion::ProjectNameAndLocation
                | Criterion::CompanyNameAndLocation
                | Criterion::ContactAndPhone
                | Criterion::ExplicitNeed
                | Criterion::InsiderDeveloped
        )
    }
}

/// The checklist that must be met for a lead of `mode` to be at `stage`. Only the funnel stages
/// ordinary, valid and prospect have checklists; a contract is reached by signing.
pub fn checklist(mode: PurchaseMode, stage: Stage) -> &'static [Criterion] {
    use Criterion::*;
    use PurchaseMode::*;
    match (mode, stage) {
        (Independent, Stage::Ordinary) => &[ProjectNameAndLocation, ContactAndPhone, ExplicitNeed],
        (Group | Strategic, Stage::Ordinary) => {
            &[CompanyNameAndLocation, ContactAndPhone, ExplicitNeed]
        }
        (Independent, Stage::Valid) => &[
            DeveloperContact,
            ProjectDetails,
            ProductDemo,
            DigitalIntercomNeed,
            InsiderDeveloped,
            DecisionChainKnown,
            CompetitorsKnown,
        ],
        (Group, Stage::Valid) => &[
            CompanyProfile,
            ProjectDetails,
            ProductDemo,
            DigitalIntercomNeed,
            InsiderDeveloped,
            DecisionChainKnown,
            CompetitorsKnown,
        ],
        (Strategic, Stage::Valid) => &[
            FirstTenderShortlist,
            CompanyProfile,
            ProductDemo,
            HqOrReferenceVisit,
            DesignProposalOrTender,
            PreliminaryQuote,
            DecisionChainKnown,
        ],
        (Independent | Group, Stage::Prospect) => &[
            DesignProposalOrTender,
            PreliminaryQuote,
            HqOrReferenceVisit,
            DecisionChainExchanges,
            InsiderKeyPersons,
        ],
        (Strategic, Stage::Prospect) => &[
            SecondTenderShortlist,
            DecisionChainExchanges,
            InsiderKeyPersons,
        ],
        _ => &[],
    }
}

/// Items of `stage`'s checklist not in `met`, in checklist order.
pub fn missing(
    mode: PurchaseMode,
    stage: Stage,
    met: &std::collections::BTreeSet<Criterion>,
) -> Vec<Criterion> {
    checklist(mode, stage)
        .iter()
        .copied()
        .filter(|c| !met.contains(c))
        .collect()
}

/// Whether `c` appears on any checklist of `mode`.
pub fn applies(mode: PurchaseMode, c: Criterion) -> bool {
    [Stage::Ordinary, Stage::Valid, Stage::Prospect]
        .iter()
        .any(|s| checklist(mode, *s).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_differs_from_independent_only_where_the_manual_says() {
        let ind = checklist(PurchaseMode::Independent, Stage::Valid);
        let grp = checklist(PurchaseMode::Group, Stage::Valid);
        assert!(
            ind.contains(&Criterion::DeveloperContact)
                && !grp.contains(&Criterion::DeveloperContact)
        );
        assert!(
            grp.contains(&Criterion::CompanyProfile) && !ind.contains(&Criterion::CompanyProfile)
        );
        assert_eq!(ind.len(), grp.len());
        assert_eq!(
            checklist(PurchaseMode::Independent, Stage::Prospect),
            checklist(PurchaseMode::Group, Stage::Prospect)
        );
    }

    #[test]
    fn strategic_needs_tender_shortlists() {
        assert!(
            checklist(PurchaseMode::Strategic, Stage::Valid)
                .contains(&Criterion::FirstTenderShortlist)
        );
        assert!(
            checklist(PurchaseMode::Strategic, Stage::Prospect)
                .contains(&Criterion::SecondTenderShortlist)
        );
        assert!(!applies(
            PurchaseMode::Independent,
            Criterion::SecondTenderShortlist
        ));
    }

    #[test]
    fn every_criterion_is_on_some_checklist() {
        for c in Criterion::ALL {
            assert!(
                PurchaseMode::ALL.iter().any(|m| applies(*m, *c)),
                "{c} is on no checklist"
            );
        }
    }
}
