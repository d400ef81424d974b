//! Reimbursement: per line base, rate and AMO share; the flat fee on costly
//! acts; participation forfaitaire and franchises with their daily and yearly
//! caps; the CSS share; deferred deductions under tiers payant and their
//! imputation on later payments to the insured.
//!
//! Dates: tariffs, rates and deduction amounts are taken on the **date of
//! care**; yearly caps count by the **reimbursement date** (the date of
//! `received_at`); daily caps count by the date of care (domain.md §3.1).
//! Rounding happens only in [`Cents::apply_rate`] and [`Cents::times`].

use chrono::Datelike;

use super::contract::{self, Decided, Topics};
use super::emit::{Inputs, claim_ref};
use super::{Context, Entitlement, Outcome, Routed, Routing, reject_validated};
use crate::domain::{
    ActLine, Complement, Decision, DecisionLine, Pathway, Patient, Reason, ReasonCode, Route,
    Sector, Stage, Status,
};
use crate::events::convert;
use crate::events::model::{EventHeader, FseDecided, FseRouted};
use crate::money::{Cents, Hundredths, Rate};
use crate::pseudonym::BeneficiaryKey;
use crate::rules::{
    Act, BaseKind, Exemption, ExemptionValue, Family, FranchiseKind, Pricing, Rules,
};
use crate::state::{StateTxn, StoreError, keys};
use crate::topics;

/// Reimbursement on the bus: `fse.routed` in; `fse.decided` or
/// `fse.rejected` out.
pub struct ReimbursementStage;

impl contract::Stage for ReimbursementStage {
    type Input = FseRouted;

    const TOPICS: Topics = Topics {
        name: "reimbursement",
        input: topics::FSE_ROUTED,
        pass: topics::FSE_DECIDED,
        outputs: &[topics::FSE_DECIDED, topics::FSE_REJECTED],
        changelog: "reimbursement.changelog",
        dlq: "dlq.reimbursement",
    };

    fn header(event: &FseRouted) -> Option<&EventHeader> {
        Some(&event.header)
    }

    fn decide(
        &self,
        event: FseRouted,
        at: &Inputs<'_>,
        state: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Decided, StoreError> {
        let input = match convert::routed_from_event(&event) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Decided::DeadLetter(format!(
                    "read back {}: {e}",
                    Self::TOPICS.input
                )));
            }
        };
        let mut header = at.header(
            Some(event.header.event_id.clone()),
            &event.fse.fse_id,
            event.header.event_time_millis,
        );
        let eu = match (&event.routing.country, &event.routing.institution_id) {
            (Some(c), Some(i)) => Some((c.as_str(), i.as_str())),
            _ => None,
        };
        let claim = claim_ref(&event.fse, event.entitlement.amc.as_deref(), eu);
        Ok(match reimburse(input, state, ctx)? {
            Outcome::Pass(decision) => {
                header.rules_version = decision.rules_version.clone();
                at.pass(
                    Self::TOPICS.pass,
                    &FseDecided {
                        header,
                        decision: convert::decision_rec(&decision),
                        claim,
                    },
                )
            }
            Outcome::Reject(d) => at.rejected(header, &d, claim),
        })
    }
}

/// One line while it is being computed.
struct LineCalc<'r> {
    act: &'r Act,
    line: &'r ActLine,
    base: Cents,
    rate: Rate,
    /// AMO share before participation and franchise.
    gross: Cents,
    css: Cents,
    participation: Cents,
    franchise: Cents,
    tariff_tag: String,
}

/// The situations of the beneficiary that are active for this claim.
fn active_situations<'e>(ent: &Entitlement, ex: &'e ExemptionValue) -> Vec<&'e Exemption> {
    let mut active = Vec::new();
    if ent.minor {
        active.push(&ex.minor);
    }
    if ent.css {
        active.push(&ex.css);
    }
    if ent.ame {
        active.push(&ex.ame);
    }
    if ent.maternity {
        active.push(&ex.maternity);
    }
    active
}

fn base_kind(routed: &Routed) -> BaseKind {
    let professional = &routed.entitled.validated.fse.professional;
    if !professional.category.is_doctor() {
        return BaseKind::Convention;
    }
    match (professional.sector, professional.optam) {
        (Sector::One, _) | (Sector::Two, true) => BaseKind::Convention,
        (Sector::Two, false) => BaseKind::NonOptam,
        (Sector::Three, _) => BaseKind::Authority,
    }
}

/// Whether the care-pathway penalty applies to this claim, and whether a
/// warning explains it (a claimed declared GP the rights do not confirm).
fn pathway_penalty(routed: &Routed) -> (bool, Option<Reason>) {
    let fse = &routed.entitled.validated.fse;
    let ent = &routed.entitled.entitlement;
    if !fse.professional.category.is_doctor()
        || ent.pathway_free
        || matches!(fse.patient, Patient::Visitor(_))
    {
        return (false, None);
    }
    match fse.pathway {
        Pathway::Outside => (true, None),
        Pathway::Mt if ent.declared_gp.as_deref() != Some(fse.professional.rpps.as_str()) => (
            true,
            Some(
                Reason::new(
                    Stage::Reimbursement,
                    ReasonCode::PathwayNotHonoured,
                    "the pathway names the executant as declared GP, but the rights do not",
                )
                .field("pathway"),
            ),
        ),
        _ => (false, None),
    }
}

/// Base, rate and gross AMO share of each line.
fn price_lines<'r>(
    routed: &'r Routed,
    rules: &'r Rules,
    ex: &ExemptionValue,
    warnings: &mut Vec<Reason>,
) -> Result<Vec<LineCalc<'r>>, Reason> {
    let fse = &routed.entitled.validated.fse;
    let ent = &routed.entitled.entitlement;
    let care = fse.care_date;
    let kind = base_kind(routed);
    let (penalised, pathway_warning) = pathway_penalty(routed);
    warnings.extend(pathway_warning);
    let situations = active_situations(ent, ex);
    let situation_full_rate = situations.iter().any(|s| s.full_rate);

    let mut calcs = Vec::with_capacity(fse.lines.len());
    for (index, line) in fse.lines.iter().enumerate() {
        let n = index + 1;
        let not_billable = || {
            Reason::new(
                Stage::Reimbursement,
                ReasonCode::ActNotBillableOnDate,
                format!("{} has no tariff on {care}", line.code),
            )
            .line(n)
        };
        let act = rules
            .acts
            .find(&line.code, fse.professional.category)
            .ok_or_else(not_billable)?;

        // Base: the tariff (or declared price), plus any complement.
        let (mut components, tariff_tag) = match act.pricing {
            Pricing::DeclaredPrice => {
                let price = line.unit_price.ok_or_else(not_billable)?;
                (
                    vec![price.times(Hundredths::ONE, line.quantity)],
                    format!("{}@declared", act.code),
                )
            }
            Pricing::Coefficient | Pricing::Unit => match act.tariff_at(kind, care) {
                Some(version) => {
                    let unit = version.value.amount.ok_or_else(not_billable)?;
                    (
                        vec![unit.times(line.coefficient, line.quantity)],
                        act.version_tag(version.from),
                    )
                }
                None if kind == BaseKind::Authority => {
                    warnings.push(
                        Reason::new(
                            Stage::Reimbursement,
                            ReasonCode::NoAuthorityTariff,
                            format!("no tarif d'autorite for {}: zero base", act.code),
                        )
                        .line(n),
                    );
                    (vec![Cents::ZERO], format!("{}@authority-none", act.code))
                }
                None => return Err(not_billable()),
            },
        };
        if let Some(complement) = line.complement
            && let Some(values) = rules.rates.complements(act.family).and_then(|c| c.at(care))
        {
            let amount = match complement {
                Complement::Night => values.value.night,
                Complement::Sunday => values.value.sunday,
                Complement::Urgency => values.value.urgency,
            };
            if let Some(amount) = amount {
                components.push(amount.times(Hundredths::ONE, line.quantity));
            }
        }
        let mut base: Cents = components.iter().copied().sum();
        if base > line.charged {
            // Never reimburse more than was charged.
            base = line.charged;
            components = vec![base];
        }

        // Rate.
        let own_rate = act
            .rate_override()
            .or_else(|| rules.rates.family(act.family))
            .and_then(|r| r.at(care))
            .ok_or_else(not_billable)?;
        let mut rate = own_rate.value.percent;
        let doctor_family = rules.rates.outside_pathway.families.contains(&act.family);
        if penalised && doctor_family {
            if let Some(outside) = rules.rates.outside_pathway.rate.at(care) {
                rate = rate.min(outside.value.percent);
            }
        } else if ent.local_regime.is_some()
            && let Some(local) = act
                .local_regime_rate()
                .or_else(|| rules.rates.local_regime(act.family))
                .and_then(|r| r.at(care))
        {
            rate = rate.max(local.value.percent);
        }
        let ald_full = line.ald_related
            && ent.ald
            && ex.ald_related.full_rate
            && act.family != Family::HospitalDayFee;
        if situation_full_rate || ald_full {
            rate = Rate::FULL;
        }
        let gross = components.iter().map(|c| c.apply_rate(rate)).sum();

        if let Some(declared) = line.declared_base
            && declared != base
        {
            warnings.push(
                Reason::new(
                    Stage::Reimbursement,
                    ReasonCode::BaseMismatch,
                    format!("declared base {declared}, computed {base}"),
                )
                .field(format!("acts[{index}].base"))
                .line(n),
            );
        }
        calcs.push(LineCalc {
            act,
            line,
            base,
            rate,
            gross,
            css: Cents::ZERO,
            participation: Cents::ZERO,
            franchise: Cents::ZERO,
            tariff_tag,
        });
    }
    Ok(calcs)
}

/// The flat fee on costly acts (§3.5): on eligible lines the patient bears the
/// flat amount instead of the ticket modérateur. Returns the amount borne.
fn apply_flat_fee(
    calcs: &mut [LineCalc<'_>],
    rules: &Rules,
    care: chrono::NaiveDate,
    exempt: bool,
) -> Cents {
    let Some(flat) = rules.deductions.flat_fee.versions.at(care).map(|v| v.value) else {
        return Cents::ZERO;
    };
    if exempt {
        return Cents::ZERO;
    }
    let eligible = |c: &LineCalc<'_>| {
        rules.deductions.flat_fee.families.contains(&c.act.family) && c.rate < Rate::FULL
    };
    let eligible_base: Cents = calcs.iter().filter(|c| eligible(c)).map(|c| c.base).sum();
    let heavy_coefficient = calcs.iter().filter(|c| eligible(c)).any(|c| {
        c.act.pricing == Pricing::Coefficient && c.line.coefficient >= flat.coefficient_threshold
    });
    if eligible_base < flat.threshold && !heavy_coefficient {
        return Cents::ZERO;
    }
    // The patient's flat share is taken from eligible lines in order.
    let mut remaining = flat.amount;
    for calc in calcs.iter_mut().filter(|c| eligible(c)) {
        let share = remaining.min(calc.base);
        calc.gross = calc.base - share;
        remaining -= share;
    }
    flat.amount - remaining
}

/// Participation forfaitaire on participation-bearing acts.
fn take_participation(
    calcs: &mut [LineCalc<'_>],
    state: &mut StateTxn<'_>,
    rules: &Rules,
    routed: &Routed,
    who: &BeneficiaryKey,
) -> Result<(), StoreError> {
    let fse = &routed.entitled.validated.fse;
    let (care, reimbursed) = (fse.care_date, fse.reimbursement_date());
    let Some(pf) = rules.deductions.participation.at(care).map(|v| v.value) else {
        return Ok(());
    };
    let yearly_cap = rules
        .deductions
        .participation
        .at(reimbursed)
        .map_or(pf.yearly_cap, |v| v.value.yearly_cap);
    let rpps = fse.professional.rpps.as_str();
    let day_key = keys::participation_day(who, care, rpps);
    let year_key = keys::participation_year(who, reimbursed.year());
    let counted = state.get_i64(&day_key)?;
    let mut acts_today = counted;
    let mut taken_this_year = Cents(state.get_i64(&year_key)?);
    for calc in calcs.iter_mut().filter(|c| c.act.participation) {
        for _ in 0..calc.line.quantity {
            let room = yearly_cap - taken_this_year;
            let amount = pf.amount.min(room);
            // Below the PF, AMO pays the whole share: no PF at all (§3.3).
            let remaining_gross = calc.gross - calc.participation;
            if acts_today >= i64::from(pf.daily_max_acts)
                || amount <= Cents::ZERO
                || remaining_gross < pf.amount
            {
                continue;
            }
            calc.participation += amount;
            taken_this_year += amount;
            acts_today += 1;
        }
    }
    // Only a count that moved is written: a claim without a
    // participation-bearing act leaves no counter of 0 behind.
    if acts_today != counted {
        state.put_i64(day_key, acts_today);
    }
    state.put_i64(year_key, taken_this_year.get());
    Ok(())
}

/// Franchises on medicine boxes, auxiliary acts and transport legs.
fn take_franchises(
    calcs: &mut [LineCalc<'_>],
    state: &mut StateTxn<'_>,
    rules: &Rules,
    routed: &Routed,
    who: &BeneficiaryKey,
    ex: &ExemptionValue,
) -> Result<(), StoreError> {
    let fse = &routed.entitled.validated.fse;
    let (care, reimbursed) = (fse.care_date, fse.reimbursement_date());
    let Some(fr) = rules.deductions.franchise.at(care).map(|v| v.value) else {
        return Ok(());
    };
    if ex.hospital_exempt_franchise
        && fse.professional.category == crate::domain::Category::Hospital
    {
        return Ok(());
    }
    let yearly_cap = rules
        .deductions
        .franchise
        .at(reimbursed)
        .map_or(fr.yearly_cap, |v| v.value.yearly_cap);
    let rpps = fse.professional.rpps.as_str();
    let year_key = keys::franchise_year(who, reimbursed.year());
    let mut taken_this_year = Cents(state.get_i64(&year_key)?);
    for calc in calcs.iter_mut() {
        let Some(kind) = rules.deductions.franchise_kind(calc.act.family) else {
            continue;
        };
        if !calc.act.bears_franchise() {
            continue;
        }
        if kind == FranchiseKind::Transport
            && fse.pathway == Pathway::Emergency
            && ex.emergency_transport_exempt_franchise
        {
            continue;
        }
        let quantity = calc.line.quantity;
        let (wanted, day) = match kind {
            FranchiseKind::Medicine => (fr.per_box.times(Hundredths::ONE, quantity), None),
            FranchiseKind::Auxiliary => (
                fr.per_act.times(Hundredths::ONE, quantity),
                Some((
                    keys::auxiliary_franchise_day(who, care, rpps),
                    fr.daily_cap_auxiliary,
                )),
            ),
            FranchiseKind::Transport => (
                fr.per_leg.times(Hundredths::ONE, quantity),
                Some((
                    keys::transport_franchise_day(who, care),
                    fr.daily_cap_transport,
                )),
            ),
        };
        let mut amount = wanted
            .min(yearly_cap - taken_this_year)
            // Never more than AMO would pay for the item (D.322-5).
            .min(calc.gross - calc.participation);
        if let Some((day_key, day_cap)) = &day {
            let taken_today = Cents(state.get_i64(day_key)?);
            amount = amount.min(*day_cap - taken_today);
            if amount > Cents::ZERO {
                state.put_i64(day_key.clone(), (taken_today + amount).get());
            }
        }
        if amount <= Cents::ZERO {
            continue;
        }
        calc.franchise = amount;
        taken_this_year += amount;
    }
    state.put_i64(year_key, taken_this_year.get());
    Ok(())
}

/// The reimbursement stage: the final decision on a routed claim.
pub fn reimburse(
    input: Routed,
    state: &mut StateTxn<'_>,
    ctx: &Context<'_>,
) -> Result<Outcome<Decision>, StoreError> {
    let rules = ctx.rules;
    let validated = &input.entitled.validated;
    let fse = &validated.fse;
    let ent = &input.entitled.entitlement;
    let who = &validated.beneficiary;
    let care = fse.care_date;
    let Some(ex) = rules.exemptions.versions.at(care).map(|v| &v.value) else {
        let reason = Reason::new(
            Stage::Reimbursement,
            ReasonCode::NoRulesForDate,
            "no exemption table is in force on the date of care",
        );
        return Ok(Outcome::Reject(reject_validated(
            validated,
            vec![reason],
            ctx,
        )));
    };
    let mut warnings = validated.warnings.clone();
    let mut calcs = match price_lines(&input, rules, ex, &mut warnings) {
        Ok(calcs) => calcs,
        Err(reason) => {
            return Ok(Outcome::Reject(reject_validated(
                validated,
                vec![reason],
                ctx,
            )));
        }
    };
    let situations = active_situations(ent, ex);
    let ald_claim = ent.ald && fse.lines.iter().all(|l| l.ald_related);
    let flat_exempt = situations.iter().any(|s| s.exempt_flat_fee)
        || (ald_claim && ex.ald_related.exempt_flat_fee);
    let flat_fee = apply_flat_fee(&mut calcs, rules, care, flat_exempt);

    let pf_exempt = situations.iter().any(|s| s.exempt_participation);
    let pf_with_flat = rules
        .deductions
        .participation
        .at(care)
        .is_some_and(|v| v.value.with_flat_fee);
    if !pf_exempt && (flat_fee == Cents::ZERO || pf_with_flat) {
        take_participation(&mut calcs, state, rules, &input, who)?;
    }
    if !situations.iter().any(|s| s.exempt_franchise) {
        take_franchises(&mut calcs, state, rules, &input, who, ex)?;
    }
    if ent.css && ex.css.ticket_paid_by_css {
        for calc in &mut calcs {
            calc.css = calc.base - calc.gross;
        }
        if calcs.iter().any(|c| c.line.charged > c.base) {
            warnings.push(Reason::new(
                Stage::Reimbursement,
                ReasonCode::DepassementUnderCss,
                "a fee above the base for a CSS beneficiary",
            ));
        }
    }

    let lines: Vec<DecisionLine> = calcs
        .iter()
        .map(|c| DecisionLine {
            code: c.line.code.clone(),
            charged: c.line.charged,
            base: c.base,
            rate: c.rate,
            amo: c.gross - c.participation - c.franchise,
            css: c.css,
            participation: c.participation,
            franchise: c.franchise,
            tariff: c.tariff_tag.clone(),
        })
        .collect();
    let amo: Cents = lines.iter().map(|l| l.amo).sum();
    let css: Cents = lines.iter().map(|l| l.css).sum();
    let participation: Cents = lines.iter().map(|l| l.participation).sum();
    let franchise: Cents = lines.iter().map(|l| l.franchise).sum();
    let charged: Cents = lines.iter().map(|l| l.charged).sum();

    // Under tiers payant the professional is paid the whole AMO share and the
    // deductions are owed by the insured, taken from a later benefit (D.322-3).
    let deferred_key = keys::deferred_balance(who);
    let owed = Cents(state.get_i64(&deferred_key)?);
    let (deferred, imputed, to_professional, to_insured) = if fse.tiers_payant.amo {
        let deferred = participation + franchise;
        (deferred, Cents::ZERO, amo + css + deferred, Cents::ZERO)
    } else {
        let imputed = owed.min(amo);
        (Cents::ZERO, imputed, Cents::ZERO, amo + css - imputed)
    };
    let balance = owed + deferred - imputed;
    if balance != owed {
        state.put_i64(deferred_key, balance.get());
    }

    let decision = Decision {
        fse_id: Some(fse.fse_id.clone()),
        status: Status::Paid,
        route: Some(match input.routing {
            Routing::Domestic => Route::Domestic,
            Routing::Eu { .. } => Route::Eu,
        }),
        reasons: Vec::new(),
        warnings,
        lines,
        amo,
        css,
        participation,
        franchise,
        flat_fee,
        deferred,
        imputed,
        patient: charged - amo - css,
        paid_to_professional: to_professional,
        paid_to_insured: to_insured,
        rules_version: rules.version.clone(),
        signature_check: Some(validated.signature_check),
        beneficiary_key: Some(who.to_string()),
        care_date: Some(care),
        reimbursement_date: Some(fse.reimbursement_date()),
    };
    if let Err(broken) = decision.check_invariants() {
        // Amounts that do not add up are a bug in this function, never bad
        // input: stop loudly rather than pay a wrong amount.
        panic!("{broken}");
    }
    Ok(Outcome::Pass(decision))
}

#[cfg(test)]
mod tests {
    //! Given a routed claim (and, where it matters, the caps already spent),
    //! when the reimbursement stage decides it, then the base, the rate and
    //! every deduction are those of the tables on the date of care.

    use serde_json::{Value, json};

    use super::*;
    use crate::stages::tests::{CARE, GP, Kit, NIR, NURSE, OTHER_DOCTOR, PHARMACIST, claim, codes};
    use crate::state::StateStore;

    /// When: the reimbursement stage decides the routed claim.
    fn when_reimbursed(kit: &Kit, fse: &Value) -> Decision {
        let routed = kit.routed(fse);
        let outcome =
            kit.with_ctx(|ctx| Kit::run(&kit.reimbursement, |txn| reimburse(routed, txn, ctx)));
        match outcome {
            Outcome::Pass(d) => {
                d.check_invariants().unwrap();
                assert_eq!(d.status, Status::Paid);
                d
            }
            Outcome::Reject(d) => panic!("rejected: {:?}", d.reasons),
        }
    }

    fn cents(c: Cents) -> String {
        c.to_string()
    }

    /// (amo, css, participation, franchise, patient) of a decision.
    fn money(d: &Decision) -> [String; 5] {
        [d.amo, d.css, d.participation, d.franchise, d.patient].map(cents)
    }

    fn expect(
        amo: &str,
        css: &str,
        participation: &str,
        franchise: &str,
        patient: &str,
    ) -> [String; 5] {
        [amo, css, participation, franchise, patient].map(str::to_string)
    }

    fn born(birth: &str) -> Value {
        json!({"nir": NIR, "birth_date": birth, "rank": 1})
    }

    fn specialist() -> Value {
        json!({"rpps": OTHER_DOCTOR, "category": "specialist", "sector": "1"})
    }

    #[test]
    fn in_the_pathway_a_gp_consultation_is_70_percent_less_participation() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({}));
        // When
        let d = when_reimbursed(&kit, &claim(json!({})));
        // Then
        assert_eq!(d.lines[0].rate.percent(), 70);
        assert_eq!(d.lines[0].tariff, "G@2024-12-22");
        assert_eq!(money(&d), expect("19.00", "0.00", "2.00", "0.00", "11.00"));
        assert_eq!(d.route, Some(Route::Domestic));
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn outside_the_pathway_the_rate_is_30_percent() {
        // Given: no declared GP.
        let mut kit = Kit::new();
        kit.rights(json!({"declared_gp": null}));
        // When
        let d = when_reimbursed(&kit, &claim(json!({"pathway": "outside"})));
        // Then
        assert_eq!(d.lines[0].rate.percent(), 30);
        assert_eq!(money(&d), expect("7.00", "0.00", "2.00", "0.00", "23.00"));
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn mt_naming_someone_else_as_declared_gp_is_30_percent_with_a_warning() {
        // Given: the rights name another doctor as declared GP.
        let mut kit = Kit::new();
        kit.rights(json!({"declared_gp": OTHER_DOCTOR}));
        // When
        let d = when_reimbursed(&kit, &claim(json!({"pathway": "mt"})));
        // Then
        assert_eq!(d.lines[0].rate.percent(), 30);
        assert_eq!(
            codes(&d.warnings),
            vec![("pathway_not_honoured", Some("pathway"))]
        );
        assert_eq!(money(&d), expect("7.00", "0.00", "2.00", "0.00", "23.00"));
    }

    #[test]
    fn mt_without_any_declared_gp_is_not_honoured_either() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({"declared_gp": null}));
        // When
        let d = when_reimbursed(&kit, &claim(json!({})));
        // Then
        assert_eq!(d.lines[0].rate.percent(), 30);
        assert_eq!(
            codes(&d.warnings),
            vec![("pathway_not_honoured", Some("pathway"))]
        );
    }

    #[test]
    fn referred_and_emergency_are_not_penalised() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({"declared_gp": null}));
        for (n, pathway) in ["referred", "emergency", "direct_access"]
            .iter()
            .enumerate()
        {
            // When
            let d = when_reimbursed(
                &kit,
                &claim(json!({"pathway": pathway, "fse_id": format!("12345678-00000000{n}")})),
            );
            // Then
            assert_eq!(d.lines[0].rate.percent(), 70, "{pathway}");
        }
    }

    #[test]
    fn under_16_is_never_penalised() {
        // Given: 15 on the date of care, no declared GP, outside the pathway.
        let mut kit = Kit::new();
        kit.rights(json!({"birth_date": "2010-01-15", "declared_gp": null}));
        // When
        let d = when_reimbursed(
            &kit,
            &claim(json!({"pathway": "outside", "beneficiary": born("2010-01-15")})),
        );
        // Then: 70 %, and a minor bears no participation.
        assert_eq!(d.lines[0].rate.percent(), 70);
        assert_eq!(money(&d), expect("21.00", "0.00", "0.00", "0.00", "9.00"));
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn a_minor_of_17_outside_the_pathway_is_penalised_but_bears_no_participation() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({"birth_date": "2008-03-01", "declared_gp": null}));
        // When
        let d = when_reimbursed(
            &kit,
            &claim(json!({"pathway": "outside", "beneficiary": born("2008-03-01")})),
        );
        // Then
        assert_eq!(d.lines[0].rate.percent(), 30);
        assert_eq!(money(&d), expect("9.00", "0.00", "0.00", "0.00", "21.00"));
    }

    #[test]
    fn a_minor_is_exempt_from_participation_and_franchises_but_not_full_rate() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({"birth_date": "2012-07-21"}));
        // When
        let gp = when_reimbursed(&kit, &claim(json!({"beneficiary": born("2012-07-21")})));
        let nurse = when_reimbursed(
            &kit,
            &claim(json!({
                "fse_id": "23456789-000000007",
                "professional": {"rpps": NURSE, "category": "nurse", "sector": "1"},
                "beneficiary": born("2012-07-21"),
                "pathway": "referred",
                "acts": [{"code": "AMI", "coefficient": "2", "quantity": 3, "charged": "18.90"}]
            })),
        );
        // Then
        assert_eq!(gp.lines[0].rate.percent(), 70);
        assert_eq!(money(&gp), expect("21.00", "0.00", "0.00", "0.00", "9.00"));
        assert_eq!(nurse.lines[0].rate.percent(), 60);
        assert_eq!(
            money(&nurse),
            expect("11.34", "0.00", "0.00", "0.00", "7.56")
        );
    }

    #[test]
    fn an_adult_nurse_claim_bears_franchises_within_the_daily_cap() {
        // Given: 2025, EUR 1 per auxiliary act, EUR 4 a day per professional.
        let mut kit = Kit::new();
        kit.rights(json!({}));
        // When
        let d = when_reimbursed(
            &kit,
            &claim(json!({
                "professional": {"rpps": NURSE, "category": "nurse", "sector": "1"},
                "pathway": "referred",
                "acts": [{"code": "AMI", "coefficient": "2", "quantity": 5, "charged": "31.50"}]
            })),
        );
        // Then: 31.50 × 60 % = 18.90, less EUR 4 (not 5).
        assert_eq!(money(&d), expect("14.90", "0.00", "0.00", "4.00", "16.60"));
    }

    #[test]
    fn sector_3_is_reimbursed_on_the_authority_tariff() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let fse = claim(json!({
            "professional": {"rpps": GP, "category": "gp", "sector": "3"},
            "acts": [{"code": "G", "charged": "50.00"}]
        }));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then: base 0.61, 70 % = 0.43, below the participation: none taken.
        assert_eq!(cents(d.lines[0].base), "0.61");
        assert_eq!(d.lines[0].tariff, "G@2017-05-01");
        assert_eq!(money(&d), expect("0.43", "0.00", "0.00", "0.00", "49.57"));
    }

    #[test]
    fn sector_3_without_an_authority_tariff_is_a_zero_base_with_a_warning() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let fse = claim(json!({
            "professional": {"rpps": GP, "category": "gp", "sector": "3"},
            "acts": [{"code": "G", "charged": "50.00"}, {"code": "MCG", "charged": "5.00"}]
        }));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then
        assert_eq!(cents(d.lines[1].base), "0.00");
        assert_eq!(d.lines[1].tariff, "MCG@authority-none");
        let warnings: Vec<_> = d
            .warnings
            .iter()
            .map(|w| (w.code.as_str(), w.line))
            .collect();
        assert_eq!(warnings, vec![("no_authority_tariff", Some(2))]);
    }

    #[test]
    fn sector_2_outside_optam_is_reimbursed_on_the_non_optam_base() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let fse = claim(json!({
            "professional": {"rpps": GP, "category": "gp", "sector": "2", "optam": false},
            "acts": [{"code": "G", "charged": "40.00"}]
        }));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then: 23.00 × 70 % = 16.10 − 2.00.
        assert_eq!(cents(d.lines[0].base), "23.00");
        assert_eq!(money(&d), expect("14.10", "0.00", "2.00", "0.00", "25.90"));
    }

    #[test]
    fn a_line_charged_below_its_tariff_has_its_base_capped() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({}));
        // When
        let d = when_reimbursed(
            &kit,
            &claim(json!({"acts": [{"code": "G", "charged": "20.00"}]})),
        );
        // Then
        assert_eq!(cents(d.lines[0].base), "20.00");
        assert_eq!(money(&d), expect("12.00", "0.00", "2.00", "0.00", "8.00"));
    }

    #[test]
    fn two_ccam_lines_reaching_120_trigger_the_flat_fee() {
        // Given: a specialist's two ECG lines, bases 71.30 and 48.70 (capped
        // at what was charged): 120.00, the threshold.
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let fse = claim(json!({
            "professional": specialist(),
            "pathway": "referred",
            "acts": [
                {"code": "DEQP003", "quantity": 5, "charged": "71.30"},
                {"code": "DEQP003", "quantity": 4, "charged": "48.70"}
            ]
        }));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then: the patient bears EUR 24 instead of the ticket, and no participation.
        assert_eq!(cents(d.flat_fee), "24.00");
        assert_eq!(money(&d), expect("96.00", "0.00", "0.00", "0.00", "24.00"));
        assert_eq!(cents(d.lines[0].amo), "47.30");
        assert_eq!(cents(d.lines[1].amo), "48.70");
    }

    #[test]
    fn two_ccam_lines_one_cent_below_120_bear_the_ticket_and_participation() {
        // Given: 71.30 + 48.69 = 119.99.
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let fse = claim(json!({
            "professional": specialist(),
            "pathway": "referred",
            "acts": [
                {"code": "DEQP003", "quantity": 5, "charged": "71.30"},
                {"code": "DEQP003", "quantity": 4, "charged": "48.69"}
            ]
        }));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then: 70 % of each line (49.91 + 34.08), less 4 participations (daily cap).
        assert_eq!(cents(d.flat_fee), "0.00");
        assert_eq!(money(&d), expect("75.99", "0.00", "8.00", "0.00", "44.00"));
    }

    #[test]
    fn the_flat_fee_does_not_apply_to_css_beneficiaries() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({"css": [{"from": "2025-01-01", "to": null}]}));
        let fse = claim(json!({
            "professional": specialist(),
            "pathway": "referred",
            "acts": [{"code": "BGLA001", "charged": "125.40"}]
        }));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then: the ticket is paid by the CSS instead.
        assert_eq!(cents(d.flat_fee), "0.00");
        assert_eq!(money(&d), expect("87.78", "37.62", "0.00", "0.00", "0.00"));
    }

    #[test]
    fn maternity_is_full_rate_and_exempt_from_participation() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({"maternity": [{"from": "2025-03-01", "to": "2025-09-30"}]}));
        // When
        let d = when_reimbursed(&kit, &claim(json!({})));
        // Then
        assert_eq!(d.lines[0].rate.percent(), 100);
        assert_eq!(money(&d), expect("30.00", "0.00", "0.00", "0.00", "0.00"));
    }

    #[test]
    fn maternity_is_exempt_from_franchises() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({"maternity": [{"from": "2025-03-01", "to": "2025-09-30"}]}));
        let fse = claim(json!({
            "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
            "pathway": null,
            "acts": [{"code": "PH7", "quantity": 2, "product": "3400935955838",
                      "unit_price": "7.50", "charged": "15.00"}]
        }));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then
        assert_eq!(money(&d), expect("15.00", "0.00", "0.00", "0.00", "0.00"));
    }

    #[test]
    fn css_pays_the_ticket_and_a_depassement_is_flagged() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({"css": [{"from": "2025-01-01", "to": null}]}));
        // When
        let d = when_reimbursed(
            &kit,
            &claim(json!({"acts": [{"code": "G", "charged": "35.00"}]})),
        );
        // Then: 21.00 AMO, 9.00 CSS, no participation; the 5.00 above the base stays.
        assert_eq!(money(&d), expect("21.00", "9.00", "0.00", "0.00", "5.00"));
        assert_eq!(cents(d.paid_to_insured), "30.00");
        assert_eq!(codes(&d.warnings), vec![("depassement_under_css", None)]);
    }

    #[test]
    fn css_without_depassement_has_no_warning() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({"css": [{"from": "2025-01-01", "to": null}]}));
        // When
        let d = when_reimbursed(&kit, &claim(json!({})));
        // Then
        assert_eq!(money(&d), expect("21.00", "9.00", "0.00", "0.00", "0.00"));
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn a_declared_base_that_differs_is_a_warning_and_is_not_used() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let fse = claim(json!({"acts": [{"code": "G", "charged": "30.00", "base": "25.00"}]}));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then
        assert_eq!(cents(d.lines[0].base), "30.00");
        assert_eq!(
            codes(&d.warnings),
            vec![("base_mismatch", Some("acts[0].base"))]
        );
        assert_eq!(d.warnings[0].line, Some(1));
        assert_eq!(money(&d), expect("19.00", "0.00", "2.00", "0.00", "11.00"));
    }

    #[test]
    fn a_declared_base_that_matches_is_silent() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let fse = claim(json!({"acts": [{"code": "G", "charged": "30.00", "base": "30.00"}]}));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then
        assert!(d.warnings.is_empty());
    }

    #[test]
    fn the_yearly_participation_cap_stops_at_exactly_50() {
        // Given: 49.00 already taken in the reimbursement year.
        let mut kit = Kit::new();
        let who = kit.rights(json!({}));
        let mut seed = crate::state::WriteBatch::new();
        seed.insert(
            keys::participation_year(&who, 2025),
            Some(4900i64.to_be_bytes().to_vec()),
        );
        kit.reimbursement.apply(&seed).unwrap();
        // When
        let partial = when_reimbursed(&kit, &claim(json!({})));
        let after = when_reimbursed(
            &kit,
            &claim(json!({"care_date": "2025-06-03", "fse_id": "12345678-000000043"})),
        );
        // Then: the last participation is partial, then none.
        assert_eq!(
            money(&partial),
            expect("20.00", "0.00", "1.00", "0.00", "10.00")
        );
        assert_eq!(
            money(&after),
            expect("21.00", "0.00", "0.00", "0.00", "9.00")
        );
        let counter = StateTxn::new(&kit.reimbursement)
            .get_i64(&keys::participation_year(&who, 2025))
            .unwrap();
        assert_eq!(counter, 5000);
    }

    #[test]
    fn the_yearly_participation_cap_counts_by_reimbursement_year() {
        // Given: the 2025 cap is spent; care on 31 Dec 2024 received in 2025
        // and care on 30 Dec 2024 received in 2024.
        let mut kit = Kit::new();
        let who = kit.rights(json!({}));
        let mut seed = crate::state::WriteBatch::new();
        seed.insert(
            keys::participation_year(&who, 2025),
            Some(5000i64.to_be_bytes().to_vec()),
        );
        kit.reimbursement.apply(&seed).unwrap();
        // When
        let received_2025 = when_reimbursed(
            &kit,
            &claim(json!({"care_date": "2024-12-31", "received_at": "2025-01-02T09:00:00+01:00"})),
        );
        let received_2024 = when_reimbursed(
            &kit,
            &claim(json!({"care_date": "2024-12-30", "fse_id": "12345678-000000043"})),
        );
        // Then
        assert_eq!(cents(received_2025.participation), "0.00");
        assert_eq!(cents(received_2024.participation), "2.00");
    }

    #[test]
    fn the_participation_is_at_most_4_acts_a_day_per_professional() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({}));
        // When: 5 consultations on one line.
        let d = when_reimbursed(
            &kit,
            &claim(json!({"acts": [{"code": "G", "quantity": 5, "charged": "150.00"}]})),
        );
        // Then
        assert_eq!(cents(d.participation), "8.00");
    }

    #[test]
    fn a_franchise_is_never_above_what_amo_pays_for_the_line() {
        // Given: a 30 % medicine at 2.00 a box (AMO 0.60 a box, franchise 1.00).
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let fse = claim(json!({
            "professional": {"rpps": PHARMACIST, "category": "pharmacist", "sector": "1"},
            "pathway": null,
            "acts": [
                {"code": "PH4", "quantity": 3, "product": "3400930000014",
                 "unit_price": "2.00", "charged": "6.00"},
                {"code": "PH7", "quantity": 1, "product": "3400935955838",
                 "unit_price": "7.50", "charged": "7.50"}
            ]
        }));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then: 1.80 on the PH4 line (not 3.00), 1.00 on the PH7 line.
        assert_eq!(cents(d.lines[0].franchise), "1.80");
        assert_eq!(cents(d.lines[0].amo), "0.00");
        assert_eq!(cents(d.lines[1].franchise), "1.00");
        assert_eq!(cents(d.lines[1].amo), "3.88");
        assert!(d.lines.iter().all(|l| !l.amo.is_negative()));
        assert_eq!(money(&d), expect("3.88", "0.00", "0.00", "2.80", "9.62"));
    }

    #[test]
    fn a_nurse_act_below_the_franchise_bears_only_what_amo_pays() {
        // Given: AMI × 0.5 = 1.58 (rounded), 60 % = 0.95 < EUR 1.
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let fse = claim(json!({
            "professional": {"rpps": NURSE, "category": "nurse", "sector": "1"},
            "pathway": "referred",
            "acts": [{"code": "AMI", "coefficient": "0.5", "charged": "1.58"}]
        }));
        // When
        let d = when_reimbursed(&kit, &fse);
        // Then
        assert_eq!(cents(d.lines[0].base), "1.58");
        assert_eq!(money(&d), expect("0.00", "0.00", "0.00", "0.95", "1.58"));
    }

    #[test]
    fn under_tiers_payant_deductions_are_deferred_then_imputed() {
        // Given
        let mut kit = Kit::new();
        kit.rights(json!({}));
        let tp = claim(json!({"tiers_payant": {"amo": true, "amc": false}}));
        // When
        let first = when_reimbursed(&kit, &tp);
        let second = when_reimbursed(
            &kit,
            &claim(json!({"care_date": "2025-06-03", "fse_id": "12345678-000000043"})),
        );
        // Then
        assert_eq!(cents(first.deferred), "2.00");
        assert_eq!(cents(first.paid_to_professional), "21.00");
        assert_eq!(cents(second.imputed), "2.00");
        assert_eq!(cents(second.paid_to_insured), "17.00");
        assert_eq!(
            second.care_date.map(|d| d.to_string()).as_deref(),
            Some("2025-06-03")
        );
        assert_eq!(
            first.care_date.map(|d| d.to_string()).as_deref(),
            Some(CARE)
        );
    }
}
