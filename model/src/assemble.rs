//! Assembly (Figs. 8 and 9): from the catalog form of a suite and its
//! products to the suite one requester gets.
//!
//! Every consumer that needs "the suite for these roles" (the builder, the
//! offline `check`, `plan`, tests) goes through [`assemble_suite`], so the
//! answer is the same everywhere. Assembly reports every problem it finds
//! (each ambiguous slot, each missing member) rather than the first.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ids::ProductId;
use crate::product::{ProductModel, ProductSource, Provenance};
use crate::role::{Ambiguity, EffectiveRoles, Selected};
use crate::suite::{Suite, SuiteSlot, SuiteSource};
use crate::version::{Version, VersionReq};

/// A suite assembled for one role set, with where each part came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// The suite with its products, in member order.
    pub suite: Suite,
    /// Which version each suite slot came from.
    pub suite_provenance: BTreeMap<SuiteSlot, Selected>,
    /// Which version each slot of each product came from.
    pub product_provenance: BTreeMap<ProductId, Provenance>,
}

/// A problem found while assembling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssembleError {
    /// Two different versions of a slot tie for the requester.
    #[error(transparent)]
    Ambiguous(#[from] Ambiguity),
    /// A member product is not in the catalog.
    #[error("suite {suite} names product {product}, which is not in the catalog")]
    MissingMember {
        /// The suite.
        suite: String,
        /// The product.
        product: ProductId,
    },
    /// A member product's version is outside the suite's range for it.
    #[error(
        "suite {suite} accepts product {product} at versions {versions}, but the catalog has {found}"
    )]
    MemberVersion {
        /// The suite.
        suite: String,
        /// The product.
        product: ProductId,
        /// What the suite accepts.
        versions: VersionReq,
        /// What the catalog has.
        found: Version,
    },
}

/// Assembles `suite` for `roles` from the catalog's `products` (which may
/// hold more products than the suite names). Products are looked up by id;
/// when the catalog holds a product twice, the last one wins.
pub fn assemble_suite(
    suite: &SuiteSource,
    products: &[ProductSource],
    roles: &EffectiveRoles,
) -> Result<Assembled, Vec<AssembleError>> {
    assemble_suite_from(suite, products.iter().collect(), roles)
}

/// A product source as [`assemble_suite_from`] gets it: its own, whose
/// picked versions it takes, or borrowed or shared (kept by a cache of
/// sources), whose picked versions it copies.
pub trait SourceProduct: Clone {
    /// The source.
    fn source(&self) -> &ProductSource;
    /// [`ProductSource::select`], by taking the versions where it can.
    fn selected(self, roles: &EffectiveRoles) -> Result<(ProductModel, Provenance), Ambiguity>;
}

impl SourceProduct for ProductSource {
    fn source(&self) -> &ProductSource {
        self
    }

    fn selected(self, roles: &EffectiveRoles) -> Result<(ProductModel, Provenance), Ambiguity> {
        self.into_selected(roles)
    }
}

impl SourceProduct for &ProductSource {
    fn source(&self) -> &ProductSource {
        self
    }

    fn selected(self, roles: &EffectiveRoles) -> Result<(ProductModel, Provenance), Ambiguity> {
        self.select(roles)
    }
}

impl SourceProduct for Arc<ProductSource> {
    fn source(&self) -> &ProductSource {
        self
    }

    fn selected(self, roles: &EffectiveRoles) -> Result<(ProductModel, Provenance), Ambiguity> {
        match Arc::try_unwrap(self) {
            Ok(owned) => owned.into_selected(roles),
            Err(shared) => shared.select(roles),
        }
    }
}

/// [`assemble_suite`], taking the versions it picks out of `products`
/// where it owns them rather than copying them (a build has no other use
/// for sources it read itself).
pub fn assemble_suite_from<P: SourceProduct>(
    suite: &SuiteSource,
    products: Vec<P>,
    roles: &EffectiveRoles,
) -> Result<Assembled, Vec<AssembleError>> {
    let mut by_id: BTreeMap<ProductId, P> = products
        .into_iter()
        .map(|product| (product.source().id.clone(), product))
        .collect();
    let mut errors = Vec::new();
    let selection = match suite.select(roles) {
        Ok(selection) => Some(selection),
        Err(ambiguity) => {
            errors.push(AssembleError::Ambiguous(ambiguity));
            None
        }
    };
    let members = selection
        .as_ref()
        .map(|selection| selection.members.clone())
        .unwrap_or_else(|| {
            suite
                .members
                .iter()
                .filter(|member| member.applies_to(roles))
                .cloned()
                .collect()
        });
    // How many members still name each product: the last takes the
    // source, earlier ones (a product named twice) take a copy.
    let mut uses: BTreeMap<&ProductId, usize> = BTreeMap::new();
    for member in &members {
        *uses.entry(&member.product).or_default() += 1;
    }
    let mut assembled_products = Vec::new();
    let mut product_provenance = BTreeMap::new();
    for member in &members {
        let Some(source) = by_id.get(&member.product).map(SourceProduct::source) else {
            errors.push(AssembleError::MissingMember {
                suite: suite.id.to_string(),
                product: member.product.clone(),
            });
            continue;
        };
        if !member.versions.matches(&source.version) {
            errors.push(AssembleError::MemberVersion {
                suite: suite.id.to_string(),
                product: member.product.clone(),
                versions: member.versions.clone(),
                found: source.version.clone(),
            });
            continue;
        }
        let last = uses.get_mut(&member.product).is_none_or(|left| {
            *left -= 1;
            *left == 0
        });
        let source = match by_id.remove(&member.product) {
            Some(source) if !last => {
                let copy = source.clone();
                by_id.insert(member.product.clone(), source);
                copy
            }
            Some(source) => source,
            None => continue,
        };
        match source.selected(roles) {
            Ok((model, provenance)) => {
                product_provenance.insert(model.id.clone(), provenance);
                assembled_products.push(model);
            }
            Err(ambiguity) => errors.push(AssembleError::Ambiguous(ambiguity)),
        }
    }
    match selection {
        Some(selection) if errors.is_empty() => {
            let mut suite = selection.suite;
            suite.products = assembled_products;
            only_what_it_holds(&mut suite);
            Ok(Assembled {
                suite,
                suite_provenance: selection.provenance,
                product_provenance,
            })
        }
        _ => Err(errors),
    }
}

/// Leaves out of `suite`'s categories, product groups and linkage every
/// product it does not hold (another role set's), and the categories and
/// groups left empty: what a machine is served names only what its roles
/// get.
fn only_what_it_holds(suite: &mut Suite) {
    let held: std::collections::BTreeSet<ProductId> = suite
        .products
        .iter()
        .map(|product| product.id.clone())
        .collect();
    for category in &mut suite.categories {
        category.products.retain(|id| held.contains(id));
    }
    suite
        .categories
        .retain(|category| !category.products.is_empty());
    for group in &mut suite.groups {
        group.products.retain(|id| held.contains(id));
    }
    suite.groups.retain(|group| !group.products.is_empty());
    suite.linkage.retain(|link| held.contains(&link.product));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::{Descriptor, parse};
    use crate::ids::RoleName;

    fn load(text: &str) -> Descriptor {
        let parsed = parse("test.xml", text.as_bytes());
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        parsed.descriptor.unwrap()
    }

    fn product(id: &str, version: &str, extra: &str) -> ProductSource {
        let text = format!(
            r#"<product xmlns="urn:roleout:descriptor:1" id="{id}" version="{version}">{extra}<install><arg>true</arg></install></product>"#
        );
        match load(&text) {
            Descriptor::Product(product) => product,
            Descriptor::Suite(_) => unreachable!("a product descriptor"),
        }
    }

    fn suite(members: &str) -> SuiteSource {
        let text = format!(
            r#"<suite xmlns="urn:roleout:descriptor:1" id="s" version="1"><products>{members}</products></suite>"#
        );
        match load(&text) {
            Descriptor::Suite(suite) => suite,
            Descriptor::Product(_) => unreachable!("a suite descriptor"),
        }
    }

    fn roles(names: &[(&str, u32)]) -> EffectiveRoles {
        EffectiveRoles::from_ranks(names.iter().map(|(n, r)| (RoleName::new(*n).unwrap(), *r)))
    }

    #[test]
    fn members_for_the_role_with_their_role_versions() {
        let suite = suite(r#"<product ref="a"/><product ref="b" role="dev"/>"#);
        let a = product(
            "a",
            "1.0",
            r#"<size installed="1"/><size role="dev" installed="2"/>"#,
        );
        let b = product("b", "1.0", "");
        let user = assemble_suite(&suite, &[a.clone(), b.clone()], &roles(&[])).unwrap();
        assert_eq!(user.suite.products.len(), 1);
        assert_eq!(user.suite.products[0].size.installed, 1);
        let dev = assemble_suite(&suite, &[a, b], &roles(&[("dev", 1)])).unwrap();
        assert_eq!(dev.suite.products.len(), 2);
        assert_eq!(dev.suite.products[0].size.installed, 2);
        let provenance = &dev.product_provenance[&ProductId::new("a").unwrap()];
        assert!(
            provenance
                .values()
                .any(|selected| *selected == Selected::Role(RoleName::new("dev").unwrap()))
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let suite =
            suite(r#"<product ref="a" version="&gt;=2"/><product ref="ghost"/><product ref="c"/>"#);
        let a = product("a", "1.0", "");
        let c = product(
            "c",
            "1.0",
            r#"<size role="x" installed="1"/><size role="y" installed="2"/>"#,
        );
        let errors = assemble_suite(&suite, &[a, c], &roles(&[("x", 5), ("y", 5)])).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(matches!(errors[0], AssembleError::MemberVersion { .. }));
        assert!(errors[1].to_string().contains("ghost"));
        assert!(matches!(errors[2], AssembleError::Ambiguous(_)));
    }
}
