//! The 389 Directory Server the tests run against: a private instance of
//! the directory crate's own ([`Ds389Instance`]), set up as README tells
//! an admin to set up an existing 389 server.

use std::path::Path;

use roleout_directory::Settings;
use roleout_directory::ds389::Ds389Instance;

use crate::Server;

/// A running instance of one test; stopped and removed when dropped.
pub(crate) struct Ds389(Ds389Instance);

impl Ds389 {
    /// Makes and starts an instance; panics (the failure report) naming
    /// what failed.
    pub(crate) fn temporary() -> Ds389 {
        Ds389(Ds389Instance::start().unwrap_or_else(|error| panic!("{error}")))
    }

    /// Stops the server and starts it again.
    pub(crate) fn restart(&mut self) {
        self.0.restart().unwrap_or_else(|error| panic!("{error}"));
    }

    /// Stops the server; its data stays.
    pub(crate) fn stop(&mut self) {
        self.0.stop();
    }

    /// Starts it again after [`Ds389::stop`].
    pub(crate) fn start_again(&mut self) {
        self.0
            .start_again()
            .unwrap_or_else(|error| panic!("{error}"));
    }
}

impl Server for Ds389 {
    fn admin_settings(&self) -> Settings {
        self.0.admin_settings()
    }

    fn builder_settings(&self) -> Settings {
        self.0.builder_settings()
    }

    fn ldapi_url(&self) -> String {
        self.0.ldapi_url()
    }

    fn ldap_url(&self) -> String {
        self.0.ldap_url()
    }

    fn state_dir(&self) -> &Path {
        self.0.state_dir()
    }

    fn name(&self) -> &'static str {
        "389-ds"
    }

    fn another(&self) -> Box<dyn Server> {
        Box::new(Ds389::temporary())
    }
}
