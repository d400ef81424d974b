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
use super::emit::{Carried, Inputs, claim_ref};
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
    Act, BaseKind, CarePathwayValue, Exemption, ExemptionValue, Family, FlatFeeSpares,
    FranchiseKind, FranchiseValue, ListedPrice, Pricing, Rules, Unlisted,
};
use crate::state::{StateTxn, StoreError, expiry, keys};
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

    /// The ingest stamp validation put in the header.
    fn event_time(event: &FseRouted) -> Option<i64> {
        Some(event.header.event_time_millis)
    }

    fn decide(
        &self,
        event: FseRouted,
        at: &Inputs<'_>,
        state: &mut StateTxn<'_>,
        ctx: &Context<'_>,
    ) -> Result<Decided, StoreError> {
        let eu = match (&event.routing.country, &event.routing.institution_id) {
            (Some(c), Some(i)) => Some((c.as_str(), i.as_str())),
            _ => None,
        };
        let claim = claim_ref(&event.fse, event.entitlement.amc.as_deref(), eu);
        let carried = Carried {
            header: &event.header,
            fse_id: event.fse.fse_id.clone(),
            claim,
        };
        at.decide_downstream(
            carried,
            convert::routed_from_event(&event),
            |input| reimburse(input, state, ctx),
            |mut header, out| {
                header.rules_version = out.rules_version.clone();
                let event = FseDecided {
                    header,
                    decision: convert::decision_rec(&out),
                    claim: claim_ref(&event.fse, event.entitlement.amc.as_deref(), eu),
                };
                at.pass(Self::TOPICS.pass, &event)
            },
        )
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
    /// The line is one of the acts the flat fee applied to (§3.5).
    under_flat_fee: bool,
    tariff_tag: String,
    /// A princeps dispensed against its generic under a rule that withdraws
    /// tiers payant from the claim (art. L.162-16-7 CSS).
    withdraws_tiers_payant: bool,
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

/// The care-pathway rules in force on the claim's date of care; `None` under
/// a rule set before 2026-12-06 (rates.toml `[[care_pathway]]`).
fn care_pathway<'r>(routed: &Routed, rules: &'r Rules) -> Option<&'r CarePathwayValue> {
    let care = routed.entitled.validated.fse.care_date;
    let table = rules.rates.care_pathway.as_ref()?;
    table.at(care).map(|v| &v.value)
}

/// Whether the executant is a doctor: the pathway and sector bases apply.
/// Before 2026-12-06 only GPs and specialists were; a radiologist is one too.
fn is_doctor(category: crate::domain::Category, rules: Option<&CarePathwayValue>) -> bool {
    match rules {
        Some(rules) => rules.doctors.contains(&category),
        None => category.is_doctor(),
    }
}

fn base_kind(routed: &Routed, rules: &Rules) -> BaseKind {
    let professional = &routed.entitled.validated.fse.professional;
    if !is_doctor(professional.category, care_pathway(routed, rules)) {
        return BaseKind::Convention;
    }
    match (professional.sector, professional.optam) {
        (Sector::One, _) | (Sector::Two, true) => BaseKind::Convention,
        (Sector::Two, false) => BaseKind::NonOptam,
        (Sector::Three, _) => BaseKind::Authority,
    }
}

fn not_honoured(why: &str) -> (bool, Option<Reason>) {
    let reason = Reason::new(Stage::Reimbursement, ReasonCode::PathwayNotHonoured, why);
    (true, Some(reason.field("pathway")))
}

/// Whether the care-pathway penalty applies to this claim, and whether a
/// warning explains it (a pathway the rights or the rules do not honour).
fn pathway_penalty(routed: &Routed, rules: &Rules) -> (bool, Option<Reason>) {
    let fse = &routed.entitled.validated.fse;
    let ent = &routed.entitled.entitlement;
    let pathway_rules = care_pathway(routed, rules);
    if !is_doctor(fse.professional.category, pathway_rules)
        || ent.pathway_free
        || matches!(fse.patient, Patient::Visitor(_))
    {
        return (false, None);
    }
    let executant_is_gp = ent.declared_gp.as_deref() == Some(fse.professional.rpps.as_str());
    let Some(pathway_rules) = pathway_rules else {
        // Rule sets before 2026-12-06: a blank pathway read as referred, and
        // a referral or direct access needed no declared GP.
        return match fse.pathway.unwrap_or(Pathway::Referred) {
            Pathway::Outside => (true, None),
            Pathway::Mt if !executant_is_gp => not_honoured(
                "the pathway names the executant as declared GP, but the rights do not",
            ),
            _ => (false, None),
        };
    };
    let has_gp = ent.declared_gp.is_some();
    let open_access = pathway_rules
        .direct_access
        .contains(&fse.professional.category);
    match fse.pathway {
        Some(Pathway::Outside) => (true, None),
        Some(Pathway::Emergency) => (false, None),
        Some(Pathway::Mt) if !executant_is_gp => {
            not_honoured("the pathway names the executant as declared GP, but the rights do not")
        }
        Some(Pathway::Referred | Pathway::DirectAccess) if !has_gp => {
            not_honoured("a referral or direct access needs a declared GP on the date of care")
        }
        Some(Pathway::DirectAccess) if !open_access => {
            not_honoured("direct access is not open to the executant's category")
        }
        None if !executant_is_gp => {
            not_honoured("no pathway given, and the executant is not the declared GP")
        }
        _ => (false, None),
    }
}

/// Whether the prescriber justified a "non substituable" mention on the
/// line's prescription (MTE, EFG or CIF): without one, a princeps is a
/// refused generic where the generics rule applies.
fn substitution_excluded(line: &ActLine) -> bool {
    line.prescription
        .as_ref()
        .is_some_and(|p| p.non_substitution.is_some())
}

/// Partial dispensing (issue 20, item 3; docs/rules.md, "Prescriptions"):
/// what each item of a prescription allows, less what paid claims already
/// dispensed of it, kept per beneficiary (`rx/<beneficiary>/<prescription>/
/// <item>`). A claim that would take more than remains is rejected
/// (`prescription_exhausted`) before anything is counted; a paid one adds
/// its quantities. Counted only for the families the rule set lists as
/// prescribed (none before 2026-12-06), and only once the claim is paid
/// here: a claim rejected by any stage never uses up its prescription.
///
/// A renewable prescription (renewals the rule set honours, since
/// 2026-12-07) also counts its paid dispensings (`rxd/<beneficiary>/
/// <prescription>`, one per claim): validation let its care through up to
/// the end of its treatment, so here its first dispensing must still come
/// within the validity (`prescription_expired`), and no more than 1 +
/// renewals dispensings are paid (`prescription_exhausted`).
struct Dispensing {
    key: Vec<u8>,
    done: i64,
    taken: i64,
    until: Option<chrono::NaiveDate>,
}

/// A renewable prescription's dispensings on one claim: the count, how many
/// it allows, the last day of its first dispensing and the first line
/// naming it.
struct Renewed {
    count: Dispensing,
    allowed: i64,
    first_by: Option<chrono::NaiveDate>,
    line: usize,
}

fn check_dispensing(
    calcs: &[LineCalc<'_>],
    state: &mut StateTxn<'_>,
    rules: &Rules,
    who: &BeneficiaryKey,
    care: chrono::NaiveDate,
) -> Result<Result<Vec<Dispensing>, Reason>, StoreError> {
    let table = &rules.acts.prescriptions;
    let mut items: Vec<(Dispensing, i64, usize)> = Vec::new();
    let mut renewed: Vec<Renewed> = Vec::new();
    for (index, calc) in calcs.iter().enumerate() {
        let Some(p) = &calc.line.prescription else {
            continue;
        };
        let family = calc.act.family;
        if !table.covers(family) {
            continue;
        }
        let item = match &calc.line.product {
            Some(cip) => cip.as_str().to_string(),
            None => calc.line.code.clone(),
        };
        let key = keys::dispensed(who, &p.identity(), &item);
        let quantity = i64::from(calc.line.quantity);
        // Renewals the rule set honours: 1 + renewals dispensings, each of
        // the line's quantity unless the prescription says its total.
        let renewable =
            (p.renewals).filter(|_| table.treatment_until(family, p.date, p.renewals).is_some());
        let dispensings = renewable.map_or(1, |n| i64::from(n) + 1);
        let allowed = p
            .quantity
            .map_or(quantity.saturating_mul(dispensings), i64::from);
        let until = (table.last_day(family, p.date, p.renewals))
            .and_then(|last| rules.general.kept_until(last));
        match items.iter_mut().find(|(d, _, _)| d.key == key) {
            Some((d, _, _)) => d.taken += quantity,
            None => {
                let done = state.get_i64(&key)?;
                let dispensing = Dispensing {
                    key,
                    done,
                    taken: quantity,
                    until,
                };
                items.push((dispensing, allowed, index + 1));
            }
        }
        if renewable.is_some() {
            let key = keys::dispensings(who, &p.identity());
            if !renewed.iter().any(|r| r.count.key == key) {
                let done = state.get_i64(&key)?;
                renewed.push(Renewed {
                    count: Dispensing {
                        key,
                        done,
                        taken: 1,
                        until,
                    },
                    allowed: dispensings,
                    first_by: table.valid_until(family, p.date),
                    line: index + 1,
                });
            }
        }
    }
    let refuse = |code, message: String, n: usize| {
        Ok(Err(Reason::new(Stage::Reimbursement, code, message)
            .field(format!("acts[{}].prescription", n - 1))
            .line(n)))
    };
    for r in &renewed {
        if r.count.done == 0
            && let Some(by) = r.first_by
            && care > by
        {
            return refuse(
                ReasonCode::PrescriptionExpired,
                format!("the first dispensing of a renewable prescription was due by {by}"),
                r.line,
            );
        }
    }
    for (d, allowed, n) in &items {
        if d.done + d.taken > *allowed {
            return refuse(
                ReasonCode::PrescriptionExhausted,
                format!(
                    "the prescription allows {allowed}, {} already dispensed: {} more refused",
                    d.done, d.taken
                ),
                *n,
            );
        }
    }
    for r in &renewed {
        if r.count.done + r.count.taken > r.allowed {
            return refuse(
                ReasonCode::PrescriptionExhausted,
                format!(
                    "the prescription allows {} dispensings, all {} already paid",
                    r.allowed, r.count.done
                ),
                r.line,
            );
        }
    }
    Ok(Ok(items
        .into_iter()
        .map(|(d, _, _)| d)
        .chain(renewed.into_iter().map(|r| r.count))
        .collect()))
}

fn count_dispensing(state: &mut StateTxn<'_>, items: Vec<Dispensing>) -> Result<(), StoreError> {
    for d in items {
        put_kept(state, d.key, d.done + d.taken, d.until)?;
    }
    Ok(())
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
    let (penalised, pathway_warning) = pathway_penalty(routed, rules);
    warnings.extend(pathway_warning);
    let pricing = ClaimPricing {
        rules,
        ent,
        ex,
        care: fse.care_date,
        category: fse.professional.category,
        kind: base_kind(routed, rules),
        penalised,
        situation_full_rate: active_situations(ent, ex).iter().any(|s| s.full_rate),
    };
    (fse.lines.iter().enumerate())
        .map(|(index, line)| pricing.line(index, line, warnings))
        .collect()
}

/// What pricing shares across the lines of one claim.
struct ClaimPricing<'r, 'e> {
    rules: &'r Rules,
    ent: &'e Entitlement,
    ex: &'e ExemptionValue,
    care: chrono::NaiveDate,
    category: crate::domain::Category,
    kind: BaseKind,
    /// The care-pathway penalty applies.
    penalised: bool,
    /// A situation of the beneficiary puts every line at the full rate.
    situation_full_rate: bool,
}

impl<'r> ClaimPricing<'r, '_> {
    /// The line `line` (at `index`): its act, base, rate and gross AMO share.
    fn line(
        &self,
        index: usize,
        line: &'r ActLine,
        warnings: &mut Vec<Reason>,
    ) -> Result<LineCalc<'r>, Reason> {
        let n = index + 1;
        let act = (self.rules.acts.find(&line.code, self.category))
            .ok_or_else(|| self.not_billable(line, n))?;
        let (components, tariff_tag, withdraws_tiers_payant) =
            self.base_components(act, line, n, warnings)?;
        let base: Cents = components.iter().copied().sum();
        let rate = self.rate(act, line, n)?;
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
        Ok(LineCalc {
            act,
            line,
            base,
            rate,
            gross,
            css: Cents::ZERO,
            participation: Cents::ZERO,
            franchise: Cents::ZERO,
            under_flat_fee: false,
            tariff_tag,
            withdraws_tiers_payant,
        })
    }

    fn not_billable(&self, line: &ActLine, n: usize) -> Reason {
        Reason::new(
            Stage::Reimbursement,
            ReasonCode::ActNotBillableOnDate,
            format!("{} has no tariff on {}", line.code, self.care),
        )
        .line(n)
    }

    /// The base's components: the tariff (or declared price), plus any
    /// complement; never more than was charged. With the tariff's tag and
    /// whether the line withdraws tiers payant (a refused generic).
    fn base_components(
        &self,
        act: &Act,
        line: &ActLine,
        n: usize,
        warnings: &mut Vec<Reason>,
    ) -> Result<(Vec<Cents>, String, bool), Reason> {
        let care = self.care;
        let mut withdraws_tiers_payant = false;
        let (mut components, tariff_tag) = match act.pricing {
            Pricing::DeclaredPrice if self.rules.acts.products.in_force(care) => {
                let listed = self.listed(act, line, n)?;
                if listed.generic_refused {
                    warnings.push(
                        Reason::new(
                            Stage::Reimbursement,
                            ReasonCode::GenericRefused,
                            "princeps without a justified non-substitution mention: \
                             reimbursed on its dearest generic's base",
                        )
                        .field(format!("acts[{}].product", n - 1))
                        .line(n),
                    );
                }
                withdraws_tiers_payant = listed.withdraws_tiers_payant;
                (
                    vec![listed.unit_base.times(Hundredths::ONE, line.quantity)],
                    listed.tag,
                )
            }
            Pricing::DeclaredPrice => {
                let price = line.unit_price.ok_or_else(|| self.not_billable(line, n))?;
                // No listed price yet, but the generics rule may already
                // apply: the table tells a princeps by its group.
                withdraws_tiers_payant = line.product.as_ref().is_some_and(|cip| {
                    (self.rules.acts.products).withdraws_before_list(
                        cip.as_str(),
                        care,
                        substitution_excluded(line),
                    )
                });
                (
                    vec![price.times(Hundredths::ONE, line.quantity)],
                    format!("{}@declared", act.code),
                )
            }
            Pricing::Coefficient | Pricing::Unit => match act.tariff_at(self.kind, care) {
                Some(version) => {
                    let unit = (version.value.amount).ok_or_else(|| self.not_billable(line, n))?;
                    (
                        vec![unit.times(line.coefficient, line.quantity)],
                        act.version_tag(version.from),
                    )
                }
                None if self.kind == BaseKind::Authority => {
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
                None => return Err(self.not_billable(line, n)),
            },
        };
        if let Some(complement) = line.complement
            && let Some(values) =
                (self.rules.rates.complements(act.family)).and_then(|c| c.at(care))
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
        let base: Cents = components.iter().copied().sum();
        if base > line.charged {
            // Never reimburse more than was charged.
            components = vec![line.charged];
        }
        Ok((components, tariff_tag, withdraws_tiers_payant))
    }

    /// The listed price of a pharmacy line's product (rules/products.rs): an
    /// unlisted CIP13, or a prestation code whose rate is not the product's
    /// band, is a rejection.
    fn listed(&self, act: &Act, line: &ActLine, n: usize) -> Result<ListedPrice, Reason> {
        let field = format!("acts[{}].product", n - 1);
        let unlisted = |message: String| {
            Reason::new(Stage::Reimbursement, ReasonCode::UnknownProduct, message)
                .field(field.clone())
                .line(n)
        };
        let cip = (line.product.as_ref())
            .ok_or_else(|| unlisted("a pharmacy line without a CIP13".into()))?;
        let listed = (self.rules.acts.products)
            .price(cip.as_str(), self.care, substitution_excluded(line))
            .map_err(|why| match why {
                Unlisted::Unknown => unlisted(format!("{cip} is not in the product list")),
                Unlisted::NotOnDate => {
                    unlisted(format!("{cip} has no listed base on {}", self.care))
                }
            })?;
        let code_rate = act
            .rate_override()
            .and_then(|r| r.at(self.care))
            .map(|v| v.value.percent);
        if code_rate != Some(listed.band) {
            return Err(Reason::new(
                Stage::Reimbursement,
                ReasonCode::ProductBandMismatch,
                format!(
                    "{cip} is in the {} % band, {} is not",
                    listed.band.percent(),
                    line.code
                ),
            )
            .field(field)
            .line(n));
        }
        Ok(listed)
    }

    /// The line's rate: its family's (or its own), lowered outside the care
    /// pathway, raised under a local regime, full under an exemption.
    fn rate(&self, act: &Act, line: &ActLine, n: usize) -> Result<Rate, Reason> {
        let (rules, ent, care) = (self.rules, self.ent, self.care);
        let own_rate = act
            .rate_override()
            .or_else(|| rules.rates.family(act.family))
            .and_then(|r| r.at(care))
            .ok_or_else(|| self.not_billable(line, n))?;
        let mut rate = own_rate.value.percent;
        let doctor_family = rules.rates.outside_pathway.families.contains(&act.family);
        if self.penalised && doctor_family {
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
            && self.ex.ald_related.full_rate
            && act.family != Family::HospitalDayFee;
        if self.situation_full_rate || ald_full {
            rate = Rate::FULL;
        }
        Ok(rate)
    }
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
        calc.under_flat_fee = true;
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
    for calc in calcs
        .iter_mut()
        .filter(|c| c.act.participation && !c.under_flat_fee)
    {
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
        put_kept(state, day_key, acts_today, rules.general.kept_until(care))?;
    }
    let year_until = rules.general.year_kept_until(reimbursed.year());
    put_kept(state, year_key, taken_this_year.get(), year_until)
}

/// Writes a counter that expires on `until` (docs/rules.md, "Retention"):
/// a daily counter once no claim for its day of care can be in time, a
/// yearly one once none counted in its year can. Scheduled when the counter
/// is created; `None` keeps it for ever (a rule set without retention).
fn put_kept(
    state: &mut StateTxn<'_>,
    key: Vec<u8>,
    value: i64,
    until: Option<chrono::NaiveDate>,
) -> Result<(), StoreError> {
    if let Some(until) = until
        && state.get(&key)?.is_none()
    {
        expiry::expire_on(state, &key, until)?;
    }
    state.put_i64(key, value);
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
            && fse.pathway == Some(Pathway::Emergency)
            && ex.emergency_transport_exempt_franchise
        {
            continue;
        }
        let (wanted, day) = franchise_wanted(kind, &fr, calc.line.quantity, who, care, rpps);
        let mut amount = wanted
            .min(yearly_cap - taken_this_year)
            // Never more than AMO would pay for the item (D.322-5).
            .min(calc.gross - calc.participation);
        if let Some((day_key, day_cap)) = &day {
            let taken_today = Cents(state.get_i64(day_key)?);
            amount = amount.min(*day_cap - taken_today);
            if amount > Cents::ZERO {
                let until = rules.general.kept_until(care);
                put_kept(state, day_key.clone(), (taken_today + amount).get(), until)?;
            }
        }
        if amount <= Cents::ZERO {
            continue;
        }
        calc.franchise = amount;
        taken_this_year += amount;
    }
    let year_until = rules.general.year_kept_until(reimbursed.year());
    put_kept(state, year_key, taken_this_year.get(), year_until)
}

/// The franchise a line of `quantity` items of `kind` bears before the
/// caps, and the key and cap of its daily count (none for medicines).
fn franchise_wanted(
    kind: FranchiseKind,
    fr: &FranchiseValue,
    quantity: u32,
    who: &BeneficiaryKey,
    care: chrono::NaiveDate,
    rpps: &str,
) -> (Cents, Option<(Vec<u8>, Cents)>) {
    match kind {
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
    }
}

/// The flat fee, the participation and the franchises, each unless an
/// exemption spares the claim; returns the flat fee.
fn take_deductions(
    calcs: &mut [LineCalc<'_>],
    state: &mut StateTxn<'_>,
    rules: &Rules,
    routed: &Routed,
    ex: &ExemptionValue,
) -> Result<Cents, StoreError> {
    let validated = &routed.entitled.validated;
    let (fse, who) = (&validated.fse, &validated.beneficiary);
    let ent = &routed.entitled.entitlement;
    let care = fse.care_date;
    let situations = active_situations(ent, ex);
    let ald_claim = ent.ald && fse.lines.iter().all(|l| l.ald_related);
    let flat_exempt = situations.iter().any(|s| s.exempt_flat_fee)
        || (ald_claim && ex.ald_related.exempt_flat_fee);
    let flat_fee = apply_flat_fee(calcs, rules, care, flat_exempt);

    let pf_exempt = situations.iter().any(|s| s.exempt_participation);
    let pf = rules.deductions.participation.at(care).map(|v| v.value);
    let pf_with_flat = pf.is_some_and(|v| v.with_flat_fee);
    if pf_with_flat {
        // Taken on the acts under the flat fee too.
        calcs.iter_mut().for_each(|c| c.under_flat_fee = false);
    }
    // Before 2026-12-06 the flat fee spared the whole claim; since, only its
    // own acts (the participation follows the lines).
    let by_line = pf.is_some_and(|v| v.flat_fee_spares == FlatFeeSpares::Line);
    if !pf_exempt && (flat_fee == Cents::ZERO || pf_with_flat || by_line) {
        take_participation(calcs, state, rules, routed, who)?;
    }
    if !situations.iter().any(|s| s.exempt_franchise) {
        take_franchises(calcs, state, rules, routed, who, ex)?;
    }
    Ok(flat_fee)
}

/// The CSS pays each line's ticket modérateur; a warning when a fee above
/// the base was charged to its beneficiary.
fn css_pays_the_ticket(calcs: &mut [LineCalc<'_>]) -> Option<Reason> {
    for calc in calcs.iter_mut() {
        calc.css = calc.base - calc.gross;
    }
    calcs.iter().any(|c| c.line.charged > c.base).then(|| {
        Reason::new(
            Stage::Reimbursement,
            ReasonCode::DepassementUnderCss,
            "a fee above the base for a CSS beneficiary",
        )
    })
}

/// Foreign ePrescriptions dispensed to a patient neither covered nor on an
/// EHIC (entitlement passes no other uncovered claim): no mandatory share on
/// any line, so nothing to deduct from it; the patient pays the whole.
fn without_mandatory_share(calcs: &mut [LineCalc<'_>]) -> Reason {
    for calc in calcs.iter_mut() {
        calc.rate = Rate::ZERO;
        calc.gross = Cents::ZERO;
    }
    Reason::new(
        Stage::Reimbursement,
        ReasonCode::EuEprescriptionNoMandatoryShare,
        "foreign ePrescriptions for a patient neither covered nor on an EHIC: \
         no mandatory share, paid by the patient",
    )
}

fn decision_lines(calcs: &[LineCalc<'_>]) -> Vec<DecisionLine> {
    calcs
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
        .collect()
}

/// Tiers payant contre génériques (art. L.162-16-7 CSS): a claim under
/// tiers payant with a princeps dispensed against its generic, under a rule
/// that withdraws it, is paid as without tiers payant; the warning names the
/// first such line.
fn tiers_payant_withdrawn(tiers_payant: bool, calcs: &[LineCalc<'_>]) -> Option<Reason> {
    let n = calcs.iter().position(|c| c.withdraws_tiers_payant)? + 1;
    tiers_payant.then(|| {
        Reason::new(
            Stage::Reimbursement,
            ReasonCode::TiersPayantWithdrawn,
            "princeps dispensed against its generic without a justified mention: \
             paid to the insured, deductions not deferred",
        )
        .field("tiers_payant.amo")
        .line(n)
    })
}

/// Who is paid what, and what the insured owes or repays.
struct Payees {
    deferred: Cents,
    imputed: Cents,
    to_professional: Cents,
    to_insured: Cents,
}

/// Pays the claim's AMO and CSS shares with its `deductions`. Under tiers
/// payant the professional is paid the whole AMO share and the deductions
/// are owed by the insured, taken from a later benefit (D.322-3);
/// otherwise the insured is paid, less what they owe (from the AMO share).
fn pay(
    state: &mut StateTxn<'_>,
    who: &BeneficiaryKey,
    tiers_payant: bool,
    (amo, css): (Cents, Cents),
    deductions: Cents,
) -> Result<Payees, StoreError> {
    let deferred_key = keys::deferred_balance(who);
    let owed = Cents(state.get_i64(&deferred_key)?);
    let payees = if tiers_payant {
        Payees {
            deferred: deductions,
            imputed: Cents::ZERO,
            to_professional: amo + css + deductions,
            to_insured: Cents::ZERO,
        }
    } else {
        let imputed = owed.min(amo);
        Payees {
            deferred: Cents::ZERO,
            imputed,
            to_professional: Cents::ZERO,
            to_insured: amo + css - imputed,
        }
    };
    let balance = owed + payees.deferred - payees.imputed;
    // A settled balance leaves no key behind: the ledger of what is owed
    // holds only the beneficiaries who owe something.
    if balance == Cents::ZERO {
        if state.get(&deferred_key)?.is_some() {
            state.delete(deferred_key);
        }
    } else if balance != owed {
        state.put_i64(deferred_key, balance.get());
    }
    Ok(payees)
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
    let reject = |reason| {
        Ok(Outcome::Reject(reject_validated(
            validated,
            vec![reason],
            ctx,
        )))
    };
    let Some(ex) = rules.exemptions.versions.at(care).map(|v| &v.value) else {
        return reject(Reason::new(
            Stage::Reimbursement,
            ReasonCode::NoRulesForDate,
            "no exemption table is in force on the date of care",
        ));
    };
    let mut warnings = validated.warnings.clone();
    let mut calcs = match price_lines(&input, rules, ex, &mut warnings) {
        Ok(calcs) => calcs,
        Err(reason) => return reject(reason),
    };
    let dispensed = match check_dispensing(&calcs, state, rules, who, care)? {
        Ok(dispensed) => dispensed,
        Err(reason) => return reject(reason),
    };
    count_dispensing(state, dispensed)?;
    let no_mandatory_share = matches!(fse.patient, Patient::Insured(_)) && !ent.covered();
    let flat_fee = if no_mandatory_share {
        warnings.push(without_mandatory_share(&mut calcs));
        Cents::ZERO
    } else {
        take_deductions(&mut calcs, state, rules, &input, ex)?
    };
    if ent.css && ex.css.ticket_paid_by_css {
        warnings.extend(css_pays_the_ticket(&mut calcs));
    }
    let lines = decision_lines(&calcs);
    let amo: Cents = lines.iter().map(|l| l.amo).sum();
    let css: Cents = lines.iter().map(|l| l.css).sum();
    let participation: Cents = lines.iter().map(|l| l.participation).sum();
    let franchise: Cents = lines.iter().map(|l| l.franchise).sum();
    let charged: Cents = lines.iter().map(|l| l.charged).sum();
    let withdrawn = tiers_payant_withdrawn(fse.tiers_payant.amo, &calcs);
    let tiers_payant = fse.tiers_payant.amo && withdrawn.is_none();
    warnings.extend(withdrawn);
    let payees = pay(
        state,
        who,
        tiers_payant,
        (amo, css),
        participation + franchise,
    )?;

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
        deferred: payees.deferred,
        imputed: payees.imputed,
        patient: charged - amo - css,
        paid_to_professional: payees.to_professional,
        paid_to_insured: payees.to_insured,
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
mod corrections_tests;
#[cfg(test)]
mod eu_eprescription_tests;
#[cfg(test)]
mod renewal_tests;
#[cfg(test)]
mod tests;
