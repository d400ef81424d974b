//! Per-claim cost of each stage's pure function, of the runtime's per-record
//! work, of sled state operations and of the local log, on realistic inputs:
//! a synthetic data set made once by `synth::generate` (signed claims, a
//! world of professionals, beneficiaries and rights) in a temporary directory.
//!
//! The first half of the claims is the *history*: run through the four
//! stages into each stage's store (sled, as in the pipeline; and an
//! in-memory copy), so duplicates are looked up among earlier ids, rights are
//! there and reimbursement's accumulators (yearly caps, daily counters,
//! deferred balances) already hold earlier claims. The second half is what
//! is measured, each claim through a fresh overlay (`StateTxn`) of its
//! stage's store, its input built once by running the earlier stages.
//!
//! The group `validation` holds the raw limit beside the stage: `Pki::verify`
//! alone over the precomputed canonical bytes and signatures of the same
//! claims, so the report can give validation as a share of it.
//!
//! Figures and their reading: docs/performance.md. Run (short, on the shared
//! 2-core machine):
//!
//! ```sh
//! cargo bench --bench stages -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! `STAGES_BENCH_CLAIMS` (default 6000) sets the data-set size.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use clearing_pipeline::adjudicate::{Adjudicator, FSE_OBJECTS};
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::bus::{Bus, BusProducer, Record, TopicSpec};
use clearing_pipeline::clock::Receipt;
use clearing_pipeline::domain::FseInput;
use clearing_pipeline::domain::json;
use clearing_pipeline::domain::rights::RightsInput;
use clearing_pipeline::events::convert::{input_from_submitted, submitted_from_input};
use clearing_pipeline::events::model::{FseSubmitted, RefOffset};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::pki::{Pki, PkiRecord};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::refdata::{
    EuInstitutionInput, InstitutionDirectory, RefView, SignatureVerifier, TrustUnsigned,
};
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::StageKind;
use clearing_pipeline::runtime::ingest::fse_key;
use clearing_pipeline::runtime::process::{Inputs, process};
use clearing_pipeline::signatures::{OwnedPkiVerifier, PkiVerifier, canonical_bytes};
use clearing_pipeline::stages::{
    Context, Entitled, Outcome, Routed, Validated, entitlement, reimbursement, routing, validation,
};
use clearing_pipeline::state::{MemStore, SledStore, StateRead, StateStore, StateTxn, WriteBatch};
use clearing_pipeline::synth::{self, GenConfig};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};

/// One claim's signature check inputs, precomputed: the raw limit.
struct RawSig {
    cert: String,
    rpps: String,
    alg: String,
    date: chrono::NaiveDate,
    message: Vec<u8>,
    signature: Vec<u8>,
}

/// The four stores of one kind.
struct Stores<S> {
    validation: S,
    entitlement: S,
    routing: S,
    reimbursement: S,
}

struct Fixture {
    _dir: tempfile::TempDir,
    rules: Rules,
    registry: SchemaRegistry,
    pseudonyms: PseudonymKey,
    generated: Generated,
    /// The measured claims (second half).
    claims: Vec<FseInput>,
    measured: Measured,
    /// Runtime input records of each stage (the previous stage's pass outputs).
    records: Vec<(StageKind, Vec<Record>)>,
    sled: Stores<SledStore>,
    mem: Stores<MemStore>,
}

/// The generated data set, read back.
struct Generated {
    pki: Pki,
    institutions: InstitutionDirectory,
    rights_lines: Vec<String>,
    institution_lines: Vec<String>,
    /// Every claim, file order (the adjudicator runs them all).
    all: Vec<FseInput>,
}

/// What the measured claims need, built once by running the earlier stages.
struct Measured {
    /// Their `fse.submitted` single-object bytes and record keys.
    submitted: Vec<(Vec<u8>, Vec<u8>)>,
    raw: Vec<RawSig>,
    validated: Vec<Validated>,
    entitled: Vec<Entitled>,
    routed: Vec<Routed>,
    /// Writes the measured claims' stages made (for the sled batch).
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("generated file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs one stage over a fresh overlay of `store` and applies its writes.
fn run_applied<T>(
    store: &dyn StateStore,
    f: impl FnOnce(&mut StateTxn<'_>) -> Result<T, clearing_pipeline::state::StoreError>,
) -> T {
    let mut txn = StateTxn::new(store);
    let out = f(&mut txn).expect("store");
    let writes = txn.into_writes();
    store.apply(&writes).expect("apply");
    out
}

/// Runs one stage over a fresh overlay of `store`; returns its output and writes.
fn run_dry<T>(
    store: &dyn StateStore,
    f: impl FnOnce(&mut StateTxn<'_>) -> Result<T, clearing_pipeline::state::StoreError>,
) -> (T, WriteBatch) {
    let mut txn = StateTxn::new(store);
    let out = f(&mut txn).expect("store");
    (out, txn.into_writes())
}

/// Every key of `from`, as writes.
fn all_writes(from: &MemStore) -> WriteBatch {
    from.scan_prefix(b"")
        .expect("scan")
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect()
}

fn copy_store(from: &MemStore, to: &SledStore) {
    to.apply(&all_writes(from)).expect("apply");
    to.flush().expect("flush");
}

impl<S> Stores<S> {
    /// The store of a deciding stage.
    fn of(&self, stage: StageKind) -> &S {
        match stage {
            StageKind::Validation => &self.validation,
            StageKind::Entitlement => &self.entitlement,
            StageKind::Routing => &self.routing,
            StageKind::Reimbursement => &self.reimbursement,
            other => unreachable!("{other:?} is not a deciding stage"),
        }
    }
}

fn fixture() -> Fixture {
    let n: usize = std::env::var("STAGES_BENCH_CLAIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = Rules::embedded().expect("rules");
    let registry = SchemaRegistry::new().expect("registry");
    let pseudonyms = PseudonymKey::development();
    let generated = generate(n, &dir.path().join("gen"), &rules, &registry);
    let half = generated.all.len() / 2;
    let claims = generated.all[half..].to_vec();

    let verifier = PkiVerifier {
        pki: &generated.pki,
        registry: &registry,
    };
    let refs = RefView {
        signatures: &verifier,
        institutions: &generated.institutions,
    };
    let ctx = Context {
        rules: &rules,
        refs: &refs,
        pseudonyms: &pseudonyms,
    };
    let mem = history(&generated.rights_lines, &generated.all[..half], &ctx);
    let sled = sled_copy(&dir.path().join("state"), &mem);
    let measured = measure(&claims, &mem, &registry, &ctx);
    let records = runtime_records(&measured.submitted, &mem, &registry, &ctx);

    Fixture {
        _dir: dir,
        rules,
        registry,
        pseudonyms,
        generated,
        claims,
        measured,
        records,
        sled,
        mem,
    }
}

/// `n` claims generated into `gen_dir`, and the reference data read back.
fn generate(n: usize, gen_dir: &Path, rules: &Rules, registry: &SchemaRegistry) -> Generated {
    let mut config = GenConfig::for_claims(1, n);
    config.key_cache = synth::default_key_cache();
    // The mix of `clearing gen` and `clearing demo` (10 % of professionals on
    // RSA-2048 cards), so these figures and the pipeline's agree.
    config.rsa_per_mille = 100;
    let started = Instant::now();
    let manifest = synth::generate(&config, rules, registry, gen_dir).expect("generate");
    eprintln!(
        "generated {} claims ({} professionals, {} RSA; {} beneficiaries) in {:.1} s",
        manifest.claims,
        manifest.professionals,
        manifest.rsa_professionals,
        manifest.beneficiaries,
        started.elapsed().as_secs_f64()
    );
    let rights_lines = read_lines(&gen_dir.join("rights.jsonl"));
    let institution_lines = read_lines(&gen_dir.join("eu_institutions.jsonl"));
    let mut pki = Pki::default();
    for line in read_lines(&gen_dir.join("pki.jsonl")) {
        pki.apply(PkiRecord::from_json(&line).expect("pki line"))
            .expect("pki record");
    }
    let mut institutions = InstitutionDirectory::default();
    for line in &institution_lines {
        let input: EuInstitutionInput = serde_json::from_str(line).expect("institution");
        institutions.upsert(input).expect("institution");
    }
    let all: Vec<FseInput> = read_lines(&gen_dir.join("claims.jsonl"))
        .iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("json");
            json::from_value(&value, FSE_OBJECTS).expect("claim shape")
        })
        .collect();
    Generated {
        pki,
        institutions,
        rights_lines,
        institution_lines,
        all,
    }
}

/// The history: rights, then `claims` through the four stages.
fn history(rights_lines: &[String], claims: &[FseInput], ctx: &Context) -> Stores<MemStore> {
    let mem = Stores {
        validation: MemStore::default(),
        entitlement: MemStore::default(),
        routing: MemStore::default(),
        reimbursement: MemStore::default(),
    };
    for line in rights_lines {
        let input: RightsInput = serde_json::from_str(line).expect("rights");
        run_applied(&mem.entitlement, |txn| {
            entitlement::apply_rights(input, txn, ctx.pseudonyms).expect("rights record");
            Ok(())
        });
    }
    for input in claims {
        let Outcome::Pass(v) = run_applied(&mem.validation, |t| {
            validation::validate(input, Receipt::Unstamped, t, ctx)
        }) else {
            continue;
        };
        let Outcome::Pass(e) = run_applied(&mem.entitlement, |t| entitlement::entitle(v, t, ctx))
        else {
            continue;
        };
        let Outcome::Pass(r) = run_applied(&mem.routing, |t| routing::route(e, t, ctx)) else {
            continue;
        };
        run_applied(&mem.reimbursement, |t| reimbursement::reimburse(r, t, ctx));
    }
    eprintln!(
        "history: {} claims; state keys: validation {}, entitlement {}, reimbursement {}",
        claims.len(),
        mem.validation.len(),
        mem.entitlement.len(),
        mem.reimbursement.len()
    );
    mem
}

/// The history's state in sled stores under `sled_dir`, as in the pipeline.
fn sled_copy(sled_dir: &Path, mem: &Stores<MemStore>) -> Stores<SledStore> {
    let validation_store = SledStore::open(sled_dir, "validation").expect("sled");
    let sled = Stores {
        entitlement: validation_store.tree("entitlement").expect("tree"),
        routing: validation_store.tree("routing").expect("tree"),
        reimbursement: validation_store.tree("reimbursement").expect("tree"),
        validation: validation_store,
    };
    copy_store(&mem.validation, &sled.validation);
    copy_store(&mem.entitlement, &sled.entitlement);
    copy_store(&mem.reimbursement, &sled.reimbursement);
    sled
}

/// The measured claims: wire bytes, raw signature inputs, stage inputs.
fn measure(
    claims: &[FseInput],
    mem: &Stores<MemStore>,
    registry: &SchemaRegistry,
    ctx: &Context,
) -> Measured {
    let mut submitted = Vec::new();
    let mut raw = Vec::new();
    let (mut validated, mut entitled, mut routed) = (Vec::new(), Vec::new(), Vec::new());
    let mut writes = Vec::new();
    let mut rsa = 0;
    for input in claims {
        let wire: FseSubmitted = submitted_from_input(input).expect("wire form");
        submitted.push((
            registry.encode_single(&wire),
            fse_key(&wire, ctx.pseudonyms),
        ));
        if let Some(sig) = &wire.signature {
            rsa += usize::from(sig.alg.starts_with("rsa"));
            raw.push(RawSig {
                cert: sig.cert.clone(),
                rpps: wire.professional.rpps.clone(),
                alg: sig.alg.clone(),
                date: wire.care_date,
                message: canonical_bytes(registry, &wire),
                signature: sig.value.clone(),
            });
        }
        let (outcome, w) = run_dry(&mem.validation, |t| {
            validation::validate(input, Receipt::Unstamped, t, ctx)
        });
        writes.extend(w);
        let Outcome::Pass(v) = outcome else { continue };
        validated.push(v.clone());
        let Outcome::Pass(e) = run_dry(&mem.entitlement, |t| entitlement::entitle(v, t, ctx)).0
        else {
            continue;
        };
        entitled.push(e.clone());
        let Outcome::Pass(r) = run_dry(&mem.routing, |t| routing::route(e, t, ctx)).0 else {
            continue;
        };
        routed.push(r.clone());
        let (_, w) = run_dry(&mem.reimbursement, |t| reimbursement::reimburse(r, t, ctx));
        writes.extend(w);
    }
    eprintln!(
        "measured: {} claims ({} signed, {} RSA); passed validation {}, entitlement {}, routing {}",
        claims.len(),
        raw.len(),
        rsa,
        validated.len(),
        entitled.len(),
        routed.len()
    );
    Measured {
        submitted,
        raw,
        validated,
        entitled,
        routed,
        writes,
    }
}

/// The runtime's input records, stage by stage (as on one partition).
fn runtime_records(
    submitted: &[(Vec<u8>, Vec<u8>)],
    mem: &Stores<MemStore>,
    registry: &SchemaRegistry,
    ctx: &Context,
) -> Vec<(StageKind, Vec<Record>)> {
    let mut records = Vec::new();
    let mut current: Vec<Record> = submitted
        .iter()
        .enumerate()
        .map(|(i, (value, key))| Record {
            topic: "fse.submitted".into(),
            partition: 0,
            offset: i as u64,
            timestamp_millis: 0,
            key: key.clone(),
            value: value.clone(),
            tombstone: false,
        })
        .collect();
    for stage in StageKind::DECIDING {
        let next = pass_outputs(stage, mem.of(stage), &current, registry, ctx);
        let mean =
            |rs: &[Record]| rs.iter().map(|r| r.value.len()).sum::<usize>() / rs.len().max(1);
        eprintln!(
            "{}: {} input records, mean {} bytes; {} pass outputs, mean {} bytes",
            stage.name(),
            current.len(),
            mean(&current),
            next.len(),
            mean(&next)
        );
        records.push((stage, std::mem::replace(&mut current, next)));
    }
    records
}

/// The pass outputs `stage` makes of `inputs`, as the next stage's input
/// records, over a fresh overlay of `store` for each.
fn pass_outputs(
    stage: StageKind,
    store: &MemStore,
    inputs: &[Record],
    registry: &SchemaRegistry,
    ctx: &Context,
) -> Vec<Record> {
    let watermark: Vec<RefOffset> = Vec::new();
    let mut next = Vec::new();
    for record in inputs {
        let inputs = Inputs {
            stage,
            record,
            registry,
            ref_watermark: &watermark,
            record_limit: clearing_pipeline::bus::local::MAX_RECORD_BYTES,
        };
        let (processed, _) = run_dry(store, |t| process(&inputs, t, ctx));
        for output in processed.outputs {
            if output.topic == stage.pass_topic() {
                next.push(Record {
                    topic: output.topic.to_string(),
                    partition: 0,
                    offset: next.len() as u64,
                    timestamp_millis: output.timestamp_millis,
                    key: output.key,
                    value: output.value,
                    tombstone: false,
                });
            }
        }
    }
    next
}

/// Cycles through `0..n`.
fn cycle(n: usize) -> impl FnMut() -> usize {
    let mut i = 0;
    move || {
        let k = i;
        i = (i + 1) % n;
        k
    }
}

fn with_ctx<T>(f: &Fixture, verifier: &dyn SignatureVerifier, g: impl FnOnce(&Context) -> T) -> T {
    let refs = RefView {
        signatures: verifier,
        institutions: &f.generated.institutions,
    };
    let ctx = Context {
        rules: &f.rules,
        refs: &refs,
        pseudonyms: &f.pseudonyms,
    };
    g(&ctx)
}

fn bench_validation(c: &mut Criterion, f: &Fixture) {
    let pki_verifier = PkiVerifier {
        pki: &f.generated.pki,
        registry: &f.registry,
    };
    let mut group = c.benchmark_group("validation");
    group.throughput(Throughput::Elements(1));
    let n = f.claims.len();
    with_ctx(f, &TrustUnsigned, |ctx| {
        let mut next = cycle(n);
        group.bench_function("trust_unsigned", |b| {
            b.iter(|| {
                let mut txn = StateTxn::new(&f.sled.validation);
                black_box(
                    validation::validate(&f.claims[next()], Receipt::Unstamped, &mut txn, ctx)
                        .expect("store"),
                )
            })
        });
    });
    with_ctx(f, &pki_verifier, |ctx| {
        let mut next = cycle(n);
        group.bench_function("pki", |b| {
            b.iter(|| {
                let mut txn = StateTxn::new(&f.sled.validation);
                black_box(
                    validation::validate(&f.claims[next()], Receipt::Unstamped, &mut txn, ctx)
                        .expect("store"),
                )
            })
        });
        let mut next = cycle(n);
        group.bench_function("decode+pki", |b| {
            b.iter(|| {
                let submitted: FseSubmitted = f
                    .registry
                    .decode_single(&f.measured.submitted[next()].0)
                    .expect("decode");
                let input = input_from_submitted(&submitted);
                let mut txn = StateTxn::new(&f.sled.validation);
                black_box(
                    validation::validate(&input, Receipt::Unstamped, &mut txn, ctx).expect("store"),
                )
            })
        });
    });
    // What the signature check adds around the crypto: FseInput → FseSubmitted,
    // clone without signature, single-object encode (PkiVerifier::check).
    let mut next = cycle(n);
    group.bench_function("canonical_bytes_rebuild", |b| {
        b.iter(|| {
            let wire = submitted_from_input(&f.claims[next()]).expect("wire");
            black_box(canonical_bytes(&f.registry, &wire))
        })
    });
    let mut next = cycle(f.measured.raw.len());
    group.bench_function("raw_pki_verify", |b| {
        b.iter(|| {
            let s = &f.measured.raw[next()];
            black_box(
                f.generated
                    .pki
                    .verify(&s.cert, &s.rpps, &s.alg, s.date, &s.message, &s.signature)
                    .is_ok(),
            )
        })
    });
    group.finish();
    with_ctx(f, &pki_verifier, |ctx| interleaved_ratio(f, ctx));
}

/// Validation against the raw limit, interleaved in blocks of the same
/// claims so that load from other processes hits both sides alike: the
/// share of the raw verification rate that validation reaches, per round.
fn interleaved_ratio(f: &Fixture, ctx: &Context) {
    const ROUNDS: usize = 40;
    const BLOCK: usize = 150;
    let signed: Vec<usize> = (0..f.claims.len())
        .filter(|&i| f.claims[i].signature.is_some())
        .collect();
    assert_eq!(signed.len(), f.measured.raw.len());
    let (mut validate_only, mut full) = (Vec::new(), Vec::new());
    let mut k = 0;
    for _ in 0..ROUNDS {
        let block: Vec<usize> = (0..BLOCK).map(|j| (k + j) % signed.len()).collect();
        k += BLOCK;
        let started = Instant::now();
        for &j in &block {
            let s = &f.measured.raw[j];
            black_box(
                f.generated
                    .pki
                    .verify(&s.cert, &s.rpps, &s.alg, s.date, &s.message, &s.signature)
                    .is_ok(),
            );
        }
        let raw = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for &j in &block {
            let mut txn = StateTxn::new(&f.sled.validation);
            black_box(
                validation::validate(&f.claims[signed[j]], Receipt::Unstamped, &mut txn, ctx)
                    .expect("store"),
            );
        }
        let validated = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for &j in &block {
            let submitted: FseSubmitted = f
                .registry
                .decode_single(&f.measured.submitted[signed[j]].0)
                .expect("decode");
            let input = input_from_submitted(&submitted);
            let mut txn = StateTxn::new(&f.sled.validation);
            black_box(
                validation::validate(&input, Receipt::Unstamped, &mut txn, ctx).expect("store"),
            );
        }
        let decoded = started.elapsed().as_secs_f64();
        validate_only.push(raw / validated);
        full.push(raw / decoded);
    }
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        format!(
            "median {:.1} % (rounds: min {:.1} %, max {:.1} %)",
            100.0 * v[v.len() / 2],
            100.0 * v[0],
            100.0 * v[v.len() - 1]
        )
    };
    eprintln!(
        "validation rate / raw Pki::verify rate, interleaved, {ROUNDS} rounds of {BLOCK} claims:"
    );
    eprintln!(
        "  validate (PkiVerifier)        {}",
        summary(&mut validate_only)
    );
    eprintln!("  decode + validate (as staged) {}", summary(&mut full));
}

fn bench_stages(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("stages");
    group.throughput(Throughput::Elements(1));
    with_ctx(f, &TrustUnsigned, |ctx| {
        for (name, store) in [
            ("entitlement/sled", &f.sled.entitlement as &dyn StateStore),
            ("entitlement/mem", &f.mem.entitlement),
        ] {
            let mut next = cycle(f.measured.validated.len());
            group.bench_function(name, |b| {
                b.iter_batched(
                    || f.measured.validated[next()].clone(),
                    |v| {
                        let mut txn = StateTxn::new(store);
                        entitlement::entitle(v, &mut txn, ctx).expect("store")
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        let mut next = cycle(f.measured.entitled.len());
        group.bench_function("routing", |b| {
            b.iter_batched(
                || f.measured.entitled[next()].clone(),
                |e| {
                    let mut txn = StateTxn::new(&f.sled.routing);
                    routing::route(e, &mut txn, ctx).expect("store")
                },
                BatchSize::SmallInput,
            )
        });
        for (name, store) in [
            (
                "reimbursement/sled",
                &f.sled.reimbursement as &dyn StateStore,
            ),
            ("reimbursement/mem", &f.mem.reimbursement),
        ] {
            let mut next = cycle(f.measured.routed.len());
            group.bench_function(name, |b| {
                b.iter_batched(
                    || f.measured.routed[next()].clone(),
                    |r| {
                        let mut txn = StateTxn::new(store);
                        reimbursement::reimburse(r, &mut txn, ctx).expect("store")
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    });
    group.finish();
}

/// `Adjudicator::decide` over every claim in file order, from fresh state
/// (rights and institutions loaded, untimed) each time the claims run out.
fn bench_adjudicate(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("adjudicate");
    group.throughput(Throughput::Elements(1));
    let fresh = |pki: bool| {
        let verifier: Box<dyn SignatureVerifier> = if pki {
            Box::new(OwnedPkiVerifier::new(f.generated.pki.clone()).expect("registry"))
        } else {
            Box::new(TrustUnsigned)
        };
        let mut adjudicator = Adjudicator::new(f.rules.clone(), f.pseudonyms.clone(), verifier);
        for line in &f.generated.rights_lines {
            adjudicator.load_rights_line(line).expect("rights");
        }
        for line in &f.generated.institution_lines {
            adjudicator
                .load_institution_line(line)
                .expect("institution");
        }
        adjudicator
    };
    for (name, pki) in [("decide/trust_unsigned", false), ("decide/pki", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let mut adjudicator = fresh(pki);
                    let k = left.min(f.generated.all.len());
                    let started = Instant::now();
                    for input in &f.generated.all[..k] {
                        black_box(adjudicator.decide(input).expect("store"));
                    }
                    total += started.elapsed();
                    left -= k;
                }
                total
            })
        });
    }
    group.finish();
}

/// The runtime's per-record work without I/O: decode, convert, the stage,
/// the output event, encode (`runtime::process::process`), over sled state.
fn bench_process(c: &mut Criterion, f: &Fixture) {
    let pki_verifier = PkiVerifier {
        pki: &f.generated.pki,
        registry: &f.registry,
    };
    let mut group = c.benchmark_group("process");
    group.throughput(Throughput::Elements(1));
    let watermark: Vec<RefOffset> = Vec::new();
    with_ctx(f, &pki_verifier, |ctx| {
        for (stage, records) in &f.records {
            let store: &dyn StateStore = f.sled.of(*stage);
            let mut next = cycle(records.len());
            group.bench_function(stage.name(), |b| {
                b.iter(|| {
                    let inputs = Inputs {
                        stage: *stage,
                        record: &records[next()],
                        registry: &f.registry,
                        ref_watermark: &watermark,
                        record_limit: clearing_pipeline::bus::local::MAX_RECORD_BYTES,
                    };
                    let mut txn = StateTxn::new(store);
                    black_box(process(&inputs, &mut txn, ctx).expect("store"))
                })
            });
        }
    });
    group.finish();
}

/// A duplicate-check key shaped like the pipeline's (`dup/<pseudonym>/<fse id>`),
/// spread like a keyed hash.
fn dup_key(i: u64) -> Vec<u8> {
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut words = [0u64; 4];
    for w in &mut words {
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        *w = x;
    }
    format!(
        "dup/k1-{:016x}{:016x}{:016x}{:016x}/12345678-{:09}",
        words[0],
        words[1],
        words[2],
        words[3],
        i % 1_000_000_000
    )
    .into_bytes()
}

fn bench_sled(c: &mut Criterion, f: &Fixture) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = sled_of_realistic_size(dir.path(), f);
    // 1,000 typical writes: the measured claims' validation and
    // reimbursement writes (duplicate-check ids, counters, balances).
    let batch: WriteBatch = f.measured.writes.iter().take(1000).cloned().collect();
    let bytes: usize = batch
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    eprintln!(
        "sled batch: {} writes, {} bytes of keys and values",
        batch.len(),
        bytes
    );
    let mut group = c.benchmark_group("sled");
    group.sample_size(20);
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("apply_1000", |b| {
        b.iter(|| store.apply(&batch).expect("apply"))
    });
    group.bench_function("apply_1000+flush", |b| {
        b.iter(|| {
            store.apply(&batch).expect("apply");
            store.flush().expect("flush")
        })
    });
    group.bench_function("flush_only_clean", |b| {
        b.iter(|| store.flush().expect("flush"))
    });
    bench_sled_new_ids(&mut group, &store);
    group.sample_size(100);
    group.throughput(Throughput::Elements(1));
    let hits: Vec<Vec<u8>> = batch.keys().cloned().collect();
    let mut next = cycle(hits.len());
    group.bench_function("get_hit", |b| {
        b.iter(|| black_box(store.get(&hits[next()]).expect("get")))
    });
    let misses: Vec<Vec<u8>> = (0..10_000u64).map(|i| dup_key(u64::MAX / 4 + i)).collect();
    let mut next = cycle(misses.len());
    group.bench_function("get_miss", |b| {
        b.iter(|| black_box(store.get(&misses[next()]).expect("get")))
    });
    group.finish();
}

/// A tree of realistic size in `dir`: 200,000 duplicate-check keys, then the
/// history state of every stage.
fn sled_of_realistic_size(dir: &Path, f: &Fixture) -> SledStore {
    let store = SledStore::open(dir, "p0").expect("sled");
    for chunk in (0..200_000u64).collect::<Vec<_>>().chunks(10_000) {
        let batch: WriteBatch = chunk
            .iter()
            .map(|&i| (dup_key(u64::MAX / 2 + i), Some(b"2025-01-01".to_vec())))
            .collect();
        store.apply(&batch).expect("apply");
    }
    for from in [&f.mem.validation, &f.mem.entitlement, &f.mem.reimbursement] {
        store.apply(&all_writes(from)).expect("apply");
    }
    store.flush().expect("flush");
    store
}

/// The validation stage's pattern per batch, on a growing tree: 1,000
/// duplicate checks (misses), then the 1,000 new ids in one batch, flushed.
fn bench_sled_new_ids(group: &mut BenchmarkGroup<'_, WallTime>, store: &SledStore) {
    let mut fresh = 0u64;
    let mut new_ids = || -> WriteBatch {
        (0..1000)
            .map(|_| {
                fresh += 1;
                (dup_key(fresh), Some(b"2025-01-01".to_vec()))
            })
            .collect()
    };
    group.throughput(Throughput::Elements(1000));
    group.bench_function("apply_1000_new", |b| {
        b.iter_batched(
            &mut new_ids,
            |batch| store.apply(&batch).expect("apply"),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("apply_1000_new+flush", |b| {
        b.iter_batched(
            &mut new_ids,
            |batch| {
                store.apply(&batch).expect("apply");
                store.flush().expect("flush")
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("validation_cycle_1000", |b| {
        b.iter_batched(
            &mut new_ids,
            |batch| {
                for key in batch.keys() {
                    black_box(store.get(key).expect("get"));
                }
                store.apply(&batch).expect("apply");
                store.flush().expect("flush")
            },
            BatchSize::PerIteration,
        )
    });
}

fn bench_local_log(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = LocalLog::open(dir.path()).expect("log");
    for name in ["append", "read"] {
        bus.ensure_topic(&topic(name, 1)).expect("topic");
    }
    let key = vec![b'k'; 43];
    let value = vec![0x5a_u8; 600];
    let mut producer = bus.producer().expect("producer");
    // A read partition of 100,000 records.
    for _ in 0..100_000 {
        producer.send("read", 0, &key, &value, 0).expect("send");
    }
    producer.flush().expect("flush");
    let mut group = c.benchmark_group("local_log");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1000));
    group.bench_function("append_1000x600B", |b| {
        b.iter(|| {
            for _ in 0..1000 {
                producer.send("append", 0, &key, &value, 0).expect("send");
            }
        })
    });
    group.bench_function("append_1000x600B+flush", |b| {
        b.iter(|| {
            for _ in 0..1000 {
                producer.send("append", 0, &key, &value, 0).expect("send");
            }
            producer.flush().expect("flush")
        })
    });
    let (_touched, mut producer12) =
        twelve_partitions_touched(&dir.path().join("touched"), &key, &value);
    // Each flush syncs all 12, with one record new in one of them.
    group.throughput(Throughput::Elements(1));
    group.bench_function("flush_12_touched_1_dirty", |b| {
        b.iter(|| {
            producer12.send("t", 0, &key, &value, 0).expect("send");
            producer12.flush().expect("flush")
        })
    });
    group.throughput(Throughput::Elements(1000));
    let mut from = 0u64;
    group.bench_function("read_1000", |b| {
        b.iter(|| {
            from = (from + 7_919) % 99_000;
            black_box(bus.read("read", 0, from, 1000).expect("read"))
        })
    });
    group.throughput(Throughput::Elements(1));
    let mut consumer = bus.consumer("g").expect("consumer");
    consumer.subscribe(&["read"]).expect("subscribe");
    let mut offset = 0u64;
    group.bench_function("group_commit", |b| {
        b.iter(|| {
            offset += 1;
            consumer
                .commit(&[("read".to_string(), 0, offset)])
                .expect("commit")
        })
    });
    group.finish();
}

fn topic(name: &str, partitions: u32) -> TopicSpec {
    TopicSpec {
        name: name.into(),
        partitions,
        compacted: false,
        retention_ms: None,
    }
}

/// A stage's producer after a few batches: 12 partitions touched (pass,
/// rejected and changelog topics x 4 partitions); a flush syncs them all.
fn twelve_partitions_touched(
    dir: &Path,
    key: &[u8],
    value: &[u8],
) -> (std::sync::Arc<LocalLog>, Box<dyn BusProducer>) {
    let touched = LocalLog::open(dir).expect("log");
    touched.ensure_topic(&topic("t", 12)).expect("topic");
    let mut producer = touched.producer().expect("producer");
    for p in 0..12 {
        producer.send("t", p, key, value, 0).expect("send");
    }
    producer.flush().expect("flush");
    (touched, producer)
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    bench_validation(c, &f);
    bench_stages(c, &f);
    bench_process(c, &f);
    bench_adjudicate(c, &f);
    bench_sled(c, &f);
    bench_local_log(c);
}

criterion_group!(stages, benches);
criterion_main!(stages);
