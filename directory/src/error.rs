//! The directory crate's one error type.
//!
//! Every failure that reaches a caller says which operation failed on which
//! DN and keeps the LDAP result code, so the admin shell can print "insufficient
//! access (50) while modifying cn=x,ou=roles,..." rather than a bare "error".
//! Failures of the embedded slapd carry the tail of its log, because slapd
//! explains itself only there.

use std::path::PathBuf;
use std::time::Duration;

/// Shorthand for results of this crate.
pub type Result<T, E = DirectoryError> = std::result::Result<T, E>;

/// What went wrong talking to (or running) the directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The server answered an operation with a non-success result code.
    #[error("LDAP {operation} on {dn:?} failed: {} ({code}){}", code_name(*code), message_suffix(message))]
    Ldap {
        /// The operation: "search", "add", "modify", "delete", "rename", "bind".
        operation: &'static str,
        /// The DN the operation was about (the search base for searches).
        dn: String,
        /// The LDAP result code (RFC 4511 section 4.1.9).
        code: u32,
        /// The server's diagnostic message and matched DN, if any.
        message: String,
    },
    /// No configured URL accepted a connection and bind.
    #[error("cannot connect to the directory at {urls}: {reason}")]
    Connect {
        /// The URLs tried, in order, comma separated.
        urls: String,
        /// Why each attempt failed.
        reason: String,
    },
    /// The connection broke while an operation was in flight; the next
    /// operation reconnects.
    #[error("connection to the directory was lost during {operation} on {dn:?}: {reason}")]
    ConnectionLost {
        /// The operation that was in flight.
        operation: &'static str,
        /// The DN it was about.
        dn: String,
        /// What the client library reported.
        reason: String,
    },
    /// The server did not answer within the configured operation timeout.
    #[error("LDAP {operation} on {dn:?} got no answer within {after:?}")]
    Timeout {
        /// The operation that timed out.
        operation: &'static str,
        /// The DN it was about.
        dn: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The embedded directory needs OpenLDAP's server programs.
    #[error(
        "the embedded directory needs OpenLDAP's slapd, which was not found ({program}): \
         install Debian's `slapd` and `ldap-utils` packages"
    )]
    SlapdMissing {
        /// The program that could not be run.
        program: PathBuf,
    },
    /// The loopback port asked for is already taken by another process.
    #[error(
        "port {port} on 127.0.0.1 is already in use; choose another port for the embedded directory"
    )]
    PortInUse {
        /// The port.
        port: u16,
    },
    /// slapd (or slapadd) failed; its log says why.
    #[error("{message}\n--- end of slapd's output ---\n{log_tail}")]
    Slapd {
        /// What Roleout was doing.
        message: String,
        /// The last lines slapd wrote.
        log_tail: String,
    },
    /// A private 389 Directory Server instance could not be made or run.
    #[error("{message}\n--- end of 389 Directory Server's output ---\n{log_tail}")]
    Ds389 {
        /// What Roleout was doing.
        message: String,
        /// The last lines the server or tool wrote.
        log_tail: String,
    },
    /// An entry does not have the shape Roleout expects.
    #[error("entry {dn:?}, attribute {attribute}: {message}")]
    Mapping {
        /// The entry.
        dn: String,
        /// The attribute at fault.
        attribute: String,
        /// What is wrong with it.
        message: String,
    },
    /// An entry Roleout needs does not exist.
    #[error("{what} {name:?} not found in the directory (searched {searched})")]
    NotFound {
        /// What was looked for: "role", "machine", ...
        what: &'static str,
        /// Its name or DN.
        name: String,
        /// Where it was looked for: search base and filter.
        searched: String,
    },
    /// The settings are unusable.
    #[error("invalid directory settings: {0}")]
    Settings(String),
    /// A local file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What Roleout was doing, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl DirectoryError {
    /// A value of `attribute` of the entry `dn` that does not fit.
    pub(crate) fn mapping(dn: &str, attribute: &str, message: impl Into<String>) -> Self {
        DirectoryError::Mapping {
            dn: dn.to_owned(),
            attribute: attribute.to_owned(),
            message: message.into(),
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DirectoryError::Io {
            context: context.into(),
            source,
        }
    }

    /// The LDAP result code, when the server sent one.
    pub fn ldap_code(&self) -> Option<u32> {
        match self {
            DirectoryError::Ldap { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for "no such object" (32): the entry or its parent is missing.
    pub fn is_no_such_object(&self) -> bool {
        self.ldap_code() == Some(result_code::NO_SUCH_OBJECT)
    }

    /// True for "entry already exists" (68).
    pub fn is_already_exists(&self) -> bool {
        self.ldap_code() == Some(result_code::ALREADY_EXISTS)
    }

    /// True for "insufficient access rights" (50).
    pub fn is_insufficient_access(&self) -> bool {
        self.ldap_code() == Some(result_code::INSUFFICIENT_ACCESS)
    }

    /// True when the server could not be reached or went away: the
    /// operation may succeed once the server is back.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DirectoryError::Connect { .. }
                | DirectoryError::ConnectionLost { .. }
                | DirectoryError::Timeout { .. }
        )
    }
}

/// The LDAP result codes Roleout tests for by name.
pub mod result_code {
    /// The server stopped a search at the account's size limit.
    pub const SIZE_LIMIT_EXCEEDED: u32 = 4;
    /// The entry (or the base of a search) does not exist.
    pub const NO_SUCH_OBJECT: u32 = 32;
    /// The bind credentials are wrong.
    pub const INVALID_CREDENTIALS: u32 = 49;
    /// The access rules forbid the operation.
    pub const INSUFFICIENT_ACCESS: u32 = 50;
    /// An entry would violate the schema.
    pub const OBJECT_CLASS_VIOLATION: u32 = 65;
    /// The entry to add exists already.
    pub const ALREADY_EXISTS: u32 = 68;
    /// A value is already present (modify add).
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    /// A value to delete is not present (modify delete).
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
}

/// The RFC 4511 name of a result code, for messages.
pub(crate) fn code_name(code: u32) -> &'static str {
    match code {
        0 => "success",
        1 => "operations error",
        2 => "protocol error",
        3 => "time limit exceeded",
        4 => "size limit exceeded",
        7 => "auth method not supported",
        8 => "stronger auth required",
        11 => "admin limit exceeded",
        12 => "unavailable critical extension",
        13 => "confidentiality required",
        16 => "no such attribute",
        17 => "undefined attribute type",
        18 => "inappropriate matching",
        19 => "constraint violation",
        20 => "attribute or value exists",
        21 => "invalid attribute syntax",
        32 => "no such object",
        34 => "invalid DN syntax",
        48 => "inappropriate authentication",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwilling to perform",
        64 => "naming violation",
        65 => "object class violation",
        66 => "not allowed on non-leaf",
        67 => "not allowed on RDN",
        68 => "entry already exists",
        69 => "object class modifications prohibited",
        80 => "other",
        _ => "LDAP error",
    }
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn ldap_errors_name_operation_dn_and_code() {
        let error = DirectoryError::Ldap {
            operation: "modify",
            dn: "cn=x,ou=roles,dc=example,dc=org".to_owned(),
            code: 50,
            message: "no write access to parent".to_owned(),
        };
        let text = error.to_string();
        assert!(text.contains("modify"), "{text}");
        assert!(text.contains("cn=x,ou=roles,dc=example,dc=org"), "{text}");
        assert!(text.contains("insufficient access rights (50)"), "{text}");
        assert!(text.contains("no write access to parent"), "{text}");
        assert!(error.is_insufficient_access());
        assert!(!error.is_unavailable());
    }

    #[test]
    fn slapd_missing_names_the_packages() {
        let text = DirectoryError::SlapdMissing {
            program: PathBuf::from("/nowhere/slapd"),
        }
        .to_string();
        assert!(text.contains("`slapd`"), "{text}");
        assert!(text.contains("`ldap-utils`"), "{text}");
        assert!(text.contains("/nowhere/slapd"), "{text}");
    }
}
