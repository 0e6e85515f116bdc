//! Machines: created in Roleout's container or found where the
//! organisation keeps them (`ou=Computers`, `(objectClass=device)`) and
//! extended in place; certificates (DER) stored and read back; approval,
//! disabling, facts, enrolment tokens and last-seen times.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use roleout_directory::machines::Enrolment;
use roleout_directory::{Directory, DirectoryError};
use roleout_model::ids::{MachineId, Sha256};

use crate::{Server, certificate, ldapadd, ldapsearch, machine, on_both_servers, role, role_name};

async fn machines_round_trip_with_certificate_and_state(local: &dyn Server) {
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let mut created = machine("build-host-7");
    created.ip = Some("192.0.2.7".to_owned());
    created.os = Some("linux".to_owned());
    created.arch = Some("x86_64".to_owned());
    created.facts = BTreeMap::from([
        ("memory-mb".to_owned(), "16384".to_owned()),
        ("disk".to_owned(), "sda=512G".to_owned()),
    ]);
    let dn = admin.create_machine(&created).await.unwrap();
    assert_eq!(
        dn,
        "cn=build-host-7,ou=machines,ou=roleout,dc=example,dc=org"
    );
    let classes = ldapsearch(local, &dn, &["-s", "base", "objectClass"]);
    for class in ["device", "pkiUser", "roleoutMachine", "ipHost"] {
        assert!(
            classes.contains(&format!("objectClass: {class}")),
            "{classes}"
        );
    }

    let read = admin.machine(&created.name).await.unwrap().unwrap();
    assert_eq!(read.machine, created);
    assert!(read.managed);
    assert!(!read.enabled);
    assert_eq!(read.enrolment, Some(Enrolment::Pending));
    assert!(read.certificate.is_none());
    assert!(!read.may_authenticate());

    // A real certificate, stored as userCertificate;binary.
    let der = certificate("build-host-7");
    let fingerprint = admin.set_machine_certificate(&dn, &der).await.unwrap();
    let read = admin.machine_at(&dn).await.unwrap().unwrap();
    assert_eq!(read.certificate.as_deref(), Some(der.as_slice()));
    assert_eq!(read.certificate_fingerprint.as_ref(), Some(&fingerprint));
    let found = admin
        .machine_by_fingerprint(&fingerprint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.dn, dn);
    let other = Sha256::new("0".repeat(64)).unwrap();
    assert!(
        admin
            .machine_by_fingerprint(&other)
            .await
            .unwrap()
            .is_none()
    );

    admin.approve_machine(&dn).await.unwrap();
    let read = admin.machine_at(&dn).await.unwrap().unwrap();
    assert!(read.may_authenticate());
    assert_eq!(read.enrolment, Some(Enrolment::Approved));
    admin.disable_machine(&dn).await.unwrap();
    let read = admin.machine_at(&dn).await.unwrap().unwrap();
    assert!(!read.enabled && !read.may_authenticate());
    assert_eq!(read.enrolment, Some(Enrolment::Disabled));

    // Facts are replaced as a whole; empty values remove.
    let facts = BTreeMap::from([("cores".to_owned(), "8".to_owned())]);
    admin
        .set_machine_facts(&dn, Some("linux"), None, &facts)
        .await
        .unwrap();
    let token = Sha256::new("ab".repeat(32)).unwrap();
    admin.set_enrolment_token(&dn, Some(&token)).await.unwrap();
    let seen = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    admin.record_machine_seen(&dn, seen).await.unwrap();
    let read = admin.machine_at(&dn).await.unwrap().unwrap();
    assert_eq!(read.machine.facts, facts);
    assert_eq!(read.machine.arch, None);
    assert_eq!(read.enrolment_token, Some(token));
    assert_eq!(read.last_seen.as_deref(), Some("20231114221320Z"));
    admin.set_enrolment_token(&dn, None).await.unwrap();
    assert_eq!(
        admin
            .machine_at(&dn)
            .await
            .unwrap()
            .unwrap()
            .enrolment_token,
        None
    );

    let all = admin.machines().await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(
        admin
            .machine(&MachineId::new("absent").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        admin
            .machine_at("cn=absent,ou=machines,ou=roleout,dc=example,dc=org")
            .await
            .unwrap()
            .is_none()
    );
    let error = admin.create_machine(&created).await.unwrap_err();
    assert!(error.is_already_exists(), "{error}");
}

async fn existing_computers_are_found_and_extended_in_place(local: &dyn Server) {
    ldapadd(
        &local,
        "dn: ou=Computers,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Computers\n\n\
         dn: cn=pc-01,ou=Computers,dc=example,dc=org\nobjectClass: device\ncn: pc-01\n\
         serialNumber: SN-1234\ndescription: Reception desk\n\n\
         dn: cn=pc-02,ou=Computers,dc=example,dc=org\nobjectClass: device\ncn: pc-02\n",
    );
    let mut settings = local.admin_settings();
    settings.machines.base = Some("ou=Computers,dc=example,dc=org".to_owned());
    settings.machines.filter = Some("(objectClass=device)".to_owned());
    let admin = Directory::connect(&settings).await.unwrap();
    let name = MachineId::new("pc-01").unwrap();

    let before = admin.machine(&name).await.unwrap().unwrap();
    assert_eq!(before.dn, "cn=pc-01,ou=Computers,dc=example,dc=org");
    assert!(!before.managed);
    assert_eq!(before.enrolment, None);
    assert_eq!(admin.machines().await.unwrap().len(), 2);

    let dn = admin.adopt_machine(&name).await.unwrap();
    assert_eq!(dn, before.dn, "extended in place");
    assert_eq!(
        admin.adopt_machine(&name).await.unwrap(),
        dn,
        "adopting twice changes nothing"
    );
    let after = admin.machine(&name).await.unwrap().unwrap();
    assert!(after.managed);
    assert_eq!(after.enrolment, Some(Enrolment::Pending));
    // Nothing was copied into Roleout's own container; the entry kept its data.
    let own = admin
        .subtree_dns("ou=machines,ou=roleout,dc=example,dc=org")
        .await
        .unwrap();
    assert_eq!(
        own,
        vec!["ou=machines,ou=roleout,dc=example,dc=org".to_owned()]
    );
    let stored = ldapsearch(local, &dn, &["-s", "base"]);
    assert!(
        stored.contains("serialNumber: SN-1234") && stored.contains("description: Reception desk"),
        "{stored}"
    );

    // The adopted entry takes a certificate and role memberships.
    let der = certificate("pc-01");
    admin.set_machine_certificate(&dn, &der).await.unwrap();
    admin.approve_machine(&dn).await.unwrap();
    admin
        .create_role(&role("front-office", 3, None))
        .await
        .unwrap();
    admin
        .add_role_member(&role_name("front-office"), &dn)
        .await
        .unwrap();
    let builder = {
        let mut settings = local.builder_settings();
        settings.machines = admin.settings().machines.clone();
        Directory::connect(&settings).await.unwrap()
    };
    let read = builder.machine(&name).await.unwrap().unwrap();
    assert!(read.may_authenticate());
    assert_eq!(read.certificate, Some(der));
    assert_eq!(
        builder.machine_roles(&dn).await.unwrap(),
        vec![role_name("front-office")]
    );
    // The builder records enrolment data on adopted entries too.
    builder.record_machine_seen(&dn, UNIX_EPOCH).await.unwrap();

    let error = admin
        .adopt_machine(&MachineId::new("pc-99").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            DirectoryError::NotFound {
                what: "machine",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("ou=Computers,dc=example,dc=org"),
        "{error}"
    );
}

/// What roleoutd does under its own account when a machine enrols: create
/// the entry, record the key and facts, spend a token and accept the key.
/// It may never enable a machine: that stays with the admins.
async fn the_builder_account_enrols_machines_but_never_enables_them(local: &dyn Server) {
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let builder = Directory::connect(&local.builder_settings()).await.unwrap();

    // A machine nobody announced: roleoutd makes a pending entry and
    // records its first key, once.
    let dn = builder.create_machine(&machine("walk-in")).await.unwrap();
    // `certificate` makes a new key pair on every call.
    let first = certificate("walk-in");
    assert!(builder.record_first_certificate(&dn, &first).await.unwrap());
    assert!(
        !builder
            .record_first_certificate(&dn, &certificate("walk-in-2"))
            .await
            .unwrap(),
        "a second first key is refused"
    );
    builder
        .set_machine_facts(&dn, Some("linux"), Some("x86_64"), &BTreeMap::new())
        .await
        .unwrap();
    let entry = builder.machine_at(&dn).await.unwrap().unwrap();
    assert_eq!(entry.certificate.as_deref(), Some(&first[..]));
    assert!(!entry.enabled);
    assert_eq!(entry.enrolment, Some(Enrolment::Pending));
    assert!(!entry.may_authenticate());
    let refused = builder.enable_machine(&dn).await.unwrap_err();
    assert!(refused.is_insufficient_access(), "{refused}");
    let refused = builder.approve_machine(&dn).await.unwrap_err();
    assert!(refused.is_insufficient_access(), "{refused}");

    // A token issued by an admin (who enables the machine): roleoutd spends
    // it once, with the key presented, in one write.
    let token = Sha256::new("ab".repeat(32)).unwrap();
    admin.set_enrolment_token(&dn, Some(&token)).await.unwrap();
    admin.enable_machine(&dn).await.unwrap();
    let with_token = certificate("walk-in-3");
    assert!(
        builder
            .enrol_with_token(&dn, &token, &with_token)
            .await
            .unwrap()
    );
    assert!(
        !builder
            .enrol_with_token(&dn, &token, &certificate("walk-in-4"))
            .await
            .unwrap(),
        "a spent token is refused"
    );
    let entry = builder.machine_at(&dn).await.unwrap().unwrap();
    assert!(entry.may_authenticate());
    assert_eq!(entry.certificate.as_deref(), Some(&with_token[..]));
    assert_eq!(entry.enrolment_token, None);

    // A rotation swaps only the key it names.
    let current = Sha256::of(&with_token);
    let rotated = certificate("walk-in-5");
    assert!(
        !builder
            .rotate_certificate(&dn, &Sha256::of(&rotated), &certificate("walk-in-6"))
            .await
            .unwrap(),
        "a rotation from a key the entry does not hold"
    );
    assert!(
        builder
            .rotate_certificate(&dn, &current, &rotated)
            .await
            .unwrap()
    );
    let entry = builder.machine_at(&dn).await.unwrap().unwrap();
    assert_eq!(entry.certificate.as_deref(), Some(&rotated[..]));
    assert_eq!(entry.certificate_fingerprint, Some(Sha256::of(&rotated)));
    assert!(entry.may_authenticate());
    assert_eq!(entry.enrolment_token, None);
}

/// Pending enrolments nobody approved go after their time; an entry an
/// admin prepared (a token, a role), an approved machine and a recent
/// enrolment stay.
async fn pending_enrolments_nobody_acted_on_expire(local: &dyn Server) {
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let long_ago = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let cutoff = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut dns = BTreeMap::new();
    for name in [
        "flood-1",
        "prepared-token",
        "prepared-role",
        "approved-old",
        "recent",
    ] {
        let dn = admin.create_machine(&machine(name)).await.unwrap();
        admin.mark_machine_pending(&dn).await.unwrap();
        admin.record_machine_seen(&dn, long_ago).await.unwrap();
        dns.insert(name, dn);
    }
    admin
        .set_enrolment_token(
            &dns["prepared-token"],
            Some(&Sha256::new("1".repeat(64)).unwrap()),
        )
        .await
        .unwrap();
    admin.create_role(&role("lab", 10, None)).await.unwrap();
    admin
        .add_role_member(&role_name("lab"), &dns["prepared-role"])
        .await
        .unwrap();
    admin.approve_machine(&dns["approved-old"]).await.unwrap();
    admin
        .record_machine_seen(&dns["recent"], cutoff + Duration::from_secs(60))
        .await
        .unwrap();

    let removed = admin.expire_pending_enrolments(cutoff).await.unwrap();
    assert_eq!(removed, [MachineId::new("flood-1").unwrap()]);
    for (name, present) in [
        ("flood-1", false),
        ("prepared-token", true),
        ("prepared-role", true),
        ("approved-old", true),
        ("recent", true),
    ] {
        assert_eq!(
            admin
                .machine(&MachineId::new(name).unwrap())
                .await
                .unwrap()
                .is_some(),
            present,
            "{name}"
        );
    }
    // Nothing more goes a second time.
    assert!(
        admin
            .expire_pending_enrolments(cutoff)
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_servers!(
    machines_round_trip_with_certificate_and_state,
    existing_computers_are_found_and_extended_in_place,
    the_builder_account_enrols_machines_but_never_enables_them,
    pending_enrolments_nobody_acted_on_expire,
);
