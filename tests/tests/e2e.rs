//! The whole story over real processes: roleoutd with its managed slapd,
//! the example catalog imported with roleout-admin, machines enrolled and
//! installing with roleout into sandbox roots. Each scenario has a world of
//! its own, so they run in parallel and share nothing.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::fs;
use std::path::{Path, PathBuf};

use roleout_model::protocol::{ReportOutcome, ReportStep};
use roleout_tests::{Machine, Run, World, fixture};

/// Asserts that `run` ended with `code`, showing its output otherwise.
fn assert_exit(run: &Run, code: i32, what: &str) {
    assert_eq!(
        run.code(),
        Some(code),
        "{what}: roleout install should exit {code}\n{}",
        run.transcript()
    );
}

/// Asserts that every component of a run was skipped and none ran a step.
fn assert_nothing_installed(run: &Run, machine: &Machine) {
    assert_exit(run, 0, &format!("second run on {}", machine.name));
    let outcomes = run.outcomes();
    assert!(!outcomes.is_empty(), "{}", run.transcript());
    for (product, outcome) in &outcomes {
        assert_eq!(
            outcome,
            "skipped",
            "{}: {product} should be skipped on a second run\n{}",
            machine.name,
            run.transcript()
        );
        assert!(!run.ran_a_step_of(product), "{}", run.transcript());
    }
    assert_eq!(
        run.summary().map(|summary| &summary["installed"]),
        Some(&0.into())
    );
}

/// The components `machine` reported a successful install step of.
fn reported_installs(world: &World, machine: &Machine) -> Vec<String> {
    let mut products: Vec<String> = world
        .reports(machine)
        .into_iter()
        .filter(|report| {
            report.step == ReportStep::Install && report.outcome == ReportOutcome::Success
        })
        .map(|report| report.component.to_string())
        .collect();
    products.sort();
    products.dedup();
    products
}

/// The files under `directory` whose bytes contain `needle`.
fn files_containing(directory: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![directory.to_owned()];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current)
            .unwrap_or_else(|error| panic!("cannot list {}: {error}", current.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if fs::read(&path).is_ok_and(|bytes| {
                bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
            }) {
                found.push(path);
            }
        }
    }
    found
}

/// The run that `roleout status` says installed `product`.
fn installed_by(status: &serde_json::Value, product: &str) -> String {
    status["installed"][product]["run"]
        .as_str()
        .unwrap_or_else(|| panic!("status records no install of {product}: {status}"))
        .to_owned()
}

#[test]
fn three_roles_get_three_different_installations() {
    three_roles_over(&World::start());
}

/// The same installations with 389 Directory Server as the directory:
/// roleoutd and roleout-admin bind to it as their service accounts, under
/// the ACIs generated from Roleout's access rules, and roleoutd follows it
/// through 389's content synchronization.
#[test]
fn three_roles_get_three_different_installations_over_389_directory_server() {
    let world = World::start_on_389();
    three_roles_over(&world);
    let log = std::fs::read_to_string(world.top().join("roleoutd.log")).unwrap();
    assert!(
        log.contains("change feed live: serving from memory"),
        "roleoutd should follow 389's changes:\n{log}"
    );
}

fn three_roles_over(world: &World) {
    let user = world.enroll("pc-user", "end-user");
    let developer = world.enroll("pc-dev", "developer");
    let administrator = world.enroll("pc-admin", "administrator");

    for machine in [&user, &developer, &administrator] {
        let run = world.install(machine);
        assert_exit(&run, 0, &format!("first run on {}", machine.name));
    }

    // The end user: the client, its runtime and its help, nothing more.
    assert_eq!(
        user.dpkg("notes-client"),
        Some(("install ok installed".to_owned(), "9.0.1".to_owned()))
    );
    assert_eq!(user.read("opt/jre/release"), "JAVA_VERSION=\"1.8.0_401\"");
    assert_eq!(user.read("opt/notes-help/VERSION"), "9.0.1");
    assert!(
        !user.has("opt/notes-designer"),
        "no designer for an end user"
    );
    assert!(
        !user.has("opt/notes/notes-sdk"),
        "no SDK headers for an end user"
    );
    assert!(
        !user.has("opt/domino-admin"),
        "no admin tools for an end user"
    );
    assert!(!user.has("var/log/notes-admin-setup.log"));

    // The developer: the same, plus the designer and the SDK headers of
    // the developer version of the client.
    assert_eq!(
        developer.dpkg("notes-client"),
        Some(("install ok installed".to_owned(), "9.0.1".to_owned()))
    );
    assert_eq!(developer.read("opt/notes-designer/VERSION"), "9.0.1");
    assert!(developer.has("opt/notes/notes-sdk/include/notes.h"));
    assert!(developer.has("srv/notes-workspace"));
    assert!(!developer.has("opt/domino-admin"));
    assert!(!developer.has("var/log/notes-admin-setup.log"));

    // The administrator: the admin tools and the admin setup of the
    // administrator version of the client, no designer, no SDK.
    assert_eq!(
        administrator.dpkg("notes-client"),
        Some(("install ok installed".to_owned(), "9.0.1".to_owned()))
    );
    assert_eq!(administrator.read("opt/domino-admin/VERSION"), "9.0.1");
    let setup_log = administrator.read("var/log/notes-admin-setup.log");
    assert!(setup_log.ends_with("Installation complete"), "{setup_log}");
    assert!(!administrator.has("opt/notes-designer"));
    assert!(!administrator.has("opt/notes/notes-sdk"));
    // The password reached the setup but no log.
    assert!(!setup_log.contains("Tr0ub4dor-e2e"));

    // Each machine's reports are in the directory, about its own components.
    assert_eq!(
        reported_installs(world, &user),
        ["jre", "notes-client", "notes-help"]
    );
    assert_eq!(
        reported_installs(world, &developer),
        ["jre", "notes-client", "notes-designer", "notes-help"]
    );
    assert_eq!(
        reported_installs(world, &administrator),
        ["domino-admin", "jre", "notes-client", "notes-help"]
    );
    for machine in [&user, &developer, &administrator] {
        for report in world.reports(machine) {
            assert_eq!(report.machine.as_str(), machine.name);
            assert!(
                !report
                    .evidence
                    .iter()
                    .any(|line| line.contains("Tr0ub4dor-e2e")),
                "a password reached a report: {report:?}"
            );
        }
    }

    // Nor did it reach a log in roleoutd's content store or anything the
    // administrator's machine keeps.
    for place in [
        world.server_state.join("content"),
        administrator.state.clone(),
    ] {
        let holders = files_containing(&place, "Tr0ub4dor-e2e");
        assert!(holders.is_empty(), "the password is in {holders:?}");
    }

    // A second run installs nothing.
    for machine in [&user, &developer, &administrator] {
        let run = world.install(machine);
        assert_nothing_installed(&run, machine);
    }
}

#[test]
fn a_machine_moved_to_another_role_gets_that_role_version_on_its_next_run() {
    let world = World::start();
    let machine = world.enroll("pc-mover", "end-user");
    let first = world.install(&machine);
    assert_exit(&first, 0, "run as an end user");
    assert!(!machine.has("opt/notes-designer"));
    let first_status = world.status(&machine);
    let first_run = first_status["run"]["id"]
        .as_str()
        .expect("the journal records the run")
        .to_owned();

    world.admin(&format!(
        "role remove-member end-user {name}; role add-member developer {name}",
        name = machine.name
    ));
    world.build();
    let shown = world.admin(&format!("show /machines/{}", machine.name));
    assert!(shown.contains("roles: developer"), "{shown}");

    let second = world.install(&machine);
    assert_exit(&second, 0, "run as a developer");
    assert_eq!(machine.read("opt/notes-designer/VERSION"), "9.0.1");
    assert!(
        second.installed("notes-designer"),
        "{}",
        second.transcript()
    );

    // What did not change for the new role is not installed again.
    for product in ["jre", "notes-help"] {
        assert_eq!(
            second.outcome(product),
            Some("skipped"),
            "{}",
            second.transcript()
        );
        assert!(!second.ran_a_step_of(product), "{}", second.transcript());
    }
    let status = world.status(&machine);
    assert_ne!(
        status["run"]["build"], first_status["run"]["build"],
        "the developer's build is not the end user's"
    );
    assert_eq!(installed_by(&status, "jre"), first_run);
    assert_eq!(installed_by(&status, "notes-help"), first_run);
    assert_ne!(installed_by(&status, "notes-designer"), first_run);
}

/// The developer version of notes-client differs from the end-user one by
/// its fileset and a post-install that unpacks the SDK; its version (9.0.1)
/// does not change, and its version check (dpkg package at >=9.0.1) holds.
#[test]
fn a_machine_moved_to_developer_gets_the_sdk_of_the_developer_client() {
    let world = World::start();
    let machine = world.enroll("pc-mover-sdk", "end-user");
    assert_exit(&world.install(&machine), 0, "run as an end user");
    assert!(!machine.has("opt/notes/notes-sdk"));

    world.admin(&format!(
        "role remove-member end-user {name}; role add-member developer {name}",
        name = machine.name
    ));
    world.build();
    let second = world.install(&machine);
    assert_exit(&second, 0, "run as a developer");
    assert!(
        machine.has("opt/notes/notes-sdk/include/notes.h"),
        "the developer version of notes-client unpacks the SDK\n{}",
        second.transcript()
    );
}

#[test]
fn a_failed_install_blocks_its_dependents_and_the_report_shows_why() {
    let world = World::start();
    world.import(&fixture("failing-client/notes-client.xml"), None);
    let built = world.build();
    assert!(
        built.contains("domino developer+end-user: built"),
        "{built}"
    );
    let machine = world.enroll("pc-broken", "developer");

    let run = world.install(&machine);
    assert_exit(&run, 1, "a run with a failed component");
    assert_eq!(
        run.outcome("notes-client"),
        Some("failed"),
        "{}",
        run.transcript()
    );
    assert_eq!(
        run.outcome("notes-designer"),
        Some("blocked"),
        "{}",
        run.transcript()
    );
    assert!(!run.ran_a_step_of("notes-designer"));
    assert!(!machine.has("opt/notes-designer"));
    // The suite goes on after a failure: what does not need the client is
    // installed.
    assert!(run.installed("jre"), "{}", run.transcript());
    assert!(run.installed("notes-help"), "{}", run.transcript());
    assert!(machine.has("opt/jre/bin/java"));

    let reports = world.reports(&machine);
    let failed = reports
        .iter()
        .find(|report| report.component.as_str() == "notes-client")
        .unwrap_or_else(|| panic!("no report of notes-client: {reports:#?}"));
    assert_eq!(failed.outcome, ReportOutcome::Failed, "{failed:#?}");
    assert_eq!(failed.step, ReportStep::Install, "{failed:#?}");
    assert_eq!(failed.exit_code, Some(0), "{failed:#?}");
    assert!(
        failed
            .evidence
            .iter()
            .any(|line| line.contains("ERROR: licence server refused seat")),
        "the report's evidence holds the failure line of the log: {failed:#?}"
    );
    assert!(failed.log_digest.is_some(), "the log was sent: {failed:#?}");
    let blocked = reports
        .iter()
        .find(|report| report.component.as_str() == "notes-designer")
        .unwrap_or_else(|| panic!("no report of notes-designer: {reports:#?}"));
    assert_eq!(blocked.outcome, ReportOutcome::Blocked, "{blocked:#?}");
    assert!(
        blocked
            .evidence
            .iter()
            .any(|line| line.contains("notes-client")),
        "the blocked report names what it waited for: {blocked:#?}"
    );
}

#[test]
fn a_new_version_reaches_every_machine_whose_role_includes_it() {
    let world = World::start();
    let developers = [
        world.enroll("pc-dev-1", "developer"),
        world.enroll("pc-dev-2", "developer"),
    ];
    let user = world.enroll("pc-user-1", "end-user");
    for machine in developers.iter().chain([&user]) {
        assert_exit(
            &world.install(machine),
            0,
            &format!("first run on {}", machine.name),
        );
    }
    let user_run = world.status(&user)["run"]["build"].clone();

    world.import(
        &fixture("designer-9.0.2/notes-designer.xml"),
        Some(&fixture("designer-9.0.2/payloads")),
    );
    let built = world.build();
    assert!(
        built.contains("domino developer+end-user: built"),
        "{built}"
    );
    assert!(built.contains("domino end-user: unchanged"), "{built}");

    for machine in &developers {
        let run = world.install(machine);
        assert_exit(
            &run,
            0,
            &format!("run after the update on {}", machine.name),
        );
        assert!(run.installed("notes-designer"), "{}", run.transcript());
        assert_eq!(machine.read("opt/notes-designer/VERSION"), "9.0.2");
        let designer = machine.read("opt/notes-designer/bin/designer");
        assert!(designer.contains("Notes Designer 9.0.2"), "{designer}");
        assert_eq!(
            world.status(machine)["installed"]["notes-designer"]["version"],
            "9.0.2"
        );
        // Only the new version ran.
        for product in ["jre", "notes-client", "notes-help"] {
            assert_eq!(
                run.outcome(product),
                Some("skipped"),
                "{}",
                run.transcript()
            );
        }
    }

    // The end user's role does not include the designer: same build,
    // nothing installed.
    let run = world.install(&user);
    assert_nothing_installed(&run, &user);
    assert!(!user.has("opt/notes-designer"));
    assert_eq!(world.status(&user)["run"]["build"], user_run);
}

/// One component of `roleout-admin plan`'s output: its product and the
/// values its variables get.
#[derive(Debug, PartialEq, Eq)]
struct PlannedComponent {
    product: String,
    values: std::collections::BTreeMap<String, String>,
}

/// The components of suite `suite` in `roleout-admin plan` output, in
/// order, with their `values:` lines.
fn planned(output: &str, suite: &str) -> Vec<PlannedComponent> {
    let mut components: Vec<PlannedComponent> = Vec::new();
    let mut in_suite = false;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("suite ") {
            in_suite = rest.split_whitespace().next() == Some(suite);
            continue;
        }
        if !in_suite {
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(values) = trimmed.strip_prefix("values: ") {
            let component = components.last_mut().expect("values follow a component");
            for pair in values.split(", ") {
                let (name, value) = pair.split_once('=').expect("NAME=VALUE");
                component.values.insert(name.to_owned(), value.to_owned());
            }
            continue;
        }
        let Some((position, rest)) = trimmed.split_once(". ") else {
            continue;
        };
        if position.parse::<usize>().is_ok() {
            let product = rest.split_whitespace().next().unwrap_or_default();
            components.push(PlannedComponent {
                product: product.to_owned(),
                values: std::collections::BTreeMap::new(),
            });
        }
    }
    components
}

/// What the office fixture's products wrote on `machine`: each installed
/// product with the values it was given, in the order they were
/// installed.
fn installed_values(run: &Run, machine: &Machine) -> Vec<PlannedComponent> {
    run.outcomes()
        .into_iter()
        .filter(|(product, _)| run.installed(product))
        .map(|(product, _)| {
            let values = machine
                .read(&format!("opt/values/{product}"))
                .lines()
                .map(|line| {
                    let (name, value) = line.split_once('=').expect("NAME=VALUE");
                    (name.to_owned(), value.to_owned())
                })
                .collect();
            PlannedComponent { product, values }
        })
        .collect()
}

#[test]
fn plan_shows_exactly_the_products_and_values_the_machine_installs() {
    let world = World::start();
    // roleoutd keeps its secret and keys there: owner only, although the
    // harness made the folder with the default mode.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &fs::metadata(&world.server_state)
            .expect("the state folder")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    world.import(&fixture("office"), None);
    world.admin("build office");
    let floor = world.enroll("pc-floor3", "end-user");
    let hq = world.enroll("pc-hq", "end-user");
    world.admin(
        "group create floor-3 --suite office; group add-machine floor-3 pc-floor3; \
         group choose floor-3 browser printer",
    );
    // Suite-wide: homepage, print queue, paper left at its default. The
    // group keeps the suite-wide homepage (an empty answer takes it) and
    // overrides the queue and the paper.
    world.admin_input("customize office\nhttps://intranet.example.org/\nhq\n\n");
    world.admin_input("customize office --group floor-3\n\nfloor3-color\nletter\n");

    for (machine, expected) in [
        (
            &floor,
            // In priority order (lower first), as the suite orders them.
            vec![
                (
                    "printer",
                    vec![
                        ("duplex", "true"),
                        ("paper_size", "216x279"),
                        ("queue", "floor3-color"),
                    ],
                ),
                (
                    "browser",
                    vec![("start_page", "https://intranet.example.org/")],
                ),
            ],
        ),
        (
            &hq,
            vec![
                ("spreadsheet", vec![("locale", "en_GB")]),
                (
                    "printer",
                    vec![
                        ("duplex", "true"),
                        ("paper_size", "210x297"),
                        ("queue", "hq"),
                    ],
                ),
                (
                    "browser",
                    vec![("start_page", "https://intranet.example.org/")],
                ),
            ],
        ),
    ] {
        let plan_output = world.admin(&format!("plan {} office", machine.name));
        let plan = planned(&plan_output, "office");
        let expected: Vec<PlannedComponent> = expected
            .into_iter()
            .map(|(product, values)| PlannedComponent {
                product: product.to_owned(),
                values: values
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect(),
            })
            .collect();
        assert_eq!(plan, expected, "plan of {}:\n{plan_output}", machine.name);

        let run = world.install_suite(machine, "office");
        assert_exit(&run, 0, &machine.name);
        assert_eq!(
            installed_values(&run, machine),
            plan,
            "{} installed other products or values than `plan` showed:\n{plan_output}\n{}",
            machine.name,
            run.transcript()
        );
    }
    // A product the group did not choose never reached the floor's machine.
    assert!(!floor.has("opt/values/spreadsheet"));
}

#[test]
fn unattended_runs_read_the_default_response_file_and_skip_what_is_installed() {
    let world = World::start();
    let mut machine = world.enroll("pc-unattended", "administrator");
    // The administrator's version of the mail client requires a password.
    // The run that installs it finds the value in the default response
    // file, as the scheduled unit does: no --response-file.
    let given = machine
        .response_file
        .take()
        .expect("administrators get one");
    let default = machine.default_response_file.clone();
    fs::create_dir_all(default.parent().expect("a parent")).expect("its directory");

    // Group or others may read it: refused, naming the file.
    fs::copy(&given, &default).expect("the default response file");
    fs::set_permissions(
        &default,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .expect("mode 0644");
    let open = world.install(&machine);
    assert_exit(&open, 2, "a default response file others may read");
    assert!(
        open.transcript().contains(&default.display().to_string()),
        "{}",
        open.transcript()
    );

    fs::set_permissions(
        &default,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("mode 0600");
    let first = world.install(&machine);
    assert_exit(&first, 0, "the first run with the default response file");
    assert!(first.installed("notes-client"), "{}", first.transcript());

    // The scheduled run after someone removed the file: the password is
    // not needed to see that everything is installed.
    fs::remove_file(&default).expect("remove the default response file");
    let scheduled = world.install(&machine);
    assert_nothing_installed(&scheduled, &machine);

    // What is not installed yet still needs its values: removed from the
    // sandbox, the client must be installed again and fails on the
    // missing password, saying so.
    fs::remove_dir_all(machine.path("opt/notes")).expect("remove the client's files");
    let dpkg_status = machine.path("var/lib/dpkg/status");
    let status = fs::read_to_string(&dpkg_status).expect("the dpkg database");
    let without_client: Vec<&str> = status
        .split("\n\n")
        .filter(|stanza| !stanza.starts_with("Package: notes-client\n"))
        .collect();
    fs::write(&dpkg_status, without_client.join("\n\n")).expect("the dpkg database");
    let missing = world.install(&machine);
    assert_exit(&missing, 1, "a run that needs the password it lacks");
    assert_eq!(
        missing.outcome("notes-client"),
        Some("failed"),
        "{}",
        missing.transcript()
    );
    assert!(
        missing.transcript().contains("admin_password"),
        "{}",
        missing.transcript()
    );
}

/// The SHA-256 of the certificate in `machine`'s state directory.
fn certificate_on_disk(machine: &Machine) -> String {
    use base64::Engine as _;
    let pem = fs::read_to_string(machine.state.join("machine.pem")).expect("machine.pem");
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM base64");
    roleout_model::ids::Sha256::of(&der).to_string()
}

#[test]
fn a_machine_renews_its_certificate_and_rotates_its_key_without_an_admin() {
    let world = World::start();
    // A certificate with 10 days left: the next install renews it.
    let machine = world.enroll_with("pc-keys", "end-user", &["--certificate-days", "10"]);
    let enrolled = world.enrolled_fingerprint(&machine);
    assert_eq!(certificate_on_disk(&machine), enrolled);

    let first = world.install(&machine);
    assert_exit(&first, 0, "the install that renews the certificate");
    assert!(
        first.transcript().contains("machine certificate renewed"),
        "{}",
        first.transcript()
    );
    let renewed = world.enrolled_fingerprint(&machine);
    assert_ne!(renewed, enrolled, "roleoutd holds the renewed certificate");
    assert_eq!(certificate_on_disk(&machine), renewed);

    // Valid for a year now: the next run renews nothing.
    let second = world.install(&machine);
    assert_nothing_installed(&second, &machine);
    assert!(
        !second.transcript().contains("renewed"),
        "{}",
        second.transcript()
    );
    assert_eq!(world.enrolled_fingerprint(&machine), renewed);

    // A new key pair, vouched for by the current key: no admin, no token.
    let rotated = world.roleout(&machine, &["rotate-key", "--algorithm", "ecdsa-p256"]);
    assert_eq!(rotated.code, Some(0), "{}", rotated.transcript());
    let now_held = world.enrolled_fingerprint(&machine);
    assert_ne!(now_held, renewed);
    assert!(
        rotated.stdout.contains(&now_held),
        "{}",
        rotated.transcript()
    );
    assert_eq!(certificate_on_disk(&machine), now_held);
    for pending in ["machine.key.new", "machine.pem.new"] {
        assert!(
            !machine.state.join(pending).exists(),
            "{pending} left behind"
        );
    }
    // The machine authenticates with its new key.
    let third = world.install(&machine);
    assert_nothing_installed(&third, &machine);

    // Enrolling again under the same name with a new key is refused.
    let other = world.top().join("machines/intruder");
    let intruder = fs::create_dir_all(&other).map(|()| {
        std::process::Command::new(roleout_tests::binary("roleout"))
            .arg("--state-dir")
            .arg(&other)
            .args(["enroll", "--server", &world.url, "--server-cert"])
            .arg(world.server_state.join("tls/cert.pem"))
            .args(["--name", "pc-keys"])
            .output()
            .expect("roleout enroll runs")
    });
    let intruder = intruder.expect("a state directory");
    assert_ne!(intruder.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&intruder.stderr).contains("already has a key"),
        "{}",
        String::from_utf8_lossy(&intruder.stderr)
    );
    assert_eq!(world.enrolled_fingerprint(&machine), now_held);
}

#[test]
fn machines_follow_a_rotation_of_the_builder_key_and_the_tls_certificate() {
    let mut world = World::start();
    let follower = world.enroll("pc-follows", "end-user");
    let absent = world.enroll("pc-absent", "end-user");
    assert_exit(&world.install(&follower), 0, "before the rotation");

    // Announced: the next key and certificate, endorsed by the current key.
    let prepared = world.roleoutd(&["--rotate", "prepare"]);
    assert_eq!(prepared.code, Some(0), "{}", prepared.transcript());
    let followed = world.install(&follower);
    assert_nothing_installed(&followed, &follower);
    assert!(
        followed
            .transcript()
            .contains("1 builder key(s), 1 TLS certificate(s) trusted from now on"),
        "{}",
        followed.transcript()
    );

    // Made current, roleoutd restarted: the machine that ran in between
    // goes on with the new key and certificate, without an admin.
    let activated = world.roleoutd(&["--rotate", "activate"]);
    assert_eq!(activated.code, Some(0), "{}", activated.transcript());
    world.restart_roleoutd();
    let after = world.install(&follower);
    assert_nothing_installed(&after, &follower);

    // One that did not run in between trusts neither: it is refused at
    // the TLS handshake and must enrol again.
    let stranded = world.install(&absent);
    assert_exit(&stranded, 4, "a machine that missed the announcement");
}

/// Builds `NAME_VERSION_all.deb` in `dist` with dpkg-deb: one file under
/// /opt/NAME (or at `file`), and `depends` as its Depends field.
fn build_deb(dist: &Path, name: &str, version: &str, depends: &str, file: Option<&str>) {
    let tree = dist.join(format!("tree-{name}"));
    let file = file.map_or_else(|| format!("opt/{name}/{name}.txt"), str::to_owned);
    let payload = tree.join(&file);
    fs::create_dir_all(payload.parent().unwrap()).unwrap();
    fs::write(&payload, format!("{name} {version}\n")).unwrap();
    fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    let depends = if depends.is_empty() {
        String::new()
    } else {
        format!("Depends: {depends}\n")
    };
    fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Example Packagers <pkg@example.org>\n{depends}Description: {name} for the authoring test\n"
        ),
    )
    .unwrap();
    let output = std::process::Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&tree)
        .arg(dist.join(format!("{name}_{version}_all.deb")))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "dpkg-deb: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::remove_dir_all(tree).unwrap();
}

/// The author's path from real Debian packages: `new-product` writes the
/// descriptors of a program and its two libraries (the libraries as
/// prerequisites, no digest written by hand), `check` and `import` fill
/// in digests from the payload folder, a suite names only the program,
/// and a machine gets the whole chain in order. A base-system requirement
/// the machine lacks fails its product with the reason on the machine's
/// own output; one a catalog provider supplies installs the provider
/// first, and a machine that already has it skips the provider.
#[test]
fn a_program_scaffolded_from_debian_packages_brings_its_library_chain() {
    let world = World::start();
    let dist = world.top().join("dist");
    let descriptors = world.top().join("descriptors");
    fs::create_dir_all(&dist).unwrap();
    fs::create_dir_all(&descriptors).unwrap();
    build_deb(&dist, "libcore", "1.0-1", "", None);
    build_deb(&dist, "libview", "2.4-1", "libcore (>= 1.0)", None);
    build_deb(&dist, "viewer", "3.1-2", "libview (>= 2)", None);
    build_deb(
        &dist,
        "fonts-viewer",
        "1.0",
        "",
        Some("usr/share/fonts/viewer.ttf"),
    );
    let scaffolded = world.admin(&format!(
        "new-product {dist}/viewer_3.1-2_all.deb {dist}/libview_2.4-1_all.deb {dist}/libcore_1.0-1_all.deb {dist}/fonts-viewer_1.0_all.deb --output-dir {out}",
        dist = dist.display(),
        out = descriptors.display()
    ));
    assert!(scaffolded.contains("product viewer 3.1-2"), "{scaffolded}");
    let viewer = fs::read_to_string(descriptors.join("viewer.xml")).unwrap();
    assert!(
        viewer.contains(r#"<prerequisite product="libview" version="&gt;=2"/>"#),
        "{viewer}"
    );
    assert!(
        viewer.contains(r#"<file path="viewer_3.1-2_all.deb"/>"#),
        "{viewer}"
    );
    // Two products that need what the system may lack, written by hand.
    fs::write(
        descriptors.join("viewer-gtk.xml"),
        r#"<product xmlns="urn:roleout:descriptor:1" id="viewer-gtk" version="3.1">
  <dependencies><requires-system package="libgtk-3-0" manager="dpkg" version="&gt;=3.24"/></dependencies>
  <install><arg>true</arg></install>
</product>
"#,
    )
    .unwrap();
    fs::write(
        descriptors.join("viewer-fonts.xml"),
        r#"<product xmlns="urn:roleout:descriptor:1" id="viewer-fonts" version="1.0">
  <dependencies><requires-system file="{{ root }}/usr/share/fonts/viewer.ttf" provider="fonts-viewer"/></dependencies>
  <install><arg>touch</arg><arg>{{ root }}/opt/viewer-fonts.done</arg></install>
</product>
"#,
    )
    .unwrap();
    for (suite, member) in [
        ("tools", "viewer"),
        ("gtk", "viewer-gtk"),
        ("fonts", "viewer-fonts"),
    ] {
        fs::write(
            descriptors.join(format!("suite-{suite}.xml")),
            format!(
                r#"<suite xmlns="urn:roleout:descriptor:1" id="{suite}" version="1"><products><product ref="{member}"/></products></suite>"#
            ),
        )
        .unwrap();
    }
    let checked = world.admin(&format!(
        "check --payloads {} {}/*.xml",
        dist.display(),
        descriptors.display()
    ));
    assert!(
        checked.contains("suite tools assembles and resolves"),
        "{checked}"
    );
    world.import(&descriptors, Some(&dist));
    world.admin("build tools; build gtk; build fonts");

    let machine = world.enroll("pc-viewer", "end-user");
    let plan = world.admin("plan pc-viewer tools");
    assert!(
        plan.contains(
            "libcore 1.0-1  why: pulled in from the catalog: prerequisite of libview (>=1.0)"
        ),
        "{plan}"
    );
    let run = world.install_suite(&machine, "tools");
    assert_exit(&run, 0, "the tools suite");
    for (package, version) in [
        ("libcore", "1.0-1"),
        ("libview", "2.4-1"),
        ("viewer", "3.1-2"),
    ] {
        assert_eq!(
            machine.dpkg(package),
            Some(("install ok installed".to_owned(), version.to_owned())),
            "{package}\n{}",
            run.transcript()
        );
    }
    let order: Vec<String> = run
        .outcomes()
        .into_iter()
        .map(|(product, _)| product)
        .collect();
    assert_eq!(
        order,
        ["libcore", "libview", "viewer"],
        "{}",
        run.transcript()
    );

    // The system lacks libgtk-3-0: the product fails, and the machine
    // says why.
    let run = world.install_suite(&machine, "gtk");
    assert_exit(&run, 1, "the gtk suite");
    assert_eq!(
        run.outcome("viewer-gtk"),
        Some("failed"),
        "{}",
        run.transcript()
    );
    let detail = run.outcome_event("viewer-gtk").unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        detail.contains(
            "the system lacks what it requires: dpkg package libgtk-3-0 (>=3.24) (dpkg package libgtk-3-0 is not installed)"
        ),
        "{detail}"
    );

    // The fonts come from their provider on a machine without them...
    let run = world.install_suite(&machine, "fonts");
    assert_exit(&run, 0, "the fonts suite");
    assert!(run.installed("fonts-viewer"), "{}", run.transcript());
    assert!(run.installed("viewer-fonts"), "{}", run.transcript());
    assert!(machine.has("usr/share/fonts/viewer.ttf"));
    // ...and a machine that has them skips the provider.
    let other = world.enroll("pc-fonts", "end-user");
    fs::create_dir_all(other.path("usr/share/fonts")).unwrap();
    fs::write(other.path("usr/share/fonts/viewer.ttf"), "a font\n").unwrap();
    let run = world.install_suite(&other, "fonts");
    assert_exit(&run, 0, "the fonts suite on a machine with the fonts");
    assert_eq!(
        run.outcome("fonts-viewer"),
        Some("skipped"),
        "{}",
        run.transcript()
    );
    assert!(!run.ran_a_step_of("fonts-viewer"));
    assert!(run.installed("viewer-fonts"), "{}", run.transcript());
    assert_eq!(other.dpkg("fonts-viewer"), None);
}

/// The machine's hardware, read by its agent, is stored on its entry when
/// it enrols: what image targets are matched by and rules test.
#[test]
fn enrolment_stores_the_machines_hardware_on_its_entry() {
    let world = World::start();
    let machine = world.enroll("hardware-1", "end-user");
    let stored = world
        .stored_hardware(&machine)
        .expect("the entry holds the hardware");
    let read = roleout_installer::inventory::read(Path::new("/")).expect("this machine reads");
    assert_eq!(stored, read);
    assert!(stored.memory_bytes > 0 && stored.cpu.logical > 0);
}
