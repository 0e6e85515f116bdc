//! How to reach the directory and where Roleout's entries live in it.
//!
//! Settings come from a TOML file or command-line flags (hence `Deserialize`)
//! or from the embedded [`LocalDirectory`](crate::LocalDirectory). Machines
//! and roles are found through a search base and filter rather than fixed
//! containers because organisations already keep their computers and groups
//! somewhere (`ou=Computers`, `(objectClass=device)`); Roleout extends those
//! entries instead of copying them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{DirectoryError, Result};

/// The base DN used when none is configured.
pub const DEFAULT_BASE: &str = "ou=roleout,dc=example,dc=org";

/// Filter selecting machine entries when none is configured.
pub const DEFAULT_MACHINE_FILTER: &str = "(objectClass=roleoutMachine)";

/// Filter selecting role groups when none is configured.
pub const DEFAULT_ROLE_FILTER: &str = "(objectClass=roleoutRole)";

/// Everything needed to connect to the directory and find Roleout's entries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// Server URLs (`ldap://`, `ldaps://`, `ldapi://`), tried in order until
    /// one accepts the connection and the bind.
    pub urls: Vec<String>,
    /// How to authenticate.
    #[serde(default)]
    pub bind: Bind,
    /// Upgrade `ldap://` connections with StartTLS (`ldaps://` URLs always
    /// use TLS; `ldapi://` never does).
    #[serde(default)]
    pub starttls: bool,
    /// A PEM file whose certificates are the only ones trusted to sign the
    /// server's certificate over `ldaps://` and StartTLS; with none, the
    /// system's trusted roots are used.
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
    /// Bound on opening a connection and binding, per URL; in seconds in
    /// TOML.
    #[serde(default = "default_connect_timeout", deserialize_with = "seconds")]
    pub connect_timeout: Duration,
    /// Bound on each operation (for searches: on each reply); in seconds in
    /// TOML.
    #[serde(default = "default_operation_timeout", deserialize_with = "seconds")]
    pub operation_timeout: Duration,
    /// The DN under which Roleout keeps its containers.
    #[serde(default = "default_base")]
    pub base: String,
    /// Where machine entries are searched for.
    #[serde(default)]
    pub machines: SearchScope,
    /// Where role groups are searched for.
    #[serde(default)]
    pub roles: SearchScope,
}

/// A search base and filter; either may be left to its default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SearchScope {
    /// The subtree searched; default: Roleout's own container under the base.
    #[serde(default)]
    pub base: Option<String>,
    /// The filter entries must match; default: Roleout's object class.
    #[serde(default)]
    pub filter: Option<String>,
}

/// How the connection authenticates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Bind {
    /// No bind: anonymous access (which Roleout's access rules refuse).
    #[default]
    None,
    /// Simple bind with a DN and a password.
    Simple {
        /// The account's DN.
        dn: String,
        /// Its password.
        password: Secret,
    },
    /// SASL EXTERNAL: the identity of the connection itself (the peer
    /// credentials over `ldapi://`, the client certificate over TLS).
    SaslExternal,
}

/// A password: kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_operation_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_base() -> String {
    DEFAULT_BASE.to_owned()
}

/// Reads a non-negative number of seconds (integer or fraction).
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let value = f64::deserialize(deserializer)?;
    Duration::try_from_secs_f64(value).map_err(|_| {
        serde::de::Error::custom(format!(
            "{value} is not a valid number of seconds (it must be finite and not negative)"
        ))
    })
}

impl Settings {
    /// Settings for `urls` with every other field at its default.
    pub fn new(urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Settings {
            urls: urls.into_iter().map(Into::into).collect(),
            bind: Bind::None,
            starttls: false,
            ca_certificate: None,
            connect_timeout: default_connect_timeout(),
            operation_timeout: default_operation_timeout(),
            base: default_base(),
            machines: SearchScope::default(),
            roles: SearchScope::default(),
        }
    }

    /// The same settings with another bind.
    pub fn with_bind(mut self, bind: Bind) -> Self {
        self.bind = bind;
        self
    }

    /// The same settings with StartTLS on `ldap://` URLs.
    pub fn with_starttls(mut self) -> Self {
        self.starttls = true;
        self
    }

    /// The same settings trusting only the certificates in the PEM file
    /// `ca_certificate` for TLS.
    pub fn with_ca_certificate(mut self, ca_certificate: impl Into<PathBuf>) -> Self {
        self.ca_certificate = Some(ca_certificate.into());
        self
    }

    /// True when some URL will talk TLS: an `ldaps://` URL, or an
    /// `ldap://` one with StartTLS.
    pub fn uses_tls(&self) -> bool {
        self.urls
            .iter()
            .any(|url| url.starts_with("ldaps://") || (self.starttls && url.starts_with("ldap://")))
    }

    /// The same settings searching machines and role groups where
    /// `machines` and `roles` say (a part left `None` keeps its default).
    pub fn with_scopes(mut self, machines: SearchScope, roles: SearchScope) -> Self {
        self.machines = machines;
        self.roles = roles;
        self
    }

    /// The same settings with another base DN.
    pub fn with_base(mut self, base: impl Into<String>) -> Self {
        self.base = base.into();
        self
    }

    /// Checks what can be checked without a server: at least one URL, known
    /// schemes, non-empty DNs, filters in parentheses.
    pub fn validate(&self) -> Result<()> {
        let fail = |message: String| Err(DirectoryError::Settings(message));
        if self.urls.is_empty() {
            return fail("no directory URL is configured".to_owned());
        }
        for url in &self.urls {
            let scheme = url.split("://").next().unwrap_or_default();
            if !url.contains("://") || !matches!(scheme, "ldap" | "ldaps" | "ldapi") {
                return fail(format!(
                    "URL {url:?} must start with ldap://, ldaps:// or ldapi://"
                ));
            }
        }
        if self.base.trim().is_empty() || !self.base.contains('=') {
            return fail(format!("base DN {:?} is not a DN", self.base));
        }
        for (what, scope) in [("machines", &self.machines), ("roles", &self.roles)] {
            if let Some(base) = &scope.base
                && (base.trim().is_empty() || !base.contains('='))
            {
                return fail(format!("{what} search base {base:?} is not a DN"));
            }
            if let Some(filter) = &scope.filter
                && ldap3::parse_filter(filter).is_err()
            {
                return fail(format!(
                    "{what} filter {filter:?} is not a valid LDAP filter"
                ));
            }
        }
        if let Bind::Simple { dn, .. } = &self.bind
            && !dn.contains('=')
        {
            return fail(format!("bind DN {dn:?} is not a DN"));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_everything_but_the_urls() {
        let settings: Settings = serde_json::from_str(r#"{"urls": ["ldap://h/"]}"#).unwrap();
        assert_eq!(settings, Settings::new(["ldap://h/"]));
        assert_eq!(settings.base, "ou=roleout,dc=example,dc=org");
        assert_eq!(settings.bind, Bind::None);
        settings.validate().unwrap();
    }

    #[test]
    fn binds_timeouts_and_scopes_deserialize() {
        let settings: Settings = serde_json::from_str(
            r#"{
                "urls": ["ldapi://%2Frun%2Fldapi", "ldap://backup/"],
                "bind": {"method": "simple", "dn": "cn=roleoutd,ou=roleout,dc=example,dc=org", "password": "s3cret"},
                "starttls": true,
                "ca-certificate": "/etc/roleout/ldap-ca.pem",
                "connect-timeout": 1.5,
                "operation-timeout": 10,
                "machines": {"base": "ou=Computers,dc=example,dc=org", "filter": "(objectClass=device)"}
            }"#,
        )
        .unwrap();
        assert_eq!(settings.connect_timeout, Duration::from_millis(1500));
        assert!(settings.starttls && settings.uses_tls());
        assert_eq!(
            settings.ca_certificate,
            Some(PathBuf::from("/etc/roleout/ldap-ca.pem"))
        );
        assert_eq!(settings.operation_timeout, Duration::from_secs(10));
        assert_eq!(
            settings.machines.filter.as_deref(),
            Some("(objectClass=device)")
        );
        assert_eq!(settings.roles, SearchScope::default());
        let Bind::Simple { password, .. } = &settings.bind else {
            panic!("expected a simple bind, got {:?}", settings.bind);
        };
        assert_eq!(password.expose(), "s3cret");
        settings.validate().unwrap();
        let external: Bind = serde_json::from_str(r#"{"method": "sasl-external"}"#).unwrap();
        assert_eq!(external, Bind::SaslExternal);
    }

    #[test]
    fn passwords_never_reach_debug_output() {
        let settings = Settings::new(["ldap://h/"]).with_bind(Bind::Simple {
            dn: "cn=a,dc=b".to_owned(),
            password: Secret::new("hunter2"),
        });
        let text = format!("{settings:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("redacted"), "{text}");
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let negative =
            serde_json::from_str::<Settings>(r#"{"urls": ["ldap://h/"], "operation-timeout": -1}"#);
        assert!(negative.is_err());
        let unknown = serde_json::from_str::<Settings>(r#"{"urls": [], "colour": "red"}"#);
        assert!(unknown.is_err());
        let error = Settings::new(Vec::<String>::new()).validate().unwrap_err();
        assert!(error.to_string().contains("no directory URL"), "{error}");
        let error = Settings::new(["http://h/"]).validate().unwrap_err();
        assert!(error.to_string().contains("http://h/"), "{error}");
        let mut settings = Settings::new(["ldap://h/"]);
        settings.roles.filter = Some("(objectClass=groupOfNames".to_owned());
        let error = settings.validate().unwrap_err();
        assert!(error.to_string().contains("roles filter"), "{error}");
    }
}
