//! Reading the catalog: one product, one suite with its member products,
//! the assembly of a suite for a role set, and the whole catalog for
//! export.
//!
//! The number of searches does not depend on the number of products: a
//! suite is read with one subtree search under its entry and one subtree
//! search under `ou=products` whose filter selects the member products and
//! their object versions (`roleoutOf`), or, past [`MAX_FILTERED_MEMBERS`]
//! members, the whole `ou=products` subtree (a long OR filter costs the
//! server more than returning a few unrelated products). Each search is
//! one request where the account's limits allow it (see connection.rs).
//!
//! A build reads each product entry as it arrives and keeps only what it
//! needs from it (see `mapping::ProductPart`): at 10,000
//! products the entries would otherwise be about 100,000 maps of strings
//! held until the end and then freed, which cost more than the search.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ldap3::{ResultEntry, Scope};
use tracing::instrument;

use roleout_model::assemble::{AssembleError, needs_catalog};
use roleout_model::ids::{ProductId, Sha256, SuiteId};
use roleout_model::product::{ProductSource, Provenance};
use roleout_model::role::{EffectiveRoles, Selected};
use roleout_model::suite::{Suite, SuiteSlot, SuiteSource};

use crate::catalog::CatalogError;
use crate::catalog::cache::{ENTRY_CSN, ENTRY_USN, ProductCache, Validator, validator_member};
use crate::catalog::entry::CatalogEntry;
use crate::catalog::mapping::{
    GroupedEntries, ProductPart, attribute, class, group_entries, place_parts, product_digests,
    product_dn, product_from_entries, suite_dn, suite_from_entries,
};
use crate::catalog::releases::{catalog_digest, releases_of};
use crate::catalog::store::{from_result, from_search};
use crate::connection::{Directory, EntrySink};
use crate::escape;

/// Up to this many members, a suite's products are read with a filter
/// naming each ([`products_filter`]); above it, with the whole
/// `ou=products` subtree, of which the reader keeps the members.
///
/// Why 64. slapd tests every entry it returns against the whole filter,
/// two clauses per member, so the filter's cost grows with the square of
/// the members, while reading the subtree costs every entry of the
/// catalog. Measured with `ldapsearch` on the managed slapd (equality
/// indexes on `cn` and `roleoutOf`), DNs only, median of 5:
///
/// - catalog of 100 products (972 entries): all 100 members by filter
///   80 ms with `(&(objectClass=roleoutProduct)(cn=ID))(roleoutOf=ID)` per
///   member, 42 to 54 ms with `(cn=ID)(roleoutOf=ID)`, the subtree 31 to
///   35 ms;
/// - catalog of 10,000 products (96,450 entries): 1, 32, 64, 100 and 200
///   members by filter 19, 21, 30, 39 and 85 ms; the subtree 2 s.
///
/// The builder does not know the catalog's size without one more search,
/// so it takes the suite's size as the sign: a suite of more than 64
/// products is taken to be much of its catalog. Up to 64 members the filter
/// costs at most about 10 ms more than the entries it returns; a small
/// suite in a large catalog reads only its own entries. The price: a suite
/// of a few hundred members in a catalog of thousands reads the whole
/// catalog (2 s at 10,000 products where the filter takes 0.1 s).
pub const MAX_FILTERED_MEMBERS: usize = 64;

/// The filter of a search under `ou=products` that returns the entries of
/// `members` (each product's entry, by `cn`, and its object versions, by
/// `roleoutOf`), or every entry above [`MAX_FILTERED_MEMBERS`] members.
/// The clauses are bare equalities on indexed attributes: an object
/// version whose `cn` happens to equal a member's id is returned too, and
/// dropped by the reader, which keeps only entries of the members' shapes.
pub fn products_filter(members: &[&ProductId]) -> String {
    if members.len() > MAX_FILTERED_MEMBERS {
        return "(objectClass=*)".to_owned();
    }
    let parts: String = members
        .iter()
        .map(|product| {
            format!(
                "{}{}",
                escape::equality(attribute::CN, product.as_str()),
                escape::equality(attribute::OF, product.as_str())
            )
        })
        .collect();
    format!("(|{parts})")
}

/// A suite assembled for one role set, with where every part came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledSuite {
    /// The suite with its products, one version of every slot.
    pub suite: Suite,
    /// Which version each suite slot came from.
    pub suite_provenance: BTreeMap<SuiteSlot, Selected>,
    /// Which version each slot of each product came from.
    pub product_provenance: BTreeMap<ProductId, Provenance>,
    /// The source digests it was assembled from: `suite/ID` and
    /// `product/ID` to the `roleoutSourceDigest` of each. A build made
    /// from these is stale as soon as one of them changes.
    pub sources: BTreeMap<String, Sha256>,
}

/// Whether an owner entry has been completely written (see store.rs).
pub(crate) fn is_written(owner: &CatalogEntry) -> bool {
    !owner.values(attribute::SOURCE_DIGEST).is_empty()
}

fn read_product(
    grouped: &GroupedEntries<'_>,
    id: &str,
) -> Option<Result<ProductSource, CatalogError>> {
    let owner = grouped.owners.get(id).filter(|owner| is_written(owner))?;
    Some(product_from_entries(owner, grouped.children_of(id)))
}

/// Every release of product `id` (highest version first); none when it is
/// not (completely) written.
fn read_releases(
    grouped: &GroupedEntries<'_>,
    id: &str,
) -> Result<Vec<ProductSource>, CatalogError> {
    let Some(owner) = grouped.owners.get(id).filter(|owner| is_written(owner)) else {
        return Ok(Vec::new());
    };
    let children = grouped.children_of(id);
    if owner.values(attribute::RELEASE).is_empty() {
        return Ok(vec![product_from_entries(owner, children)?]);
    }
    releases_of(owner)?
        .iter()
        .map(|release| product_from_entries(&release.alone(owner), children))
        .collect()
}

/// The `roleoutSourceDigest` of an owner entry that reading it checked
/// against its content.
fn source_digest(owner: &CatalogEntry) -> Result<Sha256, CatalogError> {
    let text = owner.required(attribute::SOURCE_DIGEST)?;
    Sha256::new(text)
        .map_err(|error| owner.malformed(format!("{}: {error}", attribute::SOURCE_DIGEST)))
}

/// Reads the entries of a suite's member products as they arrive,
/// keeping only what the build needs from each (the owner entries of
/// members, the parts read from their children); entries of other
/// products are dropped unread.
struct MemberReader<'a> {
    /// Each member's position in the member list, which indexes the
    /// vectors below.
    wanted: HashMap<&'a str, usize>,
    /// Each member's product entry, once read.
    owners: Vec<Option<CatalogEntry>>,
    /// Each member's object versions read, by lowercase `cn`.
    parts: Vec<HashMap<String, ProductPart>>,
    /// Each member's validator, when asked for.
    validators: Option<Vec<Validator>>,
}

impl EntrySink for MemberReader<'_> {
    type Error = CatalogError;

    fn entry(&mut self, entry: ResultEntry) -> Result<(), CatalogError> {
        let Some(entry) = from_result(entry)? else {
            return Ok(());
        };
        if let Some(validators) = &mut self.validators
            && let Some(member) = validator_member(&entry, &self.wanted)
        {
            validators[member].add(&entry);
        }
        if entry.has_class(class::PRODUCT) {
            let id = entry.required(attribute::CN)?;
            if let Some(&member) = self.wanted.get(id) {
                self.owners[member] = Some(entry);
            }
        } else if entry.has_class(class::OBJECT_VERSION) {
            let owner = entry.required(attribute::OF)?;
            if let Some(&member) = self.wanted.get(owner) {
                let name = entry.required(attribute::CN)?.to_ascii_lowercase();
                self.parts[member].insert(name, ProductPart::read(entry));
            }
        }
        Ok(())
    }

    fn restart(&mut self) {
        self.owners.iter_mut().for_each(|owner| *owner = None);
        self.parts.iter_mut().for_each(HashMap::clear);
        if let Some(validators) = &mut self.validators {
            validators.fill(Validator::default());
        }
    }
}

/// Each member's position in `members`.
fn positions<'a>(members: &[&'a ProductId]) -> HashMap<&'a str, usize> {
    members
        .iter()
        .enumerate()
        .map(|(position, product)| (product.as_str(), position))
        .collect()
}

/// The sink of the search for the change stamps of a build's members.
struct ValidatorReader<'a> {
    wanted: HashMap<&'a str, usize>,
    validators: Vec<Validator>,
}

impl EntrySink for ValidatorReader<'_> {
    type Error = CatalogError;

    fn entry(&mut self, entry: ResultEntry) -> Result<(), CatalogError> {
        if let Some(entry) = from_result(entry)?
            && let Some(member) = validator_member(&entry, &self.wanted)
        {
            self.validators[member].add(&entry);
        }
        Ok(())
    }

    fn restart(&mut self) {
        self.validators.fill(Validator::default());
    }
}

/// A suite and its member products as read for a build, with the source
/// digest of each (checked against the content when read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteSources {
    /// The suite, every role version.
    pub suite: SuiteSource,
    /// Its member products in member order, each once, every role
    /// version; shared with a [`ProductCache`] when one was used.
    pub products: Vec<Arc<ProductSource>>,
    /// `suite/ID` and `product/ID` (of every product read) to their
    /// `roleoutSourceDigest`, keyed as a build's sources are.
    pub digests: BTreeMap<String, Sha256>,
}

impl Directory {
    async fn catalog_search(
        &self,
        base: &str,
        filter: &str,
    ) -> Result<Vec<CatalogEntry>, CatalogError> {
        let found = self
            .search_if_present(base, Scope::Subtree, filter, &["*"])
            .await?;
        found.into_iter().map(from_search).collect()
    }

    /// Product `id` with every role version (one search).
    #[instrument(skip_all, fields(product = %id))]
    pub async fn load_product(&self, id: &ProductId) -> Result<ProductSource, CatalogError> {
        let dn = product_dn(self.layout().products(), id);
        let entries = self.catalog_search(&dn, "(objectClass=*)").await?;
        let grouped = group_entries(&entries, class::PRODUCT)?;
        read_product(&grouped, id.as_str()).unwrap_or_else(|| {
            Err(CatalogError::NotFound {
                what: format!("product {id}"),
            })
        })
    }

    /// Suite `id` with every role version (one search).
    #[instrument(skip_all, fields(suite = %id))]
    pub async fn load_suite(&self, id: &SuiteId) -> Result<SuiteSource, CatalogError> {
        self.load_suite_with_digest(id)
            .await
            .map(|(suite, _digest)| suite)
    }

    /// Suite `id` and its checked source digest (one search).
    async fn load_suite_with_digest(
        &self,
        id: &SuiteId,
    ) -> Result<(SuiteSource, Sha256), CatalogError> {
        let dn = suite_dn(self.layout().suites(), id);
        let entries = self.catalog_search(&dn, "(objectClass=*)").await?;
        let grouped = group_entries(&entries, class::SUITE)?;
        let owner = grouped
            .owners
            .get(id.as_str())
            .filter(|owner| is_written(owner))
            .ok_or_else(|| CatalogError::NotFound {
                what: format!("suite {id}"),
            })?;
        let suite = suite_from_entries(owner, grouped.children_of(id.as_str()))?;
        Ok((suite, source_digest(owner)?))
    }

    /// Suite `id` and each of its member products (in member order, each
    /// once), with every role version: two searches whatever the number of
    /// products.
    pub async fn load_suite_sources(
        &self,
        id: &SuiteId,
    ) -> Result<(SuiteSource, Vec<ProductSource>), CatalogError> {
        let sources = self.load_suite_build_sources(id).await?;
        let products = sources
            .products
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect();
        Ok((sources.suite, products))
    }

    /// [`Directory::load_suite_sources`], with the source digest of the
    /// suite and of every product read, which a build records: read from
    /// the entries, where reading checked them, rather than computed again.
    pub async fn load_suite_build_sources(
        &self,
        id: &SuiteId,
    ) -> Result<SuiteSources, CatalogError> {
        self.load_suite_build_sources_cached(id, None).await
    }

    /// [`Directory::load_suite_build_sources`], taking from `cache` every
    /// product whose entries are those it was read from, and keeping there
    /// every product read (see `catalog::cache`). Three searches with a
    /// non-empty cache (the suite, the `entryCSN`s, the products that
    /// changed, when any did), two without; whatever the number of
    /// products.
    #[instrument(skip_all, fields(suite = %id))]
    pub async fn load_suite_build_sources_cached(
        &self,
        id: &SuiteId,
        cache: Option<&ProductCache>,
    ) -> Result<SuiteSources, CatalogError> {
        let (suite, suite_digest) = self.load_suite_with_digest(id).await?;
        let mut digests = BTreeMap::new();
        digests.insert(format!("suite/{id}"), suite_digest);
        let mut members: Vec<&ProductId> = Vec::new();
        let mut seen = BTreeSet::new();
        for member in &suite.members {
            if seen.insert(&member.product) {
                members.push(&member.product);
            }
        }
        let mut products = Vec::with_capacity(members.len());
        for (product, found) in members
            .iter()
            .zip(self.products_cached(&members, cache).await?)
        {
            let (releases, digest) = found.ok_or_else(|| CatalogError::NotFound {
                what: format!("product {product} (a member of suite {id})"),
            })?;
            digests.insert(format!("product/{product}"), digest);
            products.extend(releases);
        }
        // Members that need what the suite does not name have it pulled in
        // from the rest of the catalog when the suite is assembled: read
        // the rest (two searches more) only then.
        let member_sources: Vec<&ProductSource> = products.iter().map(AsRef::as_ref).collect();
        if needs_catalog(&suite, &member_sources) {
            let others: Vec<ProductId> = self
                .product_ids()
                .await?
                .into_iter()
                .filter(|product| !seen.contains(product))
                .collect();
            let others: Vec<&ProductId> = others.iter().collect();
            for (product, found) in others
                .iter()
                .zip(self.products_cached(&others, cache).await?)
            {
                // A product removed since it was listed is simply absent.
                if let Some((releases, digest)) = found {
                    digests.insert(format!("product/{product}"), digest);
                    products.extend(releases);
                }
            }
        }
        Ok(SuiteSources {
            suite,
            products,
            digests,
        })
    }

    /// Every product of the catalog, by id (one search of the product
    /// entries alone).
    pub async fn product_ids(&self) -> Result<Vec<ProductId>, CatalogError> {
        let found = self
            .search_if_present(
                self.layout().products(),
                Scope::OneLevel,
                &format!("(objectClass={})", class::PRODUCT),
                &[attribute::CN, attribute::SOURCE_DIGEST],
            )
            .await?;
        let mut ids = Vec::new();
        for entry in found {
            let entry = from_search(entry)?;
            if !is_written(&entry) {
                continue;
            }
            let cn = entry.required(attribute::CN)?;
            ids.push(
                ProductId::new(cn)
                    .map_err(|error| entry.malformed(format!("{}: {error}", attribute::CN)))?,
            );
        }
        ids.sort();
        Ok(ids)
    }

    /// Each of `products`, from `cache` where its entries are those it was
    /// read from, else read (one search for all) and kept in `cache`, with
    /// its source digest; `None` for a product the catalog does not hold.
    #[allow(clippy::type_complexity)]
    async fn products_cached(
        &self,
        products: &[&ProductId],
        cache: Option<&ProductCache>,
    ) -> Result<Vec<Option<(Vec<Arc<ProductSource>>, Sha256)>>, CatalogError> {
        let mut found: Vec<Option<(Vec<Arc<ProductSource>>, Sha256)>> = vec![None; products.len()];
        if products.is_empty() {
            return Ok(found);
        }
        if let Some(cache) = cache.filter(|cache| !cache.is_empty()) {
            let validators = self.member_validators(products).await?;
            for (slot, (product, validator)) in
                found.iter_mut().zip(products.iter().zip(validators))
            {
                if let Some(validator) = validator {
                    *slot = cache.get(product, &validator);
                }
            }
        }
        let missing: Vec<&ProductId> = products
            .iter()
            .zip(&found)
            .filter(|(_, found)| found.is_none())
            .map(|(product, _)| *product)
            .collect();
        if !missing.is_empty() {
            let mut read = self
                .read_members(&missing, cache.is_some())
                .await?
                .into_iter();
            for slot in found.iter_mut().filter(|found| found.is_none()) {
                let Some(read) = read.next() else {
                    break;
                };
                let Some((releases, digest, validator)) = read else {
                    continue;
                };
                let releases: Vec<Arc<ProductSource>> =
                    releases.into_iter().map(Arc::new).collect();
                if let (Some(cache), Some(validator)) = (cache, validator) {
                    cache.insert(validator, releases.clone(), digest.clone());
                }
                *slot = Some((releases, digest));
            }
        }
        Ok(found)
    }

    /// The entries of `members` under `ou=products` ([`products_filter`]),
    /// handed to `sink`; none when the container does not exist yet.
    async fn search_products<S: EntrySink<Error = CatalogError>>(
        &self,
        members: &[&ProductId],
        attributes: &[&str],
        sink: &mut S,
    ) -> Result<(), CatalogError> {
        let searched = self
            .search_each(
                self.layout().products(),
                Scope::Subtree,
                &products_filter(members),
                attributes,
                sink,
            )
            .await;
        match searched {
            Err(CatalogError::Directory(error)) if error.is_no_such_object() => Ok(()),
            outcome => outcome,
        }
    }

    /// The validator of each of `members` (see `catalog::cache`), from one
    /// search for the change stamps of their entries; `None` for a product
    /// without entries or with an entry that has no stamp.
    async fn member_validators(
        &self,
        members: &[&ProductId],
    ) -> Result<Vec<Option<Sha256>>, CatalogError> {
        let mut reader = ValidatorReader {
            wanted: positions(members),
            validators: vec![Validator::default(); members.len()],
        };
        self.search_products(
            members,
            &[ENTRY_CSN, ENTRY_USN, attribute::OF, attribute::CN],
            &mut reader,
        )
        .await?;
        Ok(reader
            .validators
            .into_iter()
            .map(Validator::finish)
            .collect())
    }

    /// `members` read in full (one search), each checked against its
    /// source digest: the product, that digest, and its validator when
    /// `validators` is asked for and the entries allow one; `None` for a
    /// product the catalog does not hold (or has not finished writing).
    #[allow(clippy::type_complexity)]
    async fn read_members(
        &self,
        members: &[&ProductId],
        validators: bool,
    ) -> Result<Vec<Option<(Vec<ProductSource>, Sha256, Option<Sha256>)>>, CatalogError> {
        let mut reader = MemberReader {
            wanted: positions(members),
            owners: vec![None; members.len()],
            parts: std::iter::repeat_with(HashMap::new)
                .take(members.len())
                .collect(),
            validators: validators.then(|| vec![Validator::default(); members.len()]),
        };
        let attributes: &[&str] = if validators {
            &["*", ENTRY_CSN, ENTRY_USN]
        } else {
            &["*"]
        };
        self.search_products(members, attributes, &mut reader)
            .await?;
        let MemberReader {
            mut owners,
            mut parts,
            validators,
            ..
        } = reader;
        // Each release of a member is put together from the same parts.
        let mut placed = Vec::with_capacity(members.len());
        let mut held: Vec<Option<(usize, Sha256)>> = Vec::with_capacity(members.len());
        for position in 0..members.len() {
            let Some(owner) = owners[position].take().filter(is_written) else {
                held.push(None);
                continue;
            };
            let mut children = std::mem::take(&mut parts[position]);
            let releases = releases_of(&owner)?;
            held.push(Some((releases.len(), catalog_digest(&owner)?)));
            if releases.len() == 1 {
                let product = place_parts(&owner, children)?;
                placed.push((owner, product));
                continue;
            }
            for release in &releases {
                let alone = release.alone(&owner);
                let own: HashMap<String, ProductPart> = release
                    .current
                    .iter()
                    .filter_map(|cn| {
                        let key = cn.to_ascii_lowercase();
                        let part = children.get(&key)?.copy();
                        Some((key, part))
                    })
                    .collect();
                let product = place_parts(&alone, own)?;
                placed.push((alone, product));
            }
            children.clear();
        }
        // Each product is checked against its source digest; computing
        // them is most of putting products together.
        let computed = product_digests(
            &placed
                .iter()
                .map(|(_, product)| product.product())
                .collect::<Vec<_>>(),
        );
        let mut validators = validators
            .map(|validators| validators.into_iter().map(Validator::finish).collect())
            .unwrap_or_else(|| vec![None; members.len()])
            .into_iter();
        let mut read = Vec::with_capacity(placed.len());
        for ((owner, placed), computed) in placed.into_iter().zip(computed) {
            read.push(placed.check(&owner, &computed?)?);
        }
        let mut read = read.into_iter();
        let mut products = Vec::with_capacity(members.len());
        for held in held {
            let validator = validators.next().flatten();
            products.push(match held {
                Some((count, digest)) => {
                    let releases: Vec<ProductSource> = read.by_ref().take(count).collect();
                    Some((releases, digest, validator))
                }
                None => None,
            });
        }
        Ok(products)
    }

    /// Suite `id` as a requester with `roles` gets it (Figs. 8-9): each
    /// slot's version for the highest-ranked role, else the default; the
    /// members that apply to the roles, each assembled the same way.
    /// Fails with [`CatalogError::Ambiguity`] when two versions tie, and
    /// with [`CatalogError::MemberVersion`] when a member's range excludes
    /// the catalog's version of the product.
    #[instrument(skip_all, fields(suite = %id, roles = %roles.key()))]
    pub async fn assemble_suite(
        &self,
        id: &SuiteId,
        roles: &EffectiveRoles,
    ) -> Result<AssembledSuite, CatalogError> {
        let (source, products) = self.load_suite_sources(id).await?;
        assemble(&source, &products, roles)
    }

    /// Every product (each of its releases, highest version first) and
    /// suite of the catalog (two searches), for export.
    #[instrument(skip_all)]
    pub async fn export_catalog(
        &self,
    ) -> Result<(Vec<SuiteSource>, Vec<ProductSource>), CatalogError> {
        let product_entries = self
            .catalog_search(self.layout().products(), "(objectClass=*)")
            .await?;
        let suite_entries = self
            .catalog_search(self.layout().suites(), "(objectClass=*)")
            .await?;
        let grouped = group_entries(&product_entries, class::PRODUCT)?;
        let mut products = Vec::new();
        for id in grouped.owners.keys() {
            products.extend(read_releases(&grouped, id)?);
        }
        let grouped = group_entries(&suite_entries, class::SUITE)?;
        let mut suites = Vec::new();
        for (id, owner) in &grouped.owners {
            if is_written(owner) {
                suites.push(suite_from_entries(owner, grouped.children_of(id))?);
            }
        }
        Ok((suites, products))
    }

    /// The whole catalog as LDIF that `ldapadd` accepts where the base
    /// DIT exists (see [`crate::catalog::ldif::catalog_ldif`]).
    pub async fn export_ldif(&self) -> Result<String, CatalogError> {
        let (suites, products) = self.export_catalog().await?;
        crate::catalog::ldif::catalog_ldif(
            self.layout().products(),
            self.layout().suites(),
            &products,
            &suites,
        )
    }
}

/// Assembles `suite` for `roles` from sources already read (pure; what
/// [`Directory::assemble_suite`] does after its two searches).
pub fn assemble(
    suite: &SuiteSource,
    products: &[ProductSource],
    roles: &EffectiveRoles,
) -> Result<AssembledSuite, CatalogError> {
    // Selection and assembly happen in the model, in one place; this only
    // adds the source digests a build records and turns the first problem
    // into the catalog's error.
    let assembled =
        roleout_model::assemble::assemble_suite(suite, products, roles).map_err(|errors| {
            match errors.into_iter().next() {
                Some(AssembleError::Ambiguous(ambiguity)) => CatalogError::Ambiguity(ambiguity),
                Some(AssembleError::MissingMember { suite, product }) => CatalogError::NotFound {
                    what: format!("product {product} (a member of suite {suite})"),
                },
                Some(AssembleError::MemberVersion {
                    suite,
                    product,
                    versions,
                    found,
                }) => CatalogError::MemberVersion {
                    suite,
                    product: product.to_string(),
                    wanted: versions.to_string(),
                    found: found.to_string(),
                },
                Some(other) => CatalogError::Unrepresentable {
                    what: format!("suite {}", suite.id),
                    reason: other.to_string(),
                },
                None => CatalogError::Unrepresentable {
                    what: format!("suite {}", suite.id),
                    reason: "assembly failed without saying why".to_owned(),
                },
            }
        })?;
    let mut sources = BTreeMap::new();
    sources.insert(
        format!("suite/{}", suite.id),
        crate::catalog::mapping::suite_digest(suite)?,
    );
    for model in &assembled.suite.products {
        if let Some(product) = products.iter().rev().find(|product| product.id == model.id) {
            sources.insert(
                format!("product/{}", product.id),
                crate::catalog::mapping::product_digest(product)?,
            );
        }
    }
    Ok(AssembledSuite {
        suite: assembled.suite,
        suite_provenance: assembled.suite_provenance,
        product_provenance: assembled.product_provenance,
        sources,
    })
}
