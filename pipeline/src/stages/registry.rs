//! The registry of stages: each kind, in pipeline order, and the [`Stage`]
//! that implements it. Adding a stage is its own file and a line here.
//!
//! [`Stage`]: super::contract::Stage

use super::contract::{Process, Topics};

/// The stages, in pipeline order: the four that decide, then the three
/// outbound ones (docs/outbound.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StageKind {
    Validation,
    Entitlement,
    Routing,
    Reimbursement,
    /// Paid decisions: payment returns, complementary claims, ledger outcomes.
    Settlement,
    /// Rejections: rejection returns, ledger outcomes.
    Returns,
    /// Accumulations closed by close events: ARLs, payment orders, EU claims.
    Ledger,
}

impl StageKind {
    pub const ALL: [StageKind; 7] = [
        StageKind::Validation,
        StageKind::Entitlement,
        StageKind::Routing,
        StageKind::Reimbursement,
        StageKind::Settlement,
        StageKind::Returns,
        StageKind::Ledger,
    ];

    /// The stages that decide claims (what `clearing adjudicate` runs).
    pub const DECIDING: [StageKind; 4] = [
        StageKind::Validation,
        StageKind::Entitlement,
        StageKind::Routing,
        StageKind::Reimbursement,
    ];

    /// The stage's implementation.
    pub fn stage(self) -> &'static dyn Process {
        match self {
            StageKind::Validation => &super::validation::ValidationStage,
            StageKind::Entitlement => &super::entitlement::EntitlementStage,
            StageKind::Routing => &super::routing::RoutingStage,
            StageKind::Reimbursement => &super::reimbursement::ReimbursementStage,
            StageKind::Settlement => &crate::outbound::SettlementStage,
            StageKind::Returns => &crate::outbound::ReturnsStage,
            StageKind::Ledger => &crate::outbound::ledger::LedgerStage,
        }
    }

    pub fn topics(self) -> &'static Topics {
        self.stage().topics()
    }

    pub fn name(self) -> &'static str {
        self.topics().name
    }

    pub fn parse(name: &str) -> Option<StageKind> {
        StageKind::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn input_topic(self) -> &'static str {
        self.topics().input
    }

    pub fn pass_topic(self) -> &'static str {
        self.topics().pass
    }

    pub fn changelog_topic(self) -> &'static str {
        self.topics().changelog
    }

    pub fn dlq_topic(self) -> &'static str {
        self.topics().dlq
    }

    /// Every topic this stage writes outputs to, its dead letters' last
    /// (restore mode reads them back).
    pub fn output_topics(self) -> Vec<&'static str> {
        let topics = self.topics();
        let mut all = topics.outputs.to_vec();
        all.push(topics.dlq);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names, changelogs and dead-letter topics follow one pattern, which
    /// operators' tooling (ops/topics.toml) relies on.
    #[test]
    fn every_stage_names_its_topics_after_itself() {
        for kind in StageKind::ALL {
            let t = kind.topics();
            assert_eq!(t.changelog, format!("{}.changelog", t.name));
            assert_eq!(t.dlq, format!("dlq.{}", t.name));
            assert_eq!(StageKind::parse(t.name), Some(kind));
            assert!(t.outputs.contains(&t.pass), "{}", t.name);
        }
    }
}
