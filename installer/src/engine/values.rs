//! Response files: the variable values a person or an admin gives for a
//! run, read before the suite's linkage and the defaults fill the rest.
//!
//! A response file is TOML. Top-level keys are suite variables; a table
//! named after a product holds that product's variables:
//!
//! ```toml
//! server = "mail.example.org"     # suite variable
//!
//! [notes-client]                  # product variables
//! quota_mb = 4096
//! admin_password = "s3cret-pass"
//! ```
//!
//! Strings, integers and booleans are accepted and handed to validation as
//! their text (`4096`, `true`); everything else is refused with the key it
//! is at. The file holds secrets, so `roleout` refuses one that group or
//! others may read.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use roleout_model::ids::{ProductId, VariableName};
use roleout_model::validate::GivenValues;

/// Why a response file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseFileError {
    /// It could not be read.
    #[error("cannot read the response file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Group or others may read it.
    #[error(
        "the response file {path} may be read by group or others (mode {mode:o}); it can hold passwords: chmod 600 it"
    )]
    TooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Someone other than root or the user running `roleout` owns it.
    #[error(
        "the response file {path} is owned by uid {owner}; only root's or your own (uid {user}) is read: chown it"
    )]
    NotOwned {
        /// The file.
        path: String,
        /// Its owner.
        owner: u32,
        /// The user running roleout.
        user: u32,
    },
    /// It is not TOML, or a value is of a kind variables cannot take.
    #[error("response file {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the key or line.
        reason: String,
    },
}

/// Reads a response file (see the module documentation).
pub fn read_response_file(path: &Path) -> Result<GivenValues, ResponseFileError> {
    let shown = path.display().to_string();
    let metadata = fs::metadata(path).map_err(|error| ResponseFileError::Read {
        path: shown.clone(),
        reason: error.to_string(),
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ResponseFileError::TooOpen { path: shown, mode });
    }
    // Another user could write the values (and so the command lines) a
    // root run uses: only root's or the running user's own file is taken.
    let owner = metadata.uid();
    let user = nix::unistd::geteuid().as_raw();
    if owner != user && owner != 0 {
        return Err(ResponseFileError::NotOwned {
            path: shown,
            owner,
            user,
        });
    }
    let text = fs::read_to_string(path).map_err(|error| ResponseFileError::Read {
        path: shown.clone(),
        reason: error.to_string(),
    })?;
    parse_response_file(&text).map_err(|reason| ResponseFileError::Invalid {
        path: shown,
        reason,
    })
}

/// Parses the text of a response file; the error names the key.
pub fn parse_response_file(text: &str) -> Result<GivenValues, String> {
    let table: toml::Table = toml::from_str(text).map_err(|error| {
        // toml's message says line and column; it never echoes a value
        // longer than the offending token, which may be a secret, so keep
        // only its first line.
        error
            .message()
            .lines()
            .next()
            .unwrap_or("not TOML")
            .to_owned()
            + &error
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default()
    })?;
    let mut given = GivenValues::default();
    for (key, value) in table {
        match value {
            toml::Value::Table(product_table) => {
                let product = ProductId::new(&key)
                    .map_err(|error| format!("[{key}] is not a product id: {error}"))?;
                let mut values = BTreeMap::new();
                for (name, value) in product_table {
                    let where_ = format!("{key}.{name}");
                    values.insert(variable_name(&name, &where_)?, scalar(value, &where_)?);
                }
                given.products.insert(product, values);
            }
            other => {
                given
                    .suite
                    .insert(variable_name(&key, &key)?, scalar(other, &key)?);
            }
        }
    }
    Ok(given)
}

fn variable_name(name: &str, where_: &str) -> Result<VariableName, String> {
    VariableName::new(name).map_err(|error| format!("key {where_} is not a variable name: {error}"))
}

fn scalar(value: toml::Value, where_: &str) -> Result<String, String> {
    match value {
        toml::Value::String(text) => Ok(text),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Boolean(flag) => Ok(flag.to_string()),
        other => Err(format!(
            "key {where_} holds a {}; variables take strings, integers or booleans",
            other.type_str()
        )),
    }
}

#[cfg(test)]
// A failed unwrap is a failed test, with its location.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn suite_and_product_values() {
        let given = parse_response_file(
            "server = \"mail\"\n[notes-client]\nquota_mb = 4096\nicon = true\n",
        )
        .unwrap();
        assert_eq!(given.suite[&VariableName::new("server").unwrap()], "mail");
        let product = &given.products[&ProductId::new("notes-client").unwrap()];
        assert_eq!(product[&VariableName::new("quota_mb").unwrap()], "4096");
        assert_eq!(product[&VariableName::new("icon").unwrap()], "true");
    }

    #[test]
    fn arrays_are_refused_with_their_key() {
        let error = parse_response_file("[p]\nlist = [1, 2]\n").unwrap_err();
        assert!(error.contains("p.list"), "{error}");
        let error = parse_response_file("x = = 1\n").unwrap_err();
        assert!(error.contains("line 1"), "{error}");
    }
}
