//! What left the insurer, read back from the outbound topics and checked
//! against the decisions; and the dates the demo closes its books on.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use clearing_pipeline::bus::Bus;
use clearing_pipeline::domain::{Route, Status};
use clearing_pipeline::events::model::{
    AmcClaim, DecisionRec, EuClaim, LedgerEntry, PaymentOrder, ProfessionalReturn, ReturnKind,
};
use clearing_pipeline::events::registry::SchemaRegistry;
use clearing_pipeline::money::Cents;
use clearing_pipeline::outbound::calendar::{HalfYear, is_working_day};
use clearing_pipeline::rules::Rules;
use clearing_pipeline::runtime::topics;

/// The close dates of the demo's books: a payment run on every working day
/// from the first receipt to the last (each day's receipts are paid by that
/// day's run), then one close after the last receipt and after the end of its
/// half-year (its EU claims). Dated from the data, never from the clock.
pub fn outbound_closes(
    bus: &dyn Bus,
    registry: &SchemaRegistry,
    rules: &Rules,
) -> Result<Vec<NaiveDate>> {
    let mut range: Option<(NaiveDate, NaiveDate)> = None;
    read_all(bus, topics::OUTBOUND_LEDGER, |bytes| {
        let entry: LedgerEntry = registry.decode_single(bytes)?;
        if let Some(o) = entry.outcome {
            let d = o.received_on;
            range = Some(range.map_or((d, d), |(lo, hi)| (lo.min(d), hi.max(d))));
        }
        Ok(())
    })?;
    let Some((first, last)) = range else {
        return Ok(Vec::new());
    };
    let mut closes = Vec::new();
    let mut day = first;
    while day <= last {
        if is_working_day(&rules.calendar, day)? {
            closes.push(day);
        }
        day = day.succ_opt().context("date overflow")?;
    }
    let after = last.succ_opt().context("date overflow")?;
    let half_over = HalfYear::of(last)
        .end()
        .succ_opt()
        .context("date overflow")?;
    closes.push(after);
    if half_over > after {
        closes.push(half_over);
    }
    Ok(closes)
}

/// What left the insurer, read back from the outbound topics.
#[derive(Default)]
pub struct Outbound {
    /// (FSE id, kind) of every RSP.
    rsp: Vec<(String, ReturnKind)>,
    arl_positive: u64,
    arl_negative: u64,
    arl_fses: u64,
    orders: u64,
    ordered: Cents,
    imputed: Cents,
    ordered_fses: BTreeMap<String, u64>,
    guaranteed: u64,
    late: u64,
    penalties: Cents,
    amc_claims: u64,
    amc_total: Cents,
    eu_claims: u64,
    eu_not_receivable: u64,
    eu_total: Cents,
}

/// Calls `each` with the value of every record of `topic`, partition by
/// partition.
pub fn read_all(
    bus: &dyn Bus,
    topic: &str,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    for partition in 0..bus.partition_count(topic)? {
        let mut from = 0;
        loop {
            let records = bus.read(topic, partition, from, 8192)?;
            let Some(tail) = records.last() else { break };
            from = tail.offset + 1;
            for record in &records {
                each(&record.value)?;
            }
        }
    }
    Ok(())
}

/// Every outbound topic, read whole.
pub fn read_outbound(bus: &dyn Bus, registry: &SchemaRegistry) -> Result<Outbound> {
    let mut out = Outbound::default();
    read_all(bus, topics::RETURNS_PROFESSIONAL, |bytes| {
        let r: ProfessionalReturn = registry.decode_single(bytes)?;
        match r.kind {
            ReturnKind::ArlPositive | ReturnKind::ArlNegative => {
                if r.kind == ReturnKind::ArlPositive {
                    out.arl_positive += 1;
                } else {
                    out.arl_negative += 1;
                }
                out.arl_fses += u64::try_from(r.fse_count.unwrap_or(0)).unwrap_or(0);
            }
            kind => out.rsp.push((r.fse_id.unwrap_or_default(), kind)),
        }
        Ok(())
    })?;
    read_all(bus, topics::PAYMENTS_ORDERS, |bytes| {
        let o: PaymentOrder = registry.decode_single(bytes)?;
        out.orders += 1;
        out.ordered += Cents::new(o.amount_cents);
        out.imputed += Cents::new(o.imputed_cents);
        for id in o.fse_ids {
            *out.ordered_fses.entry(id).or_default() += 1;
        }
        out.guaranteed += o.guarantees.len() as u64;
        out.late += o.guarantees.iter().filter(|g| g.late).count() as u64;
        out.penalties += Cents::new(o.late_penalty_cents);
        Ok(())
    })?;
    read_all(bus, topics::AMC_CLAIMS, |bytes| {
        let c: AmcClaim = registry.decode_single(bytes)?;
        out.amc_claims += 1;
        out.amc_total += Cents::new(c.amount_cents);
        Ok(())
    })?;
    read_all(bus, topics::EU_CLAIMS, |bytes| {
        let c: EuClaim = registry.decode_single(bytes)?;
        out.eu_claims += 1;
        out.eu_not_receivable += u64::from(!c.receivable);
        out.eu_total += Cents::new(c.amount_cents);
        Ok(())
    })?;
    Ok(out)
}

impl Outbound {
    /// Every problem found between the decisions and what left: empty when
    /// every FSE has exactly one final return of its kind, the orders add up
    /// to the paid amounts, the EU claims to the visitors' AMO shares (what
    /// the rule sets since 2026-12-06 claim, Reg. 987/2009 art. 62), and the
    /// batches count every FSE.
    pub fn reconcile(&self, decisions: &BTreeMap<String, Vec<DecisionRec>>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut want: BTreeMap<(String, bool), u64> = BTreeMap::new();
        let mut paid = Cents::ZERO;
        let mut imputed = Cents::ZERO;
        let mut eu = Cents::ZERO;
        let mut count = 0u64;
        for d in decisions.values().flatten() {
            count += 1;
            let is_paid = d.status == Status::Paid;
            *want
                .entry((d.fse_id.clone().unwrap_or_default(), is_paid))
                .or_default() += 1;
            if is_paid {
                imputed += Cents::new(d.imputed_cents);
                paid += Cents::new(d.paid_to_professional_cents + d.paid_to_insured_cents);
                if d.route == Some(Route::Eu) {
                    eu += Cents::new(d.amo_cents);
                }
            }
        }
        let mut got: BTreeMap<(String, bool), u64> = BTreeMap::new();
        for (id, kind) in &self.rsp {
            *got.entry((id.clone(), *kind == ReturnKind::RspPayment))
                .or_default() += 1;
        }
        if got != want {
            let missing = want.iter().find(|(k, n)| got.get(*k) != Some(n));
            problems.push(format!(
                "final returns differ from decisions ({} returns, {count} decisions; first: {:?})",
                self.rsp.len(),
                missing.map(|(k, _)| k)
            ));
        }
        if self.ordered != paid {
            problems.push(format!(
                "payment orders total {} EUR, decisions paid {} EUR",
                self.ordered, paid
            ));
        }
        if self.imputed != imputed {
            problems.push(format!(
                "payment orders impute {} EUR, decisions imputed {} EUR",
                self.imputed, imputed
            ));
        }
        if self.ordered_fses.values().any(|n| *n > 2) {
            problems.push("an FSE appears in more than two orders".into());
        }
        if self.eu_total != eu {
            problems.push(format!(
                "EU claims total {} EUR, the visitors' AMO shares {} EUR",
                self.eu_total, eu
            ));
        }
        if self.arl_fses != count {
            problems.push(format!(
                "batch acknowledgements count {} FSEs, {count} were decided",
                self.arl_fses
            ));
        }
        problems
    }

    pub fn print(&self) {
        let rsp_paid = self
            .rsp
            .iter()
            .filter(|(_, k)| *k == ReturnKind::RspPayment)
            .count();
        println!("  outbound:");
        println!(
            "    returns      {:>9} RSP ({} payment, {} rejection), {} ARL ({} positive, {} negative)",
            self.rsp.len(),
            rsp_paid,
            self.rsp.len() - rsp_paid,
            self.arl_positive + self.arl_negative,
            self.arl_positive,
            self.arl_negative
        );
        println!(
            "    payments     {:>9} orders {:>15} EUR; {} tiers-payant FSEs guaranteed, {} late, penalties {} EUR",
            self.orders,
            self.ordered.to_string(),
            self.guaranteed,
            self.late,
            self.penalties
        );
        println!(
            "    amc claims   {:>9}        {:>15} EUR",
            self.amc_claims,
            self.amc_total.to_string()
        );
        println!(
            "    eu claims    {:>9}        {:>15} EUR ({} not receivable: introduced late)",
            self.eu_claims,
            self.eu_total.to_string(),
            self.eu_not_receivable
        );
    }
}
