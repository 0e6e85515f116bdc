//! A real roleoutd for the benchmarks: a private slapd holding the example
//! catalog and roles, the example payloads in the content store, and the
//! release `roleoutd` binary on a free loopback port over TLS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use roleout_builder::admin::Output;
use roleout_directory::{Directory, LocalDirectory};
use roleout_model::ids::{MachineId, RoleName};
use roleout_model::keys::{DEFAULT_CERTIFICATE_VALIDITY, KeyAlgorithm, MachineKey};
use roleout_model::role::Role;

use crate::bench::repository;

/// A program built next to `roleout-bench` (scripts/bench.sh builds them
/// all in one release build).
pub(crate) fn sibling(program: &str) -> anyhow::Result<PathBuf> {
    let current = std::env::current_exe().context("locating roleout-bench")?;
    let path = current.with_file_name(program);
    if !path.is_file() {
        bail!(
            "{} is missing: build it first (cargo build --release --bin {program})",
            path.display()
        );
    }
    Ok(path)
}

/// Two managed slapd as the providers of one replicated directory
/// (multi-provider syncrepl on loopback ports): the first made with the
/// base entries, the second joining it empty.
pub(crate) fn replicated_pair(secret: &str) -> anyhow::Result<(LocalDirectory, LocalDirectory)> {
    use roleout_directory::{LocalOptions, Replication, Secret};
    let ports = [roleout_tests::free_port(), roleout_tests::free_port()];
    let provider = |index: usize, join: Option<PathBuf>| LocalOptions {
        port: Some(ports[index]),
        replication: Some(Replication {
            server_id: u16::try_from(index + 1).unwrap_or(1),
            peers: vec![format!("ldap://127.0.0.1:{}/", ports[1 - index])],
            secret: Secret::new(secret),
            join_credentials: join,
        }),
        ..LocalOptions::default()
    };
    let first = LocalDirectory::temporary_with(provider(0, None)).context("the first provider")?;
    let second =
        LocalDirectory::temporary_with(provider(1, Some(first.state_dir().join("credentials"))))
            .context("the second provider")?;
    Ok((first, second))
}

/// A running roleoutd over its own slapd.
pub(crate) struct Server {
    /// Runs the directory calls.
    pub(crate) runtime: tokio::runtime::Runtime,
    /// A root connection to roleoutd's directory.
    pub(crate) directory: Directory,
    /// roleoutd's state directory.
    pub(crate) state: tempfile::TempDir,
    /// `https://127.0.0.1:PORT`.
    pub(crate) base_url: String,
    /// roleoutd's certificate, PEM.
    pub(crate) certificate_pem: Vec<u8>,
    /// Its directory's ldapi URL.
    pub(crate) ldapi_url: String,
    /// Roleout's base DN in it.
    pub(crate) base_dn: String,
    child: Child,
    // Dropped last: slapd outlives roleoutd.
    _local: LocalDirectory,
    _others: Vec<LocalDirectory>,
}

impl Server {
    /// Starts slapd with the example catalog and roles, and roleoutd.
    pub(crate) fn start() -> anyhow::Result<Server> {
        let local = LocalDirectory::temporary().context("starting slapd")?;
        Self::start_on(local, Vec::new())
    }

    /// [`Server::start`] over `local`, which the catalog and roles are
    /// written to and roleoutd reads; `others` (other providers of the
    /// same directory) are kept running as long as the server.
    pub(crate) fn start_on(
        local: LocalDirectory,
        others: Vec<LocalDirectory>,
    ) -> anyhow::Result<Server> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let directory = runtime.block_on(Directory::connect(&local.settings()))?;
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
            .map_err(|error| anyhow::anyhow!("importing the examples: {error}"))?;
        for (name, rank, parent) in [
            ("end-user", 0, None),
            ("developer", 10, Some("end-user")),
            ("administrator", 20, Some("end-user")),
        ] {
            let role = Role {
                name: RoleName::new(name)?,
                rank,
                parent: parent.map(RoleName::new).transpose()?,
                description: None,
            };
            runtime.block_on(directory.create_role(&role))?;
        }
        let state = tempfile::Builder::new().prefix("roleoutd-").tempdir()?;
        fill_content_store(&state.path().join("content"))?;
        let log = std::fs::File::create(state.path().join("roleoutd.log"))?;
        let mut child = Command::new(sibling("roleoutd")?)
            .arg("--state-dir")
            .arg(state.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(["--directory-url", &local.ldapi_url()])
            .args(["--base-dn", &local.base()])
            .args(["--log", "warn"])
            // The benchmark enrols thousands of machines from one address.
            .args(["--enrolments-per-minute", "0", "--reports-per-minute", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting roleoutd")?;
        let address = wait_for_address(&mut child, state.path())?;
        let certificate_pem = std::fs::read(state.path().join("tls").join("cert.pem"))?;
        Ok(Server {
            runtime,
            directory,
            ldapi_url: local.ldapi_url(),
            base_dn: local.base(),
            state,
            base_url: format!("https://{address}"),
            certificate_pem,
            child,
            _local: local,
            _others: others,
        })
    }

    /// roleoutd's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client pinning roleoutd's certificate; it keeps its connections
    /// open for reuse.
    pub(crate) fn agent(&self) -> anyhow::Result<ureq::Agent> {
        let certificate = ureq::tls::Certificate::from_pem(&self.certificate_pem)?.to_owned();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![certificate])))
            .build();
        Ok(ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_idle_connections(256)
            .max_idle_connections_per_host(256)
            // Per-phase timeouts, not a global one: with a global timeout
            // ureq resolves every request's address on a new thread (to
            // abort the lookup in time), which made thread creation a
            // visible part of the client's CPU in B3. Addresses here are
            // IP literals and need no lookup.
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_recv_body(Some(Duration::from_secs(60)))
            .build()
            .new_agent())
    }

    /// POSTs JSON; the status and the JSON answer.
    pub(crate) fn post(
        &self,
        agent: &ureq::Agent,
        path: &str,
        body: &Value,
        session: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = agent
            .post(format!("{}{path}", self.base_url))
            .header("Content-Type", "application/json");
        if let Some(session) = session {
            request = request.header("Authorization", format!("Bearer {session}"));
        }
        let mut response = request.send(serde_json::to_vec(body)?)?;
        let status = response.status().as_u16();
        let bytes = response.body_mut().read_to_vec()?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Writes image `name` (the tree of `manifest`, `entries` entries and
    /// `data_bytes` of data, one ext4 file system) to the directory, a job
    /// deploying it to `machine` (through `engine` when given) and the
    /// machine's lease for it, as `roleout-admin deploy` would; the job's id.
    pub(crate) fn stage_deployment(
        &self,
        machine: &MachineId,
        name: &str,
        manifest: &roleout_model::ids::Sha256,
        (entries, data_bytes): (u64, u64),
        engine: Option<&str>,
    ) -> anyhow::Result<roleout_model::job::JobId> {
        use roleout_model::image::{
            Compatibility, FORMAT, ImageDescription, ImageName, OsConfiguration, Partition,
        };
        let entry = self
            .runtime
            .block_on(self.directory.machine(machine))?
            .context("the target's entry")?;
        let description = ImageDescription {
            format: FORMAT.to_owned(),
            name: ImageName::new(name).map_err(anyhow::Error::msg)?,
            captured_at: 0,
            manifest: manifest.clone(),
            entries,
            data_bytes,
            hardware: crate::bench::targets::inventory(1),
            os: OsConfiguration::default(),
            partitions: vec![Partition {
                mount_point: "/".to_owned(),
                fs_type: "ext4".to_owned(),
                device: String::new(),
                size_bytes: 4 * data_bytes.max(1 << 28),
                used_bytes: data_bytes,
                growable: true,
                data_bytes,
                table: None,
            }],
            compatibility: Compatibility::Strict,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let id = roleout_model::job::JobId::generate("image", now, 1);
        self.runtime
            .block_on(self.directory.store_image(&description, None, &[]))?;
        let holder = engine.unwrap_or("roleout-bench");
        self.runtime.block_on(self.directory.create_deployment(
            &roleout_model::job::Deployment {
                id: id.clone(),
                image: description.name.clone(),
                manifest: manifest.clone(),
                started_by: "roleout-bench".to_owned(),
                started_at: now,
                lease_until: now + 3600,
                targets: vec![roleout_model::job::JobTarget {
                    machine: machine.clone(),
                    engine: engine.map(str::to_owned),
                    configuration: roleout_model::image::TargetConfiguration {
                        hostname: machine.to_string(),
                        interfaces: Vec::new(),
                    },
                }],
                scripts: Vec::new(),
            },
        ))?;
        self.runtime
            .block_on(self.directory.acquire_leases(
                std::slice::from_ref(&entry.dn),
                holder,
                id.as_str(),
                now + 3600,
                now,
            ))?
            .map_err(|refused| anyhow::anyhow!("{refused}"))?;
        Ok(id)
    }

    /// Makes `machine` a member of `role`.
    pub(crate) fn grant(&self, machine: &MachineId, role: &str) -> anyhow::Result<()> {
        let entry = self
            .runtime
            .block_on(self.directory.machine(machine))?
            .with_context(|| format!("machine {machine} is not in the directory"))?;
        self.runtime.block_on(
            self.directory
                .add_role_member(&RoleName::new(role)?, &entry.dn),
        )?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM, so roleoutd shuts down as it would in service.
        roleout_tests::stop_child(
            &mut self.child,
            nix::sys::signal::Signal::SIGTERM,
            Duration::from_secs(15),
        );
    }
}

/// A second roleoutd, installation engine of `server`'s installation: its
/// own state and store, `server`'s directory, token secret, builder key
/// and certificate, and `server` as its upstream.
pub(crate) struct Engine {
    /// Its state directory.
    pub(crate) state: tempfile::TempDir,
    /// `https://127.0.0.1:PORT`.
    pub(crate) base_url: String,
    child: Child,
}

impl Engine {
    /// Starts engine `name` of `server`.
    pub(crate) fn start(server: &Server, name: &str) -> anyhow::Result<Engine> {
        Self::start_with(server, &["--engine", name, "--upstream", &server.base_url])
    }

    /// Starts a peer of `server`: another roleoutd behind the same name,
    /// with `server` as its upstream but no engine name.
    pub(crate) fn start_peer(server: &Server) -> anyhow::Result<Engine> {
        Self::start_with(server, &["--upstream", &server.base_url])
    }

    fn start_with(server: &Server, role: &[&str]) -> anyhow::Result<Engine> {
        let state = tempfile::Builder::new()
            .prefix("roleoutd-engine-")
            .tempdir()?;
        roleout_tests::share_installation(server.state.path(), state.path());
        let log = std::fs::File::create(state.path().join("roleoutd.log"))?;
        let mut child = Command::new(sibling("roleoutd")?)
            .arg("--state-dir")
            .arg(state.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(["--directory-url", &server.ldapi_url])
            .args(["--base-dn", &server.base_dn])
            .args(["--log", "info"])
            .args(role)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the engine")?;
        let address = wait_for_address(&mut child, state.path())?;
        Ok(Engine {
            state,
            base_url: format!("https://{address}"),
            child,
        })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The bytes it brought from upstream so far, as its log says.
    pub(crate) fn fetched_bytes(&self) -> anyhow::Result<u64> {
        let log = std::fs::read_to_string(self.state.path().join("roleoutd.log"))?;
        Ok(roleout_tests::fetched_from_upstream(&log, "bytes"))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        roleout_tests::stop_child(
            &mut self.child,
            nix::sys::signal::Signal::SIGTERM,
            Duration::from_secs(15),
        );
    }
}

/// The address a roleoutd with state `state` listens on, once it does.
fn wait_for_address(child: &mut Child, state: &Path) -> anyhow::Result<String> {
    let address_file = state.join("roleoutd.addr");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&address_file)
            && text.ends_with('\n')
        {
            return Ok(text.trim().to_owned());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "roleoutd exited with {status}: {}",
                std::fs::read_to_string(state.join("roleoutd.log")).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("roleoutd did not start listening within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Builds the example payloads and stores each under its SHA-256.
fn fill_content_store(content: &Path) -> anyhow::Result<()> {
    let built = tempfile::tempdir()?;
    let status = Command::new("sh")
        .arg(repository().join("examples/payloads/build.sh"))
        .arg(built.path())
        .stdout(Stdio::null())
        .status()
        .context("running examples/payloads/build.sh")?;
    if !status.success() {
        bail!("examples/payloads/build.sh failed");
    }
    std::fs::create_dir_all(content)?;
    let store = roleout_builder::content::ContentStore::new(content)?;
    for entry in std::fs::read_dir(built.path())? {
        let bytes = std::fs::read(entry?.path())?;
        store.put_bytes(&bytes)?;
    }
    Ok(())
}

/// An enrolled machine: its name and signing key.
pub(crate) struct Machine {
    /// Its name.
    pub(crate) name: MachineId,
    /// Its key.
    pub(crate) key: MachineKey,
}

impl Machine {
    /// A new machine with an Ed25519 key, enrolled with a one-time token
    /// so it is approved at once.
    pub(crate) fn enroll(
        server: &Server,
        agent: &ureq::Agent,
        name: &str,
    ) -> anyhow::Result<Machine> {
        let id = MachineId::new(name)?;
        let identity = roleout_model::keys::generate_identity(
            &id,
            KeyAlgorithm::Ed25519,
            std::time::SystemTime::now(),
            DEFAULT_CERTIFICATE_VALIDITY,
        )?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut output = Output {
            out: &mut out,
            err: &mut err,
        };
        let token = server
            .runtime
            .block_on(roleout_builder::admin::machines::enroll_token(
                &server.directory,
                &id,
                &mut output,
            ))
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let body = json!({
            "machine": name,
            "certificate": base64url(identity.certificate_der()),
            "facts": {"os": "linux", "arch": "x86_64"},
            "enrolment-token": token,
        });
        let (status, answer) = server.post(agent, "/v1/enroll", &body, None)?;
        if status != 200 || answer["status"] != "approved" {
            bail!("enrolment of {name} answered {status}: {answer}");
        }
        Ok(Machine {
            name: id,
            key: identity.signing_key()?,
        })
    }

    /// Challenge, signature, session: the session token.
    pub(crate) fn session(&self, server: &Server, agent: &ureq::Agent) -> anyhow::Result<String> {
        self.session_at(&server.base_url, agent)
    }

    /// [`Machine::session`] with the roleoutd at `base_url`.
    pub(crate) fn session_at(&self, base_url: &str, agent: &ureq::Agent) -> anyhow::Result<String> {
        let post = |path: &str, body: &Value| -> anyhow::Result<(u16, Value)> {
            let mut response = agent
                .post(format!("{base_url}{path}"))
                .header("Content-Type", "application/json")
                .send(serde_json::to_vec(body)?)?;
            let status = response.status().as_u16();
            let bytes = response.body_mut().read_to_vec()?;
            Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        let (status, answer) = post("/v1/challenge", &json!({"machine": self.name.as_str()}))?;
        let token = answer["token"]
            .as_str()
            .filter(|_| status == 200)
            .with_context(|| format!("challenge for {} answered {status}: {answer}", self.name))?;
        let signature = self.key.sign_challenge(token)?;
        let body = json!({
            "machine": self.name.as_str(),
            "token": token,
            "signature": base64url(&signature),
        });
        let (status, answer) = post("/v1/session", &body)?;
        answer["session"]
            .as_str()
            .filter(|_| status == 200)
            .map(str::to_owned)
            .with_context(|| format!("session for {} answered {status}: {answer}", self.name))
    }
}

/// Base64url without padding.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
