//! Roleout's directory layer: the only crate that knows LDAP.
//!
//! It owns the LDAP schema ([`schema`]), where entries live ([`Layout`]),
//! the connection and its primitive operations ([`Directory`]), the mapping
//! of roles and machines to entries ([`roles`], [`machines`]) and the
//! embedded slapd that Roleout runs when no directory is configured
//! ([`LocalDirectory`]). Nothing above this crate sees a DN string built by
//! hand, a filter or an ldap3 type.
//!
//! Inside the crate, every mapping module builds on the same few pieces:
//! `Directory::search` (paged, counted), `read`, `add`, `modify`, `delete`
//! and `rename`, which turn result codes into [`DirectoryError`]s naming the
//! operation and DN; the `EntryValues` trait, which reads values from both
//! of ldap3's value maps; [`escape`] for every value put into a filter or a
//! DN; and [`Layout`] for every DN.

pub mod access;
pub mod catalog;
pub mod connection;
pub mod ds389;
pub mod error;
pub mod escape;
pub mod feed;
pub mod groups;
pub mod images;
pub mod jobs;
pub mod layout;
pub mod leases;
pub mod local;
pub mod machines;
pub mod nonces;
pub mod roles;
pub mod schema;
mod schema_catalog;
mod schema_images;
pub mod settings;

pub use connection::Directory;
pub use error::{DirectoryError, Result};
pub use layout::Layout;
pub use local::{LocalDirectory, LocalOptions, Replication};
pub use settings::{Bind, SearchScope, Secret, Settings};
