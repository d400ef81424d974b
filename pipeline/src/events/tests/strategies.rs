//! Proptest strategies for every event: unicode and empty strings, extreme
//! integers, dates from 1900 to 2100, `None` and `Some`, empty and
//! multi-item arrays.

use std::fmt::Debug;

use chrono::{Days, NaiveDate};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

use crate::events::codec::AvroEnum;
use crate::events::model::*;

pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        "[A-Z0-9-]{1,12}",
        "\\PC{0,10}",
        any::<String>(),
    ]
    .boxed()
}

pub fn opt_text() -> BoxedStrategy<Option<String>> {
    option::of(text()).boxed()
}

pub fn int() -> BoxedStrategy<i32> {
    prop_oneof![
        Just(0),
        Just(i32::MIN),
        Just(i32::MAX),
        -64..64i32,
        any::<i32>()
    ]
    .boxed()
}

pub fn long() -> BoxedStrategy<i64> {
    prop_oneof![
        Just(0),
        Just(i64::MIN),
        Just(i64::MAX),
        -64..64i64,
        any::<i64>()
    ]
    .boxed()
}

pub fn bytes() -> BoxedStrategy<Vec<u8>> {
    vec(any::<u8>(), 0..80).boxed()
}

/// A date from 1900-01-01 to 2100-12-31.
pub fn date() -> BoxedStrategy<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid date");
    let last = NaiveDate::from_ymd_opt(2100, 12, 31).expect("valid date");
    let span = u64::try_from((last - first).num_days()).expect("positive span");
    (0..=span).prop_map(move |d| first + Days::new(d)).boxed()
}

pub fn opt_date() -> BoxedStrategy<Option<NaiveDate>> {
    option::of(date()).boxed()
}

pub fn symbol<E: AvroEnum + Debug>() -> BoxedStrategy<E> {
    select(E::VARIANTS).boxed()
}

fn items<T: Debug + 'static>(item: BoxedStrategy<T>) -> BoxedStrategy<Vec<T>> {
    vec(item, 0..4).boxed()
}

pub fn source_ref() -> BoxedStrategy<SourceRef> {
    (text(), int(), long(), int())
        .prop_map(|(topic, partition, offset, ordinal)| SourceRef {
            topic,
            partition,
            offset,
            ordinal,
        })
        .boxed()
}

pub fn ref_offset() -> BoxedStrategy<RefOffset> {
    (text(), int(), long())
        .prop_map(|(topic, partition, offset)| RefOffset {
            topic,
            partition,
            offset,
        })
        .boxed()
}

pub fn header() -> BoxedStrategy<EventHeader> {
    (
        text(),
        opt_text(),
        text(),
        long(),
        option::of(source_ref()),
        items(ref_offset()),
        text(),
    )
        .prop_map(
            |(
                event_id,
                causation_id,
                correlation_id,
                event_time_millis,
                source,
                ref_watermark,
                rules_version,
            )| EventHeader {
                event_id,
                causation_id,
                correlation_id,
                event_time_millis,
                source,
                ref_watermark,
                rules_version,
            },
        )
        .boxed()
}

pub fn professional() -> BoxedStrategy<ProfessionalRec> {
    (
        text(),
        symbol(),
        symbol(),
        any::<bool>(),
        option::of((symbol(), text())),
    )
        .prop_map(|(rpps, category, sector, optam, billing)| ProfessionalRec {
            rpps,
            category,
            sector,
            optam,
            billing: billing.map(|(kind, id)| BillingRec { kind, id }),
        })
        .boxed()
}

pub fn beneficiary() -> BoxedStrategy<BeneficiaryRec> {
    (text(), date(), int())
        .prop_map(|(nir, birth_date, rank)| BeneficiaryRec {
            nir,
            birth_date,
            rank,
        })
        .boxed()
}

pub fn ehic() -> BoxedStrategy<EhicRec> {
    (
        text(),
        text(),
        text(),
        text(),
        text(),
        text(),
        date(),
        date(),
    )
        .prop_map(
            |(
                country,
                institution_id,
                card_id,
                personal_id,
                surname,
                given_names,
                birth_date,
                expiry,
            )| {
                EhicRec {
                    country,
                    institution_id,
                    card_id,
                    personal_id,
                    surname,
                    given_names,
                    birth_date,
                    expiry,
                }
            },
        )
        .boxed()
}

pub fn act_line() -> BoxedStrategy<ActLineRec> {
    (
        text(),
        int(),
        int(),
        long(),
        option::of(symbol()),
        any::<bool>(),
        option::of(long()),
        opt_text(),
        option::of(long()),
        option::of(int()),
        option::of(prescription()),
    )
        .prop_map(
            |(
                code,
                quantity,
                coefficient_hundredths,
                charged_cents,
                complement,
                ald_related,
                base_cents,
                product,
                unit_price_cents,
                leg,
                prescription,
            )| ActLineRec {
                code,
                quantity,
                coefficient_hundredths,
                charged_cents,
                complement,
                ald_related,
                base_cents,
                product,
                unit_price_cents,
                leg,
                prescription,
            },
        )
        .boxed()
}

pub fn prescription() -> BoxedStrategy<PrescriptionRec> {
    (
        symbol(),
        text(),
        date(),
        opt_text(),
        option::of(int()),
        option::of(symbol()),
        option::of((text(), text(), text())),
        option::of(int()),
    )
        .prop_map(
            |(
                prescriber_kind,
                prescriber_id,
                date,
                number,
                quantity,
                non_substitution,
                foreign,
                renewals,
            )| {
                PrescriptionRec {
                    prescriber_kind,
                    prescriber_id,
                    date,
                    number,
                    quantity,
                    non_substitution,
                    foreign: foreign.map(|(country, id, atc)| ForeignPrescriptionRec {
                        country,
                        id,
                        atc,
                    }),
                    renewals,
                }
            },
        )
        .boxed()
}

pub fn signature() -> BoxedStrategy<SignatureRec> {
    (text(), text(), bytes())
        .prop_map(|(alg, cert, value)| SignatureRec { alg, cert, value })
        .boxed()
}

/// An `fse.submitted` value: the signed form and the insurer's stamp.
pub fn fse_submitted() -> BoxedStrategy<FseSubmitted> {
    (signed_fse(), option::of(long()))
        .prop_map(|(fse, ingested_at_millis)| FseSubmitted {
            ingested_at_millis,
            ..fse
        })
        .boxed()
}

/// The FSE in its signed form, as `fse.validated` and `fse.entitled` carry
/// it: no stamp.
pub fn signed_fse() -> BoxedStrategy<FseSubmitted> {
    (
        text(),
        long(),
        int(),
        date(),
        professional(),
        option::of(beneficiary()),
        option::of(ehic()),
        option::of(symbol()),
        (any::<bool>(), any::<bool>()).prop_map(|(amo, amc)| TiersPayantRec { amo, amc }),
        items(act_line()),
        option::of(signature()),
    )
        .prop_map(
            |(
                fse_id,
                received_at_millis,
                received_offset_minutes,
                care_date,
                professional,
                beneficiary,
                ehic,
                pathway,
                tiers_payant,
                acts,
                signature,
            )| FseSubmitted {
                fse_id,
                received_at_millis,
                received_offset_minutes,
                care_date,
                professional,
                beneficiary,
                ehic,
                pathway,
                tiers_payant,
                acts,
                signature,
                ingested_at_millis: None,
            },
        )
        .boxed()
}

pub fn reason() -> BoxedStrategy<ReasonRec> {
    (text(), symbol(), text(), opt_text(), option::of(int()))
        .prop_map(|(code, stage, message, field, line)| ReasonRec {
            code,
            stage,
            message,
            field,
            line,
        })
        .boxed()
}

pub fn fse_validated() -> BoxedStrategy<FseValidated> {
    (header(), signed_fse(), text(), symbol(), items(reason()))
        .prop_map(
            |(header, fse, beneficiary_key, signature_check, warnings)| FseValidated {
                header,
                fse,
                beneficiary_key,
                signature_check,
                warnings,
            },
        )
        .boxed()
}

pub fn entitlement() -> BoxedStrategy<EntitlementRec> {
    (
        opt_text(),
        opt_text(),
        any::<[bool; 6]>(),
        option::of(symbol()),
        opt_text(),
        opt_text(),
        opt_text(),
    )
        .prop_map(
            |(regime, fund, flags, local_regime, declared_gp, amc, rights_digest)| {
                let [ald, css, ame, maternity, minor, pathway_free] = flags;
                EntitlementRec {
                    regime,
                    fund,
                    ald,
                    css,
                    ame,
                    maternity,
                    minor,
                    pathway_free,
                    local_regime,
                    declared_gp,
                    amc,
                    rights_digest,
                }
            },
        )
        .boxed()
}

pub fn fse_entitled() -> BoxedStrategy<FseEntitled> {
    (fse_validated(), entitlement())
        .prop_map(|(v, entitlement)| FseEntitled {
            header: v.header,
            fse: v.fse,
            beneficiary_key: v.beneficiary_key,
            signature_check: v.signature_check,
            warnings: v.warnings,
            entitlement,
        })
        .boxed()
}

pub fn routing() -> BoxedStrategy<RoutingRec> {
    (symbol(), opt_text(), opt_text())
        .prop_map(|(route, country, institution_id)| RoutingRec {
            route,
            country,
            institution_id,
        })
        .boxed()
}

pub fn fse_routed() -> BoxedStrategy<FseRouted> {
    (fse_entitled(), routing())
        .prop_map(|(e, routing)| FseRouted {
            header: e.header,
            fse: e.fse,
            beneficiary_key: e.beneficiary_key,
            signature_check: e.signature_check,
            warnings: e.warnings,
            entitlement: e.entitlement,
            routing,
        })
        .boxed()
}

pub fn decision_line() -> BoxedStrategy<DecisionLineRec> {
    (
        text(),
        long(),
        long(),
        int(),
        long(),
        long(),
        long(),
        long(),
        text(),
    )
        .prop_map(
            |(
                code,
                charged_cents,
                base_cents,
                rate_percent,
                amo_cents,
                css_cents,
                participation_cents,
                franchise_cents,
                tariff,
            )| DecisionLineRec {
                code,
                charged_cents,
                base_cents,
                rate_percent,
                amo_cents,
                css_cents,
                participation_cents,
                franchise_cents,
                tariff,
            },
        )
        .boxed()
}

pub fn decision() -> BoxedStrategy<DecisionRec> {
    (
        (
            opt_text(),
            symbol(),
            option::of(symbol()),
            items(reason()),
            items(reason()),
            items(decision_line()),
        ),
        vec(long(), 10),
        (
            text(),
            option::of(symbol()),
            opt_text(),
            opt_date(),
            opt_date(),
        ),
    )
        .prop_map(
            |(
                (fse_id, status, route, reasons, warnings, lines),
                amounts,
                (rules_version, signature_check, beneficiary_key, care_date, reimbursement_date),
            )| {
                let amount = |i: usize| amounts[i];
                DecisionRec {
                    fse_id,
                    status,
                    route,
                    reasons,
                    warnings,
                    lines,
                    amo_cents: amount(0),
                    css_cents: amount(1),
                    participation_cents: amount(2),
                    franchise_cents: amount(3),
                    flat_fee_cents: amount(4),
                    deferred_cents: amount(5),
                    imputed_cents: amount(6),
                    patient_cents: amount(7),
                    paid_to_professional_cents: amount(8),
                    paid_to_insured_cents: amount(9),
                    rules_version,
                    signature_check,
                    beneficiary_key,
                    care_date,
                    reimbursement_date,
                }
            },
        )
        .boxed()
}

pub fn claim_ref() -> BoxedStrategy<ClaimRefRec> {
    (
        text(),
        date(),
        any::<(bool, bool)>(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
    )
        .prop_map(
            |(rpps, received_on, (amo, amc), amc_id, eu_country, eu_institution_id, payee)| {
                ClaimRefRec {
                    rpps,
                    received_on,
                    tiers_payant: TiersPayantRec { amo, amc },
                    amc: amc_id,
                    eu_country,
                    eu_institution_id,
                    payee,
                }
            },
        )
        .boxed()
}

pub fn fse_decided() -> BoxedStrategy<FseDecided> {
    (header(), decision(), option::of(claim_ref()))
        .prop_map(|(header, decision, claim)| FseDecided {
            header,
            decision,
            claim,
        })
        .boxed()
}

pub fn fse_rejected() -> BoxedStrategy<FseRejected> {
    (header(), decision(), option::of(claim_ref()))
        .prop_map(|(header, decision, claim)| FseRejected {
            header,
            decision,
            claim,
        })
        .boxed()
}

pub fn guarantee() -> BoxedStrategy<GuaranteeRec> {
    (text(), date(), date(), int(), any::<bool>(), long())
        .prop_map(
            |(fse_id, received_on, due, paid_working_day, late, penalty_cents)| GuaranteeRec {
                fse_id,
                received_on,
                due,
                paid_working_day,
                late,
                penalty_cents,
            },
        )
        .boxed()
}

pub fn ledger_outcome() -> BoxedStrategy<LedgerOutcomeRec> {
    (
        (opt_text(), opt_text(), text(), date(), symbol()),
        (any::<bool>(), items(text()), any::<bool>()),
        (long(), long(), long(), long()),
        (opt_text(), opt_text(), opt_text()),
    )
        .prop_map(
            |(
                (fse_id, beneficiary_key, rpps, received_on, status),
                (validation_rejected, reason_codes, tiers_payant_amo),
                (amo_cents, paid_to_professional_cents, paid_to_insured_cents, imputed_cents),
                (eu_country, eu_institution_id, payee),
            )| LedgerOutcomeRec {
                fse_id,
                beneficiary_key,
                rpps,
                received_on,
                status,
                validation_rejected,
                reason_codes,
                tiers_payant_amo,
                amo_cents,
                paid_to_professional_cents,
                paid_to_insured_cents,
                imputed_cents,
                eu_country,
                eu_institution_id,
                payee,
            },
        )
        .boxed()
}

pub fn ledger_entry() -> BoxedStrategy<LedgerEntry> {
    (header(), opt_date(), option::of(ledger_outcome()))
        .prop_map(|(header, close_on, outcome)| LedgerEntry {
            header,
            close_on,
            outcome,
        })
        .boxed()
}

pub fn payment_order() -> BoxedStrategy<PaymentOrder> {
    (
        header(),
        text(),
        symbol(),
        text(),
        date(),
        long(),
        long(),
        items(text()),
        opt_date(),
        long(),
        items(guarantee()),
    )
        .prop_map(
            |(
                header,
                order_id,
                payee_kind,
                payee,
                value_date,
                amount_cents,
                imputed_cents,
                fse_ids,
                guarantee_due,
                late_penalty_cents,
                guarantees,
            )| PaymentOrder {
                header,
                order_id,
                payee_kind,
                payee,
                value_date,
                amount_cents,
                imputed_cents,
                fse_ids,
                guarantee_due,
                late_penalty_cents,
                guarantees,
            },
        )
        .boxed()
}

pub fn professional_return() -> BoxedStrategy<ProfessionalReturn> {
    (
        header(),
        symbol(),
        text(),
        opt_text(),
        opt_text(),
        option::of(long()),
        items(reason()),
        option::of(int()),
        opt_text(),
    )
        .prop_map(
            |(header, kind, rpps, batch_id, fse_id, amount_cents, reasons, fse_count, payee)| {
                ProfessionalReturn {
                    header,
                    kind,
                    rpps,
                    batch_id,
                    fse_id,
                    amount_cents,
                    reasons,
                    fse_count,
                    payee,
                }
            },
        )
        .boxed()
}

pub fn eu_claim() -> BoxedStrategy<EuClaim> {
    (
        (header(), text(), text(), text(), text()),
        (date(), date(), date(), date()),
        (any::<bool>(), long(), text(), items(text())),
    )
        .prop_map(
            |(
                (header, claim_id, country, institution_id, half_year),
                (introduced_on, introduction_deadline, payment_due, dispute_deadline),
                (receivable, amount_cents, currency, fse_ids),
            )| EuClaim {
                header,
                claim_id,
                country,
                institution_id,
                half_year,
                introduced_on,
                introduction_deadline,
                payment_due,
                dispute_deadline,
                receivable,
                amount_cents,
                currency,
                fse_ids,
            },
        )
        .boxed()
}

pub fn amc_claim() -> BoxedStrategy<AmcClaim> {
    (header(), text(), text(), text(), long(), long(), long())
        .prop_map(
            |(
                header,
                amc,
                fse_id,
                beneficiary_key,
                ticket_cents,
                depassement_cents,
                amount_cents,
            )| {
                AmcClaim {
                    header,
                    amc,
                    fse_id,
                    beneficiary_key,
                    ticket_cents,
                    depassement_cents,
                    amount_cents,
                }
            },
        )
        .boxed()
}

pub fn audit_checkpoint() -> BoxedStrategy<AuditCheckpoint> {
    (
        text(),
        int(),
        long(),
        long(),
        long(),
        any::<[u8; 32]>(),
        text(),
        vec(ref_offset(), 0..3),
    )
        .prop_map(
            |(
                stage,
                partition,
                input_offset_from,
                input_offset_to,
                output_count,
                chain_hash,
                rules_version,
                ref_watermark,
            )| AuditCheckpoint {
                stage,
                partition,
                input_offset_from,
                input_offset_to,
                output_count,
                chain_hash,
                rules_version,
                ref_watermark,
            },
        )
        .boxed()
}

pub fn period() -> BoxedStrategy<PeriodRec> {
    (date(), opt_date())
        .prop_map(|(from, to)| PeriodRec { from, to })
        .boxed()
}

pub fn rights_record() -> BoxedStrategy<RightsRecord> {
    let coverage = (date(), opt_date(), text(), text())
        .prop_map(|(from, to, regime, fund)| CoverageRec {
            from,
            to,
            regime,
            fund,
        })
        .boxed();
    (
        (text(), date(), int(), items(coverage)),
        (
            items(period()),
            items(period()),
            items(period()),
            items(period()),
        ),
        (option::of(symbol()), opt_text(), opt_text()),
        dated_values(),
    )
        .prop_map(
            |(
                (nir, birth_date, rank, coverage),
                (ald, css, ame, maternity),
                (local_regime, declared_gp, amc),
                (declared_gp_periods, local_regime_periods, amc_periods),
            )| {
                RightsRecord {
                    nir,
                    birth_date,
                    rank,
                    coverage,
                    ald,
                    css,
                    ame,
                    maternity,
                    local_regime,
                    declared_gp,
                    amc,
                    declared_gp_periods,
                    local_regime_periods,
                    amc_periods,
                }
            },
        )
        .boxed()
}

/// The dated GP, local regime and AMC of a rights record.
type DatedValues = (
    Vec<GpPeriodRec>,
    Vec<LocalRegimePeriodRec>,
    Vec<AmcPeriodRec>,
);

fn dated_values() -> BoxedStrategy<DatedValues> {
    let gp = (date(), opt_date(), text())
        .prop_map(|(from, to, rpps)| GpPeriodRec { from, to, rpps })
        .boxed();
    let local = (date(), opt_date(), symbol())
        .prop_map(|(from, to, regime)| LocalRegimePeriodRec { from, to, regime })
        .boxed();
    let amc = (date(), opt_date(), text())
        .prop_map(|(from, to, amc)| AmcPeriodRec { from, to, amc })
        .boxed();
    (items(gp), items(local), items(amc)).boxed()
}

pub fn pki_event() -> BoxedStrategy<PkiEvent> {
    let certificate = (text(), text(), text(), bytes(), text(), date(), date())
        .prop_map(
            |(id, rpps, alg, public_key, issuer, not_before, not_after)| CertificateRec {
                id,
                rpps,
                alg,
                public_key,
                issuer,
                not_before,
                not_after,
            },
        )
        .prop_map(PkiEvent::Certificate);
    let revocation = (text(), date())
        .prop_map(|(cert, revoked_on)| RevocationRec { cert, revoked_on })
        .prop_map(PkiEvent::Revocation);
    prop_oneof![certificate, revocation].boxed()
}

pub fn eu_institution() -> BoxedStrategy<EuInstitutionRecord> {
    (text(), text(), text(), opt_text(), date(), opt_date())
        .prop_map(
            |(country, institution_id, name, acronym, from, to)| EuInstitutionRecord {
                country,
                institution_id,
                name,
                acronym,
                from,
                to,
            },
        )
        .boxed()
}

pub fn dead_letter() -> BoxedStrategy<DeadLetter> {
    let cut = option::of(
        (long(), any::<[u8; 32]>()).prop_map(|(length, sha256)| RawCutRec { length, sha256 }),
    );
    (text(), text(), int(), long(), text(), bytes(), cut)
        .prop_map(
            |(stage, topic, partition, offset, error, raw, cut)| DeadLetter {
                stage,
                topic,
                partition,
                offset,
                error,
                raw,
                cut,
            },
        )
        .boxed()
}
