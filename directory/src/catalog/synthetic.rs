//! A synthetic catalog of any size, for tests and benchmarks.
//!
//! Deterministic by seed (its own small generator, no dependency on a
//! random crate's stream staying the same): the same `(n, roles, seed)`
//! always gives the same catalog, so a benchmark run is comparable with the
//! last one. About a third of the slots of each product exist in
//! [`VERSIONS_PER_VERSIONED_SLOT`] versions (a default and versions for
//! distinct roles); roles have distinct ranks, so no role set meets an
//! ambiguity.

use std::collections::{BTreeMap, BTreeSet};

use roleout_model::command::{CommandLineModel, InstallerKind, OutcomeRules, Phase};
use roleout_model::ids::{CapabilityName, ProductId, RoleName, Sha256, SuiteId};
use roleout_model::product::{
    Capabilities, Capability, Dependencies, InstallFile, InstallFileSet, InstallSize, Platform,
    ProductDescription, ProductRequirement, ProductSource,
};
use roleout_model::role::{Role, RoleVersion, Versioned};
use roleout_model::suite::{SuiteDescription, SuiteMember, SuiteSource};
use roleout_model::text::LocalizedText;
use roleout_model::version::{Version, VersionReq};

/// Versions of a slot that has role versions: the default and one per role
/// (fewer when there are fewer roles).
pub const VERSIONS_PER_VERSIONED_SLOT: usize = 3;

/// The id of the synthetic suite.
pub const SYNTHETIC_SUITE: &str = "synthetic";

/// SplitMix64: tiny, fast, and its stream is fixed by its definition.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }

    fn digest(&mut self) -> Sha256 {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        Sha256::from_bytes(&bytes)
    }
}

/// Names built from generated numbers and fixed text are always valid, so
/// a failure here is a bug in this module, not bad input.
fn name<T: std::str::FromStr>(text: String) -> T
where
    T::Err: std::fmt::Debug,
{
    #[allow(clippy::expect_used)]
    text.parse().expect("synthetic names are valid")
}

/// `n` products, `roles` roles and one suite holding every product.
pub fn synthetic(
    n: usize,
    roles: usize,
    seed: u64,
) -> (Vec<Role>, SuiteSource, Vec<ProductSource>) {
    let mut generator = Generator(seed);
    let role_list: Vec<Role> = (0..roles)
        .map(|index| Role {
            name: name(format!("role-{index}")),
            rank: (index as u32 + 1) * 10,
            parent: None,
            description: Some(format!("synthetic role {index}")),
        })
        .collect();
    let products: Vec<ProductSource> = (0..n)
        .map(|index| synthetic_product(index, &role_list, &mut generator))
        .collect();
    let suite = SuiteSource {
        id: name(SYNTHETIC_SUITE.to_owned()),
        version: name(format!("1.{}", seed % 100)),
        description: Versioned::single(SuiteDescription {
            vendor: "Roleout".to_owned(),
            name: LocalizedText::plain(format!("Synthetic suite of {n} products")),
            summary: LocalizedText::default(),
        }),
        capabilities: Versioned::default(),
        categories: Versioned::default(),
        groups: Versioned::default(),
        variables: Versioned::default(),
        presentation: Versioned::default(),
        linkage: Versioned::default(),
        incremental: Versioned::default(),
        policy: Versioned::default(),
        members: products
            .iter()
            .map(|product| SuiteMember {
                product: product.id.clone(),
                versions: VersionReq::any(),
                roles: BTreeSet::new(),
            })
            .collect(),
    };
    (role_list, suite, products)
}

/// The slot's versions: the default only, or (one time in three) the
/// default plus versions for distinct roles, each made by `make(variant)`.
fn versions<T>(
    generator: &mut Generator,
    roles: &[Role],
    mut make: impl FnMut(&mut Generator, usize) -> T,
) -> Versioned<T> {
    let mut slot = Versioned::single(make(generator, 0));
    if generator.below(3) == 0 && !roles.is_empty() {
        let first = generator.below(roles.len() as u64) as usize;
        let extra = (VERSIONS_PER_VERSIONED_SLOT - 1).min(roles.len());
        for offset in 0..extra {
            let role = &roles[(first + offset) % roles.len()];
            slot.versions.push(RoleVersion {
                roles: BTreeSet::from([role.name.clone()]),
                value: make(generator, offset + 1),
            });
        }
    }
    slot
}

fn synthetic_product(index: usize, roles: &[Role], generator: &mut Generator) -> ProductSource {
    let id: ProductId = name(format!("product-{index:05}"));
    let capability: CapabilityName = name(format!("capability-{index}"));
    let version: Version = name(format!(
        "{}.{}.{}",
        1 + index % 7,
        generator.below(20),
        index
    ));
    let description = versions(generator, roles, |_, variant| {
        let mut text = LocalizedText::plain(format!("Product {index} ({variant})"));
        text.insert("de", format!("Produkt {index} ({variant})"));
        ProductDescription {
            vendor: format!("Vendor {}", index % 13),
            name: text,
            summary: LocalizedText::plain("Synthetic product"),
            licence: Some("Apache-2.0".to_owned()),
            media: None,
        }
    });
    let size = versions(generator, roles, |generator, _| InstallSize {
        installed: 1024 * (1 + generator.below(1 << 20)),
    });
    let capabilities = Versioned::single(Capabilities {
        provides: vec![Capability {
            name: capability,
            version: Some(version.clone()),
        }],
    });
    let dependencies = if index == 0 {
        Versioned::default()
    } else {
        let earlier: ProductId = name(format!("product-{:05}", generator.below(index as u64)));
        Versioned::single(Dependencies {
            prerequisites: vec![ProductRequirement {
                product: earlier,
                versions: VersionReq::any(),
            }],
            corequisites: Vec::new(),
            capabilities: Vec::new(),
            replaces: Vec::new(),
            obsoletes: Vec::new(),
            system: Vec::new(),
        })
    };
    let fileset = versions(generator, roles, |generator, variant| InstallFileSet {
        files: (0..1 + generator.below(3))
            .map(|file| InstallFile {
                path: format!("product-{index}-{variant}-{file}.deb"),
                sha256: generator.digest(),
                size: generator.below(1 << 24),
                source: None,
                mode: None,
            })
            .collect(),
    });
    let install = versions(generator, roles, |generator, variant| CommandLineModel {
        kind: InstallerKind::Deb,
        argv: vec![
            "dpkg".to_owned(),
            "-i".to_owned(),
            format!("{{{{ payload }}}}/product-{index}-{variant}-0.deb"),
        ],
        shell: false,
        working_dir: None,
        env: BTreeMap::new(),
        response_file: None,
        timeout_secs: 60 + generator.below(600),
        check_interval_secs: None,
        retries: 0,
        outcome: OutcomeRules::default(),
        remove_when_unassigned: false,
        then: Vec::new(),
    });
    ProductSource {
        id,
        version,
        priority: generator.below(100) as i32,
        platform: Platform {
            os: vec!["linux".to_owned()],
            arch: Vec::new(),
        },
        description,
        size,
        capabilities,
        dependencies,
        conflicts: Versioned::default(),
        variables: Versioned::default(),
        fileset,
        version_checker: Versioned::default(),
        incremental: Versioned::default(),
        commands: BTreeMap::from([(Phase::Install, install)]),
    }
}

/// The suite id of the synthetic suite.
pub fn synthetic_suite_id() -> SuiteId {
    name(SYNTHETIC_SUITE.to_owned())
}

/// The role name `role-INDEX` of the synthetic roles.
pub fn synthetic_role(index: usize) -> RoleName {
    name(format!("role-{index}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_catalog_other_seed_other_catalog() {
        let first = synthetic(20, 4, 7);
        assert_eq!(first, synthetic(20, 4, 7));
        assert_ne!(first.2, synthetic(20, 4, 8).2);
        let (roles, suite, products) = first;
        assert_eq!(roles.len(), 4);
        assert_eq!(products.len(), 20);
        assert_eq!(suite.members.len(), 20);
    }

    #[test]
    fn about_a_third_of_versionable_slots_have_role_versions() {
        let (_, _, products) = synthetic(300, 4, 1);
        let slots: Vec<usize> = products
            .iter()
            .flat_map(|product| {
                [
                    product.description.versions.len(),
                    product.size.versions.len(),
                    product.fileset.versions.len(),
                    product.commands[&Phase::Install].versions.len(),
                ]
            })
            .collect();
        let versioned = slots.iter().filter(|count| **count > 1).count();
        assert!(
            slots
                .iter()
                .all(|count| [1, VERSIONS_PER_VERSIONED_SLOT].contains(count))
        );
        // 1200 slots, each versioned with probability 1/3.
        assert!((300..500).contains(&versioned), "{versioned}");
    }
}
