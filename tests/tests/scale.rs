//! Several roleoutd of one installation: nothing that must be used once
//! lives in one process's memory. A machine's answer to a challenge,
//! accepted by one roleoutd, is refused by another (the nonce is claimed
//! in the directory they share). Agents given several roleoutd go on with
//! the next when one is down.

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

use std::sync::Arc;
use std::time::Duration;

use roleout_model::ids::MachineId;
use roleout_model::keys::MachineKey;
use roleout_model::protocol::{Base64Bytes, ChallengeResponse, SessionRequest};
use roleout_tests::World;

/// An HTTPS client trusting only the installation's certificate.
fn client(world: &World) -> ureq::Agent {
    let pem = std::fs::read(world.server_state.join("tls/cert.pem")).unwrap();
    let certificate = ureq::tls::Certificate::from_pem(&pem).unwrap().to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![certificate])))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

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
    let agent = client(&world);
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

#[test]
fn an_agent_given_several_roleoutd_goes_on_with_the_next_when_one_is_down() {
    let mut world = World::start();
    // A second roleoutd with a content store of its own, which brings the
    // payloads it lacks from the first.
    let peer = world.start_engine("b");
    // One machine lists the first roleoutd first, the other the peer.
    let first = world.enroll_with("ws-first", "end-user", &["--server", &peer.url]);
    let enrolment = std::fs::read_to_string(first.state.join("enrolment.json")).unwrap();
    assert!(enrolment.contains(&peer.url), "{enrolment}");
    let second = world.enroll_with("ws-second", "end-user", &[]);
    let second_enrolment = second.state.join("enrolment.json");
    let text = std::fs::read_to_string(&second_enrolment).unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
    record["fallbacks"] = serde_json::json!([record["server"].clone()]);
    record["server"] = serde_json::json!(peer.url);
    std::fs::write(&second_enrolment, record.to_string()).unwrap();

    // The peer serves the second machine, bringing the payloads it lacks.
    let run = world.install(&second);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let log = peer.log_text();
    assert!(log.contains("payload fetched from upstream"), "{log}");

    // The first roleoutd dies: the first machine's run is served by the
    // peer, from what it holds.
    world.kill_roleoutd();
    let run = world.install(&first);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(run.installed("jre"), "{}", run.transcript());
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
