//! Topic names and their layout (mirrors ops/topics.toml).

use crate::bus::TopicSpec;

pub const FSE_SUBMITTED: &str = "fse.submitted";
pub const FSE_VALIDATED: &str = "fse.validated";
pub const FSE_ENTITLED: &str = "fse.entitled";
pub const FSE_ROUTED: &str = "fse.routed";
pub const FSE_DECIDED: &str = "fse.decided";
pub const FSE_REJECTED: &str = "fse.rejected";
pub const RETURNS_PROFESSIONAL: &str = "returns.professional";
pub const AMC_CLAIMS: &str = "amc.claims";
pub const PAYMENTS_ORDERS: &str = "payments.orders";
pub const EU_CLAIMS: &str = "eu.claims";
/// FSE outcomes and close events for the ledger stage (docs/outbound.md).
pub const OUTBOUND_LEDGER: &str = "outbound.ledger";
pub const REF_RIGHTS: &str = "ref.rights";
pub const REF_PKI: &str = "ref.pki";
pub const REF_EU_INSTITUTIONS: &str = "ref.eu.institutions";
/// Every stage partition's hash chain at each commit (design.md §5).
pub const AUDIT_CHECKPOINTS: &str = "audit.checkpoints";

/// Every topic of the pipeline for `partitions` claim-path partitions.
/// Claim-path topics, `ref.rights` and the changelogs share the partition
/// count (co-partitioning, design.md §1); global reference topics have one.
pub fn all(partitions: u32) -> Vec<TopicSpec> {
    let claim_path = |name: &str| TopicSpec {
        name: name.to_string(),
        partitions,
        compacted: false,
        retention_ms: None,
    };
    let compacted = |name: &str, partitions: u32| TopicSpec {
        name: name.to_string(),
        partitions,
        compacted: true,
        retention_ms: None,
    };
    let mut topics: Vec<TopicSpec> = [
        FSE_SUBMITTED,
        FSE_VALIDATED,
        FSE_ENTITLED,
        FSE_ROUTED,
        FSE_DECIDED,
        FSE_REJECTED,
        AUDIT_CHECKPOINTS,
        RETURNS_PROFESSIONAL,
        AMC_CLAIMS,
        PAYMENTS_ORDERS,
        EU_CLAIMS,
        OUTBOUND_LEDGER,
    ]
    .into_iter()
    .map(claim_path)
    .collect();
    for stage in crate::stages::StageKind::ALL {
        topics.push(claim_path(stage.dlq_topic()));
        topics.push(compacted(stage.changelog_topic(), partitions));
    }
    topics.push(compacted(REF_RIGHTS, partitions));
    topics.push(compacted(REF_PKI, 1));
    topics.push(compacted(REF_EU_INSTITUTIONS, 1));
    topics
}
