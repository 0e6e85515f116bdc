//! Roles: created with rank and parent, read back as the model's
//! hierarchy, members added and removed (the empty-role placeholder never
//! shows, also when machines join and leave at once), a machine's roles
//! found with one search, and large role sets read page by page.

use roleout_directory::{Directory, DirectoryError, access};
use roleout_model::role::Role;

use crate::{Server, ldapadd, ldapmodify, ldapsearch, machine, on_both_servers, role, role_name};

async fn roles_round_trip_into_the_hierarchy(local: &dyn Server) {
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let created = [
        role("end-user", 10, None),
        role("developer", 20, Some("end-user")),
        role("administrator", 30, Some("end-user")),
    ];
    for role in &created {
        admin.create_role(role).await.unwrap();
    }
    let builder = Directory::connect(&local.builder_settings()).await.unwrap();
    let before = builder.search_count();
    let hierarchy = builder.roles().await.unwrap();
    assert_eq!(
        builder.search_count() - before,
        1,
        "the hierarchy costs one search"
    );
    for role in &created {
        assert_eq!(hierarchy.get(&role.name), Some(role));
    }
    assert_eq!(hierarchy.iter().count(), 3);
    let effective = hierarchy.effective([role_name("developer")]).unwrap();
    assert_eq!(effective.key(), "developer+end-user");

    // Changing rank, parent and description.
    let promoted = Role {
        rank: 40,
        parent: None,
        description: None,
        ..role("developer", 0, None)
    };
    admin.update_role(&promoted).await.unwrap();
    let entry = admin.role(&role_name("developer")).await.unwrap().unwrap();
    assert_eq!(entry.role, promoted);
    assert_eq!(
        entry.dn,
        "cn=developer,ou=roles,ou=roleout,dc=example,dc=org"
    );

    // A parent that does not exist is refused before anything is written.
    let error = admin
        .create_role(&role("orphan", 1, Some("nobody")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, DirectoryError::NotFound { what: "role", .. }),
        "{error}"
    );
    assert!(admin.role(&role_name("orphan")).await.unwrap().is_none());
    // So is a second role of the same name.
    let error = admin
        .create_role(&role("end-user", 1, None))
        .await
        .unwrap_err();
    assert!(error.is_already_exists(), "{error}");

    admin
        .delete_role(&role_name("administrator"))
        .await
        .unwrap();
    assert!(
        admin
            .role(&role_name("administrator"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn members_come_and_go_and_empty_roles_keep_a_placeholder(local: &dyn Server) {
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let developer = role_name("developer");
    let role_dn = admin
        .create_role(&role("developer", 20, None))
        .await
        .unwrap();
    admin.create_role(&role("tester", 5, None)).await.unwrap();
    let first = admin.create_machine(&machine("pc-1")).await.unwrap();
    let second = admin.create_machine(&machine("pc-2")).await.unwrap();

    // Empty: the only stored member is the role itself, reported as none.
    let stored = ldapsearch(local, &role_dn, &["-s", "base", "member"]);
    assert!(stored.contains(&format!("member: {role_dn}")), "{stored}");
    assert!(
        admin
            .role(&developer)
            .await
            .unwrap()
            .unwrap()
            .members
            .is_empty()
    );

    admin.add_role_member(&developer, &first).await.unwrap();
    admin.add_role_member(&developer, &first).await.unwrap(); // no change the second time
    admin.add_role_member(&developer, &second).await.unwrap();
    admin
        .add_role_member(&role_name("tester"), &second)
        .await
        .unwrap();
    let entry = admin.role(&developer).await.unwrap().unwrap();
    let mut members = entry.members.clone();
    members.sort();
    assert_eq!(members, vec![first.clone(), second.clone()]);
    let stored = ldapsearch(local, &role_dn, &["-s", "base", "member"]);
    assert!(
        !stored.contains(&format!("member: {role_dn}")),
        "placeholder left behind: {stored}"
    );

    let before = admin.search_count();
    assert_eq!(
        admin.machine_roles(&second).await.unwrap(),
        vec![role_name("developer"), role_name("tester")]
    );
    assert_eq!(
        admin.search_count() - before,
        1,
        "a machine's roles cost one search"
    );
    assert_eq!(
        admin.machine_roles(&first).await.unwrap(),
        vec![developer.clone()]
    );

    admin.remove_role_member(&developer, &first).await.unwrap();
    admin.remove_role_member(&developer, &first).await.unwrap(); // not a member any more: no change
    admin.remove_role_member(&developer, &second).await.unwrap();
    assert!(
        admin
            .role(&developer)
            .await
            .unwrap()
            .unwrap()
            .members
            .is_empty()
    );
    assert!(admin.machine_roles(&first).await.unwrap().is_empty());
    let stored = ldapsearch(local, &role_dn, &["-s", "base", "member"]);
    assert!(stored.contains(&format!("member: {role_dn}")), "{stored}");
    // The placeholder cannot be removed (the entry would break the schema).
    admin
        .remove_role_member(&developer, &role_dn)
        .await
        .unwrap();
    let stored = ldapsearch(local, &role_dn, &["-s", "base", "member"]);
    assert!(stored.contains(&format!("member: {role_dn}")), "{stored}");

    let error = admin
        .add_role_member(&role_name("ghost"), &first)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DirectoryError::NotFound { what: "role", .. }),
        "{error}"
    );
    assert!(error.to_string().contains("ghost"), "{error}");
}

async fn machines_joining_and_leaving_an_empty_role_at_once_all_succeed(local: &dyn Server) {
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let developer = role_name("developer");
    admin
        .create_role(&role("developer", 20, None))
        .await
        .unwrap();
    let mut machines = Vec::new();
    for index in 0..8 {
        let dn = admin
            .create_machine(&machine(&format!("pc-{index}")))
            .await
            .unwrap();
        machines.push(dn);
    }

    // Each on a connection of its own, so their reads and writes
    // interleave: all see the placeholder, all try to remove it.
    all_at_once(local, &machines, true).await;
    let mut members = admin.role(&developer).await.unwrap().unwrap().members;
    members.sort();
    let mut expected = machines.clone();
    expected.sort();
    assert_eq!(members, expected);

    // All leaving at once: the last ones both put the placeholder back.
    all_at_once(local, &machines, false).await;
    assert!(
        admin
            .role(&developer)
            .await
            .unwrap()
            .unwrap()
            .members
            .is_empty()
    );
}

/// Every machine of `machines` joins (or leaves) role `developer` at
/// once, each on a connection of its own; every change must succeed.
async fn all_at_once(local: &dyn Server, machines: &[String], join: bool) {
    let mut changes = tokio::task::JoinSet::new();
    for dn in machines {
        let (settings, dn) = (local.admin_settings(), dn.clone());
        changes.spawn(async move {
            let directory = Directory::connect(&settings).await?;
            let developer = role_name("developer");
            if join {
                directory.add_role_member(&developer, &dn).await
            } else {
                directory.remove_role_member(&developer, &dn).await
            }
        });
    }
    while let Some(changed) = changes.join_next().await {
        changed.unwrap().unwrap();
    }
}

async fn many_roles_are_read_in_one_search_or_page_by_page_past_a_size_limit(local: &dyn Server) {
    let count = 1201;
    let mut ldif = String::new();
    for index in 0..count {
        ldif.push_str(&format!(
            "dn: cn=role-{index},ou=roles,ou=roleout,dc=example,dc=org\nobjectClass: groupOfNames\n\
             objectClass: roleoutRole\ncn: role-{index}\nroleoutRank: {index}\n\
             member: cn=role-{index},ou=roles,ou=roleout,dc=example,dc=org\n\n"
        ));
    }
    ldapadd(local, &ldif);
    // The builder is not the root. The managed slapd lifts its size limit,
    // so one plain search returns every role.
    let builder = Directory::connect(&local.builder_settings()).await.unwrap();
    let before = builder.search_count();
    let roles = builder.role_entries().await.unwrap();
    assert_eq!(roles.len(), count);
    assert_eq!(
        builder.search_count() - before,
        1,
        "1201 entries in one plain search"
    );
    assert!(roles.iter().all(|entry| entry.members.is_empty()));
    let hierarchy = builder.roles().await.unwrap();
    assert_eq!(hierarchy.get(&role_name("role-1200")).unwrap().rank, 1200);
    // A server with slapd's default size limit of 500, which lets paged
    // searches go on (as an admin would configure an existing slapd): the
    // plain search stops at 500, starts over paged, and keeps no entry
    // twice; later searches are paged from the start.
    // On 389 Directory Server, the same limits are operational attributes
    // of the account's entry.
    let limit = |paged: &str| match local.name() {
        "slapd" => format!(
            "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nreplace: olcLimits\n\
             olcLimits: {{0}}* size=500{}\n",
            if paged == "-1" {
                " size.prtotal=unlimited"
            } else {
                ""
            }
        ),
        _ => format!(
            "dn: cn=roleoutd,ou=roleout,dc=example,dc=org\nchangetype: modify\n\
             replace: nsSizeLimit\nnsSizeLimit: 500\n-\n\
             replace: nsPagedSizeLimit\nnsPagedSizeLimit: {paged}\n"
        ),
    };
    ldapmodify(local, &limit("-1"));
    let limited = Directory::connect(&local.builder_settings()).await.unwrap();
    let roles = limited.role_entries().await.unwrap();
    assert_eq!(roles.len(), count);
    let names: std::collections::BTreeSet<_> = roles.iter().map(|entry| &entry.role.name).collect();
    assert_eq!(names.len(), count, "no role read twice");
    assert_eq!(
        limited.search_count(),
        2,
        "the plain search stopped by the limit, then one page"
    );
    assert_eq!(limited.role_entries().await.unwrap().len(), count);
    assert_eq!(limited.search_count(), 3, "paged from the start");
    // Where even paged searches are limited, the error says what to lift.
    // (389's nsPagedSizeLimit limits each page, not the whole search, so
    // only slapd's limit stops the paged search.)
    if local.name() == "slapd" {
        ldapmodify(local, &limit("500"));
        let error = limited
            .role_entries()
            .await
            .map(|roles| roles.len())
            .unwrap_err();
        assert_eq!(error.ldap_code(), Some(4), "{error}");
        assert!(error.to_string().contains("size.prtotal"), "{error}");
        assert!(error.to_string().contains("nsSizeLimit"), "{error}");
    }
    // The README's rule for the builder's account, in front of the limit
    // for everyone (a replace: slapd 2.5 lists a value added at {0} first
    // but goes on applying the others before it): its searches are plain
    // and whole again.
    match local.name() {
        "slapd" => ldapmodify(
            local,
            "dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcLimits\n\
             olcLimits: {0}dn.exact=\"cn=roleoutd,ou=roleout,dc=example,dc=org\" size=unlimited\n\
             olcLimits: {1}* size=500\n",
        ),
        _ => ldapmodify(
            local,
            &access::ds389_access_ldif("dc=example,dc=org")
                .split("\n\n")
                .skip(1)
                .collect::<Vec<_>>()
                .join("\n\n"),
        ),
    }
    let lifted = Directory::connect(&local.builder_settings()).await.unwrap();
    assert_eq!(lifted.role_entries().await.unwrap().len(), count);
    assert_eq!(lifted.search_count(), 1, "one plain search");
}

async fn roles_can_live_in_existing_groups_elsewhere(local: &dyn Server) {
    ldapadd(
        &local,
        "dn: ou=Groups,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Groups\n\n\
         dn: cn=staff,ou=Groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: staff\n\
         member: cn=pc-9,ou=machines,ou=roleout,dc=example,dc=org\n\n\
         dn: cn=printers,ou=Groups,dc=example,dc=org\nobjectClass: device\ncn: printers\n",
    );
    let mut settings = local.admin_settings();
    settings.roles.base = Some("ou=Groups,dc=example,dc=org".to_owned());
    settings.roles.filter = Some("(objectClass=groupOfNames)".to_owned());
    let admin = Directory::connect(&settings).await.unwrap();
    let staff = admin.role(&role_name("staff")).await.unwrap().unwrap();
    assert_eq!(staff.role.rank, 0, "a group without roleoutRank ranks 0");
    assert_eq!(
        staff.members,
        vec!["cn=pc-9,ou=machines,ou=roleout,dc=example,dc=org".to_owned()]
    );
    let dn = admin
        .create_role(&role("ops", 7, Some("staff")))
        .await
        .unwrap();
    assert_eq!(dn, "cn=ops,ou=Groups,dc=example,dc=org");
    let hierarchy = admin.roles().await.unwrap();
    assert_eq!(hierarchy.iter().count(), 2, "the device is not a role");
    assert_eq!(
        hierarchy.get(&role_name("ops")).unwrap().parent,
        Some(role_name("staff"))
    );
}

on_both_servers!(
    roles_round_trip_into_the_hierarchy,
    members_come_and_go_and_empty_roles_keep_a_placeholder,
    machines_joining_and_leaving_an_empty_role_at_once_all_succeed,
    many_roles_are_read_in_one_search_or_page_by_page_past_a_size_limit,
    roles_can_live_in_existing_groups_elsewhere,
);
