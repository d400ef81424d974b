//! The flags several verbs share, each defined once and flattened into the
//! verbs' arguments (`#[command(flatten)]`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use clearing_pipeline::bus::Bus;
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::{self, Shared};
use clearing_pipeline::state::{Engine, RewritePolicy};

use super::{load_rules, open_bus, pseudonym_key};

pub const DEFAULT_BUS: &str = "local:./data";
pub const DEFAULT_PARTITIONS: u32 = 4;
pub const DEFAULT_BATCH: usize = 2000;

/// `--partitions`: how many partitions a verb gives the claim-path topics it
/// creates.
#[derive(Args, Clone, Copy, Debug)]
pub struct Partitions {
    /// Partitions of the claim-path topics, when they are created.
    #[arg(long = "partitions", id = "partitions", value_name = "PARTITIONS", default_value_t = DEFAULT_PARTITIONS)]
    pub count: u32,
}

/// The bus a verb of the running pipeline works on, and its partitions.
#[derive(Args)]
pub struct BusArgs {
    /// `local:DIR` (embedded log) or `kafka://HOST:PORT`.
    #[arg(long, default_value = DEFAULT_BUS)]
    pub bus: String,
    #[command(flatten)]
    pub partitions: Partitions,
}

impl BusArgs {
    /// The bus, its topics made.
    pub fn open(&self) -> Result<Arc<dyn Bus>> {
        let bus = open_bus(&self.bus)?;
        runtime::ensure_topics(bus.as_ref(), self.partitions.count)?;
        Ok(bus)
    }
}

/// `--bus` of the verbs that read a recorded run.
#[derive(Args)]
pub struct RecordedBus {
    /// The recorded run: `local:DIR` or `kafka://HOST:PORT`.
    #[arg(long = "bus", id = "bus", value_name = "BUS", default_value = DEFAULT_BUS)]
    pub url: String,
}

/// A recorded run, on its bus or in an archive.
#[derive(Args)]
pub struct RecordedRun {
    #[command(flatten)]
    pub bus: RecordedBus,
    /// An archive made by `clearing archive` (`clearing replay` checks its
    /// manifest first).
    #[arg(long, conflicts_with = "bus")]
    pub archive: Option<PathBuf>,
}

impl RecordedRun {
    /// The bus to read: the archive as a local log, or `--bus`.
    pub fn url(&self) -> String {
        match &self.archive {
            Some(dir) => format!("local:{}", dir.display()),
            None => self.bus.url.clone(),
        }
    }
}

/// `--rules`: rule tables other than the embedded ones.
#[derive(Args, Clone, Default)]
pub struct RulesArgs {
    /// A rule-table directory (like pipeline/rules/) instead of the embedded tables.
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

impl RulesArgs {
    pub fn load(&self) -> Result<Rules> {
        load_rules(self.rules.as_deref())
    }
}

/// `--trust-unsigned`.
#[derive(Args, Clone, Copy, Default)]
pub struct Signatures {
    /// Simulation: skip signature checks, and say so in every decision
    /// (`clearing run` on a non-local bus: only with `--simulation`).
    #[arg(long)]
    pub trust_unsigned: bool,
}

/// How the stage workers of this process run.
#[derive(Args, Clone, Copy)]
pub struct WorkerArgs {
    /// Input records per batch and partition.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
    /// Threads verifying a validation batch's signatures (default: the cores).
    #[arg(long)]
    pub verify_threads: Option<usize>,
    /// Workers per stage in this process, each serving its share of the
    /// partitions (on Kafka, each a member of the stage's group), a thread
    /// each (default 1).
    #[arg(long)]
    pub workers_per_stage: Option<u32>,
    /// Rewrite a stage's store when it is opened and its files exceed this
    /// many times its live keys and values (sled's dead space; default 8).
    #[arg(long, value_name = "TIMES", value_parser = clap::value_parser!(u64).range(2..))]
    pub store_rewrite_amplification: Option<u64>,
    /// Also rewrite it when its files have grown this many percent past
    /// the amplification its last copy had (default: not on growth).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u64).range(1..))]
    pub store_rewrite_growth: Option<u64>,
    /// The engine of the stages' stores: `log` (appends, merged as it
    /// goes) or `sled`. A store written by the other is moved aside and
    /// restored from its changelog.
    #[arg(long, value_name = "ENGINE", default_value_t = Engine::default())]
    pub store_engine: Engine,
}

impl Default for WorkerArgs {
    /// The flags' defaults.
    fn default() -> WorkerArgs {
        WorkerArgs {
            batch: DEFAULT_BATCH,
            verify_threads: None,
            workers_per_stage: None,
            store_rewrite_amplification: None,
            store_rewrite_growth: None,
            store_engine: Engine::default(),
        }
    }
}

impl WorkerArgs {
    /// `--workers-per-stage`, or the default.
    pub fn workers_per_stage(&self) -> u32 {
        self.workers_per_stage
            .unwrap_or(runtime::DEFAULT_WORKERS_PER_STAGE)
    }

    /// `--store-rewrite-amplification` and `--store-rewrite-growth` over
    /// the default policy.
    pub fn store_rewrite(&self) -> RewritePolicy {
        let default = RewritePolicy::DEFAULT;
        RewritePolicy {
            amplification: self
                .store_rewrite_amplification
                .unwrap_or(default.amplification),
            growth_pct: self.store_rewrite_growth.or(default.growth_pct),
            ..default
        }
    }

    /// `--batch`, within what the runtime takes.
    pub fn batch_max(&self) -> usize {
        self.batch.clamp(1, 100_000)
    }

    /// The runtime's context for stages run with these flags on `bus`,
    /// keeping their stores under `stages.state_dir`.
    pub fn shared(&self, bus: Arc<dyn Bus>, stages: StageSetup) -> Result<Arc<Shared>> {
        Ok(Arc::new(Shared {
            bus,
            rules: stages.rules,
            registry: Arc::new(SchemaRegistry::new()?),
            pseudonyms: pseudonym_key()?,
            trust_unsigned: stages.trust_unsigned,
            state_dir: stages.state_dir,
            group: stages.group,
            batch_max: self.batch_max(),
            verify_threads: self
                .verify_threads
                .unwrap_or_else(clearing_pipeline::runtime::cores),
            workers_per_stage: self.workers_per_stage(),
            queries: None,
            store_rewrite: self.store_rewrite(),
            store_engine: self.store_engine,
        }))
    }
}

/// What a verb running stages chooses besides the workers' flags.
pub struct StageSetup {
    pub rules: Arc<Rules>,
    pub trust_unsigned: bool,
    pub state_dir: PathBuf,
    /// The consumer group (each stage uses `<group>.<stage>`).
    pub group: String,
}
