//! The product cache of builds against a real slapd: an unchanged catalog
//! is read with one search of `entryCSN`s, and any write to any entry of a
//! product (through Roleout or around it) has that product, and only it,
//! read again, checked as a first read checks it; the builder's service
//! account may read the `entryCSN`s that takes. On 389 Directory Server
//! the USN plugin's `entryUSN` serves in their place.

use std::sync::Arc;

use roleout_directory::Directory;
use roleout_directory::catalog::synthetic::synthetic_suite_id;
use roleout_directory::catalog::{CatalogError, ProductCache, SuiteSources};
use roleout_model::product::ProductSource;
use roleout_model::version::Version;

use crate::catalog::load_synthetic;
use crate::{Server, on_both_servers};

/// The ids of the products of `sources` that are the very values of
/// `before` (taken from the cache, not read again).
fn shared(before: &[Arc<ProductSource>], after: &[Arc<ProductSource>]) -> Vec<bool> {
    before
        .iter()
        .zip(after)
        .map(|(before, after)| Arc::ptr_eq(before, after))
        .collect()
}

/// The synthetic suite's sources read through `cache`, and the searches
/// that took.
async fn read_cached(
    directory: &Directory,
    cache: &ProductCache,
) -> (Result<SuiteSources, CatalogError>, u64) {
    let before = directory.search_count();
    let read = directory
        .load_suite_build_sources_cached(&synthetic_suite_id(), Some(cache))
        .await;
    (read, directory.search_count() - before)
}

#[tokio::test]
async fn a_cached_read_reads_again_exactly_the_products_whose_entries_changed() {
    let loaded = load_synthetic(300).await;
    let directory = &loaded.directory;
    let suite = synthetic_suite_id();
    let cache = ProductCache::new();
    let uncached = directory.load_suite_build_sources(&suite).await.unwrap();

    // The first read fills the cache: the suite and the products, as
    // without a cache.
    let (first, searches) = read_cached(directory, &cache).await;
    let first = first.unwrap();
    assert_eq!(searches, 2);
    assert_eq!(first, uncached);
    assert_eq!(cache.len(), 300);

    // Unchanged: the suite and the entryCSNs, every product from the cache.
    let (second, searches) = read_cached(directory, &cache).await;
    let second = second.unwrap();
    assert_eq!(searches, 2);
    assert_eq!(second, uncached);
    assert!(
        shared(&first.products, &second.products)
            .iter()
            .all(|same| *same)
    );

    // One object version entry changed around Roleout (an attribute that
    // is not content): that product alone is read again.
    let changed = &loaded.products[7].id;
    let layout = directory.layout().clone();
    let child = crate::ldapsearch(
        &loaded.local,
        layout.products(),
        &[&format!("(roleoutOf={changed})"), "1.1"],
    )
    .lines()
    .find_map(|line| line.strip_prefix("dn: ").map(str::to_owned))
    .unwrap();
    crate::ldapadd(
        &loaded.local,
        &format!(
            "dn: {child}\nchangetype: modify\nreplace: roleoutDigest\nroleoutDigest: {}\n",
            "0".repeat(64)
        ),
    );
    let (third, searches) = read_cached(directory, &cache).await;
    let third = third.unwrap();
    assert_eq!(searches, 3, "one more search, for it");
    assert_eq!(third, uncached);
    let same = shared(&second.products, &third.products);
    for (product, same) in second.products.iter().zip(&same) {
        assert_eq!(*same, product.id != *changed, "{}", product.id);
    }

    // A product written through Roleout is read as written.
    let mut rewritten = loaded.products[11].clone();
    rewritten.version = Version::new("99.0").unwrap();
    directory.store_product(&rewritten).await.unwrap();
    let fourth = read_cached(directory, &cache).await.0.unwrap();
    let read = fourth
        .products
        .iter()
        .find(|product| product.id == rewritten.id)
        .unwrap();
    assert_eq!(**read, rewritten);

    // Content changed around Roleout fails the cached read as it fails a
    // first read: the product is read again and its digest checked.
    let tampered = &loaded.products[20].id;
    let owner = roleout_directory::catalog::mapping::product_dn(layout.products(), tampered);
    crate::ldapadd(
        &loaded.local,
        &format!(
            "dn: {owner}\nchangetype: modify\nreplace: roleoutPriority\nroleoutPriority: 12345\n"
        ),
    );
    let error = read_cached(directory, &cache)
        .await
        .0
        .unwrap_err()
        .to_string();
    assert!(error.contains("changed outside Roleout"), "{error}");
    assert!(error.contains(&owner), "{error}");
    let first_read = directory
        .load_suite_build_sources(&suite)
        .await
        .unwrap_err();
    assert_eq!(first_read.to_string(), error);
}

#[tokio::test]
async fn the_builder_account_reads_the_entry_csns_it_needs() {
    let loaded = load_synthetic(80).await;
    let builder = roleout_directory::Directory::connect(&loaded.local.builder_settings())
        .await
        .unwrap();
    let cache = ProductCache::new();
    let first = read_cached(&builder, &cache).await.0.unwrap();
    assert_eq!(cache.len(), 80, "every product has a validator");
    let second = read_cached(&builder, &cache).await.0.unwrap();
    assert!(
        shared(&first.products, &second.products)
            .iter()
            .all(|same| *same)
    );
}

/// Products stored through Roleout, read by the builder's account through
/// a cache: on either server, a second read takes every product from the
/// cache, and a write around Roleout to one entry of one product has that
/// product, and only it, read again.
async fn the_builder_reads_again_only_the_product_that_changed(server: &dyn Server) {
    let (_, suite, products) = roleout_directory::catalog::synthetic::synthetic(12, 4, 5);
    let admin = Directory::connect(&server.admin_settings()).await.unwrap();
    for product in &products {
        admin.store_product(product).await.unwrap();
    }
    admin.store_suite(&suite).await.unwrap();
    let builder = Directory::connect(&server.builder_settings())
        .await
        .unwrap();
    let cache = ProductCache::new();
    let first = read_cached(&builder, &cache).await.0.unwrap();
    assert_eq!(
        cache.len(),
        12,
        "every product has a validator on {}",
        server.name()
    );
    let (second, searches) = read_cached(&builder, &cache).await;
    let second = second.unwrap();
    assert_eq!(searches, 2);
    assert!(
        shared(&first.products, &second.products)
            .iter()
            .all(|same| *same)
    );

    // One object version entry changed around Roleout (an attribute that
    // is not content).
    let changed = &products[3].id;
    let child = crate::ldapsearch(
        server,
        admin.layout().products(),
        &[&format!("(roleoutOf={changed})"), "1.1"],
    )
    .lines()
    .find_map(|line| line.strip_prefix("dn: ").map(str::to_owned))
    .unwrap();
    crate::ldapmodify(
        server,
        &format!(
            "dn: {child}\nchangetype: modify\nreplace: roleoutDigest\nroleoutDigest: {}\n",
            "0".repeat(64)
        ),
    );
    let (third, searches) = read_cached(&builder, &cache).await;
    let third = third.unwrap();
    assert_eq!(searches, 3, "one more search, for it");
    let same = shared(&second.products, &third.products);
    for (product, same) in second.products.iter().zip(&same) {
        assert_eq!(*same, product.id != *changed, "{}", product.id);
    }
}

on_both_servers!(the_builder_reads_again_only_the_product_that_changed);

#[test]
fn the_readme_usn_change_is_the_one_the_389_instance_makes() {
    assert_eq!(
        crate::readme_block("389 entry usn"),
        roleout_directory::ds389::USN_LDIF
    );
}
