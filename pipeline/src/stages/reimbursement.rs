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

use super::{Context, Entitlement, Outcome, Routed, Routing, reject_validated};
use crate::domain::{
    ActLine, Complement, Decision, DecisionLine, Pathway, Patient, Reason, ReasonCode, Route,
    Sector, Stage, Status,
};
use crate::money::{Cents, Hundredths, Rate};
use crate::pseudonym::BeneficiaryKey;
use crate::rules::{
    Act, BaseKind, Exemption, ExemptionValue, Family, FranchiseKind, Pricing, Rules,
};
use crate::state::{StateTxn, StoreError, keys};

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
mod tests;
