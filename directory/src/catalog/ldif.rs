//! Catalog entries as LDIF (RFC 2849) that `ldapadd` and `slapadd` accept.
//!
//! Used to export the catalog, to ship the example catalog in ldif/, and as
//! the fast bulk-load path: `slapadd` loads an LDIF file offline far faster
//! than one add operation per entry.

use std::collections::BTreeMap;
use std::fmt::Write;

use base64::Engine;

use roleout_model::ids::ProductId;
use roleout_model::product::ProductSource;
use roleout_model::suite::SuiteSource;

use crate::catalog::CatalogError;
use crate::catalog::entry::CatalogEntry;
use crate::catalog::mapping::{attribute, suite_entries};
use crate::catalog::releases::release_entries;

/// Whether `value` may be written as is (RFC 2849 SAFE-STRING); otherwise
/// it is written base64-encoded after `::`.
fn is_safe(value: &str) -> bool {
    let bytes = value.as_bytes();
    let safe_start = !matches!(bytes.first(), Some(b' ' | b':' | b'<'));
    let safe_end = !matches!(bytes.last(), Some(b' '));
    safe_start
        && safe_end
        && bytes
            .iter()
            .all(|byte| byte.is_ascii() && !matches!(byte, b'\0' | b'\n' | b'\r'))
}

fn write_line(out: &mut String, description: &str, value: &str) {
    if value.is_empty() {
        let _ = writeln!(out, "{description}:");
    } else if is_safe(value) {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{description}: {value}");
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        let _ = writeln!(out, "{description}:: {encoded}");
    }
}

/// Appends one entry as an LDIF record: `dn`, then `objectClass`, then the
/// other attributes sorted by description, then a blank line.
pub fn write_entry(out: &mut String, entry: &CatalogEntry) {
    write_line(out, "dn", &entry.dn);
    for value in entry.values(attribute::OBJECT_CLASS) {
        write_line(out, attribute::OBJECT_CLASS, value);
    }
    for (description, values) in &entry.attributes {
        if description.eq_ignore_ascii_case(attribute::OBJECT_CLASS) {
            continue;
        }
        for value in values {
            write_line(out, description, value);
        }
    }
    out.push('\n');
}

/// The LDIF of products and suites, each owner followed by its object
/// versions. The `ou=products` and `ou=suites` entries must already exist
/// where the text is loaded (the base DIT).
pub fn catalog_ldif(
    products_dn: &str,
    suites_dn: &str,
    products: &[ProductSource],
    suites: &[SuiteSource],
) -> Result<String, CatalogError> {
    let mut out = String::new();
    // The releases of one product are written as one owner and its
    // children, as the directory holds them.
    let mut by_id: BTreeMap<&ProductId, Vec<&ProductSource>> = BTreeMap::new();
    for product in products {
        by_id.entry(&product.id).or_default().push(product);
    }
    for releases in by_id.values() {
        for entry in release_entries(products_dn, releases)?.all() {
            write_entry(&mut out, entry);
        }
    }
    for suite in suites {
        for entry in suite_entries(suites_dn, suite)?.all() {
            write_entry(&mut out, entry);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn unsafe_values_are_base64() {
        let mut entry = CatalogEntry::new("cn=x,ou=products,dc=example,dc=org");
        entry.push("objectClass", "roleoutProduct");
        entry.push("roleoutArgv", "{0} leading");
        entry.push("roleoutArgv", " spaced ");
        entry.push("roleoutResponseFileContent", "line one\nline two");
        entry.push("roleoutName;lang-de", "Grüße");
        entry.push("roleoutMedia", "");
        let mut out = String::new();
        write_entry(&mut out, &entry);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "dn: cn=x,ou=products,dc=example,dc=org");
        assert_eq!(lines[1], "objectClass: roleoutProduct");
        assert!(lines.contains(&"roleoutArgv: {0} leading"));
        assert!(lines.contains(&"roleoutArgv:: IHNwYWNlZCA="));
        assert!(lines.contains(&"roleoutResponseFileContent:: bGluZSBvbmUKbGluZSB0d28="));
        assert!(lines.contains(&"roleoutName;lang-de:: R3LDvMOfZQ=="));
        assert!(lines.contains(&"roleoutMedia:"));
        assert!(out.ends_with("\n\n"));
    }
}
