//! Challenge nonces claimed once across every roleoutd of an installation:
//! `cn=NONCE,ou=nonces,BASE` (`roleoutNonce`), added when a machine's
//! answer to a challenge is accepted. An LDAP add of an entry that exists
//! fails, so of two roleoutd presented the same answer (a replay sent to
//! another instance behind the balancer), exactly one succeeds. Each entry
//! records when its challenge expires (`roleoutNotAfter`); after that the
//! challenge is refused anyway, and the entry may go.

use std::collections::HashSet;
use std::time::SystemTime;

use ldap3::Scope;
use tracing::instrument;

use crate::connection::Directory;
use crate::error::Result;
use crate::escape;
use crate::machines::generalized_time;

const CLASS: &str = "roleoutNonce";
const NOT_AFTER: &str = "roleoutNotAfter";

fn single(value: &str) -> HashSet<Vec<u8>> {
    HashSet::from([value.as_bytes().to_vec()])
}

impl Directory {
    /// Claims `nonce` (text with no `,`, `+`, `=` or other DN specials
    /// needed: it is escaped) until `not_after`: `Ok(true)` for the first
    /// claim, `Ok(false)` when some roleoutd claimed it before. Makes
    /// `ou=nonces` on first use.
    #[instrument(skip(self, nonce))]
    pub async fn claim_nonce(&self, nonce: &str, not_after: SystemTime) -> Result<bool> {
        let dn = escape::child_dn("cn", nonce, self.layout().nonces());
        let attributes = || {
            vec![
                (b"objectClass".to_vec(), single(CLASS)),
                (b"cn".to_vec(), single(nonce)),
                (
                    NOT_AFTER.as_bytes().to_vec(),
                    single(&generalized_time(not_after)),
                ),
            ]
        };
        match self.add(&dn, attributes()).await {
            Ok(()) => Ok(true),
            Err(error) if error.is_already_exists() => Ok(false),
            // A missing parent: slapd says so (32); 389 Directory Server
            // answers a non-root account's add under a missing parent with
            // insufficient access (50), so as not to tell what exists.
            // Either way the container is made when it is missing and the
            // add tried once more, whose error stands.
            Err(error) if error.is_no_such_object() || error.is_insufficient_access() => {
                self.ensure_container(self.layout().nonces(), "nonces")
                    .await?;
                match self.add(&dn, attributes()).await {
                    Ok(()) => Ok(true),
                    Err(error) if error.is_already_exists() => Ok(false),
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// Removes the nonces whose challenges expired before `now` (one
    /// search, then a delete each); returns how many went. A nonce removed
    /// meanwhile by another roleoutd is not an error.
    #[instrument(skip(self))]
    pub async fn forget_lapsed_nonces(&self, now: SystemTime) -> Result<usize> {
        let filter = format!(
            "(&(objectClass={CLASS})({NOT_AFTER}<={}))",
            generalized_time(now)
        );
        let found = self
            .search_if_present(self.layout().nonces(), Scope::OneLevel, &filter, &["1.1"])
            .await?;
        let mut removed = 0;
        for entry in found {
            match self.delete(&entry.dn).await {
                Ok(()) => removed += 1,
                // A missing parent: slapd says so (32); 389 Directory Server
                // answers a non-root account's add under a missing parent with
                // insufficient access (50), so as not to tell what exists.
                // Either way the container is made when it is missing and the
                // add tried once more, whose error stands.
                Err(error) if error.is_no_such_object() || error.is_insufficient_access() => {}
                Err(error) => return Err(error),
            }
        }
        Ok(removed)
    }
}
