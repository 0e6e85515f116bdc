//! roleoutd's cache over a real slapd and its real change feed: once the
//! feed is live, a second read of a machine, its roles or a suite's build
//! costs no LDAP search; an admin's change (disabling the machine, taking
//! a role away, a new suite version) is seen by the next read after the
//! feed delivers it; and a lost feed turns the cache off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roleout_builder::server::cache::ServingCache;
use roleout_directory::{Directory, LocalDirectory};
use roleout_model::ids::{GroupName, MachineId, RoleName, SuiteId, VariableName};
use roleout_model::machine::Machine;
use roleout_model::protocol::{Customization, MachineObject, SuiteDelivery, canonical_field};
use roleout_model::role::Role;

/// Polls `done` every 10 ms for at most five seconds; true once it holds.
async fn soon(mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn reads_are_served_from_memory_until_a_change_makes_them_stale() {
    let mut local = LocalDirectory::temporary().unwrap();
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut output = roleout_builder::admin::Output {
        out: &mut out,
        err: &mut err,
    };
    roleout_builder::admin::catalog::import(&admin, &[repository.join("examples")], &mut output)
        .await
        .unwrap();
    admin
        .create_role(&Role {
            name: RoleName::new("developer").unwrap(),
            rank: 20,
            parent: None,
            description: None,
        })
        .await
        .unwrap();
    let name = MachineId::new("pc-cache").unwrap();
    let dn = admin
        .create_machine(&Machine {
            name: name.clone(),
            ip: None,
            os: Some("linux".to_owned()),
            arch: Some("x86_64".to_owned()),
            facts: Default::default(),
            products: Vec::new(),
        })
        .await
        .unwrap();
    admin.enable_machine(&dn).await.unwrap();
    admin
        .add_role_member(&RoleName::new("developer").unwrap(), &dn)
        .await
        .unwrap();

    // The build is current before the cache reads it, so reading it
    // writes nothing (a write would be a change, heard of later).
    let suite = SuiteId::new("domino").unwrap();
    let developer = roleout_model::role::EffectiveRoles::from_ranks([(
        RoleName::new("developer").unwrap(),
        20,
    )]);
    roleout_builder::build::Builder::new()
        .build(&admin, &suite, &developer)
        .await
        .unwrap();

    let builder = Directory::connect(&local.builder_settings()).await.unwrap();
    let cache = Arc::new(ServingCache::new(builder.layout()));
    let _feed = {
        let cache = cache.clone();
        builder.spawn_change_feed(move |event| cache.apply(&event))
    };
    assert!(soon(async || cache.is_live()).await, "the feed went live");

    // First reads go to the directory, second ones do not.
    let entry = cache.machine(&builder, &name).await.unwrap().unwrap();
    let roles = cache.effective_roles(&builder, &entry).await.unwrap();
    let build = cache
        .build(&builder, &suite, &roles)
        .await
        .unwrap()
        .unwrap();
    let searches = builder.search_count();
    let again = cache.machine(&builder, &name).await.unwrap().unwrap();
    let roles_again = cache.effective_roles(&builder, &again).await.unwrap();
    let build_again = cache
        .build(&builder, &suite, &roles_again)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(builder.search_count(), searches, "served from memory");

    // The delivery written around the cached canonical bytes is exactly
    // the canonical JSON of the delivery built as a value: what the
    // installer recomputes to check the signature.
    let outcome = build.plan(Some(("linux", "x86_64")));
    let (plan, plan_canonical) = outcome.as_ref().as_ref().unwrap();
    let machine = MachineObject {
        name: name.clone(),
        os: "linux".to_owned(),
        arch: "x86_64".to_owned(),
        components: plan.order().cloned().collect(),
    };
    let delivery = SuiteDelivery {
        suite: build.build.suite.clone(),
        plan: plan.clone(),
        machine: machine.clone(),
        build_digest: build.build.digest.clone(),
        customization: Customization {
            group: Some(GroupName::new("floor-3").unwrap()),
            values: BTreeMap::from([(
                VariableName::new("mail_server").unwrap(),
                "mail.example.org".to_owned(),
            )]),
        },
    };
    assert_eq!(
        build
            .delivery_canonical(&machine, plan_canonical, &delivery.customization)
            .unwrap(),
        canonical_field(&delivery).unwrap()
    );
    assert!(Arc::ptr_eq(&build, &build_again));
    assert!(roles.key().contains("developer"), "{}", roles.key());

    // An admin disables the machine: the next reads see it.
    admin.disable_machine(&dn).await.unwrap();
    assert!(
        soon(async || {
            let entry = cache.machine(&builder, &name).await.unwrap().unwrap();
            !entry.enabled
        })
        .await,
        "the disabled entry is read again"
    );

    // An admin takes the role away: the effective roles change.
    admin
        .remove_role_member(&RoleName::new("developer").unwrap(), &dn)
        .await
        .unwrap();
    assert!(
        soon(async || {
            let entry = cache.machine(&builder, &name).await.unwrap().unwrap();
            let roles = cache.effective_roles(&builder, &entry).await.unwrap();
            !roles.key().contains("developer")
        })
        .await,
        "the roles are read again"
    );

    // A catalog change drops the build: the next read checks it again.
    let before = builder.search_count();
    admin
        .create_role(&Role {
            name: RoleName::new("tester").unwrap(),
            rank: 5,
            parent: None,
            description: None,
        })
        .await
        .unwrap();
    assert!(
        soon(async || {
            cache.build(&builder, &suite, &roles).await.unwrap();
            builder.search_count() > before
        })
        .await,
        "the build is checked again after a change"
    );

    // slapd stops: the feed is lost and nothing is served from memory.
    local.stop().unwrap();
    assert!(soon(async || !cache.is_live()).await, "the feed was lost");
    assert!(cache.machine(&builder, &name).await.is_err());
}
