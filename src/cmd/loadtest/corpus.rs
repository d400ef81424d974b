//! The claims a load test sends: a `clearing gen` data set (generated once and
//! cached, since signing costs far more than verifying), and beside it the
//! same claims already encoded for `fse.submitted` (`submitted.bin`), so the
//! feeder streams ready records and spends next to nothing per claim.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clearing_pipeline::adjudicate::FSE_OBJECTS;
use clearing_pipeline::clock::IngestClock;
use clearing_pipeline::domain::{FseInput, json};
use clearing_pipeline::events::convert::submitted_from_input;
use clearing_pipeline::events::model::FseSubmitted;
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::runtime::ingest::fse_key;

use crate::cmd::args::RulesArgs;
use crate::cmd::for_each_line;
use crate::cmd::gen_data::{GenArgs, generate};

pub(super) const WIRE_FILE: &str = "submitted.bin";
pub(super) const WIRE_MAGIC: &[u8; 4] = b"CLW1";
/// The share of professionals signing with RSA-2048 in `clearing gen` and `demo`.
pub const RSA_PER_MILLE: u32 = 100;

pub struct Corpus {
    pub dir: PathBuf,
    pub claims: u64,
    pub reused: bool,
    pub generate_seconds: Option<f64>,
}

/// One claim, ready to send.
pub struct WireRecord {
    pub fse_id: String,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub timestamp: i64,
}

impl WireRecord {
    /// Sends it to `fse.submitted` (of `partitions` partitions) under its
    /// key, as the front door would.
    pub fn send(
        &self,
        producer: &mut dyn clearing_pipeline::bus::BusProducer,
        partitions: u32,
    ) -> Result<(), clearing_pipeline::bus::BusError> {
        let partition = clearing_pipeline::runtime::ingest::partition_of(&self.key, partitions);
        producer.send(
            clearing_pipeline::topics::FSE_SUBMITTED,
            partition,
            &self.key,
            &self.value,
            self.timestamp,
        )
    }
}

pub(super) fn cache_root() -> PathBuf {
    match std::env::var_os("CLEARING_LOADTEST_CACHE") {
        Some(dir) => dir.into(),
        None => clearing_pipeline::synth::default_key_cache()
            .and_then(|keys| keys.parent().map(|p| p.join("loadtest")))
            .unwrap_or_else(|| std::env::temp_dir().join("clearing-loadtest")),
    }
}

fn manifest_claims(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("claims")?.as_u64()
}

/// The smallest cached corpus of `seed` with at least `needed` claims. A run
/// sends its first claims; the population is the larger corpus's (the
/// generator scales the world with the claim count).
fn cached(seed: u64, needed: u64) -> Option<PathBuf> {
    let prefix = format!("corpus-seed{seed}-");
    std::fs::read_dir(cache_root())
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let size: u64 = entry
                .file_name()
                .to_str()?
                .strip_prefix(&prefix)?
                .parse()
                .ok()?;
            let dir = entry.path();
            (size >= needed && manifest_claims(&dir).is_some()).then_some((size, dir))
        })
        .min_by_key(|(size, _)| *size)
        .map(|(_, dir)| dir)
}

/// The corpus in `dir` (generated there when it holds none), or a cached one
/// of `seed` with at least `needed` claims.
pub fn prepare(dir: Option<&Path>, seed: u64, needed: u64) -> Result<Corpus> {
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => cached(seed, needed)
            .unwrap_or_else(|| cache_root().join(format!("corpus-seed{seed}-{needed}"))),
    };
    if let Some(claims) = manifest_claims(&dir)
        && dir.join("claims.jsonl").exists()
    {
        return Ok(Corpus {
            dir,
            claims,
            reused: true,
            generate_seconds: None,
        });
    }
    eprintln!(
        "loadtest: generating a corpus of {needed} signed claims into {} (once; reused by later runs)",
        dir.display()
    );
    let args = GenArgs {
        seed,
        claims: usize::try_from(needed).context("corpus size")?,
        out: dir.clone(),
        professionals: None,
        beneficiaries: None,
        bad_per_mille: 20,
        rsa_per_mille: RSA_PER_MILLE,
        threads: None,
        rules: RulesArgs::default(),
    };
    let started = Instant::now();
    let (manifest, _) = generate(&args)?;
    Ok(Corpus {
        dir,
        claims: manifest.claims as u64,
        reused: false,
        generate_seconds: Some(started.elapsed().as_secs_f64()),
    })
}

pub(super) fn put(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(&(bytes.len() as u32).to_be_bytes())?;
    out.write_all(bytes)
}

fn take(input: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut bytes = vec![0u8; u32::from_be_bytes(len) as usize];
    input.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

impl Corpus {
    pub fn claims_path(&self) -> PathBuf {
        self.dir.join("claims.jsonl")
    }

    /// Writes `submitted.bin` unless it is there, newer than the claims, and
    /// keyed with the same pseudonym key (its first record's key is checked).
    pub fn ensure_wire(&self, registry: &SchemaRegistry, pseudonyms: &PseudonymKey) -> Result<()> {
        let path = self.dir.join(WIRE_FILE);
        if self.wire_is_current(&path, registry, pseudonyms) {
            return Ok(());
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut out =
            BufWriter::new(File::create(&tmp).with_context(|| tmp.display().to_string())?);
        out.write_all(WIRE_MAGIC)?;
        for_each_line(&self.claims_path(), |_, line| {
            let input: FseInput = json::from_value(&serde_json::from_str(line)?, FSE_OBJECTS)?;
            let mut fse = submitted_from_input(&input)?;
            // Synthetic claims are dated in the past: the front door's stamp
            // is their own receipt time (docs/architecture.md, "The insurer's
            // clock"), which moves each partition's clock and its retention.
            let stamp = IngestClock::Simulated.stamp(&fse);
            fse.ingested_at_millis = Some(stamp);
            put(&mut out, fse.fse_id.as_bytes())?;
            put(&mut out, &fse_key(&fse, pseudonyms))?;
            put(&mut out, &registry.encode_single(&fse))?;
            out.write_all(&stamp.to_be_bytes())?;
            Ok(())
        })?;
        out.flush()?;
        drop(out);
        std::fs::rename(&tmp, &path).with_context(|| path.display().to_string())?;
        Ok(())
    }

    fn wire_is_current(
        &self,
        path: &Path,
        registry: &SchemaRegistry,
        pseudonyms: &PseudonymKey,
    ) -> bool {
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        match (modified(path), modified(&self.claims_path())) {
            (Some(wire), Some(claims)) if wire >= claims => {}
            _ => return false,
        }
        let Ok(mut reader) = WireReader::open(path) else {
            return false;
        };
        match reader.next_record() {
            Ok(Some(first)) => registry
                .decode_single::<FseSubmitted>(&first.value)
                // A wire file written before the stamp is rebuilt.
                .is_ok_and(|fse| {
                    fse_key(&fse, pseudonyms) == first.key && fse.ingested_at_millis.is_some()
                }),
            _ => false,
        }
    }

    pub fn wire(&self) -> Result<WireReader> {
        WireReader::open(&self.dir.join(WIRE_FILE))
    }
}

pub struct WireReader {
    input: BufReader<File>,
}

impl WireReader {
    pub(super) fn open(path: &Path) -> Result<WireReader> {
        let mut input = BufReader::with_capacity(
            1 << 20,
            File::open(path).with_context(|| path.display().to_string())?,
        );
        let mut magic = [0u8; 4];
        input.read_exact(&mut magic)?;
        if &magic != WIRE_MAGIC {
            bail!("{}: not a loadtest wire file", path.display());
        }
        Ok(WireReader { input })
    }

    /// The next claim; `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<WireRecord>> {
        let Some(fse_id) = take(&mut self.input)? else {
            return Ok(None);
        };
        let (Some(key), Some(value)) = (take(&mut self.input)?, take(&mut self.input)?) else {
            bail!("wire file: truncated record");
        };
        let mut timestamp = [0u8; 8];
        self.input.read_exact(&mut timestamp)?;
        Ok(Some(WireRecord {
            fse_id: String::from_utf8(fse_id).context("wire file: FSE id")?,
            key,
            value,
            timestamp: i64::from_be_bytes(timestamp),
        }))
    }
}
