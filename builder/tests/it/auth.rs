//! Authentication and signed metadata, end to end with real keys: machine
//! key pairs and certificates made as the installer makes them (Ed25519 and
//! ECDSA P-256), real signatures, real key files. Each attack the design
//! names is tried and must be refused for its own reason; the happy paths
//! must pass for both algorithms.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair};
use roleout_model::ids::{MachineId, Sha256};
use roleout_model::keys::{
    DEFAULT_CERTIFICATE_VALIDITY, KeyAlgorithm, MachineKey, challenge_message, generate_identity,
};
use roleout_model::protocol::signing::{
    AcceptedSerial, BuilderKey, EnvelopeError, sign_envelope, verify_and_accept, verify_envelope,
};
use roleout_model::protocol::{
    Base64Bytes, SignedContent, SignedEnvelope, SuiteList, SuiteListEntry, Timestamp,
};
use roleout_store::keys::{read_private_key, write_private_key};
use serde_json::json;

use roleout_builder::auth::certificate::{
    CertificateError, RegisteredMachine, verify_machine_signature,
};
use roleout_builder::auth::challenge::{ChallengeError, Nonce, issue_challenge};
use roleout_builder::auth::nonce::{NonceCache, NonceStore, ReplayError};
use roleout_builder::auth::session::{SessionError, issue_session};
use roleout_builder::auth::token::{ServerSecret, TokenError};
use roleout_builder::auth::{AuthError, Authenticator};

const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
const ROLE_KEY: &str = "developer+end-user";

fn machine(name: &str) -> MachineId {
    MachineId::new(name).expect("test machine names are valid")
}

fn secret() -> ServerSecret {
    ServerSecret::from_bytes(&ServerSecret::generate_bytes().expect("randomness"))
        .expect("a generated secret is long enough")
}

fn authenticator() -> Authenticator {
    Authenticator::new(secret(), NonceCache::new(1000))
}

/// A machine as enrolment leaves it: its private key, and its directory
/// entry holding the certificate, enabled and approved.
fn enrolled(
    name: &str,
    algorithm: KeyAlgorithm,
    valid_from: SystemTime,
    valid_for: Duration,
) -> (MachineKey, RegisteredMachine) {
    let identity =
        generate_identity(&machine(name), algorithm, valid_from, valid_for).expect("identity");
    let registered = RegisteredMachine {
        certificate_der: identity.certificate_der().to_vec(),
        enabled: true,
        approved: true,
    };
    (identity.signing_key().expect("key loads"), registered)
}

fn enrolled_now(name: &str, algorithm: KeyAlgorithm) -> (MachineKey, RegisteredMachine) {
    enrolled(
        name,
        algorithm,
        SystemTime::now(),
        DEFAULT_CERTIFICATE_VALIDITY,
    )
}

/// Replaces the payload part of a token, keeping its MAC.
fn with_payload(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let (payload, mac) = token.split_once('.').expect("token shape");
    let mut value: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    edit(&mut value);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&value).expect("json"));
    format!("{payload}.{mac}")
}

#[test]
fn both_algorithms_authenticate_and_get_a_session() {
    for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
        let authenticator = authenticator();
        let ws = machine("ws-0001");
        let (key, registered) = enrolled_now("ws-0001", algorithm);
        let now = SystemTime::now();

        let issued = authenticator.issue_challenge(&ws, now).expect("challenge");
        assert_eq!(issued.challenge.machine, ws);
        let signature = key.sign_challenge(&issued.token).expect("sign");
        let answered = now + Duration::from_secs(5);
        let session = authenticator
            .authenticate(
                &ws,
                &issued.token,
                &signature,
                &registered,
                ROLE_KEY,
                answered,
            )
            .unwrap_or_else(|error| panic!("{algorithm}: {error}"));
        assert_eq!(session.session.machine, ws);
        assert_eq!(session.session.role_key, ROLE_KEY);
        assert_eq!(session.session.expires_at - session.session.issued_at, 600);

        let checked = authenticator
            .verify_session(&session.token, answered + Duration::from_secs(60))
            .expect("session verifies");
        assert_eq!(checked, session.session);
    }
}

#[test]
fn a_replayed_answer_is_refused() {
    let authenticator = authenticator();
    let ws = machine("ws-replay");
    let (key, registered) = enrolled_now("ws-replay", KeyAlgorithm::Ed25519);
    let now = SystemTime::now();
    let issued = authenticator.issue_challenge(&ws, now).expect("challenge");
    let signature = key.sign_challenge(&issued.token).expect("sign");
    authenticator
        .authenticate(&ws, &issued.token, &signature, &registered, ROLE_KEY, now)
        .expect("first answer");
    let error = authenticator
        .authenticate(&ws, &issued.token, &signature, &registered, ROLE_KEY, now)
        .expect_err("the same answer twice");
    assert!(
        matches!(&error, AuthError::Replay(ReplayError::Replayed { machine, nonce })
            if *machine == ws && *nonce == issued.challenge.nonce),
        "{error}"
    );
    assert!(error.to_string().contains("already used"), "{error}");
}

#[test]
fn a_bad_signature_does_not_use_up_the_machines_challenge() {
    let authenticator = authenticator();
    let ws = machine("ws-burn");
    let (key, registered) = enrolled_now("ws-burn", KeyAlgorithm::Ed25519);
    let (intruder_key, _) = enrolled_now("ws-burn", KeyAlgorithm::Ed25519);
    let now = SystemTime::now();
    let issued = authenticator.issue_challenge(&ws, now).expect("challenge");

    let forged = intruder_key.sign_challenge(&issued.token).expect("sign");
    let error = authenticator
        .authenticate(&ws, &issued.token, &forged, &registered, ROLE_KEY, now)
        .expect_err("another key");
    assert!(
        matches!(
            error,
            AuthError::Certificate(CertificateError::BadSignature)
        ),
        "{error}"
    );
    let signature = key.sign_challenge(&issued.token).expect("sign");
    authenticator
        .authenticate(&ws, &issued.token, &signature, &registered, ROLE_KEY, now)
        .expect("the real machine still gets in");
}

#[test]
fn an_expired_challenge_is_refused() {
    let authenticator = authenticator().with_challenge_lifetime(Duration::from_secs(30));
    let ws = machine("ws-slow");
    let (key, registered) = enrolled_now("ws-slow", KeyAlgorithm::EcdsaP256);
    let now = SystemTime::now();
    let issued = authenticator.issue_challenge(&ws, now).expect("challenge");
    let signature = key.sign_challenge(&issued.token).expect("sign");
    let late = now + Duration::from_secs(31);
    let error = authenticator
        .authenticate(&ws, &issued.token, &signature, &registered, ROLE_KEY, late)
        .expect_err("expired");
    assert!(
        matches!(error, AuthError::Challenge(ChallengeError::Expired { .. })),
        "{error}"
    );
}

#[test]
fn a_challenge_issued_to_another_machine_is_refused() {
    let authenticator = authenticator();
    let (other_key, _) = enrolled_now("ws-other", KeyAlgorithm::Ed25519);
    let (_, registered) = enrolled_now("ws-victim", KeyAlgorithm::Ed25519);
    let now = SystemTime::now();
    // ws-other gets a challenge, signs it, and presents it as ws-victim.
    let issued = authenticator
        .issue_challenge(&machine("ws-other"), now)
        .expect("challenge");
    let signature = other_key.sign_challenge(&issued.token).expect("sign");
    let error = authenticator
        .authenticate(
            &machine("ws-victim"),
            &issued.token,
            &signature,
            &registered,
            ROLE_KEY,
            now,
        )
        .expect_err("another machine's challenge");
    assert!(
        matches!(&error, AuthError::Challenge(ChallengeError::OtherMachine { issued_to, presented_by })
            if issued_to.as_str() == "ws-other" && presented_by.as_str() == "ws-victim"),
        "{error}"
    );
}

#[test]
fn a_tampered_challenge_token_is_refused() {
    let authenticator = authenticator();
    let ws = machine("ws-tamper");
    let (key, registered) = enrolled_now("ws-tamper", KeyAlgorithm::Ed25519);
    let now = SystemTime::now();
    let issued = authenticator.issue_challenge(&ws, now).expect("challenge");

    // The machine stretches its own challenge's expiry and signs the result.
    let stretched = with_payload(&issued.token, |payload| {
        payload["expires-at"] = json!(u64::MAX / 2);
    });
    // Or flips a bit of the MAC.
    let (payload, mac) = issued.token.split_once('.').expect("token shape");
    let mut mac = URL_SAFE_NO_PAD.decode(mac).expect("base64");
    mac[0] ^= 1;
    let flipped = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&mac));
    // Or brings a token made by another site's roleoutd.
    let foreign = issue_challenge(&secret(), &ws, now, Duration::from_secs(60))
        .expect("challenge")
        .token;
    // Or presents a session token, also made with this secret, as a challenge.
    let session = authenticator
        .authenticate(
            &ws,
            &issued.token,
            &key.sign_challenge(&issued.token).expect("sign"),
            &registered,
            ROLE_KEY,
            now,
        )
        .expect("genuine answer")
        .token;

    for (what, token) in [
        ("payload", stretched),
        ("mac", flipped),
        ("foreign", foreign),
        ("session", session),
    ] {
        let signature = key.sign_challenge(&token).expect("sign");
        let error = authenticator
            .authenticate(&ws, &token, &signature, &registered, ROLE_KEY, now)
            .expect_err(what);
        assert!(
            matches!(
                error,
                AuthError::Challenge(ChallengeError::Token(TokenError::BadMac {
                    purpose: "challenge"
                }))
            ),
            "{what}: {error}"
        );
        // The refusal names what failed but never repeats the token.
        let (_, mac_text) = token.split_once('.').expect("token shape");
        assert!(!error.to_string().contains(mac_text), "{what}: {error}");
    }
}

#[test]
fn a_malformed_challenge_token_says_so() {
    let authenticator = authenticator();
    let ws = machine("ws-junk");
    let (key, registered) = enrolled_now("ws-junk", KeyAlgorithm::Ed25519);
    let signature = key.sign_challenge("junk").expect("sign");
    let error = authenticator
        .authenticate(
            &ws,
            "junk",
            &signature,
            &registered,
            ROLE_KEY,
            SystemTime::now(),
        )
        .expect_err("junk");
    assert!(
        matches!(
            error,
            AuthError::Challenge(ChallengeError::Token(TokenError::Malformed { .. }))
        ),
        "{error}"
    );
}

#[test]
fn a_signature_by_another_key_is_refused() {
    for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
        let authenticator = authenticator();
        let ws = machine("ws-0002");
        let (_, registered) = enrolled_now("ws-0002", algorithm);
        // A key of the same algorithm with a certificate for the same name,
        // but not the one registered in the directory.
        let (intruder_key, _) = enrolled_now("ws-0002", algorithm);
        let now = SystemTime::now();
        let issued = authenticator.issue_challenge(&ws, now).expect("challenge");
        let signature = intruder_key.sign_challenge(&issued.token).expect("sign");
        let error = authenticator
            .authenticate(&ws, &issued.token, &signature, &registered, ROLE_KEY, now)
            .expect_err("intruder");
        assert!(
            matches!(
                error,
                AuthError::Certificate(CertificateError::BadSignature)
            ),
            "{algorithm}: {error}"
        );
    }
}

#[test]
fn a_signature_over_another_message_is_refused() {
    for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
        let authenticator = authenticator();
        let ws = machine("ws-0003");
        let (key, registered) = enrolled_now("ws-0003", algorithm);
        let now = SystemTime::now();
        let issued = authenticator.issue_challenge(&ws, now).expect("challenge");
        let earlier = authenticator.issue_challenge(&ws, now).expect("challenge");

        let wrong_messages = [
            // The token without the domain-separation prefix.
            issued.token.as_bytes().to_vec(),
            // Another challenge of the same machine.
            challenge_message(&earlier.token),
            // Something else entirely.
            b"roleout-envelope-v2\0{}".to_vec(),
        ];
        for message in wrong_messages {
            let signature = key.sign(&message).expect("sign");
            let error = authenticator
                .authenticate(&ws, &issued.token, &signature, &registered, ROLE_KEY, now)
                .expect_err("wrong message");
            assert!(
                matches!(
                    error,
                    AuthError::Certificate(CertificateError::BadSignature)
                ),
                "{algorithm}: {error}"
            );
        }
    }
}

#[test]
fn certificates_outside_their_dates_are_refused() {
    let now = SystemTime::now();
    let authenticator = authenticator();
    let ws = machine("ws-dates");

    let (key, expired) = enrolled("ws-dates", KeyAlgorithm::Ed25519, now - 2 * YEAR, YEAR);
    let issued = authenticator.issue_challenge(&ws, now).expect("challenge");
    let signature = key.sign_challenge(&issued.token).expect("sign");
    let error = authenticator
        .authenticate(&ws, &issued.token, &signature, &expired, ROLE_KEY, now)
        .expect_err("expired certificate");
    assert!(
        matches!(
            error,
            AuthError::Certificate(CertificateError::Expired { .. })
        ),
        "{error}"
    );
    assert!(error.to_string().contains("expired on"), "{error}");

    let (key, future) = enrolled(
        "ws-dates",
        KeyAlgorithm::EcdsaP256,
        now + Duration::from_secs(24 * 60 * 60),
        YEAR,
    );
    let issued = authenticator.issue_challenge(&ws, now).expect("challenge");
    let signature = key.sign_challenge(&issued.token).expect("sign");
    let error = authenticator
        .authenticate(&ws, &issued.token, &signature, &future, ROLE_KEY, now)
        .expect_err("certificate not valid yet");
    assert!(
        matches!(
            error,
            AuthError::Certificate(CertificateError::NotYetValid { .. })
        ),
        "{error}"
    );
}

#[test]
fn disabled_or_unapproved_machines_are_refused() {
    let authenticator = authenticator();
    let ws = machine("ws-flags");
    let (key, registered) = enrolled_now("ws-flags", KeyAlgorithm::Ed25519);
    let now = SystemTime::now();
    let cases = [
        (false, true, CertificateError::Disabled),
        (true, false, CertificateError::NotApproved),
        (false, false, CertificateError::Disabled),
    ];
    for (enabled, approved, expected) in cases {
        let entry = RegisteredMachine {
            enabled,
            approved,
            ..registered.clone()
        };
        let issued = authenticator.issue_challenge(&ws, now).expect("challenge");
        let signature = key.sign_challenge(&issued.token).expect("sign");
        let error = authenticator
            .authenticate(&ws, &issued.token, &signature, &entry, ROLE_KEY, now)
            .expect_err("flags");
        assert!(
            matches!(&error, AuthError::Certificate(found) if *found == expected),
            "enabled={enabled} approved={approved}: {error}"
        );
    }
}

#[test]
fn a_p384_key_is_refused_by_name() {
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384 key");
    let certificate = rcgen::CertificateParams::new(vec!["ws-p384".to_owned()])
        .expect("params")
        .self_signed(&key_pair)
        .expect("certificate");
    let registered = RegisteredMachine {
        certificate_der: certificate.der().to_vec(),
        enabled: true,
        approved: true,
    };
    let signer = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P384_SHA384_ASN1_SIGNING,
        &key_pair.serialize_der(),
        &SystemRandom::new(),
    )
    .expect("ring loads the P-384 key");
    let authenticator = authenticator();
    let ws = machine("ws-p384");
    let now = SystemTime::now();
    let issued = authenticator.issue_challenge(&ws, now).expect("challenge");
    let signature = signer
        .sign(&SystemRandom::new(), &challenge_message(&issued.token))
        .expect("sign");
    let error = authenticator
        .authenticate(
            &ws,
            &issued.token,
            signature.as_ref(),
            &registered,
            ROLE_KEY,
            now,
        )
        .expect_err("P-384");
    assert!(
        matches!(&error, AuthError::Certificate(CertificateError::UnsupportedCurve { curve })
            if curve == "1.3.132.0.34"),
        "{error}"
    );
}

#[test]
fn an_ed25519_certificate_does_not_verify_a_p256_signature() {
    // The algorithm comes from the registered certificate, never from the
    // request: a P-256 signature checked against an Ed25519 key fails.
    let (p256_key, _) = enrolled_now("ws-mix", KeyAlgorithm::EcdsaP256);
    let (_, ed25519_entry) = enrolled_now("ws-mix", KeyAlgorithm::Ed25519);
    let message = challenge_message("token");
    let signature = p256_key.sign(&message).expect("sign");
    let error = verify_machine_signature(&ed25519_entry, &message, &signature, SystemTime::now())
        .expect_err("mixed algorithms");
    assert_eq!(error, CertificateError::BadSignature);
}

#[test]
fn sessions_expire_and_cannot_be_forged() {
    let authenticator = authenticator().with_session_lifetime(Duration::from_secs(600));
    let ws = machine("ws-session");
    let (key, registered) = enrolled_now("ws-session", KeyAlgorithm::Ed25519);
    let now = SystemTime::now();
    let issued = authenticator.issue_challenge(&ws, now).expect("challenge");
    let signature = key.sign_challenge(&issued.token).expect("sign");
    let session = authenticator
        .authenticate(&ws, &issued.token, &signature, &registered, ROLE_KEY, now)
        .expect("session");

    let error = authenticator
        .verify_session(&session.token, now + Duration::from_secs(600))
        .expect_err("expired session");
    assert!(
        matches!(error, AuthError::Session(SessionError::Expired { .. })),
        "{error}"
    );

    let promoted = with_payload(&session.token, |payload| {
        payload["role-key"] = json!("administrator");
    });
    let foreign = issue_session(&secret(), &ws, ROLE_KEY, now, Duration::from_secs(600))
        .expect("session")
        .token;
    for (what, token) in [
        ("promoted", promoted),
        ("foreign", foreign),
        ("challenge", issued.token),
    ] {
        let error = authenticator.verify_session(&token, now).expect_err(what);
        assert!(
            matches!(
                error,
                AuthError::Session(SessionError::Token(TokenError::BadMac {
                    purpose: "session"
                }))
            ),
            "{what}: {error}"
        );
    }
}

#[test]
fn concurrent_claims_of_one_nonce_let_exactly_one_through() {
    let cache = Arc::new(NonceCache::new(100));
    let nonce = Nonce::generate().expect("nonce");
    let ws = machine("ws-race");
    let expires_at = roleout_model::keys::unix_seconds(SystemTime::now()) + 60;
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (cache, barrier, ws) = (Arc::clone(&cache), Arc::clone(&barrier), ws.clone());
            thread::spawn(move || {
                barrier.wait();
                cache.claim(&ws, &nonce, expires_at, SystemTime::now())
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|handle| handle.join().expect("thread"))
        .collect();
    assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|result| result.as_ref().err())
            .all(|error| matches!(error, ReplayError::Replayed { .. }))
    );
}

#[test]
fn key_files_are_0600_and_load_back() {
    let directory = tempfile::tempdir().expect("tempdir");
    let now = SystemTime::now();
    for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
        let identity = generate_identity(
            &machine("ws-file"),
            algorithm,
            now,
            DEFAULT_CERTIFICATE_VALIDITY,
        )
        .expect("identity");
        let path = directory.path().join(format!("{algorithm}.key"));
        write_private_key(&path, identity.private_key_pkcs8()).expect("write");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{algorithm}");

        // The key read back from the file signs what the registered
        // certificate verifies.
        let key = roleout_store::keys::read_machine_key(&path).expect("read");
        let registered = RegisteredMachine {
            certificate_der: identity.certificate_der().to_vec(),
            enabled: true,
            approved: true,
        };
        let message = challenge_message("token");
        let signature = key.sign(&message).expect("sign");
        verify_machine_signature(&registered, &message, &signature, now).expect("verifies");
    }

    // The builder's envelope key and the server secret use the same files.
    let builder_path = directory.path().join("builder.key");
    write_private_key(&builder_path, &BuilderKey::generate_pkcs8().expect("key")).expect("write");
    let mode = fs::metadata(&builder_path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o600);
    BuilderKey::from_pkcs8(&read_private_key(&builder_path).expect("read")).expect("load");

    let secret_path = directory.path().join("server.secret");
    ServerSecret::write(
        &secret_path,
        &ServerSecret::generate_bytes().expect("secret"),
    )
    .expect("write");
    fs::set_permissions(&secret_path, fs::Permissions::from_mode(0o640)).expect("chmod");
    let error = ServerSecret::read(&secret_path).expect_err("readable by group");
    assert!(error.to_string().contains("mode 0640"), "{error}");
}

// Signed envelopes.

struct Signer {
    key: BuilderKey,
    now: SystemTime,
}

impl Signer {
    fn new() -> Self {
        Self {
            key: BuilderKey::from_pkcs8(&BuilderKey::generate_pkcs8().expect("key")).expect("load"),
            now: SystemTime::now(),
        }
    }

    fn sign(&self, for_machine: &str, serial: u64, digest_byte: u8) -> SignedEnvelope {
        self.sign_listing(for_machine, serial, digest_byte, digest_byte)
    }

    /// An envelope whose build digest is made of `digest_byte` and whose
    /// payload lists a build made of `listed_byte`.
    fn sign_listing(
        &self,
        for_machine: &str,
        serial: u64,
        digest_byte: u8,
        listed_byte: u8,
    ) -> SignedEnvelope {
        let list = SuiteList {
            suites: vec![SuiteListEntry {
                id: "office".parse().expect("suite id"),
                version: "1.0".parse().expect("version"),
                build_digest: Sha256::from_bytes(&[listed_byte; 32]),
            }],
        };
        let expires_at = Timestamp::from_system_time(self.now + Duration::from_secs(3600))
            .expect("a time before 9999");
        let content = SignedContent::new(
            &list,
            machine(for_machine),
            ROLE_KEY,
            Some(Sha256::from_bytes(&[digest_byte; 32])),
            serial,
            expires_at,
        )
        .expect("content");
        sign_envelope(&self.key, content).expect("sign")
    }

    fn accept<'envelope>(
        &self,
        envelope: &'envelope SignedEnvelope,
        last: Option<&AcceptedSerial>,
    ) -> Result<(&'envelope SignedContent, AcceptedSerial), EnvelopeError> {
        verify_and_accept(
            envelope,
            &self.key.public_key(),
            &machine("ws-1"),
            last,
            self.now,
        )
    }

    fn verify<'envelope>(
        &self,
        envelope: &'envelope SignedEnvelope,
        last: Option<&AcceptedSerial>,
    ) -> Result<&'envelope SignedContent, EnvelopeError> {
        verify_envelope(
            envelope,
            &self.key.public_key(),
            &machine("ws-1"),
            last,
            self.now,
        )
    }
}

#[test]
fn a_genuine_envelope_verifies_and_a_repeat_of_its_serial_is_accepted() {
    let signer = Signer::new();
    let envelope = signer.sign("ws-1", 5, 1);
    let signed = signer.verify(&envelope, None).expect("verifies");
    let list: SuiteList = signed.payload().expect("a suite list");
    assert_eq!(list.suites[0].id.as_str(), "office");
    assert_eq!(signed.roles, ROLE_KEY);
    let accepted = AcceptedSerial::of(signed);
    // The same build fetched again, and a newer one, are both fine.
    signer
        .verify(&envelope, Some(&accepted))
        .expect("same serial, same build");
    signer
        .verify(&signer.sign("ws-1", 6, 2), Some(&accepted))
        .expect("newer serial");
}

#[test]
fn a_tampered_envelope_is_refused() {
    let signer = Signer::new();
    let genuine = signer.sign("ws-1", 5, 1);
    let mut payload_changed = genuine.clone();
    payload_changed.signed.payload["suites"][0]["id"] = json!("backdoor");
    let mut serial_raised = genuine.clone();
    serial_raised.signed.serial = 99;
    let mut expiry_stretched = genuine.clone();
    expiry_stretched.signed.expires_at =
        Timestamp::from_system_time(signer.now + Duration::from_secs(1_000_000))
            .expect("a time before 9999");
    for (what, envelope) in [
        ("payload", payload_changed),
        ("serial", serial_raised),
        ("expiry", expiry_stretched),
    ] {
        let error = signer.verify(&envelope, None).expect_err(what);
        assert!(
            matches!(error, EnvelopeError::BadSignature),
            "{what}: {error}"
        );
    }
    let mut truncated = genuine;
    truncated.signature = Base64Bytes::new(&truncated.signature.as_bytes()[..10]);
    assert!(matches!(
        signer.verify(&truncated, None),
        Err(EnvelopeError::BadSignature)
    ));
}

#[test]
fn an_envelope_for_another_machine_is_refused() {
    let signer = Signer::new();
    let error = signer
        .verify(&signer.sign("ws-2", 5, 1), None)
        .expect_err("another machine");
    assert!(
        matches!(&error, EnvelopeError::OtherMachine { expected, found }
            if expected.as_str() == "ws-1" && found.as_str() == "ws-2"),
        "{error}"
    );
}

#[test]
fn rollback_and_a_reused_serial_are_refused() {
    let signer = Signer::new();
    let last = AcceptedSerial {
        serial: 5,
        build_digest: Some(Sha256::from_bytes(&[1; 32])),
        payload_digest: None,
    };
    let error = signer
        .verify(&signer.sign("ws-1", 4, 9), Some(&last))
        .expect_err("older serial");
    assert!(
        matches!(
            error,
            EnvelopeError::Rollback {
                serial: 4,
                last_accepted: 5
            }
        ),
        "{error}"
    );
    let error = signer
        .verify(&signer.sign("ws-1", 5, 2), Some(&last))
        .expect_err("same serial, other build");
    assert!(
        matches!(error, EnvelopeError::SerialReused { serial: 5, .. }),
        "{error}"
    );
}

#[test]
fn an_older_envelope_of_exactly_the_accepted_contents_is_accepted() {
    let signer = Signer::new();
    // roleoutd serves an envelope it signed earlier again while its
    // contents are unchanged; behind a load balancer, one instance's older
    // envelope may follow another's newer one.
    let older = signer.sign("ws-1", 5, 1);
    let newer = signer.sign("ws-1", 6, 1);
    let accepted = AcceptedSerial::of(signer.verify(&newer, None).expect("verifies"));
    let (_, recorded) = signer
        .accept(&older, Some(&accepted))
        .expect("the same contents under an older serial");
    // What is recorded never goes back.
    assert_eq!(recorded, accepted);
    let (_, older_recorded) = signer.accept(&older, None).expect("verifies");
    assert_eq!(
        signer
            .accept(&newer, Some(&older_recorded))
            .expect("verifies")
            .1
            .serial,
        6
    );

    // Older and different in any way is a rollback: another build, or the
    // same build with another payload.
    for (what, envelope) in [
        ("another build", signer.sign("ws-1", 5, 2)),
        ("another payload", signer.sign_listing("ws-1", 5, 1, 3)),
    ] {
        let error = signer.verify(&envelope, Some(&accepted)).expect_err(what);
        assert!(
            matches!(
                error,
                EnvelopeError::Rollback {
                    serial: 5,
                    last_accepted: 6
                }
            ),
            "{what}: {error}"
        );
    }
    // A record that kept no payload digest (an older installer's) is held
    // to the serial alone.
    let without_digest = AcceptedSerial {
        payload_digest: None,
        ..accepted
    };
    assert!(matches!(
        signer.verify(&older, Some(&without_digest)),
        Err(EnvelopeError::Rollback { .. })
    ));
}

#[test]
fn an_expired_envelope_is_refused() {
    let signer = Signer::new();
    let envelope = signer.sign("ws-1", 5, 1);
    let error = verify_envelope(
        &envelope,
        &signer.key.public_key(),
        &machine("ws-1"),
        None,
        signer.now + Duration::from_secs(3600),
    )
    .expect_err("expired");
    assert!(matches!(error, EnvelopeError::Expired { .. }), "{error}");
}

#[test]
fn an_envelope_signed_by_another_key_is_refused() {
    let signer = Signer::new();
    let impostor = Signer::new();
    // Honest about its key id: refused as another key.
    let envelope = impostor.sign("ws-1", 5, 1);
    let error = signer.verify(&envelope, None).expect_err("other key");
    assert!(matches!(error, EnvelopeError::WrongKey { .. }), "{error}");
    // Claiming the pinned key's id: the signature gives it away.
    let mut lying = envelope;
    lying.key_id = signer.key.public_key().key_id();
    let error = signer.verify(&lying, None).expect_err("lying key id");
    assert!(matches!(error, EnvelopeError::BadSignature), "{error}");
}
