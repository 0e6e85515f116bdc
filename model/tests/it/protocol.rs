//! The API messages: every body round-trips through JSON and passes its
//! schema; malformed bodies (a missing field, an unknown field, a wrong
//! type, an oversized string or array, a bad enum value) are refused with
//! the JSON pointer of what is wrong; canonical JSON gives the same bytes
//! whatever the key order, and an envelope signed with a real Ed25519 key
//! verifies after a trip through pretty-printed, reordered JSON text; the
//! OpenAPI document names every route and only schema files that exist.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

use roleout_model::command::{
    CommandLineModel, ExitCodeTable, InstallerKind, LogRules, OutcomeRules, Phase,
};
use roleout_model::condition::{
    Condition, IncrementalInstall, PackageManager, RunPolicy, VersionCheckerModel,
};
use roleout_model::ids::VariableName;
use roleout_model::ids::{
    CapabilityName, GroupName, MachineId, ProductId, RoleName, Sha256, SuiteId,
};
use roleout_model::pattern::Pattern;
use roleout_model::product::{
    Capabilities, Capability, CapabilityRequirement, Conflicts, Dependencies, InstallFile,
    InstallFileSet, InstallSize, Platform, ProductDescription, ProductModel, ProductRequirement,
};
use roleout_model::protocol::{
    AckStatus, Base64Bytes, BuilderKeyAlgorithm, BuilderPublicKey, CertificateEndorsement,
    ChallengeRequest, ChallengeResponse, Close, CloseStatus, ComponentDelivery, Customization,
    ENVELOPE_CONTEXT, EnrollRequest, EnrollResponse, EnrolmentStatus, ErrorBody, ErrorCode, Health,
    HealthStatus, KeyEndorsement, KeyProof, MachineFacts, MachineObject, Message, MessageKind,
    OPENAPI, ProtocolError, ReportAck, ReportOutcome, ReportStep, RunSummary, SCHEMA_FILES,
    SchemaViolation, SessionRequest, SessionResponse, SignedContent, SignedEnvelope, StatusReport,
    SuiteComplete, SuiteDelivery, SuiteList, SuiteListEntry, Timestamp, TrustAnnouncement,
    canonical_json, validate,
};
use roleout_model::resolve::resolve_suite;
use roleout_model::role::EffectiveRoles;
use roleout_model::suite::{
    OnFailure, ProductCapabilities, ProductGroup, Suite, SuiteDescription, SuitePolicy,
    Translation, VariableLinkage, VariablePresentation, Widget,
};
use roleout_model::text::LocalizedText;
use roleout_model::variable::{ValidationRules, VariableKind, VariableModel};
use roleout_model::version::{Version, VersionReq};

// ---------------------------------------------------------------------------
// Samples

fn machine() -> MachineId {
    MachineId::new("ws-0042").unwrap()
}

fn digest(byte: u8) -> Sha256 {
    Sha256::from_bytes(&[byte; 32])
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn product(id: &str, priority: i32, needs: &[&str]) -> ProductModel {
    let mut commands = BTreeMap::new();
    commands.insert(
        Phase::Install,
        CommandLineModel {
            kind: InstallerKind::Deb,
            argv: vec![
                "dpkg".to_owned(),
                "-i".to_owned(),
                format!("{{{{ payload }}}}/{id}.deb"),
            ],
            shell: false,
            working_dir: Some("/tmp".to_owned()),
            env: BTreeMap::from([("LANG".to_owned(), "C".to_owned())]),
            response_file: None,
            timeout_secs: 600,
            check_interval_secs: Some(5),
            retries: 1,
            outcome: OutcomeRules {
                exit_codes: ExitCodeTable {
                    success: vec![0],
                    reboot: vec![3010],
                    retry: vec![75],
                },
                log: Some(LogRules {
                    path: format!("/var/log/{id}.log"),
                    success: vec![Pattern::new("Installation complete").unwrap()],
                    failure: vec![Pattern::new("^ERROR").unwrap()],
                }),
                output: None,
            },
            remove_when_unassigned: false,
            then: Vec::new(),
        },
    );
    ProductModel {
        id: ProductId::new(id).unwrap(),
        version: Version::new("9.0.1").unwrap(),
        priority,
        platform: Platform {
            os: vec!["linux".to_owned()],
            arch: Vec::new(),
        },
        description: ProductDescription {
            vendor: "Lotus".to_owned(),
            name: LocalizedText::plain(format!("Product {id}")),
            summary: LocalizedText::default(),
            licence: Some("proprietary".to_owned()),
            media: None,
        },
        size: InstallSize {
            installed: 524_288_000,
        },
        capabilities: Capabilities {
            provides: vec![Capability {
                name: CapabilityName::new(format!("{id}-function")).unwrap(),
                version: Some(Version::new("9.0").unwrap()),
            }],
        },
        dependencies: Dependencies {
            prerequisites: needs
                .iter()
                .map(|needed| ProductRequirement {
                    product: ProductId::new(*needed).unwrap(),
                    versions: VersionReq::parse(">=1.0").unwrap(),
                })
                .collect(),
            ..Dependencies::default()
        },
        conflicts: Conflicts {
            products: vec![ProductRequirement {
                product: ProductId::new(format!("{id}-legacy")).unwrap(),
                versions: VersionReq::any(),
            }],
            capabilities: Vec::new(),
        },
        variables: vec![VariableModel {
            name: VariableName::new("install_dir").unwrap(),
            kind: VariableKind::Path,
            default: Some("/opt/notes".to_owned()),
            required: true,
            label: LocalizedText::plain("Install directory"),
            rules: ValidationRules {
                max_length: Some(200),
                ..ValidationRules::default()
            },
        }],
        fileset: InstallFileSet {
            files: vec![InstallFile {
                path: format!("{id}.deb"),
                sha256: digest(7),
                size: 1234,
                source: None,
                mode: Some(0o644),
            }],
        },
        version_checker: Some(VersionCheckerModel {
            installed: Condition::Package {
                manager: PackageManager::Dpkg,
                name: id.to_owned(),
                versions: VersionReq::parse(">=9.0").unwrap(),
            },
        }),
        incremental: Some(IncrementalInstall {
            when: Some(Condition::Not(Box::new(Condition::FileExists {
                path: "/etc/skip".to_owned(),
            }))),
            run: RunPolicy::OnChange,
        }),
        commands,
    }
}

fn suite() -> Suite {
    Suite {
        id: SuiteId::new("office").unwrap(),
        version: Version::new("2024.5").unwrap(),
        description: SuiteDescription {
            vendor: "IT".to_owned(),
            name: LocalizedText::plain("Office"),
            summary: LocalizedText::plain("Mail and documents"),
        },
        capabilities: ProductCapabilities {
            provides: Vec::new(),
            requires: vec![CapabilityRequirement {
                capability: CapabilityName::new("java-runtime-function").unwrap(),
                versions: VersionReq::any(),
            }],
        },
        categories: Vec::new(),
        groups: vec![ProductGroup {
            name: "mail".to_owned(),
            label: LocalizedText::plain("Mail"),
            products: vec![ProductId::new("notes-client").unwrap()],
        }],
        variables: vec![VariableModel {
            name: VariableName::new("site").unwrap(),
            kind: VariableKind::Choice,
            default: Some("berlin".to_owned()),
            required: false,
            label: LocalizedText::default(),
            rules: ValidationRules {
                choices: vec!["berlin".to_owned(), "paris".to_owned()],
                ..ValidationRules::default()
            },
        }],
        presentation: vec![VariablePresentation {
            variable: VariableName::new("site").unwrap(),
            label: LocalizedText::plain("Site"),
            help: LocalizedText::default(),
            order: 1,
            widget: Widget::Select,
        }],
        linkage: vec![VariableLinkage {
            suite_variable: VariableName::new("site").unwrap(),
            product: ProductId::new("notes-client").unwrap(),
            product_variable: VariableName::new("install_dir").unwrap(),
            translation: Translation::Map(BTreeMap::from([(
                "berlin".to_owned(),
                "/opt/berlin".to_owned(),
            )])),
        }],
        incremental: None,
        policy: SuitePolicy {
            on_failure: OnFailure::Continue,
        },
        products: vec![
            product("notes-client", 50, &["java-runtime"]),
            product("java-runtime", 10, &[]),
        ],
        pulled_in: vec![ProductId::new("java-runtime").unwrap()],
    }
}

fn suite_delivery() -> SuiteDelivery {
    let suite = suite();
    // A real plan from the resolver, so every kind of reason it writes is
    // one the schema has seen.
    let plan = resolve_suite(&suite, Some(("linux", "x86_64"))).unwrap();
    let components = plan.order().cloned().collect();
    SuiteDelivery {
        suite,
        plan,
        machine: MachineObject {
            name: machine(),
            os: "linux".to_owned(),
            arch: "x86_64".to_owned(),
            components,
        },
        build_digest: digest(1),
        customization: Customization {
            group: Some(GroupName::new("floor-3").unwrap()),
            values: BTreeMap::from([(
                VariableName::new("mail_server").unwrap(),
                "mail.example.org".to_owned(),
            )]),
        },
    }
}

fn roles_key() -> String {
    let mut ranks = BTreeMap::new();
    ranks.insert(RoleName::new("developer").unwrap(), 20);
    ranks.insert(RoleName::new("end-user").unwrap(), 10);
    EffectiveRoles::from_ranks(ranks).key()
}

fn envelope_of(content: SignedContent, key: &Ed25519KeyPair) -> SignedEnvelope {
    let signature = key.sign(&content.signed_message().unwrap());
    let public = key.public_key().as_ref();
    let key_id = ring::digest::digest(&ring::digest::SHA256, public);
    SignedEnvelope {
        signed: content,
        signature: Base64Bytes::new(signature.as_ref().to_vec()),
        key_id: Sha256::from_bytes(key_id.as_ref().try_into().unwrap()),
    }
}

fn builder_key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn status_report() -> StatusReport {
    StatusReport {
        id: "ws-0042:office:notes-client:install:1".to_owned(),
        suite: SuiteId::new("office").unwrap(),
        build_digest: digest(1),
        component: ProductId::new("notes-client").unwrap(),
        step: ReportStep::from(Phase::Install),
        outcome: ReportOutcome::SuccessRebootRequired,
        exit_code: Some(3010),
        signal: None,
        duration_ms: 12_345,
        evidence: vec!["exit code 3010 means success, reboot required".to_owned()],
        log: "Unpacking notes-client\nInstallation complete\n".to_owned(),
        started_at: at("2024-05-01T12:00:00Z"),
        finished_at: at("2024-05-01T12:00:12.345Z"),
    }
}

fn image_upload() -> roleout_model::protocol::ImageUpload {
    use roleout_model::image::{
        Compatibility, ImageDescription, ImageName, NetworkFlavour, OsConfiguration, Package,
        Partition,
    };
    roleout_model::protocol::ImageUpload {
        description: ImageDescription {
            format: roleout_model::image::FORMAT.to_owned(),
            name: ImageName::new("web-2026.12").unwrap(),
            captured_at: 1_764_000_000,
            manifest: digest(4),
            entries: 2_000,
            data_bytes: 1 << 30,
            hardware: enroll_request().facts.hardware.unwrap(),
            os: OsConfiguration {
                os_release: BTreeMap::from([("ID".to_owned(), "debian".to_owned())]),
                hostname: Some("web-1".to_owned()),
                packages: vec![Package {
                    name: "libc6".to_owned(),
                    version: "2.36-9".to_owned(),
                    arch: "amd64".to_owned(),
                }],
                network: vec![NetworkFlavour::Ifupdown],
                kernels: vec!["6.1.0-57-cloud-amd64".to_owned()],
                fstab: vec!["UUID=abc / ext4 errors=remount-ro 0 1".to_owned()],
                udev_rules: vec!["70-net.rules".to_owned()],
            },
            partitions: vec![Partition {
                mount_point: "/".to_owned(),
                fs_type: "ext4".to_owned(),
                device: "/dev/vda1".to_owned(),
                size_bytes: 20 << 30,
                used_bytes: 2 << 30,
                growable: true,
                data_bytes: 1 << 30,
                table: None,
            }],
            compatibility: Compatibility::Facts {
                facts: vec!["arch".to_owned()],
            },
        },
    }
}

fn enroll_request() -> EnrollRequest {
    EnrollRequest {
        machine: machine(),
        certificate: Base64Bytes::new(vec![0x30, 0x82, 0x01, 0x0a, 0xff]),
        enrolment_token: Some("aGVsbG8.d29ybGQ".to_owned()),
        facts: MachineFacts {
            os: "linux".to_owned(),
            arch: "x86_64".to_owned(),
            os_version: Some("12".to_owned()),
            distribution: Some("debian".to_owned()),
            hostname: Some("ws-0042.example.org".to_owned()),
            ip: Some("2001:db8::42".parse().unwrap()),
            extra: BTreeMap::from([("memory-mb".to_owned(), "16384".to_owned())]),
            hardware: Some(roleout_model::inventory::Inventory {
                arch: "x86_64".to_owned(),
                firmware: roleout_model::inventory::Firmware::Uefi,
                hypervisor: Some("QEMU".to_owned()),
                cpu: roleout_model::inventory::Cpu {
                    model: "Test CPU".to_owned(),
                    vendor: "GenuineIntel".to_owned(),
                    logical: 2,
                    sockets: 1,
                },
                memory_bytes: 16 << 30,
                disks: vec![roleout_model::inventory::Disk {
                    name: "vda".to_owned(),
                    size_bytes: 20 << 30,
                    model: None,
                    rotational: true,
                    removable: false,
                    controller: Some("0000:00:04.0".to_owned()),
                }],
                nics: vec![roleout_model::inventory::Nic {
                    name: "eth0".to_owned(),
                    mac: "52:54:00:12:34:56".to_owned(),
                    driver: Some("virtio-pci".to_owned()),
                }],
                pci: vec![roleout_model::inventory::PciDevice {
                    slot: "0000:00:04.0".to_owned(),
                    vendor: "1af4".to_owned(),
                    device: "1001".to_owned(),
                    class: "010000".to_owned(),
                    modalias: "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00".to_owned(),
                    driver: Some("virtio-pci".to_owned()),
                }],
                dmi: Some(roleout_model::inventory::Dmi {
                    system_vendor: "QEMU".to_owned(),
                    product_name: "Standard PC".to_owned(),
                    ..Default::default()
                }),
            }),
        },
        proof: Some(KeyProof {
            token: "aGVsbG8.d29ybGQ".to_owned(),
            signature: Base64Bytes::new(vec![7; 64]),
        }),
    }
}

/// Serializes, checks against the schema, reads back and compares.
fn round_trip<M: Message + PartialEq + std::fmt::Debug>(message: &M) -> Value {
    let value = serde_json::to_value(message).unwrap();
    if let Err(violations) = validate(M::KIND, &value) {
        panic!("{} sample refused: {violations:#?}", M::KIND);
    }
    let text = serde_json::to_vec_pretty(&value).unwrap();
    let back = M::decode(&text).unwrap();
    assert_eq!(&back, message, "{}", M::KIND);
    value
}

#[test]
fn every_message_round_trips_and_passes_its_schema() {
    let key = builder_key();
    let mut seen = BTreeSet::new();
    let mut check = |kind: MessageKind| assert!(seen.insert(format!("{kind}")));

    round_trip(&enroll_request());
    check(MessageKind::EnrollRequest);
    let public_key = key.public_key().as_ref().to_vec();
    round_trip(&EnrollResponse {
        status: EnrolmentStatus::Pending,
        builder_key: BuilderPublicKey {
            algorithm: BuilderKeyAlgorithm::Ed25519,
            public_key: Base64Bytes::new(public_key),
            key_id: digest(9),
        },
        message: "An administrator must approve this machine's key.".to_owned(),
    });
    check(MessageKind::EnrollResponse);
    round_trip(&ChallengeRequest { machine: machine() });
    check(MessageKind::ChallengeRequest);
    round_trip(&ChallengeResponse {
        token: "eyJtIjoid3MifQ.c2lnbmF0dXJl".to_owned(),
        expires_at: at("2024-05-01T12:01:00Z"),
    });
    check(MessageKind::ChallengeResponse);
    round_trip(&SessionRequest {
        machine: machine(),
        token: "eyJtIjoid3MifQ.c2lnbmF0dXJl".to_owned(),
        signature: Base64Bytes::new(vec![7; 64]),
    });
    check(MessageKind::SessionRequest);
    round_trip(&SessionResponse {
        session: "c2Vzc2lvbg.bWFj".to_owned(),
        expires_at: at("2024-05-01T13:00:00Z"),
        roles: vec![
            RoleName::new("developer").unwrap(),
            RoleName::new("end-user").unwrap(),
        ],
    });
    check(MessageKind::SessionResponse);

    let list = SuiteList {
        suites: vec![SuiteListEntry {
            id: SuiteId::new("office").unwrap(),
            version: Version::new("2024.5").unwrap(),
            build_digest: digest(1),
        }],
    };
    round_trip(&list);
    check(MessageKind::SuiteList);
    let delivery = suite_delivery();
    assert!(
        !delivery.plan.steps.is_empty() && !delivery.machine.components.is_empty(),
        "the sample plan must have steps"
    );
    round_trip(&delivery);
    check(MessageKind::SuiteDelivery);
    let component = ComponentDelivery {
        product: product("notes-client", 50, &["java-runtime"]),
        files: product("notes-client", 50, &[]).fileset,
    };
    round_trip(&component);
    check(MessageKind::ComponentDelivery);

    let expires = at("2024-05-02T00:00:00Z");
    for content in [
        SignedContent::new(&list, machine(), roles_key(), None, 3, expires).unwrap(),
        SignedContent::new(
            &delivery,
            machine(),
            roles_key(),
            Some(digest(1)),
            3,
            expires,
        )
        .unwrap(),
        SignedContent::new(
            &component,
            machine(),
            roles_key(),
            Some(digest(1)),
            3,
            expires,
        )
        .unwrap(),
    ] {
        round_trip(&envelope_of(content, &key));
    }
    check(MessageKind::SignedEnvelope);

    round_trip(&status_report());
    check(MessageKind::StatusReport);
    for status in [AckStatus::Recorded, AckStatus::Duplicate] {
        round_trip(&ReportAck { status });
    }
    check(MessageKind::ReportAck);
    round_trip(&SuiteComplete {
        id: "ws-0042:office:run-7".to_owned(),
        suite: SuiteId::new("office").unwrap(),
        build_digest: digest(1),
        summary: RunSummary {
            installed: 2,
            skipped: 1,
            failed: 0,
            blocked: 0,
            reboot_required: true,
        },
    });
    check(MessageKind::SuiteComplete);
    let close = round_trip(&Close {
        status: CloseStatus::Close,
    });
    assert_eq!(close, json!({"status": "close"}));
    check(MessageKind::Close);
    round_trip(&Health {
        status: HealthStatus::Ok,
        version: "0.1.0".to_owned(),
    });
    check(MessageKind::Health);
    round_trip(&TrustAnnouncement {
        builder_keys: vec![KeyEndorsement {
            public_key: Base64Bytes::new(vec![3; 32]),
            endorsed_by: digest(7),
            signature: Base64Bytes::new(vec![4; 64]),
        }],
        server_certificates: vec![CertificateEndorsement {
            certificate: Base64Bytes::new(vec![0x30, 0x82, 0x01, 0x0a]),
            endorsed_by: digest(7),
            signature: Base64Bytes::new(vec![5; 64]),
        }],
    });
    round_trip(&TrustAnnouncement::default());
    check(MessageKind::TrustAnnouncement);
    round_trip(&roleout_model::protocol::ContentOffer {
        digests: vec![digest(1), digest(2)],
    });
    check(MessageKind::ContentOffer);
    round_trip(&roleout_model::protocol::ContentWant {
        missing: vec![digest(2)],
    });
    check(MessageKind::ContentWant);
    for status in [
        roleout_model::protocol::ContentStatus::Stored,
        roleout_model::protocol::ContentStatus::Present,
    ] {
        round_trip(&roleout_model::protocol::ContentStored { status });
    }
    check(MessageKind::ContentStored);
    round_trip(&image_upload());
    check(MessageKind::ImageUpload);
    round_trip(&roleout_model::protocol::ImageStored {
        status: roleout_model::protocol::ImageStatus::Unchanged,
        manifest: digest(4),
    });
    check(MessageKind::ImageStored);
    let job = roleout_model::protocol::ImageJob {
        job: roleout_model::job::JobId::new("image-20261205-081000-beef").unwrap(),
        image: image_upload().description,
        configuration: roleout_model::image::TargetConfiguration {
            hostname: "web-3".to_owned(),
            interfaces: vec![roleout_model::image::InterfaceAddress {
                name: "eth0".to_owned(),
                address: "198.18.1.13/24".to_owned(),
                gateway: Some("198.18.1.1".to_owned()),
                dns: vec!["198.18.1.53".to_owned()],
            }],
        },
        archive: roleout_model::protocol::ArchiveRef {
            sha256: digest(5),
            size: 1 << 20,
        },
        scripts: vec![
            roleout_model::job::JobScript {
                name: "join-domain.sh".to_owned(),
                sha256: digest(6),
                source: roleout_model::job::ScriptSource::Inline {
                    text: "#!/bin/sh\nrealm join example.org\n".to_owned(),
                },
            },
            roleout_model::job::JobScript {
                name: "site.sh".to_owned(),
                sha256: digest(7),
                source: roleout_model::job::ScriptSource::Url {
                    url: "http://198.18.0.1/site.sh".to_owned(),
                },
            },
        ],
    };
    round_trip(&job);
    round_trip(&envelope_of(
        SignedContent::new(&job, machine(), roles_key(), None, 7, expires).unwrap(),
        &key,
    ));
    check(MessageKind::ImageJob);
    for phase in roleout_model::job::Phase::ALL {
        round_trip(&roleout_model::protocol::JobProgress {
            phase,
            message: Some("partitioned".to_owned()),
        });
    }
    check(MessageKind::JobProgress);
    for code in ErrorCode::ALL {
        round_trip(&ErrorBody::new(code, "The challenge has expired."));
    }
    check(MessageKind::ErrorBody);

    let all: BTreeSet<String> = MessageKind::ALL
        .iter()
        .map(|kind| kind.to_string())
        .collect();
    assert_eq!(seen, all, "every message kind has a sample");
}

#[test]
fn the_wire_is_kebab_case() {
    let value = serde_json::to_value(status_report()).unwrap();
    assert_eq!(value["build-digest"], digest(1).as_str());
    assert_eq!(value["step"], "install");
    assert_eq!(value["outcome"], "success-reboot-required");
    assert_eq!(value["started-at"], "2024-05-01T12:00:00Z");
    assert_eq!(value["finished-at"], "2024-05-01T12:00:12.345Z");
    assert!(value.get("signal").is_none(), "absent options are left out");
    let enroll = serde_json::to_value(enroll_request()).unwrap();
    assert_eq!(enroll["certificate"], "MIIBCv8");
    assert_eq!(enroll["facts"]["os-version"], "12");
    assert_eq!(enroll["facts"]["ip"], "2001:db8::42");
}

// ---------------------------------------------------------------------------
// Refusals

/// The violations of `value`, which must be refused.
fn refused(kind: MessageKind, value: &Value) -> Vec<SchemaViolation> {
    match validate(kind, value) {
        Ok(()) => panic!("{kind}: accepted {value}"),
        Err(violations) => violations,
    }
}

/// Asserts that some violation is at `pointer` with `keyword`.
fn assert_refused_at(kind: MessageKind, value: &Value, pointer: &str, keyword: &str) {
    let violations = refused(kind, value);
    assert!(
        violations
            .iter()
            .any(|violation| violation.pointer == pointer && violation.keyword == keyword),
        "{kind}: expected {keyword} at {pointer}, got {violations:#?}"
    );
}

fn sample(kind: MessageKind) -> Value {
    match kind {
        MessageKind::EnrollRequest => serde_json::to_value(enroll_request()).unwrap(),
        MessageKind::StatusReport => serde_json::to_value(status_report()).unwrap(),
        MessageKind::SessionRequest => json!({
            "machine": "ws-0042", "token": "abc.def", "signature": "AAAA"
        }),
        MessageKind::ErrorBody => json!({"error": "not-found", "message": "No such suite."}),
        other => panic!("no sample for {other}"),
    }
}

/// Applies `change` to a copy of the sample of `kind`.
fn changed(kind: MessageKind, change: impl FnOnce(&mut Value)) -> Value {
    let mut value = sample(kind);
    change(&mut value);
    value
}

#[test]
fn a_missing_field_is_named_where_it_belongs() {
    let kind = MessageKind::EnrollRequest;
    let value = changed(kind, |value| {
        value["facts"].as_object_mut().unwrap().remove("os");
    });
    assert_refused_at(kind, &value, "/facts/os", "required");
    let value = changed(kind, |value| {
        value.as_object_mut().unwrap().remove("certificate");
    });
    let violations = refused(kind, &value);
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_eq!(violations[0].pointer, "/certificate");
    assert!(violations[0].problem.contains("\"certificate\""));
    // serde alone refuses it too, for callers that skip the schema.
    assert!(serde_json::from_value::<EnrollRequest>(value).is_err());
}

#[test]
fn unknown_fields_on_requests_are_refused() {
    let kind = MessageKind::SessionRequest;
    let value = changed(kind, |value| value["admin"] = json!(true));
    assert_refused_at(kind, &value, "/admin", "additionalProperties");
    assert!(serde_json::from_value::<SessionRequest>(value).is_err());

    let kind = MessageKind::EnrollRequest;
    let value = changed(kind, |value| value["facts"]["kernel"] = json!("6.1"));
    assert_refused_at(kind, &value, "/facts/kernel", "additionalProperties");
    assert!(serde_json::from_value::<EnrollRequest>(value).is_err());

    // A key with '/' in it is escaped in the pointer (RFC 6901).
    let value = changed(kind, |value| value["a/b~c"] = json!(1));
    assert_refused_at(kind, &value, "/a~1b~0c", "additionalProperties");
}

#[test]
fn wrong_types_are_refused_at_their_pointer() {
    let kind = MessageKind::StatusReport;
    let value = changed(kind, |value| value["duration-ms"] = json!("12"));
    assert_refused_at(kind, &value, "/duration-ms", "type");
    let value = changed(kind, |value| value["evidence"] = json!([1]));
    assert_refused_at(kind, &value, "/evidence/0", "type");
    let value = changed(kind, |value| value["exit-code"] = json!(1.5));
    assert_refused_at(kind, &value, "/exit-code", "type");
    assert_refused_at(kind, &json!([]), "", "type");
}

#[test]
fn oversized_values_are_refused_without_being_quoted() {
    let kind = MessageKind::StatusReport;
    let secret_log = format!("password=hunter2 {}", "x".repeat(65_536));
    let value = changed(kind, |value| value["log"] = json!(secret_log));
    assert_refused_at(kind, &value, "/log", "maxLength");
    for violation in refused(kind, &value) {
        assert!(!violation.problem.contains("hunter2"), "{violation}");
        assert!(violation.problem.len() < 400, "{violation}");
    }
    // The cap is in characters: 65536 two-byte characters pass.
    let value = changed(kind, |value| value["log"] = json!("é".repeat(65_536)));
    assert!(validate(kind, &value).is_ok());

    let value = changed(kind, |value| value["evidence"] = json!(vec!["line"; 65]));
    assert_refused_at(kind, &value, "/evidence", "maxItems");
    let value = changed(kind, |value| value["evidence"][0] = json!("e".repeat(1025)));
    assert_refused_at(kind, &value, "/evidence/0", "maxLength");

    let kind = MessageKind::EnrollRequest;
    let value = changed(kind, |value| {
        value["certificate"] = json!("A".repeat(16_385))
    });
    assert_refused_at(kind, &value, "/certificate", "maxLength");
    let value = changed(kind, |value| {
        for index in 0..65 {
            value["facts"]["extra"][format!("fact-{index}")] = json!("1");
        }
    });
    assert_refused_at(kind, &value, "/facts/extra", "maxProperties");
    let value = changed(kind, |value| value["machine"] = json!("m".repeat(65)));
    assert_refused_at(kind, &value, "/machine", "pattern");
}

#[test]
fn bad_enum_values_are_refused() {
    let kind = MessageKind::StatusReport;
    let value = changed(kind, |value| value["outcome"] = json!("exploded"));
    assert_refused_at(kind, &value, "/outcome", "enum");
    let value = changed(kind, |value| value["step"] = json!("Install"));
    assert_refused_at(kind, &value, "/step", "enum");
    let kind = MessageKind::ErrorBody;
    let value = changed(kind, |value| value["error"] = json!("teapot"));
    assert_refused_at(kind, &value, "/error", "enum");
}

#[test]
fn malformed_scalars_are_refused() {
    let kind = MessageKind::StatusReport;
    for (field, bad, keyword) in [
        ("started-at", "2024-05-01T12:00:00+02:00", "pattern"),
        ("build-digest", &*"AB".repeat(32), "pattern"),
        ("id", "", "pattern"),
        ("component", "a b", "pattern"),
    ] {
        let value = changed(kind, |value| value[field] = json!(bad));
        assert_refused_at(kind, &value, &format!("/{field}"), keyword);
    }
    let kind = MessageKind::SessionRequest;
    let value = changed(kind, |value| value["signature"] = json!("AA+/"));
    assert_refused_at(kind, &value, "/signature", "pattern");
    let kind = MessageKind::EnrollRequest;
    let value = changed(kind, |value| value["facts"]["ip"] = json!("10.0.0.256"));
    assert_refused_at(kind, &value, "/facts/ip", "anyOf");
}

#[test]
fn an_envelope_payload_is_checked_by_its_kind() {
    let content = SignedContent::new(
        &SuiteList {
            suites: vec![SuiteListEntry {
                id: SuiteId::new("office").unwrap(),
                version: Version::new("1").unwrap(),
                build_digest: digest(1),
            }],
        },
        machine(),
        "default",
        None,
        1,
        at("2024-05-02T00:00:00Z"),
    )
    .unwrap();
    let envelope = envelope_of(content, &builder_key());
    let mut value = serde_json::to_value(&envelope).unwrap();
    value["signed"]["payload"]["suites"][0]["build-digest"] = json!("nope");
    assert_refused_at(
        MessageKind::SignedEnvelope,
        &value,
        "/signed/payload/suites/0/build-digest",
        "pattern",
    );
    // A suite envelope must carry a build digest.
    let mut value = serde_json::to_value(&envelope).unwrap();
    value["signed"]["kind"] = json!("suite");
    let violations = refused(MessageKind::SignedEnvelope, &value);
    assert!(
        violations
            .iter()
            .any(|violation| violation.pointer == "/signed/build-digest"),
        "{violations:#?}"
    );
    assert!(
        violations
            .iter()
            .any(|violation| violation.pointer == "/signed/payload/suite"),
        "{violations:#?}"
    );
    // The typed accessor refuses a payload of another kind.
    assert!(matches!(
        envelope.signed.payload::<SuiteDelivery>(),
        Err(ProtocolError::WrongPayloadKind { .. })
    ));
    assert_eq!(
        envelope.signed.payload::<SuiteList>().unwrap().suites.len(),
        1
    );
}

#[test]
fn decode_reports_text_schema_and_type_errors_apart() {
    let error = StatusReport::decode(b"{\"id\": ").unwrap_err();
    assert!(
        matches!(error, ProtocolError::NotJson { line: 1, .. }),
        "{error}"
    );

    let error = SessionRequest::decode(br#"{"machine": "ws"}"#).unwrap_err();
    let ProtocolError::Schema { violations, .. } = &error else {
        panic!("{error}");
    };
    let pointers: BTreeSet<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
    assert_eq!(pointers, BTreeSet::from(["/token", "/signature"]));
    assert!(
        error
            .to_string()
            .contains("/token: required property \"token\" is missing")
    );

    // Matches the pattern, but 2023 has no 29 February: only the type knows.
    let mut value = sample(MessageKind::StatusReport);
    value["started-at"] = json!("2023-02-29T00:00:00Z");
    let error = StatusReport::from_value(value).unwrap_err();
    assert!(matches!(error, ProtocolError::Shape { .. }), "{error}");
    assert!(error.to_string().contains("day"), "{error}");
}

#[test]
fn an_invalid_body_answer_fits_its_own_schema() {
    let value = changed(MessageKind::StatusReport, |value| {
        for field in ["id", "suite", "log", "evidence", "step"] {
            value[field] = json!(17);
        }
    });
    let violations = refused(MessageKind::StatusReport, &value);
    let body = ErrorBody::invalid_body(&violations);
    assert_eq!(body.error, ErrorCode::InvalidBody);
    assert!(body.message.contains("more"), "{}", body.message);
    assert!(
        validate(
            MessageKind::ErrorBody,
            &serde_json::to_value(&body).unwrap()
        )
        .is_ok()
    );
}

// ---------------------------------------------------------------------------
// Canonical JSON and signatures

#[test]
fn canonical_json_matches_the_hand_written_bytes() {
    let value = json!({
        "serial": 7,
        "payload": {"z": [true, null, 1.5, -2], "a": "x\"y\u{e9}", "A": {}},
        "kind": "suite",
        "empty": [],
    });
    assert_eq!(
        canonical_json(&value),
        "{\"empty\":[],\"kind\":\"suite\",\"payload\":{\"A\":{},\"a\":\"x\\\"y\u{e9}\",\
         \"z\":[true,null,1.5,-2]},\"serial\":7}"
            .as_bytes()
    );
}

#[test]
fn canonical_json_is_stable_under_key_order() {
    let members = [
        ("\"b\"", "1"),
        ("\"a\"", "{\"y\":2,\"x\":[3,{\"k\":1,\"j\":0}]}"),
        ("\"\u{e9}\"", "\"e\""),
        ("\"Z\"", "null"),
    ];
    let expected =
        "{\"Z\":null,\"a\":{\"x\":[3,{\"j\":0,\"k\":1}],\"y\":2},\"b\":1,\"\u{e9}\":\"e\"}";
    // Every order of the top-level members, each written as text and parsed.
    let mut orders = vec![vec![0, 1, 2, 3]];
    for _ in 0..23 {
        let mut next = orders.last().unwrap().clone();
        next_permutation(&mut next);
        orders.push(next);
    }
    let distinct: BTreeSet<&Vec<usize>> = orders.iter().collect();
    assert_eq!(distinct.len(), 24);
    for order in &orders {
        let text = format!(
            "{{ {} }}",
            order
                .iter()
                .map(|&index| format!("{}: {}", members[index].0, members[index].1))
                .collect::<Vec<_>>()
                .join(" ,\n ")
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&value), expected.as_bytes(), "{text}");
    }
}

/// Rearranges `items` into the next permutation in lexicographic order.
fn next_permutation(items: &mut [usize]) {
    let Some(pivot) = (0..items.len() - 1)
        .rev()
        .find(|&i| items[i] < items[i + 1])
    else {
        items.reverse();
        return;
    };
    let swap = (pivot + 1..items.len())
        .rev()
        .find(|&i| items[i] > items[pivot])
        .unwrap();
    items.swap(pivot, swap);
    items[pivot + 1..].reverse();
}

#[test]
fn the_signed_message_is_the_context_and_the_canonical_content_with_the_payload_digest() {
    let content = SignedContent::new(
        &SuiteList { suites: Vec::new() },
        machine(),
        "developer+end-user",
        None,
        42,
        at("2024-05-02T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(ENVELOPE_CONTEXT, b"roleout-envelope-v2\0");
    // The payload is signed by its SHA-256: `printf '{"suites":[]}' | sha256sum`.
    let mut expected = ENVELOPE_CONTEXT.to_vec();
    expected.extend_from_slice(
        b"{\"expires-at\":\"2024-05-02T00:00:00Z\",\"kind\":\"suite-list\",\
          \"machine\":\"ws-0042\",\
          \"payload-digest\":\"8c2202bb102cb24cb6b1ff9ed75160ea54c2fc7a7d44145b92920a16069b9786\",\
          \"roles\":\"developer+end-user\",\"serial\":42}",
    );
    assert_eq!(content.signed_message().unwrap(), expected);
    // The same message from a digest the caller already has.
    let digest = SignedContent::payload_digest(b"{\"suites\":[]}");
    assert_eq!(content.signed_message_for(&digest).unwrap(), expected);
    // And the envelope's `signed` member still carries the payload itself.
    assert_eq!(
        content.canonical_bytes().unwrap(),
        b"{\"expires-at\":\"2024-05-02T00:00:00Z\",\"kind\":\"suite-list\",\
          \"machine\":\"ws-0042\",\"payload\":{\"suites\":[]},\
          \"roles\":\"developer+end-user\",\"serial\":42}"
    );
    assert_eq!(roles_key(), "developer+end-user");
}

#[test]
fn a_signed_envelope_verifies_after_a_trip_through_reordered_text() {
    let key = builder_key();
    let content = SignedContent::new(
        &suite_delivery(),
        machine(),
        roles_key(),
        Some(digest(1)),
        9,
        at("2024-05-02T00:00:00Z"),
    )
    .unwrap();
    let envelope = envelope_of(content, &key);

    // What a proxy might do without changing meaning: pretty-print and
    // reverse the order of every object's keys.
    let text = reversed_keys(&serde_json::to_value(&envelope).unwrap());
    assert!(text.starts_with("{\n  \"signed\""), "{}", &text[..40]);
    let received = SignedEnvelope::decode(text.as_bytes()).unwrap();
    let public = UnparsedPublicKey::new(&ED25519, key.public_key().as_ref().to_vec());
    public
        .verify(
            &received.signed.signed_message().unwrap(),
            received.signature.as_bytes(),
        )
        .unwrap();
    let delivery: SuiteDelivery = received.signed.payload().unwrap();
    assert_eq!(delivery, suite_delivery());

    // One changed byte of the payload and the signature fails.
    let mut tampered = received.clone();
    tampered.signed.payload["machine"]["components"] = json!(["java-runtime"]);
    assert!(
        public
            .verify(
                &tampered.signed.signed_message().unwrap(),
                tampered.signature.as_bytes()
            )
            .is_err()
    );
}

/// Pretty JSON text with every object's keys in reverse order.
fn reversed_keys(value: &Value) -> String {
    fn write(value: &Value, depth: usize, out: &mut String) {
        let indent = "  ".repeat(depth + 1);
        match value {
            Value::Object(map) => {
                let entries: Vec<String> = map
                    .iter()
                    .rev()
                    .map(|(key, member)| {
                        let mut inner = String::new();
                        write(member, depth + 1, &mut inner);
                        format!("{indent}{}: {inner}", Value::String(key.clone()))
                    })
                    .collect();
                out.push_str(&format!(
                    "{{\n{}\n{}}}",
                    entries.join(",\n"),
                    "  ".repeat(depth)
                ));
            }
            Value::Array(items) => {
                let entries: Vec<String> = items
                    .iter()
                    .map(|item| {
                        let mut inner = String::new();
                        write(item, depth + 1, &mut inner);
                        inner
                    })
                    .collect();
                out.push_str(&format!("[{}]", entries.join(", ")));
            }
            leaf => out.push_str(&leaf.to_string()),
        }
    }
    let mut out = String::new();
    write(value, 0, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Schema files and the OpenAPI document

fn api_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas/api")
}

#[test]
fn every_message_kind_has_its_schema_file() {
    for kind in MessageKind::ALL {
        let path = api_dir().join(kind.schema_file());
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(on_disk, kind.schema_text(), "{}", path.display());
        let schema: Value = serde_json::from_str(&on_disk).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        if kind.is_request() {
            assert_eq!(schema["additionalProperties"], false, "{kind}");
        }
    }
    let listed: BTreeSet<&str> = SCHEMA_FILES.iter().map(|(file, _)| *file).collect();
    for entry in std::fs::read_dir(api_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".schema.json") {
            assert!(listed.contains(name.as_str()), "{name} is not embedded");
        }
    }
}

/// Every `$ref` in `value`, with the JSON pointer where it is.
fn references(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, member) in map {
                if key == "$ref" {
                    if let Some(target) = member.as_str() {
                        out.push((at.to_owned(), target.to_owned()));
                    }
                }
                references(member, &format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                references(item, &format!("{at}/{index}"), out);
            }
        }
        _ => {}
    }
}

/// Resolves `reference` as seen from `document`: another file of
/// schemas/api, optionally with a fragment pointer.
fn resolve_reference(document: &Value, reference: &str) -> Option<Value> {
    let (file, fragment) = reference.split_once('#').unwrap_or((reference, ""));
    let target = if file.is_empty() {
        document.clone()
    } else {
        let text = std::fs::read_to_string(api_dir().join(file)).ok()?;
        serde_json::from_str(&text).ok()?
    };
    target.pointer(fragment).cloned()
}

#[test]
fn every_reference_of_the_api_documents_resolves() {
    let mut files: Vec<String> = SCHEMA_FILES
        .iter()
        .map(|(file, _)| file.to_string())
        .collect();
    files.push("openapi.json".to_owned());
    for file in files {
        let document: Value =
            serde_json::from_str(&std::fs::read_to_string(api_dir().join(&file)).unwrap()).unwrap();
        let mut found = Vec::new();
        references(&document, "", &mut found);
        for (at, target) in found {
            assert!(
                resolve_reference(&document, &target).is_some(),
                "{file}{at}: $ref {target} does not resolve"
            );
        }
    }
}

/// One route as the OpenAPI document must list it.
struct Route {
    method: &'static str,
    path: &'static str,
    /// Whether it needs the bearer session.
    bearer: bool,
    /// The request body's schema, without `.schema.json`.
    request: Option<&'static str>,
    /// Schemas the 2xx answer references.
    answers: &'static [&'static str],
}

fn route(
    method: &'static str,
    path: &'static str,
    bearer: bool,
    request: Option<&'static str>,
    answers: &'static [&'static str],
) -> Route {
    Route {
        method,
        path,
        bearer,
        request,
        answers,
    }
}

#[test]
fn the_openapi_document_covers_the_whole_api() {
    let document: Value = serde_json::from_str(OPENAPI).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let on_disk = std::fs::read_to_string(api_dir().join("openapi.json")).unwrap();
    assert_eq!(on_disk, OPENAPI);

    let expected = [
        route(
            "post",
            "/v1/enroll",
            false,
            Some("enroll-request"),
            &["enroll-response"],
        ),
        route(
            "post",
            "/v1/challenge",
            false,
            Some("challenge-request"),
            &["challenge-response"],
        ),
        route(
            "post",
            "/v1/session",
            false,
            Some("session-request"),
            &["session-response"],
        ),
        route(
            "get",
            "/v1/suites",
            true,
            None,
            &["signed-envelope", "suite-list"],
        ),
        route(
            "get",
            "/v1/suites/{id}",
            true,
            None,
            &["signed-envelope", "suite-delivery"],
        ),
        route(
            "get",
            "/v1/suites/{id}/components/{product}",
            true,
            None,
            &["signed-envelope", "component-delivery"],
        ),
        route("get", "/v1/payloads/{sha256}", true, None, &[]),
        route(
            "post",
            "/v1/reports",
            true,
            Some("status-report"),
            &["report-ack"],
        ),
        route(
            "post",
            "/v1/reports/complete",
            true,
            Some("suite-complete"),
            &["close"],
        ),
        route("get", "/v1/health", false, None, &["health"]),
        route("get", "/v1/trust", false, None, &["trust-announcement"]),
        route(
            "post",
            "/v1/content/missing",
            true,
            Some("content-offer"),
            &["content-want"],
        ),
        route(
            "put",
            "/v1/content/{sha256}",
            true,
            None,
            &["content-stored"],
        ),
        route(
            "get",
            "/v1/jobs/current",
            true,
            None,
            &["signed-envelope", "image-job"],
        ),
        route("get", "/v1/jobs/{job}/archive", true, None, &[]),
        route("get", "/v1/content/{sha256}", false, None, &[]),
        route(
            "post",
            "/v1/jobs/{job}/progress",
            true,
            Some("job-progress"),
            &["close"],
        ),
        route(
            "post",
            "/v1/images",
            true,
            Some("image-upload"),
            &["image-stored"],
        ),
    ];
    let paths = document["paths"].as_object().unwrap();
    let mut operations = 0;
    for path in paths.values() {
        operations += path.as_object().unwrap().len();
    }
    assert_eq!(
        operations,
        expected.len(),
        "no route beyond the listed ones"
    );

    let mut referenced = BTreeSet::new();
    for Route {
        method,
        path,
        bearer,
        request,
        answers,
    } in expected
    {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is missing");
        assert_eq!(
            operation.get("security") == Some(&json!([{"session": []}])),
            bearer,
            "{method} {path}: bearer security"
        );
        if let Some(request) = request {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            assert_eq!(schema["$ref"], format!("{request}.schema.json"), "{path}");
        }
        let responses = operation["responses"].as_object().unwrap();
        let success = responses
            .iter()
            .find(|(status, _)| status.starts_with('2'))
            .map(|(_, response)| response)
            .unwrap();
        let mut found = Vec::new();
        references(success, "", &mut found);
        let files: BTreeSet<String> = found
            .iter()
            .map(|(_, target)| target.trim_end_matches(".schema.json").to_owned())
            .collect();
        for answer in answers {
            assert!(files.contains(*answer), "{method} {path}: {files:?}");
        }
        referenced.extend(files);
        if let Some(request) = request {
            referenced.insert(request.to_owned());
        }
        // Every operation documents its error answers with the error body.
        let errors: Vec<_> = responses
            .iter()
            .filter(|(status, _)| status.starts_with('4') || status.starts_with('5'))
            .collect();
        assert!(!errors.is_empty(), "{method} {path} has no error answers");
        for (status, response) in errors {
            assert_eq!(
                response["$ref"], "#/components/responses/Error",
                "{method} {path} {status}"
            );
        }
        if bearer {
            assert!(responses.contains_key("401"), "{method} {path}: 401");
        }
        if request.is_some() {
            assert!(responses.contains_key("400"), "{method} {path}: 400");
            assert!(responses.contains_key("413"), "{method} {path}: 413");
        }
    }
    let error = &document["components"]["responses"]["Error"]["content"]["application/json"];
    assert_eq!(error["schema"]["$ref"], "error.schema.json");
    referenced.insert("error".to_owned());
    let payload = &document["paths"]["/v1/payloads/{sha256}"]["get"];
    assert!(
        payload["responses"]["206"].is_object(),
        "ranges are documented"
    );

    // Every message kind is reachable from the document.
    for kind in MessageKind::ALL {
        assert!(
            referenced.contains(&kind.to_string()),
            "{kind} is not in openapi.json"
        );
    }
}

#[test]
fn a_key_given_twice_is_refused() {
    let error = ChallengeRequest::decode(br#"{"machine": "pc-1", "machine": "pc-2"}"#).unwrap_err();
    assert!(
        error.to_string().contains("\"machine\" appears twice"),
        "{error}"
    );
    let nested =
        StatusReport::decode(br#"{"id": "r", "evidence": [], "log": "", "log": "x"}"#).unwrap_err();
    assert!(nested.to_string().contains("appears twice"), "{nested}");
    // Once each is fine.
    ChallengeRequest::decode(br#"{"machine": "pc-1"}"#).unwrap();
}
