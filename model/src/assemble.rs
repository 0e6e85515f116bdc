//! Assembly (Figs. 8 and 9): from the catalog form of a suite and its
//! products to the suite one requester gets.
//!
//! Every consumer that needs "the suite for these roles" (the builder, the
//! offline `check`, `plan`, tests) goes through [`assemble_suite`], so the
//! answer is the same everywhere. Assembly reports every problem it finds
//! (each ambiguous slot, each missing member) rather than the first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::ids::{CapabilityName, ProductId};
use crate::product::{
    CapabilityRequirement, ProductModel, ProductRequirement, ProductSource, Provenance,
};
use crate::resolve::provided_version;
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
/// hold more products than the suite names, and several versions of one:
/// each member takes the highest its range accepts).
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
    // The catalog may hold several versions (releases) of a product.
    let mut by_id: BTreeMap<ProductId, Vec<P>> = BTreeMap::new();
    for product in products {
        by_id
            .entry(product.source().id.clone())
            .or_default()
            .push(product);
    }
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
        let Some(releases) = by_id.get_mut(&member.product) else {
            errors.push(AssembleError::MissingMember {
                suite: suite.id.to_string(),
                product: member.product.clone(),
            });
            continue;
        };
        // The highest release the suite's range accepts.
        let Some(index) = highest_in(releases, &member.versions) else {
            let found = releases
                .iter()
                .map(|release| release.source().version.clone())
                .max();
            if let Some(found) = found {
                errors.push(AssembleError::MemberVersion {
                    suite: suite.id.to_string(),
                    product: member.product.clone(),
                    versions: member.versions.clone(),
                    found,
                });
            }
            continue;
        };
        let last = uses.get_mut(&member.product).is_none_or(|left| {
            *left -= 1;
            *left == 0
        });
        let source = if last {
            let source = releases.swap_remove(index);
            // The other releases are not the catalog's to pull in: the
            // suite named this product, and its choice wins.
            by_id.remove(&member.product);
            source
        } else {
            releases[index].clone()
        };
        match source.selected(roles) {
            Ok((model, provenance)) => {
                product_provenance.insert(model.id.clone(), provenance);
                assembled_products.push(model);
            }
            Err(ambiguity) => errors.push(AssembleError::Ambiguous(ambiguity)),
        }
    }
    let pulled_in = match &selection {
        Some(selection) if errors.is_empty() => pull_in(
            &mut assembled_products,
            &mut product_provenance,
            &selection.suite.capabilities.requires,
            by_id,
            roles,
            &mut errors,
        ),
        _ => Vec::new(),
    };
    match selection {
        Some(selection) if errors.is_empty() => {
            let mut suite = selection.suite;
            suite.products = assembled_products;
            suite.pulled_in = pulled_in;
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

/// Completes `products` (the assembled members) from `rest`, the catalog's
/// other products: every product a product of the suite names as a
/// prerequisite, corequisite or provider of a system requirement and the
/// suite lacks, and for every
/// capability a product (or the suite) requires that no product of the
/// suite provides in range, one provider, each assembled for `roles` and
/// appended; repeated until nothing more is needed. The ids pulled in, in
/// the order they were.
///
/// A requirement the catalog cannot meet is left for resolution to report
/// (with every candidate it saw). Among several providers of a capability
/// the lowest priority number wins, then the id, as resolution chooses.
/// Products the suite names itself are never replaced: what it lists wins,
/// and a listed product out of a requirement's range is an error of the
/// resolution, not a reason to pull in another version.
fn pull_in<P: SourceProduct>(
    products: &mut Vec<ProductModel>,
    provenance: &mut BTreeMap<ProductId, Provenance>,
    suite_requires: &[CapabilityRequirement],
    mut rest: BTreeMap<ProductId, Vec<P>>,
    roles: &EffectiveRoles,
    errors: &mut Vec<AssembleError>,
) -> Vec<ProductId> {
    let mut pulled = Vec::new();
    let mut held: BTreeSet<ProductId> = products.iter().map(|product| product.id.clone()).collect();
    // Catalog products assembled while looking for a capability's provider,
    // kept for the next capability; `None` for one whose selection is
    // ambiguous for these roles (never a provider).
    let mut candidates: BTreeMap<ProductId, Option<ProductModel>> = BTreeMap::new();
    let mut unmet_for_good: BTreeSet<(CapabilityName, String)> = BTreeSet::new();
    let mut scanned = 0;
    loop {
        while scanned < products.len() {
            let dependencies = &products[scanned].dependencies;
            let wanted: Vec<ProductRequirement> = dependencies
                .products_before()
                .chain(dependencies.corequisites.iter().cloned())
                .filter(|requirement| !held.contains(&requirement.product))
                .collect();
            scanned += 1;
            for requirement in wanted {
                let id = requirement.product;
                if held.contains(&id) {
                    continue;
                }
                let model = match candidates.remove(&id) {
                    Some(Some(model)) => model,
                    Some(None) => continue,
                    // The highest release the requirement accepts, else the
                    // highest (resolution then names the mismatch).
                    None => match rest.remove(&id).and_then(|mut releases| {
                        let index = highest_in(&releases, &requirement.versions)
                            .or_else(|| highest_in(&releases, &VersionReq::any()))?;
                        Some(releases.swap_remove(index))
                    }) {
                        Some(source) => match source.selected(roles) {
                            Ok((model, selected)) => {
                                provenance.insert(id.clone(), selected);
                                model
                            }
                            Err(ambiguity) => {
                                errors.push(AssembleError::Ambiguous(ambiguity));
                                continue;
                            }
                        },
                        None => continue,
                    },
                };
                held.insert(id.clone());
                pulled.push(id);
                products.push(model);
            }
        }
        let unmet = products
            .iter()
            .flat_map(|product| &product.dependencies.capabilities)
            .chain(suite_requires)
            .find(|requirement| {
                !unmet_for_good.contains(&(
                    requirement.capability.clone(),
                    requirement.versions.to_string(),
                )) && !products.iter().any(|product| {
                    provided_version(product, &requirement.capability, &requirement.versions)
                        .is_some()
                })
            })
            .cloned();
        let Some(requirement) = unmet else {
            break;
        };
        let ids: Vec<ProductId> = rest.keys().cloned().collect();
        for id in ids {
            // A product's highest release stands for it as a provider.
            let highest = rest.remove(&id).and_then(|mut releases| {
                let index = highest_in(&releases, &VersionReq::any())?;
                Some(releases.swap_remove(index))
            });
            if let Some(source) = highest {
                let model = match source.selected(roles) {
                    Ok((model, selected)) => {
                        provenance.insert(id.clone(), selected);
                        Some(model)
                    }
                    Err(_) => None,
                };
                candidates.insert(id, model);
            }
        }
        let provider = candidates
            .iter()
            .filter_map(|(id, model)| Some((id, model.as_ref()?)))
            .filter(|(_, model)| {
                provided_version(model, &requirement.capability, &requirement.versions).is_some()
            })
            .min_by_key(|(id, model)| (model.priority, (*id).clone()))
            .map(|(id, _)| id.clone());
        match provider.and_then(|id| Some((id.clone(), candidates.remove(&id)??))) {
            Some((id, model)) => {
                held.insert(id.clone());
                pulled.push(id);
                products.push(model);
            }
            None => {
                unmet_for_good.insert((requirement.capability, requirement.versions.to_string()));
            }
        }
    }
    // Provenance only for what the suite holds.
    provenance.retain(|id, _| held.contains(id));
    pulled
}

/// The position of the highest release in `releases` whose version is in
/// `versions`.
fn highest_in<P: SourceProduct>(releases: &[P], versions: &VersionReq) -> Option<usize> {
    releases
        .iter()
        .enumerate()
        .filter(|(_, release)| versions.matches(&release.source().version))
        .max_by(|(_, a), (_, b)| a.source().version.cmp(&b.source().version))
        .map(|(index, _)| index)
}

/// Whether the members of `suite` (`members`, every role version of each)
/// may need a product the suite does not name: some version of some
/// member names a prerequisite or corequisite that is not a member, or a
/// capability requirement (of a member or of the suite) names a
/// capability no version of any member provides in range. When it says
/// no, assembling from the members alone gives what assembling from the
/// whole catalog gives, so a reader need not read the rest of the catalog.
pub fn needs_catalog(suite: &SuiteSource, members: &[&ProductSource]) -> bool {
    let ids: BTreeSet<&ProductId> = members.iter().map(|product| &product.id).collect();
    let dependencies = || {
        members
            .iter()
            .flat_map(|product| &product.dependencies.versions)
            .map(|version| &version.value)
    };
    let names_outsider = dependencies().any(|dependencies| {
        dependencies
            .products_before()
            .chain(dependencies.corequisites.iter().cloned())
            .any(|requirement| !ids.contains(&requirement.product))
    });
    if names_outsider {
        return true;
    }
    let provided = |requirement: &CapabilityRequirement| {
        members.iter().any(|product| {
            product.capabilities.versions.iter().any(|version| {
                version.value.provides.iter().any(|capability| {
                    capability.name == requirement.capability
                        && requirement
                            .versions
                            .matches(capability.version.as_ref().unwrap_or(&product.version))
                })
            })
        })
    };
    dependencies()
        .flat_map(|dependencies| &dependencies.capabilities)
        .chain(
            suite
                .capabilities
                .versions
                .iter()
                .flat_map(|version| &version.value.requires),
        )
        .any(|requirement| !provided(requirement))
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

    fn ids(suite: &Suite) -> Vec<&str> {
        suite
            .products
            .iter()
            .map(|product| product.id.as_str())
            .collect()
    }

    /// A member's library chain and a capability's provider come from the
    /// catalog; what the suite names itself wins; the plan requests only
    /// members and says why each pulled product is there.
    #[test]
    fn what_members_require_is_pulled_in_from_the_catalog() {
        let suite = suite(r#"<product ref="app"/><product ref="tool" role="dev"/>"#);
        let app = product(
            "app",
            "2.0",
            r#"<dependencies><prerequisite product="libfoo" version="&gt;=1.2"/><requires capability="java"/></dependencies>"#,
        );
        let libfoo = product(
            "libfoo",
            "1.4",
            r#"<dependencies><prerequisite product="libbar"/></dependencies>"#,
        );
        let libbar = product("libbar", "0.9", "");
        let tool = product(
            "tool",
            "1.0",
            r#"<dependencies><corequisite product="tool-data"/></dependencies>"#,
        );
        let tool_data = product("tool-data", "1.0", "");
        let jre_a = product(
            "jre-a",
            "8",
            r#"<capabilities><provides name="java"/></capabilities>"#,
        );
        let mut jre_b = product(
            "jre-b",
            "11",
            r#"<capabilities><provides name="java"/></capabilities>"#,
        );
        jre_b.priority = 10;
        let unrelated = product("unrelated", "1.0", "");
        let catalog = [
            unrelated, jre_a, jre_b, tool_data, tool, libbar, libfoo, app,
        ];
        let user = assemble_suite(&suite, &catalog, &roles(&[])).unwrap();
        assert_eq!(ids(&user.suite), ["app", "libfoo", "libbar", "jre-b"]);
        assert_eq!(
            user.suite
                .pulled_in
                .iter()
                .map(ProductId::as_str)
                .collect::<Vec<_>>(),
            ["libfoo", "libbar", "jre-b"]
        );
        assert!(
            user.product_provenance
                .contains_key(&ProductId::new("libbar").unwrap())
        );
        let plan = crate::resolve::resolve_suite(&user.suite, None).unwrap();
        let order: Vec<&str> = plan.order().map(ProductId::as_str).collect();
        assert_eq!(
            order,
            ["jre-b", "libbar", "libfoo", "app"],
            "jre-b has the lowest priority number"
        );
        let libbar_id = ProductId::new("libbar").unwrap();
        assert_eq!(
            plan.why(&libbar_id),
            ["prerequisite of libfoo (any version)"]
        );
        assert!(
            plan.why(&ProductId::new("jre-b").unwrap())[0]
                .starts_with("provides capability java (any version) required by app"),
        );
        // Only the role that gets the tool gets its corequisite.
        let dev = assemble_suite(&suite, &catalog, &roles(&[("dev", 1)])).unwrap();
        assert!(ids(&dev.suite).contains(&"tool-data"));
        assert!(!ids(&user.suite).contains(&"tool-data"));
        // A suite that names libfoo itself keeps its own: nothing replaces
        // it, and its range error is resolution's to report.
        let named = self::suite(r#"<product ref="app"/><product ref="libfoo" version="&lt;1.3"/>"#);
        let catalog_old = {
            let mut catalog = catalog.to_vec();
            let mut old = catalog
                .iter()
                .find(|p| p.id.as_str() == "libfoo")
                .unwrap()
                .clone();
            old.version = crate::version::Version::new("1.1").unwrap();
            catalog.retain(|p| p.id.as_str() != "libfoo");
            catalog.push(old);
            catalog
        };
        let assembled = assemble_suite(&named, &catalog_old, &roles(&[])).unwrap();
        assert!(
            !assembled
                .suite
                .pulled_in
                .iter()
                .any(|id| id.as_str() == "libfoo")
        );
        let errors = crate::resolve::resolve_suite(&assembled.suite, None).unwrap_err();
        assert!(errors[0].to_string().contains("libfoo"), "{errors:?}");
    }

    /// A requirement the catalog cannot meet is left to resolution, which
    /// names it; what the members need is decided over every role version.
    #[test]
    fn an_unmet_requirement_stays_for_resolution_and_needs_catalog_says_when_to_read() {
        let suite = suite(r#"<product ref="app"/>"#);
        let app = product(
            "app",
            "1",
            r#"<dependencies role="dev"><requires capability="ghost"/></dependencies>"#,
        );
        assert!(needs_catalog(&suite, &[&app]));
        let assembled =
            assemble_suite(&suite, std::slice::from_ref(&app), &roles(&[("dev", 1)])).unwrap();
        assert!(assembled.suite.pulled_in.is_empty());
        let errors = crate::resolve::resolve_suite(&assembled.suite, None).unwrap_err();
        assert!(errors[0].to_string().contains("ghost"), "{errors:?}");
        let whole = self::suite(r#"<product ref="app"/><product ref="lib"/>"#);
        let app = product(
            "app",
            "1",
            r#"<dependencies><prerequisite product="lib"/></dependencies>"#,
        );
        let lib = product("lib", "1", "");
        assert!(!needs_catalog(&whole, &[&app, &lib]));
        assert!(needs_catalog(&suite, &[&app]));
    }

    /// A role's `<variables>` changes one variable and keeps the others of
    /// the default version.
    #[test]
    fn a_role_version_of_the_variables_overrides_one_variable() {
        let suite = suite(r#"<product ref="app"/>"#);
        let app = product(
            "app",
            "1",
            r#"<variables><string name="server" default="mail.example.org"/><integer name="port" default="143"/></variables>
               <variables role="dev"><string name="server" default="mail.dev.example.org"/><boolean name="debug" default="true"/></variables>"#,
        );
        let dev =
            assemble_suite(&suite, std::slice::from_ref(&app), &roles(&[("dev", 1)])).unwrap();
        let variables: Vec<(String, Option<String>)> = dev.suite.products[0]
            .variables
            .iter()
            .map(|variable| {
                (
                    variable.name.to_string(),
                    variable.default.as_ref().map(ToString::to_string),
                )
            })
            .collect();
        assert_eq!(
            variables,
            [
                ("server".to_owned(), Some("mail.dev.example.org".to_owned())),
                ("port".to_owned(), Some("143".to_owned())),
                ("debug".to_owned(), Some("true".to_owned())),
            ]
        );
        let user = assemble_suite(&suite, std::slice::from_ref(&app), &roles(&[])).unwrap();
        assert_eq!(user.suite.products[0].variables.len(), 2);
        let by_reference = app.select(&roles(&[("dev", 1)])).unwrap().0;
        assert_eq!(by_reference, dev.suite.products[0]);
    }

    /// The catalog holds 1.6 and 1.7: a member without a range takes 1.7,
    /// one with a range the highest it accepts, and a role's own listing
    /// (pilots first) wins over the listing for everyone.
    #[test]
    fn members_take_the_highest_release_their_range_and_role_accept() {
        let old = product("app", "1.6", "");
        let new = product("app", "1.7", "");
        let lib = product("lib", "2.0", "");
        let catalog = [new.clone(), old.clone(), lib];
        let version = |suite: &SuiteSource, roles: &EffectiveRoles| {
            assemble_suite(suite, &catalog, roles)
                .unwrap()
                .suite
                .products[0]
                .version
                .to_string()
        };
        let latest = suite(r#"<product ref="app"/>"#);
        assert_eq!(version(&latest, &roles(&[])), "1.7");
        let pinned = suite(r#"<product ref="app" version="&lt;1.7"/>"#);
        assert_eq!(version(&pinned, &roles(&[])), "1.6");
        let pilot = suite(
            r#"<product ref="app" version="&lt;1.7"/><product ref="app" role="pilot"/><product ref="lib"/>"#,
        );
        assert_eq!(version(&pilot, &roles(&[])), "1.6");
        assert_eq!(version(&pilot, &roles(&[("pilot", 5)])), "1.7");
        assert_eq!(
            assemble_suite(&pilot, &catalog, &roles(&[("pilot", 5)]))
                .unwrap()
                .suite
                .products
                .len(),
            2,
            "app once, and lib"
        );
        let impossible = suite(r#"<product ref="app" version="&gt;=2"/>"#);
        let errors = assemble_suite(&impossible, &catalog, &roles(&[])).unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "suite s accepts product app at versions >=2, but the catalog has 1.7"
        );
    }
}
