//! Who may do what in Roleout's part of the directory, kept once and
//! written out in each supported server's form: OpenLDAP's `olcAccess`
//! rules (the managed directory's database, [`openldap_rules`]) and 389
//! Directory Server's ACIs ([`ds389_acis`], loaded with
//! [`ds389_access_ldif`]).
//!
//! The policy: members of `cn=admins` write everything under the suffix;
//! roleoutd's account reads it all but passwords, writes the containers of
//! what it makes ([`BUILDER_CONTAINERS`]) and the enrolment attributes of
//! machine entries wherever they live ([`ENROLMENT_ATTRIBUTES`]), and
//! creates machine entries in Roleout's own `ou=machines`, never enabling
//! one; an account may change its own password; the providers of a
//! replicated OpenLDAP directory read everything, passwords included, as
//! `cn=replicator` and write nothing (389 replicates with its own
//! replication manager, outside this policy); nobody else reads anything.

use std::fmt::Write;

use crate::layout::Layout;
use crate::settings::Settings;

/// The containers under `ou=roleout` whose entries roleoutd writes (and
/// makes, when an older directory lacks them).
pub const BUILDER_CONTAINERS: &[&str] =
    &["builds", "reports", "images", "engines", "jobs", "nonces"];

/// The attributes of a machine entry roleoutd writes: the certificate and
/// enrolment state, facts, hardware, last-seen time, leases and the engine
/// a machine is reached through. `roleoutEnabled` and
/// `roleoutImagingSource` stay with the admins.
pub const ENROLMENT_ATTRIBUTES: &[&str] = &[
    "roleoutEnrolment",
    "roleoutEnrolmentToken",
    "roleoutCertificateFingerprint",
    "userCertificate",
    "roleoutLastSeen",
    "roleoutFact",
    "roleoutOs",
    "roleoutArch",
    "roleoutHardware",
    "roleoutHardwareKey",
    "roleoutLease",
    "roleoutEngine",
];

/// The attributes of a machine entry only the admins write: whether it may
/// authenticate, and whether it may upload images.
pub const ADMIN_ONLY_MACHINE_ATTRIBUTES: &[&str] = &["roleoutEnabled", "roleoutImagingSource"];

/// The attributes a machine entry roleoutd creates starts with, besides
/// the enrolment attributes.
const NEW_MACHINE_ATTRIBUTES: &[&str] = &["objectClass", "cn", "ipHostNumber"];

/// The DNs the rules name.
struct Names {
    suffix: String,
    base: String,
    machines: String,
    admins: String,
    admin: String,
    builder: String,
    replicator: String,
}

/// The DNs of the default layout (Roleout's entries under `ou=roleout`).
fn names(suffix: &str) -> Names {
    let settings = Settings::new(Vec::<String>::new()).with_base(format!("ou=roleout,{suffix}"));
    let layout = Layout::new(&settings);
    Names {
        suffix: suffix.to_owned(),
        base: layout.base().to_owned(),
        machines: layout.machines().to_owned(),
        admins: layout.admins_group(),
        admin: layout.admin_account(),
        builder: layout.builder_account(),
        replicator: layout.replicator_account(),
    }
}

/// The policy as OpenLDAP access rules for the database of `suffix`, in
/// order (the first that matches applies), without the `{N}` prefixes.
pub fn openldap_rules(suffix: &str) -> Vec<String> {
    let Names {
        suffix,
        base,
        machines,
        admins,
        builder,
        replicator,
        ..
    } = names(suffix);
    let both_write =
        format!("by group.exact=\"{admins}\" write by dn.exact=\"{builder}\" write by * none");
    let mut rules = vec![
        // The replicator reads everything; everyone else goes on to the
        // rules below.
        format!("to * by dn.exact=\"{replicator}\" read by * break"),
        // Passwords: only for binding, changeable by their owner and the admins.
        format!(
            "to attrs=userPassword by self =xw by group.exact=\"{admins}\" =w by anonymous auth by * none"
        ),
    ];
    for container in BUILDER_CONTAINERS {
        rules.push(format!(
            "to dn.subtree=\"ou={container},{base}\" {both_write}"
        ));
    }
    rules.extend([
        format!("to dn.exact=\"{base}\" attrs=children {both_write}"),
        format!(
            "to dn.subtree=\"{suffix}\" filter=(objectClass=roleoutMachine) attrs={} {both_write}",
            ENROLMENT_ATTRIBUTES.join(",")
        ),
        format!("to dn.exact=\"{machines}\" attrs=children {both_write}"),
        format!(
            "to dn.children=\"{machines}\" attrs=entry,{} {both_write}",
            NEW_MACHINE_ATTRIBUTES.join(",")
        ),
        // Everything else: admins write, the builder reads, nobody else.
        format!("to dn.subtree=\"{suffix}\" by group.exact=\"{admins}\" write by dn.exact=\"{builder}\" read by * none"),
    ]);
    rules
}

/// The limits that go with [`openldap_rules`], as OpenLDAP `olcLimits`
/// values in order, without the `{N}` prefixes: no account's searches stop
/// at a size limit (roleoutd reads every machine of a role); the
/// replicator's have no time limit either, as its searches last as long
/// as the replication.
pub fn openldap_limits(suffix: &str) -> Vec<String> {
    let Names { replicator, .. } = names(suffix);
    vec![
        format!("dn.exact=\"{replicator}\" size=unlimited time=unlimited"),
        "* size=unlimited".to_owned(),
    ]
}

/// The policy as 389 Directory Server ACIs, all held by the suffix entry
/// (an ACI applies to its entry and everything below). 389 denies what no
/// ACI allows, and an add is checked against the new entry, so the ACI of
/// a container also lets roleoutd make the container itself.
pub fn ds389_acis(suffix: &str) -> Vec<String> {
    let Names {
        suffix,
        base,
        machines,
        admins,
        builder,
        ..
    } = names(suffix);
    let aci = |target: &str, name: &str, rights: &str, who: &str| {
        format!("{target}(version 3.0; acl \"roleout: {name}\"; allow ({rights}) {who};)")
    };
    let admins_group = format!("groupdn=\"ldap:///{admins}\"");
    let roleoutd = format!("userdn=\"ldap:///{builder}\"");
    let mut acis = vec![
        aci(
            "(targetattr=\"*\")",
            "admins write everything",
            "all",
            &admins_group,
        ),
        aci(
            "(targetattr!=\"userPassword\")",
            "roleoutd reads everything but passwords",
            "read,search,compare",
            &roleoutd,
        ),
        aci(
            "(targetattr=\"userPassword\")",
            "an account changes its own password",
            "write",
            "userdn=\"ldap:///self\"",
        ),
    ];
    for container in BUILDER_CONTAINERS {
        acis.push(aci(
            &format!("(target=\"ldap:///ou={container},{base}\")(targetattr=\"*\")"),
            &format!("roleoutd writes ou={container}"),
            "read,search,compare,write,add,delete",
            &roleoutd,
        ));
    }
    acis.push(aci(
        &format!(
            "(targetfilter=\"(objectClass=roleoutMachine)\")(targetattr=\"{}\")",
            ENROLMENT_ATTRIBUTES.join(" || ")
        ),
        "roleoutd writes the enrolment attributes of machines",
        "write",
        &roleoutd,
    ));
    acis.push(aci(
        &format!(
            "(target=\"ldap:///cn=*,{machines}\")(targetattr=\"{}\")",
            NEW_MACHINE_ATTRIBUTES
                .iter()
                .chain(ENROLMENT_ATTRIBUTES)
                .copied()
                .collect::<Vec<_>>()
                .join(" || ")
        ),
        "roleoutd makes machine entries in ou=machines",
        "add",
        &roleoutd,
    ));
    // 389 checks an add against the targetattr of no ACI, only its target
    // and filter: a new entry holding an attribute roleoutd may not write
    // is refused by a filter on the new entry.
    acis.push(format!(
        "(target=\"ldap:///{suffix}\")(targetfilter=\"(|{})\")(version 3.0; acl \"roleout: roleoutd never makes an enabled machine\"; deny (add) {roleoutd};)",
        ADMIN_ONLY_MACHINE_ATTRIBUTES
            .iter()
            .map(|attribute| format!("({attribute}=*)"))
            .collect::<String>()
    ));
    acis
}

/// LDIF for `ldapmodify` as the Directory Manager on a 389 server holding
/// `suffix` and Roleout's base entries: the ACIs on the suffix entry, and
/// no size or look-through limits for roleoutd's and the admin's accounts
/// (389 stops a search at 2,000 entries by default; Roleout pages only when
/// a limit stops it).
pub fn ds389_access_ldif(suffix: &str) -> String {
    let Names {
        suffix,
        builder,
        admin,
        ..
    } = names(suffix);
    let mut out = format!("dn: {suffix}\nchangetype: modify\nadd: aci\n");
    for aci in ds389_acis(&suffix) {
        let _ = writeln!(out, "aci: {aci}");
    }
    out.push_str("-\n");
    for account in [builder, admin] {
        let _ = write!(out, "\ndn: {account}\nchangetype: modify\n");
        for limit in ["nsSizeLimit", "nsLookThroughLimit", "nsPagedSizeLimit"] {
            let _ = write!(out, "replace: {limit}\n{limit}: -1\n-\n");
        }
    }
    out
}

/// The checked-in [`ds389_access_ldif`] for `dc=example,dc=org`, as
/// `ldif/base.ldif` is (README says how to move both to another suffix).
pub const DS389_ACCESS_LDIF: &str = include_str!("../../ldif/389ds-access.ldif");

/// The header of the checked-in file.
pub const DS389_ACCESS_HEADER: &str = "\
# Roleout's access rules and account limits for 389 Directory Server, for the
# suffix dc=example,dc=org. Generated by `cargo run -p roleout-directory --bin
# roleout-schema` from directory/src/access.rs: edit that, not this file.
# Load with `ldapmodify -D \"cn=Directory Manager\" -W -f ldif/389ds-access.ldif`
# once ldif/base.ldif is loaded.

";

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_389_rules_match_the_generator() {
        assert!(
            DS389_ACCESS_LDIF
                == format!(
                    "{DS389_ACCESS_HEADER}{}",
                    ds389_access_ldif("dc=example,dc=org")
                ),
            "ldif/389ds-access.ldif is stale: run `cargo run -p roleout-directory --bin roleout-schema`"
        );
    }

    #[test]
    fn both_forms_name_every_container_and_enrolment_attribute() {
        let rules = openldap_rules("dc=corp,dc=test").join("\n");
        let acis = ds389_acis("dc=corp,dc=test").join("\n");
        for container in BUILDER_CONTAINERS {
            let dn = format!("ou={container},ou=roleout,dc=corp,dc=test");
            assert!(rules.contains(&dn) && acis.contains(&dn), "{container}");
        }
        for attribute in ENROLMENT_ATTRIBUTES {
            assert!(
                rules.contains(attribute) && acis.contains(attribute),
                "{attribute}"
            );
        }
        for forbidden in ADMIN_ONLY_MACHINE_ATTRIBUTES {
            assert!(!rules.contains(forbidden), "{forbidden}");
            // In 389's form only in the rule that denies them.
            let naming: Vec<_> = ds389_acis("dc=corp,dc=test")
                .into_iter()
                .filter(|aci| aci.contains(forbidden))
                .collect();
            assert_eq!(naming.len(), 1, "{forbidden}");
            assert!(naming[0].contains("deny (add)"), "{}", naming[0]);
        }
    }
}
