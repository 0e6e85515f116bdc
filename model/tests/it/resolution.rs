//! Properties of role-version selection and of install-plan resolution,
//! checked on random inputs: random role hierarchies and versioned slots
//! for `role::select`; random dependency graphs (acyclic and cyclic) for
//! `resolve::resolve`'s ordering and cycle reports.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;

use roleout_model::ids::{ProductId, RoleName, SuiteId};
use roleout_model::product::{
    Capabilities, Conflicts, Dependencies, InstallFileSet, InstallSize, Platform,
    ProductDescription, ProductModel, ProductRequirement,
};
use roleout_model::resolve::{Plan, Reason, Request, ResolveError, resolve};
use roleout_model::role::{Role, RoleHierarchy, RoleVersion, Selected, Versioned, select};
use roleout_model::version::{Version, VersionReq};

// ---------------------------------------------------------------------------
// Role-version selection

/// A random role hierarchy: role `i` may have a parent among roles `0..i`,
/// so parents never form a cycle. Small ranks make ties frequent.
fn hierarchy_strategy() -> impl Strategy<Value = Vec<(u32, Option<Index>)>> {
    prop::collection::vec((0u32..4, prop::option::of(any::<Index>())), 1..7)
}

fn role_name(index: usize) -> RoleName {
    RoleName::new(format!("role-{index}")).expect("role-N is a valid role name")
}

/// A name no requester ever holds and the hierarchy does not define.
fn outsider() -> RoleName {
    RoleName::new("outsider").expect("a valid role name")
}

fn build_hierarchy(shape: &[(u32, Option<Index>)]) -> RoleHierarchy {
    RoleHierarchy::new(
        shape
            .iter()
            .enumerate()
            .map(|(index, (rank, parent))| Role {
                name: role_name(index),
                rank: *rank,
                parent: match parent {
                    Some(parent) if index > 0 => Some(role_name(parent.index(index))),
                    _ => None,
                },
                description: None,
            }),
    )
}

/// A slot's versions: each tagged with a random subset of the roles (bit
/// `n` of the mask is the outsider), valued from a small set so that tied
/// versions are sometimes equal.
fn slot_strategy() -> impl Strategy<Value = Vec<(u8, u8)>> {
    prop::collection::vec((any::<u8>(), 0u8..3), 0..7)
}

fn build_slot(role_count: usize, shape: &[(u8, u8)]) -> Versioned<u8> {
    Versioned {
        versions: shape
            .iter()
            .map(|(mask, value)| RoleVersion {
                roles: (0..=role_count.min(7))
                    .filter(|bit| mask & (1 << bit) != 0)
                    .map(|bit| {
                        if bit == role_count.min(7) {
                            outsider()
                        } else {
                            role_name(bit)
                        }
                    })
                    .collect(),
                value: *value,
            })
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn selection_follows_the_highest_held_rank(
        shape in hierarchy_strategy(),
        direct_mask in any::<u8>(),
        slot_shape in slot_strategy(),
    ) {
        let hierarchy = build_hierarchy(&shape);
        let direct: Vec<RoleName> = (0..shape.len())
            .filter(|bit| direct_mask & (1 << bit) != 0)
            .map(role_name)
            .collect();
        let roles = hierarchy.effective(direct.clone()).expect("parents are acyclic and defined");

        // Inheritance: every ancestor of a direct role is held, with its rank.
        for name in &direct {
            let mut current = hierarchy.get(name);
            while let Some(role) = current {
                prop_assert_eq!(roles.rank(&role.name), Some(role.rank));
                current = role.parent.as_ref().and_then(|parent| hierarchy.get(parent));
            }
        }
        prop_assert!(!roles.contains(&outsider()));

        let slot = build_slot(shape.len(), &slot_shape);
        // The rank at which each version applies to this requester, if any.
        let applies_at: Vec<Option<u32>> = slot
            .versions
            .iter()
            .map(|version| version.roles.iter().filter_map(|role| roles.rank(role)).max())
            .collect();
        let top = applies_at.iter().flatten().copied().max();
        let top_values: BTreeSet<u8> = slot
            .versions
            .iter()
            .zip(&applies_at)
            .filter(|(_, rank)| top.is_some() && **rank == top)
            .map(|(version, _)| version.value)
            .collect();

        match select("slot", &slot, &roles) {
            Err(ambiguity) => {
                // Only different versions tied at the top rank are ambiguous.
                prop_assert_eq!(Some(ambiguity.rank), top);
                prop_assert!(top_values.len() > 1, "ambiguity without a tie: {ambiguity}");
            }
            Ok(None) => {
                prop_assert_eq!(top, None);
                prop_assert!(slot.default_version().is_none());
            }
            Ok(Some((value, Selected::Default))) => {
                // The default only when no tagged version applies.
                prop_assert_eq!(top, None);
                let default = slot.default_version().expect("a default was selected");
                prop_assert!(std::ptr::eq(value, default));
            }
            Ok(Some((value, Selected::Role(role)))) => {
                // The very version returned is tagged with the held role
                // named, at the top rank: never a version tagged only for
                // roles the requester lacks, never one beaten by a higher
                // held rank, and no different version tied with it.
                let position = slot
                    .versions
                    .iter()
                    .position(|version| std::ptr::eq(&version.value, value))
                    .expect("the selected value is one of the slot's versions");
                let chosen = &slot.versions[position];
                prop_assert!(chosen.roles.contains(&role));
                prop_assert!(roles.contains(&role));
                prop_assert_eq!(roles.rank(&role), top);
                prop_assert_eq!(applies_at[position], top);
                prop_assert_eq!(top_values.len(), 1);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Resolution: ordering and cycles

fn product_id(index: usize) -> ProductId {
    ProductId::new(format!("p{index:02}")).expect("pNN is a valid product id")
}

fn model(index: usize, priority: i32, needs: &[usize]) -> ProductModel {
    ProductModel {
        id: product_id(index),
        version: Version::new("1.0").expect("a valid version"),
        priority,
        platform: Platform::default(),
        description: ProductDescription::default(),
        size: InstallSize::default(),
        capabilities: Capabilities::default(),
        dependencies: Dependencies {
            prerequisites: needs
                .iter()
                .map(|&needed| ProductRequirement {
                    product: product_id(needed),
                    versions: VersionReq::any(),
                })
                .collect(),
            ..Dependencies::default()
        },
        conflicts: Conflicts::default(),
        variables: Vec::new(),
        fileset: InstallFileSet::default(),
        version_checker: None,
        incremental: None,
        commands: BTreeMap::new(),
    }
}

fn member() -> Reason {
    Reason::SuiteMember {
        suite: SuiteId::new("random").expect("a valid suite id"),
    }
}

fn resolve_all(pool: &[ProductModel], asked: &[usize]) -> Result<Plan, Vec<ResolveError>> {
    resolve(&Request {
        products: asked
            .iter()
            .map(|&index| (product_id(index), member()))
            .collect(),
        pool,
        groups: &[],
        suite_requires: &[],
        platform: None,
    })
}

/// A random DAG over `n` products: the products are created in a random
/// order (`labels`) and each may need only products created before it, so
/// ids say nothing about the order. Returns (priorities, needs) by id.
fn dag_strategy() -> impl Strategy<Value = (Vec<i32>, Vec<Vec<usize>>)> {
    (1usize..12)
        .prop_flat_map(|count| {
            (
                Just((0..count).collect::<Vec<usize>>()).prop_shuffle(),
                prop::collection::vec(-2i32..3, count),
                prop::collection::vec(prop::bool::weighted(0.3), count * count),
            )
        })
        .prop_map(|(labels, priorities, edges)| {
            let count = labels.len();
            let mut needs = vec![Vec::new(); count];
            for later in 0..count {
                for earlier in 0..later {
                    if edges[later * count + earlier] {
                        needs[labels[later]].push(labels[earlier]);
                    }
                }
            }
            (priorities, needs)
        })
}

/// Every product reachable from `asked` through `needs`, `asked` included.
fn closure(needs: &[Vec<usize>], asked: &[usize]) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = asked.to_vec();
    while let Some(node) = stack.pop() {
        if seen.insert(node) {
            stack.extend(&needs[node]);
        }
    }
    seen
}

fn index_of(id: &ProductId) -> usize {
    id.as_str()[1..].parse().expect("ids are pNN")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn order_respects_edges_then_priority_then_id(
        (priorities, needs) in dag_strategy(),
        ask_mask in any::<u16>(),
        seed in any::<u64>(),
    ) {
        let count = priorities.len();
        let pool: Vec<ProductModel> =
            (0..count).map(|index| model(index, priorities[index], &needs[index])).collect();
        let mut asked: Vec<usize> = (0..count).filter(|bit| ask_mask & (1 << bit) != 0).collect();
        if asked.is_empty() {
            asked.push(count - 1);
        }
        let plan = resolve_all(&pool, &asked).expect("a DAG resolves");
        let order: Vec<usize> = plan.order().map(index_of).collect();

        // Exactly the products asked for and what they need.
        prop_assert_eq!(order.iter().copied().collect::<BTreeSet<_>>(), closure(&needs, &asked));
        prop_assert_eq!(order.len(), closure(&needs, &asked).len());

        let position: BTreeMap<usize, usize> =
            order.iter().enumerate().map(|(place, &node)| (node, place)).collect();
        for step in &plan.steps {
            let node = index_of(&step.product);
            // Every edge: what a product needs comes before it.
            for needed in &needs[node] {
                prop_assert!(position[needed] < position[&node], "{needed} after {node}");
            }
            let after: BTreeSet<usize> = step.after.iter().map(index_of).collect();
            prop_assert_eq!(after, needs[node].iter().copied().collect::<BTreeSet<_>>());
        }
        // Each step is the smallest (priority, id) among the products whose
        // needs were all placed before it.
        for (place, &node) in order.iter().enumerate() {
            let placed: BTreeSet<usize> = order[..place].iter().copied().collect();
            let best_ready = order[place..]
                .iter()
                .copied()
                .filter(|candidate| needs[*candidate].iter().all(|n| placed.contains(n)))
                .min_by_key(|&candidate| (priorities[candidate], candidate));
            prop_assert_eq!(best_ready, Some(node));
        }

        // The same again, and the same for any order of the pool and of the
        // request.
        let again = resolve_all(&pool, &asked).expect("a DAG resolves");
        prop_assert_eq!(&again, &plan);
        let mut shuffled_pool = pool.clone();
        let mut shuffled_asked = asked.clone();
        shuffle(&mut shuffled_pool, seed);
        shuffle(&mut shuffled_asked, seed.rotate_left(17));
        let permuted = resolve_all(&shuffled_pool, &shuffled_asked).expect("a DAG resolves");
        let permuted_order: Vec<usize> = permuted.order().map(index_of).collect();
        prop_assert_eq!(&permuted_order, &order);
        for (first, second) in plan.steps.iter().zip(&permuted.steps) {
            prop_assert_eq!(&first.after, &second.after);
        }
    }
}

/// A deterministic Fisher-Yates shuffle driven by a small xorshift, so a
/// failing case replays from its seed.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for end in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let pick = (state % (end as u64 + 1)) as usize;
        items.swap(end, pick);
    }
}

/// A random directed graph over up to 10 products, self-loops allowed.
fn graph_strategy() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..10).prop_flat_map(|count| {
        prop::collection::vec(prop::bool::weighted(0.2), count * count).prop_map(move |edges| {
            (0..count)
                .map(|from| (0..count).filter(|to| edges[from * count + to]).collect())
                .collect()
        })
    })
}

/// The strongly connected components that hold a cycle, computed from the
/// transitive closure (independently of the resolver's algorithm).
fn cyclic_components(needs: &[Vec<usize>]) -> BTreeSet<Vec<usize>> {
    let count = needs.len();
    let mut reach = vec![vec![false; count]; count];
    for (from, targets) in needs.iter().enumerate() {
        for &to in targets {
            reach[from][to] = true;
        }
    }
    for middle in 0..count {
        for from in 0..count {
            for to in 0..count {
                if reach[from][middle] && reach[middle][to] {
                    reach[from][to] = true;
                }
            }
        }
    }
    (0..count)
        .filter(|&node| reach[node][node])
        .map(|node| {
            (0..count)
                .filter(|&other| reach[node][other] && reach[other][node])
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_cyclic_component_is_reported_with_a_real_path(needs in graph_strategy()) {
        let count = needs.len();
        let pool: Vec<ProductModel> = (0..count).map(|index| model(index, 0, &needs[index])).collect();
        let asked: Vec<usize> = (0..count).collect();
        let expected = cyclic_components(&needs);
        match resolve_all(&pool, &asked) {
            Ok(plan) => {
                prop_assert!(expected.is_empty(), "cycles {expected:?} not reported");
                let order: Vec<usize> = plan.order().map(index_of).collect();
                let position: BTreeMap<usize, usize> =
                    order.iter().enumerate().map(|(place, &node)| (node, place)).collect();
                for (node, targets) in needs.iter().enumerate() {
                    for target in targets {
                        prop_assert!(position[target] < position[&node]);
                    }
                }
            }
            Err(errors) => {
                let mut reported = BTreeSet::new();
                for error in &errors {
                    let ResolveError::Cycle { path, members } = error else {
                        return Err(TestCaseError::fail(format!("unexpected error: {error}")));
                    };
                    let path: Vec<usize> = path.iter().map(index_of).collect();
                    let members: Vec<usize> = members.iter().map(index_of).collect();
                    // A closed, elementary path along real edges, inside
                    // the component it names.
                    prop_assert!(path.len() >= 2);
                    prop_assert_eq!(path.first(), path.last());
                    for pair in path.windows(2) {
                        prop_assert!(needs[pair[0]].contains(&pair[1]), "no edge {pair:?}");
                    }
                    let interior: BTreeSet<usize> = path[1..].iter().copied().collect();
                    prop_assert_eq!(interior.len(), path.len() - 1, "repeated node in {:?}", path);
                    prop_assert!(path.iter().all(|node| members.contains(node)));
                    prop_assert!(reported.insert(members), "component reported twice");
                }
                prop_assert_eq!(reported, expected);
            }
        }
    }
}
