//! The HTTP side of `roleout`: enrolment, authentication and the
//! [`Source`] the install loop uses in production.
//!
//! TLS trusts exactly one certificate: the server certificate given at
//! enrolment and kept in the state directory
//! ([`crate::engine::identity::SERVER_CERTIFICATE_FILE`]). No system root
//! is consulted, so a certificate from any public CA for the same name does
//! not pass. This pins the channel; what runs as root is still only what
//! the pinned builder key signed.
//!
//! Authentication is Fig. 10's blocks 1010-1020: ask for a challenge, sign
//! it with the machine key, trade the signature for a bearer session. The
//! session is made on the first request that needs it and made again once
//! if roleoutd says it expired.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use roleout_model::ids::{MachineId, Sha256, SuiteId};
use roleout_model::protocol::{
    AckStatus, ChallengeRequest, ChallengeResponse, Close, ContentOffer, ContentStatus,
    ContentStored, ContentWant, EnrollRequest, EnrollResponse, ErrorBody, ErrorCode, ImageStored,
    ImageUpload, MAX_OFFERED_DIGESTS, ReportAck, SessionRequest, SessionResponse, SignedEnvelope,
    StatusReport, SuiteComplete, TrustAnnouncement,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Body};

use crate::engine::{Source, SourceError};
use roleout_model::keys::MachineKey;

/// Largest JSON answer read, in bytes (a built suite is far smaller).
const MAX_JSON_BYTES: u64 = 32 * 1024 * 1024;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a large transfer (a payload, an imaging archive) may go
/// without a byte before it is given up; the whole transfer takes as long
/// as it takes.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// An agent for a payload's own `source` URL (not a roleoutd): the usual
/// certificate roots, and the bounds of [`long_transfer`], so a source that
/// stops answering fails the fetch instead of hanging the run.
pub(crate) fn source_agent() -> Agent {
    Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(REQUEST_TIMEOUT))
        .timeout_per_read(Some(STALL_TIMEOUT))
        .build()
        .new_agent()
}

/// `request` set up for a body of any size: no bound on the whole call
/// (the agent's [`REQUEST_TIMEOUT`] would end a 2 GiB payload at 15 MB/s
/// after 120 s, every time), the answer's head within `answer`, and at most
/// `stall` between two reads of it.
fn long_transfer(
    request: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    answer: Duration,
    stall: Duration,
) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
    request
        .config()
        .timeout_global(None)
        .timeout_recv_response(Some(answer))
        .timeout_per_read(Some(stall))
        .build()
}

/// Makes an HTTP agent that trusts only `server_certificate_pem`.
pub fn pinned_agent(server_certificate_pem: &[u8]) -> Result<Agent, SourceError> {
    // One certificate, or several: the pinned one and those a rotation
    // announced (see `crate::rotation`).
    let invalid = |reason: String| SourceError::Invalid {
        what: "the pinned server certificate".to_owned(),
        reason,
    };
    let text = String::from_utf8_lossy(server_certificate_pem);
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let mut certificates = Vec::new();
    for (index, _) in text.match_indices(BEGIN) {
        let block = &text[index..];
        let end = block
            .find("-----END CERTIFICATE-----")
            .map(|end| end + "-----END CERTIFICATE-----".len())
            .ok_or_else(|| invalid("a certificate has no END line".to_owned()))?;
        let certificate = Certificate::from_pem(&block.as_bytes()[..end])
            .map_err(|error| invalid(error.to_string()))?;
        certificates.push(certificate.to_owned());
    }
    if certificates.is_empty() {
        return Err(invalid("it holds no PEM certificate".to_owned()));
    }
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::Specific(Arc::new(certificates)))
        .build();
    Ok(Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .build()
        .new_agent())
}

/// Whether another roleoutd of the installation may answer where this
/// outcome's did not: it could not be reached, or it said "not now" (503).
fn another_may_serve<T>(outcome: &Result<T, SourceError>) -> bool {
    matches!(
        outcome,
        Err(SourceError::Unreachable { .. })
            | Err(SourceError::Refused {
                code: ErrorCode::Unavailable,
                ..
            })
    )
}

/// `call` with each of `servers` in order until one can be reached and
/// can serve: a server out of reach, or answering 503, passes the call to
/// the next; the last one's answer is returned whatever it is.
pub fn first_reachable<T>(
    servers: &[String],
    mut call: impl FnMut(&str) -> Result<T, SourceError>,
) -> Result<T, SourceError> {
    let mut outcome = Err(SourceError::Invalid {
        what: "roleoutd".to_owned(),
        reason: "no server URL given".to_owned(),
    });
    for (index, server) in servers.iter().enumerate() {
        outcome = call(server);
        if !another_may_serve(&outcome) || index + 1 == servers.len() {
            break;
        }
    }
    outcome
}

/// `POST /v1/enroll`.
pub fn enroll(
    agent: &Agent,
    server: &str,
    request: &EnrollRequest,
) -> Result<EnrollResponse, SourceError> {
    let url = format!("{}/v1/enroll", server.trim_end_matches('/'));
    post_json(agent, &url, None, request, "enrolment")
}

/// `GET /v1/trust`: what roleoutd's builder keys vouched for.
pub fn trust(agent: &Agent, server: &str) -> Result<TrustAnnouncement, SourceError> {
    let url = format!("{}/v1/trust", server.trim_end_matches('/'));
    let response = agent
        .get(&url)
        .call()
        .map_err(|error| transport("the trust announcement", error))?;
    answer("the trust announcement", response)
}

/// `POST /v1/challenge`: a challenge token for `machine`.
pub fn challenge(agent: &Agent, server: &str, machine: &MachineId) -> Result<String, SourceError> {
    let url = format!("{}/v1/challenge", server.trim_end_matches('/'));
    let answer: ChallengeResponse = post_json(
        agent,
        &url,
        None,
        &ChallengeRequest {
            machine: machine.clone(),
        },
        "the challenge",
    )?;
    Ok(answer.token)
}

fn transport(what: &str, error: ureq::Error) -> SourceError {
    SourceError::Unreachable {
        what: what.to_owned(),
        reason: error.to_string(),
    }
}

/// Reads an answer: a 2xx body as `T`, anything else as a refusal with the
/// server's error code.
fn answer<T: DeserializeOwned>(
    what: &str,
    response: ureq::http::Response<Body>,
) -> Result<T, SourceError> {
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let bytes = body
        .with_config()
        .limit(MAX_JSON_BYTES)
        .read_to_vec()
        .map_err(|error| transport(what, error))?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&bytes).map_err(|error| SourceError::Invalid {
            what: what.to_owned(),
            reason: error.to_string(),
        });
    }
    Err(refusal(what, status, &bytes))
}

/// A 2xx answer as it is; any other as the refusal its error body says.
fn successful(
    what: &str,
    response: ureq::http::Response<Body>,
) -> Result<ureq::http::Response<Body>, SourceError> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let bytes = response
        .into_body()
        .with_config()
        .limit(MAX_JSON_BYTES)
        .read_to_vec()
        .unwrap_or_default();
    Err(refusal(what, status, &bytes))
}

/// The body of a streamed answer (payloads, archives): no limit of its
/// own, as its reader stops at the size the signed metadata gives and
/// checks the digest.
fn unlimited_body(response: ureq::http::Response<Body>) -> Box<dyn Read> {
    Box::new(
        response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader(),
    )
}

fn refusal(what: &str, status: u16, bytes: &[u8]) -> SourceError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => SourceError::Refused {
            what: what.to_owned(),
            code: body.error,
            message: body.message,
        },
        Err(_) if status >= 500 => SourceError::Unreachable {
            what: what.to_owned(),
            reason: format!("HTTP status {status}"),
        },
        Err(_) => SourceError::Invalid {
            what: what.to_owned(),
            reason: format!("HTTP status {status} without an error body"),
        },
    }
}

fn post_json<T: DeserializeOwned>(
    agent: &Agent,
    url: &str,
    session: Option<&str>,
    body: &impl Serialize,
    what: &str,
) -> Result<T, SourceError> {
    let mut request = agent.post(url);
    if let Some(session) = session {
        request = request.header("Authorization", format!("Bearer {session}"));
    }
    let response = request
        .send_json(body)
        .map_err(|error| transport(what, error))?;
    answer(what, response)
}

/// The production [`Source`]: roleoutd over pinned TLS.
pub struct HttpSource {
    agent: Agent,
    /// The roleoutd asked now.
    server: String,
    /// The others of the installation, in the order they are tried next.
    others: std::collections::VecDeque<String>,
    machine: MachineId,
    key: MachineKey,
    session: Option<String>,
}

impl HttpSource {
    /// A source for `machine`, signing challenges with `key`.
    pub fn new(agent: Agent, server: &str, machine: MachineId, key: MachineKey) -> Self {
        Self {
            agent,
            server: server.trim_end_matches('/').to_owned(),
            others: std::collections::VecDeque::new(),
            machine,
            key,
            session: None,
        }
    }

    /// The same source, asking `fallbacks` in order when the roleoutd
    /// asked cannot be reached or cannot serve now. They are instances of
    /// one installation (one token secret): a session one made is good at
    /// the others.
    pub fn with_fallbacks(mut self, fallbacks: &[String]) -> Self {
        self.others = fallbacks
            .iter()
            .map(|server| server.trim_end_matches('/').to_owned())
            .collect();
        self
    }

    /// The roleoutd asked now.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Asks the next roleoutd of the installation from now on (the one
    /// left goes last); false when there is no other.
    fn fail_over(&mut self) -> bool {
        let Some(next) = self.others.pop_front() else {
            return false;
        };
        let left = std::mem::replace(&mut self.server, next);
        tracing::info!(from = %left, to = %self.server, "roleoutd out of reach; asking another");
        self.others.push_back(left);
        true
    }

    /// Proves who this machine is and keeps the session.
    pub fn authenticate(&mut self) -> Result<(), SourceError> {
        let challenge: ChallengeResponse = post_json(
            &self.agent,
            &format!("{}/v1/challenge", self.server),
            None,
            &ChallengeRequest {
                machine: self.machine.clone(),
            },
            "the challenge",
        )?;
        let signature =
            self.key
                .sign_challenge(&challenge.token)
                .map_err(|error| SourceError::Invalid {
                    what: "the challenge".to_owned(),
                    reason: error.to_string(),
                })?;
        let session: SessionResponse = post_json(
            &self.agent,
            &format!("{}/v1/session", self.server),
            None,
            &SessionRequest {
                machine: self.machine.clone(),
                token: challenge.token,
                signature: signature.into(),
            },
            "the session",
        )?;
        self.session = Some(session.session);
        Ok(())
    }

    fn session(&mut self) -> Result<String, SourceError> {
        if self.session.is_none() {
            self.authenticate()?;
        }
        self.session.clone().ok_or_else(|| SourceError::Invalid {
            what: "the session".to_owned(),
            reason: "no session after authentication".to_owned(),
        })
    }

    /// Runs `call` with a session, authenticating again once when the
    /// server says the session expired, and asking again (a bounded number
    /// of times, waiting longer each time) while it says "not now"
    /// (its directory out of reach, too many requests).
    fn with_session<T>(
        &mut self,
        mut call: impl FnMut(&Agent, &str, &str) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let mut waits = NOT_NOW_WAITS.iter();
        let mut reconnects = 1;
        // Each other roleoutd is asked at most once per call before the
        // waits below.
        let mut failovers = self.others.len();
        loop {
            let outcome = self.session().and_then(|session| {
                match call(&self.agent, &self.server, &session) {
                    Err(SourceError::Refused {
                        code: ErrorCode::ExpiredSession,
                        ..
                    }) => {
                        self.session = None;
                        let session = self.session()?;
                        call(&self.agent, &self.server, &session)
                    }
                    other => other,
                }
            });
            if another_may_serve(&outcome) && failovers > 0 && self.fail_over() {
                failovers -= 1;
                continue;
            }
            let wait = match &outcome {
                Err(SourceError::Refused {
                    code: ErrorCode::Unavailable | ErrorCode::TooManyRequests,
                    ..
                }) => waits.next(),
                // A connection lost on the way (or a roleoutd restarting):
                // asked once more on a new connection. Every call here may
                // be asked twice: reads, and reports, which are kept by id.
                Err(SourceError::Unreachable { .. }) if reconnects > 0 => {
                    reconnects -= 1;
                    Some(&RECONNECT_WAIT)
                }
                _ => None,
            };
            match wait {
                Some(wait) => std::thread::sleep(*wait),
                None => return outcome,
            }
        }
    }

    fn get_envelope(&mut self, path: &str, what: &str) -> Result<SignedEnvelope, SourceError> {
        self.with_session(|agent, server, session| {
            let response = agent
                .get(format!("{server}{path}"))
                .header("Authorization", format!("Bearer {session}"))
                .call()
                .map_err(|error| transport(what, error))?;
            answer(what, response)
        })
    }
}

/// How long the agent waits before asking again when roleoutd answers
/// "not now" (503, 429): three more tries within about half a minute, then
/// the run goes on without (what is to be reported stays in the outbox).
const NOT_NOW_WAITS: [std::time::Duration; 3] = [
    std::time::Duration::from_secs(2),
    std::time::Duration::from_secs(8),
    std::time::Duration::from_secs(20),
];

/// How long the agent waits before it asks again on a new connection
/// when one was lost.
const RECONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Images: the upload an imaging source makes of itself.
impl HttpSource {
    /// Of `digests`, those roleoutd's content store lacks (asked in
    /// batches of at most [`MAX_OFFERED_DIGESTS`]).
    pub fn missing_content(&mut self, digests: &[Sha256]) -> Result<Vec<Sha256>, SourceError> {
        let mut missing = Vec::new();
        for batch in digests.chunks(MAX_OFFERED_DIGESTS) {
            let offer = ContentOffer {
                digests: batch.to_vec(),
            };
            let want: ContentWant = self.with_session(|agent, server, session| {
                post_json(
                    agent,
                    &format!("{server}/v1/content/missing"),
                    Some(session),
                    &offer,
                    "the contents roleoutd lacks",
                )
            })?;
            missing.extend(want.missing);
        }
        Ok(missing)
    }

    /// Sends one content of `length` bytes, read from what `open` gives
    /// (called again for a second try), to be stored as `digest`.
    pub fn put_content(
        &mut self,
        digest: &Sha256,
        length: u64,
        open: &dyn Fn() -> std::io::Result<Box<dyn Read>>,
    ) -> Result<ContentStatus, SourceError> {
        let what = format!("content {digest}");
        let stored: ContentStored = self.with_session(|agent, server, session| {
            let mut reader = open().map_err(|error| SourceError::Invalid {
                what: what.clone(),
                reason: error.to_string(),
            })?;
            let request = agent
                .put(format!("{server}/v1/content/{digest}"))
                .header("Authorization", format!("Bearer {session}"))
                .header("Content-Type", "application/octet-stream")
                .header("Content-Length", length.to_string())
                .config()
                // A large file takes as long as it takes to send, but may
                // not stall; the answer must still come in time.
                .timeout_global(None)
                .timeout_per_write(Some(STALL_TIMEOUT))
                .timeout_recv_response(Some(REQUEST_TIMEOUT))
                .build();
            let response = request
                .send(ureq::SendBody::from_reader(&mut reader))
                .map_err(|error| transport(&what, error))?;
            answer(&what, response)
        })?;
        Ok(stored.status)
    }

    /// Stores `description` as an image whose manifest and contents were
    /// sent.
    pub fn store_image(
        &mut self,
        description: &roleout_model::image::ImageDescription,
    ) -> Result<ImageStored, SourceError> {
        let upload = ImageUpload {
            description: description.clone(),
        };
        let what = format!("image {}", description.name);
        self.with_session(|agent, server, session| {
            post_json(
                agent,
                &format!("{server}/v1/images"),
                Some(session),
                &upload,
                &what,
            )
        })
    }
}

/// Jobs: what a target of a deployment asks its engine.
impl HttpSource {
    /// The signed instruction of the job this machine is a target of now.
    pub fn current_job(&mut self) -> Result<SignedEnvelope, SourceError> {
        self.get_envelope("/v1/jobs/current", "the current job")
    }

    /// The imaging archive of job `job`, from byte `from` on.
    pub fn job_archive(
        &mut self,
        job: &roleout_model::job::JobId,
        from: u64,
    ) -> Result<Box<dyn Read + '_>, SourceError> {
        let what = format!("the archive of job {job}");
        let response = self.with_session(|agent, server, session| {
            let mut request = agent
                .get(format!("{server}/v1/jobs/{job}/archive"))
                .header("Authorization", format!("Bearer {session}"));
            if from > 0 {
                request = request.header("Range", format!("bytes={from}-"));
            }
            long_transfer(request, REQUEST_TIMEOUT, STALL_TIMEOUT)
                .call()
                .map_err(|error| transport(&what, error))
                .and_then(|response| successful(&what, response))
        })?;
        // The caller checks the size and digest the signed job gives.
        Ok(unlimited_body(response))
    }

    /// Tells the engine this machine reached `progress.phase` of `job`.
    pub fn job_progress(
        &mut self,
        job: &roleout_model::job::JobId,
        progress: &roleout_model::protocol::JobProgress,
    ) -> Result<Close, SourceError> {
        let what = format!("progress of job {job}");
        self.with_session(|agent, server, session| {
            post_json(
                agent,
                &format!("{server}/v1/jobs/{job}/progress"),
                Some(session),
                progress,
                &what,
            )
        })
    }
}

impl Source for HttpSource {
    fn suite_list(&mut self) -> Result<SignedEnvelope, SourceError> {
        self.get_envelope("/v1/suites", "the suite list")
    }

    fn suite(&mut self, suite: &SuiteId) -> Result<SignedEnvelope, SourceError> {
        self.get_envelope(&format!("/v1/suites/{suite}"), &format!("suite {suite}"))
    }

    fn payload(&mut self, digest: &Sha256) -> Result<Box<dyn Read + '_>, SourceError> {
        let what = format!("payload {digest}");
        let response = self.with_session(|agent, server, session| {
            let request = agent
                .get(format!("{server}/v1/payloads/{digest}"))
                .header("Authorization", format!("Bearer {session}"));
            long_transfer(request, REQUEST_TIMEOUT, STALL_TIMEOUT)
                .call()
                .map_err(|error| transport(&what, error))
                .and_then(|response| successful(&what, response))
        })?;
        // The cache stops reading past the manifest's size and checks the
        // digest, so the body needs no limit of its own here.
        Ok(unlimited_body(response))
    }

    fn report(&mut self, report: &StatusReport) -> Result<AckStatus, SourceError> {
        let what = format!("report {}", report.id);
        let ack: ReportAck = self.with_session(|agent, server, session| {
            post_json(
                agent,
                &format!("{server}/v1/reports"),
                Some(session),
                report,
                &what,
            )
        })?;
        Ok(ack.status)
    }

    fn complete(&mut self, complete: &SuiteComplete) -> Result<Close, SourceError> {
        let what = format!("suite complete {}", complete.id);
        self.with_session(|agent, server, session| {
            post_json(
                agent,
                &format!("{server}/v1/reports/complete"),
                Some(session),
                complete,
                &what,
            )
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod transfer_tests {
    use std::io::Write;
    use std::net::TcpListener;

    use super::*;

    /// A local HTTP server answering one request with `pieces` pieces of
    /// 1 KiB, `gap` apart, after `pause` in the middle; its URL.
    fn trickle(pieces: usize, gap: Duration, pause: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/payload", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                pieces * 1024
            );
            for index in 0..pieces {
                if index == pieces / 2 {
                    std::thread::sleep(pause);
                }
                if stream.write_all(&[7u8; 1024]).is_err() {
                    return;
                }
                let _ = stream.flush();
                std::thread::sleep(gap);
            }
        });
        url
    }

    /// An agent bounded like roleout's, with a whole-call budget of
    /// `global`.
    fn agent(global: Duration) -> Agent {
        Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(global))
            .build()
            .new_agent()
    }

    fn read_all(response: ureq::http::Response<Body>) -> std::io::Result<usize> {
        let mut body = unlimited_body(response);
        let mut bytes = Vec::new();
        body.read_to_end(&mut bytes).map(|_| bytes.len())
    }

    #[test]
    fn a_body_that_keeps_coming_outlasts_the_agents_whole_call_budget() {
        // 20 pieces 50 ms apart: a second, against a budget of 300 ms.
        let budget = Duration::from_millis(300);
        let plain = agent(budget)
            .get(trickle(20, Duration::from_millis(50), Duration::ZERO))
            .call()
            .map_err(std::io::Error::other)
            .and_then(read_all);
        assert!(plain.is_err(), "the budget ends a plain request: {plain:?}");
        let url = trickle(20, Duration::from_millis(50), Duration::ZERO);
        let response = long_transfer(agent(budget).get(url), budget, Duration::from_secs(2))
            .call()
            .unwrap();
        assert_eq!(read_all(response).unwrap(), 20 * 1024);
    }

    #[test]
    fn a_body_that_stops_coming_is_given_up() {
        let url = trickle(20, Duration::ZERO, Duration::from_secs(3));
        let response = long_transfer(
            agent(Duration::from_secs(1)).get(url),
            Duration::from_secs(1),
            Duration::from_millis(500),
        )
        .call()
        .unwrap();
        let error = read_all(response).unwrap_err();
        assert!(
            error.to_string().to_lowercase().contains("timeout")
                || error.to_string().to_lowercase().contains("timed out"),
            "{error}"
        );
    }
}

#[cfg(test)]
mod failover_tests {
    use super::*;

    fn unreachable() -> SourceError {
        SourceError::Unreachable {
            what: "x".to_owned(),
            reason: "refused".to_owned(),
        }
    }

    #[test]
    fn the_next_server_is_asked_only_when_one_is_out_of_reach_or_busy() {
        let servers: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        let mut asked = Vec::new();
        let answer = first_reachable(&servers, |server| {
            asked.push(server.to_owned());
            match server {
                "a" => Err(unreachable()),
                "b" => Err(SourceError::Refused {
                    what: "x".to_owned(),
                    code: ErrorCode::Unavailable,
                    message: "later".to_owned(),
                }),
                _ => Ok(server.to_owned()),
            }
        });
        assert_eq!(answer.ok().as_deref(), Some("c"));
        assert_eq!(asked, ["a", "b", "c"]);

        // A refusal for any other reason is the answer: the next is not asked.
        let mut asked = Vec::new();
        let answer: Result<(), _> = first_reachable(&servers, |server| {
            asked.push(server.to_owned());
            Err(SourceError::Refused {
                what: "x".to_owned(),
                code: ErrorCode::Unauthorized,
                message: "no".to_owned(),
            })
        });
        assert!(matches!(
            answer,
            Err(SourceError::Refused {
                code: ErrorCode::Unauthorized,
                ..
            })
        ));
        assert_eq!(asked, ["a"]);

        // All out of reach: the last one's error.
        let answer: Result<(), _> = first_reachable(&servers, |_| Err(unreachable()));
        assert!(matches!(answer, Err(SourceError::Unreachable { .. })));
    }
}
