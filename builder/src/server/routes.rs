//! The routes of the API (see `schemas/api/openapi.json`) and their
//! handlers: enrolment, authentication (blocks 1010-1020), serving (blocks
//! 1025-1050) and status (blocks 1070-1085).
//!
//! Every JSON body is read through [`read_body`] (the size limit, then
//! `Message::decode`: JSON, schema, type), so a bad body is refused the
//! same way on every route. Every refusal is an [`ApiError`].
//!
//! Authenticated routes check the machine's entry and roles as they are
//! now on every request, not as they were when the session began:
//! disabling a machine, withdrawing its approval or changing its roles
//! takes effect on its next request once roleoutd has heard of the change
//! (its [`ServingCache`](crate::server::cache::ServingCache) drops what a
//! change makes stale as the directory's change feed reports it; without
//! a feed, every request reads the directory).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use roleout_directory::catalog::CatalogError;
use roleout_directory::machines::{Enrolment, MachineEntry};
use roleout_model::ids::{MachineId, ProductId, Sha256, SuiteId};
use roleout_model::machine::Machine;
use roleout_model::protocol::signing::sign_message;
use roleout_model::protocol::{
    AckStatus, Base64Bytes, BuilderKeyAlgorithm, BuilderPublicKey, ChallengeRequest,
    ChallengeResponse, Close, ComponentDelivery, EnrollRequest, EnrollResponse, EnrolmentStatus,
    EnvelopeKind, EnvelopePayload, ErrorCode, Health, HealthStatus, MachineObject, Message,
    ReportAck, ReportStep, SessionRequest, SessionResponse, SignedContent, SignedEnvelope,
    StatusReport, SuiteComplete, SuiteList, SuiteListEntry, Timestamp, canonical_field,
};
use roleout_model::role::EffectiveRoles;
use tracing::{info, warn};

use crate::auth::AuthError;
use crate::auth::certificate::{CertificateError, RegisteredMachine};
use crate::auth::challenge::ChallengeError;
use crate::auth::nonce::ReplayError;
use crate::auth::session::{Session, SessionError};
use crate::build::BuildError;
use crate::content::{ContentStore, record_report};
use crate::server::cache::{CachedBuild, SignedHeader};
use crate::server::error::ApiError;
use crate::server::gate::{BODY_TIMEOUT, Refusal, UNAUTHENTICATED_MAX_BODY};
use crate::server::state::ServerState;

pub(crate) type Shared = State<Arc<ServerState>>;

/// How far past the body limit a body is still read before it is refused.
const DRAIN_FACTOR: usize = 4;

/// The router of every route, over `state`.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/trust", get(trust))
        .route("/v1/enroll", post(enroll))
        .route("/v1/challenge", post(challenge))
        .route("/v1/session", post(session))
        .route("/v1/suites", get(suite_list))
        .route("/v1/suites/{id}", get(suite))
        .route("/v1/suites/{id}/components/{product}", get(component))
        .route("/v1/payloads/{digest}", get(payload))
        .route("/v1/reports", post(report))
        .route("/v1/reports/complete", post(complete))
        .route("/v1/content/missing", post(crate::server::images::missing))
        .route(
            "/v1/content/{digest}",
            put(crate::server::images::put_content).get(crate::server::images::get_content),
        )
        .route("/v1/images", post(crate::server::images::store_image))
        .route("/v1/jobs/current", get(crate::server::jobs::current))
        .route("/v1/jobs/{job}/archive", get(crate::server::jobs::archive))
        .route(
            "/v1/jobs/{job}/progress",
            post(crate::server::jobs::progress),
        )
        .route("/metrics", get(crate::server::metrics::metrics))
        .merge(crate::ui::router())
        .fallback(not_found)
        // Bodies are limited by `read_body`, which answers with an
        // ErrorBody; axum's own limit would answer in plain text.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::server::metrics::track,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "There is no such route in this API.")
}

/// Reads a body of at most `max_body` bytes and decodes it as `T`.
pub(crate) async fn read_body<T: Message>(
    state: &ServerState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    read_body_within(state.max_body, headers, body).await
}

/// [`read_body`] for a caller without a session: a small body, read while
/// holding room in the budget all such callers share (503 with
/// `Retry-After` when it is spent).
async fn read_unauthenticated_body<T: Message>(
    state: &ServerState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let _room = state.gate.unauthenticated_body().map_err(gate_refusal)?;
    read_body_within(state.max_body.min(UNAUTHENTICATED_MAX_BODY), headers, body).await
}

/// The answer to a limit of the gate.
fn gate_refusal(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::TooMany { retry_after } => ApiError::retry_after(
            ErrorCode::TooManyRequests,
            format!("Too many requests; try again in {retry_after} s."),
            retry_after,
        ),
        Refusal::Busy { retry_after } => ApiError::retry_after(
            ErrorCode::Unavailable,
            format!("roleoutd is busy; try again in {retry_after} s."),
            retry_after,
        ),
    }
}

/// Reads and decodes a body of at most `max_body` bytes, which must arrive
/// within [`BODY_TIMEOUT`].
async fn read_body_within<T: Message>(
    max_body: usize,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("The request body is larger than the {max_body} bytes this route accepts."),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    // A body somewhat over the limit is read (and dropped) before the
    // refusal, so that a client still sending it gets the answer instead of
    // a broken connection; past DRAIN_FACTOR times the limit the
    // connection is cut.
    let drain_limit = max_body.saturating_mul(DRAIN_FACTOR);
    if declared.is_some_and(|length| length > drain_limit as u64) {
        return Err(too_large());
    }
    let bytes: Bytes = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, drain_limit))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidBody,
                format!(
                    "The request body did not arrive within {} s.",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|_| too_large())?;
    if bytes.len() > max_body {
        return Err(too_large());
    }
    T::decode(&bytes).map_err(|error| ApiError::invalid_body(&error))
}

/// `GET /v1/trust`: the endorsements of a key and certificate rotation
/// (see `crate::server::rotation`); public, every item is signed.
async fn trust(State(state): Shared) -> Response {
    let state_dir = state.state_dir.clone();
    match tokio::task::spawn_blocking(move || crate::server::rotation::announcement(&state_dir))
        .await
    {
        Ok(Ok(announcement)) => Json(announcement).into_response(),
        Ok(Err(error)) => ApiError::internal(format!("trust: {error:#}")).into_response(),
        Err(error) => ApiError::internal(format!("trust: {error}")).into_response(),
    }
}

async fn health() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

fn sha256(bytes: &[u8]) -> Sha256 {
    Sha256::of(bytes)
}

fn timestamp(unix_seconds: u64) -> Result<Timestamp, ApiError> {
    Timestamp::from_unix_seconds(unix_seconds)
        .ok_or_else(|| ApiError::internal("an expiry past the year 9999"))
}

pub(crate) fn directory_failed<E: std::fmt::Display + 'static>(error: E) -> ApiError {
    if let Some(answer) = unavailable(&error) {
        return answer;
    }
    ApiError::internal(format!("directory: {error}"))
}

/// How long a client waits before asking again while the directory is out
/// of reach.
const DIRECTORY_RETRY_SECONDS: u64 = 5;

/// A 503 with `Retry-After` when `error` says the directory is out of reach
/// (stopped, restarting, the network down): nothing is wrong with the
/// request, and roleoutd reconnects by itself.
fn unavailable(error: &dyn std::any::Any) -> Option<ApiError> {
    let directory = if let Some(error) = error.downcast_ref::<roleout_directory::DirectoryError>() {
        Some(error)
    } else if let Some(CatalogError::Directory(error)) = error.downcast_ref::<CatalogError>() {
        Some(error)
    } else {
        match error.downcast_ref::<BuildError>() {
            Some(BuildError::Directory(error))
            | Some(BuildError::Catalog(CatalogError::Directory(error))) => Some(error),
            _ => None,
        }
    };
    let error = directory.filter(|error| error.is_unavailable())?;
    warn!(%error, "the directory is out of reach; answering 503");
    Some(ApiError::retry_after(
        ErrorCode::Unavailable,
        "roleoutd cannot reach its directory just now; try again shortly.",
        DIRECTORY_RETRY_SECONDS,
    ))
}

// ---------------------------------------------------------------------------
// Enrolment

async fn enroll(
    State(state): Shared,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Enrolments are counted per source address; a server that does not
    // know it (no connection info) counts them all as one source.
    let source = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
    if let Err(refusal) = state.gate.enrolment(source) {
        info!(%source, outcome = "refused", reason = "too many enrolments", "enrolment");
        return gate_refusal(refusal).into_response();
    }
    match enroll_inner(&state, &headers, body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn enroll_inner(
    state: &ServerState,
    headers: &HeaderMap,
    body: Body,
) -> Result<EnrollResponse, ApiError> {
    let request: EnrollRequest = read_unauthenticated_body(state, headers, body).await?;
    let name = request.machine.clone();
    let certificate = request.certificate.as_bytes();
    if x509_parser::parse_x509_certificate(certificate).is_err() {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            "The request body is not valid: /certificate is not a DER X.509 certificate.",
        ));
    }
    let directory = &state.directory;
    let entry = match directory.machine(&name).await.map_err(directory_failed)? {
        // An entry of the organisation's own (found by the machine search
        // base and filter) gets Roleout's auxiliary class first, in place.
        Some(entry) if !entry.managed => {
            let dn = directory
                .adopt_machine(&name)
                .await
                .map_err(directory_failed)?;
            directory
                .machine_at(&dn)
                .await
                .map_err(directory_failed)?
                .ok_or_else(|| directory_failed(format!("machine entry {dn} vanished")))?
        }
        Some(entry) => entry,
        None => {
            let dn = match directory.adopt_machine(&name).await {
                Ok(dn) => dn,
                Err(roleout_directory::DirectoryError::NotFound { .. }) => {
                    let machine = Machine {
                        name: name.clone(),
                        ip: request.facts.ip.map(|ip| ip.to_string()),
                        os: Some(request.facts.os.clone()),
                        arch: Some(request.facts.arch.clone()),
                        facts: request.facts.extra.clone(),
                        products: Vec::new(),
                    };
                    directory
                        .create_machine(&machine)
                        .await
                        .map_err(directory_failed)?
                }
                Err(error) => return Err(directory_failed(error)),
            };
            directory
                .machine_at(&dn)
                .await
                .map_err(directory_failed)?
                .ok_or_else(|| directory_failed(format!("machine entry {dn} vanished")))?
        }
    };
    let fingerprint = sha256(certificate);
    let same_key = entry.certificate.as_deref() == Some(certificate);
    // Only the holder of its key (or of a token an admin gave it) hears
    // that a machine is disabled; anyone else meets the key conflict any
    // known name with another key meets, and nothing is written.
    if entry.enrolment == Some(Enrolment::Disabled) {
        info!(machine = %name, outcome = "refused", reason = "machine disabled", "enrolment");
        if same_key || request.enrolment_token.is_some() {
            return Err(ApiError::new(
                ErrorCode::Disabled,
                "This machine is disabled in the directory; an admin must re-enable it.",
            ));
        }
        return Err(key_conflict(&name));
    }
    let token_refused = || {
        info!(machine = %name, outcome = "refused", reason = "enrolment token not valid", "enrolment");
        ApiError::new(
            ErrorCode::Unauthorized,
            "The enrolment token is not valid for this machine (wrong, or already used).",
        )
    };
    // Every write below that decides whose key the entry holds is one
    // conditional modify (see `roleout_directory::machines`), so two
    // enrolments racing for one name cannot both win, and a token approves
    // exactly the key presented with it.
    let (status, changed) = if let Some(token) = &request.enrolment_token {
        // A one-time token from an admin: it approves this key, whatever
        // key the entry held.
        let Some(stored) = &entry.enrolment_token else {
            return Err(token_refused());
        };
        if sha256(token.as_bytes()) != *stored {
            return Err(token_refused());
        }
        let spent = directory
            .enrol_with_token(&entry.dn, stored, certificate)
            .await;
        state.cache.forget_machine(&name, &entry.dn);
        if !spent.map_err(directory_failed)? {
            return Err(token_refused());
        }
        (EnrolmentStatus::Approved, true)
    } else if let Some(proof) = &request.proof {
        // Key rotation or renewal: the current key vouches for the new
        // certificate; approval carries over.
        let current = entry
            .certificate_fingerprint
            .clone()
            .or_else(|| entry.certificate.as_deref().map(sha256));
        let refused = |reason: &dyn std::fmt::Display| {
            info!(machine = %name, outcome = "refused", reason = %reason, "key rotation");
            ApiError::new(
                ErrorCode::Unauthorized,
                "The proof of this machine's current key is not valid; a one-time token from an admin enrols a new key.",
            )
        };
        let Some(current) = current else {
            return Err(refused(&"the machine has no key yet"));
        };
        state
            .authenticator
            .verify_key_proof_across(
                &state.directory,
                &name,
                &proof.token,
                proof.signature.as_bytes(),
                &registered(&entry),
                &fingerprint,
                SystemTime::now(),
            )
            .await
            .map_err(|error| refused(&error))?;
        let rotated = directory
            .rotate_certificate(&entry.dn, &current, certificate)
            .await;
        state.cache.forget_machine(&name, &entry.dn);
        if !rotated.map_err(directory_failed)? {
            return Err(refused(&"its key changed while the proof was checked"));
        }
        (EnrolmentStatus::Approved, true)
    } else if entry.certificate.is_some() || entry.certificate_fingerprint.is_some() {
        // A known machine: only its own key, presented again, is answered;
        // nothing is written (a certificate is public, so presenting it
        // proves nothing and may change nothing).
        if !same_key {
            info!(machine = %name, outcome = "refused", reason = "another key is enrolled", "enrolment");
            return Err(key_conflict(&name));
        }
        let status = if entry.may_authenticate() {
            EnrolmentStatus::Approved
        } else {
            EnrolmentStatus::Pending
        };
        (status, false)
    } else {
        // The first key of this name.
        if entry.enrolment_token.is_some() {
            info!(machine = %name, outcome = "refused", reason = "a token is outstanding", "enrolment");
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "This machine is to enrol with the one-time token an admin issued for it.",
            ));
        }
        let recorded = directory
            .record_first_certificate(&entry.dn, certificate)
            .await;
        state.cache.forget_machine(&name, &entry.dn);
        if !recorded.map_err(directory_failed)? {
            info!(machine = %name, outcome = "refused", reason = "another key was enrolled first", "enrolment");
            return Err(ApiError::new(
                ErrorCode::KeyConflict,
                format!("Machine {name} enrolled another key at the same moment."),
            ));
        }
        // An admin who approved the name before it enrolled approved its
        // first key; otherwise the key waits for approval.
        if entry.may_authenticate() {
            (EnrolmentStatus::Approved, true)
        } else {
            let marked = directory.mark_machine_pending(&entry.dn).await;
            state.cache.forget_machine(&name, &entry.dn);
            marked.map_err(directory_failed)?;
            (EnrolmentStatus::Pending, true)
        }
    };
    if changed {
        // The facts come with a key the directory now holds for this
        // machine: from a token, the current key, or the first enrolment.
        let facts = &request.facts;
        let written = directory
            .set_machine_facts(&entry.dn, Some(&facts.os), Some(&facts.arch), &facts.extra)
            .await;
        // The hardware is for images and rules, not for enrolment: a
        // directory whose access rules do not let roleoutd write it (one
        // an organisation runs) still enrols the machine.
        if written.is_ok()
            && facts.hardware.is_some()
            && let Err(error) = directory
                .set_machine_hardware(&entry.dn, facts.hardware.as_ref())
                .await
        {
            tracing::warn!(machine = %name, %error, "the machine's hardware was not stored");
        }
        state.cache.forget_machine(&name, &entry.dn);
        written.map_err(directory_failed)?;
    }
    let token_valid = request.enrolment_token.is_some();
    info!(machine = %name, outcome = ?status, new_key = !same_key, token = token_valid, "enrolment");
    let public = state.builder_key.public_key();
    Ok(EnrollResponse {
        status,
        builder_key: BuilderPublicKey {
            algorithm: BuilderKeyAlgorithm::Ed25519,
            public_key: Base64Bytes::new(public.as_bytes().to_vec()),
            key_id: public.key_id(),
        },
        message: match status {
            EnrolmentStatus::Approved => "The machine is enrolled and approved.".to_owned(),
            EnrolmentStatus::Pending => {
                "The machine is enrolled; an admin must approve its key before it can authenticate."
                    .to_owned()
            }
        },
    })
}

// ---------------------------------------------------------------------------
// Authentication

async fn challenge(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let request: ChallengeRequest = read_unauthenticated_body(&state, &headers, body).await?;
        let issued = state
            .authenticator
            .issue_challenge(&request.machine, SystemTime::now())
            .map_err(ApiError::internal)?;
        Ok::<_, ApiError>(ChallengeResponse {
            token: issued.token,
            expires_at: timestamp(issued.challenge.expires_at)?,
        })
    }
    .await;
    match result {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The refusal for an authentication error, in words without secrets.
fn auth_refusal(error: &AuthError) -> ApiError {
    let code = match error {
        AuthError::Challenge(ChallengeError::Expired { .. }) => ErrorCode::ExpiredChallenge,
        AuthError::Challenge(ChallengeError::Random) => return ApiError::internal(error),
        AuthError::Challenge(_) => ErrorCode::Unauthorized,
        AuthError::Certificate(CertificateError::Disabled) => ErrorCode::Disabled,
        AuthError::Certificate(CertificateError::NotApproved) => ErrorCode::NotApproved,
        AuthError::Certificate(
            CertificateError::Expired { .. } | CertificateError::NotYetValid { .. },
        ) => ErrorCode::CertificateExpired,
        AuthError::Certificate(_) => ErrorCode::BadSignature,
        AuthError::Replay(ReplayError::Replayed { .. }) => ErrorCode::ReplayedNonce,
        // The claim could not be recorded where every roleoutd sees it:
        // nothing is wrong with the answer; the machine asks for a new
        // challenge once the directory is back.
        AuthError::Replay(ReplayError::Unavailable { .. }) => {
            warn!(%error, "cannot record a nonce claim; answering 503");
            return ApiError::retry_after(
                ErrorCode::Unavailable,
                "roleoutd cannot record the claim of this challenge just now; try again shortly.",
                DIRECTORY_RETRY_SECONDS,
            );
        }
        AuthError::Replay(_) => return ApiError::internal(error),
        AuthError::Session(SessionError::Expired { .. }) => ErrorCode::ExpiredSession,
        AuthError::Session(_) => ErrorCode::Unauthorized,
    };
    let mut message = error.to_string();
    message.truncate(900);
    ApiError::new(code, format!("Authentication refused: {message}."))
}

/// What the directory says about `entry` for authentication. A machine
/// waiting for approval is not enabled yet either; it is refused as not
/// approved, which is what it needs. Disabled means an admin turned it
/// away (or withdrew `roleoutEnabled` from an approved machine).
fn registered(entry: &MachineEntry) -> RegisteredMachine {
    let enabled = match entry.enrolment {
        Some(Enrolment::Disabled) => false,
        Some(Enrolment::Approved) => entry.enabled,
        Some(Enrolment::Pending) | None => true,
    };
    RegisteredMachine {
        certificate_der: entry.certificate.clone().unwrap_or_default(),
        enabled,
        approved: entry.enrolment == Some(Enrolment::Approved),
    }
}

/// The machine's effective roles: its direct roles and their ancestors.
async fn effective_roles(
    state: &ServerState,
    entry: &MachineEntry,
) -> Result<Arc<EffectiveRoles>, ApiError> {
    state
        .cache
        .effective_roles(&state.directory, entry)
        .await
        .map_err(ApiError::internal)
}

/// The refusal of a key for a name that has another: the same for every
/// known machine, whatever its state, so it tells a caller without the key
/// nothing more than that the name is taken.
fn key_conflict(name: &MachineId) -> ApiError {
    ApiError::new(
        ErrorCode::KeyConflict,
        format!(
            "Machine {name} already has a key. A new key needs a one-time token from an admin (roleout-admin enroll-token {name}) or proof made with the current key (roleout rotate-key)."
        ),
    )
}

/// How often a machine's last-seen time is written: at most once per
/// interval, so that authentications do not each cost a directory write
/// (and a change that drops the machine from roleoutd's cache).
const LAST_SEEN_INTERVAL: Duration = Duration::from_secs(300);

async fn session(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    use crate::server::metrics::AuthKind;
    match session_inner(&state, &headers, body).await {
        Ok(answer) => {
            state.metrics.authentication(AuthKind::Machine, "accepted");
            Json(answer).into_response()
        }
        Err(error) => {
            state
                .metrics
                .authentication(AuthKind::Machine, &wire_name(&error.body.error));
            error.into_response()
        }
    }
}

/// The wire name of a serde enum value (`bad-signature`).
fn wire_name<T: serde::Serialize + std::fmt::Debug>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{value:?}"))
}

async fn session_inner(
    state: &ServerState,
    headers: &HeaderMap,
    body: Body,
) -> Result<SessionResponse, ApiError> {
    let request: SessionRequest = read_unauthenticated_body(state, headers, body).await?;
    let machine = &request.machine;
    // The entry as it is now: a rotated key or a disabled entry counts
    // from this request on (see the module comment).
    let Some(entry) = state
        .cache
        .machine(&state.directory, machine)
        .await
        .map_err(directory_failed)?
    else {
        // Answered as a wrong key is: a caller without a key learns
        // nothing of which names exist (the log says what happened).
        info!(machine = %machine, outcome = "refused", reason = "unknown machine", "session");
        return Err(auth_refusal(&AuthError::Certificate(
            CertificateError::BadSignature,
        )));
    };
    let roles = effective_roles(state, &entry).await?;
    let now = SystemTime::now();
    let issued = state
        .authenticator
        .authenticate_across(
            &state.directory,
            machine,
            &request.token,
            request.signature.as_bytes(),
            &registered(&entry),
            &roles.key(),
            now,
        )
        .await
        .map_err(|error| {
            info!(machine = %machine, outcome = "refused", reason = %error, "session");
            auth_refusal(&error)
        })?;
    info!(machine = %machine, outcome = "accepted", roles = %roles.key(), "session");
    if let Some(engine) = &state.engine
        && entry.engine.as_deref() != Some(engine.as_str())
    {
        // The machine is reached through this engine from now on.
        let recorded = state
            .directory
            .set_machine_engine(&entry.dn, engine.as_str())
            .await;
        state.cache.forget_machine(machine, &entry.dn);
        if let Err(error) = recorded {
            warn!(machine = %machine, %error, "could not record the engine the machine is reached through");
        }
    }
    if !entry.seen_since(now.checked_sub(LAST_SEEN_INTERVAL).unwrap_or(now)) {
        let recorded = state.directory.record_machine_seen(&entry.dn, now).await;
        state.cache.forget_machine(machine, &entry.dn);
        if let Err(error) = recorded {
            warn!(machine = %machine, %error, "could not record when the machine was last seen");
        }
    }
    Ok(SessionResponse {
        session: issued.token,
        expires_at: timestamp(issued.session.expires_at)?,
        roles: roles.names().cloned().collect(),
    })
}

/// An authenticated request: its session, the machine's entry as it is
/// now and its roles as they are now.
pub(crate) struct Requester {
    pub(crate) session: Session,
    pub(crate) entry: Arc<MachineEntry>,
    pub(crate) roles: Arc<EffectiveRoles>,
}

pub(crate) async fn requester(
    state: &ServerState,
    headers: &HeaderMap,
) -> Result<Requester, ApiError> {
    // Two credentials are one too many: which one a proxy or a server
    // takes differs, so none is taken.
    if headers.get_all(header::AUTHORIZATION).iter().count() > 1 {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "The request has more than one Authorization header; send exactly one.",
        ));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "This route needs a session: send Authorization: Bearer SESSION.",
            )
        })?;
    let session = state
        .authenticator
        .verify_session(token.trim(), SystemTime::now())
        .map_err(|error| auth_refusal(&error))?;
    let entry = state
        .cache
        .machine(&state.directory, &session.machine)
        .await
        .map_err(directory_failed)?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownMachine,
                format!(
                    "The machine {} is no longer in the directory.",
                    session.machine
                ),
            )
        })?;
    let registered = registered(&entry);
    if !registered.enabled {
        info!(machine = %session.machine, outcome = "refused", reason = "disabled", "request");
        return Err(ApiError::new(
            ErrorCode::Disabled,
            "The machine is disabled in the directory.",
        ));
    }
    if !registered.approved {
        info!(machine = %session.machine, outcome = "refused", reason = "not approved", "request");
        return Err(ApiError::new(
            ErrorCode::NotApproved,
            "The machine's key is no longer approved.",
        ));
    }
    let roles = effective_roles(state, &entry).await?;
    if roles.key() != session.role_key {
        info!(machine = %session.machine, outcome = "refused", reason = "roles changed", "request");
        return Err(ApiError::new(
            ErrorCode::ExpiredSession,
            "The machine's roles changed since the session began; authenticate again.",
        ));
    }
    Ok(Requester {
        session,
        entry,
        roles,
    })
}

// ---------------------------------------------------------------------------
// Serving

/// The signed envelope of `payload` for the requester, as a response;
/// `subject` names what of its kind it is (see [`envelope_around`]).
pub(crate) fn envelope<P: EnvelopePayload>(
    state: &ServerState,
    requester: &Requester,
    subject: String,
    payload: &P,
    build_digest: Option<Sha256>,
    serial: u64,
) -> Result<Response, ApiError> {
    let payload = canonical_field(payload).map_err(ApiError::internal)?;
    envelope_around(
        state,
        requester,
        (P::KIND, subject),
        &payload,
        build_digest,
        serial,
    )
}

/// The signed envelope, as a response, of a payload of `kind` about
/// `subject` (a suite id, a suite and product, nothing for the suite list)
/// whose canonical JSON is `payload`: the envelope's canonical bytes are
/// written around it and sent as they are (canonical JSON is JSON), so a
/// large payload is neither rebuilt as a JSON value nor serialized twice.
///
/// The last envelope signed for the machine and subject is served again
/// when it signed exactly these contents and has at least half its
/// validity left (see the cache's module comment); otherwise a new one is
/// signed and kept.
fn envelope_around(
    state: &ServerState,
    requester: &Requester,
    (kind, subject): (EnvelopeKind, String),
    payload: &[u8],
    build_digest: Option<Sha256>,
    serial: u64,
) -> Result<Response, ApiError> {
    let now = SystemTime::now();
    let machine = requester.session.machine.clone();
    let roles = requester.roles.key();
    let payload_digest = SignedContent::payload_digest(payload);
    let key = (machine.clone(), kind, subject);
    let kept = state.cache.signature(&key).filter(|kept| {
        kept.serves(
            &roles,
            build_digest.as_ref(),
            &payload_digest,
            now,
            state.metadata_ttl,
        )
    });
    let signed = match kept {
        Some(kept) => kept,
        None => {
            let ticket = state.cache.ticket();
            let signed = Arc::new(sign_header(
                state,
                &machine,
                kind,
                &roles,
                build_digest.clone(),
                &payload_digest,
                serial,
                now,
            )?);
            state.cache.keep_signature(ticket, key, signed.clone());
            signed
        }
    };
    let header = SignedContent {
        kind,
        machine,
        roles,
        build_digest,
        serial: signed.serial,
        expires_at: signed.expires_at,
        // Given as canonical bytes instead.
        payload: serde_json::Value::Null,
    };
    let canonical = header
        .canonical_bytes_around(payload)
        .map_err(ApiError::internal)?;
    let body =
        SignedEnvelope::body_around(&canonical, &signed.signature, state.builder_key.key_id())
            .map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Signs a new envelope header at `now` for a payload whose digest is
/// `payload_digest`, built at `serial`.
#[allow(
    clippy::too_many_arguments,
    reason = "the envelope's header fields, one by one"
)]
fn sign_header(
    state: &ServerState,
    machine: &MachineId,
    kind: EnvelopeKind,
    roles: &str,
    build_digest: Option<Sha256>,
    payload_digest: &Sha256,
    serial: u64,
    now: SystemTime,
) -> Result<SignedHeader, ApiError> {
    let expires = now + state.metadata_ttl;
    let expires_at = Timestamp::from_system_time(expires)
        .ok_or_else(|| ApiError::internal("metadata expiry past the year 9999"))?;
    // The serial a machine sees must only grow, whatever it is served: a
    // machine whose roles change moves to another role set's build, whose
    // own build serial has a history of its own (and may be lower). So the
    // envelope's serial is the signing time in milliseconds, never below
    // the build's serial: any envelope signed later supersedes any signed
    // before, and an older one replayed by a mirror is a rollback (unless
    // it carries exactly the contents last accepted, which changes
    // nothing). Several roleoutd behind one load balancer need
    // synchronized clocks.
    let signed_at = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let header = SignedContent {
        kind,
        machine: machine.clone(),
        roles: roles.to_owned(),
        build_digest,
        serial: serial.max(signed_at),
        expires_at,
        // The signature covers the payload by its digest.
        payload: serde_json::Value::Null,
    };
    // Ed25519 hashes only the header and the digest: a few hundred bytes,
    // whatever the payload's size.
    let message = header
        .signed_message_for(payload_digest)
        .map_err(ApiError::internal)?;
    Ok(SignedHeader {
        roles: header.roles,
        build_digest: header.build_digest,
        payload_digest: payload_digest.clone(),
        serial: header.serial,
        expires_at,
        expires,
        signature: sign_message(&state.builder_key, &message),
    })
}

fn catalog_failed(error: CatalogError) -> ApiError {
    if let Some(answer) = unavailable(&error) {
        return answer;
    }
    ApiError::internal(format!("catalog: {error}"))
}

/// A suite that cannot be built for the requester's roles is the admins'
/// problem to fix (the log has every problem); the machine is told so.
fn build_failed(error: BuildError) -> ApiError {
    if let Some(answer) = unavailable(&error) {
        return answer;
    }
    warn!(%error, "build failed");
    ApiError::internal(format!("build: {error}"))
}

/// The build of suite `id` for the requester; a suite with nothing for its
/// roles is refused as not theirs.
async fn build_for(
    state: &ServerState,
    requester: &Requester,
    id: &str,
) -> Result<Arc<CachedBuild>, ApiError> {
    let no_suite = || ApiError::new(ErrorCode::NotFound, "There is no such suite.");
    let id = SuiteId::new(id).map_err(|_| no_suite())?;
    let build = state
        .cache
        .build(&state.directory, &id, &requester.roles)
        .await
        .map_err(build_failed)?
        .ok_or_else(no_suite)?;
    if build.build.suite.products.is_empty() {
        return Err(ApiError::new(
            ErrorCode::ForbiddenSuite,
            format!("Suite {id} has nothing for this machine's roles."),
        ));
    }
    Ok(build)
}

async fn suite_list(State(state): Shared, headers: HeaderMap) -> Response {
    let result = async {
        let requester = requester(&state, &headers).await?;
        let mut suites = Vec::new();
        let mut serial = 0;
        let ids = state
            .cache
            .suite_ids(&state.directory)
            .await
            .map_err(catalog_failed)?;
        for id in ids.iter() {
            match state
                .cache
                .build(&state.directory, id, &requester.roles)
                .await
            {
                Ok(Some(cached)) if !cached.build.suite.products.is_empty() => {
                    let build = &cached.build;
                    serial = serial.max(build.serial);
                    suites.push(SuiteListEntry {
                        id: build.suite.id.clone(),
                        version: build.suite.version.clone(),
                        build_digest: build.digest.clone(),
                    });
                }
                Ok(_) => {}
                // One broken suite must not hide the others.
                Err(error) => warn!(suite = %id, %error, "suite left out of the list"),
            }
        }
        envelope(
            &state,
            &requester,
            String::new(),
            &SuiteList { suites },
            None,
            serial,
        )
    }
    .await;
    match result {
        Ok(envelope) => envelope,
        Err(error) => error.into_response(),
    }
}

async fn suite(State(state): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result = async {
        let requester = requester(&state, &headers).await?;
        let build = build_for(&state, &requester, &id).await?;
        let machine = &requester.entry.machine;
        let platform = match (&machine.os, &machine.arch) {
            (Some(os), Some(arch)) => Some((os.as_str(), arch.as_str())),
            _ => None,
        };
        let suite_id = &build.build.suite.id;
        let choice = state
            .cache
            .customizations(&state.directory)
            .await
            .map_err(directory_failed)?
            .for_machine(&requester.entry.dn, &machine.name, suite_id);
        let unresolved = |problems: &str| {
            ApiError::internal(format!(
                "suite {id} does not resolve for {}: {problems}",
                machine.name
            ))
        };
        // Machines without a choice of products share the plan of their
        // platform, resolved once per build; a group's choice is resolved
        // for the machine (see `crate::delivery`).
        let outcome;
        let chosen;
        let (plan, plan_canonical, customization) = if choice.chooses_products(suite_id) {
            let (plan, customization) =
                crate::delivery::plan_for(&build.build.suite, machine, &choice)
                    .map_err(|problems| unresolved(&problems))?;
            let canonical = canonical_field(&plan).map_err(ApiError::internal)?;
            chosen = (plan, canonical);
            (&chosen.0, &chosen.1, customization)
        } else {
            outcome = build.plan(platform);
            let (plan, canonical) = match &*outcome {
                Ok(resolved) => resolved,
                Err(problems) => return Err(unresolved(problems)),
            };
            let customization = crate::delivery::customization_for(&build.build.suite, &choice);
            (plan, canonical, customization)
        };
        let machine_object = MachineObject {
            name: machine.name.clone(),
            os: machine.os.clone().unwrap_or_default(),
            arch: machine.arch.clone().unwrap_or_default(),
            components: plan.order().cloned().collect(),
        };
        let payload = build
            .delivery_canonical(&machine_object, plan_canonical, &customization)
            .map_err(ApiError::internal)?;
        envelope_around(
            &state,
            &requester,
            (EnvelopeKind::Suite, id),
            &payload,
            Some(build.build.digest.clone()),
            build.build.serial,
        )
    }
    .await;
    match result {
        Ok(envelope) => envelope,
        Err(error) => error.into_response(),
    }
}

async fn component(
    State(state): Shared,
    headers: HeaderMap,
    Path((id, product)): Path<(String, String)>,
) -> Response {
    let result = async {
        let requester = requester(&state, &headers).await?;
        let cached = build_for(&state, &requester, &id).await?;
        let build = &cached.build;
        let forbidden = || {
            info!(machine = %requester.session.machine, suite = %id, outcome = "refused", reason = "component outside its roles", "component");
            ApiError::new(
                ErrorCode::ForbiddenSuite,
                "That component is not in this machine's suite.",
            )
        };
        let product_id = ProductId::new(product.as_str()).map_err(|_| forbidden())?;
        let model = build
            .suite
            .products
            .iter()
            .find(|model| model.id == product_id)
            .cloned()
            .ok_or_else(forbidden)?;
        let delivery = ComponentDelivery {
            files: model.fileset.clone(),
            product: model,
        };
        envelope(
            &state,
            &requester,
            format!("{id}/{product}"),
            &delivery,
            Some(build.digest.clone()),
            build.serial,
        )
    }
    .await;
    match result {
        Ok(envelope) => envelope,
        Err(error) => error.into_response(),
    }
}

/// A payload digest as it must appear in a path: 64 lowercase hex
/// characters, nothing else (no other case, no dots, no slashes).
pub(crate) fn strict_digest(text: &str) -> Option<Sha256> {
    let valid = text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if valid { Sha256::new(text).ok() } else { None }
}

/// A single byte range of a payload of `length` bytes: `Ok(None)` for no
/// (or an unsupported multi-part) range, `Err` when unsatisfiable.
fn byte_range(headers: &HeaderMap, length: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Several ranges: answered with the whole payload (RFC 9110 allows
        // ignoring Range).
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().map_err(|_| ())?;
        if suffix == 0 || length == 0 {
            return Err(());
        }
        (length.saturating_sub(suffix), length - 1)
    } else {
        let first: u64 = first.parse().map_err(|_| ())?;
        let last: u64 = if last.is_empty() {
            length.saturating_sub(1)
        } else {
            last.parse::<u64>()
                .map_err(|_| ())?
                .min(length.saturating_sub(1))
        };
        (first, last)
    };
    if range.0 >= length || range.0 > range.1 {
        return Err(());
    }
    Ok(Some(range))
}

async fn payload(State(state): Shared, headers: HeaderMap, Path(digest): Path<String>) -> Response {
    match payload_inner(&state, &headers, &digest).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn payload_inner(
    state: &ServerState,
    headers: &HeaderMap,
    digest: &str,
) -> Result<Response, ApiError> {
    let requester = requester(state, headers).await?;
    let not_found = || ApiError::new(ErrorCode::NotFound, "There is no such payload.");
    let digest = strict_digest(digest).ok_or_else(not_found)?;
    // Only files of the requester's own suites are served.
    let mut allowed = None;
    let ids = state
        .cache
        .suite_ids(&state.directory)
        .await
        .map_err(catalog_failed)?;
    for id in ids.iter() {
        let Ok(Some(cached)) = state
            .cache
            .build(&state.directory, id, &requester.roles)
            .await
        else {
            continue;
        };
        if let Some(file) = cached
            .build
            .suite
            .products
            .iter()
            .flat_map(|product| &product.fileset.files)
            .find(|file| file.sha256 == digest)
        {
            allowed = Some(file.size);
            break;
        }
    }
    let Some(size) = allowed else {
        info!(machine = %requester.session.machine, %digest, outcome = "refused", reason = "not in its suites", "payload");
        return Err(ApiError::new(
            ErrorCode::ForbiddenSuite,
            "That payload is not part of this machine's suites.",
        ));
    };
    let store = ContentStore::new(state.content_dir.clone()).map_err(ApiError::internal)?;
    // A roleoutd given an upstream (an engine, or a peer behind the same
    // name) brings a payload it lacks from there first, once: others
    // asking meanwhile wait for that fetch and find the payload stored.
    if !store.contains(&digest)
        && let Some((upstream, authorization)) = crate::server::jobs::upstream_of(state)?
    {
        let mut turn = state.fetches.turn(&digest).await;
        if !store.contains(&digest) {
            // A fetch that failed while this request waited fails it too.
            if let Some(failure) = turn.recent_failure() {
                return Err(failure);
            }
            let (fill, wanted) = (store.clone(), digest.clone());
            // The turn goes with the fetch: a caller that gives up waiting
            // (its connection closed) does not end it, and nobody starts a
            // second fetch of the same payload meanwhile.
            tokio::task::spawn_blocking(move || {
                let fetched = crate::server::jobs::fetch_content(
                    &fill,
                    &upstream,
                    &authorization,
                    &wanted,
                    Some(size),
                );
                match &fetched {
                    Ok(_) => info!(digest = %wanted, size, "payload fetched from upstream"),
                    Err(failure) => turn.failed(failure.clone()),
                }
                fetched
            })
            .await
            .map_err(ApiError::internal)??;
        }
    }
    serve_content(&store, &digest, headers, "payload").await
}

/// The content `digest` of `store` as an answer, streamed from disk in
/// pieces whatever its size, with one byte range when asked
/// (`what` names it in errors: "payload", "content").
pub(crate) async fn serve_content(
    store: &ContentStore,
    digest: &Sha256,
    headers: &HeaderMap,
    what: &str,
) -> Result<Response, ApiError> {
    serve_file(&store.path_of(digest), digest, headers, what).await
}

/// The file at `path`, whose bytes have digest `digest` and never change,
/// as [`serve_content`] answers.
pub(crate) async fn serve_file(
    path: &std::path::Path,
    digest: &Sha256,
    headers: &HeaderMap,
    what: &str,
) -> Result<Response, ApiError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("There is no such {what}."),
            ));
        }
        Err(error) => return Err(ApiError::internal(format!("{}: {error}", path.display()))),
    };
    let length = file
        .metadata()
        .await
        .map_err(|error| ApiError::internal(format!("{}: {error}", path.display())))?
        .len();
    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // Content is named by its digest, so its bytes never change: the
    // machine's own (private) cache may keep it as long as it likes, and
    // its ETag is the digest. `private`: the answer needed a session, so
    // a shared cache must not hand it to others.
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        response_headers.insert(header::ETAG, etag);
    }
    let (status, first, count) = match byte_range(headers, length) {
        Ok(None) => (StatusCode::OK, 0, length),
        Ok(Some((first, last))) => {
            let content_range = format!("bytes {first}-{last}/{length}");
            if let Ok(value) = HeaderValue::from_str(&content_range) {
                response_headers.insert(header::CONTENT_RANGE, value);
            }
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
        Err(()) => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{length}")) {
                response_headers.insert(header::CONTENT_RANGE, value);
            }
            let body = roleout_model::protocol::ErrorBody::new(
                ErrorCode::InvalidBody,
                format!("The requested range is outside the {what} of {length} bytes."),
            );
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                response_headers,
                Json(body),
            )
                .into_response());
        }
    };
    if first > 0 {
        file.seek(std::io::SeekFrom::Start(first))
            .await
            .map_err(|error| ApiError::internal(format!("{}: {error}", path.display())))?;
    }
    if let Ok(value) = HeaderValue::from_str(&count.to_string()) {
        response_headers.insert(header::CONTENT_LENGTH, value);
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(count), 64 * 1024);
    Ok((status, response_headers, Body::from_stream(stream)).into_response())
}

// ---------------------------------------------------------------------------
// Status

async fn report(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let requester = requester(&state, &headers).await?;
        state
            .gate
            .report(&requester.session.machine)
            .map_err(gate_refusal)?;
        let report: StatusReport = read_body(&state, &headers, body).await?;
        reported_component_is_the_machines(&state, &requester, &report).await?;
        let store = ContentStore::new(state.content_dir.clone()).map_err(ApiError::internal)?;
        let status = record_report(&state.directory, &store, &requester.session.machine, &report)
            .await
            .map_err(|error| match error {
                // The machine's own mistake (ids that differ only in
                // letter case), not roleoutd's.
                crate::content::ContentError::Directory(
                    roleout_directory::catalog::CatalogError::Unrepresentable { reason, .. },
                ) => ApiError::new(ErrorCode::InvalidBody, format!("The report cannot be kept: {reason}.")),
                other => ApiError::internal(format!("report store: {other}")),
            })?;
        info!(machine = %requester.session.machine, suite = %report.suite, component = %report.component, outcome = ?report.outcome, ack = ?status, "report");
        state.metrics.report(&match status {
            AckStatus::Duplicate => "duplicate".to_owned(),
            _ => wire_name(&report.outcome),
        });
        Ok::<_, ApiError>(ReportAck { status })
    }
    .await;
    match result {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Refuses a report about a component the machine was not given: one of
/// its suite as its roles have it now, or, for the removal of a product
/// that left its suite, one it reported on before. A resend of a report
/// already kept is let through (it is acknowledged as a duplicate).
async fn reported_component_is_the_machines(
    state: &ServerState,
    requester: &Requester,
    report: &StatusReport,
) -> Result<(), ApiError> {
    let in_suite = match build_for(state, requester, report.suite.as_str()).await {
        Ok(build) => build
            .build
            .suite
            .products
            .iter()
            .any(|product| product.id == report.component),
        Err(_) => false,
    };
    if in_suite {
        return Ok(());
    }
    let machine = &requester.session.machine;
    let earlier = state
        .directory
        .reports_for_machine(machine)
        .await
        .map_err(|error| ApiError::internal(format!("report store: {error}")))?;
    let known = earlier.iter().any(|stored| {
        stored.id == report.id
            || (report.step == ReportStep::Uninstall
                && stored.suite == report.suite
                && stored.component == report.component)
    });
    if known {
        return Ok(());
    }
    info!(machine = %machine, suite = %report.suite, component = %report.component, outcome = "refused", reason = "component not the machine's", "report");
    Err(ApiError::new(
        ErrorCode::ForbiddenSuite,
        format!(
            "Component {} of suite {} is not one this machine was given; its report is not kept.",
            report.component, report.suite
        ),
    ))
}

async fn complete(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let requester = requester(&state, &headers).await?;
        let complete: SuiteComplete = read_body(&state, &headers, body).await?;
        let machine = &requester.session.machine;
        let stored = state
            .directory
            .store_completion(machine, &complete)
            .await
            .map_err(|error| ApiError::internal(format!("report store: {error}")))?;
        info!(machine = %machine, suite = %complete.suite, "suite complete");
        // A run ended: this machine's history is trimmed to the retention
        // rule (its log files go with the next collection of the content
        // store). A failure here loses nothing and is tried again at the
        // next run's end.
        if stored == AckStatus::Recorded {
            let now = Timestamp::from_system_time(SystemTime::now());
            if let Some(now) = now {
                match state.directory.prune_reports(machine, state.retention, now).await {
                    Ok(pruned) if pruned.reports > 0 => {
                        info!(machine = %machine, removed = pruned.reports, "report history trimmed");
                    }
                    Ok(_) => {}
                    Err(error) => warn!(machine = %machine, %error, "report history not trimmed"),
                }
            }
        }
        Ok::<_, ApiError>(Close::default())
    }
    .await;
    match result {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    fn range(value: &str, length: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        byte_range(&headers, length)
    }

    #[test]
    fn ranges_are_read_and_bounded() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=9-3", 100), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn only_lowercase_digests_name_payloads() {
        let digest = "ab".repeat(32);
        assert!(strict_digest(&digest).is_some());
        assert!(strict_digest(&digest.to_uppercase()).is_none());
        assert!(strict_digest("abc").is_none());
        assert!(strict_digest(&format!("../{}", &digest[3..])).is_none());
    }
}
