//! Roleout's LDAP schema, kept once as Rust tables.
//!
//! `schemas/roleout.ldif` (for `cn=schema,cn=config`) and
//! `schemas/roleout.schema` (for `slapd.conf`) and `schemas/99roleout.ldif`
//! (for 389 Directory Server's schema folder) are generated from these
//! tables by `cargo run -p roleout-directory --bin roleout-schema`, and a test
//! fails when the checked-in files differ from the generator, so the two
//! forms cannot drift apart. The OIDs hang off Roleout's own UUID arc:
//! attribute types are `ARC.1.N`, object classes `ARC.2.N`. Numbers 1-99
//! (attributes) and 1-49 (classes) are the roles and machines part; the
//! catalog (products, suites, builds, reports) uses 100+ and 50+ in
//! `schema_catalog.rs`, images and installation engines 200+ and 100+ in
//! `schema_images.rs`. Standard attributes (cn, description, member,
//! userCertificate, ipHostNumber) are used wherever one fits.

use std::fmt::Write;

use crate::schema_catalog::{CATALOG_ATTRIBUTES, CATALOG_CLASSES};
use crate::schema_images::{IMAGE_ATTRIBUTES, IMAGE_CLASSES};

/// Roleout's OID arc (a UUID arc, `2.25.<uuid as integer>`).
pub const ARC: &str = "2.25.202304801690159916513666888289314039049";

/// The checked-in cn=config form, as the embedded directory loads it.
pub const ROLEOUT_LDIF: &str = include_str!("../../schemas/roleout.ldif");

/// The checked-in slapd.conf form.
pub const ROLEOUT_SCHEMA: &str = include_str!("../../schemas/roleout.schema");

/// The checked-in 389 Directory Server form.
pub const ROLEOUT_389: &str = include_str!("../../schemas/99roleout.ldif");

/// The value syntax of an attribute type, with its matching rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// UTF-8 text compared without case (names, states).
    Text,
    /// UTF-8 text compared exactly (facts, canonical forms).
    ExactText,
    /// ASCII text compared without case (hex digests, fingerprints).
    Ascii,
    /// TRUE or FALSE.
    Boolean,
    /// A decimal integer, ordered.
    Integer,
    /// A distinguished name.
    Dn,
    /// Arbitrary bytes.
    Bytes,
    /// A GeneralizedTime (`20260101120000Z`), ordered.
    Time,
}

impl Syntax {
    /// The `EQUALITY ... ORDERING ... SUBSTR ... SYNTAX ...` clauses.
    fn clauses(self) -> Vec<String> {
        let (equality, ordering, substrings, syntax) = match self {
            Syntax::Text => (
                "caseIgnoreMatch",
                None,
                Some("caseIgnoreSubstringsMatch"),
                "1.3.6.1.4.1.1466.115.121.1.15",
            ),
            Syntax::ExactText => (
                "caseExactMatch",
                None,
                Some("caseExactSubstringsMatch"),
                "1.3.6.1.4.1.1466.115.121.1.15",
            ),
            Syntax::Ascii => (
                "caseIgnoreIA5Match",
                None,
                Some("caseIgnoreIA5SubstringsMatch"),
                "1.3.6.1.4.1.1466.115.121.1.26",
            ),
            Syntax::Boolean => ("booleanMatch", None, None, "1.3.6.1.4.1.1466.115.121.1.7"),
            Syntax::Integer => (
                "integerMatch",
                Some("integerOrderingMatch"),
                None,
                "1.3.6.1.4.1.1466.115.121.1.27",
            ),
            Syntax::Dn => (
                "distinguishedNameMatch",
                None,
                None,
                "1.3.6.1.4.1.1466.115.121.1.12",
            ),
            Syntax::Bytes => (
                "octetStringMatch",
                None,
                None,
                "1.3.6.1.4.1.1466.115.121.1.40",
            ),
            Syntax::Time => (
                "generalizedTimeMatch",
                Some("generalizedTimeOrderingMatch"),
                None,
                "1.3.6.1.4.1.1466.115.121.1.24",
            ),
        };
        let mut clauses = vec![format!("EQUALITY {equality}")];
        if let Some(ordering) = ordering {
            clauses.push(format!("ORDERING {ordering}"));
        }
        if let Some(substrings) = substrings {
            clauses.push(format!("SUBSTR {substrings}"));
        }
        clauses.push(format!("SYNTAX {syntax}"));
        clauses
    }
}

/// One attribute type of Roleout's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeType {
    /// N in `ARC.1.N`.
    pub number: u32,
    /// The name (`roleoutRank`).
    pub name: &'static str,
    /// What it holds.
    pub description: &'static str,
    /// Its syntax and matching rules.
    pub syntax: Syntax,
    /// True when an entry holds at most one value.
    pub single_value: bool,
}

/// Whether an object class can stand alone or extends another entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassKind {
    /// The entry's main class.
    Structural,
    /// Added to entries of another class.
    Auxiliary,
}

/// One object class of Roleout's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectClass {
    /// N in `ARC.2.N`.
    pub number: u32,
    /// The name (`roleoutRole`).
    pub name: &'static str,
    /// What entries of the class are.
    pub description: &'static str,
    /// Structural or auxiliary.
    pub kind: ClassKind,
    /// The superior class (`top` for auxiliaries).
    pub superior: &'static str,
    /// Required attributes.
    pub must: &'static [&'static str],
    /// Allowed attributes.
    pub may: &'static [&'static str],
}

/// The roles and machines attribute types (numbers 1-99).
pub(crate) const ROLE_MACHINE_ATTRIBUTES: &[AttributeType] = &[
    AttributeType {
        number: 1,
        name: "roleoutRank",
        description: "Rank of a role: the version for the highest-ranked role wins",
        syntax: Syntax::Integer,
        single_value: true,
    },
    AttributeType {
        number: 2,
        name: "roleoutParentRole",
        description: "DN of the role this role inherits from",
        syntax: Syntax::Dn,
        single_value: true,
    },
    AttributeType {
        number: 3,
        name: "roleoutEnabled",
        description: "Whether the machine may authenticate and receive suites",
        syntax: Syntax::Boolean,
        single_value: true,
    },
    AttributeType {
        number: 4,
        name: "roleoutEnrolment",
        description: "Enrolment state of the machine: pending, approved or disabled",
        syntax: Syntax::Text,
        single_value: true,
    },
    AttributeType {
        number: 5,
        name: "roleoutOs",
        description: "Operating system family of the machine (linux)",
        syntax: Syntax::Text,
        single_value: true,
    },
    AttributeType {
        number: 6,
        name: "roleoutArch",
        description: "Processor architecture of the machine (x86_64)",
        syntax: Syntax::Text,
        single_value: true,
    },
    AttributeType {
        number: 7,
        name: "roleoutFact",
        description: "A hardware or software fact of the machine as key=value",
        syntax: Syntax::ExactText,
        single_value: false,
    },
    AttributeType {
        number: 8,
        name: "roleoutCertificateFingerprint",
        description: "SHA-256 of the machine certificate (DER), lowercase hex",
        syntax: Syntax::Ascii,
        single_value: true,
    },
    AttributeType {
        number: 9,
        name: "roleoutEnrolmentToken",
        description: "SHA-256 of a one-time enrolment token, lowercase hex",
        syntax: Syntax::Ascii,
        single_value: true,
    },
    AttributeType {
        number: 10,
        name: "roleoutLastSeen",
        description: "When the machine last authenticated",
        syntax: Syntax::Time,
        single_value: true,
    },
    AttributeType {
        number: 11,
        name: "roleoutLease",
        description: "Who holds the entry, for which job, until when: v1;SERIAL;EXPIRES;HOLDER;JOB",
        syntax: Syntax::ExactText,
        single_value: true,
    },
    AttributeType {
        number: 12,
        name: "roleoutHardware",
        description: "The hardware inventory of the machine as its agent read it, JSON",
        syntax: Syntax::ExactText,
        single_value: true,
    },
    AttributeType {
        number: 13,
        name: "roleoutHardwareKey",
        description: "SHA-256 of what makes two machines the same hardware, lowercase hex",
        syntax: Syntax::Ascii,
        single_value: true,
    },
];

/// The roles and machines object classes (numbers 1-49).
pub(crate) const ROLE_MACHINE_CLASSES: &[ObjectClass] = &[
    ObjectClass {
        number: 1,
        name: "roleoutRole",
        description: "A Roleout role, added to a groupOfNames whose members are machines",
        kind: ClassKind::Auxiliary,
        superior: "top",
        must: &[],
        may: &["roleoutRank", "roleoutParentRole"],
    },
    ObjectClass {
        number: 2,
        name: "roleoutMachine",
        description: "A machine managed by Roleout, added to its device or computer entry",
        kind: ClassKind::Auxiliary,
        superior: "top",
        must: &[],
        may: &[
            "roleoutEnabled",
            "roleoutEnrolment",
            "roleoutOs",
            "roleoutArch",
            "roleoutFact",
            "roleoutCertificateFingerprint",
            "roleoutEnrolmentToken",
            "roleoutLastSeen",
            "roleoutLease",
            "roleoutHardware",
            "roleoutHardwareKey",
            "roleoutImagingSource",
            "roleoutEngine",
        ],
    },
];

/// Every attribute type: roles and machines, the catalog, then images.
pub fn attribute_types() -> impl Iterator<Item = &'static AttributeType> {
    ROLE_MACHINE_ATTRIBUTES
        .iter()
        .chain(CATALOG_ATTRIBUTES)
        .chain(IMAGE_ATTRIBUTES)
}

/// Every object class: roles and machines, the catalog, then images.
pub fn object_classes() -> impl Iterator<Item = &'static ObjectClass> {
    ROLE_MACHINE_CLASSES
        .iter()
        .chain(CATALOG_CLASSES)
        .chain(IMAGE_CLASSES)
}

fn quoted(text: &str) -> String {
    // Schema descriptions are qdstrings: a quote or backslash would have to be
    // escaped as \27 or \5C. Ours are constants without either; the test
    // below keeps it that way.
    format!("'{text}'")
}

fn oid_list(names: &[&str]) -> String {
    match names {
        [single] => (*single).to_owned(),
        many => format!("( {} )", many.join(" $ ")),
    }
}

/// The clauses of an attribute type definition, the OID first.
fn attribute_clauses(attribute: &AttributeType) -> Vec<String> {
    let mut clauses = vec![
        format!("( {ARC}.1.{}", attribute.number),
        format!("NAME {}", quoted(attribute.name)),
        format!("DESC {}", quoted(attribute.description)),
    ];
    clauses.extend(attribute.syntax.clauses());
    if attribute.single_value {
        clauses.push("SINGLE-VALUE".to_owned());
    }
    close(clauses)
}

/// The clauses of an object class definition, the OID first.
fn class_clauses(class: &ObjectClass) -> Vec<String> {
    let mut clauses = vec![
        format!("( {ARC}.2.{}", class.number),
        format!("NAME {}", quoted(class.name)),
        format!("DESC {}", quoted(class.description)),
        format!("SUP {}", class.superior),
        match class.kind {
            ClassKind::Structural => "STRUCTURAL".to_owned(),
            ClassKind::Auxiliary => "AUXILIARY".to_owned(),
        },
    ];
    if !class.must.is_empty() {
        clauses.push(format!("MUST {}", oid_list(class.must)));
    }
    if !class.may.is_empty() {
        clauses.push(format!("MAY {}", oid_list(class.may)));
    }
    close(clauses)
}

fn close(mut clauses: Vec<String>) -> Vec<String> {
    if let Some(last) = clauses.last_mut() {
        last.push_str(" )");
    }
    clauses
}

const HEADER: &str = "Roleout LDAP schema. Generated by `cargo run -p roleout-directory --bin roleout-schema`\n\
from directory/src/schema.rs and schema_catalog.rs: edit those, not this file.\n\
Needs core, cosine and inetorgperson; OIDs under 2.25.202304801690159916513666888289314039049.";

fn comment(text: &str) -> String {
    text.lines().map(|line| format!("# {line}\n")).collect()
}

/// The schema as an LDIF entry for `cn=schema,cn=config` (`cn=roleout`),
/// loadable with `slapadd -n0` (via `include:`) or `ldapadd` into a running
/// server. Continuation lines start with one space (LDIF folding), so each
/// clause sits on its own line as in Debian's schema files.
pub fn generate_ldif() -> String {
    let mut out = comment(HEADER);
    out.push_str("dn: cn=roleout,cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: roleout\n");
    ldif_definitions(&mut out, "olcAttributeTypes", "olcObjectClasses", None);
    out
}

/// Every definition as an LDIF value of `attributes` or `classes`, one
/// clause per line: continuation lines start with one space for the fold
/// and one to separate the clauses. `extension` (`X-ORIGIN 'Roleout'`)
/// goes before each closing parenthesis.
fn ldif_definitions(out: &mut String, attributes: &str, classes: &str, extension: Option<&str>) {
    let mut emit = |key: &str, mut clauses: Vec<String>| {
        if let (Some(extension), Some(last)) = (extension, clauses.last_mut()) {
            if let Some(open) = last.strip_suffix(" )") {
                *last = format!("{open}\n  {extension} )");
            }
        }
        let mut first = true;
        for clause in clauses {
            if first {
                let _ = writeln!(out, "{key}: {clause}");
                first = false;
            } else {
                let _ = writeln!(out, "  {clause}");
            }
        }
    };
    for attribute in attribute_types() {
        emit(attributes, attribute_clauses(attribute));
    }
    for class in object_classes() {
        emit(classes, class_clauses(class));
    }
}

/// The schema in slapd.conf form (`include roleout.schema`).
pub fn generate_schema() -> String {
    let mut out = comment(HEADER);
    let mut emit = |keyword: &str, clauses: Vec<String>| {
        out.push('\n');
        let mut first = true;
        for clause in clauses {
            if first {
                let _ = writeln!(out, "{keyword} {clause}");
                first = false;
            } else {
                let _ = writeln!(out, "\t{clause}");
            }
        }
    };
    for attribute in attribute_types() {
        emit("attributetype", attribute_clauses(attribute));
    }
    for class in object_classes() {
        emit("objectclass", class_clauses(class));
    }
    out
}

/// The schema as a 389 Directory Server schema file (`dn: cn=schema`), for
/// an instance's `schema/` folder (`99roleout.ldif`), read when the server
/// starts or by a schema reload task. The definitions are those of
/// [`generate_ldif`], each marked `X-ORIGIN 'Roleout'` as 389's own are.
pub fn generate_389() -> String {
    let mut out = comment(HEADER);
    out.push_str("dn: cn=schema\n");
    ldif_definitions(
        &mut out,
        "attributeTypes",
        "objectClasses",
        Some("X-ORIGIN 'Roleout'"),
    );
    out
}

/// Checks the tables: numbers within their ranges and unique, names unique
/// and prefixed `roleout`, descriptions free of quotes, every attribute a
/// class names either Roleout's own or a standard one. Returns every problem.
pub fn check_tables() -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut numbers = std::collections::BTreeSet::new();
    for (attribute, range) in ROLE_MACHINE_ATTRIBUTES
        .iter()
        .map(|a| (a, 1..100))
        .chain(CATALOG_ATTRIBUTES.iter().map(|a| (a, 100..200)))
        .chain(IMAGE_ATTRIBUTES.iter().map(|a| (a, 200..300)))
    {
        let in_range = range.contains(&attribute.number);
        if !in_range {
            problems.push(format!(
                "attribute {} has number {} outside its range",
                attribute.name, attribute.number
            ));
        }
        if !numbers.insert(attribute.number) {
            problems.push(format!(
                "attribute number {} is used twice",
                attribute.number
            ));
        }
        if !seen.insert(attribute.name.to_ascii_lowercase()) {
            problems.push(format!("name {} is used twice", attribute.name));
        }
    }
    let mut class_numbers = std::collections::BTreeSet::new();
    for (class, range) in ROLE_MACHINE_CLASSES
        .iter()
        .map(|c| (c, 1..50))
        .chain(CATALOG_CLASSES.iter().map(|c| (c, 50..100)))
        .chain(IMAGE_CLASSES.iter().map(|c| (c, 100..150)))
    {
        let in_range = range.contains(&class.number);
        if !in_range {
            problems.push(format!(
                "class {} has number {} outside its range",
                class.name, class.number
            ));
        }
        if !class_numbers.insert(class.number) {
            problems.push(format!("class number {} is used twice", class.number));
        }
        if !seen.insert(class.name.to_ascii_lowercase()) {
            problems.push(format!("name {} is used twice", class.name));
        }
        for attribute in class.must.iter().chain(class.may) {
            let ours = attribute.starts_with("roleout");
            if ours && !attribute_types().any(|a| a.name == *attribute) {
                problems.push(format!(
                    "class {} names undefined attribute {attribute}",
                    class.name
                ));
            }
        }
    }
    for (name, description) in attribute_types()
        .map(|a| (a.name, a.description))
        .chain(object_classes().map(|c| (c.name, c.description)))
    {
        if !name.starts_with("roleout") {
            problems.push(format!("{name} does not start with roleout"));
        }
        if description.contains(['\'', '\\']) {
            problems.push(format!(
                "description of {name} contains a quote or backslash"
            ));
        }
    }
    problems
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        assert_eq!(check_tables(), Vec::<String>::new());
    }

    #[test]
    fn checked_in_files_match_the_generator() {
        assert!(
            ROLEOUT_LDIF == generate_ldif()
                && ROLEOUT_SCHEMA == generate_schema()
                && ROLEOUT_389 == generate_389(),
            "schemas/roleout.ldif, roleout.schema or 99roleout.ldif is stale: \
             run `cargo run -p roleout-directory --bin roleout-schema`"
        );
    }

    #[test]
    fn definitions_have_the_arc_and_the_matching_rules() {
        let ldif = generate_ldif();
        assert!(ldif.contains(&format!(
            "olcAttributeTypes: ( {ARC}.1.1\n  NAME 'roleoutRank'\n"
        )));
        assert!(ldif.contains("  EQUALITY integerMatch\n  ORDERING integerOrderingMatch\n"));
        assert!(ldif.contains(&format!(
            "olcObjectClasses: ( {ARC}.2.2\n  NAME 'roleoutMachine'"
        )));
        let schema = generate_schema();
        assert!(schema.contains(&format!("attributetype ( {ARC}.1.7\n\tNAME 'roleoutFact'")));
        assert!(schema.contains("\tMAY ( roleoutRank $ roleoutParentRole ) )\n"));
    }
}
