//! The synthetic world: a health PKI, professionals of every category, a
//! population with rights, and foreign institutions for EHIC visitors.
//! Every draw comes from a stream of [`Rng`] named by what it draws, so
//! adding claims never changes the world, and the world never depends on
//! thread scheduling.

use chrono::{Datelike, Duration, NaiveDate};

use super::rng::Rng;
use crate::domain::Category;
use crate::domain::rights::{
    AmcPeriod, CoveragePeriod, GpPeriod, LocalRegime, Period, RightsInput,
};
use crate::events::model::BillingRec;
use crate::ids::{Nir, Rpps};
use crate::pki::{Certificate, SignatureAlg, SigningKey, certificate_for};
use crate::refdata::EuInstitutionInput;

/// Streams of the world's draws.
const STREAM_PROFESSIONALS: u64 = 1;
const STREAM_POPULATION: u64 = 2;
const STREAM_KEYS: u64 = 3;

pub const ISSUER: &str = "IGC-SANTE-ROOT";

/// Enough professionals for one of every category.
pub const MIN_PROFESSIONALS: usize = CATEGORY_SHARES.len();

/// A professional, with the key of the card that signs their FSEs.
pub struct Professional {
    pub rpps: Rpps,
    pub category: Category,
    pub sector: &'static str,
    pub optam: bool,
    pub billing_number: String,
    /// The AM number or FINESS their FSEs are billed under, if not the
    /// RPPS ([`super::billing`]).
    pub billing: Option<BillingRec>,
    pub key: SigningKey,
    pub certificate: Certificate,
    /// Set for a few: revoked from this date (bad claims use it).
    pub revoked_on: Option<NaiveDate>,
}

/// A beneficiary of the French scheme.
pub struct Beneficiary {
    pub rights: RightsInput,
}

/// A visitor's card issuer.
pub struct Institution {
    pub country: &'static str,
    pub institution_id: String,
    pub name: String,
}

pub struct World {
    pub professionals: Vec<Professional>,
    /// Indices into `professionals`, by category.
    pub by_category: Vec<(Category, Vec<usize>)>,
    pub beneficiaries: Vec<Beneficiary>,
    pub institutions: Vec<Institution>,
    pub first_care_date: NaiveDate,
    pub last_care_date: NaiveDate,
}

/// Shares of professionals by category (per mille of the professionals).
const CATEGORY_SHARES: [(Category, u32); 10] = [
    (Category::Gp, 300),
    (Category::Specialist, 150),
    (Category::Dentist, 80),
    (Category::Midwife, 20),
    (Category::Nurse, 160),
    (Category::Physiotherapist, 110),
    (Category::Pharmacist, 110),
    (Category::Laboratory, 25),
    (Category::Radiology, 25),
    (Category::Transport, 20),
];

fn category_digit(category: Category) -> u32 {
    match category {
        Category::Gp | Category::Specialist | Category::Radiology => 1,
        Category::Pharmacist | Category::Transport => 2,
        Category::Laboratory => 3,
        Category::Dentist => 4,
        Category::Midwife => 5,
        Category::Nurse => 6,
        Category::Physiotherapist => 7,
        Category::Hospital => 0,
    }
}

/// Departments drawn for NIRs and billing numbers (Corsica included).
const DEPARTMENTS: [&str; 12] = [
    "75", "13", "69", "59", "33", "67", "57", "2A", "2B", "31", "44", "06",
];

pub const VISITOR_INSTITUTIONS: [(&str, &str, &str); 8] = [
    ("DE", "108310400", "AOK Baden-Wuerttemberg"),
    ("DE", "101575519", "Techniker Krankenkasse"),
    ("BE", "BE04117025", "Mutualite chretienne"),
    ("IT", "120201", "ASL Roma 1"),
    ("ES", "ES28INSS", "INSS Madrid"),
    ("NL", "NL00ZKVGZ", "Zorgverzekeraar VGZ"),
    ("UK", "GBNHSBSA01", "NHS Business Services Authority"),
    ("CH", "CH80756123", "Gemeinsame Einrichtung KVG"),
];

/// A signing key from its seed, through an on-disk cache for RSA: a key is a
/// pure function of its seed (`SigningKey::generate`), so the cache, keyed by
/// the seed's digest, can only ever return the key the seed would give.
/// RSA-2048 generation costs ~0.15 s a key; ECDSA keys are not worth caching.
fn cached_key(alg: SignatureAlg, seed: [u8; 32], cache: Option<&std::path::Path>) -> SigningKey {
    let Some(dir) = cache.filter(|_| alg == SignatureAlg::RsaPkcs1Sha256) else {
        return SigningKey::generate(alg, seed);
    };
    use sha2::{Digest, Sha256};
    let name = hex::encode(Sha256::digest(
        [&seed[..], alg.as_str().as_bytes()].concat(),
    ));
    let path = dir.join(format!("{name}.pk8"));
    if let Ok(der) = std::fs::read(&path)
        && let Ok(key) = SigningKey::from_pkcs8_der(alg, &der)
    {
        return key;
    }
    let key = SigningKey::generate(alg, seed);
    // A cache that cannot be written only costs time.
    if std::fs::create_dir_all(dir).is_ok() {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, key.to_pkcs8_der()).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    key
}

pub struct WorldConfig {
    pub seed: u64,
    pub professionals: usize,
    pub beneficiaries: usize,
    /// Per mille of professionals whose card signs with RSA-2048 (CPS3).
    pub rsa_per_mille: u32,
    pub first_care_date: NaiveDate,
    pub last_care_date: NaiveDate,
    /// Where RSA keys are cached (`None`: generate every time).
    pub key_cache: Option<std::path::PathBuf>,
}

fn professional(config: &WorldConfig, index: usize) -> Professional {
    let mut rng = Rng::new(config.seed, (STREAM_PROFESSIONALS << 40) | index as u64);
    let weights: Vec<u32> = CATEGORY_SHARES.iter().map(|(_, w)| *w).collect();
    let drawn = CATEGORY_SHARES[rng.weighted(&weights)].0;
    // The first professionals cover every category, so that every kind of
    // claim has someone to bill it, however small the world.
    let category = CATEGORY_SHARES.get(index).map_or(drawn, |(c, _)| *c);
    // RPPS: "10" + 8 digits of the index + Luhn key: unique per professional.
    let rpps = Rpps::from_body(&format!("10{:08}", index)).unwrap_or_else(|_| unreachable!());
    let (sector, optam) = if category.is_doctor() {
        match rng.weighted(&[700, 180, 110, 10]) {
            0 => ("1", false),
            1 => ("2", true),
            2 => ("2", false),
            _ => ("3", false),
        }
    } else {
        ("1", false)
    };
    let billing_number = format!(
        "{}{}{:05}",
        rng.pick(&DEPARTMENTS).replace('A', "0").replace('B', "1"),
        category_digit(category),
        index % 100_000
    );
    let mut key_rng = Rng::new(config.seed, (STREAM_KEYS << 40) | index as u64);
    let alg = if rng.chance(config.rsa_per_mille) {
        SignatureAlg::RsaPkcs1Sha256
    } else {
        SignatureAlg::EcdsaP256Sha256
    };
    let key = cached_key(alg, key_rng.seed32(), config.key_cache.as_deref());
    let not_before = config.first_care_date - Duration::days(rng.range(30, 1500));
    let not_after = config.last_care_date + Duration::days(rng.range(30, 1500));
    let certificate = certificate_for(
        &key,
        &format!("CPS-{index:07}"),
        rpps.as_str(),
        ISSUER,
        not_before,
        not_after,
    );
    // One in a hundred cards is revoked somewhere in the period.
    let span = (config.last_care_date - config.first_care_date)
        .num_days()
        .max(1);
    let revoked_on = rng
        .chance(10)
        .then(|| config.first_care_date + Duration::days(rng.range(span / 4, span)));
    Professional {
        rpps,
        category,
        sector,
        optam,
        billing_number,
        billing: super::billing::billing_for(index, category),
        key,
        certificate,
        revoked_on,
    }
}

fn nir_for(rng: &mut Rng, birth: NaiveDate, female: bool) -> Nir {
    let department = *rng.pick(&DEPARTMENTS);
    let body = format!(
        "{}{:02}{:02}{}{:03}{:03}",
        if female { 2 } else { 1 },
        birth.year() % 100,
        birth.month(),
        department,
        rng.range(1, 999),
        rng.range(1, 999),
    );
    Nir::from_body(&body).unwrap_or_else(|_| unreachable!("the body is well-formed"))
}

/// A valid NIR no one in the population has: commune 000 is never drawn.
pub fn stranger_nir(rng: &mut Rng, birth: NaiveDate) -> String {
    let body = format!(
        "{}{:02}{:02}75000{:03}",
        1 + rng.below(2),
        birth.year() % 100,
        birth.month(),
        rng.range(1, 999),
    );
    Nir::from_body(&body)
        .map(|n| n.expose().to_string())
        .unwrap_or_else(|_| unreachable!("the body is well-formed"))
}

/// The coverage of a beneficiary covered from `from`: a few end mid-period
/// (after `first`, the first date of care), so that later claims are not covered.
fn coverage_for(rng: &mut Rng, from: NaiveDate, first: NaiveDate) -> CoveragePeriod {
    if rng.chance(15) {
        CoveragePeriod {
            from,
            to: Some(first + Duration::days(rng.range(30, 200))),
            regime: "01".into(),
            fund: format!("{:03}", rng.range(1, 999)),
        }
    } else {
        CoveragePeriod {
            from,
            to: None,
            regime: rng.pick(&["01", "01", "01", "01", "02", "03"]).to_string(),
            fund: format!("{:03}", rng.range(1, 999)),
        }
    }
}

/// The `index`-th beneficiary of a world, alone: a pure function of the seed
/// and index, so a state-scale run can make millions without a world.
pub fn beneficiary(config: &WorldConfig, index: usize, gps: &[String]) -> Beneficiary {
    let mut rng = Rng::new(config.seed, (STREAM_POPULATION << 40) | index as u64);
    // Ages 0–95 on the first date of care, flatter than a real pyramid.
    let age_days = rng.range(0, 95 * 365);
    let birth = config.first_care_date - Duration::days(age_days);
    let female = rng.chance(515);
    let nir = nir_for(&mut rng, birth, female);
    let covered_from = birth.max(NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or(birth));
    let period = |from: NaiveDate, to: Option<NaiveDate>| Period { from, to };
    let first = config.first_care_date;
    let ame = rng.chance(10);
    let coverage = if ame {
        Vec::new()
    } else {
        vec![coverage_for(&mut rng, covered_from, first)]
    };
    let ald = if rng.chance(170) {
        vec![period(first - Duration::days(rng.range(0, 3000)), None)]
    } else {
        Vec::new()
    };
    let css = if rng.chance(100) {
        vec![period(first - Duration::days(rng.range(0, 400)), None)]
    } else {
        Vec::new()
    };
    let age = age_days / 365;
    let maternity = if female && (20..42).contains(&age) && rng.chance(60) {
        let start = first + Duration::days(rng.range(0, 300));
        vec![period(start, Some(start + Duration::days(120)))]
    } else {
        Vec::new()
    };
    let local_regime = rng.chance(40).then_some(LocalRegime::AlsaceMoselle);
    let declared_gp = (!gps.is_empty() && rng.chance(850)).then(|| rng.pick(gps).clone());
    let amc = rng
        .chance(900)
        .then(|| format!("AMC{:06}", rng.range(1, 300)));
    let changes = changes(
        &mut rng,
        config,
        gps,
        declared_gp.as_deref(),
        amc.as_deref(),
    );
    Beneficiary {
        rights: RightsInput {
            nir: nir.expose().to_string(),
            birth_date: birth,
            rank: 1,
            coverage,
            ald,
            css,
            ame: if ame {
                vec![period(first - Duration::days(rng.range(0, 200)), None)]
            } else {
                Vec::new()
            },
            maternity,
            local_regime,
            declared_gp,
            amc,
            declared_gp_periods: changes.gp,
            local_regime_periods: Vec::new(),
            amc_periods: changes.amc,
        },
    }
}

/// Changes of declared GP or AMC during the generated period.
struct Changes {
    gp: Vec<GpPeriod>,
    amc: Vec<AmcPeriod>,
}

/// Some beneficiaries change GP, a few change AMC, on a day of the
/// generated period, so that claims on either side of it are judged
/// against different values. The scalar stays the old value (it holds
/// outside every period); the new one is a period open from the change.
fn changes(
    rng: &mut Rng,
    config: &WorldConfig,
    gps: &[String],
    gp: Option<&str>,
    amc: Option<&str>,
) -> Changes {
    let span = (config.last_care_date - config.first_care_date)
        .num_days()
        .max(1);
    let change_day = |rng: &mut Rng| config.first_care_date + Duration::days(rng.range(1, span));
    let mut out = Changes {
        gp: Vec::new(),
        amc: Vec::new(),
    };
    if let Some(old) = gp
        && rng.chance(150)
    {
        let new = rng.pick(gps);
        if new != old {
            out.gp.push(GpPeriod {
                from: change_day(rng),
                to: None,
                rpps: new.clone(),
            });
        }
    }
    if amc.is_some() && rng.chance(40) {
        out.amc.push(AmcPeriod {
            from: change_day(rng),
            to: None,
            amc: format!("AMC{:06}", rng.range(1, 300)),
        });
    }
    out
}

/// Builds the world; professionals (whose key generation dominates) in parallel.
pub fn build(config: &WorldConfig, threads: usize) -> World {
    let professionals =
        super::parallel_map(config.professionals, threads, |i| professional(config, i));
    let gps: Vec<String> = professionals
        .iter()
        .filter(|p| p.category == Category::Gp)
        .map(|p| p.rpps.as_str().to_string())
        .collect();
    let beneficiaries = super::parallel_map(config.beneficiaries, threads, |i| {
        beneficiary(config, i, &gps)
    });
    let mut by_category: Vec<(Category, Vec<usize>)> = Vec::new();
    for (i, p) in professionals.iter().enumerate() {
        match by_category.iter_mut().find(|(c, _)| *c == p.category) {
            Some((_, list)) => list.push(i),
            None => by_category.push((p.category, vec![i])),
        }
    }
    by_category.sort_by_key(|(c, _)| *c);
    let institutions = VISITOR_INSTITUTIONS
        .iter()
        .map(|(country, id, name)| Institution {
            country,
            institution_id: id.to_string(),
            name: name.to_string(),
        })
        .collect();
    World {
        professionals,
        by_category,
        beneficiaries,
        institutions,
        first_care_date: config.first_care_date,
        last_care_date: config.last_care_date,
    }
}

impl World {
    /// Professionals of a category (never empty for a category of the claim
    /// mix: the first professionals cover every category).
    pub fn of_category(&self, category: Category) -> &[usize] {
        self.by_category
            .iter()
            .find(|(c, _)| *c == category)
            .map_or(&[], |(_, list)| list.as_slice())
    }

    pub fn institution_inputs(&self) -> Vec<EuInstitutionInput> {
        self.institutions
            .iter()
            .map(|i| EuInstitutionInput {
                country: i.country.to_string(),
                institution_id: i.institution_id.clone(),
                name: i.name.clone(),
                acronym: None,
                from: NaiveDate::from_ymd_opt(2004, 6, 1).unwrap_or(self.first_care_date),
                to: None,
            })
            .collect()
    }
}
