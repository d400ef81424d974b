//! Settings that are safe for a simulation and not for real claims:
//! `clearing run` on a non-local bus refuses each unless a flag accepts it,
//! and names each one it accepted on stderr. The local log is development
//! and audit archives, and is left alone.

use anyhow::{Result, bail};
use clap::Args;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::runtime::topics;

use clearing_pipeline::bus::kafka::{KafkaBus, Replication, ReplicationShortfall};

/// The flags that accept an unsafe setting on a non-local bus.
#[derive(Args, Clone, Debug, Default)]
pub struct UnsafeArgs {
    /// A simulation on synthetic data: on a non-local bus, accept
    /// `--trust-unsigned` and every setting the flags below accept, each
    /// named on stderr.
    #[arg(long)]
    pub simulation: bool,
    /// Accept a Kafka connection readable on the network (no TLS, or TLS
    /// without certificate verification).
    #[arg(long)]
    pub allow_plaintext: bool,
    /// Accept the development pseudonym secret (`CLEARING_PSEUDONYM_SECRET`
    /// unset, or set to it).
    #[arg(long)]
    pub allow_development_secret: bool,
    /// Accept topics with fewer than 3 replicas (or the configured factor)
    /// or `min.insync.replicas` below 2, existing or to be created.
    #[arg(long)]
    pub allow_under_replicated: bool,
}

/// One unsafe setting found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsafe {
    TrustUnsigned,
    /// Why the connection can be read (`SecurityProperties::in_clear`).
    InClear(String),
    DevelopmentSecret,
    UnderReplicated {
        required: Replication,
        topics: Vec<ReplicationShortfall>,
    },
}

impl Unsafe {
    /// The flag that accepts it (`--simulation` accepts them all).
    pub fn flag(&self) -> &'static str {
        match self {
            Unsafe::TrustUnsigned => "--simulation",
            Unsafe::InClear(_) => "--allow-plaintext",
            Unsafe::DevelopmentSecret => "--allow-development-secret",
            Unsafe::UnderReplicated { .. } => "--allow-under-replicated",
        }
    }

    fn accepted_by(&self, args: &UnsafeArgs) -> bool {
        args.simulation
            || match self {
                Unsafe::TrustUnsigned => false,
                Unsafe::InClear(_) => args.allow_plaintext,
                Unsafe::DevelopmentSecret => args.allow_development_secret,
                Unsafe::UnderReplicated { .. } => args.allow_under_replicated,
            }
    }

    /// What is unsafe and what the safe setting is, in a sentence.
    pub fn describe(&self) -> String {
        match self {
            Unsafe::TrustUnsigned => {
                "--trust-unsigned: claims are paid without checking their signatures".into()
            }
            Unsafe::InClear(why) => format!(
                "connection readable on the network ({why}): claims, NIRs and names cross it \
                 as they are; set security.protocol=SSL or SASL_SSL with certificate \
                 verification (CLEARING_KAFKA_CONFIG, docs/operations.md)"
            ),
            Unsafe::DevelopmentSecret => "development pseudonym secret: its value is in the \
                 source, so anyone can turn a NIR into its beneficiary key; set \
                 CLEARING_PSEUDONYM_SECRET"
                .into(),
            Unsafe::UnderReplicated { required, topics } => format!(
                "topics below {} replicas and min.insync.replicas {}, so one broker's loss can \
                 lose acknowledged records: {}",
                required.factor,
                required.min_insync,
                shortfalls(topics)
            ),
        }
    }
}

/// The existing topics by name and settings, at most six; the topics to be
/// created as one group (the bus creates them all alike).
fn shortfalls(topics: &[ReplicationShortfall]) -> String {
    const SHOWN: usize = 6;
    let (existing, created): (Vec<_>, Vec<_>) = topics.iter().partition(|t| t.exists);
    let mut parts: Vec<String> = existing
        .iter()
        .take(SHOWN)
        .map(|t| {
            format!(
                "{} ({} replica(s), min.insync.replicas {})",
                t.topic, t.factor, t.min_insync
            )
        })
        .collect();
    if existing.len() > SHOWN {
        parts.push(format!("and {} more", existing.len() - SHOWN));
    }
    if let Some(first) = created.first() {
        parts.push(format!(
            "{} topic(s) to be created with {} replica(s) and min.insync.replicas {} \
             (the cluster's broker count, or CLEARING_KAFKA_REPLICATION_FACTOR), {} first",
            created.len(),
            first.factor,
            first.min_insync,
            first.topic
        ));
    }
    parts.join(", ")
}

/// Splits what was found into what the flags accept and what they refuse.
pub fn judge(found: Vec<Unsafe>, args: &UnsafeArgs) -> (Vec<Unsafe>, Vec<Unsafe>) {
    found.into_iter().partition(|u| u.accepted_by(args))
}

/// The error text of refused settings: each with its flag.
pub fn refusal(verb: &str, bus: &str, refused: &[Unsafe]) -> String {
    let mut text = format!("{verb} on {bus}: refused, unsafe for real claims:");
    for u in refused {
        text.push_str(&format!("\n  - {}; or {}", u.describe(), u.flag()));
    }
    text.push_str(
        "\n  (--simulation accepts them all, for a run on synthetic data; the local log \
         `local:DIR` needs none)",
    );
    text
}

/// Checks a run on Kafka before it creates a topic or reads a record:
/// refuses the unsafe settings no flag accepts (a usage error, exit 2), and
/// names on stderr each one a flag accepted.
pub fn check_kafka(
    bus: &KafkaBus,
    args: &UnsafeArgs,
    trust_unsigned: bool,
    pseudonyms: &PseudonymKey,
    partitions: u32,
) -> Result<()> {
    let mut found = Vec::new();
    if trust_unsigned {
        found.push(Unsafe::TrustUnsigned);
    }
    if let Some(why) = bus.in_clear() {
        found.push(Unsafe::InClear(why));
    }
    if pseudonyms.is_development() {
        found.push(Unsafe::DevelopmentSecret);
    }
    let shortfall = bus.replication_shortfalls(&topics::all(partitions))?;
    if !shortfall.is_empty() {
        found.push(Unsafe::UnderReplicated {
            required: bus.required_replication(),
            topics: shortfall,
        });
    }
    let (accepted, refused) = judge(found, args);
    let url = clearing_pipeline::bus::Bus::describe(bus);
    if !refused.is_empty() {
        bail!("{}", refusal("clearing run", &url, &refused));
    }
    for u in &accepted {
        let flag = if args.simulation {
            "--simulation"
        } else {
            u.flag()
        };
        eprintln!(
            "clearing run: accepted by {flag} on {url}: {}",
            u.describe()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_found() -> Vec<Unsafe> {
        vec![
            Unsafe::TrustUnsigned,
            Unsafe::InClear("security.protocol is PLAINTEXT".into()),
            Unsafe::DevelopmentSecret,
            Unsafe::UnderReplicated {
                required: Replication {
                    factor: 3,
                    min_insync: 2,
                },
                topics: vec![ReplicationShortfall {
                    topic: "fse.submitted".into(),
                    factor: 1,
                    min_insync: 1,
                    exists: true,
                }],
            },
        ]
    }

    #[test]
    fn each_flag_accepts_its_setting_only_and_simulation_accepts_all() {
        let flags = |u: &[Unsafe]| u.iter().map(Unsafe::flag).collect::<Vec<_>>();
        let (accepted, refused) = judge(all_found(), &UnsafeArgs::default());
        assert!(accepted.is_empty());
        assert_eq!(
            flags(&refused),
            [
                "--simulation",
                "--allow-plaintext",
                "--allow-development-secret",
                "--allow-under-replicated"
            ]
        );
        let args = UnsafeArgs {
            allow_plaintext: true,
            allow_development_secret: true,
            allow_under_replicated: true,
            ..UnsafeArgs::default()
        };
        let (accepted, refused) = judge(all_found(), &args);
        assert_eq!(accepted.len(), 3);
        assert_eq!(
            refused,
            [Unsafe::TrustUnsigned],
            "no per-setting flag skips signatures"
        );
        let args = UnsafeArgs {
            simulation: true,
            ..UnsafeArgs::default()
        };
        assert!(judge(all_found(), &args).1.is_empty());
    }

    #[test]
    fn a_refusal_names_each_setting_and_its_flag() {
        let text = refusal("clearing run", "kafka://h:1", &all_found());
        for needle in [
            "--trust-unsigned",
            "(security.protocol is PLAINTEXT)",
            "docs/operations.md); or --allow-plaintext",
            "CLEARING_PSEUDONYM_SECRET; or --allow-development-secret",
            "fse.submitted (1 replica(s), min.insync.replicas 1); or --allow-under-replicated",
            "--simulation accepts them all",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        let many: Vec<ReplicationShortfall> = (0..12)
            .map(|i| ReplicationShortfall {
                topic: format!("t{i}"),
                factor: 1,
                min_insync: 1,
                exists: i < 9,
            })
            .collect();
        let text = shortfalls(&many);
        assert!(
            text.contains("t5 (1 replica(s)") && !text.contains("t6"),
            "{text}"
        );
        assert!(text.contains("and 3 more, 3 topic(s) to be created with 1 replica(s)"));
        assert!(text.ends_with("t9 first"), "{text}");
    }
}
