//! Several roleoutd of one installation: nothing that must be used once
//! lives in one process's memory. A machine's answer to a challenge,
//! accepted by one roleoutd, is refused by another (the nonce is claimed
//! in the directory they share). Agents given several roleoutd go on with
//! the next when one is down.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use std::time::Duration;

use roleout_model::ids::MachineId;
use roleout_model::keys::MachineKey;
use roleout_model::protocol::{Base64Bytes, ChallengeResponse, SessionRequest};
use roleout_tests::World;

/// Status and body of a JSON POST.
fn post(agent: &ureq::Agent, url: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let mut response = agent.post(url).send_json(body).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn a_challenge_answer_accepted_by_one_roleoutd_is_refused_by_another() {
    let world = World::start();
    let machine = world.enroll("ws-replay", "end-user");
    let peer = world.start_peer("b");
    let agent = roleout_tests::pinned_client(&world.server_state.join("tls/cert.pem"));
    let key = MachineKey::from_pkcs8(
        &roleout_store::keys::read_private_key(&machine.state.join("machine.key")).unwrap(),
    )
    .unwrap();
    let name = MachineId::new("ws-replay").unwrap();

    // Either way round: answered at one instance, replayed at the other.
    for (first, second) in [(&world.url, &peer.url), (&peer.url, &world.url)] {
        let (status, challenge) = post(
            &agent,
            &format!("{first}/v1/challenge"),
            &serde_json::json!({ "machine": "ws-replay" }),
        );
        assert_eq!(status, 200, "{challenge}");
        let challenge: ChallengeResponse = serde_json::from_value(challenge).unwrap();
        let answer = serde_json::to_value(SessionRequest {
            machine: name.clone(),
            signature: Base64Bytes::new(key.sign_challenge(&challenge.token).unwrap()),
            token: challenge.token,
        })
        .unwrap();
        let (status, session) = post(&agent, &format!("{first}/v1/session"), &answer);
        assert_eq!(status, 200, "{first}: {session}");
        let (status, refused) = post(&agent, &format!("{second}/v1/session"), &answer);
        assert_eq!(status, 401, "{second} accepted a replay: {refused}");
        assert_eq!(refused["error"], "replayed-nonce", "{refused}");
        // And the instance that accepted it refuses it too.
        let (status, refused) = post(&agent, &format!("{first}/v1/session"), &answer);
        assert_eq!(status, 401, "{refused}");
    }

    // The machine itself goes on authenticating with either instance.
    let run = world.install(&machine);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
}

/// Makes `url` the first server of `machine`'s enrolment, the one it
/// enrolled with its fallback.
fn serve_first_from(machine: &roleout_tests::Machine, url: &str) {
    let path = machine.state.join("enrolment.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
    record["fallbacks"] = serde_json::json!([record["server"].clone()]);
    record["server"] = serde_json::json!(url);
    std::fs::write(&path, record.to_string()).unwrap();
}

#[test]
fn an_agent_given_several_roleoutd_goes_on_with_the_next_when_one_is_down() {
    let mut world = World::start();
    // A second roleoutd behind the same name (no engine), with a content
    // store of its own, which brings the payloads it lacks from the first.
    let peer = world.start_peer("b");
    // One machine lists the first roleoutd first, the other the peer.
    let first = world.enroll_with("ws-first", "end-user", &["--server", &peer.url]);
    let enrolment = std::fs::read_to_string(first.state.join("enrolment.json")).unwrap();
    assert!(enrolment.contains(&peer.url), "{enrolment}");
    let second = world.enroll_with("ws-second", "end-user", &[]);
    serve_first_from(&second, &peer.url);

    // The peer serves the second machine, bringing the payloads it lacks.
    let run = world.install(&second);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let log = peer.log_text();
    assert!(log.contains("payload fetched from upstream"), "{log}");
    // The first gives contents only to the installation's own roleoutd.
    let agent = roleout_tests::pinned_client(&world.server_state.join("tls/cert.pem"));
    let peer_store = peer.log.parent().unwrap().join("content").join("sha256");
    let digest = std::fs::read_dir(&peer_store)
        .unwrap()
        .flatten()
        .flat_map(|entry| {
            std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.len() == 64)
        .expect("the peer's content store holds what it fetched");
    for authorization in [None, Some("Peer forged"), Some("Engine forged")] {
        let mut request = agent.get(format!("{}/v1/content/{digest}", world.url));
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        let status = request.call().unwrap().status().as_u16();
        assert_eq!(status, 401, "{authorization:?} got {status}");
    }

    // The first roleoutd dies: the first machine's run is served by the
    // peer, from what it holds.
    world.kill_roleoutd();
    let run = world.install(&first);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(run.installed("jre"), "{}", run.transcript());
    // The announcement of keys was read from the peer too.
    assert!(
        !run.transcript().contains("could not be read"),
        "{}",
        run.transcript()
    );
    assert!(
        peer.log_text().contains("ws-first"),
        "the peer never heard of the first machine"
    );

    // Back up, and the peer gone: the next run goes to the first again,
    // and installs nothing more.
    world.revive_roleoutd();
    drop(peer);
    let again = world.install(&first);
    assert_eq!(again.code(), Some(0), "{}", again.transcript());
    assert!(!again.ran_a_step_of("jre"), "{}", again.transcript());
}

#[test]
fn machines_asking_a_peer_at_once_for_payloads_it_lacks_have_each_brought_once() {
    let world = World::start();
    let peer = world.start_peer("b");
    // Six machines whose first server is the peer, which holds nothing yet.
    let machines: Vec<_> = (0..6)
        .map(|index| {
            let machine = world.enroll_with(&format!("ws-{index}"), "end-user", &[]);
            serve_first_from(&machine, &peer.url);
            machine
        })
        .collect();
    let start = std::sync::Barrier::new(machines.len());
    let runs: Vec<_> = std::thread::scope(|scope| {
        let started: Vec<_> = machines
            .iter()
            .map(|machine| {
                let (world, start) = (&world, &start);
                scope.spawn(move || {
                    start.wait();
                    world.install(machine)
                })
            })
            .collect();
        started.into_iter().map(|run| run.join().unwrap()).collect()
    });
    for run in &runs {
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert!(run.installed("jre"), "{}", run.transcript());
    }
    // Every payload came from the upstream once, however many asked.
    let log = peer.log_text();
    assert!(
        !log.contains('\u{1b}'),
        "roleoutd's log, a file, is plain text: {log}"
    );
    let mut fetched = std::collections::BTreeMap::<&str, usize>::new();
    for digest in roleout_tests::logged_values(&log, "payload fetched from upstream", "digest") {
        *fetched.entry(digest).or_default() += 1;
    }
    let fetch_lines = log.matches("payload fetched from upstream").count();
    assert_eq!(
        fetched.values().sum::<usize>(),
        fetch_lines,
        "every fetch names its digest: {log}"
    );
    assert!(!fetched.is_empty(), "{log}");
    assert!(
        fetched.values().all(|count| *count == 1),
        "payloads fetched more than once: {fetched:?}"
    );
}

/// The loopback topology of a replicated installation: three slapd
/// providers and two roleoutd, each roleoutd given every provider.
struct Topology {
    top: tempfile::TempDir,
    ports: [u16; 3],
    providers: Vec<roleout_directory::LocalDirectory>,
    roleoutd: Vec<Option<roleout_tests::Instance>>,
    addresses: [String; 2],
    urls: [Vec<String>; 2],
}

const BASE: &str = "ou=roleout,dc=example,dc=org";

fn ldap_url(port: u16) -> String {
    format!("ldap://127.0.0.1:{port}/")
}

/// How many entries `filter` finds under `base` at `provider` (as its
/// root, over ldapi); `None` while the base is not there yet.
fn count_at(
    provider: &roleout_directory::LocalDirectory,
    base: &str,
    filter: &str,
) -> Option<usize> {
    let output = std::process::Command::new("ldapsearch")
        .args(["-Q", "-LLL", "-Y", "EXTERNAL", "-H"])
        .arg(provider.ldapi_url())
        .args(["-b", base, filter, "1.1"])
        .output()
        .unwrap();
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.starts_with("dn:"))
            .count()
    })
}

/// Waits (at most `seconds`) until `done` holds.
fn wait_until(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {seconds} s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Topology {
    fn start() -> Topology {
        use roleout_directory::{LocalDirectory, LocalOptions, Replication, Secret};
        let top = tempfile::Builder::new()
            .prefix("roleout-e2e-scale-")
            .tempdir()
            .unwrap();
        let ports = [
            roleout_tests::free_port(),
            roleout_tests::free_port(),
            roleout_tests::free_port(),
        ];
        let secret = Secret::new("scale-test-replication");
        let mut providers = Vec::new();
        for index in 0..3 {
            let join = (index > 0).then(|| top.path().join("slapd-0/credentials"));
            let options = LocalOptions {
                port: Some(ports[index]),
                replication: Some(Replication {
                    server_id: u16::try_from(index + 1).unwrap(),
                    peers: (0..3)
                        .filter(|other| *other != index)
                        .map(|other| ldap_url(ports[other]))
                        .collect(),
                    secret: secret.clone(),
                    join_credentials: join,
                }),
                ..LocalOptions::default()
            };
            providers.push(
                LocalDirectory::persistent_with(top.path().join(format!("slapd-{index}")), options)
                    .unwrap(),
            );
        }
        for provider in &providers {
            wait_until(30, "the base entries reach every provider", || {
                count_at(provider, &format!("cn=roleoutd,{BASE}"), "(objectClass=*)") == Some(1)
            });
        }
        let addresses = [
            format!("127.0.0.1:{}", roleout_tests::free_port()),
            format!("127.0.0.1:{}", roleout_tests::free_port()),
        ];
        // Each roleoutd reads its own order of the providers.
        let urls = [
            vec![ldap_url(ports[0]), ldap_url(ports[1]), ldap_url(ports[2])],
            vec![ldap_url(ports[1]), ldap_url(ports[2]), ldap_url(ports[0])],
        ];
        let mut topology = Topology {
            top,
            ports,
            providers,
            roleoutd: vec![None, None],
            addresses,
            urls,
        };
        topology.start_roleoutd(0);
        // The second shares the first's token secret, builder key and
        // certificate: one installation behind two addresses.
        roleout_tests::share_installation(&topology.state(0), &topology.state(1));
        topology.start_roleoutd(1);
        topology
    }

    fn state(&self, index: usize) -> std::path::PathBuf {
        self.top.path().join(format!("roleoutd-{index}"))
    }

    fn credentials(&self) -> std::path::PathBuf {
        self.top.path().join("slapd-0/credentials")
    }

    fn url(&self, index: usize) -> String {
        format!("https://{}", self.addresses[index])
    }

    fn start_roleoutd(&mut self, index: usize) {
        let mut args: Vec<String> = Vec::new();
        for url in &self.urls[index] {
            args.push("--directory-url".to_owned());
            args.push(url.clone());
        }
        for (flag, value) in [
            ("--bind-dn", format!("cn=roleoutd,{BASE}")),
            (
                "--bind-password-file",
                self.credentials()
                    .join("roleoutd.password")
                    .display()
                    .to_string(),
            ),
            ("--base-dn", BASE.to_owned()),
        ] {
            args.push(flag.to_owned());
            args.push(value);
        }
        let log = self.top.path().join(format!("roleoutd-{index}.log"));
        self.roleoutd[index] = Some(roleout_tests::Instance::start(
            &log,
            &self.state(index),
            &self.addresses[index],
            &args,
        ));
    }

    /// `roleout-admin` as the admin account, given every provider.
    fn admin(&self, script: &str) -> String {
        let mut command = std::process::Command::new(roleout_tests::binary("roleout-admin"));
        for port in self.ports {
            command.args(["--url", &ldap_url(port)]);
        }
        command
            .args([
                "--bind-dn",
                &format!("cn=admin,{BASE}"),
                "--bind-password-file",
            ])
            .arg(self.credentials().join("admin.password"))
            .args(["--base-dn", BASE, "-c", script]);
        let done = roleout_tests::run_command(&mut command);
        assert_eq!(done.code, Some(0), "{script}\n{}", done.transcript());
        done.stdout
    }
}

/// One managed machine of the topology: its state and sandbox root.
struct Agent {
    name: String,
    state: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl Agent {
    /// A machine `name` kept in `folder`: its state, and a sandbox root
    /// with an empty dpkg database.
    fn new(folder: &std::path::Path, name: &str) -> Agent {
        let agent = Agent {
            name: name.to_owned(),
            state: folder.join("state"),
            root: folder.join("root"),
        };
        for sub in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/log",
            "opt",
        ] {
            std::fs::create_dir_all(agent.root.join(sub)).unwrap();
        }
        for file in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
            std::fs::write(agent.root.join(file), "").unwrap();
        }
        std::fs::create_dir_all(&agent.state).unwrap();
        agent
    }

    fn install(&self) -> roleout_tests::Finished {
        let mut command = std::process::Command::new(roleout_tests::binary("roleout"));
        command
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--json", "install", "domino", "--root"])
            .arg(&self.root)
            .arg("--default-response-file")
            .arg(self.state.join("absent-response.toml"));
        roleout_tests::run_command(&mut command)
    }
}

/// A small generator for the kill point, its seed printed so a failure
/// can be run again (`ROLEOUT_SCALE_SEED`).
fn seed() -> u64 {
    std::env::var("ROLEOUT_SCALE_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
                .into()
        })
}

fn next(state: &mut u64) -> u64 {
    // xorshift64*
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Runs `install` on every agent, `parallel` at a time, while `chaos`
/// runs on this thread; returns each agent's exit code.
fn roll_out(
    agents: &[Agent],
    parallel: usize,
    chaos: impl FnOnce(&std::sync::atomic::AtomicUsize),
) -> Vec<Option<i32>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next_agent = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let codes = std::sync::Mutex::new(vec![None; agents.len()]);
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                loop {
                    let index = next_agent.fetch_add(1, Ordering::SeqCst);
                    let Some(agent) = agents.get(index) else {
                        break;
                    };
                    let run = agent.install();
                    codes.lock().unwrap()[index] = run.code;
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        chaos(&finished);
    });
    codes.into_inner().unwrap()
}

#[test]
fn a_rollout_to_50_machines_survives_losing_any_one_node_mid_rollout() {
    let mut topology = Topology::start();
    let payloads = topology.top.path().join("payloads");
    roleout_tests::build_example_payloads(&payloads);
    let examples = roleout_tests::repository().join("examples");
    // The catalog goes to the directory once; its payloads to each
    // roleoutd's own content store.
    topology.admin(&format!(
        "import {} --payloads {} --content-dir {}; import {} --payloads {} --content-dir {}; \
         role create end-user --rank 10; build",
        examples.display(),
        payloads.display(),
        topology.state(0).join("content").display(),
        examples.display(),
        payloads.display(),
        topology.state(1).join("content").display(),
    ));

    // 50 machines, half listing the first roleoutd first, half the second.
    let mut agents = Vec::new();
    let mut members = Vec::new();
    for number in 0..50 {
        let name = format!("ws-{number:02}");
        let token = topology
            .admin(&format!("enroll-token {name}"))
            .trim()
            .to_owned();
        members.push(format!("role add-member end-user {name}"));
        let agent = Agent::new(&topology.top.path().join("machines").join(&name), &name);
        let servers = if number % 2 == 0 {
            format!("{},{}", topology.url(0), topology.url(1))
        } else {
            format!("{},{}", topology.url(1), topology.url(0))
        };
        let mut enroll = std::process::Command::new(roleout_tests::binary("roleout"));
        enroll
            .arg("--state-dir")
            .arg(&agent.state)
            .args(["enroll", "--server", &servers, "--server-cert"])
            .arg(topology.state(0).join("tls/cert.pem"))
            .args(["--token", &token, "--name", &name]);
        let enrolled = roleout_tests::run_command(&mut enroll);
        assert_eq!(enrolled.code, Some(0), "{}", enrolled.transcript());
        agents.push(agent);
    }
    topology.admin(&members.join("; "));

    // The rollout, 8 machines at a time; one node, chosen at random, is
    // killed at a random point and started again 2 s later.
    let seed = seed();
    println!("ROLEOUT_SCALE_SEED={seed}");
    let mut random = seed | 1;
    let victim = usize::try_from(next(&mut random) % 5).unwrap();
    let after = usize::try_from(5 + next(&mut random) % 20).unwrap();
    println!("killing node {victim} (0-2 slapd, 3-4 roleoutd) after {after} machines");
    let codes = roll_out(&agents, 8, |finished| {
        wait_until(300, "machines finishing before the kill", || {
            finished.load(std::sync::atomic::Ordering::SeqCst) >= after
        });
        match victim {
            0..=2 => {
                let pid = topology.providers[victim].pid().unwrap();
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .unwrap();
            }
            _ => topology.roleoutd[victim - 3].as_mut().unwrap().kill(),
        }
        std::thread::sleep(Duration::from_secs(2));
        match victim {
            0..=2 => topology.providers[victim].start().unwrap(),
            _ => topology.start_roleoutd(victim - 3),
        }
    });

    // A machine whose run the kill cut short runs again, as its timer
    // would; at most three more rounds.
    let mut pending: Vec<usize> = (0..agents.len())
        .filter(|index| codes[*index] != Some(0))
        .collect();
    println!("{} machine(s) to run again after the kill", pending.len());
    for _ in 0..3 {
        if pending.is_empty() {
            break;
        }
        pending.retain(|index| agents[*index].install().code != Some(0));
    }
    assert!(
        pending.is_empty(),
        "machines that never converged: {pending:?}"
    );

    // Every machine has everything: one more run installs nothing.
    let again = roll_out(&agents, 8, |_| {});
    assert!(again.iter().all(|code| *code == Some(0)), "{again:?}");

    // No report lost or doubled: each component's install reported
    // successful exactly once, read at any provider.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let password = std::fs::read_to_string(topology.credentials().join("admin.password")).unwrap();
    for provider in 0..3 {
        let settings = roleout_directory::Settings::new([ldap_url(topology.ports[provider])])
            .with_bind(roleout_directory::Bind::Simple {
                dn: format!("cn=admin,{BASE}"),
                password: roleout_directory::Secret::new(password.trim()),
            })
            .with_base(BASE);
        runtime.block_on(async {
            let directory = roleout_directory::Directory::connect(&settings).await.unwrap();
            for agent in &agents {
                let machine = MachineId::new(&agent.name).unwrap();
                let reports = directory.reports_for_machine(&machine).await.unwrap();
                for component in ["jre", "notes-client", "notes-help"] {
                    let successes = reports
                        .iter()
                        .filter(|report| {
                            report.component.as_str() == component
                                && report.step == roleout_model::protocol::ReportStep::Install
                                && report.outcome == roleout_model::protocol::ReportOutcome::Success
                        })
                        .count();
                    assert_eq!(
                        successes, 1,
                        "{}: {component} reported installed {successes} times at provider {provider}",
                        agent.name
                    );
                }
            }
            directory.close().await;
        });
    }

    // The killed node caught up: every provider holds the same reports.
    let reports_base = format!("ou=reports,{BASE}");
    wait_until(60, "every provider holding the same reports", || {
        let counts: Vec<Option<usize>> = topology
            .providers
            .iter()
            .map(|provider| count_at(provider, &reports_base, "(objectClass=roleoutReport)"))
            .collect();
        counts[0].is_some() && counts.iter().all(|count| *count == counts[0])
    });
}

#[test]
fn two_roleoutd_each_with_its_own_replicated_managed_directory_serve_one_fleet() {
    let top = tempfile::Builder::new()
        .prefix("roleout-e2e-replicas-")
        .tempdir()
        .unwrap();
    let ldap_ports = [roleout_tests::free_port(), roleout_tests::free_port()];
    let addresses = [
        format!("127.0.0.1:{}", roleout_tests::free_port()),
        format!("127.0.0.1:{}", roleout_tests::free_port()),
    ];
    let secret = top.path().join("replication.secret");
    std::fs::write(&secret, "two-providers-secret\n").unwrap();
    let state = |index: usize| top.path().join(format!("roleoutd-{index}"));
    let args = |index: usize| {
        let mut args = vec![
            "--ldap-port".to_owned(),
            ldap_ports[index].to_string(),
            "--replica-id".to_owned(),
            (index + 1).to_string(),
            "--replica-peer".to_owned(),
            ldap_url(ldap_ports[1 - index]),
            "--replication-secret-file".to_owned(),
            secret.display().to_string(),
        ];
        if index == 1 {
            args.push("--replica-join".to_owned());
            args.push(state(0).join("ldap/credentials").display().to_string());
        }
        args
    };
    let log = |index: usize| top.path().join(format!("roleoutd-{index}.log"));
    let mut first = Some(roleout_tests::Instance::start(
        &log(0),
        &state(0),
        &addresses[0],
        &args(0),
    ));
    roleout_tests::share_installation(&state(0), &state(1));
    let _second = roleout_tests::Instance::start(&log(1), &state(1), &addresses[1], &args(1));

    let admin = |index: usize, script: &str| {
        let mut command = std::process::Command::new(roleout_tests::binary("roleout-admin"));
        command
            .arg("--state-dir")
            .arg(state(index))
            .args(["-c", script]);
        let done = roleout_tests::run_command(&mut command);
        assert_eq!(done.code, Some(0), "{script}\n{}", done.transcript());
        done.stdout
    };
    let payloads = top.path().join("payloads");
    roleout_tests::build_example_payloads(&payloads);
    let examples = roleout_tests::repository().join("examples");
    admin(
        0,
        &format!(
            "import {} --payloads {}; role create end-user --rank 10; build",
            examples.display(),
            payloads.display()
        ),
    );
    // The second's directory has the catalog from the first's; its content
    // store gets the payloads (the catalog import there writes nothing).
    let second_slapd = state(1).join("ldap");
    let role_dn = format!("cn=end-user,ou=roles,{BASE}");
    wait_until(30, "the role reaching the second provider", || {
        std::process::Command::new("ldapsearch")
            .args(["-Q", "-LLL", "-Y", "EXTERNAL", "-H"])
            .arg(format!(
                "ldapi://{}",
                second_slapd
                    .join("ldapi")
                    .display()
                    .to_string()
                    .replace('/', "%2F")
            ))
            .args(["-s", "base", "-b", &role_dn, "1.1"])
            .output()
            .unwrap()
            .status
            .success()
    });
    let imported = admin(
        1,
        &format!(
            "import {} --payloads {}",
            examples.display(),
            payloads.display()
        ),
    );
    assert!(
        imported.contains("0 added, 0 updated, 7 unchanged"),
        "the second import wrote: {imported}"
    );

    let token = admin(0, "enroll-token ws-replica").trim().to_owned();
    admin(0, "role add-member end-user ws-replica");
    let agent = Agent::new(&top.path().join("machines/ws-replica"), "ws-replica");
    let mut enroll = std::process::Command::new(roleout_tests::binary("roleout"));
    enroll
        .arg("--state-dir")
        .arg(&agent.state)
        .args([
            "enroll",
            "--server",
            &format!("https://{},https://{}", addresses[0], addresses[1]),
            "--server-cert",
        ])
        .arg(state(0).join("tls/cert.pem"))
        .args(["--token", &token, "--name", &agent.name]);
    let enrolled = roleout_tests::run_command(&mut enroll);
    assert_eq!(enrolled.code, Some(0), "{}", enrolled.transcript());

    // The first roleoutd stops, and its slapd with it: the machine is
    // served by the second, from the second's own directory.
    wait_until(
        30,
        "the machine's approval reaching the second provider",
        || admin(1, "machine list").contains("ws-replica"),
    );
    drop(first.take());
    let run = agent.install();
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let second_log = std::fs::read_to_string(log(1)).unwrap();
    assert!(second_log.contains("ws-replica"), "{second_log}");

    // The first comes back and its directory catches up with what the
    // second took meanwhile: the machine's reports.
    let _first = roleout_tests::Instance::start(&log(0), &state(0), &addresses[0], &args(0));
    wait_until(30, "the reports reaching the first provider again", || {
        admin(0, "status --machine ws-replica").contains("jre")
    });
}
