//! The catalog in the directory: products and suites with every role
//! version of every object, the builds made from them and the reports
//! machines send back.
//!
//! The mapping between model values and entries is pure ([`mapping`]), so
//! the LDAP writer, the reader, the LDIF exporter and the tests share one
//! definition of what an entry holds. The rest of the module speaks LDAP
//! through [`crate::Directory`].

pub mod builds;
pub mod cache;
pub mod entry;
pub mod ldif;
pub mod mapping;
pub mod read;
pub mod releases;
pub mod reports;
pub mod store;
pub mod synthetic;

pub use builds::{
    BuildWrite, INLINE_CANONICAL_BYTES, MAX_CANONICAL_BYTES, NewBuild, PART_BYTES, StoredBuild,
    build_dn,
};
pub use cache::ProductCache;
pub use entry::CatalogEntry;
pub use mapping::{
    CatalogEntries, normalize_product, product_digest, product_dn, product_entries,
    product_from_entries, suite_digest, suite_dn, suite_entries, suite_from_entries,
};
pub use read::{AssembledSuite, MAX_FILTERED_MEMBERS, SuiteSources, assemble, products_filter};
pub use reports::{
    Pruned, Retention, StoredCompletion, StoredReport, SuiteStatus, reports_to_prune,
};
pub use store::{WriteStep, WriteSummary};

use roleout_model::role::Ambiguity;

use crate::error::DirectoryError;

/// What went wrong storing or reading the catalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// An entry of the directory does not hold what the catalog schema
    /// says it should.
    #[error("malformed catalog entry {dn}: {reason}")]
    Malformed {
        /// The entry.
        dn: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A model value cannot be stored as it is.
    #[error("cannot store {what}: {reason}")]
    Unrepresentable {
        /// The value.
        what: String,
        /// Why not.
        reason: String,
    },
    /// Something the request names is not in the catalog.
    #[error("{what} is not in the catalog")]
    NotFound {
        /// What was looked for, as `product notes-client`.
        what: String,
    },
    /// A suite names a member product in versions the catalog does not
    /// hold.
    #[error(
        "suite {suite} wants product {product} in versions {wanted}, but the catalog has {found}"
    )]
    MemberVersion {
        /// The suite.
        suite: String,
        /// The member product.
        product: String,
        /// The accepted range.
        wanted: String,
        /// The catalog's version.
        found: String,
    },
    /// Two role versions of a slot tie for the requester.
    #[error(transparent)]
    Ambiguity(#[from] Ambiguity),
    /// The directory operation itself failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}
