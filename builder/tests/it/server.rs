//! roleoutd end to end over TLS: the real binary over a real slapd, real
//! machine keys (Ed25519 and P-256) and real signatures. The happy path
//! enrols, authenticates, reads the suites of a developer machine, checks
//! the signed envelopes and reports; then each attack the design names is
//! tried and must be refused with its own status and error code.

use std::time::{Duration, Instant, SystemTime};

use roleout_model::keys::KeyAlgorithm;
use roleout_model::protocol::signing::verify_envelope;
use roleout_model::protocol::{ComponentDelivery, SignedEnvelope, SuiteDelivery, SuiteList};
use serde_json::{Value, json};

use crate::support::{Roleoutd, Server, TestMachine, machine_id};

/// Asserts a refusal's status and code.
fn refused(answer: (u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"], code, "{}", answer.1);
    assert!(answer.1["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// Asserts that `request` is refused with `status` and `code` once roleoutd
/// has heard of an admin's change: its change feed delivers a change
/// within milliseconds, but not before the admin's write returns, so the
/// very next request may still be answered from before the change. Asks
/// again until refused, for at most five seconds.
fn refused_soon(request: impl Fn() -> (u16, Value), status: u16, code: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut answer = request();
    while answer.0 == 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        answer = request();
    }
    refused(answer, status, code);
}

/// An enrolled, approved machine with `roles`.
fn approved(server: &Server, name: &str, algorithm: KeyAlgorithm, roles: &[&str]) -> TestMachine {
    let machine = TestMachine::new(name, algorithm);
    let token = server.enrolment_token(name);
    let (status, answer) = machine.enroll(server, Some(&token));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "approved", "{answer}");
    for role in roles {
        server.grant(name, role);
    }
    machine
}

fn envelope(server: &Server, machine: &str, value: Value) -> SignedEnvelope {
    let envelope: SignedEnvelope = serde_json::from_value(value).expect("an envelope");
    verify_envelope(
        &envelope,
        &server.builder_key,
        &machine_id(machine),
        None,
        SystemTime::now(),
    )
    .expect("the envelope verifies with the pinned key");
    envelope
}

fn report(id: &str, digest: &str) -> Value {
    json!({
        "id": id, "suite": "domino", "build-digest": digest, "component": "notes-client",
        "step": "install", "outcome": "success", "exit-code": 0, "duration-ms": 1200,
        "evidence": ["exit code 0"], "log": "Installation complete\n",
        "started-at": "2024-05-01T12:00:00Z", "finished-at": "2024-05-01T12:00:01Z"
    })
}

#[test]
fn a_developer_machine_gets_its_suite_signed_and_reports() {
    let server = Server::shared();
    for (name, algorithm) in [
        ("dev-ed", KeyAlgorithm::Ed25519),
        ("dev-p256", KeyAlgorithm::EcdsaP256),
    ] {
        let machine = approved(&server, name, algorithm, &["developer"]);
        // The answer pins the same key roleoutd keeps in its state.
        let (_, again) = machine.enroll(&server, None);
        assert_eq!(again["status"], "approved", "{again}");
        assert_eq!(
            again["builder-key"]["key-id"],
            server.builder_key.key_id().as_str()
        );
        let session = machine.session(&server);

        let (status, list) = server.get_json("/v1/suites", Some(&session));
        assert_eq!(status, 200, "{list}");
        let list: SuiteList = envelope(&server, name, list)
            .signed
            .payload()
            .expect("list");
        assert_eq!(
            list.suites
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>(),
            ["domino"]
        );

        let (status, suite) = server.get_json("/v1/suites/domino", Some(&session));
        assert_eq!(status, 200, "{suite}");
        let signed = envelope(&server, name, suite);
        assert_eq!(signed.signed.roles, "developer+end-user");
        let delivery: SuiteDelivery = signed.signed.payload().expect("suite");
        let products: Vec<&str> = delivery
            .suite
            .products
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        assert!(products.contains(&"notes-designer"), "{products:?}");
        assert!(!products.contains(&"domino-admin"), "{products:?}");
        assert!(
            delivery
                .machine
                .components
                .iter()
                .any(|c| c.as_str() == "notes-client")
        );
        assert_eq!(delivery.machine.name.as_str(), name);

        let (status, component) =
            server.get_json("/v1/suites/domino/components/notes-client", Some(&session));
        assert_eq!(status, 200, "{component}");
        let component: ComponentDelivery = envelope(&server, name, component)
            .signed
            .payload()
            .expect("component");
        let files: Vec<&str> = component
            .files
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert!(files.contains(&"notes-sdk.tar.gz"), "{files:?}");
        let phases: Vec<String> = component
            .product
            .commands
            .keys()
            .map(|phase| format!("{phase:?}"))
            .collect();
        let post_install = &component.product.commands;
        // The developer post-install (tar), not the administrator setup.
        let text = serde_json::to_string(post_install).expect("json");
        assert!(text.contains("notes-sdk.tar.gz"), "{phases:?}");
        assert!(!text.contains("--admin-setup"), "{text}");

        // The payload, whole and in part, matches its digest.
        let sdk = component
            .files
            .files
            .iter()
            .find(|f| f.path == "notes-sdk.tar.gz")
            .expect("sdk");
        let path = format!("/v1/payloads/{}", sdk.sha256);
        let (status, headers, bytes) = server.get(&path, Some(&session), None);
        assert_eq!(status, 200);
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        assert_eq!(hex::encode(digest.as_ref()), sdk.sha256.as_str());
        // Immutable by digest: the machine's private cache may keep it.
        assert_eq!(
            headers["cache-control"],
            "private, max-age=31536000, immutable"
        );
        assert_eq!(headers["etag"], format!("\"{}\"", sdk.sha256).as_str());
        let (status, headers, part) = server.get(&path, Some(&session), Some("bytes=10-19"));
        assert_eq!(status, 206);
        assert_eq!(part, bytes[10..20]);
        assert_eq!(
            headers["content-range"],
            format!("bytes 10-19/{}", bytes.len()).as_str()
        );
        let (status, _, _) = server.get(&path, Some(&session), Some("bytes=99999-"));
        assert_eq!(status, 416);

        let id = format!("{name}-1");
        let digest = delivery.build_digest.as_str();
        let (status, ack) = server.post("/v1/reports", &report(&id, digest), Some(&session));
        assert_eq!((status, &ack["status"]), (200, &json!("recorded")), "{ack}");
        let (status, ack) = server.post("/v1/reports", &report(&id, digest), Some(&session));
        assert_eq!(
            (status, &ack["status"]),
            (200, &json!("duplicate")),
            "{ack}"
        );
        let complete = json!({"id": format!("{name}-done"), "suite": "domino", "build-digest": digest,
            "summary": {"installed": 1, "skipped": 0, "failed": 0, "blocked": 0, "reboot-required": false}});
        let (status, close) = server.post("/v1/reports/complete", &complete, Some(&session));
        assert_eq!(
            (status, &close["status"]),
            (200, &json!("close")),
            "{close}"
        );
        let stored = server
            .block_on(server.directory.reports_for_machine(&machine_id(name)))
            .expect("reports read back from the directory");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].id, id);
        assert_eq!(stored[0].component.as_str(), "notes-client");
    }
}

#[test]
fn unchanged_contents_are_served_with_their_signature_and_a_change_is_signed_anew() {
    let server = Server::start(&[]);
    let machine = approved(&server, "resign-1", KeyAlgorithm::Ed25519, &["developer"]);
    let session = machine.session(&server);
    let fetch = |session: &str| {
        let (status, value) = server.get_json("/v1/suites/domino", Some(session));
        assert_eq!(status, 200, "{value}");
        envelope(&server, "resign-1", value)
    };
    // Once roleoutd's change feed is live, a second request for the same
    // contents gets the envelope signed for the first.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = fetch(&session);
    let kept = loop {
        let next = fetch(&session);
        if next == last {
            break next;
        }
        assert!(Instant::now() < deadline, "every request was signed anew");
        std::thread::sleep(Duration::from_millis(50));
        last = next;
    };

    // Another role changes the contents: a new signature, a higher serial
    // (in a new session: the old one ends with the roles it began with).
    server.grant("resign-1", "administrator");
    refused_soon(
        || server.get_json("/v1/suites/domino", Some(&session)),
        401,
        "expired-session",
    );
    let changed = fetch(&machine.session(&server));
    assert_eq!(changed.signed.roles, "administrator+developer+end-user");
    assert!(changed.signed.serial > kept.signed.serial);
    assert_ne!(changed.signature, kept.signature);
}

#[test]
fn without_a_change_feed_every_request_reads_the_directory() {
    // A directory without the syncprov overlay, as an existing OpenLDAP
    // may be: the managed slapd with its overlay taken away offline.
    let mut local = roleout_directory::LocalDirectory::temporary().expect("slapd starts");
    local.stop().expect("slapd stops");
    let overlay = local
        .config_dir()
        .join("cn=config/olcDatabase={1}mdb/olcOverlay={0}syncprov.ldif");
    std::fs::remove_file(&overlay).expect("the overlay's configuration entry");
    local.start().expect("slapd starts again");
    let server = Server::start_on(local, &[]);

    let machine = approved(&server, "unfed-1", KeyAlgorithm::Ed25519, &["developer"]);
    let session = machine.session(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("no change feed") {
        assert!(
            Instant::now() < deadline,
            "roleoutd never said it has no change feed: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Served correctly, and signed anew each time (nothing is kept).
    let (status, first) = server.get_json("/v1/suites/domino", Some(&session));
    assert_eq!(status, 200, "{first}");
    let first = envelope(&server, "unfed-1", first);
    std::thread::sleep(Duration::from_millis(5));
    let (status, second) = server.get_json("/v1/suites/domino", Some(&session));
    assert_eq!(status, 200, "{second}");
    let second = envelope(&server, "unfed-1", second);
    assert_eq!(first.signed.payload, second.signed.payload);
    assert!(second.signed.serial > first.signed.serial);

    // An admin's change takes effect on the very next request.
    server.disable("unfed-1");
    refused(
        server.get_json("/v1/suites", Some(&session)),
        403,
        "disabled",
    );
    assert!(
        !server.log().contains("change feed live"),
        "{}",
        server.log()
    );
}

/// slapd stopped under roleoutd: requests are answered 503 with
/// Retry-After (nothing is wrong with them), and served again once slapd is
/// back, without restarting roleoutd.
#[test]
fn a_directory_out_of_reach_is_answered_503_then_served_again() {
    let mut server = Server::start(&[]);
    let machine = approved(&server, "outage-1", KeyAlgorithm::Ed25519, &["developer"]);
    let session = machine.session(&server);
    assert_eq!(server.get_json("/v1/suites", Some(&session)).0, 200);
    server.set_directory_running(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (status, headers) = loop {
        let (status, headers, _) = server.get("/v1/suites", Some(&session), None);
        if status == 503 || Instant::now() > deadline {
            break (status, headers);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 503, "{}", server.log());
    assert_eq!(headers["retry-after"], "5");
    server.set_directory_running(true);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _, _) = server.get("/v1/suites", Some(&session), None);
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served again: {status}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A machine reports only on what it was given: a component of its suite
/// as its roles have it (not another role's, not another suite's), or the
/// removal of one it reported on before; a resend of a kept report is
/// still acknowledged.
#[test]
fn reports_about_components_a_machine_was_not_given_are_refused() {
    let server = Server::shared();
    let machine = approved(&server, "reporter-1", KeyAlgorithm::Ed25519, &["end-user"]);
    let session = machine.session(&server);
    let digest = "0".repeat(64);
    let about = |id: &str, suite: &str, component: &str, step: &str| {
        let mut body = report(id, &digest);
        body["suite"] = json!(suite);
        body["component"] = json!(component);
        body["step"] = json!(step);
        body
    };
    let (status, ack) = server.post(
        "/v1/reports",
        &about("r1-own", "domino", "notes-client", "install"),
        Some(&session),
    );
    assert_eq!((status, &ack["status"]), (200, &json!("recorded")), "{ack}");
    // Another role's component, another suite, a component of nowhere.
    for (id, suite, component) in [
        ("r1-designer", "domino", "notes-designer"),
        ("r1-other-suite", "no-such-suite", "notes-client"),
        ("r1-nowhere", "domino", "no-such-product"),
    ] {
        refused(
            server.post(
                "/v1/reports",
                &about(id, suite, component, "install"),
                Some(&session),
            ),
            403,
            "forbidden-suite",
        );
    }
    // The removal of another role's product is refused too...
    refused(
        server.post(
            "/v1/reports",
            &about(
                "r1-removed-designer",
                "domino",
                "notes-designer",
                "uninstall",
            ),
            Some(&session),
        ),
        403,
        "forbidden-suite",
    );
    // ...unless the machine reported on it before (it was a developer, and
    // removes what it no longer gets).
    let earlier: roleout_model::protocol::StatusReport = serde_json::from_value(about(
        "r1-as-developer",
        "domino",
        "notes-designer",
        "install",
    ))
    .unwrap();
    server
        .block_on(
            server
                .directory
                .store_report(&machine_id("reporter-1"), &earlier, None),
        )
        .unwrap();
    let (status, ack) = server.post(
        "/v1/reports",
        &about("r1-removed", "domino", "notes-designer", "uninstall"),
        Some(&session),
    );
    assert_eq!((status, &ack["status"]), (200, &json!("recorded")), "{ack}");
    refused(
        server.post(
            "/v1/reports",
            &about("r1-reinstalled", "domino", "notes-designer", "install"),
            Some(&session),
        ),
        403,
        "forbidden-suite",
    );
    // Nothing refused was kept.
    let stored = server
        .block_on(
            server
                .directory
                .reports_for_machine(&machine_id("reporter-1")),
        )
        .unwrap();
    let mut ids: Vec<&str> = stored.iter().map(|report| report.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["r1-as-developer", "r1-own", "r1-removed"]);
}

#[test]
fn a_replayed_signature_is_refused() {
    let server = Server::shared();
    let machine = approved(&server, "replay-1", KeyAlgorithm::Ed25519, &[]);
    let answer = machine.answer(&machine.challenge(&server));
    assert_eq!(server.post("/v1/session", &answer, None).0, 200);
    refused(
        server.post("/v1/session", &answer, None),
        401,
        "replayed-nonce",
    );
}

#[test]
fn a_challenge_issued_to_another_machine_is_refused() {
    let server = Server::shared();
    let first = approved(&server, "other-1", KeyAlgorithm::Ed25519, &[]);
    let second = approved(&server, "other-2", KeyAlgorithm::EcdsaP256, &[]);
    let token = first.challenge(&server);
    refused(
        server.post("/v1/session", &second.answer(&token), None),
        401,
        "unauthorized",
    );
}

#[test]
fn a_tampered_token_is_refused() {
    let server = Server::shared();
    let machine = approved(&server, "tamper-1", KeyAlgorithm::Ed25519, &[]);
    let token = machine.challenge(&server);
    let (payload, mac) = token.split_once('.').expect("payload.mac");
    let mut changed = payload.to_owned().into_bytes();
    changed[5] = if changed[5] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{}.{mac}", String::from_utf8(changed).expect("ascii"));
    refused(
        server.post("/v1/session", &machine.answer(&tampered), None),
        401,
        "unauthorized",
    );
    // And a session token changed the same way.
    let session = machine.session(&server);
    refused(
        server.get_json("/v1/suites", Some(&format!("{session}x"))),
        401,
        "unauthorized",
    );
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let server = Server::shared();
    let machine = approved(&server, "impostor-1", KeyAlgorithm::Ed25519, &[]);
    let impostor = TestMachine::new("impostor-1", KeyAlgorithm::Ed25519);
    let token = machine.challenge(&server);
    refused(
        server.post("/v1/session", &impostor.answer(&token), None),
        401,
        "bad-signature",
    );
}

#[test]
fn an_unknown_machine_is_refused() {
    let server = Server::shared();
    let stranger = TestMachine::new("stranger-1", KeyAlgorithm::Ed25519);
    let token = stranger.challenge(&server);
    refused(
        server.post("/v1/session", &stranger.answer(&token), None),
        401,
        "bad-signature",
    );
}

/// A caller without a machine's key cannot tell unknown, pending, approved
/// and disabled names apart: a session answer is the same for all four,
/// and an enrolment with another key the same for the three known ones.
#[test]
fn a_caller_without_the_key_learns_nothing_of_a_machines_state() {
    let server = Server::shared();
    approved(&server, "state-approved", KeyAlgorithm::Ed25519, &[]);
    let disabled = approved(&server, "state-disabled", KeyAlgorithm::Ed25519, &[]);
    server.disable("state-disabled");
    let pending = TestMachine::new("state-pending", KeyAlgorithm::Ed25519);
    assert_eq!(pending.enroll(&server, None).0, 200);
    let answer_for = |name: &str| {
        let caller = TestMachine::new(name, KeyAlgorithm::Ed25519);
        let token = caller.challenge(&server);
        let (status, body) = server.post("/v1/session", &caller.answer(&token), None);
        (status, body["code"].clone(), body["message"].clone())
    };
    let unknown = answer_for("state-unknown");
    assert_eq!(unknown.0, 401, "{unknown:?}");
    for name in ["state-pending", "state-approved", "state-disabled"] {
        assert_eq!(answer_for(name), unknown, "{name}");
    }
    let enrolment_for = |name: &str| {
        let caller = TestMachine::new(name, KeyAlgorithm::Ed25519);
        let (status, body) = caller.enroll(&server, None);
        let message = body["message"].as_str().unwrap_or("").replace(name, "NAME");
        (status, body["code"].clone(), message)
    };
    let approved_answer = enrolment_for("state-approved");
    assert_eq!(approved_answer.0, 409, "{approved_answer:?}");
    assert_eq!(enrolment_for("state-disabled"), approved_answer);
    assert_eq!(enrolment_for("state-pending"), approved_answer);
    // The key holder is told.
    let token = disabled.challenge(&server);
    refused(
        server.post("/v1/session", &disabled.answer(&token), None),
        403,
        "disabled",
    );
}

#[test]
fn a_disabled_machine_is_refused_as_soon_as_roleoutd_hears_of_it() {
    let server = Server::shared();
    let machine = approved(
        &server,
        "disabled-1",
        KeyAlgorithm::EcdsaP256,
        &["developer"],
    );
    let session = machine.session(&server);
    assert_eq!(server.get_json("/v1/suites", Some(&session)).0, 200);
    server.disable("disabled-1");
    refused_soon(
        || server.get_json("/v1/suites", Some(&session)),
        403,
        "disabled",
    );
    let token = machine.challenge(&server);
    refused(
        server.post("/v1/session", &machine.answer(&token), None),
        403,
        "disabled",
    );
}

#[test]
fn an_unapproved_machine_is_refused() {
    let server = Server::shared();
    let machine = TestMachine::new("pending-1", KeyAlgorithm::Ed25519);
    let (status, answer) = machine.enroll(&server, None);
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("pending")),
        "{answer}"
    );
    let token = machine.challenge(&server);
    refused(
        server.post("/v1/session", &machine.answer(&token), None),
        403,
        "not-approved",
    );
    // A wrong enrolment token approves nothing.
    refused(
        machine.enroll(&server, Some("not-the-token")),
        401,
        "unauthorized",
    );
}

#[test]
fn a_new_key_without_proof_is_refused_and_changes_nothing() {
    let server = Server::shared();
    let machine = approved(&server, "hijack-1", KeyAlgorithm::Ed25519, &[]);
    let before = server.entry("hijack-1");
    // Someone who knows the name offers another key: refused, nothing
    // written, the machine keeps working.
    let intruder = TestMachine::new("hijack-1", KeyAlgorithm::Ed25519);
    let mut body = intruder.enrolment(None);
    body["facts"] = json!({"os": "windows", "arch": "arm64"});
    let (status, answer) = server.post("/v1/enroll", &body, None);
    refused((status, answer.clone()), 409, "key-conflict");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("enroll-token hijack-1")),
        "{answer}"
    );
    // The machine's own (public) certificate with other facts: answered,
    // but the facts are not taken from someone who proved nothing.
    let mut replay = machine.enrolment(None);
    replay["facts"] = json!({"os": "windows", "arch": "arm64"});
    let (status, answer) = server.post("/v1/enroll", &replay, None);
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("approved")),
        "{answer}"
    );
    let after = server.entry("hijack-1");
    assert_eq!(after.certificate, before.certificate);
    assert_eq!(after.enrolment, before.enrolment);
    assert_eq!(after.machine.os.as_deref(), Some("linux"));
    assert_eq!(after.machine.arch.as_deref(), Some("x86_64"));
    machine.session(&server);
}

#[test]
fn a_key_rotated_with_proof_of_the_current_key_stays_approved() {
    let server = Server::shared();
    let machine = approved(&server, "rotate-1", KeyAlgorithm::Ed25519, &[]);
    let rotated = TestMachine::new("rotate-1", KeyAlgorithm::EcdsaP256);
    // A proof made by another key is refused.
    let stranger = TestMachine::new("rotate-1", KeyAlgorithm::Ed25519);
    let token = machine.challenge(&server);
    refused(
        server.post("/v1/enroll", &stranger.rotation_to(&rotated, &token), None),
        401,
        "unauthorized",
    );
    let token = machine.challenge(&server);
    let body = machine.rotation_to(&rotated, &token);
    let (status, answer) = server.post("/v1/enroll", &body, None);
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("approved")),
        "{answer}"
    );
    // The old key no longer authenticates; the new one does at once.
    let token = machine.challenge(&server);
    refused(
        server.post("/v1/session", &machine.answer(&token), None),
        401,
        "bad-signature",
    );
    rotated.session(&server);
    // The same proof again: its challenge is spent.
    refused(server.post("/v1/enroll", &body, None), 401, "unauthorized");
    // A machine that is not approved cannot rotate its way in.
    let pending = TestMachine::new("rotate-2", KeyAlgorithm::Ed25519);
    assert_eq!(pending.enroll(&server, None).1["status"], "pending");
    let token = pending.challenge(&server);
    refused(
        server.post(
            "/v1/enroll",
            &pending.rotation_to(&TestMachine::new("rotate-2", KeyAlgorithm::Ed25519), &token),
            None,
        ),
        401,
        "unauthorized",
    );
}

#[test]
fn a_token_approves_only_the_key_presented_with_it() {
    let server = Server::shared();
    let token = server.enrolment_token("token-race-1");
    let holder = TestMachine::new("token-race-1", KeyAlgorithm::Ed25519);
    let racers: Vec<TestMachine> = (0..6)
        .map(|_| TestMachine::new("token-race-1", KeyAlgorithm::Ed25519))
        .collect();
    // The holder and six callers without the token, all at once.
    let barrier = std::sync::Barrier::new(racers.len() + 1);
    let (holder_answer, racer_answers) = std::thread::scope(|scope| {
        let racing: Vec<_> = racers
            .iter()
            .map(|racer| {
                let (server, barrier) = (&server, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    racer.enroll(server, None)
                })
            })
            .collect();
        barrier.wait();
        let holder_answer = holder.enroll(&server, Some(&token));
        let racer_answers: Vec<_> = racing
            .into_iter()
            .map(|racer| racer.join().expect("a racer"))
            .collect();
        (holder_answer, racer_answers)
    });
    assert_eq!(
        (holder_answer.0, &holder_answer.1["status"]),
        (200, &json!("approved")),
        "{holder_answer:?}"
    );
    for (status, answer) in &racer_answers {
        assert!(
            *status == 401 || *status == 409,
            "a caller without the token was answered {status}: {answer}"
        );
    }
    // The key approved is the holder's.
    holder.session(&server);
    for racer in &racers {
        let token = racer.challenge(&server);
        refused(
            server.post("/v1/session", &racer.answer(&token), None),
            401,
            "bad-signature",
        );
    }
    // The token is spent.
    refused(
        TestMachine::new("token-race-1", KeyAlgorithm::Ed25519).enroll(&server, Some(&token)),
        401,
        "unauthorized",
    );
}

#[test]
fn approving_before_the_first_enrolment_approves_the_first_key() {
    let server = Server::shared();
    // The entry exists without a key (a token issued and never used
    // would do the same; here the admin made it for a token and then
    // approved it instead, which drops nothing).
    server
        .block_on(
            server
                .directory
                .create_machine(&roleout_model::machine::Machine {
                    name: machine_id("early-1"),
                    ip: None,
                    os: None,
                    arch: None,
                    facts: Default::default(),
                    products: Vec::new(),
                }),
        )
        .expect("the entry");
    server.approve("early-1");
    let first = TestMachine::new("early-1", KeyAlgorithm::Ed25519);
    let (status, answer) = first.enroll(&server, None);
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("approved")),
        "{answer}"
    );
    first.session(&server);
    // The second key is not: it needs a token or the first key's proof.
    refused(
        TestMachine::new("early-1", KeyAlgorithm::Ed25519).enroll(&server, None),
        409,
        "key-conflict",
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let server = Server::shared();
    let two_years_ago = SystemTime::now() - Duration::from_secs(2 * 365 * 24 * 3600);
    let machine = TestMachine::valid(
        "expired-1",
        KeyAlgorithm::Ed25519,
        two_years_ago,
        Duration::from_secs(24 * 3600),
    );
    let token = server.enrolment_token("expired-1");
    assert_eq!(machine.enroll(&server, Some(&token)).0, 200);
    let token = machine.challenge(&server);
    refused(
        server.post("/v1/session", &machine.answer(&token), None),
        403,
        "certificate-expired",
    );
}

#[test]
fn malformed_and_oversized_bodies_are_refused() {
    let server = Server::shared();
    refused(
        server.post_raw("/v1/challenge", b"{\"machine\":".to_vec(), None),
        400,
        "invalid-body",
    );
    let (status, answer) = server.post(
        "/v1/challenge",
        &json!({"machine": "ws-1", "extra": 1}),
        None,
    );
    refused((status, answer.clone()), 400, "invalid-body");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("/extra")),
        "{answer}"
    );
    // A caller without a session sends at most 64 KiB; a body somewhat
    // over it is read and refused with an answer.
    let huge = vec![b' '; 100 << 10];
    refused(
        server.post_raw("/v1/challenge", huge, None),
        413,
        "body-too-large",
    );
}

#[test]
fn a_component_or_payload_outside_the_roles_is_refused() {
    let server = Server::shared();
    let machine = approved(&server, "enduser-1", KeyAlgorithm::Ed25519, &["end-user"]);
    let session = machine.session(&server);
    refused(
        server.get_json("/v1/suites/domino/components/domino-admin", Some(&session)),
        403,
        "forbidden-suite",
    );
    refused(
        server.get_json(
            "/v1/suites/domino/components/notes-designer",
            Some(&session),
        ),
        403,
        "forbidden-suite",
    );
    // The developer-only SDK payload.
    let sdk = "d1b6bd48d1c3a2523029aac8676904c97c4333bb5980bb5061f91b9b59d2faf3";
    let (status, _, body) = server.get(&format!("/v1/payloads/{sdk}"), Some(&session), None);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    refused(
        server.get_json("/v1/suites/no-such-suite", Some(&session)),
        404,
        "not-found",
    );
    refused(server.get_json("/v1/suites", None), 401, "unauthorized");
}

#[test]
fn path_tricks_in_payload_digests_are_refused() {
    let server = Server::shared();
    let machine = approved(&server, "tricks-1", KeyAlgorithm::EcdsaP256, &["developer"]);
    let session = machine.session(&server);
    let sdk = "d1b6bd48d1c3a2523029aac8676904c97c4333bb5980bb5061f91b9b59d2faf3";
    for path in [
        "/v1/payloads/..%2F..%2Ftoken-secret".to_owned(),
        format!("/v1/payloads/..%2F{}", &sdk[3..]),
        "/v1/payloads/d1b6".to_owned(),
        format!("/v1/payloads/{}", sdk.to_uppercase()),
    ] {
        let (status, _, body) = server.get(&path, Some(&session), None);
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(
            (status, &answer["error"]),
            (404, &json!("not-found")),
            "{path}: {answer}"
        );
    }
    assert_eq!(
        server
            .get(&format!("/v1/payloads/{sdk}"), Some(&session), None)
            .0,
        200
    );
}

#[test]
fn an_expired_challenge_is_refused() {
    // A roleoutd of its own whose challenges expire as they are made.
    let server = Server::start(&["--challenge-ttl", "0"]);
    let machine = approved(&server, "late-1", KeyAlgorithm::Ed25519, &[]);
    let token = machine.challenge(&server);
    refused(
        server.post("/v1/session", &machine.answer(&token), None),
        401,
        "expired-challenge",
    );
}

/// Runs `roleout-admin --url URL --base-dn BASE ARGS... -c SCRIPT`
/// against the slapd `local` as root (SASL EXTERNAL over ldapi).
fn admin_over_ldapi(
    local_url: &str,
    base: &str,
    args: &[&str],
    script: &str,
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_roleout-admin"))
        .args(["--url", local_url, "--base-dn", base])
        .args(args)
        .args(["-c", script])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("roleout-admin runs")
}

#[test]
fn machines_kept_in_the_organisations_own_ou_enrol_and_are_approved_there() {
    use std::io::Write as _;
    let local = roleout_directory::LocalDirectory::temporary().expect("slapd starts");
    let url = local.ldapi_url();
    let base = local.base();
    let mut ldapadd = std::process::Command::new("ldapadd")
        .args(["-Q", "-Y", "EXTERNAL", "-H", &url])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ldapadd runs");
    ldapadd
        .stdin
        .take()
        .expect("its input")
        .write_all(
            b"dn: ou=Computers,dc=example,dc=org\nobjectClass: organizationalUnit\nou: Computers\n\n\
              dn: cn=ws-7,ou=Computers,dc=example,dc=org\nobjectClass: device\ncn: ws-7\n",
        )
        .expect("the LDIF");
    assert!(ldapadd.wait().expect("ldapadd ends").success());
    let scope = [
        "--machine-base",
        "ou=Computers,dc=example,dc=org",
        "--machine-filter",
        "(objectClass=device)",
    ];
    let server = Server::start_on(local, &scope);

    // roleoutd finds the computer where the organisation keeps it.
    let machine = TestMachine::new("ws-7", KeyAlgorithm::Ed25519);
    let (status, answer) = machine.enroll(&server, None);
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("pending")),
        "{answer}\n{}",
        server.log()
    );

    // The shell without the scope does not see it; with it, shows and
    // approves it in place.
    let unscoped = admin_over_ldapi(&url, &base, &[], "approve ws-7");
    assert_ne!(unscoped.status.code(), Some(0));
    let scoped = admin_over_ldapi(&url, &base, &scope, "show /machines/ws-7; approve ws-7");
    let stdout = String::from_utf8_lossy(&scoped.stdout);
    assert_eq!(
        scoped.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&scoped.stderr)
    );
    assert!(
        stdout.contains("dn: cn=ws-7,ou=Computers,dc=example,dc=org"),
        "{stdout}"
    );
    machine.session(&server);
}

#[test]
fn report_history_is_trimmed_at_the_end_of_each_run() {
    let server = Server::start(&["--report-history-runs", "2"]);
    let machine = approved(&server, "history-1", KeyAlgorithm::Ed25519, &["developer"]);
    let session = machine.session(&server);
    let (status, value) = server.get_json("/v1/suites/domino", Some(&session));
    assert_eq!(status, 200, "{value}");
    let delivery: SuiteDelivery =
        serde_json::from_value(envelope(&server, "history-1", value).signed.payload).unwrap();
    let digest = delivery.build_digest.as_str();
    // Five runs, each reporting notes-client; the first also notes-help.
    for run in 1..=5 {
        let mut step = report(&format!("run{run}.notes-client.install.1.status"), digest);
        // Runs an hour apart, the last one just now (within the 90 days
        // kept by age).
        let finished = SystemTime::now() - Duration::from_secs((6 - run) * 3600);
        let at = |time: SystemTime| {
            roleout_model::protocol::Timestamp::from_system_time(time)
                .expect("a time")
                .to_string()
        };
        step["finished-at"] = json!(at(finished));
        step["started-at"] = json!(at(finished - Duration::from_secs(1)));
        let (status, ack) = server.post("/v1/reports", &step, Some(&session));
        assert_eq!(status, 200, "{ack}");
        if run == 1 {
            let mut help = step.clone();
            help["id"] = json!("run1.notes-help.install.1.status");
            help["component"] = json!("notes-help");
            let (status, ack) = server.post("/v1/reports", &help, Some(&session));
            assert_eq!(status, 200, "{ack}");
        }
        let complete = json!({"id": format!("run{run}.complete"), "suite": "domino",
            "build-digest": digest,
            "summary": {"installed": 1, "skipped": 0, "failed": 0, "blocked": 0, "reboot-required": false}});
        let (status, close) = server.post("/v1/reports/complete", &complete, Some(&session));
        assert_eq!(status, 200, "{close}");
    }
    let mut kept: Vec<String> = server
        .block_on(
            server
                .directory
                .reports_for_machine(&machine_id("history-1")),
        )
        .expect("reports read back")
        .into_iter()
        .map(|report| report.id)
        .collect();
    kept.sort();
    // The newest two runs, and notes-help's only (so latest) report.
    assert_eq!(
        kept,
        [
            "run1.notes-help.install.1.status",
            "run4.notes-client.install.1.status",
            "run5.notes-client.install.1.status",
        ]
    );
}

#[test]
fn ambiguous_requests_are_refused_rather_than_guessed() {
    let server = Server::shared();
    let machine = approved(
        &server,
        "ambiguous-1",
        KeyAlgorithm::Ed25519,
        &["developer"],
    );
    let session = machine.session(&server);
    // The same key twice: which one a parser keeps differs.
    let (status, answer) = server.post_raw(
        "/v1/challenge",
        br#"{"machine":"ambiguous-1","machine":"other-1"}"#.to_vec(),
        None,
    );
    refused((status, answer.clone()), 400, "invalid-body");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("appears twice")),
        "{answer}"
    );
    // Two credentials.
    let response = server
        .agent
        .get(format!("{}/v1/suites", server.base_url))
        .header("Authorization", format!("Bearer {session}"))
        .header("Authorization", "Bearer forged")
        .call()
        .expect("roleoutd answers");
    assert_eq!(response.status().as_u16(), 401);
    // Report ids the directory cannot tell apart: the machine's mistake,
    // said as such, not a failure of roleoutd.
    let digest = "ab".repeat(32);
    let (status, ack) = server.post("/v1/reports", &report("Case-1", &digest), Some(&session));
    assert_eq!(status, 200, "{ack}");
    refused(
        server.post("/v1/reports", &report("case-1", &digest), Some(&session)),
        400,
        "invalid-body",
    );
}

#[test]
fn roleoutd_starts_again_after_a_kill_9_that_left_its_slapd_running() {
    let state = tempfile::tempdir().expect("a state folder");
    let start = || spawn_roleoutd(state.path(), &[]).0;
    let mut first = start();
    let orphan: i32 = std::fs::read_to_string(state.path().join("ldap/slapd.pid"))
        .expect("the managed slapd's pid")
        .trim()
        .parse()
        .expect("a pid");
    first.0.kill().expect("SIGKILL"); // roleoutd dies; its slapd does not
    first.0.wait().expect("reaped");
    assert!(std::path::Path::new(&format!("/proc/{orphan}")).exists());

    // The next roleoutd stops the orphan and starts its own slapd.
    let second = start();
    let running: i32 = std::fs::read_to_string(state.path().join("ldap/slapd.pid"))
        .expect("the new slapd's pid")
        .trim()
        .parse()
        .expect("a pid");
    assert_ne!(running, orphan);
    let stat = std::fs::read_to_string(format!("/proc/{orphan}/stat")).unwrap_or_default();
    let state_letter = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned));
    assert!(
        stat.is_empty() || state_letter.as_deref() == Some("Z"),
        "the orphaned slapd still runs: {stat}"
    );
    drop(second);
}

/// Starts roleoutd with `args` on the state folder `state` (a managed
/// slapd, a port of its own) and waits until it listens; returns it and
/// its address. The address file is taken away, so a later start on the
/// same folder is waited for anew.
fn spawn_roleoutd(state: &std::path::Path, args: &[&str]) -> (Roleoutd, String) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_roleoutd"))
        .arg("--state-dir")
        .arg(state)
        .args(["--listen", "127.0.0.1:0", "--log", "warn"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("roleoutd starts");
    let address = state.join("roleoutd.addr");
    let deadline = Instant::now() + Duration::from_secs(60);
    let listening = loop {
        if let Ok(text) = std::fs::read_to_string(&address)
            && text.ends_with('\n')
        {
            break text.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "roleoutd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::fs::remove_file(&address).expect("the address file");
    (Roleoutd(child), listening)
}

/// Starts roleoutd over plain HTTP with `args` on a state folder of its
/// own; returns it, the folder and its address.
fn plain_roleoutd(args: &[&str]) -> (Roleoutd, tempfile::TempDir, String) {
    let state = tempfile::tempdir().expect("a state folder");
    let mut all = vec!["--no-tls"];
    all.extend_from_slice(args);
    let (child, listening) = spawn_roleoutd(state.path(), &all);
    (child, state, listening)
}

/// Reads from `stream` until it is closed or `limit` passes; what came.
fn read_until_closed(stream: &mut std::net::TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    use std::io::Read as _;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");
    let deadline = Instant::now() + limit;
    let mut received = Vec::new();
    let mut buffer = [0_u8; 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => return (received, true),
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (received, true),
        }
    }
    (received, false)
}

#[test]
fn a_half_sent_request_is_cut_off_and_http2_is_not_spoken() {
    use std::io::Write as _;
    let (roleoutd, _state, address) = plain_roleoutd(&["--header-timeout", "1"]);
    // A request head that never ends: the connection is closed.
    let mut slow = std::net::TcpStream::connect(&address).expect("a connection");
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: roleoutd\r\nX-Slow: ")
        .expect("a partial head");
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(30));
    assert!(closed, "a half-sent request head kept its connection open");
    // The same on a kept-alive connection, after a whole first request.
    let mut kept = std::net::TcpStream::connect(&address).expect("a connection");
    kept.write_all(
        b"GET /v1/health HTTP/1.1\r\nHost: roleoutd\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: ",
    )
    .expect("a request and a half");
    let (answer, closed) = read_until_closed(&mut kept, Duration::from_secs(30));
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        closed,
        "a half-sent second request kept its connection open"
    );
    // An HTTP/2 client (prior knowledge) gets no HTTP/2 frame back.
    let mut h2 = std::net::TcpStream::connect(&address).expect("a connection");
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .expect("the HTTP/2 preface");
    let (answer, _) = read_until_closed(&mut h2, Duration::from_secs(30));
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 "),
        "roleoutd answered HTTP/2: {answer:?}"
    );
    // And it still serves.
    let mut fine = std::net::TcpStream::connect(&address).expect("a connection");
    fine.write_all(b"GET /v1/health HTTP/1.1\r\nHost: roleoutd\r\nConnection: close\r\n\r\n")
        .expect("a request");
    let (answer, _) = read_until_closed(&mut fine, Duration::from_secs(30));
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(roleoutd);
}

#[test]
fn approve_with_a_fingerprint_approves_only_that_key() {
    let server = Server::shared();
    let machine = TestMachine::new("finger-1", KeyAlgorithm::Ed25519);
    let (status, answer) = machine.enroll(&server, None);
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("pending")),
        "{answer}"
    );
    let held = roleout_model::ids::Sha256::of(&machine.certificate).to_string();
    // Another key's fingerprint: refused, nothing approved.
    let other = "00".repeat(32);
    let refused_approval = server
        .approve_key("finger-1", Some(&other))
        .expect_err("a wrong fingerprint is refused");
    assert!(
        refused_approval.0.contains("nothing approved"),
        "{}",
        refused_approval.0
    );
    assert!(!server.entry("finger-1").may_authenticate());
    // The machine's own: approved, and the key approved is printed.
    let printed = server
        .approve_key("finger-1", Some(&held))
        .expect("the right fingerprint");
    assert!(printed.contains(&held), "{printed}");
    machine.session(&server);
}

/// One HTTP/1.1 request over a plain connection; the answer's head and
/// body as text, read until roleoutd closes.
fn raw_request(address: &str, request: &[u8]) -> String {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(address).expect("a connection");
    stream.write_all(request).expect("the request");
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(30));
    String::from_utf8_lossy(&answer).into_owned()
}

/// Callers without a session share a budget of bodies being read (a
/// half-sent one holds its share; the next caller past the budget is told
/// to come back, 503 with Retry-After, and served once it is free), and
/// enrolments from one address are limited (429 with Retry-After).
#[test]
fn callers_without_a_session_share_a_budget_and_enrolments_are_limited() {
    use std::io::Write as _;
    let (roleoutd, _state, address) = plain_roleoutd(&[
        "--unauthenticated-budget-kib",
        "64",
        "--enrolments-per-minute",
        "2",
    ]);
    let challenge = |close: &str| {
        format!(
            "POST /v1/challenge HTTP/1.1\r\nHost: roleoutd\r\nContent-Type: application/json\r\nContent-Length: 18\r\n{close}\r\n{{\"machine\":\"pc-1\"}}"
        )
    };
    // A body that stops arriving holds the whole budget...
    let mut held = std::net::TcpStream::connect(&address).expect("a connection");
    held.write_all(
        b"POST /v1/challenge HTTP/1.1\r\nHost: roleoutd\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"machine\":",
    )
    .expect("half a request");
    std::thread::sleep(Duration::from_millis(300));
    let busy = raw_request(&address, challenge("Connection: close\r\n").as_bytes());
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(
        busy.to_ascii_lowercase().contains("retry-after: 2"),
        "{busy}"
    );
    assert!(busy.contains("\"unavailable\""), "{busy}");
    // ...until it is given up.
    drop(held);
    let mut answered = String::new();
    for _ in 0..50 {
        answered = raw_request(&address, challenge("Connection: close\r\n").as_bytes());
        if answered.starts_with("HTTP/1.1 200") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    // Two enrolments a minute from this address; the third is refused
    // before its body is read.
    let enrol = "POST /v1/enroll HTTP/1.1\r\nHost: roleoutd\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    for _ in 0..2 {
        let answer = raw_request(&address, enrol.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let limited = raw_request(&address, enrol.as_bytes());
    assert!(limited.starts_with("HTTP/1.1 429"), "{limited}");
    assert!(
        limited.to_ascii_lowercase().contains("retry-after: "),
        "{limited}"
    );
    assert!(limited.contains("\"too-many-requests\""), "{limited}");
    drop(roleoutd);
}

/// Reports from one machine are limited: a burst of eight minutes' worth,
/// then 429 with Retry-After; another machine is not held back by it.
#[test]
fn reports_past_a_machines_rate_are_told_to_come_back() {
    let server = Server::start(&["--reports-per-minute", "1"]);
    let busy = approved(&server, "chatty-1", KeyAlgorithm::Ed25519, &["end-user"]);
    let quiet = approved(&server, "quiet-1", KeyAlgorithm::Ed25519, &["end-user"]);
    let busy_session = busy.session(&server);
    let digest = "0".repeat(64);
    for index in 0..8 {
        let (status, ack) = server.post(
            "/v1/reports",
            &report(&format!("chatty-{index}"), &digest),
            Some(&busy_session),
        );
        assert_eq!(status, 200, "{ack}");
    }
    let body = serde_json::to_vec(&report("chatty-8", &digest)).unwrap();
    let response = server
        .agent
        .post(format!("{}/v1/reports", server.base_url))
        .header("Authorization", format!("Bearer {busy_session}"))
        .header("Content-Type", "application/json")
        .send(&body[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let quiet_session = quiet.session(&server);
    let (status, ack) = server.post(
        "/v1/reports",
        &report("quiet-0", &digest),
        Some(&quiet_session),
    );
    assert_eq!(status, 200, "{ack}");
}
