//! Roleout's directory layer: the only crate that knows LDAP.
pub mod catalog;
