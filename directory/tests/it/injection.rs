//! Hostile values in names, DNs and filters: they are refused by the name
//! types or escaped, so a search never matches more than the value itself
//! (fails closed) and nothing panics.

use roleout_directory::{Directory, escape};
use roleout_model::ids::{MachineId, RoleName};

use crate::{Server, ldapadd, machine, on_both_servers, role, role_name};

const HOSTILE: &[&str] = &[
    "*)(cn=*",
    "*",
    "\0",
    "a\0b",
    ",",
    "x,ou=roles",
    "a+cn=b",
    "\"q\"",
    "#x",
    " x",
    "x)(|(member=*",
    "\\",
];

#[test]
fn names_with_filter_or_dn_syntax_are_refused() {
    for value in HOSTILE {
        assert!(RoleName::new(*value).is_err(), "{value:?}");
        assert!(MachineId::new(*value).is_err(), "{value:?}");
    }
}

async fn hostile_dns_in_filters_match_nothing_and_do_not_crash(local: &dyn Server) {
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    admin
        .create_role(&role("developer", 20, None))
        .await
        .unwrap();
    let member = admin.create_machine(&machine("pc-1")).await.unwrap();
    admin
        .add_role_member(&role_name("developer"), &member)
        .await
        .unwrap();
    for value in HOSTILE {
        // Unescaped, "*)(cn=*" would turn the member test into a presence
        // test and return every role.
        let roles = admin.machine_roles(value).await;
        assert!(
            matches!(roles, Ok(ref roles) if roles.is_empty()) || roles.is_err(),
            "{value:?}: {roles:?}"
        );
        let with_suffix = format!("cn={value},ou=machines,ou=roleout,dc=example,dc=org");
        let roles = admin.machine_roles(&with_suffix).await;
        assert!(
            matches!(roles, Ok(ref roles) if roles.is_empty()) || roles.is_err(),
            "{value:?}: {roles:?}"
        );
        let read = admin.machine_at(&with_suffix).await;
        assert!(
            matches!(read, Ok(None)) || read.is_err(),
            "{value:?}: {read:?}"
        );
        // Adding a hostile member DN either fails cleanly or stores exactly
        // that DN; it never widens what the role grants.
        let _ = admin
            .add_role_member(&role_name("developer"), &with_suffix)
            .await;
    }
    assert_eq!(
        admin.machine_roles(&member).await.unwrap(),
        vec![role_name("developer")]
    );
    // The connection still works after all that.
    assert!(
        admin
            .machine(&MachineId::new("pc-1").unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

async fn escaped_dn_values_name_exactly_one_entry(local: &dyn Server) {
    // A computer whose name holds a comma, a plus and a leading '#':
    // legal in the directory, escaped in its DN.
    let awkward = "#a,b+c";
    let dn = escape::child_dn("cn", awkward, "ou=Computers,dc=example,dc=org");
    assert_eq!(dn, "cn=\\23a\\2cb\\2bc,ou=Computers,dc=example,dc=org");
    ldapadd(
        &local,
        &format!(
            "dn: ou=Computers,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Computers\n\n\
             dn: {dn}\nobjectClass: device\ncn: {awkward}\n\n\
             dn: cn=\\23a,ou=Computers,dc=example,dc=org\nobjectClass: device\ncn: #a\n"
        ),
    );
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    admin.create_role(&role("kiosk", 1, None)).await.unwrap();
    admin
        .add_role_member(&role_name("kiosk"), &dn)
        .await
        .unwrap();
    assert_eq!(
        admin.machine_roles(&dn).await.unwrap(),
        vec![role_name("kiosk")]
    );
    // The DN that the unescaped value would have produced names another entry.
    assert!(
        admin
            .machine_roles("cn=\\23a,ou=Computers,dc=example,dc=org")
            .await
            .unwrap()
            .is_empty()
    );
    let members = admin
        .role(&role_name("kiosk"))
        .await
        .unwrap()
        .unwrap()
        .members;
    assert_eq!(members.len(), 1);
}

on_both_servers!(
    hostile_dns_in_filters_match_nothing_and_do_not_crash,
    escaped_dn_values_name_exactly_one_entry,
);
