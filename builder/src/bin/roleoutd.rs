//! roleoutd: serves role suites to machines that prove who they are.
//!
//! The binary wires the pieces of `roleout_builder::server` together: the
//! settings, the logs, the directory (the managed slapd under the state
//! directory when no URL is configured), roleoutd's secrets, TLS and the
//! HTTP server, and stops them in order on SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use roleout_builder::auth::Authenticator;
use roleout_builder::auth::nonce::NonceCache;
use roleout_builder::server::cache::ServingCache;
use roleout_builder::server::config::{Args, DirectoryChoice, RotationStep, Settings};
use roleout_builder::server::state::{
    ServerState, load_or_create_builder_key, load_or_create_secret,
};
use roleout_builder::server::{serve, tls};
use roleout_directory::{Bind, Directory, LocalDirectory, Secret};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let settings = match Settings::resolve(Args::parse()) {
        Ok(settings) => settings,
        Err(error) => {
            #[allow(clippy::print_stderr, reason = "the binary reports its own failure")]
            {
                eprintln!("roleoutd: {error}");
            }
            return ExitCode::from(2);
        }
    };
    if let Some(step) = settings.rotate {
        return rotate(&settings, step);
    }
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a log file or the journal gets plain
    // text that grep and log shippers read.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--rotate STEP`: one step of a key and certificate rotation, then exit.
fn rotate(settings: &Settings, step: RotationStep) -> ExitCode {
    let done = match step {
        RotationStep::Prepare => roleout_builder::server::rotation::prepare(
            &settings.state_dir,
            &settings.tls,
            settings.tls_validity,
        ),
        RotationStep::Activate => roleout_builder::server::rotation::activate(&settings.state_dir),
    };
    #[allow(
        clippy::print_stdout,
        clippy::print_stderr,
        reason = "a one-shot command says what it did"
    )]
    match done {
        Ok(said) => {
            println!("roleoutd: {said}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("roleoutd: rotation: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(settings: Settings) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&settings.state_dir)
        .with_context(|| format!("while creating {}", settings.state_dir.display()))?;
    // It holds the token secret and the builder key: owner only, also when
    // it was made by someone else beforehand.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&settings.state_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("while making {} private", settings.state_dir.display()))?;
    }
    // The managed slapd is started before the async runtime: its launcher
    // uses blocking LDAP calls, which must not run inside a runtime.
    let local = match &settings.directory {
        DirectoryChoice::Managed => {
            let replication = match &settings.replica {
                None => None,
                Some(replica) => {
                    let secret =
                        std::fs::read_to_string(&replica.secret_file).with_context(|| {
                            format!(
                                "while reading the replication secret {}",
                                replica.secret_file.display()
                            )
                        })?;
                    Some(roleout_directory::Replication {
                        server_id: replica.id,
                        peers: replica.peers.clone(),
                        secret: roleout_directory::Secret::new(secret.trim()),
                        join_credentials: replica.join.clone(),
                    })
                }
            };
            let options = roleout_directory::LocalOptions {
                port: settings.ldap_port,
                replication,
                ..roleout_directory::LocalOptions::default()
            };
            Some(
                LocalDirectory::persistent_with(settings.state_dir.join("ldap"), options)
                    .context("while starting the managed directory")?,
            )
        }
        DirectoryChoice::Remote { .. } => None,
    };
    let directory_settings = match (&settings.directory, &local) {
        (
            DirectoryChoice::Remote {
                urls,
                bind_dn,
                bind_password_file,
                starttls,
                ca_certificate,
            },
            _,
        ) => {
            let bind = match (bind_dn, bind_password_file) {
                (Some(dn), Some(file)) => {
                    let password = std::fs::read_to_string(file)
                        .with_context(|| format!("while reading {}", file.display()))?;
                    Bind::Simple {
                        dn: dn.clone(),
                        password: Secret::new(password.trim_end_matches(['\n', '\r'])),
                    }
                }
                (Some(_), None) => anyhow::bail!("--bind-dn needs --bind-password-file"),
                (None, _) => Bind::SaslExternal,
            };
            let mut directory = roleout_directory::Settings::new(urls.clone()).with_bind(bind);
            directory.starttls = *starttls;
            directory.ca_certificate = ca_certificate.clone();
            if let Some(base) = &settings.base_dn {
                directory = directory.with_base(base.clone());
            }
            directory
        }
        (DirectoryChoice::Managed, Some(local)) => local.builder_settings(),
        (DirectoryChoice::Managed, None) => anyhow::bail!("the managed directory did not start"),
    };
    let directory_settings =
        directory_settings.with_scopes(settings.machines.clone(), settings.roles.clone());
    directory_settings.validate()?;
    let secret = load_or_create_secret(&settings.secret_file)?;
    let builder_key = load_or_create_builder_key(&settings.state_dir)?;
    let tls_files = tls::prepare(&settings.tls, &settings.state_dir, settings.tls_validity)?;
    let tls_fingerprint = tls_files
        .as_ref()
        .and_then(|files| certificate_fingerprint(&files.cert));
    let own_certificate = tls_files.as_ref().map(|files| files.cert.clone());
    let tls_config = match tls_files {
        Some(files) => Some(tls::server_config(&files)?),
        None => None,
    };
    let content_dir = settings.state_dir.join("content");
    std::fs::create_dir_all(&content_dir)
        .with_context(|| format!("while creating {}", content_dir.display()))?;

    // A managed slapd that dies (killed, out of memory) is started again:
    // roleoutd answers 503 meanwhile and reconnects by itself.
    let local = local.map(|local| std::sync::Arc::new(std::sync::Mutex::new(local)));
    let watchdog = local.clone().map(SlapdWatchdog::start);

    let upstream = match &settings.upstream {
        None => None,
        Some((url, certificate)) => {
            let path = certificate.clone().or(own_certificate).context(
                "--upstream needs --upstream-certificate when roleoutd has no TLS certificate of its own",
            )?;
            let pem = std::fs::read(&path).with_context(|| {
                format!("while reading the upstream certificate {}", path.display())
            })?;
            Some(roleout_builder::server::state::Upstream::new(url, &pem)?)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    let result = runtime.block_on(async {
        let directory = Directory::connect(&directory_settings)
            .await
            .context("while connecting to the directory")?;
        let authenticator = Authenticator::new(secret, NonceCache::default())
            .with_challenge_lifetime(settings.challenge_ttl)
            .with_session_lifetime(settings.session_ttl);
        let metrics = Arc::new(roleout_builder::server::metrics::Metrics::new());
        let dashboard = roleout_builder::ui::Dashboard::new(tls_config.is_some())?;
        let state = Arc::new(ServerState {
            cache: ServingCache::new(directory.layout()).with_metrics(metrics.clone()),
            metrics,
            dashboard,
            directory: directory.clone(),
            authenticator,
            builder_key,
            content_dir,
            metadata_ttl: settings.metadata_ttl,
            max_body: settings.max_body,
            retention: settings.retention,
            state_dir: settings.state_dir.clone(),
            gate: roleout_builder::server::gate::Gate::new(
                settings.unauthenticated_budget_kib,
                settings.enrolments_per_minute,
                settings.reports_per_minute,
            ),
            engine: settings.engine.as_ref().map(|(name, _)| name.clone()),
            archives: roleout_builder::server::flights::Flights::default(),
            fetches: roleout_builder::server::flights::Flights::default(),
            upstream,
        });
        if let Some((name, url)) = &settings.engine {
            register_engine(&directory, name, url, tls_fingerprint.as_ref()).await;
        }
        // The content store is collected now and then: logs of pruned
        // reports and payloads of deleted products go.
        let _collector = {
            let state = state.clone();
            let every = settings.collect_every;
            let pending = settings.pending_enrolment;
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                loop {
                    ticks.tick().await;
                    if let Some(pending) = pending {
                        expire_pending_enrolments(&state, pending).await;
                    }
                    collect_content(&state).await;
                }
            })
        };
        // Claimed nonces go once their challenges have expired (any
        // roleoutd of the installation may remove them; a race is no
        // error).
        let _nonces = {
            let directory = directory.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(NONCE_SWEEP);
                loop {
                    ticks.tick().await;
                    match directory
                        .forget_lapsed_nonces(std::time::SystemTime::now())
                        .await
                    {
                        Ok(0) => {}
                        Ok(removed) => tracing::debug!(removed, "lapsed nonces removed"),
                        Err(error) => tracing::warn!(%error, "cannot remove lapsed nonces"),
                    }
                }
            })
        };
        // The feed keeps the cache exact; it stops with the runtime.
        let _feed = {
            let state = state.clone();
            directory.spawn_change_feed(move |event| state.cache.apply(&event))
        };
        serve(
            state,
            settings.listen,
            tls_config,
            &settings.state_dir,
            settings.header_timeout,
            shutdown_signal(),
        )
        .await
        .with_context(|| format!("while serving on {}", settings.listen))?;
        directory.close().await;
        Ok::<_, anyhow::Error>(())
    });
    drop(watchdog);
    if let Some(local) = local {
        local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stop()
            .context("while stopping the managed directory")?;
    }
    result
}

/// How often the nonces of expired challenges are removed.
const NONCE_SWEEP: std::time::Duration = std::time::Duration::from_secs(300);

/// Keeps the managed slapd running: looks every second, and starts it
/// again when it is gone, waiting longer after each start that did not
/// hold (1 s, doubling up to a minute). Stops looking when dropped.
struct SlapdWatchdog {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlapdWatchdog {
    fn start(local: std::sync::Arc<std::sync::Mutex<LocalDirectory>>) -> SlapdWatchdog {
        use std::time::{Duration, Instant};
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("roleoutd-slapd-watchdog".to_owned())
            .spawn(move || {
                let mut pause = Duration::from_secs(1);
                let mut next_start = Instant::now();
                loop {
                    match stopped.recv_timeout(Duration::from_secs(1)) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        // Told to stop, or roleoutd is going away.
                        _ => return,
                    }
                    let mut local = local.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if local.is_running() {
                        pause = Duration::from_secs(1);
                        continue;
                    }
                    if Instant::now() < next_start {
                        continue;
                    }
                    tracing::warn!(log = %local.log_tail(), "the managed directory stopped; starting it again");
                    match local.start() {
                        Ok(()) => tracing::info!("the managed directory runs again"),
                        Err(error) => {
                            tracing::error!(%error, retry_in = ?pause, "the managed directory did not start")
                        }
                    }
                    next_start = Instant::now() + pause;
                    pause = (pause * 2).min(Duration::from_secs(60));
                }
            })
            .ok();
        SlapdWatchdog { stop, thread }
    }
}

impl Drop for SlapdWatchdog {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Completes on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut terminate), Ok(mut interrupt)) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot listen for shutdown signals; stop roleoutd with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

/// One collection of the content store (see `ContentStore::collect`).
/// Nothing is removed when what the directory names cannot be read.
/// Deletes the pending enrolments older than `after` that nobody approved
/// or prepared (see `Directory::expire_pending_enrolments`).
async fn expire_pending_enrolments(state: &ServerState, after: std::time::Duration) {
    let cutoff = std::time::SystemTime::now()
        .checked_sub(after)
        .unwrap_or(std::time::UNIX_EPOCH);
    match state.directory.expire_pending_enrolments(cutoff).await {
        // The change feed tells the serving cache of each deletion.
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(count = removed.len(), "pending enrolments expired");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "pending enrolments not expired"),
    }
}

/// SHA-256 of the first certificate (DER) in the PEM file at `path`.
fn certificate_fingerprint(path: &std::path::Path) -> Option<roleout_model::ids::Sha256> {
    let pem = std::fs::read(path).ok()?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    Some(roleout_model::ids::Sha256::from_digest(
        &ring::digest::digest(&ring::digest::SHA256, &block.contents),
    ))
}

/// Registers this roleoutd as installation engine `name` at `url`. A
/// failure is logged: the engine still serves, and registers at its next
/// start.
async fn register_engine(
    directory: &Directory,
    name: &roleout_model::ids::MachineId,
    url: &str,
    fingerprint: Option<&roleout_model::ids::Sha256>,
) {
    let now = roleout_directory::machines::generalized_time(std::time::SystemTime::now());
    match directory
        .register_engine(name, url, fingerprint, &now)
        .await
    {
        Ok(()) => tracing::info!(engine = %name, %url, "registered as an installation engine"),
        Err(error) => {
            tracing::warn!(engine = %name, %error, "not registered as an installation engine");
        }
    }
}

async fn collect_content(state: &ServerState) {
    /// Younger files may be about to be named by an entry being written.
    const GRACE: std::time::Duration = std::time::Duration::from_secs(3600);
    let store = match roleout_builder::content::ContentStore::new(state.content_dir.clone()) {
        Ok(store) => store,
        Err(error) => {
            tracing::warn!(%error, "content store not collected");
            return;
        }
    };
    let referenced = match roleout_builder::content::referenced_content(&state.directory, &store)
        .await
    {
        Ok(referenced) => referenced,
        Err(error) => {
            tracing::warn!(%error, "content store not collected: what is referenced could not be read");
            return;
        }
    };
    // Imaging archives of images no longer kept go too.
    let archives = state.state_dir.join("archives");
    if let Ok(listing) = std::fs::read_dir(&archives) {
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let manifest = name.split('.').next().unwrap_or_default();
            let kept = roleout_model::ids::Sha256::new(manifest)
                .is_ok_and(|digest| referenced.contains(&digest));
            if !kept && let Err(error) = std::fs::remove_file(entry.path()) {
                tracing::warn!(%error, file = %entry.path().display(), "imaging archive not removed");
            }
        }
    }
    let collected = tokio::task::spawn_blocking(move || store.collect(&referenced, GRACE)).await;
    match collected {
        Ok(Ok(collected)) => tracing::info!(
            removed = collected.files,
            bytes = collected.bytes,
            kept = collected.kept,
            "content store collected"
        ),
        Ok(Err(error)) => tracing::warn!(%error, "content store collection stopped"),
        Err(error) => tracing::warn!(%error, "content store collection failed"),
    }
}
