//! A roleoutd for tests, started for real: a private slapd with the
//! example catalog and its roles, the example payloads in the content
//! store, the `roleoutd` binary on a free loopback port over TLS, and a
//! client that pins roleoutd's self-signed certificate.
//!
//! Tests share one roleoutd while they overlap ([`Server::shared`]): the
//! last test to let go of it stops roleoutd and slapd, so nothing outlives
//! the test run. Each test uses its own machine names.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use roleout_builder::admin::Output;
use roleout_directory::{Directory, LocalDirectory};
use roleout_model::ids::{MachineId, RoleName};
use roleout_model::keys::{
    DEFAULT_CERTIFICATE_VALIDITY, KeyAlgorithm, MachineKey, generate_identity,
};
use roleout_model::protocol::signing::PinnedKey;
use roleout_model::role::Role;
use serde_json::{Value, json};

/// The repository root.
pub(crate) fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the builder crate sits in the repository")
        .to_owned()
}

/// A running roleoutd over its own slapd.
pub(crate) struct Server {
    /// Runs the directory calls of the tests.
    pub(crate) runtime: tokio::runtime::Runtime,
    /// A root connection to the directory roleoutd uses.
    pub(crate) directory: Directory,
    /// roleoutd's state directory.
    pub(crate) state: tempfile::TempDir,
    /// `https://127.0.0.1:PORT`.
    pub(crate) base_url: String,
    /// A client pinning roleoutd's certificate.
    pub(crate) agent: ureq::Agent,
    /// The builder key roleoutd published.
    pub(crate) builder_key: PinnedKey,
    child: Child,
    // Dropped last: slapd outlives roleoutd.
    _local: LocalDirectory,
}

static SHARED: Mutex<Weak<Server>> = Mutex::new(Weak::new());

impl Server {
    /// The roleoutd shared by the tests running now, started if none runs.
    pub(crate) fn shared() -> Arc<Server> {
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(server) = shared.upgrade() {
            return server;
        }
        let server = Arc::new(Server::start(&[]));
        *shared = Arc::downgrade(&server);
        server
    }

    /// A roleoutd of its own, with extra flags.
    pub(crate) fn start(extra_args: &[&str]) -> Server {
        Self::start_on(
            LocalDirectory::temporary().expect("slapd starts"),
            extra_args,
        )
    }

    /// A roleoutd of its own, with extra flags, over the running slapd
    /// `local`.
    pub(crate) fn start_on(local: LocalDirectory, extra_args: &[&str]) -> Server {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let directory = runtime
            .block_on(Directory::connect(&local.settings()))
            .expect("root connection");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut output = Output {
            out: &mut out,
            err: &mut err,
        };
        runtime
            .block_on(roleout_builder::admin::catalog::import(
                &directory,
                &[repository().join("examples")],
                &mut output,
            ))
            .expect("the examples import");
        let role = |name: &str, rank: u32, parent: Option<&str>| Role {
            name: RoleName::new(name).expect("role name"),
            rank,
            parent: parent.map(|parent| RoleName::new(parent).expect("role name")),
            description: None,
        };
        for role in [
            role("end-user", 0, None),
            role("developer", 10, Some("end-user")),
            role("administrator", 20, Some("end-user")),
        ] {
            runtime
                .block_on(directory.create_role(&role))
                .expect("role created");
        }

        let state = tempfile::Builder::new()
            .prefix("roleoutd-")
            .tempdir()
            .expect("state dir");
        fill_content_store(&state.path().join("content"));
        let log = std::fs::File::create(state.path().join("roleoutd.log")).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_roleoutd"));
        command
            .arg("--state-dir")
            .arg(state.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(["--directory-url", &local.ldapi_url()])
            .args(["--base-dn", &local.base()])
            .args(["--log", "info,roleout_builder=debug"])
            // Tests enrol and report far faster than any fleet from one
            // address; the limits have tests of their own (an argument
            // overrides these).
            .env("ROLEOUTD_ENROLMENTS_PER_MINUTE", "0")
            .env("ROLEOUTD_REPORTS_PER_MINUTE", "0")
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = command.spawn().expect("roleoutd starts");
        let address_file = state.path().join("roleoutd.addr");
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = loop {
            if let Ok(text) = std::fs::read_to_string(&address_file)
                && text.ends_with('\n')
            {
                break text.trim().to_owned();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "roleoutd exited with {status}: {}",
                    std::fs::read_to_string(state.path().join("roleoutd.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "roleoutd did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let pem = std::fs::read(state.path().join("tls").join("cert.pem")).expect("cert.pem");
        let certificate = ureq::tls::Certificate::from_pem(&pem).expect("a PEM certificate");
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![certificate])))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let builder_key = PinnedKey::from_base64(
            &std::fs::read_to_string(state.path().join("builder-key.pub")).expect("public key"),
        )
        .expect("a base64url public key");
        Server {
            runtime,
            directory,
            state,
            base_url: format!("https://{address}"),
            agent,
            builder_key,
            child,
            _local: local,
        }
    }

    /// POSTs raw bytes; returns the status and the JSON answer.
    pub(crate) fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        session: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base_url))
            .header("Content-Type", "application/json");
        if let Some(session) = session {
            request = request.header("Authorization", format!("Bearer {session}"));
        }
        let mut response = request.send(body).expect("roleoutd answers");
        let status = response.status().as_u16();
        let bytes = response.body_mut().read_to_vec().expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// POSTs a JSON value.
    pub(crate) fn post(&self, path: &str, body: &Value, session: Option<&str>) -> (u16, Value) {
        self.post_raw(path, serde_json::to_vec(body).expect("json"), session)
    }

    /// GETs `path`; returns the status, the headers and the body.
    pub(crate) fn get(
        &self,
        path: &str,
        session: Option<&str>,
        range: Option<&str>,
    ) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
        let mut request = self.agent.get(format!("{}{path}", self.base_url));
        if let Some(session) = session {
            request = request.header("Authorization", format!("Bearer {session}"));
        }
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        let mut response = request.call().expect("roleoutd answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .expect("body");
        (status, headers, bytes)
    }

    /// GETs a JSON answer.
    pub(crate) fn get_json(&self, path: &str, session: Option<&str>) -> (u16, Value) {
        let (status, _, bytes) = self.get(path, session, None);
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Runs an admin command's future.
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// A one-time enrolment token for `machine`, as `roleout-admin
    /// enroll-token` makes it.
    pub(crate) fn enrolment_token(&self, machine: &str) -> String {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut output = Output {
            out: &mut out,
            err: &mut err,
        };
        self.block_on(roleout_builder::admin::machines::enroll_token(
            &self.directory,
            &machine_id(machine),
            &mut output,
        ))
        .expect("enroll-token")
    }

    /// Makes `machine` a member of `role`.
    pub(crate) fn grant(&self, machine: &str, role: &str) {
        let entry = self
            .block_on(self.directory.machine(&machine_id(machine)))
            .expect("machine read")
            .expect("machine exists");
        self.block_on(
            self.directory
                .add_role_member(&RoleName::new(role).expect("role"), &entry.dn),
        )
        .expect("member added");
    }

    /// Approves `machine` as an admin does (`approve`).
    pub(crate) fn approve(&self, machine: &str) {
        self.approve_key(machine, None).expect("approve");
    }

    /// `approve MACHINE [--fingerprint F]`: what it printed, or its refusal.
    pub(crate) fn approve_key(
        &self,
        machine: &str,
        fingerprint: Option<&str>,
    ) -> Result<String, roleout_builder::admin::CommandFailed> {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut output = Output {
            out: &mut out,
            err: &mut err,
        };
        self.block_on(roleout_builder::admin::machines::approve(
            &self.directory,
            &machine_id(machine),
            fingerprint,
            &mut output,
        ))?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `machine`'s entry as the directory holds it now.
    pub(crate) fn entry(&self, machine: &str) -> roleout_directory::machines::MachineEntry {
        self.block_on(self.directory.machine(&machine_id(machine)))
            .expect("machine read")
            .expect("machine exists")
    }

    /// Disables `machine` as an admin does (`machine disable`).
    pub(crate) fn disable(&self, machine: &str) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut output = Output {
            out: &mut out,
            err: &mut err,
        };
        self.block_on(roleout_builder::admin::machines::disable(
            &self.directory,
            &machine_id(machine),
            &mut output,
        ))
        .expect("disable");
    }

    /// roleoutd's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.state.path().join("roleoutd.log")).unwrap_or_default()
    }

    /// Stops roleoutd's slapd (an outage), or starts it again.
    pub(crate) fn set_directory_running(&mut self, running: bool) {
        if running {
            self._local.start().expect("slapd starts again");
        } else {
            self._local.stop().expect("slapd stops");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stops roleoutd `child` with SIGTERM, as it would be stopped in service
/// (it stops its managed slapd then), and waits for it; SIGKILL after 15 s.
pub(crate) fn stop(child: &mut std::process::Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A roleoutd started by a test, stopped with [`stop`] when dropped, also
/// when the test fails, so no managed slapd outlives it.
pub(crate) struct Roleoutd(pub(crate) std::process::Child);

impl Drop for Roleoutd {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

/// Builds the example payloads and puts each in the content store under
/// its SHA-256.
fn fill_content_store(content: &Path) {
    let built = tempfile::tempdir().expect("temp dir");
    let status = Command::new("sh")
        .arg(repository().join("examples/payloads/build.sh"))
        .arg(built.path())
        .status()
        .expect("build.sh runs");
    assert!(status.success(), "build.sh failed");
    std::fs::create_dir_all(content).expect("content dir");
    let store = roleout_builder::content::ContentStore::new(content).expect("content store");
    for entry in std::fs::read_dir(built.path()).expect("built payloads") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("payload");
        store.put_bytes(&bytes).expect("stored");
    }
}

/// A machine name.
pub(crate) fn machine_id(name: &str) -> MachineId {
    MachineId::new(name).expect("test machine names are valid")
}

/// A machine as the installer makes it: key pair and certificate.
pub(crate) struct TestMachine {
    /// Its name.
    pub(crate) name: String,
    /// Its signing key.
    pub(crate) key: MachineKey,
    /// Its certificate, DER.
    pub(crate) certificate: Vec<u8>,
}

impl TestMachine {
    /// A new machine with a certificate valid from now.
    pub(crate) fn new(name: &str, algorithm: KeyAlgorithm) -> Self {
        Self::valid(
            name,
            algorithm,
            SystemTime::now(),
            DEFAULT_CERTIFICATE_VALIDITY,
        )
    }

    /// A new machine with a certificate valid from `from` for `validity`.
    pub(crate) fn valid(
        name: &str,
        algorithm: KeyAlgorithm,
        from: SystemTime,
        validity: Duration,
    ) -> Self {
        let identity =
            generate_identity(&machine_id(name), algorithm, from, validity).expect("identity");
        Self {
            name: name.to_owned(),
            key: identity.signing_key().expect("key"),
            certificate: identity.certificate_der().to_vec(),
        }
    }

    /// The enrolment request body.
    pub(crate) fn enrolment(&self, token: Option<&str>) -> Value {
        let mut body = json!({
            "machine": self.name,
            "certificate": base64url(&self.certificate),
            "facts": {"os": "linux", "arch": "x86_64"},
        });
        if let Some(token) = token {
            body["enrolment-token"] = json!(token);
        }
        body
    }

    /// Enrols; returns status and answer.
    pub(crate) fn enroll(&self, server: &Server, token: Option<&str>) -> (u16, Value) {
        server.post("/v1/enroll", &self.enrolment(token), None)
    }

    /// A challenge token for this machine.
    pub(crate) fn challenge(&self, server: &Server) -> String {
        let (status, answer) = server.post("/v1/challenge", &json!({"machine": self.name}), None);
        assert_eq!(status, 200, "{answer}");
        answer["token"].as_str().expect("token").to_owned()
    }

    /// The session request answering `token`.
    pub(crate) fn answer(&self, token: &str) -> Value {
        let signature = self.key.sign_challenge(token).expect("sign");
        json!({"machine": self.name, "token": token, "signature": base64url(&signature)})
    }

    /// The enrolment request that presents `new`'s certificate under this
    /// machine's name, vouched for by this machine's key for the challenge
    /// `token` (key rotation).
    pub(crate) fn rotation_to(&self, new: &TestMachine, token: &str) -> Value {
        let fingerprint = roleout_model::ids::Sha256::of(&new.certificate);
        let signature = self
            .key
            .sign_key_proof(token, &fingerprint)
            .expect("sign the key proof");
        let mut body = new.enrolment(None);
        body["machine"] = json!(self.name);
        body["proof"] = json!({"token": token, "signature": base64url(&signature)});
        body
    }

    /// Challenge, signature, session: the session token.
    pub(crate) fn session(&self, server: &Server) -> String {
        let token = self.challenge(server);
        let (status, answer) = server.post("/v1/session", &self.answer(&token), None);
        assert_eq!(status, 200, "{answer}\n{}", server.log());
        answer["session"].as_str().expect("session").to_owned()
    }
}

/// Base64url without padding.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
