//! The product list: medicines by CIP13, each with its dated reimbursement
//! base and rate band, its generic group, and the generics rule
//! (acts.toml `[[product]]`, `[[generic_group]]`, `product_list`,
//! `generic_substitution`; docs/rules.md, "Products").
//!
//! A rule set without `product_list` (every set before 2026-12-06) has no
//! list: a pharmacy line is then paid on the unit price it declares, as it
//! was. With a list in force on the date of care, a line is paid on the
//! listed base (the group's TFR where one applies), never on more, and an
//! unlisted CIP13 is rejected.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Deserialize;

use super::dated::{Dated, Version};
use crate::ids::Cip13;
use crate::money::{Cents, Rate};

/// The rate bands of medicines (domain.md §3.2).
pub const BANDS: [u8; 4] = [100, 65, 30, 15];

/// Whether a product is the reference (princeps) of its generic group, one
/// of its generics, or in no group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    Princeps,
    Generic,
    Other,
}

/// One price version of a product: its base per box and its rate band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductPrice {
    /// Public price or reimbursement base per box; absent: delisted from `from`.
    #[serde(default)]
    pub base: Option<Cents>,
    pub band: Rate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub cip13: String,
    pub label: String,
    /// The substance's ATC code (WHO), for matching a prescribed substance.
    #[serde(default)]
    pub atc: Option<String>,
    pub kind: ProductKind,
    /// The generic group (`[[generic_group]]` id), for princeps and generics.
    #[serde(default)]
    pub group: Option<String>,
    pub price: Dated<ProductPrice>,
}

/// A group's tarif forfaitaire de responsabilité: every product of the
/// group is reimbursed on it. Absent amount: no TFR from `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TfrValue {
    #[serde(default)]
    pub tfr: Option<Cents>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericGroup {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub tfr: Option<Dated<TfrValue>>,
}

/// Whether the product list is in force (checked pricing, unlisted rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListValue {
    pub in_force: bool,
}

/// What a princeps dispensed without a justified "non substituable" mention
/// (the patient refused the generic) is reimbursed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusedBase {
    /// Its own base.
    Own,
    /// The base of the dearest generic of its group (since 1 Jan 2020).
    DearestGeneric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericRule {
    pub refused_base: RefusedBase,
    /// A claim dispensing a princeps against its generic is paid as without
    /// tiers payant ("tiers payant contre génériques", art. L.162-16-7 CSS).
    /// Absent (every set before 2026-12-06): the FSE's flags decide.
    #[serde(default)]
    pub withdraws_tiers_payant: bool,
    /// The withdrawal is of tiers payant as a whole: no tiers-payant claim
    /// on the complementary insurer either (art. L.162-16-7 CSS). Absent
    /// (every set before 2026-12-07): the AMC part is still forwarded.
    #[serde(default)]
    pub withdraws_amc: bool,
    /// Before the list prices care, a princeps is told by its group
    /// membership alone (the line keeps its declared price). Absent (every
    /// set before 2026-12-07): the rule waits for the list.
    #[serde(default)]
    pub before_list: bool,
}

/// The product list's TOML shapes inside acts.toml (all absent before 2026-12-06).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProductSections {
    #[serde(default)]
    pub product_list: Option<Dated<ListValue>>,
    #[serde(default)]
    pub generic_substitution: Option<Dated<GenericRule>>,
    #[serde(default)]
    pub product: Vec<Product>,
    #[serde(default)]
    pub generic_group: Vec<GenericGroup>,
}

/// The checked product list.
#[derive(Debug, Clone, Default)]
pub struct ProductTable {
    list: Option<Dated<ListValue>>,
    generic_rule: Option<Dated<GenericRule>>,
    products: BTreeMap<String, Product>,
    groups: BTreeMap<String, GenericGroup>,
}

/// How a listed line is priced: the base per box, the band, the tag that
/// names the version used, and whether the generics rule lowered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPrice {
    pub unit_base: Cents,
    pub band: Rate,
    pub tag: String,
    /// The princeps was priced as its dearest generic (the patient refused it).
    pub generic_refused: bool,
    /// A princeps dispensed against a generic of its group listed on the
    /// date, without a justified mention nor a TFR, under a rule that then
    /// withdraws tiers payant from the claim.
    pub withdraws_tiers_payant: bool,
}

/// Why a CIP13 cannot be priced from the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlisted {
    /// Not in the list at all.
    Unknown,
    /// In the list, but without a base on the date of care.
    NotOnDate,
}

impl ProductTable {
    pub fn from_sections(s: ProductSections) -> Result<ProductTable, String> {
        let mut groups = BTreeMap::new();
        for group in s.generic_group {
            let id = group.id.clone();
            if groups.insert(id.clone(), group).is_some() {
                return Err(format!("generic group {id} listed twice"));
            }
        }
        let mut products = BTreeMap::new();
        for product in s.product {
            let cip = Cip13::parse(&product.cip13)
                .map_err(|e| format!("product {}: {e}", product.cip13))?;
            for version in product.price.versions() {
                if !BANDS.contains(&version.value.band.percent()) {
                    return Err(format!(
                        "product {}: band {} is not one of {BANDS:?}",
                        product.cip13,
                        version.value.band.percent()
                    ));
                }
            }
            match (&product.group, product.kind) {
                (Some(g), _) if !groups.contains_key(g) => {
                    return Err(format!("product {}: unknown group {g}", product.cip13));
                }
                (None, ProductKind::Princeps | ProductKind::Generic) => {
                    return Err(format!("product {}: no generic group", product.cip13));
                }
                _ => {}
            }
            let key = cip.as_str().to_string();
            if products.insert(key.clone(), product).is_some() {
                return Err(format!("product {key} listed twice"));
            }
        }
        Ok(ProductTable {
            list: s.product_list,
            generic_rule: s.generic_substitution,
            products,
            groups,
        })
    }

    /// Whether the list prices pharmacy lines on `care`.
    pub fn in_force(&self, care: NaiveDate) -> bool {
        (self.list.as_ref())
            .and_then(|l| l.at(care))
            .is_some_and(|v| v.value.in_force)
    }

    pub fn product(&self, cip13: &str) -> Option<&Product> {
        self.products.get(cip13)
    }

    pub fn products(&self) -> impl Iterator<Item = &Product> {
        self.products.values()
    }

    fn price_at(product: &Product, care: NaiveDate) -> Option<(&Version<ProductPrice>, Cents)> {
        let version = product.price.at(care)?;
        version.value.base.map(|base| (version, base))
    }

    /// The base per box a line dispensing `cip13` on `care` is paid on.
    /// `substitution_excluded`: the prescriber justified "non substituable".
    pub fn price(
        &self,
        cip13: &str,
        care: NaiveDate,
        substitution_excluded: bool,
    ) -> Result<ListedPrice, Unlisted> {
        let product = self.products.get(cip13).ok_or(Unlisted::Unknown)?;
        let (version, base) = Self::price_at(product, care).ok_or(Unlisted::NotOnDate)?;
        let mut listed = ListedPrice {
            unit_base: base,
            band: version.value.band,
            tag: format!("{cip13}@{}", version.from),
            generic_refused: false,
            withdraws_tiers_payant: false,
        };
        let group = product.group.as_ref().and_then(|g| self.groups.get(g));
        if let Some(group) = group {
            if let Some(tfr) = (group.tfr.as_ref())
                .and_then(|t| t.at(care))
                .and_then(|v| v.value.tfr.map(|amount| (v.from, amount)))
            {
                listed.unit_base = tfr.1;
                listed.tag = format!("{cip13}@tfr-{}", tfr.0);
                return Ok(listed);
            }
            let rule = self.generic_rule(care);
            // The patient refused the generic: a princeps without a
            // justified mention, a generic of its group listed that day.
            let refused = (product.kind == ProductKind::Princeps && !substitution_excluded)
                .then(|| self.dearest_generic(&group.id, care))
                .flatten();
            if let (Some(rule), Some(generic)) = (rule, refused) {
                listed.withdraws_tiers_payant = rule.withdraws_tiers_payant;
                if rule.refused_base == RefusedBase::DearestGeneric && generic < listed.unit_base {
                    listed.unit_base = generic;
                    listed.tag = format!("{cip13}@generic-{}", version.from);
                    listed.generic_refused = true;
                }
            }
        }
        Ok(listed)
    }

    /// The generics rule in force on `care`, if the set has one.
    pub fn generic_rule(&self, care: NaiveDate) -> Option<GenericRule> {
        (self.generic_rule.as_ref())
            .and_then(|r| r.at(care))
            .map(|v| v.value)
    }

    /// Before the list prices care (no listed price to compare), whether a
    /// line dispensing `cip13` withdraws tiers payant: the table knows it as
    /// a princeps, without a justified mention, of a group that has a
    /// generic and no TFR on `care`, under a rule that says so
    /// (`before_list`). Group membership is identity, not price: a generic
    /// of the group counts whatever its listed dates (docs/rules.md).
    pub fn withdraws_before_list(
        &self,
        cip13: &str,
        care: NaiveDate,
        substitution_excluded: bool,
    ) -> bool {
        let Some(rule) = self.generic_rule(care) else {
            return false;
        };
        let Some(product) = self.products.get(cip13) else {
            return false;
        };
        let Some(group) = product.group.as_ref().and_then(|g| self.groups.get(g)) else {
            return false;
        };
        let under_tfr = (group.tfr.as_ref())
            .and_then(|t| t.at(care))
            .is_some_and(|v| v.value.tfr.is_some());
        let has_generic = self
            .products
            .values()
            .any(|p| p.kind == ProductKind::Generic && p.group.as_deref() == Some(&group.id));
        rule.withdraws_tiers_payant
            && rule.before_list
            && product.kind == ProductKind::Princeps
            && !substitution_excluded
            && !under_tfr
            && has_generic
    }

    /// The dearest base among the group's generics on `care`.
    fn dearest_generic(&self, group: &str, care: NaiveDate) -> Option<Cents> {
        self.products
            .values()
            .filter(|p| p.kind == ProductKind::Generic && p.group.as_deref() == Some(group))
            .filter_map(|p| Self::price_at(p, care).map(|(_, base)| base))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// A generic group with its princeps and a generic, listed from 2015.
    const GROUP_G1: &str = r#"[[generic_group]]
id = "G1"
label = "a group"
[[product]]
cip13 = "3400932644551"
label = "princeps"
kind = "princeps"
group = "G1"
price = [{ from = "2015-01-01", base = "3.00", band = 65 }]
[[product]]
cip13 = "3400930000014"
label = "generic"
kind = "generic"
group = "G1"
price = [{ from = "2015-01-01", base = "2.00", band = 65 }]"#;

    fn table(extra: &str) -> Result<ProductTable, String> {
        let text = format!(
            r#"
product_list = [{{ from = "2015-01-01", in_force = true }}]
generic_substitution = [
  {{ from = "2000-01-01", refused_base = "own" }},
  {{ from = "2012-07-01", refused_base = "own", withdraws_tiers_payant = true }},
  {{ from = "2020-01-01", refused_base = "dearest_generic", withdraws_tiers_payant = true }},
]
{GROUP_G1}
{extra}
"#
        );
        let sections: ProductSections = toml::from_str(&text).map_err(|e| e.to_string())?;
        ProductTable::from_sections(sections)
    }

    #[test]
    fn a_refused_generic_is_priced_as_the_dearest_generic_from_2020() {
        let t = table("").unwrap();
        let before = t.price("3400932644551", d("2019-12-31"), false).unwrap();
        assert_eq!(
            (before.unit_base, before.generic_refused),
            (Cents(300), false)
        );
        let after = t.price("3400932644551", d("2020-01-01"), false).unwrap();
        assert_eq!((after.unit_base, after.generic_refused), (Cents(200), true));
        let justified = t.price("3400932644551", d("2020-01-01"), true).unwrap();
        assert_eq!(justified.unit_base, Cents(300));
    }

    /// Tiers payant is withdrawn from a refused generic while the rule in
    /// force says so, whatever the base; never with a justified mention,
    /// for a generic, under a TFR, or before the rule (the entry of 2000
    /// lacks the field).
    #[test]
    fn a_refused_generic_withdraws_tiers_payant_from_the_rule_date() {
        let listed_from_2010 = r#"
[[generic_group]]
id = "G3"
label = "a group listed from 2010, under a TFR from 2013"
tfr = [{ from = "2013-01-01", tfr = "2.50" }]
[[product]]
cip13 = "3400935955838"
label = "princeps"
kind = "princeps"
group = "G3"
price = [{ from = "2010-01-01", base = "3.00", band = 65 }]
[[product]]
cip13 = "3400950000018"
label = "generic"
kind = "generic"
group = "G3"
price = [{ from = "2010-01-01", base = "2.00", band = 65 }]
"#;
        let t = table(listed_from_2010).unwrap();
        let withdrawn = |cip: &str, care: &str, excluded: bool| {
            t.price(cip, d(care), excluded)
                .unwrap()
                .withdraws_tiers_payant
        };
        assert!(!withdrawn("3400935955838", "2012-06-30", false));
        assert!(withdrawn("3400935955838", "2012-07-01", false));
        assert!(!withdrawn("3400935955838", "2013-01-01", false), "TFR");
        assert!(withdrawn("3400932644551", "2015-03-01", false));
        assert!(withdrawn("3400932644551", "2020-01-01", false));
        assert!(!withdrawn("3400932644551", "2020-01-01", true));
        assert!(!withdrawn("3400930000014", "2020-01-01", false));
        // Before 2020 the princeps keeps its base but still loses tiers payant.
        let before = t.price("3400932644551", d("2019-12-31"), false).unwrap();
        assert_eq!(
            (before.unit_base, before.generic_refused),
            (Cents(300), false)
        );
        // Without the field (every set before 2026-12-06), never withdrawn.
        let old: ProductSections = toml::from_str(
            r#"
generic_substitution = [{ from = "2000-01-01", refused_base = "dearest_generic" }]
[[generic_group]]
id = "G1"
label = "a group"
[[product]]
cip13 = "3400932644551"
label = "princeps"
kind = "princeps"
group = "G1"
price = [{ from = "2015-01-01", base = "3.00", band = 65 }]
[[product]]
cip13 = "3400930000014"
label = "generic"
kind = "generic"
group = "G1"
price = [{ from = "2015-01-01", base = "2.00", band = 65 }]
"#,
        )
        .unwrap();
        let old = ProductTable::from_sections(old).unwrap();
        let p = old.price("3400932644551", d("2024-01-01"), false).unwrap();
        assert!(p.generic_refused && !p.withdraws_tiers_payant);
    }

    /// Between the rule (1 Jul 2012) and the list (2015) a princeps is told
    /// by its group: the group has a generic, whatever the generic's dates.
    /// A set whose entries lack `before_list` waits for the list.
    #[test]
    fn before_the_list_a_princeps_is_told_by_its_group() {
        let rule = |before_list: bool| {
            format!(
                r#"
generic_substitution = [
  {{ from = "2000-01-01", refused_base = "own" }},
  {{ from = "2012-07-01", refused_base = "own", withdraws_tiers_payant = true, before_list = {before_list} }},
]
{GROUP_G1}
[[generic_group]]
id = "G2"
label = "a group under TFR from 2013"
tfr = [{{ from = "2013-01-01", tfr = "1.50" }}]
[[product]]
cip13 = "3400935955838"
label = "princeps under TFR"
kind = "princeps"
group = "G2"
price = [{{ from = "2015-01-01", base = "2.18", band = 65 }}]
[[product]]
cip13 = "3400950000018"
label = "generic under TFR"
kind = "generic"
group = "G2"
price = [{{ from = "2015-01-01", base = "1.50", band = 65 }}]
"#
            )
        };
        let load =
            |text: String| ProductTable::from_sections(toml::from_str(&text).unwrap()).unwrap();
        let t = load(rule(true));
        let withdrawn =
            |cip: &str, care: &str, excluded: bool| t.withdraws_before_list(cip, d(care), excluded);
        assert!(!withdrawn("3400932644551", "2012-06-30", false));
        assert!(withdrawn("3400932644551", "2012-07-01", false));
        assert!(withdrawn("3400932644551", "2014-12-31", false));
        assert!(!withdrawn("3400932644551", "2012-07-01", true), "justified");
        assert!(
            !withdrawn("3400930000014", "2012-07-01", false),
            "a generic"
        );
        assert!(!withdrawn("3400935955838", "2013-01-01", false), "TFR");
        assert!(withdrawn("3400935955838", "2012-12-31", false));
        assert!(!withdrawn("3400935955839", "2013-01-01", false), "unknown");
        let old = load(rule(false));
        assert!(!old.withdraws_before_list("3400932644551", d("2012-07-01"), false));
    }

    #[test]
    fn unknown_and_undated_products_are_told_apart() {
        let t = table("").unwrap();
        assert_eq!(
            t.price("3400935955838", d("2024-01-01"), false),
            Err(Unlisted::Unknown)
        );
        assert_eq!(
            t.price("3400930000014", d("2014-12-31"), false),
            Err(Unlisted::NotOnDate)
        );
        assert!(!t.in_force(d("2014-12-31")));
        assert!(t.in_force(d("2015-01-01")));
    }

    #[test]
    fn a_tfr_prices_every_product_of_its_group() {
        let t = table("").unwrap();
        let text = r#"
[[generic_group]]
id = "G2"
label = "a group under TFR"
tfr = [{ from = "2016-01-01", tfr = "1.50" }]
[[product]]
cip13 = "3400935955838"
label = "princeps under TFR"
kind = "princeps"
group = "G2"
price = [{ from = "2015-01-01", base = "2.18", band = 65 }]
"#;
        let sections: ProductSections = toml::from_str(text).unwrap();
        let t2 = ProductTable::from_sections(sections).unwrap();
        let p = t2.price("3400935955838", d("2016-01-01"), true).unwrap();
        assert_eq!(p.unit_base, Cents(150));
        assert_eq!(p.tag, "3400935955838@tfr-2016-01-01");
        assert_eq!(t.groups.len(), 1);
    }

    #[test]
    fn bad_products_are_refused_at_load() {
        let bad_key = r#"
[[product]]
cip13 = "3400935955839"
label = "bad key"
kind = "other"
price = [{ from = "2015-01-01", base = "1.00", band = 65 }]
"#;
        assert!(table(bad_key).unwrap_err().contains("3400935955839"));
        let bad_band = r#"
[[product]]
cip13 = "3400935955838"
label = "bad band"
kind = "other"
price = [{ from = "2015-01-01", base = "1.00", band = 50 }]
"#;
        assert!(table(bad_band).unwrap_err().contains("band 50"));
    }
}
