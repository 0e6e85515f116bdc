//! Leases: who holds a thing (a target machine while an image is applied
//! to it; later a machine's one deployment, a build per criteria, a
//! leader), for which job, until when. A lease is one value on the thing's
//! directory entry, changed only by a compare-and-swap (the directory
//! crate's `acquire_leases`), so two holders racing for one thing cannot
//! both win; it expires on its own, so a holder that vanished blocks no one
//! forever; and each new lease of a thing has a higher serial, which
//! actions carry so that a holder whose lease was taken over is refused
//! (fencing).

use std::fmt;

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// Who holds it (an admin, an installation engine).
    pub holder: String,
    /// The job it is held for.
    pub job: String,
    /// When it ends on its own (Unix seconds).
    pub expires_at: u64,
    /// Its serial: one more than the lease before it on the same thing.
    pub serial: u64,
}

impl Lease {
    /// Whether it has ended at `now` (Unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// Whether it is held by `holder` for `job`.
    pub fn is(&self, holder: &str, job: &str) -> bool {
        self.holder == holder && self.job == job
    }

    /// The stored form: `v1;SERIAL;EXPIRES;HOLDER;JOB`. Holder and job may
    /// not hold `;` (see [`Lease::check`]).
    pub fn to_value(&self) -> String {
        format!(
            "v1;{};{};{};{}",
            self.serial, self.expires_at, self.holder, self.job
        )
    }

    /// Reads the stored form back.
    pub fn parse(value: &str) -> Result<Lease, String> {
        let mut fields = value.splitn(5, ';');
        let bad = || format!("lease {value:?} is not v1;SERIAL;EXPIRES;HOLDER;JOB");
        if fields.next() != Some("v1") {
            return Err(bad());
        }
        let serial = fields
            .next()
            .and_then(|text| text.parse().ok())
            .ok_or_else(bad)?;
        let expires_at = fields
            .next()
            .and_then(|text| text.parse().ok())
            .ok_or_else(bad)?;
        let holder = fields.next().ok_or_else(bad)?.to_owned();
        let job = fields.next().ok_or_else(bad)?.to_owned();
        let lease = Lease {
            holder,
            job,
            expires_at,
            serial,
        };
        lease.check().map_err(|_| bad())?;
        Ok(lease)
    }

    /// Holder and job: 1 to 128 printable characters without `;`.
    pub fn check(&self) -> Result<(), String> {
        for (what, text) in [("holder", &self.holder), ("job", &self.job)] {
            if text.is_empty()
                || text.chars().count() > 128
                || text
                    .chars()
                    .any(|character| character == ';' || character.is_control())
            {
                return Err(format!(
                    "lease {what} {text:?}: 1 to 128 printable characters without ';'"
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "held by {} for job {} until {} (lease {})",
            self.holder, self.job, self.expires_at, self.serial
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_reads_back_and_knows_when_it_ends() {
        let lease = Lease {
            holder: "admin alice".to_owned(),
            job: "deploy-web-7".to_owned(),
            expires_at: 1_800_000_000,
            serial: 4,
        };
        let value = lease.to_value();
        assert_eq!(value, "v1;4;1800000000;admin alice;deploy-web-7");
        assert_eq!(Lease::parse(&value).unwrap(), lease);
        assert!(!lease.expired(1_799_999_999));
        assert!(lease.expired(1_800_000_000));
        for bad in ["", "v2;1;2;a;b", "v1;x;2;a;b", "v1;1;2;a", "v1;1;2;;b"] {
            assert!(Lease::parse(bad).is_err(), "{bad}");
        }
        let mut semicolon = lease;
        semicolon.holder = "a;b".to_owned();
        assert!(semicolon.check().is_err());
    }
}
