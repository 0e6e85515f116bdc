//! Building role suites against a real slapd holding the example catalog
//! (examples/*.xml) and the roles end-user, developer and administrator:
//! what each role gets, determinism across builds and directories,
//! idempotent storing, rebuilds when a source changes (and only then),
//! conflicts and ambiguities named, a property over synthetic catalogs that
//! no build leaks a version meant only for other roles, status reports
//! stored once, the content store's refusals, and the `build` command.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use roleout_builder::admin::Output;
use roleout_builder::admin::build::build as build_command;
use roleout_builder::build::{BuildError, Builder, Freshness};
use roleout_builder::content::{ContentStore, import_payloads, parse_digest, record_report};
use roleout_directory::catalog::BuildWrite;
use roleout_directory::catalog::synthetic::{synthetic, synthetic_role, synthetic_suite_id};
use roleout_directory::{Directory, LocalDirectory};
use roleout_model::command::Phase;
use roleout_model::descriptor::{self, Descriptor};
use roleout_model::ids::{MachineId, ProductId, RoleName, Sha256, SuiteId};
use roleout_model::product::ProductSource;
use roleout_model::protocol::{
    AckStatus, ReportOutcome, ReportStep, RunSummary, StatusReport, SuiteComplete, Timestamp,
};
use roleout_model::role::{EffectiveRoles, Role, RoleHierarchy, Versioned};
use roleout_model::suite::{Suite, SuiteSource};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn parse(name: &str, text: &str) -> Descriptor {
    let parsed = descriptor::parse(name, text.as_bytes());
    assert!(!parsed.has_errors(), "{name}: {:?}", parsed.diagnostics);
    parsed.descriptor.expect("no errors, so a descriptor")
}

fn example_text(name: &str) -> String {
    std::fs::read_to_string(examples().join(name)).expect("example descriptor")
}

fn product(name: &str, text: &str) -> ProductSource {
    match parse(name, text) {
        Descriptor::Product(product) => product,
        Descriptor::Suite(_) => panic!("{name} is a suite"),
    }
}

fn suite(name: &str, text: &str) -> SuiteSource {
    match parse(name, text) {
        Descriptor::Suite(suite) => suite,
        Descriptor::Product(_) => panic!("{name} is a product"),
    }
}

fn example_catalog() -> (Vec<ProductSource>, Vec<SuiteSource>) {
    let mut products = Vec::new();
    let mut suites = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    names.sort();
    for path in names {
        let name = path.display().to_string();
        match parse(&name, &std::fs::read_to_string(&path).unwrap()) {
            Descriptor::Product(product) => products.push(product),
            Descriptor::Suite(suite) => suites.push(suite),
        }
    }
    (products, suites)
}

fn role_name(name: &str) -> RoleName {
    RoleName::new(name).unwrap()
}

fn example_roles() -> Vec<Role> {
    let role = |name: &str, rank, parent: Option<&str>| Role {
        name: role_name(name),
        rank,
        parent: parent.map(role_name),
        description: None,
    };
    vec![
        role("end-user", 10, None),
        role("developer", 20, Some("end-user")),
        role("administrator", 30, Some("end-user")),
    ]
}

fn effective(names: &[&str]) -> EffectiveRoles {
    RoleHierarchy::new(example_roles())
        .effective(names.iter().map(|name| role_name(name)))
        .unwrap()
}

fn domino() -> SuiteId {
    SuiteId::new("domino").unwrap()
}

/// A slapd holding the example catalog and roles; the directory handle is
/// the builder's own account, as roleoutd uses it.
async fn example_directory() -> (LocalDirectory, Directory, Directory) {
    let local = LocalDirectory::temporary().unwrap();
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let (products, suites) = example_catalog();
    for product in &products {
        admin.store_product(product).await.unwrap();
    }
    for suite in &suites {
        admin.store_suite(suite).await.unwrap();
    }
    for role in example_roles() {
        admin.create_role(&role).await.unwrap();
    }
    let builder = Directory::connect(&local.builder_settings()).await.unwrap();
    (local, admin, builder)
}

fn ids(suite: &Suite) -> BTreeSet<String> {
    suite
        .products
        .iter()
        .map(|product| product.id.to_string())
        .collect()
}

fn product_of<'a>(suite: &'a Suite, id: &str) -> &'a roleout_model::product::ProductModel {
    suite
        .products
        .iter()
        .find(|product| product.id.as_str() == id)
        .unwrap_or_else(|| panic!("{id} is not in the build"))
}

fn files(suite: &Suite, id: &str) -> Vec<String> {
    product_of(suite, id)
        .fileset
        .files
        .iter()
        .map(|file| file.path.clone())
        .collect()
}

fn stored_suite(bytes: &[u8]) -> Suite {
    serde_json::from_slice(bytes).expect("a stored build is a suite")
}

#[tokio::test]
async fn each_role_gets_its_versions_and_builds_are_deterministic() {
    let (_local, _admin, directory) = example_directory().await;
    let builder = Builder::new();

    let developer = builder
        .build(&directory, &domino(), &effective(&["developer"]))
        .await
        .unwrap();
    assert_eq!(developer.write, BuildWrite::Created);
    assert_eq!(developer.build.serial, 1);
    assert_eq!(developer.build.role_set, "developer+end-user");
    let suite = stored_suite(&developer.build.canonical);
    assert_eq!(suite, developer.suite);
    assert!(ids(&suite).contains("notes-designer"), "{:?}", ids(&suite));
    assert!(!ids(&suite).contains("domino-admin"), "{:?}", ids(&suite));
    assert!(files(&suite, "notes-client").contains(&"notes-sdk.tar.gz".to_owned()));

    let administrator = builder
        .build(&directory, &domino(), &effective(&["administrator"]))
        .await
        .unwrap();
    let suite = stored_suite(&administrator.build.canonical);
    assert!(ids(&suite).contains("domino-admin"), "{:?}", ids(&suite));
    assert!(!ids(&suite).contains("notes-designer"), "{:?}", ids(&suite));
    let post_install = &product_of(&suite, "notes-client").commands[&Phase::PostInstall];
    assert!(
        post_install.argv.iter().any(|arg| arg == "--admin-setup"),
        "{:?}",
        post_install.argv
    );
    assert!(!files(&suite, "notes-client").contains(&"notes-sdk.tar.gz".to_owned()));

    for roles in [effective(&["end-user"]), EffectiveRoles::default()] {
        let outcome = builder.build(&directory, &domino(), &roles).await.unwrap();
        let suite = stored_suite(&outcome.build.canonical);
        assert!(!ids(&suite).contains("domino-admin"));
        assert!(!ids(&suite).contains("notes-designer"));
        let client = product_of(&suite, "notes-client");
        assert!(!client.commands.contains_key(&Phase::PostInstall));
        assert_eq!(
            files(&suite, "notes-client"),
            ["notes-client_9.0.1_all.deb"]
        );
    }

    // Building again: same bytes, same digest, nothing written.
    let again = builder
        .build(&directory, &domino(), &effective(&["developer"]))
        .await
        .unwrap();
    assert_eq!(again.write, BuildWrite::Unchanged);
    assert_eq!(again.build, developer.build);
    let stored = directory
        .load_build(&domino(), "developer+end-user")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, developer.build);

    // Another directory with the same catalog: the same digest.
    let (_other_local, _other_admin, other) = example_directory().await;
    let elsewhere = builder
        .build(&other, &domino(), &effective(&["developer"]))
        .await
        .unwrap();
    assert_eq!(elsewhere.build.digest, developer.build.digest);
    assert_eq!(elsewhere.build.canonical, developer.build.canonical);
    assert_ne!(administrator.build.digest, developer.build.digest);
}

#[tokio::test]
async fn a_changed_object_version_rebuilds_what_was_built_from_it() {
    let (_local, admin, directory) = example_directory().await;
    // A second suite that does not hold notes-client.
    let java = suite(
        "java.xml",
        r#"<suite xmlns="urn:roleout:descriptor:1" id="java" version="1"><products><product ref="jre"/></products></suite>"#,
    );
    admin.store_suite(&java).await.unwrap();
    let builder = Builder::new();
    let developer_roles = effective(&["developer"]);
    let end_user_roles = effective(&["end-user"]);
    let developer = builder
        .current(&directory, &domino(), &developer_roles)
        .await
        .unwrap();
    let end_user = builder
        .current(&directory, &domino(), &end_user_roles)
        .await
        .unwrap();
    let java_build = builder
        .current(&directory, &java.id, &end_user_roles)
        .await
        .unwrap();
    let (_, freshness) = builder
        .current_checked(&directory, &domino(), &developer_roles)
        .await
        .unwrap();
    assert_eq!(freshness, Freshness::Fresh);

    // A new developer file set for notes-client.
    let changed = example_text("notes-client.xml")
        .replace(
            r#"<file path="notes-sdk.tar.gz" sha256="d1b6bd48d1c3a2523029aac8676904c97c4333bb5980bb5061f91b9b59d2faf3" size="224"/>"#,
            r#"<file path="notes-sdk-2.tar.gz" sha256="ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" size="3"/>"#,
        );
    assert_ne!(changed, example_text("notes-client.xml"));
    admin
        .store_product(&product("notes-client.xml", &changed))
        .await
        .unwrap();

    let (rebuilt, freshness) = builder
        .current_checked(&directory, &domino(), &developer_roles)
        .await
        .unwrap();
    assert!(
        matches!(freshness, Freshness::Rebuilt(BuildWrite::Replaced { .. })),
        "{freshness:?}"
    );
    assert_ne!(rebuilt.digest, developer.digest);
    assert!(rebuilt.serial > developer.serial);
    assert!(
        files(&stored_suite(&rebuilt.canonical), "notes-client")
            .contains(&"notes-sdk-2.tar.gz".to_owned())
    );

    // End users were built from the same product: checked again; their
    // content did not change, so digest and serial stay.
    let (end_user_now, freshness) = builder
        .current_checked(&directory, &domino(), &end_user_roles)
        .await
        .unwrap();
    assert_eq!(freshness, Freshness::Rebuilt(BuildWrite::SourcesRefreshed));
    assert_eq!(end_user_now.digest, end_user.digest);
    assert_eq!(end_user_now.serial, end_user.serial);
    assert_ne!(end_user_now.built_from, end_user.built_from);
    let (_, freshness) = builder
        .current_checked(&directory, &domino(), &end_user_roles)
        .await
        .unwrap();
    assert_eq!(freshness, Freshness::Fresh);

    // The java suite was not built from notes-client: left alone.
    let (java_now, freshness) = builder
        .current_checked(&directory, &java.id, &end_user_roles)
        .await
        .unwrap();
    assert_eq!(freshness, Freshness::Fresh);
    assert_eq!(java_now, java_build);

    // A change to the suite itself makes every role set stale.
    let mut domino_source = directory.load_suite(&domino()).await.unwrap();
    domino_source.version = "9.0.2".parse().unwrap();
    admin.store_suite(&domino_source).await.unwrap();
    let (after_suite_change, freshness) = builder
        .current_checked(&directory, &domino(), &end_user_roles)
        .await
        .unwrap();
    assert!(
        matches!(freshness, Freshness::Rebuilt(BuildWrite::Replaced { .. })),
        "{freshness:?}"
    );
    assert_eq!(after_suite_change.serial, end_user.serial + 1);
}

/// A member's library chain is not in the suite: the build takes it from
/// the catalog, records it among its sources (a change to it rebuilds),
/// and a suite whose members need nothing else reads no more than before.
#[tokio::test]
async fn a_build_pulls_in_what_its_members_require_from_the_catalog() {
    let (_local, admin, directory) = example_directory().await;
    let lib = |id: &str, version: &str, needs: &str| {
        product(
            id,
            &format!(
                r#"<product xmlns="urn:roleout:descriptor:1" id="{id}" version="{version}">{needs}<install><arg>true</arg></install></product>"#
            ),
        )
    };
    for product in [
        lib(
            "viewer",
            "3.1",
            r#"<dependencies><prerequisite product="libview" version="&gt;=2"/></dependencies>"#,
        ),
        lib(
            "libview",
            "2.4",
            r#"<dependencies><prerequisite product="libcore"/></dependencies>"#,
        ),
        lib("libcore", "1.0", ""),
    ] {
        admin.store_product(&product).await.unwrap();
    }
    let tools = suite(
        "tools.xml",
        r#"<suite xmlns="urn:roleout:descriptor:1" id="tools" version="1"><products><product ref="viewer"/></products></suite>"#,
    );
    admin.store_suite(&tools).await.unwrap();
    let builder = Builder::new();
    let roles = effective(&["end-user"]);
    let outcome = builder.build(&directory, &tools.id, &roles).await.unwrap();
    let order: Vec<&str> = outcome.plan.order().map(ProductId::as_str).collect();
    assert_eq!(order, ["libcore", "libview", "viewer"]);
    assert_eq!(
        outcome.suite.pulled_in,
        [
            ProductId::new("libview").unwrap(),
            ProductId::new("libcore").unwrap()
        ]
    );
    assert!(outcome.build.built_from.contains_key("product/libcore"));
    assert!(!outcome.build.built_from.contains_key("product/jre"));
    assert_eq!(
        outcome.plan.why(&ProductId::new("libcore").unwrap()),
        ["prerequisite of libview (any version)"]
    );

    // A new libcore makes the build stale.
    admin
        .store_product(&lib("libcore", "1.1", ""))
        .await
        .unwrap();
    let (rebuilt, freshness) = builder
        .current_checked(&directory, &tools.id, &roles)
        .await
        .unwrap();
    assert!(
        matches!(freshness, Freshness::Rebuilt(BuildWrite::Replaced { .. })),
        "{freshness:?}"
    );
    assert_eq!(
        product_of(&stored_suite(&rebuilt.canonical), "libcore")
            .version
            .to_string(),
        "1.1"
    );

    // The java suite's member needs nothing outside it: two searches, as
    // ever, for a builder with nothing cached.
    let java = suite(
        "java.xml",
        r#"<suite xmlns="urn:roleout:descriptor:1" id="java" version="1"><products><product ref="jre"/></products></suite>"#,
    );
    admin.store_suite(&java).await.unwrap();
    let before = directory.search_count();
    let sources = directory.load_suite_build_sources(&java.id).await.unwrap();
    assert_eq!(directory.search_count() - before, 2);
    assert_eq!(sources.products.len(), 1);
    let before = directory.search_count();
    let sources = directory.load_suite_build_sources(&tools.id).await.unwrap();
    assert_eq!(
        directory.search_count() - before,
        4,
        "suite, members, product ids, the rest"
    );
    assert!(sources.products.len() > 3);
}

/// Several versions of a product live in the catalog at once: importing
/// an older one changes nothing a suite without a range gets, a range takes
/// the older one, a pilot role's own listing takes the newer, a change to
/// any release makes the builds that use the product stale, and removing
/// a release lowers the head.
#[tokio::test]
async fn several_versions_of_a_product_live_in_the_catalog() {
    let (_local, admin, directory) = example_directory().await;
    let app = |version: &str| {
        product(
            "app",
            &format!(
                r#"<product xmlns="urn:roleout:descriptor:1" id="app" version="{version}"><install><arg>echo</arg><arg>{version}</arg></install></product>"#
            ),
        )
    };
    admin.store_product(&app("1.7")).await.unwrap();
    admin.store_product(&app("1.6")).await.unwrap();
    // The head stays 1.7; both are there.
    assert_eq!(
        directory
            .load_product(&ProductId::new("app").unwrap())
            .await
            .unwrap(),
        app("1.7")
    );
    let everyone = suite(
        "office.xml",
        r#"<suite xmlns="urn:roleout:descriptor:1" id="apps" version="1"><products><product ref="app"/></products></suite>"#,
    );
    admin.store_suite(&everyone).await.unwrap();
    let builder = Builder::new();
    let end_user = effective(&["end-user"]);
    let developer = effective(&["developer"]);
    let version_of = |build: &roleout_directory::catalog::StoredBuild| {
        product_of(&stored_suite(&build.canonical), "app")
            .version
            .to_string()
    };
    let latest = builder
        .current(&directory, &everyone.id, &end_user)
        .await
        .unwrap();
    assert_eq!(version_of(&latest), "1.7");
    // Importing 1.6 again changes nothing: same build.
    assert!(
        admin
            .store_product(&app("1.6"))
            .await
            .unwrap()
            .is_unchanged()
    );
    let (_, freshness) = builder
        .current_checked(&directory, &everyone.id, &end_user)
        .await
        .unwrap();
    assert_eq!(freshness, Freshness::Fresh);

    // Everyone stays on 1.6 but developers pilot 1.7: one listing more.
    let pilot = suite(
        "pilot.xml",
        r#"<suite xmlns="urn:roleout:descriptor:1" id="pilot" version="1"><products><product ref="app" version="&lt;1.7"/><product ref="app" role="developer"/></products></suite>"#,
    );
    admin.store_suite(&pilot).await.unwrap();
    let users = builder
        .current(&directory, &pilot.id, &end_user)
        .await
        .unwrap();
    let pilots = builder
        .current(&directory, &pilot.id, &developer)
        .await
        .unwrap();
    assert_eq!(version_of(&users), "1.6");
    assert_eq!(version_of(&pilots), "1.7");

    // A change to 1.6 alone makes the builds of app stale.
    let mut changed = app("1.6");
    changed.priority = 10;
    admin.store_product(&changed).await.unwrap();
    let (rebuilt, freshness) = builder
        .current_checked(&directory, &pilot.id, &end_user)
        .await
        .unwrap();
    assert!(
        matches!(freshness, Freshness::Rebuilt(BuildWrite::Replaced { .. })),
        "{freshness:?}"
    );
    assert_eq!(
        product_of(&stored_suite(&rebuilt.canonical), "app").priority,
        10
    );

    // Removing 1.7 makes 1.6 the head; removing 1.6 too removes app.
    let id = ProductId::new("app").unwrap();
    assert!(
        admin
            .delete_product_release(&id, &"1.7".parse().unwrap())
            .await
            .unwrap()
    );
    assert_eq!(directory.load_product(&id).await.unwrap(), changed);
    let after = builder
        .current(&directory, &everyone.id, &end_user)
        .await
        .unwrap();
    assert_eq!(version_of(&after), "1.6");
    assert!(
        !admin
            .delete_product_release(&id, &"1.7".parse().unwrap())
            .await
            .unwrap()
    );
    assert!(
        admin
            .delete_product_release(&id, &"1.6".parse().unwrap())
            .await
            .unwrap()
    );
    assert!(directory.load_product(&id).await.is_err());
}

#[tokio::test]
async fn conflicts_and_ambiguities_are_named() {
    let (_local, admin, directory) = example_directory().await;
    let builder = Builder::new();

    // mail-lite in the suite: it and notes-client conflict.
    let with_mail_lite = example_text("domino.xml").replace(
        r#"<product ref="notes-help"/>
    <product ref="notes-designer""#,
        r#"<product ref="notes-help"/>
    <product ref="mail-lite"/>
    <product ref="notes-designer""#,
    );
    assert_ne!(with_mail_lite, example_text("domino.xml"));
    admin
        .store_suite(&suite("domino.xml", &with_mail_lite))
        .await
        .unwrap();
    let error = builder
        .build(&directory, &domino(), &effective(&["end-user"]))
        .await
        .unwrap_err();
    let conflicts: Vec<String> = error
        .problems()
        .iter()
        .filter(|problem| problem.kind() == "conflict")
        .map(ToString::to_string)
        .collect();
    assert!(
        conflicts
            .iter()
            .any(|text| text.contains("notes-client") && text.contains("mail-lite")),
        "{error}"
    );
    assert!(
        directory
            .load_build(&domino(), "end-user")
            .await
            .unwrap()
            .is_none(),
        "a failed build stores nothing"
    );

    // Back to the example suite, and a second role at the developer's
    // rank with its own size of notes-client: ambiguous for a requester
    // holding both.
    admin
        .store_suite(&suite("domino.xml", &example_text("domino.xml")))
        .await
        .unwrap();
    admin
        .create_role(&Role {
            name: role_name("auditor"),
            rank: 20,
            parent: Some(role_name("end-user")),
            description: None,
        })
        .await
        .unwrap();
    let ambiguous = example_text("notes-client.xml").replace(
        r#"<size role="developer" installed="8192"/>"#,
        r#"<size role="developer" installed="8192"/>
  <size role="auditor" installed="16384"/>"#,
    );
    admin
        .store_product(&product("notes-client.xml", &ambiguous))
        .await
        .unwrap();
    let hierarchy = directory.roles().await.unwrap();
    let both = hierarchy
        .effective([role_name("developer"), role_name("auditor")])
        .unwrap();
    let error = builder
        .build(&directory, &domino(), &both)
        .await
        .unwrap_err();
    assert!(matches!(error, BuildError::Invalid { .. }), "{error}");
    let ambiguity = error
        .problems()
        .iter()
        .find(|problem| problem.kind() == "ambiguity")
        .unwrap_or_else(|| panic!("no ambiguity in {error}"))
        .to_string();
    assert!(ambiguity.contains("notes-client"), "{ambiguity}");
    assert!(
        ambiguity.contains("developer") && ambiguity.contains("auditor"),
        "{ambiguity}"
    );
    // Each role alone is fine.
    builder
        .build(
            &directory,
            &domino(),
            &hierarchy.effective([role_name("auditor")]).unwrap(),
        )
        .await
        .unwrap();

    // The command lists the problem on its own line and fails.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut output = Output {
        out: &mut out,
        err: &mut err,
    };
    let failed = build_command(&directory, Some(domino()), None, &mut output).await;
    assert!(
        failed.is_ok(),
        "each role alone builds: {:?}",
        String::from_utf8_lossy(&err)
    );
    admin
        .store_suite(&suite("domino.xml", &with_mail_lite))
        .await
        .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut output = Output {
        out: &mut out,
        err: &mut err,
    };
    let failed = build_command(
        &directory,
        Some(domino()),
        Some(role_name("developer")),
        &mut output,
    )
    .await
    .unwrap_err();
    assert!(failed.0.contains("1 of 1"), "{failed}");
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.lines().any(
            |line| line.starts_with("domino developer+end-user: conflict: ")
                && line.contains("mail-lite")
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_build_command_says_what_it_built() {
    let (_local, _admin, directory) = example_directory().await;
    let run = |directory: &Directory| {
        let directory = directory.clone();
        async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut output = Output {
                out: &mut out,
                err: &mut err,
            };
            let summary = build_command(&directory, None, None, &mut output)
                .await
                .unwrap();
            (summary, String::from_utf8(out).unwrap())
        }
    };
    let (first, text) = run(&directory).await;
    // Four role sets (none, end-user, developer, administrator) of one suite.
    assert_eq!(first.built, 4, "{text}");
    assert!(text.contains("domino developer+end-user: built "), "{text}");
    assert!(text.contains("domino default: built "), "{text}");
    let (second, text) = run(&directory).await;
    assert_eq!((second.built, second.unchanged), (0, 4), "{text}");
    assert!(
        text.contains("domino administrator+end-user: unchanged "),
        "{text}"
    );
}

/// Roles of a synthetic catalog: `role-N`, rank `(N+1)*10`, parents as
/// given (an index below N, so no cycle).
fn synthetic_roles(count: usize, parents: &[Option<usize>]) -> Vec<Role> {
    (0..count)
        .map(|index| Role {
            name: synthetic_role(index),
            rank: (index as u32 + 1) * 10,
            parent: parents
                .get(index)
                .copied()
                .flatten()
                .filter(|parent| *parent < index)
                .map(synthetic_role),
            description: None,
        })
        .collect()
}

/// True when `value` is what `slot` gives someone with `roles`: the
/// default version's or that of a version tagged for one of `roles`.
fn allowed<T: PartialEq>(slot: &Versioned<T>, value: &T, roles: &EffectiveRoles) -> bool {
    slot.versions.iter().any(|version| {
        version.value == *value
            && (version.roles.is_empty() || version.roles.iter().any(|role| roles.contains(role)))
    })
}

#[test]
fn no_build_holds_a_version_meant_only_for_other_roles() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = LocalDirectory::temporary().unwrap();
    let directory = runtime
        .block_on(Directory::connect(&local.admin_settings()))
        .unwrap();
    let builder = Builder::new();
    let mut runner = TestRunner::new(Config {
        cases: 6,
        ..Config::default()
    });
    let strategy = (
        2usize..8,
        1usize..5,
        any::<u64>(),
        proptest::collection::vec(proptest::option::of(0usize..4), 4),
        proptest::collection::vec(any::<bool>(), 4),
    );
    runner
        .run(&strategy, |(count, role_count, seed, parents, held)| {
            runtime.block_on(async {
                let (_, suite_source, products) = synthetic(count, role_count, seed);
                let roles = synthetic_roles(role_count, &parents);
                // Roles are shared by every case: bring them to this case's shape.
                for role in &roles {
                    if directory.role(&role.name).await.unwrap().is_some() {
                        directory.update_role(role).await.unwrap();
                    } else {
                        directory.create_role(role).await.unwrap();
                    }
                }
                // The catalog keeps every version stored: start each case
                // from its own products alone.
                for id in directory.product_ids().await.unwrap() {
                    directory.delete_product(&id).await.unwrap();
                }
                for product in &products {
                    directory.store_product(product).await.unwrap();
                }
                directory.store_suite(&suite_source).await.unwrap();
                let hierarchy = RoleHierarchy::new(roles.clone());
                let direct: Vec<RoleName> = (0..role_count)
                    .filter(|index| held[*index])
                    .map(synthetic_role)
                    .collect();
                let effective = hierarchy.effective(direct).unwrap();
                let outcome = builder
                    .build(&directory, &synthetic_suite_id(), &effective)
                    .await
                    .unwrap();
                let built = stored_suite(&outcome.build.canonical);
                prop_assert_eq!(built.products.len(), products.len());
                for model in &built.products {
                    let source = products
                        .iter()
                        .find(|product| product.id == model.id)
                        .unwrap();
                    prop_assert!(
                        allowed(&source.fileset, &model.fileset, &effective),
                        "fileset of {}",
                        model.id
                    );
                    prop_assert!(
                        allowed(&source.size, &model.size, &effective),
                        "size of {}",
                        model.id
                    );
                    prop_assert!(
                        allowed(&source.description, &model.description, &effective),
                        "description of {}",
                        model.id
                    );
                    let install = &source.commands[&Phase::Install];
                    prop_assert!(
                        allowed(install, &model.commands[&Phase::Install], &effective),
                        "install command of {}",
                        model.id
                    );
                }
                Ok(())
            })
        })
        .unwrap();
}

fn report(
    id: &str,
    component: &str,
    step: ReportStep,
    outcome: ReportOutcome,
    finished: u64,
) -> StatusReport {
    StatusReport {
        id: id.to_owned(),
        suite: domino(),
        build_digest: Sha256::new("ab".repeat(32)).unwrap(),
        component: ProductId::new(component).unwrap(),
        step,
        outcome,
        exit_code: Some(if outcome == ReportOutcome::Failed {
            1
        } else {
            0
        }),
        signal: None,
        duration_ms: 1500,
        evidence: vec!["matched: Installation complete".to_owned(), String::new()],
        log: format!("log of {id}\n"),
        started_at: Timestamp::from_unix_seconds(finished - 2).unwrap(),
        finished_at: Timestamp::from_unix_seconds(finished).unwrap(),
    }
}

#[tokio::test]
async fn reports_are_stored_once_with_their_logs_in_the_content_store() {
    let local = LocalDirectory::temporary().unwrap();
    let directory = Directory::connect(&local.builder_settings()).await.unwrap();
    let folder = tempfile::tempdir().unwrap();
    let store = ContentStore::new(folder.path()).unwrap();
    let machine = MachineId::new("ws-0001").unwrap();
    let other = MachineId::new("ws-0002").unwrap();

    let first = report(
        "run1:notes-client:install",
        "notes-client",
        ReportStep::Install,
        ReportOutcome::Failed,
        1_714_564_800,
    );
    assert_eq!(
        record_report(&directory, &store, &machine, &first)
            .await
            .unwrap(),
        AckStatus::Recorded
    );
    assert_eq!(
        record_report(&directory, &store, &machine, &first)
            .await
            .unwrap(),
        AckStatus::Duplicate
    );
    // The same id from another machine is another report.
    assert_eq!(
        record_report(&directory, &store, &other, &first)
            .await
            .unwrap(),
        AckStatus::Recorded
    );
    let stored = directory.reports_for_machine(&machine).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let stored = &stored[0];
    assert_eq!(stored.id, first.id);
    assert_eq!(stored.outcome, ReportOutcome::Failed);
    assert_eq!(stored.evidence, first.evidence);
    assert_eq!(stored.finished_at, first.finished_at);
    assert_eq!(stored.exit_code, Some(1));
    let log_digest = stored.log_digest.clone().unwrap();
    let (mut file, length) = store.open(&log_digest).unwrap().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut file, &mut log).unwrap();
    assert_eq!(
        (log.as_str(), length),
        (first.log.as_str(), first.log.len() as u64)
    );
    // The log text itself is not in the directory.
    let ldif = std::process::Command::new("ldapsearch")
        .args(["-Q", "-LLL", "-Y", "EXTERNAL", "-H"])
        .arg(local.ldapi_url())
        .args(["-b", &format!("ou=reports,{}", local.base())])
        .output()
        .unwrap();
    let ldif = String::from_utf8_lossy(&ldif.stdout);
    assert!(ldif.contains("run1:notes-client:install"), "{ldif}");
    assert!(!ldif.contains("log of run1"), "{ldif}");

    // A retry that worked: the suite shows the latest outcome.
    let retry = report(
        "run2:notes-client:install",
        "notes-client",
        ReportStep::Install,
        ReportOutcome::Success,
        1_714_564_900,
    );
    record_report(&directory, &store, &machine, &retry)
        .await
        .unwrap();
    let status = directory.suite_status(&domino()).await.unwrap();
    let latest = &status.components[&(machine.clone(), ProductId::new("notes-client").unwrap())];
    assert_eq!(latest.outcome, ReportOutcome::Success);
    assert_eq!(status.components.len(), 2);

    let complete = SuiteComplete {
        id: "run2:complete".to_owned(),
        suite: domino(),
        build_digest: Sha256::new("ab".repeat(32)).unwrap(),
        summary: RunSummary {
            installed: 4,
            reboot_required: true,
            ..RunSummary::default()
        },
    };
    assert_eq!(
        directory
            .store_completion(&machine, &complete)
            .await
            .unwrap(),
        AckStatus::Recorded
    );
    assert_eq!(
        directory
            .store_completion(&machine, &complete)
            .await
            .unwrap(),
        AckStatus::Duplicate
    );
    let status = directory.suite_status(&domino()).await.unwrap();
    assert_eq!(status.completions[&machine].summary, complete.summary);
    assert_eq!(
        directory.reports_for_machine(&machine).await.unwrap().len(),
        2
    );

    // Ids the API would refuse are refused here too.
    let bad = report(
        "../x",
        "notes-client",
        ReportStep::Install,
        ReportOutcome::Success,
        1_714_564_900,
    );
    assert!(directory.store_report(&machine, &bad, None).await.is_err());
}

#[test]
fn the_content_store_refuses_wrong_digests_and_path_tricks() {
    let folder = tempfile::tempdir().unwrap();
    let store = ContentStore::new(folder.path().join("content")).unwrap();
    let digest = store.put_bytes(b"abc").unwrap();
    assert_eq!(
        digest.as_str(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(store.contains(&digest));
    assert!(
        store.path_of(&digest).ends_with(
            "sha256/ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
    );
    let (_, length) = store.open(&digest).unwrap().unwrap();
    assert_eq!(length, 3);

    let wrong = Sha256::new("00".repeat(32)).unwrap();
    let error = store.put_bytes_expecting(b"abd", &wrong).unwrap_err();
    assert!(
        matches!(
            error,
            roleout_store::content::ContentError::DigestMismatch { .. }
        ),
        "{error}"
    );
    assert!(store.open(&wrong).unwrap().is_none());
    assert!(!store.contains(&wrong));
    // Nothing half-written is left behind.
    assert_eq!(
        std::fs::read_dir(folder.path().join("content/tmp"))
            .unwrap()
            .count(),
        0
    );

    for trick in [
        "../../../../etc/passwd".to_owned(),
        format!("../{}", &digest.as_str()[3..]),
        digest.as_str().to_ascii_uppercase(),
        digest.as_str()[..40].to_owned(),
        format!("{}/", &digest.as_str()[..63]),
    ] {
        assert!(parse_digest(&trick).is_err(), "{trick}");
    }

    // Payload import: checks size and digest against the descriptor.
    let payloads = folder.path().join("payloads");
    std::fs::create_dir_all(&payloads).unwrap();
    std::fs::write(payloads.join("good.deb"), b"good payload").unwrap();
    std::fs::write(payloads.join("bad.deb"), b"tampered!!!!").unwrap();
    let good = roleout_builder::content::digest_of(b"good payload");
    let expected_bad = roleout_builder::content::digest_of(b"original bad");
    let text = format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="p" version="1">
  <fileset><file path="good.deb" sha256="{good}" size="12"/></fileset>
  <fileset role="developer"><file path="bad.deb" sha256="{expected_bad}" size="12"/></fileset>
  <install><arg>true</arg></install></product>"#
    );
    let source = product("p.xml", &text);
    let error = import_payloads(&store, std::slice::from_ref(&source), &payloads).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("bad.deb"), "{message}");
    assert!(message.contains(expected_bad.as_str()), "{message}");
    assert!(
        message.contains(roleout_builder::content::digest_of(b"tampered!!!!").as_str()),
        "{message}"
    );
    assert!(store.contains(&good), "the good file is stored");
    assert!(!store.contains(&expected_bad));

    std::fs::write(payloads.join("bad.deb"), b"original bad").unwrap();
    let imported = import_payloads(&store, &[source], &payloads).unwrap();
    assert_eq!(imported.stored, [expected_bad]);
    assert_eq!(imported.present, [good]);
}

#[tokio::test]
async fn a_role_whose_rank_changed_makes_its_builds_stale() {
    let (_local, admin, directory) = example_directory().await;
    let builder = Builder::new();
    // A machine holding both developer (20) and administrator (30): each
    // has its own post-install of notes-client; the higher rank wins.
    let post_install = |bytes: &[u8]| {
        product_of(&stored_suite(bytes), "notes-client")
            .commands
            .get(&Phase::PostInstall)
            .map(|command| command.argv[0].clone())
            .unwrap()
    };
    let roles_now = |hierarchy: RoleHierarchy| {
        hierarchy
            .effective([role_name("developer"), role_name("administrator")])
            .unwrap()
    };
    let before_roles = roles_now(directory.roles().await.unwrap());
    let before = builder
        .current(&directory, &domino(), &before_roles)
        .await
        .unwrap();
    assert_eq!(
        post_install(&before.canonical),
        "{{ root }}/opt/notes/bin/notes"
    );

    // The admin raises developer above administrator.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    {
        let mut output = Output {
            out: &mut out,
            err: &mut err,
        };
        roleout_builder::admin::roles::edit(
            &admin,
            "developer",
            Some(40),
            roleout_builder::admin::roles::ParentChange::Keep,
            None,
            &mut output,
        )
        .await
        .unwrap();
    }
    assert_eq!(
        String::from_utf8_lossy(&out),
        "role developer: rank 20 -> 40, parent end-user -> end-user\n"
    );
    let mut output = Output {
        out: &mut out,
        err: &mut err,
    };
    let after_roles = roles_now(directory.roles().await.unwrap());
    assert_eq!(after_roles.key(), before_roles.key(), "the same role set");
    let (after, freshness) = builder
        .current_checked(&directory, &domino(), &after_roles)
        .await
        .unwrap();
    assert!(
        matches!(freshness, Freshness::Rebuilt(_)),
        "a build made with the old ranks was served: {freshness:?}"
    );
    assert_eq!(post_install(&after.canonical), "tar");

    // A parent that would make a cycle is refused, and nothing changes.
    let failed = roleout_builder::admin::roles::edit(
        &admin,
        "end-user",
        None,
        roleout_builder::admin::roles::ParentChange::Set("developer"),
        None,
        &mut output,
    )
    .await
    .unwrap_err();
    assert!(
        failed.0.contains("end-user -> developer -> end-user"),
        "{}",
        failed.0
    );
    assert_eq!(
        directory
            .roles()
            .await
            .unwrap()
            .get(&role_name("end-user"))
            .unwrap()
            .parent,
        None
    );
}

#[tokio::test]
async fn a_build_names_no_product_its_role_set_does_not_get() {
    let (_local, _admin, directory) = example_directory().await;
    let builder = Builder::new();
    let end_user = builder
        .current(&directory, &domino(), &effective(&["end-user"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&end_user.canonical);
    // The suite's categories and linkage name the designer and the admin
    // tools; an end user's build names neither anywhere.
    for other in ["notes-designer", "domino-admin"] {
        assert!(
            !text.contains(other),
            "{other} is named in the end-user build"
        );
    }
    let developer = builder
        .current(&directory, &domino(), &effective(&["developer"]))
        .await
        .unwrap();
    let suite = stored_suite(&developer.canonical);
    let tools = suite
        .categories
        .iter()
        .find(|category| category.name == "tools")
        .expect("the developer's tools category");
    assert_eq!(
        tools
            .products
            .iter()
            .map(ProductId::as_str)
            .collect::<Vec<_>>(),
        ["notes-designer"]
    );
    assert!(!String::from_utf8_lossy(&developer.canonical).contains("domino-admin"));
}

#[tokio::test]
async fn the_content_store_keeps_what_products_and_reports_name_and_drops_the_rest() {
    let (_local, admin, directory) = example_directory().await;
    let folder = tempfile::tempdir().unwrap();
    let store = ContentStore::new(folder.path()).unwrap();
    let machine = MachineId::new("ws-0001").unwrap();
    // Two runs of one component; the history keeps the newest run only.
    let now = 1_900_000_000;
    let old = report(
        "run1.jre.install.1.status",
        "jre",
        ReportStep::Install,
        ReportOutcome::Success,
        now - 60,
    );
    let new = report(
        "run2.jre.install.1.status",
        "jre",
        ReportStep::Install,
        ReportOutcome::Success,
        now,
    );
    for stored in [&old, &new] {
        record_report(&directory, &store, &machine, stored)
            .await
            .unwrap();
    }
    let old_log = Sha256::of(old.log.as_bytes());
    let new_log = Sha256::of(new.log.as_bytes());
    let orphan = store.put_bytes(b"nothing names this").unwrap();
    let pruned = admin
        .prune_reports(
            &machine,
            roleout_directory::catalog::Retention {
                keep_runs: 1,
                max_age_secs: u64::MAX / 2,
            },
            Timestamp::from_unix_seconds(now).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (pruned.reports, pruned.logs.clone()),
        (1, vec![old_log.clone()])
    );

    let referenced = roleout_builder::content::referenced_content(&directory, &store)
        .await
        .unwrap();
    // Every payload of every role version of the catalog, and the log of
    // the report kept; not the pruned report's log, nor the orphan.
    let developer_sdk =
        Sha256::new("d1b6bd48d1c3a2523029aac8676904c97c4333bb5980bb5061f91b9b59d2faf3").unwrap();
    assert!(referenced.contains(&developer_sdk));
    assert!(referenced.contains(&new_log));
    assert!(!referenced.contains(&old_log));
    assert!(!referenced.contains(&orphan));
    let collected = store
        .collect(&referenced, std::time::Duration::ZERO)
        .unwrap();
    assert_eq!(collected.files, 2, "the pruned log and the orphan");
    assert!(store.contains(&new_log));
    assert!(!store.contains(&old_log));
    assert!(!store.contains(&orphan));
}
