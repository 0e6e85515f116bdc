//! roleoutd's settings: command-line flags, environment variables and a
//! TOML file, resolved in that order of precedence (a flag beats its
//! environment variable, which beats the file, which beats the default).
//!
//! The raw forms ([`Args`], [`FileConfig`]) are kept apart from the resolved
//! [`Settings`], so that every consumer sees one value per setting and
//! `--help` documents the flags where they are declared.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use roleout_directory::SearchScope;
use roleout_directory::catalog::Retention;
use serde::Deserialize;

/// Serve role suites to machines that prove who they are.
///
/// roleoutd builds a suite per role set from the catalog in the directory,
/// authenticates machines by a signed challenge, serves each machine the
/// suite of its roles (signed with the builder's key) and takes their
/// status reports. With no --directory-url it starts and manages a private
/// slapd under its state directory.
#[derive(Debug, Parser)]
#[command(name = "roleoutd", version = crate::VERSION, about, long_about)]
pub struct Args {
    /// TOML file with any of the settings below (keys as the long flags,
    /// with '_' for '-'; e.g. listen = "0.0.0.0:8443").
    #[arg(long, env = "ROLEOUTD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address and port to listen on.
    #[arg(long, env = "ROLEOUTD_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Directory for roleoutd's own state: the managed slapd (when no
    /// directory URL is given), the TLS certificate it makes, the token
    /// secret, the builder's signing key, and the content store.
    #[arg(long, env = "ROLEOUTD_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// LDAP URL of the directory (ldap://, ldaps:// or ldapi://); repeat
    /// for fallbacks, tried in order. Without one, roleoutd runs the
    /// managed local slapd.
    #[arg(
        long = "directory-url",
        env = "ROLEOUTD_DIRECTORY_URL",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub directory_urls: Vec<String>,

    /// DN to bind as (simple bind); with none, SASL EXTERNAL over ldapi.
    #[arg(long, env = "ROLEOUTD_BIND_DN", value_name = "DN")]
    pub bind_dn: Option<String>,

    /// File holding the bind password (never given on the command line).
    #[arg(long, env = "ROLEOUTD_BIND_PASSWORD_FILE", value_name = "FILE")]
    pub bind_password_file: Option<PathBuf>,

    /// Base DN of Roleout's subtree.
    #[arg(long, env = "ROLEOUTD_BASE_DN", value_name = "DN")]
    pub base_dn: Option<String>,

    /// Use StartTLS on ldap:// URLs.
    #[arg(long, env = "ROLEOUTD_STARTTLS")]
    pub starttls: bool,

    /// Where machine entries are searched for (default: ou=machines under
    /// the base), for machines kept in the organisation's own OUs.
    #[arg(long, env = "ROLEOUTD_MACHINE_BASE", value_name = "DN")]
    pub machine_base: Option<String>,

    /// The filter machine entries match (default: (objectClass=roleoutMachine)).
    #[arg(long, env = "ROLEOUTD_MACHINE_FILTER", value_name = "FILTER")]
    pub machine_filter: Option<String>,

    /// Where role groups are searched for (default: ou=roles under the base).
    #[arg(long, env = "ROLEOUTD_ROLE_BASE", value_name = "DN")]
    pub role_base: Option<String>,

    /// The filter role groups match (default: (objectClass=roleoutRole)).
    #[arg(long, env = "ROLEOUTD_ROLE_FILTER", value_name = "FILTER")]
    pub role_filter: Option<String>,

    /// Report history kept per machine and suite: the reports of this many
    /// newest runs (each component's latest report is always kept).
    #[arg(long, env = "ROLEOUTD_REPORT_HISTORY_RUNS", value_name = "RUNS")]
    pub report_history_runs: Option<u32>,

    /// Reports older than this many days are removed (each component's
    /// latest report is always kept).
    #[arg(long, env = "ROLEOUTD_REPORT_HISTORY_DAYS", value_name = "DAYS")]
    pub report_history_days: Option<u64>,

    /// Seconds a client has to send a whole request head (the first one
    /// on a connection and every later one); slower connections are
    /// closed.
    #[arg(long, env = "ROLEOUTD_HEADER_TIMEOUT", value_name = "SECONDS")]
    pub header_timeout: Option<u64>,

    /// How long the self-signed TLS certificate roleoutd makes stays
    /// valid, in days from when it is made (and from each rotation).
    #[arg(long, env = "ROLEOUTD_TLS_VALIDITY_DAYS", value_name = "DAYS")]
    pub tls_validity_days: Option<u64>,

    /// Rotate the builder key and the self-signed TLS certificate, then
    /// exit: `prepare` makes the next ones and announces them to machines
    /// (endorsed by the current key, at GET /v1/trust); `activate`, once
    /// the machines have run, makes them current (restart roleoutd then).
    #[arg(long, value_name = "STEP", value_parser = ["prepare", "activate"])]
    pub rotate: Option<String>,

    /// Hours between collections of the content store (logs and payloads
    /// no report or product names any more).
    #[arg(long, env = "ROLEOUTD_COLLECT_EVERY_HOURS", value_name = "HOURS")]
    pub collect_every_hours: Option<u64>,

    /// Days after which a pending enrolment nobody approved (and no admin
    /// prepared: no token, no role, no group) is deleted, checked at each
    /// collection; 0 keeps them.
    #[arg(long, env = "ROLEOUTD_PENDING_ENROLMENT_DAYS", value_name = "DAYS")]
    pub pending_enrolment_days: Option<u64>,

    /// PEM file of the CA certificates that alone are trusted for the
    /// directory's TLS (ldaps://, StartTLS); default: the system's roots.
    #[arg(long, env = "ROLEOUTD_LDAP_CA_CERTIFICATE", value_name = "FILE")]
    pub ldap_ca_certificate: Option<PathBuf>,

    /// TLS certificate chain (PEM) to serve; with none, roleoutd makes a
    /// self-signed certificate in its state directory and keeps it.
    #[arg(
        long,
        env = "ROLEOUTD_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM, PKCS#8) of --tls-cert.
    #[arg(
        long,
        env = "ROLEOUTD_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Extra host names or IP addresses for the self-signed certificate.
    #[arg(
        long = "tls-name",
        env = "ROLEOUTD_TLS_NAMES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tls_names: Vec<String>,

    /// Serve plain HTTP (for use behind a TLS-terminating proxy only).
    #[arg(long, env = "ROLEOUTD_NO_TLS")]
    pub no_tls: bool,

    /// File holding the secret that authenticates challenge and session
    /// tokens; every roleoutd behind one load balancer needs the same one.
    /// Default: STATE_DIR/token-secret, made on first start.
    #[arg(long, env = "ROLEOUTD_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// Seconds a challenge stays valid.
    #[arg(long, env = "ROLEOUTD_CHALLENGE_TTL", value_name = "SECONDS")]
    pub challenge_ttl: Option<u64>,

    /// Seconds a session token stays valid.
    #[arg(long, env = "ROLEOUTD_SESSION_TTL", value_name = "SECONDS")]
    pub session_ttl: Option<u64>,

    /// Seconds a signed suite stays valid before the installer refuses it
    /// as stale (freeze protection).
    #[arg(long, env = "ROLEOUTD_METADATA_TTL", value_name = "SECONDS")]
    pub metadata_ttl: Option<u64>,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "ROLEOUTD_MAX_BODY", value_name = "BYTES")]
    pub max_body: Option<usize>,

    /// KiB of request bodies of callers without a session read at once,
    /// all together; past it they are told to come back (503).
    #[arg(long, env = "ROLEOUTD_UNAUTHENTICATED_BUDGET_KIB", value_name = "KIB")]
    pub unauthenticated_budget_kib: Option<u32>,

    /// Enrolments accepted per minute from one source address (0: no
    /// limit).
    #[arg(long, env = "ROLEOUTD_ENROLMENTS_PER_MINUTE", value_name = "COUNT")]
    pub enrolments_per_minute: Option<u32>,

    /// Reports accepted per minute from one machine, after a burst of
    /// eight minutes' worth (0: no limit).
    #[arg(long, env = "ROLEOUTD_REPORTS_PER_MINUTE", value_name = "COUNT")]
    pub reports_per_minute: Option<u32>,

    /// Act as the installation engine NAME of a site: register under ou=engines at start,
    /// and record on each machine that authenticates here that it is reached through NAME.
    #[arg(long, env = "ROLEOUTD_ENGINE", value_name = "NAME")]
    pub engine: Option<String>,

    /// The URL other roleoutd and admins reach this engine at (default: https://LISTEN, or
    /// http:// with --no-tls).
    #[arg(long, env = "ROLEOUTD_ENGINE_URL", value_name = "URL")]
    pub engine_url: Option<String>,

    /// The roleoutd of this installation asked, by digest, for the payloads and image files
    /// this one's content store lacks: an engine's upstream (where images are captured to),
    /// or, for one of several roleoutd behind one name, the one admins import to. Both share
    /// the token secret and the builder key.
    #[arg(long, env = "ROLEOUTD_UPSTREAM", value_name = "URL")]
    pub upstream: Option<String>,

    /// The upstream roleoutd's TLS certificate (PEM), the only one trusted for it (default:
    /// this roleoutd's own, as several roleoutd of one installation share it).
    #[arg(long, env = "ROLEOUTD_UPSTREAM_CERTIFICATE", value_name = "FILE")]
    pub upstream_certificate: Option<PathBuf>,

    /// The loopback port of the managed slapd (default: a free one, kept
    /// across restarts of the same process). Providers of a replicated
    /// directory name each other's.
    #[arg(long, env = "ROLEOUTD_LDAP_PORT", value_name = "PORT")]
    pub ldap_port: Option<u16>,

    /// Run the managed slapd as provider N (1 to 4095) of a replicated
    /// directory (multi-provider syncrepl): with --replica-peer and
    /// --replication-secret-file.
    #[arg(
        long,
        env = "ROLEOUTD_REPLICA_ID",
        value_name = "N",
        requires_all = ["replica_peers", "replication_secret_file"]
    )]
    pub replica_id: Option<u16>,

    /// Another provider's LDAP URL (ldap://HOST:PORT/); repeat, or separate
    /// with commas, for each.
    #[arg(
        long = "replica-peer",
        env = "ROLEOUTD_REPLICA_PEERS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub replica_peers: Vec<String>,

    /// File holding the password the providers bind to each other with
    /// as `cn=replicator` (the same file on every provider; a restart
    /// with another one gives the account the new password). Not empty,
    /// without quotes, backslashes or line breaks inside.
    #[arg(long, env = "ROLEOUTD_REPLICATION_SECRET_FILE", value_name = "FILE")]
    pub replication_secret_file: Option<PathBuf>,

    /// For a provider joining running ones: a copy of one provider's
    /// `ldap/credentials` folder. This provider's database starts empty
    /// and is filled from its peers.
    #[arg(long, env = "ROLEOUTD_REPLICA_JOIN", value_name = "DIR")]
    pub replica_join: Option<PathBuf>,

    /// Log filter (tracing EnvFilter syntax), e.g. "info,roleout_builder=debug".
    #[arg(long, env = "ROLEOUTD_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

/// The same settings read from a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    listen: Option<SocketAddr>,
    state_dir: Option<PathBuf>,
    directory_url: Option<Vec<String>>,
    bind_dn: Option<String>,
    bind_password_file: Option<PathBuf>,
    base_dn: Option<String>,
    starttls: Option<bool>,
    machine_base: Option<String>,
    machine_filter: Option<String>,
    role_base: Option<String>,
    role_filter: Option<String>,
    report_history_runs: Option<u32>,
    report_history_days: Option<u64>,
    collect_every_hours: Option<u64>,
    pending_enrolment_days: Option<u64>,
    tls_validity_days: Option<u64>,
    header_timeout: Option<u64>,
    ldap_ca_certificate: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_names: Option<Vec<String>>,
    no_tls: Option<bool>,
    secret_file: Option<PathBuf>,
    challenge_ttl: Option<u64>,
    session_ttl: Option<u64>,
    metadata_ttl: Option<u64>,
    max_body: Option<usize>,
    unauthenticated_budget_kib: Option<u32>,
    enrolments_per_minute: Option<u32>,
    reports_per_minute: Option<u32>,
    engine: Option<String>,
    engine_url: Option<String>,
    upstream: Option<String>,
    upstream_certificate: Option<PathBuf>,
    ldap_port: Option<u16>,
    replica_id: Option<u16>,
    replica_peers: Option<Vec<String>>,
    replication_secret_file: Option<PathBuf>,
    replica_join: Option<PathBuf>,
    log: Option<String>,
}

/// Where the directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryChoice {
    /// The managed local slapd under the state directory.
    Managed,
    /// An existing directory.
    Remote {
        /// URLs tried in order.
        urls: Vec<String>,
        /// Simple-bind DN, if any.
        bind_dn: Option<String>,
        /// File with the bind password.
        bind_password_file: Option<PathBuf>,
        /// StartTLS on ldap:// URLs.
        starttls: bool,
        /// The only CA certificates trusted for the directory's TLS.
        ca_certificate: Option<PathBuf>,
    },
}

/// A step of a key and certificate rotation (`--rotate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationStep {
    /// Make the next builder key and TLS certificate and announce them.
    Prepare,
    /// Make them current.
    Activate,
}

/// How roleoutd serves TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsChoice {
    /// A certificate roleoutd makes and keeps in its state directory.
    SelfSigned {
        /// Names (DNS or IP) for its subject alternative names.
        names: Vec<String>,
    },
    /// Given PEM files.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Plain HTTP.
    Off,
}

/// roleoutd's resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// State directory.
    pub state_dir: PathBuf,
    /// The directory to use.
    pub directory: DirectoryChoice,
    /// Base DN, if not the default.
    pub base_dn: Option<String>,
    /// Where machine entries are searched for.
    pub machines: SearchScope,
    /// Where role groups are searched for.
    pub roles: SearchScope,
    /// How much report history is kept.
    pub retention: Retention,
    /// Time between collections of the content store.
    pub collect_every: Duration,
    /// How long a pending enrolment waits for approval; `None` for ever.
    pub pending_enrolment: Option<Duration>,
    /// How long a self-signed TLS certificate roleoutd makes stays valid.
    pub tls_validity: Duration,
    /// How long a client has to send a request head.
    pub header_timeout: Duration,
    /// A rotation step to run instead of serving.
    pub rotate: Option<RotationStep>,
    /// TLS.
    pub tls: TlsChoice,
    /// Token secret file.
    pub secret_file: PathBuf,
    /// Challenge lifetime.
    pub challenge_ttl: Duration,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Signed metadata lifetime.
    pub metadata_ttl: Duration,
    /// Body size limit.
    pub max_body: usize,
    /// KiB of bodies of callers without a session read at once.
    pub unauthenticated_budget_kib: u32,
    /// Enrolments per minute per source address (0: no limit).
    pub enrolments_per_minute: u32,
    /// Reports per minute per machine (0: no limit).
    pub reports_per_minute: u32,
    /// The installation engine this roleoutd is, with the URL it registers.
    pub engine: Option<(roleout_model::ids::MachineId, String)>,
    /// As an engine: the roleoutd it fetches image files from, and the
    /// certificate (PEM file) it trusts for it.
    pub upstream: Option<(String, Option<PathBuf>)>,
    /// The managed slapd's loopback port, when fixed.
    pub ldap_port: Option<u16>,
    /// The managed slapd as one provider of several.
    pub replica: Option<ReplicaSettings>,
    /// Log filter.
    pub log: String,
}

/// The managed slapd as one provider of a replicated directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// Its number among the providers.
    pub id: u16,
    /// The other providers' URLs.
    pub peers: Vec<String>,
    /// The file holding the password providers bind to each other with.
    pub secret_file: PathBuf,
    /// A peer's credentials folder, for a provider joining.
    pub join: Option<PathBuf>,
}

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/roleoutd";

/// A setting could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML file is not valid.
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// Settings contradict each other.
    #[error("invalid settings: {0}")]
    Invalid(String),
}

impl Settings {
    /// Resolves flags and environment (already merged by clap) over the
    /// file named by `--config`, over the defaults.
    pub fn resolve(args: Args) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let state_dir = args
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let urls = if args.directory_urls.is_empty() {
            file.directory_url.unwrap_or_default()
        } else {
            args.directory_urls
        };
        let directory = if urls.is_empty() {
            DirectoryChoice::Managed
        } else {
            DirectoryChoice::Remote {
                urls,
                bind_dn: args.bind_dn.or(file.bind_dn),
                bind_password_file: args.bind_password_file.or(file.bind_password_file),
                starttls: args.starttls || file.starttls.unwrap_or(false),
                ca_certificate: args.ldap_ca_certificate.or(file.ldap_ca_certificate),
            }
        };
        let managed = matches!(directory, DirectoryChoice::Managed);
        let no_tls = args.no_tls || file.no_tls.unwrap_or(false);
        let cert = args.tls_cert.or(file.tls_cert);
        let key = args.tls_key.or(file.tls_key);
        let tls = match (no_tls, cert, key) {
            (true, None, None) => TlsChoice::Off,
            (true, _, _) => {
                return Err(ConfigError::Invalid(
                    "--no-tls cannot be combined with --tls-cert/--tls-key".to_owned(),
                ));
            }
            (false, Some(cert), Some(key)) => TlsChoice::Files { cert, key },
            (false, None, None) => {
                let mut names = if args.tls_names.is_empty() {
                    file.tls_names.unwrap_or_default()
                } else {
                    args.tls_names
                };
                for default in ["localhost", "127.0.0.1"] {
                    if !names.iter().any(|name| name == default) {
                        names.push(default.to_owned());
                    }
                }
                TlsChoice::SelfSigned { names }
            }
            (false, _, _) => {
                return Err(ConfigError::Invalid(
                    "tls_cert and tls_key must be given together".to_owned(),
                ));
            }
        };
        let listen = match args.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| ConfigError::Invalid("bad default listen address".to_owned()))?,
        };
        let secret_file = args
            .secret_file
            .or(file.secret_file)
            .unwrap_or_else(|| state_dir.join("token-secret"));
        let seconds = |flag: Option<u64>, file: Option<u64>, default: u64| {
            Duration::from_secs(flag.or(file).unwrap_or(default))
        };
        let engine_scheme = if matches!(tls, TlsChoice::Off) {
            "http"
        } else {
            "https"
        };
        Ok(Settings {
            listen,
            directory,
            base_dn: args.base_dn.or(file.base_dn),
            machines: SearchScope {
                base: args.machine_base.or(file.machine_base),
                filter: args.machine_filter.or(file.machine_filter),
            },
            roles: SearchScope {
                base: args.role_base.or(file.role_base),
                filter: args.role_filter.or(file.role_filter),
            },
            retention: {
                let default = Retention::default();
                Retention {
                    keep_runs: args
                        .report_history_runs
                        .or(file.report_history_runs)
                        .unwrap_or(default.keep_runs)
                        .max(1),
                    max_age_secs: args
                        .report_history_days
                        .or(file.report_history_days)
                        .map_or(default.max_age_secs, |days| {
                            days.saturating_mul(24 * 60 * 60)
                        }),
                }
            },
            tls_validity: Duration::from_secs(
                args.tls_validity_days
                    .or(file.tls_validity_days)
                    .unwrap_or(5 * 365)
                    .max(1)
                    .saturating_mul(24 * 3600),
            ),
            header_timeout: Duration::from_secs(
                args.header_timeout
                    .or(file.header_timeout)
                    .unwrap_or(15)
                    .max(1),
            ),
            rotate: match args.rotate.as_deref() {
                Some("prepare") => Some(RotationStep::Prepare),
                Some("activate") => Some(RotationStep::Activate),
                _ => None,
            },
            collect_every: Duration::from_secs(
                args.collect_every_hours
                    .or(file.collect_every_hours)
                    .unwrap_or(6)
                    .max(1)
                    .saturating_mul(3600),
            ),
            pending_enrolment: match args
                .pending_enrolment_days
                .or(file.pending_enrolment_days)
                .unwrap_or(7)
            {
                0 => None,
                days => Some(Duration::from_secs(days.saturating_mul(24 * 3600))),
            },
            tls,
            secret_file,
            challenge_ttl: seconds(args.challenge_ttl, file.challenge_ttl, 60),
            session_ttl: seconds(args.session_ttl, file.session_ttl, 600),
            metadata_ttl: seconds(args.metadata_ttl, file.metadata_ttl, 7 * 24 * 3600),
            max_body: args.max_body.or(file.max_body).unwrap_or(4 << 20),
            unauthenticated_budget_kib: args
                .unauthenticated_budget_kib
                .or(file.unauthenticated_budget_kib)
                .unwrap_or(8 * 1024),
            enrolments_per_minute: args
                .enrolments_per_minute
                .or(file.enrolments_per_minute)
                .unwrap_or(60),
            reports_per_minute: args
                .reports_per_minute
                .or(file.reports_per_minute)
                .unwrap_or(600),
            upstream: args
                .upstream
                .or(file.upstream)
                .map(|url| (url, args.upstream_certificate.or(file.upstream_certificate))),
            engine: match args.engine.or(file.engine) {
                None => None,
                Some(name) => {
                    let name = roleout_model::ids::MachineId::new(&name).map_err(|error| {
                        ConfigError::Invalid(format!("--engine {name:?}: {error}"))
                    })?;
                    let url = args
                        .engine_url
                        .or(file.engine_url)
                        .unwrap_or_else(|| format!("{engine_scheme}://{listen}"));
                    Some((name, url))
                }
            },
            ldap_port: args.ldap_port.or(file.ldap_port),
            replica: match args.replica_id.or(file.replica_id) {
                None => None,
                Some(id) => {
                    let peers = if args.replica_peers.is_empty() {
                        file.replica_peers.unwrap_or_default()
                    } else {
                        args.replica_peers
                    };
                    let secret_file = args
                        .replication_secret_file
                        .or(file.replication_secret_file)
                        .ok_or_else(|| {
                            ConfigError::Invalid(
                                "--replica-id needs --replication-secret-file".to_owned(),
                            )
                        })?;
                    if peers.is_empty() {
                        return Err(ConfigError::Invalid(
                            "--replica-id needs at least one --replica-peer".to_owned(),
                        ));
                    }
                    if !managed {
                        return Err(ConfigError::Invalid(
                            "--replica-id is for the managed directory; with --directory-url, replicate your own servers (README)".to_owned(),
                        ));
                    }
                    Some(ReplicaSettings {
                        id,
                        peers,
                        secret_file,
                        join: args.replica_join.or(file.replica_join),
                    })
                }
            },
            log: args
                .log
                .or(file.log)
                .unwrap_or_else(|| "info,ldap3=warn,hyper=warn".to_owned()),
            state_dir,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_owned(),
        message: error.to_string().trim().replace('\n', " "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("roleoutd").chain(args.iter().copied()))
            .expect("valid test arguments")
    }

    #[test]
    fn a_replica_is_the_managed_directory_with_its_peers_and_secret() {
        let settings = Settings::resolve(parse(&[
            "--replica-id",
            "2",
            "--replica-peer",
            "ldap://10.0.0.1:389/,ldap://10.0.0.2:389/",
            "--replication-secret-file",
            "/etc/roleoutd/replication.secret",
            "--ldap-port",
            "3890",
        ]))
        .unwrap();
        let replica = settings.replica.unwrap();
        assert_eq!(replica.id, 2);
        assert_eq!(replica.peers.len(), 2);
        assert_eq!(settings.ldap_port, Some(3890));
        let error = Settings::resolve(parse(&[
            "--directory-url",
            "ldap://ldap.example.org/",
            "--replica-id",
            "1",
            "--replica-peer",
            "ldap://10.0.0.1:389/",
            "--replication-secret-file",
            "/s",
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("managed directory"), "{error}");
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let settings = Settings::resolve(parse(&[])).unwrap();
        assert_eq!(settings.directory, DirectoryChoice::Managed);
        assert!(matches!(settings.tls, TlsChoice::SelfSigned { .. }));
        assert_eq!(
            settings.secret_file,
            PathBuf::from(DEFAULT_STATE_DIR).join("token-secret")
        );
    }

    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roleoutd.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nsession_ttl = 30\ndirectory_url = [\"ldap://a\", \"ldap://b\"]\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let settings =
            Settings::resolve(parse(&["--config", config, "--listen", "127.0.0.1:9001"])).unwrap();
        assert_eq!(settings.listen.port(), 9001);
        assert_eq!(settings.session_ttl, Duration::from_secs(30));
        match settings.directory {
            DirectoryChoice::Remote { urls, .. } => assert_eq!(urls, ["ldap://a", "ldap://b"]),
            other => panic!("expected a remote directory, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_file_names_itself_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listen = 12\nnot_a_setting = true\n").unwrap();
        let error = Settings::resolve(parse(&["--config", path.to_str().unwrap()])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("bad.toml"), "{message}");
    }

    #[test]
    fn no_tls_with_a_certificate_is_refused() {
        let error = Settings::resolve(parse(&["--no-tls", "--tls-cert", "a", "--tls-key", "b"]))
            .unwrap_err();
        assert!(error.to_string().contains("--no-tls"));
    }
}
