//! Where each kind of Roleout entry lives: every DN is derived here, from
//! the settings, so no other module spells a container's name.
//!
//! Under the base (default `ou=roleout,dc=example,dc=org`):
//! `ou=roles`, `ou=machines`, `ou=products`, `ou=suites`, `ou=builds`,
//! `ou=reports`, `ou=images`, `ou=engines`, `ou=jobs`, the service accounts `cn=roleoutd` and `cn=admin`, and the
//! group `cn=admins`. Machines and roles may instead be searched for
//! elsewhere (see [`Settings`]); new machines are still created in Roleout's
//! own `ou=machines`.

use roleout_model::ids::{MachineId, RoleName};

use crate::escape;
use crate::settings::{DEFAULT_MACHINE_FILTER, DEFAULT_ROLE_FILTER, Settings};

/// The DNs of Roleout's containers and entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    base: String,
    roles: String,
    role_filter: String,
    machines: String,
    machine_search_base: String,
    machine_filter: String,
    products: String,
    suites: String,
    builds: String,
    reports: String,
    images: String,
    engines: String,
    jobs: String,
    nonces: String,
}

impl Layout {
    /// Derives the layout from `settings`.
    pub fn new(settings: &Settings) -> Self {
        let base = settings.base.trim().to_owned();
        let under = |ou: &str| format!("ou={ou},{base}");
        let machines = under("machines");
        Layout {
            roles: settings
                .roles
                .base
                .clone()
                .unwrap_or_else(|| under("roles")),
            role_filter: settings
                .roles
                .filter
                .clone()
                .unwrap_or_else(|| DEFAULT_ROLE_FILTER.to_owned()),
            machine_search_base: settings
                .machines
                .base
                .clone()
                .unwrap_or_else(|| machines.clone()),
            machine_filter: settings
                .machines
                .filter
                .clone()
                .unwrap_or_else(|| DEFAULT_MACHINE_FILTER.to_owned()),
            machines,
            products: under("products"),
            suites: under("suites"),
            builds: under("builds"),
            reports: under("reports"),
            images: under("images"),
            engines: under("engines"),
            jobs: under("jobs"),
            nonces: under("nonces"),
            base,
        }
    }

    /// The base DN (`ou=roleout,dc=example,dc=org`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Where roles are searched for and created.
    pub fn roles(&self) -> &str {
        &self.roles
    }

    /// The filter role groups match.
    pub fn role_filter(&self) -> &str {
        &self.role_filter
    }

    /// Roleout's own machine container, where new machine entries go.
    pub fn machines(&self) -> &str {
        &self.machines
    }

    /// Where machine entries are searched for (subtree).
    pub fn machine_search_base(&self) -> &str {
        &self.machine_search_base
    }

    /// The filter machine entries match.
    pub fn machine_filter(&self) -> &str {
        &self.machine_filter
    }

    /// The container of product entries.
    pub fn products(&self) -> &str {
        &self.products
    }

    /// The container of suite entries.
    pub fn suites(&self) -> &str {
        &self.suites
    }

    /// The container of built suites.
    pub fn builds(&self) -> &str {
        &self.builds
    }

    /// The container of status reports.
    pub fn reports(&self) -> &str {
        &self.reports
    }

    /// Where images are kept (`ou=images`).
    pub fn images(&self) -> &str {
        &self.images
    }

    /// Where installation engines register (`ou=engines`).
    pub fn engines(&self) -> &str {
        &self.engines
    }

    /// Where jobs are kept (`ou=jobs`).
    pub fn jobs(&self) -> &str {
        &self.jobs
    }

    /// Where the challenge nonces every roleoutd claimed are kept until
    /// their challenges expire (`ou=nonces`).
    pub fn nonces(&self) -> &str {
        &self.nonces
    }

    /// The DN of job `id`.
    pub fn job_dn(&self, id: &roleout_model::job::JobId) -> String {
        escape::child_dn("cn", id.as_str(), &self.jobs)
    }

    /// The DN of image `name`.
    pub fn image_dn(&self, name: &roleout_model::image::ImageName) -> String {
        escape::child_dn("cn", name.as_str(), &self.images)
    }

    /// The DN of installation engine `name`.
    pub fn engine_dn(&self, name: &MachineId) -> String {
        escape::child_dn("cn", name.as_str(), &self.engines)
    }

    /// The DN a new role called `name` gets.
    pub fn role_dn(&self, name: &RoleName) -> String {
        escape::child_dn("cn", name.as_str(), &self.roles)
    }

    /// The DN a new machine called `name` gets in Roleout's own container.
    pub fn machine_dn(&self, name: &MachineId) -> String {
        escape::child_dn("cn", name.as_str(), &self.machines)
    }

    /// The builder's service account (`cn=roleoutd` under the base).
    pub fn builder_account(&self) -> String {
        format!("cn=roleoutd,{}", self.base)
    }

    /// The admin service account (`cn=admin` under the base).
    pub fn admin_account(&self) -> String {
        format!("cn=admin,{}", self.base)
    }

    /// The account the providers of a replicated directory bind to each
    /// other as (`cn=replicator` under the base): it reads everything, the
    /// passwords included, and writes nothing.
    pub fn replicator_account(&self) -> String {
        format!("cn=replicator,{}", self.base)
    }

    /// The group whose members may change everything (`cn=admins`).
    pub fn admins_group(&self) -> String {
        format!("cn=admins,{}", self.base)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn defaults_put_everything_under_the_base() {
        let layout = Layout::new(&Settings::new(["ldap://h/"]));
        assert_eq!(layout.roles(), "ou=roles,ou=roleout,dc=example,dc=org");
        assert_eq!(
            layout.machine_search_base(),
            "ou=machines,ou=roleout,dc=example,dc=org"
        );
        assert_eq!(layout.machine_filter(), "(objectClass=roleoutMachine)");
        assert_eq!(layout.builds(), "ou=builds,ou=roleout,dc=example,dc=org");
        let role = RoleName::new("developer").unwrap();
        assert_eq!(
            layout.role_dn(&role),
            "cn=developer,ou=roles,ou=roleout,dc=example,dc=org"
        );
    }

    #[test]
    fn machines_and_roles_can_live_elsewhere() {
        let mut settings = Settings::new(["ldap://h/"]).with_base("ou=sw,dc=corp");
        settings.machines.base = Some("ou=Computers,dc=corp".to_owned());
        settings.machines.filter = Some("(objectClass=device)".to_owned());
        settings.roles.base = Some("ou=Groups,dc=corp".to_owned());
        let layout = Layout::new(&settings);
        assert_eq!(layout.machine_search_base(), "ou=Computers,dc=corp");
        assert_eq!(layout.machine_filter(), "(objectClass=device)");
        assert_eq!(layout.machines(), "ou=machines,ou=sw,dc=corp");
        assert_eq!(layout.roles(), "ou=Groups,dc=corp");
        assert_eq!(layout.role_filter(), "(objectClass=roleoutRole)");
        assert_eq!(layout.reports(), "ou=reports,ou=sw,dc=corp");
    }
}
