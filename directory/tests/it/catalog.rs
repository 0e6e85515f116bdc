//! The catalog in a real slapd: products and suites read back exactly as
//! written (handwritten and generated), writes are idempotent, minimal and
//! never half-visible, a suite is read with a number of searches that does
//! not grow with its products (and a small suite reads only its own
//! entries), an entry that is not text fails a read naming it, role
//! selection through the directory, the LDIF export loads with `ldapadd`,
//! and ids cannot widen a filter.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use roleout_directory::catalog::ldif::catalog_ldif;
use roleout_directory::catalog::synthetic::{synthetic, synthetic_role, synthetic_suite_id};
use roleout_directory::catalog::{
    CatalogError, MAX_FILTERED_MEMBERS, WriteStep, assemble, normalize_product, product_entries,
    products_filter,
};
use roleout_directory::{Directory, LocalDirectory};
use roleout_model::assemble::needs_catalog;
use roleout_model::command::{
    CommandLineModel, ExitCodeTable, InstallerKind, LogRules, OutcomeRules, Phase, ResponseFile,
};
use roleout_model::condition::{Condition, IncrementalInstall, RunPolicy, VersionCheckerModel};
use roleout_model::ids::{CapabilityName, ProductId, RoleName, Sha256, SuiteId, VariableName};
use roleout_model::pattern::Pattern;
use roleout_model::product::{
    Capabilities, Capability, CapabilityRequirement, Conflicts, Dependencies, InstallFile,
    InstallFileSet, InstallSize, Platform, ProductDescription, ProductRequirement, ProductSource,
};
use roleout_model::role::{EffectiveRoles, RoleHierarchy, RoleVersion, Versioned};
use roleout_model::suite::{
    OnFailure, ProductCapabilities, ProductCategory, ProductGroup, SuiteDescription, SuiteMember,
    SuitePolicy, SuiteSource, Translation, VariableLinkage, VariablePresentation, Widget,
};
use roleout_model::text::LocalizedText;
use roleout_model::variable::{ValidationRules, VariableKind, VariableModel};
use roleout_model::version::{Version, VersionReq};

use crate::{Server, on_both_servers};

async fn open() -> (LocalDirectory, Directory) {
    let local = LocalDirectory::temporary().unwrap();
    let directory = connect(&local).await;
    (local, directory)
}

async fn connect(server: &dyn Server) -> Directory {
    Directory::connect(&server.admin_settings()).await.unwrap()
}

fn roles(names: &[&str]) -> BTreeSet<RoleName> {
    names
        .iter()
        .map(|name| RoleName::new(*name).unwrap())
        .collect()
}

fn version<T>(names: &[&str], value: T) -> RoleVersion<T> {
    RoleVersion {
        roles: roles(names),
        value,
    }
}

fn command(argv: &[&str]) -> CommandLineModel {
    CommandLineModel {
        kind: InstallerKind::Deb,
        argv: argv.iter().map(|arg| (*arg).to_owned()).collect(),
        shell: false,
        working_dir: Some("/tmp".to_owned()),
        env: BTreeMap::from([("LANG".to_owned(), "C".to_owned())]),
        response_file: Some(ResponseFile {
            path: "answers".to_owned(),
            content: "server={{ server }}\n".to_owned(),
        }),
        timeout_secs: 600,
        check_interval_secs: Some(10),
        retries: 1,
        outcome: OutcomeRules {
            exit_codes: ExitCodeTable {
                success: vec![0],
                reboot: vec![3010],
                retry: vec![],
            },
            log: Some(LogRules {
                path: "/var/log/notes.log".to_owned(),
                success: vec![Pattern::new("Installation complete").unwrap()],
                failure: vec![Pattern::new("^ERROR").unwrap()],
            }),
            output: None,
        },
        remove_when_unassigned: false,
        then: Vec::new(),
    }
}

/// A product with every slot, role versions, and text LDAP treats
/// specially (empty strings, spaces, newlines, `{n}`-looking values).
fn notes_client() -> ProductSource {
    let mut name = LocalizedText::plain("Notes Client");
    name.insert("de", "Notes-Klient");
    let description = ProductDescription {
        vendor: "Lotus".to_owned(),
        name,
        summary: LocalizedText::plain(""),
        licence: Some("Proprietary".to_owned()),
        media: None,
    };
    let running = Condition::Package {
        manager: roleout_model::condition::PackageManager::Dpkg,
        name: "notes".to_owned(),
        versions: VersionReq::parse(">=9").unwrap(),
    };
    ProductSource {
        id: ProductId::new("notes-client").unwrap(),
        version: Version::new("9.0.1").unwrap(),
        priority: 50,
        platform: Platform {
            os: vec!["linux".to_owned()],
            arch: vec!["x86_64".to_owned(), "aarch64".to_owned()],
        },
        description: Versioned::single(description),
        size: Versioned::single(InstallSize {
            installed: 524_288_000,
        }),
        capabilities: Versioned::single(Capabilities {
            provides: vec![Capability {
                name: CapabilityName::new("mail-client").unwrap(),
                version: Some(Version::new("9.0").unwrap()),
            }],
        }),
        dependencies: Versioned::single(Dependencies {
            prerequisites: vec![],
            corequisites: vec![],
            capabilities: vec![CapabilityRequirement {
                capability: CapabilityName::new("java-runtime").unwrap(),
                versions: VersionReq::parse(">=1.8").unwrap(),
            }],
            replaces: Vec::new(),
            obsoletes: Vec::new(),
            system: Vec::new(),
        }),
        conflicts: Versioned::single(Conflicts {
            products: vec![ProductRequirement {
                product: ProductId::new("notes-client-legacy").unwrap(),
                versions: VersionReq::any(),
            }],
            capabilities: vec![],
        }),
        variables: Versioned::single(vec![VariableModel {
            name: VariableName::new("install_dir").unwrap(),
            kind: VariableKind::Path,
            default: Some("/opt/notes".to_owned()),
            required: false,
            label: LocalizedText::default(),
            rules: ValidationRules {
                max_length: Some(200),
                ..ValidationRules::default()
            },
        }]),
        fileset: Versioned {
            versions: vec![
                version(
                    &[],
                    InstallFileSet {
                        files: vec![InstallFile {
                            path: "notes.deb".to_owned(),
                            sha256: Sha256::from_bytes(&[1; 32]),
                            size: 1000,
                            source: None,
                            mode: Some(0o644),
                        }],
                    },
                ),
                version(
                    &["developer"],
                    InstallFileSet {
                        files: vec![InstallFile {
                            path: "notes-designer.deb".to_owned(),
                            sha256: Sha256::from_bytes(&[2; 32]),
                            size: 2000,
                            source: Some("https://example.org/d.deb".to_owned()),
                            mode: None,
                        }],
                    },
                ),
            ],
        },
        version_checker: Versioned::single(VersionCheckerModel {
            installed: running.clone(),
        }),
        incremental: Versioned::single(IncrementalInstall {
            when: Some(Condition::Not(Box::new(running))),
            run: RunPolicy::OnChange,
        }),
        commands: BTreeMap::from([
            (
                Phase::Install,
                Versioned::single(command(&[
                    "dpkg",
                    "-i",
                    "{{ payload }}/notes.deb",
                    "{0}",
                    "",
                    " two  spaces ",
                    "line\nbreak",
                ])),
            ),
            (
                Phase::PostInstall,
                Versioned {
                    versions: vec![version(
                        &["administrator"],
                        command(&["/opt/notes/bin/admin-setup"]),
                    )],
                },
            ),
            (Phase::PreInstall, Versioned::single(command(&["true"]))),
            (
                Phase::Uninstall,
                Versioned::single(command(&["dpkg", "-r", "notes"])),
            ),
        ]),
    }
}

fn office(members: &[&str]) -> SuiteSource {
    let server = VariableName::new("server").unwrap();
    let notes = ProductId::new("notes-client").unwrap();
    SuiteSource {
        id: SuiteId::new("office").unwrap(),
        version: Version::new("2024.1").unwrap(),
        description: Versioned::single(SuiteDescription {
            vendor: "IT".to_owned(),
            name: LocalizedText::plain("Office"),
            summary: LocalizedText::default(),
        }),
        capabilities: Versioned::single(ProductCapabilities {
            provides: vec![],
            requires: vec![CapabilityRequirement {
                capability: CapabilityName::new("mail-client").unwrap(),
                versions: VersionReq::any(),
            }],
        }),
        categories: Versioned::single(vec![ProductCategory {
            name: "mail".to_owned(),
            label: LocalizedText::plain("Mail"),
            products: vec![notes.clone()],
        }]),
        groups: Versioned::single(vec![ProductGroup {
            name: "all".to_owned(),
            label: LocalizedText::default(),
            products: vec![notes.clone()],
        }]),
        variables: Versioned::single(vec![VariableModel {
            name: server.clone(),
            kind: VariableKind::String,
            default: Some("mail.example.org".to_owned()),
            required: true,
            label: LocalizedText::default(),
            rules: ValidationRules::default(),
        }]),
        presentation: Versioned::single(vec![VariablePresentation {
            variable: server.clone(),
            label: LocalizedText::plain("Mail server"),
            help: LocalizedText::default(),
            order: 1,
            widget: Widget::Text,
        }]),
        linkage: Versioned::single(vec![VariableLinkage {
            suite_variable: server.clone(),
            product: notes,
            product_variable: server,
            translation: Translation::Template("{{ value }}:1352".to_owned()),
        }]),
        incremental: Versioned::single(IncrementalInstall {
            when: None,
            run: RunPolicy::Always,
        }),
        policy: Versioned {
            versions: vec![
                version(&[], SuitePolicy::default()),
                version(
                    &["administrator"],
                    SuitePolicy {
                        on_failure: OnFailure::Continue,
                    },
                ),
            ],
        },
        members: members
            .iter()
            .map(|id| SuiteMember {
                product: ProductId::new(*id).unwrap(),
                versions: VersionReq::any(),
                roles: BTreeSet::new(),
            })
            .collect(),
    }
}

/// `ldapsearch` as root over ldapi: every entry under `base` with its
/// `entryCSN`, which changes whenever an entry is written.
fn entry_csns(local: &LocalDirectory, base: &str) -> BTreeMap<String, String> {
    let output = Command::new("ldapsearch")
        .args(["-Q", "-LLL", "-o", "ldif-wrap=no", "-Y", "EXTERNAL", "-H"])
        .arg(local.ldapi_url())
        .args(["-b", base, "(objectClass=*)", "entryCSN"])
        .output()
        .expect("ldap-utils is installed");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let mut csns = BTreeMap::new();
    for record in text
        .split("\n\n")
        .filter(|record| !record.trim().is_empty())
    {
        let mut dn = String::new();
        let mut csn = String::new();
        for line in record.lines() {
            if let Some(value) = line.strip_prefix("dn: ") {
                dn = value.to_owned();
            } else if let Some(value) = line.strip_prefix("entryCSN: ") {
                csn = value.to_owned();
            }
        }
        csns.insert(dn, csn);
    }
    csns
}

async fn a_product_and_a_suite_with_every_slot_read_back_unchanged(_local: &dyn Server) {
    let directory = connect(_local).await;
    let product = notes_client();
    let suite = office(&["notes-client"]);
    directory.store_product(&product).await.unwrap();
    directory.store_suite(&suite).await.unwrap();
    assert_eq!(directory.load_product(&product.id).await.unwrap(), product);
    assert_eq!(directory.load_suite(&suite.id).await.unwrap(), suite);
    let (read_suite, read_products) = directory.load_suite_sources(&suite.id).await.unwrap();
    assert_eq!(
        (read_suite, read_products),
        (suite.clone(), vec![product.clone()])
    );
    let (suites, products) = directory.export_catalog().await.unwrap();
    assert_eq!((suites, products), (vec![suite], vec![product]));
}

#[test]
fn generated_products_read_back_unchanged() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_local, directory) = runtime.block_on(open());
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    runner
        .run(&product_strategy(), |product| {
            runtime.block_on(async {
                // Cases (and shrinking) may reuse an id with another
                // release, and a product keeps every release and reads as
                // its highest: each case starts from no such product.
                directory.delete_product(&product.id).await.unwrap();
                directory.store_product(&product).await.unwrap();
                let read = directory.load_product(&product.id).await.unwrap();
                prop_assert_eq!(read, normalize_product(&product));
                // Storing it again finds nothing to do.
                let again = directory.store_product(&product).await.unwrap();
                prop_assert!(again.is_unchanged(), "{again:?}");
                Ok(())
            })
        })
        .unwrap();
}

#[tokio::test]
async fn importing_twice_changes_nothing() {
    let (local, directory) = open().await;
    let (_, suite, products) = synthetic(20, 3, 11);
    for product in &products {
        directory.store_product(product).await.unwrap();
    }
    directory.store_suite(&suite).await.unwrap();
    let products_base = directory.layout().products().to_owned();
    let before = entry_csns(&local, &products_base);
    for product in &products {
        let summary = directory.store_product(product).await.unwrap();
        assert!(summary.is_unchanged(), "{}: {summary:?}", product.id);
    }
    assert!(directory.store_suite(&suite).await.unwrap().is_unchanged());
    assert_eq!(entry_csns(&local, &products_base), before);
}

#[tokio::test]
async fn changing_one_slot_version_touches_only_that_entry() {
    let (local, directory) = open().await;
    let product = notes_client();
    directory.store_product(&product).await.unwrap();
    let base = directory.layout().products().to_owned();
    let before = entry_csns(&local, &base);
    let mut changed = product.clone();
    changed.size = Versioned::single(InstallSize { installed: 1 });
    let summary = directory.store_product(&changed).await.unwrap();
    assert_eq!(
        (summary.added, summary.modified, summary.deleted),
        (1, 1, 1)
    );
    let after = entry_csns(&local, &base);
    let removed: Vec<&String> = before
        .keys()
        .filter(|dn| !after.contains_key(*dn))
        .collect();
    let added: Vec<&String> = after
        .keys()
        .filter(|dn| !before.contains_key(*dn))
        .collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(added.len(), 1);
    assert!(removed[0].starts_with("cn=size-") && added[0].starts_with("cn=size-"));
    let rewritten: Vec<&String> = before
        .iter()
        .filter(|(dn, csn)| after.get(*dn).is_some_and(|new| new != *csn))
        .map(|(dn, _)| dn)
        .collect();
    assert_eq!(rewritten, vec![&format!("cn=notes-client,{base}")]);
    assert_eq!(directory.load_product(&product.id).await.unwrap(), changed);
}

#[tokio::test]
async fn an_interrupted_write_leaves_the_previous_version_current() {
    let (local, directory) = open().await;
    let product = notes_client();
    directory.store_product(&product).await.unwrap();
    // The same version with other content (another version would be a
    // release of its own, keeping the first's entries).
    let mut changed = product.clone();
    changed.fileset.versions.remove(1);
    changed.size = Versioned::single(InstallSize { installed: 7 });

    directory
        .store_product_until(&changed, WriteStep::ChildrenAdded)
        .await
        .unwrap();
    assert_eq!(directory.load_product(&product.id).await.unwrap(), product);

    directory
        .store_product_until(&changed, WriteStep::Switched)
        .await
        .unwrap();
    assert_eq!(directory.load_product(&product.id).await.unwrap(), changed);
    let base = directory.layout().products().to_owned();
    let with_leftovers = entry_csns(&local, &base).len();

    let summary = directory.store_product(&changed).await.unwrap();
    assert_eq!(
        (summary.added, summary.modified, summary.deleted),
        (0, 0, 2)
    );
    assert_eq!(entry_csns(&local, &base).len(), with_leftovers - 2);

    // A new product cut short is not visible at all, not even empty.
    let mut fresh = notes_client();
    fresh.id = ProductId::new("fresh").unwrap();
    directory
        .store_product_until(&fresh, WriteStep::ChildrenAdded)
        .await
        .unwrap();
    let error = directory.load_product(&fresh.id).await.unwrap_err();
    assert!(matches!(error, CatalogError::NotFound { .. }), "{error}");
    directory
        .store_suite(&office(&["notes-client", "fresh"]))
        .await
        .unwrap();
    let error = directory
        .load_suite_sources(&SuiteId::new("office").unwrap())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("product fresh"), "{error}");
    directory.store_product(&fresh).await.unwrap();
    assert_eq!(directory.load_product(&fresh.id).await.unwrap(), fresh);
}

/// A synthetic catalog of `n` products (4 roles) loaded offline with
/// `slapadd`, the bulk path.
pub(crate) struct Synthetic {
    pub(crate) local: LocalDirectory,
    pub(crate) directory: Directory,
    roles: RoleHierarchy,
    suite: SuiteSource,
    pub(crate) products: Vec<ProductSource>,
    /// Entries of the LDIF loaded.
    entries: usize,
}

pub(crate) async fn load_synthetic(n: usize) -> Synthetic {
    let mut local = LocalDirectory::temporary().unwrap();
    let (role_list, suite, products) = synthetic(n, 4, 5);
    let settings = local.admin_settings();
    let layout = roleout_directory::Layout::new(&settings);
    let text = catalog_ldif(
        layout.products(),
        layout.suites(),
        &products,
        std::slice::from_ref(&suite),
    )
    .unwrap();
    let entries = text.matches("\ndn: ").count() + 1;
    let path = local.state_dir().join("catalog.ldif");
    std::fs::write(&path, text).unwrap();
    local.stop().unwrap();
    let output = Command::new("slapadd")
        .arg("-F")
        .arg(local.config_dir())
        .args(["-b", local.suffix(), "-q", "-l"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    local.start().unwrap();
    let directory = Directory::connect(&settings).await.unwrap();
    Synthetic {
        local,
        directory,
        roles: RoleHierarchy::new(role_list),
        suite,
        products,
        entries,
    }
}

/// Counts the searches of one suite assembly from a synthetic catalog of
/// `n` products.
async fn searches_to_assemble(n: usize) -> (u64, usize) {
    let loaded = load_synthetic(n).await;
    let roles = loaded.roles.effective([synthetic_role(1)]).unwrap();
    let before = loaded.directory.search_count();
    let assembled = loaded
        .directory
        .assemble_suite(&synthetic_suite_id(), &roles)
        .await
        .unwrap();
    let searches = loaded.directory.search_count() - before;
    assert_eq!(assembled.suite.products.len(), n);
    assert_eq!(
        assembled,
        assemble(&loaded.suite, &loaded.products, &roles).unwrap()
    );
    (searches, loaded.entries)
}

#[tokio::test]
async fn a_small_suite_in_a_large_catalog_reads_only_its_own_entries() {
    let loaded = load_synthetic(300).await;
    let directory = &loaded.directory;
    let picked = [3, 50, 120, 200, 299];
    let mut suite = loaded.suite.clone();
    suite.id = SuiteId::new("small").unwrap();
    suite.members = picked
        .iter()
        .map(|index| loaded.suite.members[*index].clone())
        .collect();
    directory.store_suite(&suite).await.unwrap();
    let expected: Vec<ProductSource> = suite
        .members
        .iter()
        .map(|member| {
            loaded
                .products
                .iter()
                .find(|product| product.id == member.product)
                .unwrap()
                .clone()
        })
        .collect();

    // Members that require products outside the suite have the rest of
    // the catalog read too (two searches more), after the members.
    let needs = needs_catalog(&suite, &expected.iter().collect::<Vec<_>>());
    let before = directory.search_count();
    let sources = directory.load_suite_build_sources(&suite.id).await.unwrap();
    assert_eq!(directory.search_count() - before, if needs { 4 } else { 2 });
    let read: Vec<&ProductSource> = sources.products[..picked.len()]
        .iter()
        .map(|product| &**product)
        .collect();
    assert_eq!(read, expected.iter().collect::<Vec<_>>());
    if !needs {
        assert_eq!(sources.digests.len(), 1 + picked.len());
    }

    // The search for the products returns the members' entries and no
    // other: the same filter, run by the real ldapsearch.
    let ids: Vec<&ProductId> = expected.iter().map(|product| &product.id).collect();
    let filter = products_filter(&ids);
    let products_dn = directory.layout().products().to_owned();
    let found: BTreeSet<String> = crate::ldapsearch(&loaded.local, &products_dn, &[&filter, "1.1"])
        .lines()
        .filter_map(|line| line.strip_prefix("dn: "))
        .map(str::to_ascii_lowercase)
        .collect();
    let wanted: BTreeSet<String> = expected
        .iter()
        .flat_map(|product| {
            product_entries(&products_dn, product)
                .unwrap()
                .all()
                .map(|entry| entry.dn.to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(found, wanted);
    assert!(
        found.len() * 20 < loaded.entries,
        "{} of {}",
        found.len(),
        loaded.entries
    );

    // A suite of more members than a filter names reads the subtree and
    // still gets exactly its members, in member order.
    let mut large = loaded.suite.clone();
    large.id = SuiteId::new("large").unwrap();
    large.members = loaded.suite.members[..=MAX_FILTERED_MEMBERS]
        .iter()
        .rev()
        .cloned()
        .collect();
    directory.store_suite(&large).await.unwrap();
    let sources = directory.load_suite_build_sources(&large.id).await.unwrap();
    let read: Vec<&ProductId> = sources.products.iter().map(|product| &product.id).collect();
    let members: Vec<&ProductId> = large.members.iter().map(|member| &member.product).collect();
    assert_eq!(read, members);

    // Under slapd's default size limit of 500 (paged searches allowed to
    // go on), the plain search of the subtree stops part way and starts
    // over paged: the reader forgets what it had and reads the same.
    crate::ldapadd(
        &loaded.local,
        "dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcLimits\n\
         olcLimits: {0}* size=500 size.prtotal=unlimited\n",
    );
    let limited = Directory::connect(&loaded.local.admin_settings())
        .await
        .unwrap();
    let again = limited.load_suite_build_sources(&large.id).await.unwrap();
    assert_eq!(again, sources);
    assert_eq!(
        limited.search_count(),
        3,
        "the suite, the products stopped at the limit, the products paged"
    );
}

#[tokio::test]
async fn reading_a_suite_costs_the_same_searches_for_10_and_1000_products() {
    let (small, _) = searches_to_assemble(10).await;
    let (large, entries) = searches_to_assemble(1000).await;
    // One search for the suite, one for its products, each a single
    // request: the managed slapd sets no size limit for the admin account,
    // so a plain search returns every entry.
    assert_eq!(small, 2);
    assert_eq!(large, 2, "{large} requests for {entries} entries");
}

async fn selection_per_role_and_ambiguity(_local: &dyn Server) {
    let directory = connect(_local).await;
    let product = notes_client();
    directory.store_product(&product).await.unwrap();
    let suite = office(&["notes-client"]);
    directory.store_suite(&suite).await.unwrap();
    let hierarchy = RoleHierarchy::new([
        roleout_model::role::Role {
            name: RoleName::new("end-user").unwrap(),
            rank: 10,
            parent: None,
            description: None,
        },
        roleout_model::role::Role {
            name: RoleName::new("developer").unwrap(),
            rank: 20,
            parent: Some(RoleName::new("end-user").unwrap()),
            description: None,
        },
        roleout_model::role::Role {
            name: RoleName::new("administrator").unwrap(),
            rank: 20,
            parent: Some(RoleName::new("end-user").unwrap()),
            description: None,
        },
    ]);
    let developer = hierarchy
        .effective([RoleName::new("developer").unwrap()])
        .unwrap();
    let assembled = directory
        .assemble_suite(&suite.id, &developer)
        .await
        .unwrap();
    let notes = &assembled.suite.products[0];
    assert_eq!(notes.fileset.files[0].path, "notes-designer.deb");
    assert!(!notes.commands.contains_key(&Phase::PostInstall));
    assert_eq!(assembled.suite.policy.on_failure, OnFailure::Stop);

    let administrator = hierarchy
        .effective([RoleName::new("administrator").unwrap()])
        .unwrap();
    let assembled = directory
        .assemble_suite(&suite.id, &administrator)
        .await
        .unwrap();
    let notes = &assembled.suite.products[0];
    assert_eq!(notes.fileset.files[0].path, "notes.deb");
    assert!(notes.commands.contains_key(&Phase::PostInstall));
    assert_eq!(assembled.suite.policy.on_failure, OnFailure::Continue);
    assert_eq!(assembled.sources.len(), 2);

    // Both roles at rank 20 with different file sets: an ambiguity.
    let mut ambiguous = product.clone();
    ambiguous.fileset.versions.push(version(
        &["administrator"],
        InstallFileSet { files: vec![] },
    ));
    directory.store_product(&ambiguous).await.unwrap();
    let both = hierarchy
        .effective([
            RoleName::new("developer").unwrap(),
            RoleName::new("administrator").unwrap(),
        ])
        .unwrap();
    let error = directory
        .assemble_suite(&suite.id, &both)
        .await
        .unwrap_err();
    match error {
        CatalogError::Ambiguity(ambiguity) => {
            assert_eq!(ambiguity.slot, "product notes-client / fileset")
        }
        other => panic!("expected an ambiguity, got {other}"),
    }
    let _ = EffectiveRoles::default();
}

async fn the_ldif_export_loads_with_ldapadd_and_reads_back_the_same(first: &dyn Server) {
    let directory = connect(first).await;
    let product = notes_client();
    let suite = office(&["notes-client"]);
    directory.store_product(&product).await.unwrap();
    directory.store_suite(&suite).await.unwrap();
    let text = directory.export_ldif().await.unwrap();

    // Into another server of the same kind, by its root with ldapadd.
    let second = first.another();
    crate::ldapadd(second.as_ref(), &text);
    let copy = Directory::connect(&second.admin_settings()).await.unwrap();
    assert_eq!(
        copy.export_catalog().await.unwrap(),
        (vec![suite], vec![product])
    );
}

async fn ids_cannot_widen_a_search_and_planted_entries_stay_invisible(local: &dyn Server) {
    let directory = connect(local).await;
    for bad in ["*", "a)(cn=*", "notes*", "a,ou=x", "\\2a"] {
        assert!(ProductId::new(bad).is_err(), "{bad}");
        assert!(SuiteId::new(bad).is_err(), "{bad}");
    }
    // Members that need nothing outside the suite: nothing but them is
    // read.
    let mut product = notes_client();
    for version in &mut product.dependencies.versions {
        version.value.capabilities.clear();
    }
    let mut other = product.clone();
    other.id = ProductId::new("notes-client.x_1").unwrap();
    other.version = Version::new("1.0").unwrap();
    directory.store_product(&product).await.unwrap();
    directory.store_product(&other).await.unwrap();
    directory
        .store_suite(&office(&["notes-client"]))
        .await
        .unwrap();
    let (_, products) = directory
        .load_suite_sources(&SuiteId::new("office").unwrap())
        .await
        .unwrap();
    assert_eq!(products, vec![product.clone()]);

    // An object version planted under the product (claiming to be one of
    // its children) is not listed as current, so it is never read.
    let planted = format!(
        "dn: cn=fileset-0000000000000000,cn=notes-client,{products}\n\
         objectClass: roleoutObjectVersion\n\
         objectClass: roleoutFilesetObject\n\
         cn: fileset-0000000000000000\n\
         roleoutOf: notes-client\n\
         roleoutSlot: fileset\n\
         roleoutDigest: {zero}\n\
         roleoutFile: {{0}}{{\"path\":\"evil\",\"sha256\":\"{zero}\",\"size\":1}}\n",
        products = directory.layout().products(),
        zero = "0".repeat(64),
    );
    let path = local.state_dir().join("planted.ldif");
    std::fs::write(&path, planted).unwrap();
    let output = Command::new("ldapadd")
        .args(["-Q", "-Y", "EXTERNAL", "-H"])
        .arg(local.ldapi_url())
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(directory.load_product(&product.id).await.unwrap(), product);
    // The next write of the product cleans it up.
    let summary = directory.store_product(&product).await.unwrap();
    assert_eq!(summary.deleted, 1);
}

async fn an_entry_that_is_not_text_fails_a_build_read_naming_it_and_the_connection_goes_on(
    local: &dyn Server,
) {
    let directory = connect(local).await;
    directory.store_product(&notes_client()).await.unwrap();
    let suite = office(&["notes-client"]);
    directory.store_suite(&suite).await.unwrap();
    // An object version under the product whose file list is not UTF-8:
    // written by something other than Roleout.
    let planted = format!(
        "dn: cn=fileset-ffffffffffffffff,cn=notes-client,{products}\n\
         objectClass: roleoutObjectVersion\n\
         objectClass: roleoutFilesetObject\n\
         cn: fileset-ffffffffffffffff\n\
         roleoutOf: notes-client\n\
         roleoutSlot: fileset\n\
         roleoutDigest: {zero}\n\
         roleoutFile:: //79\n",
        products = directory.layout().products(),
        zero = "0".repeat(64),
    );
    crate::ldapadd(local, &planted);
    let error = directory
        .load_suite_build_sources(&suite.id)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("cn=fileset-ffffffffffffffff"), "{text}");
    assert!(text.contains("not UTF-8"), "{text}");
    // The search was given up, not the connection.
    assert_eq!(directory.load_suite(&suite.id).await.unwrap(), suite);
}

fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9 {}=,+*()#<>;:\\\\\n-]{1,12}",
        "\\PC{1,8}",
    ]
}

fn localized_strategy() -> impl Strategy<Value = LocalizedText> {
    prop::collection::btree_map(
        prop_oneof![Just(String::new()), "[a-z]{2}(-[a-z]{2})?"],
        text_strategy(),
        0..3,
    )
    .prop_map(|texts| {
        let mut localized = LocalizedText::default();
        for (lang, text) in texts {
            localized.insert(&lang, text);
        }
        localized
    })
}

fn role_set_strategy() -> impl Strategy<Value = BTreeSet<RoleName>> {
    prop::collection::btree_set(
        prop::sample::select(vec!["developer", "administrator", "end-user"]),
        0..3,
    )
    .prop_map(|names| {
        names
            .into_iter()
            .map(|name| RoleName::new(name).unwrap())
            .collect()
    })
}

fn versioned<T: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Versioned<T>> {
    prop::collection::vec((role_set_strategy(), value), 0..3).prop_map(|versions| Versioned {
        versions: versions
            .into_iter()
            .map(|(roles, value)| RoleVersion { roles, value })
            .collect(),
    })
}

fn version_strategy() -> impl Strategy<Value = Version> {
    "[0-9]{1,2}(\\.[0-9]{1,3}){0,2}( FP[0-9])?".prop_map(|text| Version::new(text).unwrap())
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}"
}

fn command_strategy() -> impl Strategy<Value = CommandLineModel> {
    (
        prop::collection::vec(text_strategy(), 0..5),
        prop::collection::btree_map("[A-Z_]{1,6}", text_strategy(), 0..3),
        prop::option::of(text_strategy()),
        prop::collection::vec(-5i32..4000, 0..3),
        prop::option::of((text_strategy(), prop::collection::vec("[a-z^$]{1,6}", 0..3))),
        any::<bool>(),
        1u64..100_000,
    )
        .prop_map(
            |(argv, env, working_dir, codes, log, shell, timeout)| CommandLineModel {
                kind: InstallerKind::Script,
                argv,
                shell,
                working_dir,
                env,
                response_file: None,
                timeout_secs: timeout,
                check_interval_secs: None,
                retries: 0,
                outcome: OutcomeRules {
                    exit_codes: ExitCodeTable {
                        success: codes.clone(),
                        reboot: codes.into_iter().rev().collect(),
                        retry: vec![],
                    },
                    log: log.map(|(path, patterns)| LogRules {
                        path,
                        success: patterns.iter().map(|p| Pattern::new(p).unwrap()).collect(),
                        failure: vec![],
                    }),
                    output: None,
                },
                remove_when_unassigned: false,
                then: Vec::new(),
            },
        )
}

fn product_strategy() -> impl Strategy<Value = ProductSource> {
    let description = (
        text_strategy(),
        localized_strategy(),
        localized_strategy(),
        prop::option::of(text_strategy()),
    )
        .prop_map(|(vendor, name, summary, licence)| ProductDescription {
            vendor,
            name,
            summary,
            licence,
            media: None,
        });
    let capabilities = prop::collection::vec(
        (name_strategy(), prop::option::of(version_strategy())),
        0..3,
    )
    .prop_map(|provides| Capabilities {
        provides: provides
            .into_iter()
            .map(|(name, version)| Capability {
                name: CapabilityName::new(name).unwrap(),
                version,
            })
            .collect(),
    });
    let dependencies = prop::collection::vec(
        (name_strategy(), prop::option::of(version_strategy())),
        0..3,
    )
    .prop_map(|requirements| Dependencies {
        prerequisites: requirements
            .iter()
            .map(|(name, version)| ProductRequirement {
                product: ProductId::new(name.clone()).unwrap(),
                versions: version
                    .as_ref()
                    .map(|v| VersionReq::parse(&format!(">={v}, <99")).unwrap())
                    .unwrap_or_default(),
            })
            .collect(),
        corequisites: vec![],
        capabilities: vec![],
        replaces: Vec::new(),
        obsoletes: Vec::new(),
        system: Vec::new(),
    });
    let files = prop::collection::vec(
        (
            text_strategy(),
            any::<[u8; 32]>(),
            any::<u64>(),
            prop::option::of(0u32..0o7777),
        ),
        0..3,
    )
    .prop_map(|files| InstallFileSet {
        files: files
            .into_iter()
            .map(|(path, digest, size, mode)| InstallFile {
                path,
                sha256: Sha256::from_bytes(&digest),
                size,
                source: None,
                mode,
            })
            .collect(),
    });
    (
        name_strategy(),
        version_strategy(),
        any::<i32>(),
        prop::collection::vec(name_strategy(), 0..3),
        versioned(description),
        versioned(any::<u64>().prop_map(|installed| InstallSize { installed })),
        versioned(capabilities),
        versioned(dependencies),
        versioned(files),
        prop::collection::btree_map(
            prop::sample::select(vec![Phase::PreInstall, Phase::Install, Phase::PostInstall]),
            versioned(command_strategy()),
            0..3,
        ),
    )
        .prop_map(
            |(
                id,
                version,
                priority,
                os,
                description,
                size,
                capabilities,
                dependencies,
                fileset,
                commands,
            )| {
                ProductSource {
                    id: ProductId::new(id).unwrap(),
                    version,
                    priority,
                    platform: Platform { os, arch: vec![] },
                    description,
                    size,
                    capabilities,
                    dependencies,
                    conflicts: Versioned::default(),
                    variables: Versioned::default(),
                    fileset,
                    version_checker: Versioned::default(),
                    incremental: Versioned::default(),
                    commands,
                }
            },
        )
}

on_both_servers!(
    a_product_and_a_suite_with_every_slot_read_back_unchanged,
    the_ldif_export_loads_with_ldapadd_and_reads_back_the_same,
    selection_per_role_and_ambiguity,
    ids_cannot_widen_a_search_and_planted_entries_stay_invisible,
    an_entry_that_is_not_text_fails_a_build_read_naming_it_and_the_connection_goes_on,
);
