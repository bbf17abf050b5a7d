//! What people read for the codes of the log: each lead event type and each lead command (the
//! action of a refused attempt) in Chinese and English.

use super::Tr;

/// (code, Chinese, English) of every lead event type and lead command.
const ACTIONS: &[(&str, &str, &str)] = &[
    ("lead.registered", "报备", "registered"),
    ("lead.owner_assigned", "指定负责人", "owner assigned"),
    (
        "lead.duplicate_registration_received",
        "重复报备",
        "duplicate registration",
    ),
    (
        "lead.ownership_conflict_opened",
        "归属争议",
        "ownership conflict opened",
    ),
    (
        "lead.ownership_conflict_decided",
        "裁定归属",
        "ownership conflict decided",
    ),
    ("lead.touch_refused", "越权操作被拒", "touch refused"),
    (
        "lead.reassignment_requested",
        "申请变更负责人",
        "reassignment requested",
    ),
    (
        "lead.reassignment_approved",
        "批准变更负责人",
        "reassignment approved",
    ),
    (
        "lead.reassignment_denied",
        "驳回变更负责人",
        "reassignment denied",
    ),
    (
        "lead.reassignment_expired",
        "变更申请过期",
        "reassignment expired",
    ),
    ("lead.visit_logged", "拜访记录", "visit logged"),
    (
        "lead.key_person_recorded",
        "记录关键人物",
        "key person recorded",
    ),
    ("lead.insider_developed", "发展内线", "insider developed"),
    (
        "lead.relationship_assessed",
        "评估关系",
        "relationship assessed",
    ),
    ("lead.criterion_met", "满足判定条件", "criterion met"),
    ("lead.details_updated", "更新资料", "details updated"),
    (
        "lead.insider_escalation_raised",
        "无内线提醒经理",
        "insider escalation raised",
    ),
    (
        "lead.stagnation_review_opened",
        "关系停滞评审",
        "stagnation review opened",
    ),
    (
        "lead.stagnation_review_decided",
        "停滞评审决定",
        "stagnation review decided",
    ),
    (
        "lead.valid_info_declared",
        "申报有效信息",
        "valid info declared",
    ),
    ("lead.prospect_declared", "申报准客户", "prospect declared"),
    (
        "lead.declaration_reviewed",
        "审核申报",
        "declaration reviewed",
    ),
    ("lead.declaration_filed", "申报备案", "declaration filed"),
    (
        "lead.declaration_withdrawn",
        "撤回申报",
        "declaration withdrawn",
    ),
    ("lead.stage_changed", "阶段变化", "stage changed"),
    ("lead.negotiation_noted", "商务洽谈", "negotiation noted"),
    (
        "lead.contract_submitted",
        "提交合同评审",
        "contract submitted",
    ),
    ("lead.contract_amended", "修改合同", "contract amended"),
    (
        "lead.contract_approved",
        "合同评审通过",
        "contract approved",
    ),
    (
        "lead.contract_rejected",
        "合同评审不通过",
        "contract rejected",
    ),
    ("lead.contract_signed", "签订合同", "contract signed"),
    ("lead.order_processed", "订单处理", "order processed"),
    (
        "lead.after_sales_care_logged",
        "售后关怀",
        "after-sales care logged",
    ),
    ("lead.suspended", "中止", "suspended"),
    ("lead.lost", "丢失", "lost"),
    ("lead.reactivated", "重新激活", "reactivated"),
    ("lead.key_reserved", "保留客户键", "customer key reserved"),
    ("register", "报备", "register"),
    ("assign", "指定负责人", "assign"),
    ("decide_conflict", "裁定归属", "decide a conflict"),
    (
        "request_reassignment",
        "申请变更负责人",
        "request a reassignment",
    ),
    (
        "approve_reassignment",
        "批准变更负责人",
        "approve a reassignment",
    ),
    ("deny_reassignment", "驳回变更负责人", "deny a reassignment"),
    (
        "expire_reassignment",
        "使变更申请过期",
        "expire a reassignment",
    ),
    ("log_visit", "记录拜访", "log a visit"),
    ("record_key_person", "记录关键人物", "record a key person"),
    ("mark_insider", "标记内线", "mark an insider"),
    ("assess_relationship", "评估关系", "assess a relationship"),
    ("record_criterion", "记录判定条件", "record a criterion"),
    ("update_details", "更新资料", "update details"),
    (
        "decide_stagnation_review",
        "停滞评审决定",
        "decide a stagnation review",
    ),
    ("declare_valid_info", "申报有效信息", "declare valid info"),
    ("declare_prospect", "申报准客户", "declare a prospect"),
    ("review_declaration", "审核申报", "review a declaration"),
    ("file_declaration", "申报备案", "file a declaration"),
    ("note_negotiation", "记录商务洽谈", "note a negotiation"),
    ("submit_contract", "提交合同评审", "submit a contract"),
    ("amend_contract", "修改合同", "amend a contract"),
    ("review_contract", "评审合同", "review a contract"),
    ("sign_contract", "签订合同", "sign a contract"),
    ("process_order", "处理订单", "process an order"),
    (
        "log_after_sales_care",
        "记录售后关怀",
        "log after-sales care",
    ),
    ("suspend", "中止", "suspend"),
    ("mark_lost", "标记丢失", "mark lost"),
    ("reactivate", "重新激活", "reactivate"),
];

/// The action of a touch (an event type, or the command of a refused attempt) in the page's
/// language; a code without a label (a newer event) is shown as it is.
pub fn action(tr: Tr, code: &str) -> String {
    ACTIONS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, zh, en)| tr.t(zh, en).to_string())
        .unwrap_or_else(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lead_command_has_a_label() {
        let tr = Tr {
            lang: super::super::Lang::Zh,
        };
        for name in crate::dto::LEAD_COMMANDS {
            assert_ne!(action(tr, name), *name, "{name}");
        }
    }
}
