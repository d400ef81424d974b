//! Before the run: the corpus, a fresh bus with the corpus's reference data
//! on it, and the stages' context.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clearing_pipeline::bus::Bus;
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::ingest::Ingest;
use clearing_pipeline::runtime::{self, Shared, topics};

use super::corpus::{self, Corpus};
use super::plan::Plan;
use super::{GROUP, LoadtestArgs, sample};
use crate::cmd::args::StageSetup;
use crate::cmd::{load_rules, open_bus, pseudonym_key, publish_reference, remove_dir};

/// What the run's phases share once it is set up.
pub struct Setup {
    pub corpus: Corpus,
    pub bus: Arc<dyn Bus>,
    pub rules: Arc<Rules>,
    pub shared: Arc<Shared>,
    pub state_dir: PathBuf,
    pub started_unix_s: u64,
    pub load_before: [f64; 3],
}

pub fn prepare(args: &LoadtestArgs, plan: &Plan) -> Result<Setup> {
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let load_before = sample::load_avg();
    let corpus = prepare_corpus(args, plan)?;
    let registry = SchemaRegistry::new()?;
    let pseudonyms = pseudonym_key()?;
    corpus.ensure_wire(&registry, &pseudonyms)?;
    let state_dir = args.out.join("state");
    let bus = fresh_bus(args, started_unix_s, &state_dir)?;
    eprintln!(
        "loadtest: reference data of {} onto {}",
        corpus.dir.display(),
        bus.describe()
    );
    let mut ingest = Ingest::new(bus.as_ref(), &registry, &pseudonyms, IngestClock::Simulated)?;
    publish_reference(&mut ingest, &corpus.dir)?;
    ingest.flush()?;
    let rules = Arc::new(load_rules(None)?);
    let stages = StageSetup {
        rules: rules.clone(),
        trust_unsigned: args.signatures.trust_unsigned,
        state_dir: state_dir.clone(),
        group: GROUP.into(),
    };
    let shared = args.workers.shared(bus.clone(), stages)?;
    Ok(Setup {
        corpus,
        bus,
        rules,
        shared,
        state_dir,
        started_unix_s,
        load_before,
    })
}

/// The corpus, generated unless cached.
fn prepare_corpus(args: &LoadtestArgs, plan: &Plan) -> Result<Corpus> {
    let corpus = corpus::prepare(args.corpus.as_deref(), args.seed, plan.needed)?;
    if corpus.claims < plan.needed {
        eprintln!(
            "loadtest: the corpus has {} claims, the run needs {}: claims sent again are duplicates (rejected by validation)",
            corpus.claims, plan.needed
        );
    }
    Ok(corpus)
}

/// The bus, its topics made and empty, and no state left from an earlier run.
fn fresh_bus(args: &LoadtestArgs, started_unix_s: u64, state_dir: &Path) -> Result<Arc<dyn Bus>> {
    if args.no_stages
        && !args
            .bus
            .as_deref()
            .and_then(|url| url.strip_prefix("kafka://"))
            .is_some_and(|rest| rest.contains('/'))
    {
        bail!(
            "--no-stages needs --bus kafka://HOST:PORT/NAMESPACE, the namespace the `clearing run` processes use"
        );
    }
    let bus_url = match &args.bus {
        Some(url) if url.starts_with("kafka://") && !url["kafka://".len()..].contains('/') => {
            format!("{url}/loadtest-{started_unix_s}")
        }
        Some(url) => url.clone(),
        None => {
            let dir = args.out.join("bus");
            remove_dir(&dir)?;
            format!("local:{}", dir.display())
        }
    };
    remove_dir(state_dir)?;
    let bus = open_bus(&bus_url)?;
    if bus_url.starts_with("kafka://") {
        // Like the demo, a load test is a simulation on claims it makes:
        // `clearing run`'s refusals of unsafe settings do not apply.
        eprintln!(
            "loadtest: a simulation on synthetic claims: the unsafe settings `clearing run` \
             refuses on Kafka without --simulation are accepted here{}",
            if args.no_stages {
                "; the `clearing run` processes on this namespace need --simulation"
            } else {
                ""
            }
        );
    }
    runtime::ensure_topics(bus.as_ref(), args.partitions.count)?;
    if bus.end_offset(topics::FSE_SUBMITTED, 0)? > 0 {
        bail!(
            "{}: fse.submitted is not empty; a load test needs fresh topics",
            bus.describe()
        );
    }
    Ok(bus)
}
