//! Roleout's directory layer: the only crate that knows LDAP.
