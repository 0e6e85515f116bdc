//! B1: building one role's suite from the directory, against one ldap3
//! subtree search reading the same product entries.
//!
//! A is a build by a builder that built before (as roleoutd's builder is
//! after its first build, and `roleout-admin build` after its first role
//! set): it keeps the products it read and reads again only those whose
//! entries' `entryCSN` changed. B1c, beside it, is the first build of a
//! new builder, which reads and checks every product.
//!
//! The catalog is synthetic (5 roles, a third of the slots in role
//! versions) and loaded offline with `slapadd`, the bulk path: adding
//! 10,000 products one operation at a time would take minutes.

use anyhow::Context;
use ldap3::{LdapConnAsync, Scope, SearchEntry};

use roleout_builder::build::Builder;
use roleout_directory::catalog::ldif::catalog_ldif;
use roleout_directory::catalog::synthetic::{SYNTHETIC_SUITE, synthetic};
use roleout_directory::{Directory, LocalDirectory};
use roleout_model::ids::SuiteId;
use roleout_model::role::RoleHierarchy;

use crate::bench::{Row, median, millis, time};

/// Roles of the synthetic catalog.
const ROLES: usize = 5;

/// A private slapd holding a synthetic catalog of `products` products.
struct Loaded {
    local: LocalDirectory,
    hierarchy: RoleHierarchy,
}

fn load(products: usize) -> anyhow::Result<Loaded> {
    let mut local = LocalDirectory::temporary().context("starting slapd")?;
    let (roles, suite, sources) = synthetic(products, ROLES, 7);
    let layout = roleout_directory::Layout::new(&local.settings());
    let text = catalog_ldif(
        layout.products(),
        layout.suites(),
        &sources,
        std::slice::from_ref(&suite),
    )?;
    crate::bench::slapadd(&mut local, &text, "catalog")?;
    Ok(Loaded {
        local,
        hierarchy: RoleHierarchy::new(roles),
    })
}

/// One subtree search over the products, every attribute; the entries read.
async fn baseline(url: &str, base: &str) -> anyhow::Result<usize> {
    let (connection, mut ldap) = LdapConnAsync::new(url).await?;
    ldap3::drive!(connection);
    ldap.sasl_external_bind().await?.success()?;
    let (entries, _) = ldap
        .search(base, Scope::Subtree, "(objectClass=*)", vec!["*"])
        .await?
        .success()?;
    let count = entries
        .into_iter()
        .map(SearchEntry::construct)
        .filter(|entry| !entry.attrs.is_empty() || !entry.bin_attrs.is_empty())
        .count();
    ldap.unbind().await?;
    Ok(count)
}

/// The B1 rows for a catalog of `products` products: the build of a
/// builder that built before, and (B1c) the first build of a new one.
pub(crate) fn run(products: usize, runs: usize) -> anyhow::Result<Vec<Row>> {
    let loaded = load(products)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let settings = loaded.local.settings();
    let url = loaded.local.ldapi_url();
    let directory = runtime.block_on(Directory::connect(&settings))?;
    let products_dn = directory.layout().products().to_owned();
    let suite = SuiteId::new(SYNTHETIC_SUITE)?;
    let role = loaded
        .hierarchy
        .iter()
        .nth(1)
        .context("the synthetic catalog has roles")?
        .name
        .clone();
    let roles = loaded.hierarchy.effective([role])?;
    let builder = Builder::new();
    // One build first so that every measured build does the same work
    // (reads, assembles, compares with the stored build), and the builder
    // has built before.
    let first = runtime.block_on(builder.build(&directory, &suite, &roles))?;
    let included = first.suite.products.len();
    let (mut a, mut cold, mut b) = (Vec::new(), Vec::new(), Vec::new());
    let (mut searches, mut cold_searches) = (Vec::new(), Vec::new());
    let mut entries = 0;
    for _ in 0..runs {
        let before = directory.search_count();
        let (elapsed, _) =
            time(|| Ok(runtime.block_on(builder.build(&directory, &suite, &roles))?))?;
        searches.push(directory.search_count() - before);
        a.push(millis(elapsed));
        // A new builder, kept (with what it read) until after the timing.
        let new = Builder::new();
        let before = directory.search_count();
        let (elapsed, _) = time(|| Ok(runtime.block_on(new.build(&directory, &suite, &roles))?))?;
        cold_searches.push(directory.search_count() - before);
        cold.push(millis(elapsed));
        drop(new);
        let (elapsed, count) = time(|| runtime.block_on(baseline(&url, &products_dn)))?;
        entries = count;
        b.push(millis(elapsed));
    }
    let (a, cold, b) = (median(&a), median(&cold), median(&b));
    let figure = a / b;
    Ok(vec![
        Row {
            id: "B1".to_owned(),
            label: format!("build one role's suite, {products} products"),
            a,
            b: Some(b),
            unit: "ms",
            figure,
            target: "A/B <= 1.5".to_owned(),
            met: figure <= 1.5,
            notes: format!(
                "LDAP searches per build {}; {included} products in the build; baseline read {entries} entries",
                distinct(searches)
            ),
        },
        Row {
            id: "B1c".to_owned(),
            label: format!("first build of a new builder, {products}"),
            a: cold,
            b: Some(b),
            unit: "ms",
            figure: cold / b,
            target: "(informative)".to_owned(),
            met: true,
            notes: format!(
                "LDAP searches per build {}; every product read and checked",
                distinct(cold_searches)
            ),
        },
    ])
}

/// The distinct counts, as `3` or `3/4`.
fn distinct(mut counts: Vec<u64>) -> String {
    counts.sort_unstable();
    counts.dedup();
    counts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("/")
}
