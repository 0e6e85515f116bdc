//! The install loop end to end through the real `roleout` binary, over an
//! offline mirror directory holding envelopes signed with a real builder
//! key: a real `.deb` installed with `dpkg --root` and then detected as
//! installed, log-decided failures, reboot waits resumed in a new boot,
//! `kill -9` in the middle of a command and a resumed run that delivers
//! each report once, a crash between queuing a step's report and recording
//! the step's end (the report kept, the step not run again), a suite-level
//! IncrementalInstall that skips a whole suite, every kind of refused
//! envelope, payload digest mismatches, and passwords kept out of logs,
//! reports and the journal.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use ring::signature::Ed25519KeyPair;
use roleout_installer::engine::identity::{Enrolment, Identity};
use roleout_model::condition::{Condition, IncrementalInstall, RunPolicy};
use roleout_model::descriptor::{self, Descriptor};
use roleout_model::ids::{MachineId, Sha256, SuiteId};
use roleout_model::product::ProductModel;
use roleout_model::protocol::signing::BuilderKey;
use roleout_model::protocol::{
    Customization, MachineObject, SignedContent, SignedEnvelope, SuiteDelivery, Timestamp,
};
use roleout_model::resolve::resolve_suite;
use roleout_model::role::EffectiveRoles;
use roleout_model::suite::{OnFailure, Suite, SuitePolicy};
use roleout_model::version::Version;

pub(crate) const MACHINE: &str = "pc-001";

/// A machine (state dir, install root, boot id file) and a mirror
/// directory with a builder key that signs what goes in it.
pub(crate) struct Fixture {
    pub(crate) _temp: tempfile::TempDir,
    pub(crate) base: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) mirror: PathBuf,
    pub(crate) root: PathBuf,
    pub(crate) boot_id: PathBuf,
    signer: Ed25519KeyPair,
    key_id: Sha256,
    serial: u64,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        let temp = tempfile::tempdir().unwrap();
        let base = temp.path().to_owned();
        let state = base.join("state");
        let mirror = base.join("mirror");
        let root = base.join("root");
        for directory in [&mirror.join("suites"), &mirror.join("payloads"), &root] {
            fs::create_dir_all(directory).unwrap();
        }
        let boot_id = base.join("boot_id");
        fs::write(&boot_id, "boot-one\n").unwrap();
        let pkcs8 = BuilderKey::generate_pkcs8().unwrap();
        let builder = BuilderKey::from_pkcs8(&pkcs8).unwrap();
        let pinned = builder.public_key();
        Identity::save(
            &state,
            &Enrolment {
                server: "https://roleout.invalid".to_owned(),
                fallbacks: Vec::new(),
                machine: MachineId::new(MACHINE).unwrap(),
            },
            &pinned,
        )
        .unwrap();
        Fixture {
            _temp: temp,
            base,
            state,
            mirror,
            root,
            boot_id,
            signer: Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap(),
            key_id: pinned.key_id(),
            serial: 0,
        }
    }

    /// Parses a product descriptor (default versions).
    pub(crate) fn product(&self, xml: &str) -> ProductModel {
        let parsed = descriptor::parse("test.xml", xml.as_bytes());
        let errors: Vec<String> = parsed.errors().map(ToString::to_string).collect();
        assert!(errors.is_empty(), "{errors:?}");
        let Some(Descriptor::Product(source)) = parsed.descriptor else {
            panic!("not a product descriptor");
        };
        source.select(&EffectiveRoles::from_ranks([])).unwrap().0
    }

    /// Adds a payload to the mirror; returns its digest and size.
    pub(crate) fn payload(&self, bytes: &[u8]) -> (String, u64) {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        fs::write(self.mirror.join("payloads").join(&hex), bytes).unwrap();
        (hex, bytes.len() as u64)
    }

    pub(crate) fn suite(
        &self,
        id: &str,
        products: Vec<ProductModel>,
        on_failure: OnFailure,
    ) -> Suite {
        Suite {
            id: SuiteId::new(id).unwrap(),
            version: Version::new("1.0").unwrap(),
            description: Default::default(),
            capabilities: Default::default(),
            categories: Vec::new(),
            groups: Vec::new(),
            variables: Vec::new(),
            presentation: Vec::new(),
            linkage: Vec::new(),
            incremental: None,
            policy: SuitePolicy { on_failure },
            products,
            pulled_in: Vec::new(),
        }
    }

    /// Signs a delivery of `suite` for `machine` and returns the envelope.
    pub(crate) fn envelope(
        &mut self,
        suite: &Suite,
        machine: &str,
        serial: Option<u64>,
        expires_at: SystemTime,
    ) -> SignedEnvelope {
        let plan = resolve_suite(suite, None).unwrap();
        let bytes = serde_json::to_vec(suite).unwrap();
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let mut raw = [0_u8; 32];
        raw.copy_from_slice(digest.as_ref());
        let build = Sha256::from_bytes(&raw);
        let delivery = SuiteDelivery {
            suite: suite.clone(),
            machine: MachineObject {
                name: MachineId::new(machine).unwrap(),
                os: "linux".to_owned(),
                arch: std::env::consts::ARCH.to_owned(),
                components: plan.order().cloned().collect(),
            },
            plan,
            build_digest: build.clone(),
            customization: Customization::default(),
        };
        let serial = serial.unwrap_or_else(|| {
            self.serial += 1;
            self.serial
        });
        let signed = SignedContent::new(
            &delivery,
            MachineId::new(machine).unwrap(),
            "default",
            Some(build),
            serial,
            Timestamp::from_system_time(expires_at).unwrap(),
        )
        .unwrap();
        let signature = self.signer.sign(&signed.signed_message().unwrap());
        SignedEnvelope {
            signed,
            signature: signature.as_ref().to_vec().into(),
            key_id: self.key_id.clone(),
        }
    }

    pub(crate) fn publish(&mut self, suite: &Suite) {
        let envelope = self.envelope(suite, MACHINE, None, in_an_hour());
        self.write_envelope(suite.id.as_str(), &envelope);
    }

    pub(crate) fn write_envelope(&self, suite: &str, envelope: &SignedEnvelope) {
        fs::write(
            self.mirror.join("suites").join(format!("{suite}.json")),
            serde_json::to_vec(envelope).unwrap(),
        )
        .unwrap();
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roleout"));
        command
            .args(args)
            .env("ROLEOUT_STATE_DIR", &self.state)
            .env("ROLEOUT_MIRROR", &self.mirror)
            .env("ROLEOUT_ROOT", &self.root)
            .env("ROLEOUT_BOOT_ID_FILE", &self.boot_id)
            .env_remove("ROLEOUT_CACHE_DIR");
        command
    }

    pub(crate) fn roleout(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Delivery attempts per report id, from the mirror's log.
    pub(crate) fn deliveries(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        let text = fs::read_to_string(self.mirror.join("delivered.log")).unwrap_or_default();
        for line in text.lines() {
            *counts.entry(line.to_owned()).or_insert(0) += 1;
        }
        counts
    }

    /// Every delivered report, as JSON.
    pub(crate) fn reports(&self) -> Vec<serde_json::Value> {
        let mut reports = Vec::new();
        let Ok(listing) = fs::read_dir(self.mirror.join("reports")) else {
            return reports;
        };
        for entry in listing {
            let bytes = fs::read(entry.unwrap().path()).unwrap();
            reports.push(serde_json::from_slice(&bytes).unwrap());
        }
        reports
    }

    pub(crate) fn marker(&self, name: &str) -> PathBuf {
        self.base.join(format!("marker-{name}"))
    }

    pub(crate) fn marker_count(&self, name: &str) -> usize {
        fs::read_to_string(self.marker(name))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }
}

pub(crate) fn in_an_hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A product whose install appends a line to its marker file (and runs
/// `extra` shell first).
pub(crate) fn marker_product(fixture: &Fixture, id: &str, after: &[&str], extra: &str) -> String {
    let prerequisites: String = after
        .iter()
        .map(|product| format!("<prerequisite product=\"{product}\"/>"))
        .collect();
    let dependencies = if after.is_empty() {
        String::new()
    } else {
        format!("<dependencies>{prerequisites}</dependencies>")
    };
    format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="{id}" version="1.0">
  <description vendor="Test"><name lang="en">{id}</name><summary lang="en">{id}</summary></description>
  {dependencies}
  <install kind="script" timeout="120" shell="true">
    <arg>{extra} echo ran >> "$1"</arg>
    <arg>{marker}</arg>
  </install>
</product>"#,
        marker = fixture.marker(id).display()
    )
}

fn shell_product(id: &str, script: &str, outcome: &str, after: &[&str]) -> String {
    let prerequisites: String = after
        .iter()
        .map(|product| format!("<prerequisite product=\"{product}\"/>"))
        .collect();
    let dependencies = if after.is_empty() {
        String::new()
    } else {
        format!("<dependencies>{prerequisites}</dependencies>")
    };
    format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="{id}" version="1.0">
  <description vendor="Test"><name lang="en">{id}</name><summary lang="en">{id}</summary></description>
  {dependencies}
  <install kind="script" timeout="120" shell="true">
    <arg>{script}</arg>
    {outcome}
  </install>
</product>"#
    )
}

fn build_deb(fixture: &Fixture) -> Vec<u8> {
    let tree = fixture.base.join("deb-tree");
    fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    fs::create_dir_all(tree.join("opt/hello")).unwrap();
    fs::write(
        tree.join("DEBIAN/control"),
        "Package: roleout-hello\nVersion: 2.1-1\nArchitecture: all\nMaintainer: Roleout <roleout@example.org>\nDescription: test package\n",
    )
    .unwrap();
    fs::write(tree.join("opt/hello/hello.txt"), "hello\n").unwrap();
    let deb = fixture.base.join("hello.deb");
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&tree)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
    fs::read(deb).unwrap()
}

fn sandbox_dpkg(root: &Path) {
    let admin = root.join("var/lib/dpkg");
    fs::create_dir_all(admin.join("info")).unwrap();
    fs::create_dir_all(admin.join("updates")).unwrap();
    fs::create_dir_all(root.join("var/log")).unwrap();
    fs::write(admin.join("status"), "").unwrap();
}

#[test]
fn a_real_deb_installs_into_the_sandbox_then_is_skipped_as_installed() {
    let mut fixture = Fixture::new();
    sandbox_dpkg(&fixture.root);
    let deb = build_deb(&fixture);
    let (digest, size) = fixture.payload(&deb);
    let product = fixture.product(&format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="hello" version="2.1">
  <description vendor="Test"><name lang="en">Hello</name><name lang="de">Hallo</name><summary lang="en">Hello</summary></description>
  <fileset><file path="hello.deb" sha256="{digest}" size="{size}"/></fileset>
  <version-check><package manager="dpkg" name="roleout-hello" version="&gt;=2.1"/></version-check>
  <install kind="deb" timeout="300">
    <arg>dpkg</arg><arg>--root={{{{ root }}}}</arg><arg>--force-not-root</arg>
    <arg>--force-script-chrootless</arg><arg>--log=/dev/null</arg>
    <arg>--install</arg><arg>{{{{ payload }}}}/hello.deb</arg>
  </install>
</product>"#
    ));
    let suite = fixture.suite("desktop", vec![product], OnFailure::Stop);
    fixture.publish(&suite);

    let first = fixture.roleout(&["install", "desktop"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    assert!(fixture.root.join("opt/hello/hello.txt").is_file());
    let status = fs::read_to_string(fixture.root.join("var/lib/dpkg/status")).unwrap();
    assert!(status.contains("Package: roleout-hello"), "{status}");

    let second = fixture.roleout(&["install", "desktop"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(out.contains("hello: skipped: already installed"), "{out}");
    assert!(out.contains("roleout-hello"), "{out}");
    let skipped: Vec<_> = fixture
        .reports()
        .into_iter()
        .filter(|report| report["outcome"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["component"], "hello");

    // The dry run says the same without running anything, naming the
    // product in the machine's language.
    let plan = fixture
        .command(&["plan", "desktop"])
        .env_remove("LANGUAGE")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "de_AT.UTF-8")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains("hello 2.1 (Hallo): would skip: already installed"),
        "{}",
        text(&plan)
    );
    assert!(out.contains("detection commands"), "{}", text(&plan));
}

#[test]
fn a_failure_line_in_the_log_fails_an_exit_code_of_zero_and_blocks_dependents() {
    let mut fixture = Fixture::new();
    let log = fixture.base.join("tool.log");
    let failing = fixture.product(&shell_product(
        "failing",
        &format!("echo 'ERROR: disk full' > {}; exit 0", log.display()),
        &format!(
            r#"<outcome success-codes="0" log="{}" failure-pattern="^ERROR"/>"#,
            log.display()
        ),
        &[],
    ));
    let dependent = fixture.product(&marker_product(&fixture, "dependent", &["failing"], ""));
    let independent = fixture.product(&marker_product(&fixture, "independent", &[], ""));
    let suite = fixture.suite(
        "office",
        vec![failing, dependent, independent],
        OnFailure::Continue,
    );
    fixture.publish(&suite);

    let output = fixture.roleout(&["install", "office"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(fixture.marker_count("dependent"), 0);
    assert_eq!(fixture.marker_count("independent"), 1);
    let reports = fixture.reports();
    let outcome = |component: &str| {
        reports
            .iter()
            .filter(|report| report["component"] == component && report.get("outcome").is_some())
            .map(|report| report["outcome"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(outcome("failing"), ["failed"]);
    assert_eq!(outcome("dependent"), ["blocked"]);
    let failed = reports
        .iter()
        .find(|r| r["component"] == "failing")
        .unwrap();
    assert!(
        failed["log"].as_str().unwrap().contains("ERROR: disk full"),
        "{failed}"
    );
    let complete = reports.iter().find(|r| r.get("summary").is_some()).unwrap();
    assert_eq!(complete["summary"]["failed"], 1);
    assert_eq!(complete["summary"]["blocked"], 1);
    assert_eq!(complete["summary"]["installed"], 1);
}

#[test]
fn a_reboot_code_holds_dependents_until_a_new_boot() {
    let mut fixture = Fixture::new();
    let reboot = fixture.product(&shell_product(
        "driver",
        &format!(
            "echo ran >> {}; exit 100",
            fixture.marker("driver").display()
        ),
        // 3010 is a Windows code; Unix exit codes stop at 255.
        r#"<outcome success-codes="0" reboot-codes="100"/>"#,
        &[],
    ));
    let dependent = fixture.product(&marker_product(&fixture, "tool", &["driver"], ""));
    let suite = fixture.suite("drivers", vec![reboot, dependent], OnFailure::Stop);
    fixture.publish(&suite);

    let first = fixture.roleout(&["install", "drivers"]);
    assert_eq!(first.status.code(), Some(5), "{}", text(&first));
    assert_eq!(fixture.marker_count("driver"), 1);
    assert_eq!(fixture.marker_count("tool"), 0);

    // Same boot: still waiting, nothing runs again.
    let again = fixture.roleout(&["install", "drivers"]);
    assert_eq!(again.status.code(), Some(5), "{}", text(&again));
    assert_eq!(fixture.marker_count("driver"), 1);
    assert_eq!(fixture.marker_count("tool"), 0);

    fs::write(&fixture.boot_id, "boot-two\n").unwrap();
    let resumed = fixture.roleout(&["install", "drivers"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    assert_eq!(fixture.marker_count("driver"), 1);
    assert_eq!(fixture.marker_count("tool"), 1);
}

/// Publishes suite `chain`: `first`, then `slow` (whose install runs
/// `script` first), then `last`, each marking its runs.
fn publish_chain(fixture: &mut Fixture, script: &str) {
    let first = fixture.product(&marker_product(fixture, "first", &[], ""));
    let slow = fixture.product(&marker_product(fixture, "slow", &["first"], script));
    let last = fixture.product(&marker_product(fixture, "last", &["slow"], ""));
    let suite = fixture.suite("chain", vec![first, slow, last], OnFailure::Stop);
    fixture.publish(&suite);
}

/// Starts `roleout install SUITE` and kills it with `SIGKILL` once `flag`
/// exists (the slow command has started).
fn kill_roleout_once_started(fixture: &Fixture, suite: &str, flag: &Path) {
    let mut child = fixture
        .command(&["install", suite])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !flag.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("roleout ended before the slow command started: {status:?}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slow command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn kill_9_of_roleout_during_a_command_waits_for_it_and_never_runs_it_twice() {
    let mut fixture = Fixture::new();
    let flag = fixture.base.join("slow-started");
    let release = fixture.base.join("release");
    // The command says it started, then runs until the test releases it.
    publish_chain(
        &mut fixture,
        &format!(
            "echo $$ > {flag}.tmp; mv {flag}.tmp {flag}; n=0; while [ ! -e {release} ] &amp;&amp; [ $n -lt 1000 ]; do sleep 0.05; n=$((n+1)); done;",
            flag = flag.display(),
            release = release.display()
        ),
    );

    kill_roleout_once_started(&fixture, "chain", &flag);
    // The command outlives the killed roleout: its supervisor keeps it.
    let shell: u32 = fs::read_to_string(&flag).unwrap().trim().parse().unwrap();
    assert!(
        !crate::runner::is_gone(shell),
        "the command died with roleout"
    );

    // The next roleout waits for that command instead of starting it again.
    let rerun = fixture
        .command(&["install", "chain"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !crate::runner::is_gone(shell),
        "the next roleout killed the running command"
    );
    assert_eq!(fixture.marker_count("slow"), 0);
    fs::write(&release, "").unwrap();
    let rerun = rerun.wait_with_output().unwrap();
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun));
    assert!(
        text(&rerun).contains("goes on from its records"),
        "{}",
        text(&rerun)
    );
    let reported = serde_json::to_string(&fixture.reports()).unwrap();
    assert!(
        reported.contains("roleout waited for it to end"),
        "{reported}"
    );

    assert_eq!(
        fixture.marker_count("first"),
        1,
        "a finished step ran again"
    );
    assert_eq!(
        fixture.marker_count("slow"),
        1,
        "the interrupted command ran twice"
    );
    assert_eq!(fixture.marker_count("last"), 1);
    let deliveries = fixture.deliveries();
    assert!(
        deliveries.values().all(|count| *count == 1),
        "{deliveries:?}"
    );
    // first, slow (its first and only attempt), last, and the suite complete.
    assert_eq!(fixture.reports().len(), 4, "{deliveries:?}");
    assert!(
        deliveries.keys().any(|id| id.contains(".slow.install.1.")),
        "{deliveries:?}"
    );
    let status = fixture.roleout(&["status"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("installed: slow 1.0"), "{out}");
}

#[test]
fn a_command_that_ended_while_roleout_was_dead_is_read_not_run_again() {
    let mut fixture = Fixture::new();
    let flag = fixture.base.join("slow-started");
    let release = fixture.base.join("release");
    let ended = fixture.base.join("slow-ended");
    let slow = fixture.product(&marker_product(
        &fixture,
        "slow",
        &[],
        &format!(
            "echo $$ > {flag}.tmp; mv {flag}.tmp {flag}; n=0; while [ ! -e {release} ] &amp;&amp; [ $n -lt 1000 ]; do sleep 0.05; n=$((n+1)); done; echo done > {ended};",
            flag = flag.display(),
            release = release.display(),
            ended = ended.display()
        ),
    ));
    let suite = fixture.suite("alone", vec![slow], OnFailure::Stop);
    fixture.publish(&suite);

    kill_roleout_once_started(&fixture, "alone", &flag);
    let shell: u32 = fs::read_to_string(&flag).unwrap().trim().parse().unwrap();
    // The command ends while no roleout runs: only its supervisor sees it.
    fs::write(&release, "").unwrap();
    assert!(crate::runner::wait_until_gone(shell));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fixture.marker_count("slow") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let rerun = fixture.roleout(&["install", "alone"]);
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun));
    let reported = serde_json::to_string(&fixture.reports()).unwrap();
    assert!(
        reported.contains("it had ended when roleout started again"),
        "{reported}"
    );
    assert_eq!(
        fixture.marker_count("slow"),
        1,
        "a finished command ran again"
    );
    assert!(
        fixture
            .deliveries()
            .keys()
            .any(|id| id.contains(".slow.install.1.")),
        "{:?}",
        fixture.deliveries()
    );
}

#[test]
fn a_command_still_running_past_its_timeout_when_roleout_returns_is_stopped_and_failed() {
    let mut fixture = Fixture::new();
    let flag = fixture.base.join("slow-started");
    let slow = fixture.product(
        &shell_product(
            "slow",
            &format!(
                "echo $$ > {flag}.tmp; mv {flag}.tmp {flag}; sleep 600",
                flag = fixture.base.join("slow-started").display()
            ),
            "",
            &[],
        )
        .replace(r#"timeout="120""#, r#"timeout="3""#),
    );
    let suite = fixture.suite("late", vec![slow], OnFailure::Stop);
    fixture.publish(&suite);

    kill_roleout_once_started(&fixture, "late", &flag);
    let shell: u32 = fs::read_to_string(&flag).unwrap().trim().parse().unwrap();
    // The next roleout waits for it only up to its timeout, counted from
    // its start, then stops it as the first roleout would have.
    let late = fixture.roleout(&["install", "late"]);
    assert_ne!(late.status.code(), Some(0), "{}", text(&late));
    assert!(
        crate::runner::is_gone(shell),
        "the command outlived its timeout"
    );
    let reported = serde_json::to_string(&fixture.reports()).unwrap();
    assert!(reported.contains("timeout"), "{reported}");
    assert!(
        reported.contains("roleout waited for it to end"),
        "{reported}"
    );
}

#[test]
fn a_command_interrupted_with_its_supervisor_runs_again_and_nothing_it_left_survives() {
    let mut fixture = Fixture::new();
    let flag = fixture.base.join("slow-started");
    // A helper that left the command's process group (setsid).
    let escaped = fixture.base.join("escaped.pid");
    // The first start records its process group and hangs; the second
    // finishes at once.
    publish_chain(
        &mut fixture,
        &format!(
            "if [ ! -e {flag} ]; then setsid sleep 600 &amp; echo $! > {escaped}; echo $$ > {flag}.tmp; mv {flag}.tmp {flag}; sleep 600; fi;",
            flag = flag.display(),
            escaped = escaped.display()
        ),
    );

    kill_roleout_once_started(&fixture, "chain", &flag);
    let shell: u32 = fs::read_to_string(&flag).unwrap().trim().parse().unwrap();
    let helper: u32 = fs::read_to_string(&escaped)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // As a reboot would: the supervisor dies too (it leads the command's
    // process group).
    let group = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(shell as i32))).unwrap();
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(crate::runner::wait_until_gone(shell));
    assert!(!crate::runner::is_gone(helper));

    // The next roleout ends what is left before it runs the command again.
    let rerun = fixture.roleout(&["install", "chain"]);
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun));
    assert!(
        crate::runner::is_gone(helper),
        "a process the interrupted command left survived the next run\n{}",
        text(&rerun)
    );
    assert_eq!(
        fixture.marker_count("first"),
        1,
        "a finished step ran again"
    );
    assert_eq!(fixture.marker_count("slow"), 1);
    assert_eq!(fixture.marker_count("last"), 1);
    let deliveries = fixture.deliveries();
    assert!(
        deliveries.values().all(|count| *count == 1),
        "{deliveries:?}"
    );
    assert_eq!(fixture.reports().len(), 4, "{deliveries:?}");
}

#[test]
fn a_crash_after_a_report_is_queued_keeps_the_report_and_does_not_run_the_step_again() {
    let mut fixture = Fixture::new();
    let first = fixture.product(&marker_product(&fixture, "first", &[], ""));
    let second = fixture.product(&marker_product(&fixture, "second", &["first"], ""));
    let suite = fixture.suite("crashy", vec![first, second], OnFailure::Stop);
    fixture.publish(&suite);

    // The process aborts right after the first step's report is in the
    // outbox, before the journal records the step's end.
    let crashed = fixture
        .command(&["install", "crashy"])
        .env(
            roleout_installer::engine::FAULT_INJECTION_VARIABLE,
            roleout_installer::engine::FAULT_AFTER_STEP_REPORT_QUEUED,
        )
        .output()
        .unwrap();
    assert_eq!(crashed.status.code(), None, "{}", text(&crashed));
    assert_eq!(fixture.marker_count("first"), 1);
    assert_eq!(fixture.marker_count("second"), 0);
    let status = fixture.roleout(&["status"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("first 1.0: install running"), "{out}");
    let outbox = roleout_installer::state::outbox::waiting_ids(&fixture.state).unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert!(
        outbox[0].as_str().ends_with(".first.install.1.status"),
        "{outbox:?}"
    );
    assert!(fixture.deliveries().is_empty());

    let rerun = fixture.roleout(&["install", "crashy"]);
    assert_eq!(rerun.status.code(), Some(0), "{}", text(&rerun));
    assert!(
        String::from_utf8_lossy(&rerun.stdout).contains("recorded from its report"),
        "{}",
        text(&rerun)
    );
    assert_eq!(
        fixture.marker_count("first"),
        1,
        "the reported step ran again"
    );
    assert_eq!(fixture.marker_count("second"), 1);
    let deliveries = fixture.deliveries();
    assert!(
        deliveries.values().all(|count| *count == 1),
        "{deliveries:?}"
    );
    // first (attempt 1 only), second, and the suite complete.
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    assert!(
        deliveries
            .keys()
            .any(|id| id.contains(".first.install.1.status")),
        "{deliveries:?}"
    );
    assert!(
        !deliveries.keys().any(|id| id.contains(".first.install.2.")),
        "{deliveries:?}"
    );
    let status = fixture.roleout(&["status"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("installed: first 1.0"), "{out}");
}

#[test]
fn a_suite_whose_incremental_install_says_skip_runs_nothing_and_reports_why() {
    let mut fixture = Fixture::new();
    let one = fixture.product(&marker_product(&fixture, "one", &[], ""));
    let two = fixture.product(&marker_product(&fixture, "two", &["one"], ""));
    let mut suite = fixture.suite("gated", vec![one, two], OnFailure::Stop);
    suite.incremental = Some(IncrementalInstall {
        when: Some(Condition::FileExists {
            path: "{{ root }}/etc/gated-enabled".to_owned(),
        }),
        run: RunPolicy::Always,
    });
    fixture.publish(&suite);

    let skipped = fixture.roleout(&["install", "gated"]);
    assert_eq!(skipped.status.code(), Some(0), "{}", text(&skipped));
    assert_eq!(fixture.marker_count("one"), 0);
    assert_eq!(fixture.marker_count("two"), 0);
    let reports = fixture.reports();
    assert_eq!(reports.len(), 3, "{reports:#?}");
    for component in ["one", "two"] {
        let report = reports
            .iter()
            .find(|report| report["component"] == component)
            .unwrap_or_else(|| panic!("no report for {component}: {reports:#?}"));
        assert_eq!(report["outcome"], "skipped", "{report:#}");
        let reason = report["evidence"][0].as_str().unwrap();
        assert!(
            reason.contains("incremental install") && reason.contains("gated-enabled"),
            "{reason}"
        );
    }
    let complete = reports
        .iter()
        .find(|report| report.get("summary").is_some())
        .unwrap();
    assert_eq!(complete["summary"]["skipped"], 2, "{complete:#}");
    assert_eq!(complete["summary"]["installed"], 0, "{complete:#}");

    // Once the condition holds, a new build of the suite installs.
    fs::create_dir_all(fixture.root.join("etc")).unwrap();
    fs::write(fixture.root.join("etc/gated-enabled"), "yes\n").unwrap();
    suite.version = Version::new("1.1").unwrap();
    fixture.publish(&suite);
    let installed = fixture.roleout(&["install", "gated"]);
    assert_eq!(installed.status.code(), Some(0), "{}", text(&installed));
    assert_eq!(fixture.marker_count("one"), 1);
    assert_eq!(fixture.marker_count("two"), 1);
}

/// Writes a suite whose install would leave a marker, and returns it.
fn guarded_suite(fixture: &Fixture) -> Suite {
    let product = fixture.product(&marker_product(fixture, "guarded", &[], ""));
    fixture.suite("guarded", vec![product], OnFailure::Stop)
}

fn assert_refused(fixture: &Fixture, expected: &str) {
    let output = fixture.roleout(&["install", "guarded"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(expected), "{stderr}");
    assert_eq!(fixture.marker_count("guarded"), 0, "a refused suite ran");
}

#[test]
fn tampered_foreign_old_and_expired_envelopes_are_refused_and_run_nothing() {
    let mut fixture = Fixture::new();
    let suite = guarded_suite(&fixture);

    let mut tampered = fixture.envelope(&suite, MACHINE, Some(5), in_an_hour());
    tampered.signed.payload["suite"]["products"][0]["install"] = serde_json::Value::Null;
    tampered.signed.serial = 6;
    fixture.write_envelope("guarded", &tampered);
    assert_refused(&fixture, "signature does not verify");

    let foreign = fixture.envelope(&suite, "pc-999", Some(5), in_an_hour());
    fixture.write_envelope("guarded", &foreign);
    assert_refused(&fixture, "for machine pc-999");

    let expired = fixture.envelope(
        &suite,
        MACHINE,
        Some(5),
        SystemTime::now() - Duration::from_secs(60),
    );
    fixture.write_envelope("guarded", &expired);
    assert_refused(&fixture, "expired");

    // Serial 7 is accepted (and nothing else is wrong with it)...
    let current = fixture.envelope(&suite, MACHINE, Some(7), in_an_hour());
    fixture.write_envelope("guarded", &current);
    let output = fixture.roleout(&["install", "guarded"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(fixture.marker_count("guarded"), 1);
    fs::remove_file(fixture.marker("guarded")).unwrap();
    // ...so a validly signed serial 6 of other contents is a rollback...
    let mut older_suite = suite.clone();
    older_suite.version = Version::new("0.9").unwrap();
    let old = fixture.envelope(&older_suite, MACHINE, Some(6), in_an_hour());
    fixture.write_envelope("guarded", &old);
    assert_refused(&fixture, "rollback");
    // ...while serial 6 of exactly the contents accepted under 7 (another
    // roleoutd's envelope, signed earlier) goes back on nothing: accepted,
    // it finds everything installed.
    let same = fixture.envelope(&suite, MACHINE, Some(6), in_an_hour());
    fixture.write_envelope("guarded", &same);
    let output = fixture.roleout(&["install", "guarded"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("already installed"),
        "{}",
        text(&output)
    );
    assert_eq!(fixture.marker_count("guarded"), 0);
    // The serial recorded stays 7: serial 6 of other contents is still a
    // rollback.
    fixture.write_envelope("guarded", &old);
    assert_refused(&fixture, "rollback");
}

#[test]
fn a_payload_that_does_not_match_its_digest_refuses_the_component() {
    let mut fixture = Fixture::new();
    let (digest, size) = fixture.payload(b"the real payload");
    // The mirror serves other bytes under the digest.
    fs::write(
        fixture.mirror.join("payloads").join(&digest),
        b"the evil payload",
    )
    .unwrap();
    let product = fixture.product(&format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="checked" version="1.0">
  <description vendor="Test"><name lang="en">c</name><summary lang="en">c</summary></description>
  <fileset><file path="payload.bin" sha256="{digest}" size="{size}"/></fileset>
  <install kind="script" timeout="60" shell="true"><arg>echo ran >> "$1"</arg><arg>{marker}</arg></install>
</product>"#,
        marker = fixture.marker("checked").display()
    ));
    let suite = fixture.suite("checked", vec![product], OnFailure::Stop);
    fixture.publish(&suite);
    let output = fixture.roleout(&["install", "checked"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(fixture.marker_count("checked"), 0);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(out.contains(&digest), "{out}");
    assert!(
        !fixture
            .state
            .join("cache/sha256")
            .join(&digest[..2])
            .join(&digest)
            .exists()
    );
}

#[test]
fn passwords_stay_out_of_logs_reports_journal_and_argv() {
    let mut fixture = Fixture::new();
    let secret = "Sup3r-s3cret-Pw";
    let seen = fixture.base.join("seen");
    let product = fixture.product(&format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="secretive" version="1.0">
  <description vendor="Test"><name lang="en">s</name><summary lang="en">s</summary></description>
  <variables><password name="admin_password" min-length="8" required="true"/></variables>
  <install kind="script" timeout="60" shell="true">
    <arg>echo "password is $ADMIN_PASSWORD"; ps -eo args > {ps}; cp answers.ini {seen}; stat -c %a answers.ini > {seen}.mode</arg>
    <env name="ADMIN_PASSWORD">{{{{ admin_password }}}}</env>
    <response-file path="answers.ini">password={{{{ admin_password }}}}</response-file>
  </install>
</product>"#,
        ps = fixture.base.join("ps").display(),
        seen = seen.display()
    ));
    let suite = fixture.suite("secret", vec![product], OnFailure::Stop);
    fixture.publish(&suite);
    let response = fixture.base.join("answers.toml");
    fs::write(
        &response,
        format!("[secretive]\nadmin_password = \"{secret}\"\n"),
    )
    .unwrap();
    fs::set_permissions(&response, fs::Permissions::from_mode(0o600)).unwrap();

    let output = fixture.roleout(&[
        "install",
        "secret",
        "--response-file",
        response.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // The command got it, through the environment and the response file.
    assert_eq!(
        fs::read_to_string(&seen).unwrap(),
        format!("password={secret}")
    );
    // Written for the command alone (mode 0600), and gone with the run's
    // folder once the run is over.
    let mode = fs::read_to_string(format!("{}.mode", seen.display())).unwrap();
    assert_eq!(mode.trim(), "600");
    assert!(
        files_under(&fixture.state.join("runs")).is_empty(),
        "the response file outlived its run"
    );
    // Nobody else did.
    assert!(!text(&output).contains(secret));
    let ps = fs::read_to_string(fixture.base.join("ps")).unwrap();
    assert!(!ps.contains(secret), "{ps}");
    let reports = fixture.reports();
    let status = reports
        .iter()
        .find(|r| r["component"] == "secretive")
        .unwrap();
    assert!(
        status["log"]
            .as_str()
            .unwrap()
            .contains("password is ********"),
        "{status}"
    );
    for report in &reports {
        assert!(!report.to_string().contains(secret));
    }
    for entry in walk(&fixture.state.join("journal")) {
        assert!(!fs::read_to_string(entry).unwrap().contains(secret));
    }
    // A world-readable response file is refused before anything runs.
    fs::set_permissions(&response, fs::Permissions::from_mode(0o644)).unwrap();
    let output = fixture.roleout(&[
        "install",
        "secret",
        "--response-file",
        response.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

fn walk(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A product whose install copies its payload `tool.sh` into the root;
/// the file has the digest and size of `bytes` and, when given, a `source`.
fn payload_product(bytes: &[u8], source: Option<&str>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let source = source
        .map(|source| format!(" source=\"{source}\""))
        .unwrap_or_default();
    format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="vendor-tool" version="1.0">
  <fileset><file path="tool.sh" sha256="{hex}" size="{size}"{source}/></fileset>
  <install><arg>/bin/cp</arg><arg>{{{{ payload }}}}/tool.sh</arg><arg>{{{{ root }}}}/tool.sh</arg></install>
</product>"#,
        size = bytes.len()
    )
}

#[test]
fn a_payload_the_server_lacks_is_fetched_from_its_source_and_checked() {
    let mut fixture = Fixture::new();
    let bytes = b"#!/bin/sh\necho vendor tool\n";
    // Not in the mirror's payloads: only at the descriptor's source.
    let elsewhere = fixture.base.join("vendor-share");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::write(elsewhere.join("tool.sh"), bytes).unwrap();
    let source = format!("file://{}", elsewhere.join("tool.sh").display());
    let product = fixture.product(&payload_product(bytes, Some(&source)));
    let suite = fixture.suite("vendor", vec![product], OnFailure::Stop);
    fixture.publish(&suite);
    let installed = fixture.roleout(&["install", "vendor"]);
    assert_eq!(installed.status.code(), Some(0), "{}", text(&installed));
    assert_eq!(fs::read(fixture.root.join("tool.sh")).unwrap(), bytes);

    // Other bytes at the source: refused by their digest, nothing runs.
    let mut fixture = Fixture::new();
    fs::write(elsewhere.join("tool.sh"), b"#!/bin/sh\nrm -rf /\n").unwrap();
    let product = fixture.product(&payload_product(bytes, Some(&source)));
    let suite = fixture.suite("vendor", vec![product], OnFailure::Stop);
    fixture.publish(&suite);
    let refused = fixture.roleout(&["install", "vendor"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(!fixture.root.join("tool.sh").exists());
    assert!(
        text(&refused).contains("from its source"),
        "{}",
        text(&refused)
    );

    // Without a source, a payload the server lacks fails as before.
    let mut fixture = Fixture::new();
    let product = fixture.product(&payload_product(bytes, None));
    let suite = fixture.suite("vendor", vec![product], OnFailure::Stop);
    fixture.publish(&suite);
    let missing = fixture.roleout(&["install", "vendor"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
}

/// The files under `directory`, recursively.
fn files_under(directory: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(listing) = fs::read_dir(directory) else {
        return found;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn run_folders_go_and_the_payload_cache_is_trimmed_to_its_bound() {
    let mut fixture = Fixture::new();
    let bytes = b"#!/bin/sh\necho cached\n";
    fixture.payload(bytes);
    let product = fixture.product(&payload_product(bytes, None));
    let suite = fixture.suite("vendor", vec![product], OnFailure::Stop);
    fixture.publish(&suite);
    let installed = fixture.roleout(&["install", "vendor"]);
    assert_eq!(installed.status.code(), Some(0), "{}", text(&installed));
    // The run is over: its payload copies are gone; the cache keeps the
    // payload (well under the default bound).
    assert!(files_under(&fixture.state.join("runs")).is_empty());
    assert_eq!(files_under(&fixture.state.join("cache/sha256")).len(), 1);

    // A bound of zero: the cache keeps nothing after a run.
    let bounded = fixture
        .command(&["install", "vendor"])
        .env("ROLEOUT_CACHE_MAX_MB", "0")
        .output()
        .unwrap();
    assert_eq!(bounded.status.code(), Some(0), "{}", text(&bounded));
    assert!(files_under(&fixture.state.join("cache/sha256")).is_empty());
    assert!(
        text(&bounded).contains("payload cache trimmed"),
        "{}",
        text(&bounded)
    );
}

#[test]
fn a_product_no_longer_assigned_is_removed_with_the_files_it_came_with() {
    let mut fixture = Fixture::new();
    let remover = b"#!/bin/sh\nrm -f \"$1/agent-x.txt\"\necho removed > \"$1/agent-x.removed\"\n";
    let (digest, size) = fixture.payload(remover);
    let agent = fixture.product(&format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="agent-x" version="1.0">
  <fileset><file path="remove.sh" sha256="{digest}" size="{size}" mode="0755"/></fileset>
  <install><arg>/bin/sh</arg><arg>-c</arg><arg>echo here &gt; "$0/agent-x.txt"</arg><arg>{{{{ root }}}}</arg></install>
  <uninstall remove-when-unassigned="true"><arg>{{{{ payload }}}}/remove.sh</arg><arg>{{{{ root }}}}</arg></uninstall>
</product>"#
    ));
    let keeper = fixture.product(&marker_product(&fixture, "keeper", &[], ""));
    let first = fixture.suite("desk", vec![agent, keeper], OnFailure::Stop);
    fixture.publish(&first);
    // A cache of size zero: after this run the agent holds the remover
    // only in what it kept of agent-x.
    let installed = fixture
        .command(&["install", "desk"])
        .env("ROLEOUT_CACHE_MAX_MB", "0")
        .output()
        .unwrap();
    assert_eq!(installed.status.code(), Some(0), "{}", text(&installed));
    assert!(fixture.root.join("agent-x.txt").exists());
    fs::remove_file(fixture.mirror.join("payloads").join(&digest)).unwrap();

    // The suite no longer has either product.
    let other = fixture.product(&marker_product(&fixture, "other", &[], ""));
    let second = fixture.suite("desk", vec![other], OnFailure::Stop);
    fixture.publish(&second);
    let next = fixture.roleout(&["install", "desk"]);
    assert_eq!(next.status.code(), Some(0), "{}", text(&next));
    assert!(
        !fixture.root.join("agent-x.txt").exists(),
        "{}",
        text(&next)
    );
    assert!(
        fixture.root.join("agent-x.removed").exists(),
        "{}",
        text(&next)
    );
    let out = text(&next);
    assert!(
        out.contains("agent-x: no longer assigned to this machine: removing it"),
        "{out}"
    );
    assert!(
        out.contains("keeper: no longer assigned to this machine; left installed"),
        "{out}"
    );
    let removed = fixture
        .reports()
        .into_iter()
        .find(|report| report["component"] == "agent-x" && report["step"] == "uninstall")
        .expect("the removal is reported");
    assert_eq!(removed["outcome"], "success", "{removed}");
    // Gone from the journal and from what was kept; the keeper stays.
    let status = fixture.roleout(&["--json", "status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(!status.contains("\"agent-x\""), "{status}");
    assert!(status.contains("\"keeper\""), "{status}");
    assert!(!fixture.state.join("installed/desk/agent-x").exists());
}

#[test]
fn uninstalling_a_product_others_require_is_refused_unless_forced() {
    let mut fixture = Fixture::new();
    let library = fixture.product(&format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="library" version="1.0">
  <install><arg>/bin/true</arg></install>
  <uninstall><arg>/bin/sh</arg><arg>-c</arg><arg>echo gone &gt;&gt; {marker}</arg></uninstall>
</product>"#,
        marker = fixture.marker("library-removed").display()
    ));
    let application = fixture.product(&marker_product(&fixture, "application", &["library"], ""));
    let suite = fixture.suite("apps", vec![library, application], OnFailure::Stop);
    fixture.publish(&suite);
    let installed = fixture.roleout(&["install", "apps"]);
    assert_eq!(installed.status.code(), Some(0), "{}", text(&installed));

    let refused = fixture.roleout(&["uninstall", "library"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("still needed by application"),
        "{}",
        text(&refused)
    );
    assert_eq!(fixture.marker_count("library-removed"), 0);
    let forced = fixture.roleout(&["uninstall", "library", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert_eq!(fixture.marker_count("library-removed"), 1);
}

#[test]
fn a_product_upgrades_across_ids_obsoleted_ones_removed_first_replaced_ones_forgotten() {
    let mut fixture = Fixture::new();
    let ledger = fixture.base.join("ledger");
    let product = |id: &str, dependencies: &str| {
        format!(
            r#"<product xmlns="urn:roleout:descriptor:1" id="{id}" version="1.0">
  <dependencies>{dependencies}</dependencies>
  <install><arg>/bin/sh</arg><arg>-c</arg><arg>echo "install {id}" &gt;&gt; "$0"</arg><arg>{ledger}</arg></install>
  <uninstall><arg>/bin/sh</arg><arg>-c</arg><arg>echo "uninstall {id}" &gt;&gt; "$0"</arg><arg>{ledger}</arg></uninstall>
</product>"#,
            ledger = ledger.display()
        )
    };
    let first = fixture.suite(
        "office",
        vec![
            fixture.product(&product("mailer-old", "")),
            fixture.product(&product("viewer-old", "")),
        ],
        OnFailure::Stop,
    );
    fixture.publish(&first);
    let installed = fixture.roleout(&["install", "office"]);
    assert_eq!(installed.status.code(), Some(0), "{}", text(&installed));

    let second = fixture.suite(
        "office",
        vec![
            fixture.product(&product(
                "mailer-new",
                r#"<obsoletes product="mailer-old"/>"#,
            )),
            fixture.product(&product(
                "viewer-new",
                r#"<replaces product="viewer-old" version="&lt;2"/>"#,
            )),
        ],
        OnFailure::Stop,
    );
    fixture.publish(&second);
    let upgraded = fixture.roleout(&["install", "office"]);
    assert_eq!(upgraded.status.code(), Some(0), "{}", text(&upgraded));
    let lines: Vec<String> = fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        [
            "install mailer-old",
            "install viewer-old",
            // Obsoleted: its own uninstall, before the new one installs.
            "uninstall mailer-old",
            "install mailer-new",
            // Replaced: installed over, never uninstalled.
            "install viewer-new",
        ],
        "{}",
        text(&upgraded)
    );
    let status = fixture.roleout(&["--json", "status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    for gone in ["\"mailer-old\"", "\"viewer-old\""] {
        assert!(!status.contains(gone), "{gone} still recorded: {status}");
    }
    assert!(
        text(&upgraded).contains("viewer-new: replaces viewer-old"),
        "{}",
        text(&upgraded)
    );
}

/// A phase written three times for one role set runs as one step: the
/// commands in order, the first that fails ends it (the third never runs),
/// and the report and the machine's own output say which one failed.
#[test]
fn several_commands_of_one_phase_run_in_order_as_one_step() {
    let mut fixture = Fixture::new();
    let trail = fixture.base.join("trail");
    let product = |id: &str, second_exit: u8| {
        format!(
            r#"<product xmlns="urn:roleout:descriptor:1" id="{id}" version="1.0">
  <install><arg>sh</arg><arg>-c</arg><arg>echo {id}-one &gt;&gt; {trail}</arg></install>
  <install><arg>sh</arg><arg>-c</arg><arg>echo {id}-two &gt;&gt; {trail}; echo 'E: no space left on device' &gt;&amp;2; exit {second_exit}</arg></install>
  <install><arg>sh</arg><arg>-c</arg><arg>echo {id}-three &gt;&gt; {trail}</arg></install>
</product>"#,
            trail = trail.display()
        )
    };
    let good = fixture.product(&product("good", 0));
    let bad = fixture.product(&product("bad", 3));
    let suite = fixture.suite("steps", vec![good, bad], OnFailure::Continue);
    fixture.publish(&suite);

    let output = fixture.roleout(&["install", "steps"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let lines = fs::read_to_string(&trail).unwrap();
    let good_lines: Vec<&str> = lines
        .lines()
        .filter(|line| line.starts_with("good"))
        .collect();
    let bad_lines: Vec<&str> = lines
        .lines()
        .filter(|line| line.starts_with("bad"))
        .collect();
    assert_eq!(good_lines, ["good-one", "good-two", "good-three"]);
    assert_eq!(bad_lines, ["bad-one", "bad-two"], "the third never runs");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        out.contains("bad: install: FAILED: failed: exit code 3 is not a success code"),
        "{}",
        text(&output)
    );
    assert!(
        out.contains("E: no space left on device"),
        "the last output is shown: {out}"
    );
    let reports = fixture.reports();
    let failed = reports
        .iter()
        .find(|report| report["component"] == "bad" && report["outcome"] == "failed")
        .unwrap_or_else(|| panic!("{reports:#?}"));
    let evidence = failed["evidence"].to_string();
    assert!(
        evidence.contains("command 2 of 3: exit code 3 means failure"),
        "{evidence}"
    );
    // One step per phase: the journal and the reports count one install.
    let installs = reports
        .iter()
        .filter(|report| report["component"] == "good" && report["step"] == "install")
        .count();
    assert_eq!(installs, 1, "{reports:#?}");
}

/// A tmpfs of a few megabytes mounted over a folder (its content copied
/// in), unmounted when dropped, also when the test fails.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn over(path: &Path, size: &str) -> SmallDisk {
        let saved = path.with_extension("saved");
        let copy = |from: &Path, to: &Path| {
            let status = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", from.display()))
                .arg(to)
                .status()
                .unwrap();
            assert!(
                status.success(),
                "cp -a {} {}",
                from.display(),
                to.display()
            );
        };
        fs::create_dir_all(&saved).unwrap();
        copy(path, &saved);
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(path)
            .output()
            .unwrap();
        assert!(
            mounted.status.success(),
            "this test mounts a tmpfs (it needs root): {}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        let disk = SmallDisk {
            path: path.to_owned(),
        };
        copy(&saved, path);
        disk
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_in_the_state_folder_stops_the_run_with_the_reason_and_loses_nothing() {
    let mut fixture = Fixture::new();
    let _disk = SmallDisk::over(&fixture.state, "4m");
    let filled = fixture.base.join("filled");
    let filler = fixture.state.join("filler");
    let first = fixture.product(&marker_product(&fixture, "first", &[], ""));
    // Its command fills the state folder's disk, once.
    let fill = fixture.product(&marker_product(
        &fixture,
        "fill",
        &["first"],
        &format!(
            "if [ ! -e {filled} ]; then touch {filled}; dd if=/dev/zero of={filler} bs=64k 2>/dev/null; fi;",
            filled = filled.display(),
            filler = filler.display()
        ),
    ));
    let last = fixture.product(&marker_product(&fixture, "last", &["fill"], ""));
    let suite = fixture.suite("full", vec![first, fill, last], OnFailure::Stop);
    fixture.publish(&suite);

    let full = fixture.roleout(&["install", "full"]);
    assert_ne!(full.status.code(), Some(0), "{}", text(&full));
    assert!(
        text(&full).contains("No space left on device"),
        "the reason is not said\n{}",
        text(&full)
    );
    assert_eq!(fixture.marker_count("first"), 1);
    assert_eq!(fixture.marker_count("last"), 0);

    // Space is freed; the next run goes on where the last one stopped.
    fs::remove_file(&filler).unwrap();
    let freed = fixture.roleout(&["install", "full"]);
    assert_eq!(freed.status.code(), Some(0), "{}", text(&freed));
    assert_eq!(
        fixture.marker_count("first"),
        1,
        "a finished step ran again"
    );
    assert_eq!(fixture.marker_count("last"), 1);
    assert_eq!(
        fixture.marker_count("fill"),
        1,
        "the command that filled the disk ran again"
    );
    let deliveries = fixture.deliveries();
    assert!(
        deliveries.values().all(|count| *count == 1),
        "{deliveries:?}"
    );
    for product in ["first", "fill", "last"] {
        assert!(
            deliveries
                .keys()
                .any(|id| id.contains(&format!(".{product}.install."))),
            "no report of {product}: {deliveries:?}"
        );
    }
    let status = fixture.roleout(&["status"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("installed: last 1.0"), "{out}");
}

#[test]
fn a_hardware_condition_is_decided_by_this_machines_hardware() {
    let mut fixture = Fixture::new();
    let product = |id: &str, least: u64| {
        format!(
            r#"<product xmlns="urn:roleout:descriptor:1" id="{id}" version="1.0">
  <description vendor="Test"><name lang="en">{id}</name><summary lang="en">{id}</summary></description>
  <incremental><hardware fact="memory.bytes" at-least="{least}"/></incremental>
  <install kind="script" timeout="60" shell="true"><arg>echo ran >> "$1"</arg><arg>{marker}</arg></install>
</product>"#,
            marker = fixture.marker(id).display()
        )
    };
    let small = fixture.product(&product("small", 1));
    let huge = fixture.product(&product("huge", 1 << 60));
    let suite = fixture.suite("hw", vec![small, huge], OnFailure::Continue);
    fixture.publish(&suite);
    let run = fixture.roleout(&["install", "hw"]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(fixture.marker_count("small"), 1);
    assert_eq!(fixture.marker_count("huge"), 0);
    assert!(
        text(&run).contains("less than 1152921504606846976"),
        "{}",
        text(&run)
    );
}
