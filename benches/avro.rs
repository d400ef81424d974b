//! Avro encode/decode of a ~500-byte `fse.submitted` body: our hand-written
//! codec against apache-avro 0.21's serde path (`to_value` + `to_avro_datum`,
//! `from_avro_datum` + `from_value`), the path design.md §7 measured.
//! Figures in docs/schemas.md. Run: `cargo bench --bench avro`.

use std::hint::black_box;

use apache_avro::Schema;
use chrono::NaiveDate;
use clearing_pipeline::events::codec::{AvroRecord, decode_body, encode_body};
use clearing_pipeline::events::model::*;
use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// A GP consultation with pharmacy lines and an RSA-2048 signature.
fn claim() -> FseSubmitted {
    let act = |code: &str, charged_cents, product: Option<&str>| ActLineRec {
        code: code.to_owned(),
        quantity: 1,
        coefficient_hundredths: 100,
        charged_cents,
        complement: None,
        ald_related: false,
        base_cents: Some(charged_cents),
        product: product.map(str::to_owned),
        unit_price_cents: product.map(|_| charged_cents),
        leg: None,
        prescription: None,
    };
    FseSubmitted {
        fse_id: "12345678-000000042".to_owned(),
        received_at_millis: 1_737_364_443_000,
        received_offset_minutes: 60,
        care_date: date(2025, 1, 20),
        professional: ProfessionalRec {
            rpps: "10000123454".to_owned(),
            category: Category::Gp,
            sector: SectorSymbol::S1,
            optam: false,
            billing: None,
        },
        beneficiary: Some(BeneficiaryRec {
            nir: "185057800604830".to_owned(),
            birth_date: date(1985, 5, 12),
            rank: 1,
        }),
        ehic: None,
        pathway: Some(Pathway::Mt),
        tiers_payant: TiersPayantRec {
            amo: true,
            amc: false,
        },
        acts: vec![
            act("G", 3_000, None),
            act("PH4", 1_245, Some("3400930000001")),
            act("PH7", 2_390, Some("3400930000002")),
            act("PH2", 715, Some("3400930000003")),
            act("MCG", 500, None),
        ],
        signature: Some(SignatureRec {
            alg: "rsa-pkcs1-sha256".to_owned(),
            cert: "CPS-000123".to_owned(),
            value: (0..=255u8).collect(),
        }),
        ingested_at_millis: Some(1_737_364_500_000),
    }
}

// The same record for apache-avro's serde path: the shapes its `to_value`
// and `from_value` expect (enums by symbol, dates as days, bytes as bytes).

#[derive(Serialize, Deserialize)]
enum CategoryS {
    #[serde(rename = "GP")]
    Gp,
}

#[derive(Serialize, Deserialize)]
enum SectorS {
    S1,
}

#[derive(Serialize, Deserialize)]
enum PathwayS {
    #[serde(rename = "MT")]
    Mt,
}

#[derive(Serialize, Deserialize)]
enum ComplementS {
    #[serde(rename = "NIGHT")]
    Night,
}

#[derive(Serialize, Deserialize)]
struct ProfessionalS {
    rpps: String,
    category: CategoryS,
    sector: SectorS,
    optam: bool,
}

#[derive(Serialize, Deserialize)]
struct BeneficiaryS {
    nir: String,
    birth_date: i32,
    rank: i32,
}

#[derive(Serialize, Deserialize)]
struct EhicS {
    country: String,
    institution_id: String,
    card_id: String,
    personal_id: String,
    surname: String,
    given_names: String,
    birth_date: i32,
    expiry: i32,
}

#[derive(Serialize, Deserialize)]
struct TiersPayantS {
    amo: bool,
    amc: bool,
}

#[derive(Serialize, Deserialize)]
struct ActLineS {
    code: String,
    quantity: i32,
    coefficient_hundredths: i32,
    charged_cents: i64,
    complement: Option<ComplementS>,
    ald_related: bool,
    base_cents: Option<i64>,
    product: Option<String>,
    unit_price_cents: Option<i64>,
    leg: Option<i32>,
    /// The bench's claims carry none (`null`).
    prescription: Option<()>,
}

#[derive(Serialize, Deserialize)]
struct SignatureS {
    alg: String,
    cert: String,
    #[serde(with = "apache_avro::serde_avro_bytes")]
    value: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct FseSubmittedS {
    fse_id: String,
    received_at_millis: i64,
    received_offset_minutes: i32,
    care_date: i32,
    professional: ProfessionalS,
    beneficiary: Option<BeneficiaryS>,
    ehic: Option<EhicS>,
    pathway: Option<PathwayS>,
    tiers_payant: TiersPayantS,
    acts: Vec<ActLineS>,
    signature: Option<SignatureS>,
    ingested_at_millis: Option<i64>,
}

fn days(d: NaiveDate) -> i32 {
    clearing_pipeline::events::codec::date_to_days(d)
}

/// The serde mirror of `claim()` (its enums have the one symbol used).
fn claim_serde(c: &FseSubmitted) -> FseSubmittedS {
    FseSubmittedS {
        fse_id: c.fse_id.clone(),
        received_at_millis: c.received_at_millis,
        received_offset_minutes: c.received_offset_minutes,
        care_date: days(c.care_date),
        professional: ProfessionalS {
            rpps: c.professional.rpps.clone(),
            category: CategoryS::Gp,
            sector: SectorS::S1,
            optam: c.professional.optam,
        },
        beneficiary: c.beneficiary.as_ref().map(|b| BeneficiaryS {
            nir: b.nir.clone(),
            birth_date: days(b.birth_date),
            rank: b.rank,
        }),
        ehic: None,
        pathway: Some(PathwayS::Mt),
        tiers_payant: TiersPayantS {
            amo: c.tiers_payant.amo,
            amc: c.tiers_payant.amc,
        },
        acts: c
            .acts
            .iter()
            .map(|a| ActLineS {
                code: a.code.clone(),
                quantity: a.quantity,
                coefficient_hundredths: a.coefficient_hundredths,
                charged_cents: a.charged_cents,
                complement: None,
                ald_related: a.ald_related,
                base_cents: a.base_cents,
                product: a.product.clone(),
                unit_price_cents: a.unit_price_cents,
                leg: a.leg,
                prescription: None,
            })
            .collect(),
        signature: c.signature.as_ref().map(|s| SignatureS {
            alg: s.alg.clone(),
            cert: s.cert.clone(),
            value: s.value.clone(),
        }),
        ingested_at_millis: c.ingested_at_millis,
    }
}

fn bench(c: &mut Criterion) {
    let schema = Schema::parse_str(FseSubmitted::SCHEMA_JSON).expect("schema");
    let value = claim();
    let mirror = claim_serde(&value);
    let ours = encode_body(&value);
    let theirs =
        apache_avro::to_avro_datum(&schema, apache_avro::to_value(&mirror).expect("to_value"))
            .expect("apache-avro encodes");
    assert_eq!(ours, theirs, "the two paths must write the same bytes");
    eprintln!("fse.submitted body: {} bytes", ours.len());

    let mut group = c.benchmark_group("fse.submitted");
    group.bench_function("encode/ours", |b| b.iter(|| encode_body(black_box(&value))));
    group.bench_function("encode/apache-avro", |b| {
        b.iter(|| {
            let v = apache_avro::to_value(black_box(&mirror)).expect("to_value");
            apache_avro::to_avro_datum(&schema, v).expect("encode")
        })
    });
    group.bench_function("decode/ours", |b| {
        b.iter(|| decode_body::<FseSubmitted>(black_box(&ours)).expect("decode"))
    });
    group.bench_function("decode/apache-avro", |b| {
        b.iter(|| {
            let v = apache_avro::from_avro_datum(&schema, &mut black_box(&ours[..]), None)
                .expect("decode");
            apache_avro::from_value::<FseSubmittedS>(&v).expect("from_value")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
