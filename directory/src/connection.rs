//! The connection to the directory and the few primitive operations every
//! other module of this crate is built on.
//!
//! One [`Directory`] holds one multiplexed ldap3 connection (ldap3 runs many
//! operations over one socket concurrently, so clones of the handle are
//! cheap and parallel). When the connection breaks (the server restarts, a
//! network hiccup), the failing operation reports it and the next operation
//! opens a new one: the caller decides whether to retry, since a write whose
//! answer was lost may or may not have happened.
//!
//! Every search goes through `Directory::search_each`, which counts each
//! request it sends, so tests and benchmarks can assert how many round
//! trips a feature costs ([`Directory::search_count`]). A search is sent
//! plain first: one request however many entries it returns, and the
//! cheapest for the server (slapd spends about three times the CPU on one
//! subtree of 96,000 entries returned as a single page of paged results as
//! on the same entries returned plain). An account whose size limit is
//! lower than the entries (slapd's default 500, Active Directory's 1,000)
//! gets sizeLimitExceeded; the search then starts over with the paged
//! results control, and every later search of the same [`Directory`] is
//! paged from the start. The page size asked for is as large as the
//! control allows: a server whose limits allow it (slapd with
//! `size.prtotal=unlimited`) answers in one page; one that caps pages
//! returns smaller ones and the search goes on paging. The managed slapd
//! lifts the size limit for every account (`olcLimits: * size=unlimited`),
//! so its searches are plain.
//!
//! TLS (`ldaps://`, StartTLS) uses rustls with the ring provider, the one
//! provider of the whole of Roleout. The client configuration is built once
//! per [`Directory`], with the provider named explicitly (rustls would
//! otherwise guess a process default) and a root store holding either the
//! certificates of the configured CA file, and nothing else, or the
//! system's roots.

use std::collections::HashSet;
use std::hash::Hash;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use ldap3::adapters::{Adapter, PagedResults};
use ldap3::controls::{Control, ControlType};
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Mod, ResultEntry, Scope,
    SearchEntry, SearchStream,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio::sync::Mutex;
use tracing::instrument;

use crate::error::result_code::SIZE_LIMIT_EXCEEDED;
use crate::error::{DirectoryError, Result};
use crate::layout::Layout;
use crate::settings::{Bind, Secret, Settings};

/// Entries per page asked for: as many as the server allows (see the
/// module comment).
const PAGE_SIZE: i32 = i32::MAX;

/// Where a streaming search hands its entries.
pub(crate) trait EntrySink {
    /// What the sink (or the search) fails with.
    type Error: From<DirectoryError>;
    /// One entry, as it arrives (as ldap3 decoded it; see
    /// `SearchEntry::construct`). An error ends the search.
    fn entry(&mut self, entry: ResultEntry) -> std::result::Result<(), Self::Error>;
    /// The search starts over (a plain search met the size limit and is
    /// sent again paged): forget every entry handed so far.
    fn restart(&mut self);
}

impl EntrySink for Vec<SearchEntry> {
    type Error = DirectoryError;

    fn entry(&mut self, entry: ResultEntry) -> Result<()> {
        // A referral or an intermediate message is not an entry (and
        // `construct` would panic on it); Roleout follows no referral.
        if !entry.is_ref() && !entry.is_intermediate() {
            self.push(SearchEntry::construct(entry));
        }
        Ok(())
    }

    fn restart(&mut self) {
        self.clear();
    }
}

/// How one search request ended.
enum Streamed {
    /// Every entry was handed over.
    Complete,
    /// The server stopped at the account's size limit.
    SizeLimited,
}

/// A connection to the directory, with the layout of Roleout's entries.
///
/// Cloning is cheap and clones share the connection and the search counter.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    layout: Layout,
    /// The TLS client configuration, when some URL talks TLS.
    tls: Option<Arc<ClientConfig>>,
    /// The live connection; `None` after it broke, until the next operation
    /// reopens it.
    handle: Mutex<Option<Ldap>>,
    /// Search requests sent (each page counts once).
    searches: Arc<AtomicU64>,
    /// Operations begun (a search, a read, an add, a modify, a delete, a
    /// rename): the round trips to the directory, pages of a paged search
    /// apart.
    operations: AtomicU64,
    /// Whether a plain search was stopped by the account's size limit:
    /// searches are paged from then on.
    paged: AtomicBool,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("urls", &self.inner.settings.urls)
            .field("base", &self.inner.layout.base())
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Connects to the first URL of `settings` that accepts a connection and
    /// the bind. Fails with [`DirectoryError::Connect`] listing why each URL
    /// failed, or [`DirectoryError::Settings`] for settings that cannot work.
    #[instrument(skip_all, fields(urls = ?settings.urls))]
    pub async fn connect(settings: &Settings) -> Result<Directory> {
        settings.validate()?;
        let tls = tls_config(settings)?;
        let ldap = open(settings, tls.as_ref()).await?;
        Ok(Directory {
            inner: Arc::new(Inner {
                layout: Layout::new(settings),
                tls,
                settings: settings.clone(),
                handle: Mutex::new(Some(ldap)),
                searches: Arc::new(AtomicU64::new(0)),
                operations: AtomicU64::new(0),
                paged: AtomicBool::new(false),
            }),
        })
    }

    /// The settings this directory was opened with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Where Roleout's entries live.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// How many search requests this directory (and its clones) has sent so
    /// far; each page of a paged search counts once.
    pub fn search_count(&self) -> u64 {
        self.inner.searches.load(Ordering::Relaxed)
    }

    /// Signs the account `dn` in with `password` on a connection of its
    /// own: `Ok(Some(directory))` acting as that account from then on (its
    /// access rules apply to everything done through it), `Ok(None)` when
    /// the directory says the credentials are wrong. An empty password is
    /// refused before anything is sent: LDAP would take it as an
    /// unauthenticated bind and succeed.
    #[instrument(skip_all, fields(dn = %dn))]
    pub async fn sign_in(&self, dn: &str, password: &Secret) -> Result<Option<Directory>> {
        if password.expose().is_empty() || dn.trim().is_empty() {
            return Ok(None);
        }
        let settings = self.inner.settings.clone().with_bind(Bind::Simple {
            dn: dn.to_owned(),
            password: password.clone(),
        });
        let unbound = settings.clone().with_bind(Bind::None);
        let mut ldap = open(&unbound, self.inner.tls.as_ref()).await?;
        ldap.with_timeout(settings.connect_timeout);
        match ldap
            .simple_bind(dn, password.expose())
            .await
            .and_then(LdapResult::success)
        {
            Ok(_) => {}
            Err(LdapError::LdapResult { result })
                if result.rc == crate::error::result_code::INVALID_CREDENTIALS =>
            {
                let _ = ldap.unbind().await;
                return Ok(None);
            }
            Err(error) => {
                let _ = ldap.unbind().await;
                return Err(map_error("bind", dn, error, settings.connect_timeout));
            }
        }
        Ok(Some(Directory {
            inner: Arc::new(Inner {
                layout: self.inner.layout.clone(),
                tls: self.inner.tls.clone(),
                settings,
                handle: Mutex::new(Some(ldap)),
                searches: Arc::new(AtomicU64::new(0)),
                operations: AtomicU64::new(0),
                paged: AtomicBool::new(false),
            }),
        }))
    }

    /// How many operations this directory (and its clones) has begun so
    /// far: every search, read, add, modify, delete and rename counts once.
    pub fn operation_count(&self) -> u64 {
        self.inner.operations.load(Ordering::Relaxed)
    }

    /// Closes the connection politely (unbind). Later operations reconnect.
    pub async fn close(&self) {
        let handle = self.inner.handle.lock().await.take();
        if let Some(mut ldap) = handle {
            // The server may be gone already; there is nothing to report.
            let _ = ldap.unbind().await;
        }
    }

    /// A handle on the live connection, reconnecting if it broke.
    async fn handle(&self) -> Result<Ldap> {
        self.inner.operations.fetch_add(1, Ordering::Relaxed);
        let mut guard = self.inner.handle.lock().await;
        if let Some(ldap) = guard.as_mut()
            && !ldap.is_closed()
        {
            let mut ldap = ldap.clone();
            ldap.with_timeout(self.inner.settings.operation_timeout);
            return Ok(ldap);
        }
        *guard = None;
        let ldap = open(&self.inner.settings, self.inner.tls.as_ref()).await?;
        *guard = Some(ldap.clone());
        let mut ldap = ldap;
        ldap.with_timeout(self.inner.settings.operation_timeout);
        Ok(ldap)
    }

    /// A connection of its own with the same settings and bind, for an
    /// operation that holds a connection for long (the change feed's
    /// persistent search, see `crate::feed`) and must not share the
    /// operation timeout of the multiplexed one.
    pub(crate) async fn open_dedicated(&self) -> Result<Ldap> {
        open(&self.inner.settings, self.inner.tls.as_ref()).await
    }

    /// Turns an ldap3 error into ours; a broken connection is forgotten so
    /// the next operation reconnects.
    async fn fail(&self, operation: &'static str, dn: &str, error: LdapError) -> DirectoryError {
        let error = map_error(operation, dn, error, self.inner.settings.operation_timeout);
        if error.is_unavailable() {
            *self.inner.handle.lock().await = None;
        }
        error
    }

    /// Searches `base` with `filter`, returning the attributes named (all
    /// user attributes for an empty list). Pages through the results and
    /// counts each request. A missing base is an error
    /// ([`DirectoryError::is_no_such_object`]).
    #[instrument(skip(self, attributes), level = "debug")]
    pub(crate) async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<Vec<SearchEntry>> {
        let mut entries = Vec::new();
        self.search_each(base, scope, filter, attributes, &mut entries)
            .await?;
        Ok(entries)
    }

    /// [`Directory::search`] of a container that may not exist yet (no
    /// report, build or group was ever written): a missing base gives no
    /// entries rather than an error.
    pub(crate) async fn search_if_present(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<Vec<SearchEntry>> {
        match self.search(base, scope, filter, attributes).await {
            Err(error) if error.is_no_such_object() => Ok(Vec::new()),
            outcome => outcome,
        }
    }

    /// [`Directory::search`], handing each entry to `sink` as it arrives
    /// instead of collecting them: a reader of tens of thousands of
    /// entries keeps only what it takes from each, and frees the rest
    /// while it is still in the cache. An error of the sink ends the
    /// search (abandoning what the server still sends) and is returned as
    /// it is.
    ///
    /// The search is sent plain first. When the server stops it at the
    /// account's size limit, the sink is told to start over
    /// ([`EntrySink::restart`]) and the search is sent again with the
    /// paged-results control, as is every later search of this
    /// directory (see the module comment).
    pub(crate) async fn search_each<S: EntrySink>(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
        sink: &mut S,
    ) -> std::result::Result<(), S::Error> {
        if !self.inner.paged.load(Ordering::Relaxed) {
            match self
                .stream_into(base, scope, filter, attributes, false, sink)
                .await?
            {
                Streamed::Complete => return Ok(()),
                Streamed::SizeLimited => {
                    tracing::debug!(
                        base,
                        "the server's size limit stopped a plain search; searching with pages from now on"
                    );
                    self.inner.paged.store(true, Ordering::Relaxed);
                    sink.restart();
                }
            }
        }
        match self
            .stream_into(base, scope, filter, attributes, true, sink)
            .await?
        {
            Streamed::Complete => Ok(()),
            Streamed::SizeLimited => Err(DirectoryError::Ldap {
                operation: "search",
                dn: base.to_owned(),
                code: SIZE_LIMIT_EXCEEDED,
                message: "the server's size limit for this account stops even paged searches \
                          before their end; lift it for this account (OpenLDAP: olcLimits \
                          size=unlimited, or size.prtotal=unlimited; 389 Directory Server: \
                          nsSizeLimit: -1 on the account's entry)"
                    .to_owned(),
            }
            .into()),
        }
    }

    /// One search request (with `paged`, one request per page), its
    /// entries handed to `sink`.
    async fn stream_into<S: EntrySink>(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
        paged: bool,
        sink: &mut S,
    ) -> std::result::Result<Streamed, S::Error> {
        let mut ldap = self.handle().await?;
        let attributes: Vec<String> = attributes.iter().map(|name| (*name).to_owned()).collect();
        let mut adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> = Vec::with_capacity(2);
        if paged {
            adapters.push(Box::new(PagedResults::new(PAGE_SIZE)));
        }
        adapters.push(Box::new(CountRequests {
            searches: self.inner.searches.clone(),
        }));
        let mut stream = match ldap
            .streaming_search_with(adapters, base, scope, filter, attributes)
            .await
        {
            Ok(stream) => stream,
            Err(error) => return Err(self.fail("search", base, error).await.into()),
        };
        loop {
            match stream.next().await {
                Ok(Some(entry)) => {
                    if let Err(error) = sink.entry(entry) {
                        // The caller's error is the one to report. The
                        // server is told to stop sending; whether it heard
                        // changes nothing for the caller.
                        let _ = stream.finish().await;
                        let handle = stream.ldap_handle();
                        let id = handle.last_id();
                        let _ = handle.abandon(id).await;
                        return Err(error);
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let _ = stream.finish().await;
                    return Err(self.fail("search", base, error).await.into());
                }
            }
        }
        let result = stream.finish().await;
        if result.rc == SIZE_LIMIT_EXCEEDED {
            return Ok(Streamed::SizeLimited);
        }
        match result.success() {
            Ok(_) => Ok(Streamed::Complete),
            Err(error) => Err(self.fail("search", base, error).await.into()),
        }
    }

    /// The DNs of every entry under (and including) `base` that this
    /// connection may see: one paged subtree search, no attributes. For
    /// tools, checks and benchmarks.
    pub async fn subtree_dns(&self, base: &str) -> Result<Vec<String>> {
        let entries = self
            .search(base, Scope::Subtree, "(objectClass=*)", &["1.1"])
            .await?;
        Ok(entries.into_iter().map(|entry| entry.dn).collect())
    }

    /// Reads the entry `dn` (a base search), or `None` when it does not exist.
    pub(crate) async fn read(&self, dn: &str, attributes: &[&str]) -> Result<Option<SearchEntry>> {
        match self
            .search(dn, Scope::Base, "(objectClass=*)", attributes)
            .await
        {
            Ok(entries) => Ok(entries.into_iter().next()),
            Err(error) if error.is_no_such_object() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Adds the entry `dn` with `attributes` (none of the value sets may be
    /// empty).
    #[instrument(skip(self, attributes), level = "debug")]
    pub(crate) async fn add<S>(&self, dn: &str, attributes: Vec<(S, HashSet<S>)>) -> Result<()>
    where
        S: AsRef<[u8]> + Eq + Hash + Send + Sync,
    {
        let mut ldap = self.handle().await?;
        let outcome = ldap.add(dn, attributes).await.and_then(LdapResult::success);
        self.finish("add", dn, outcome).await
    }

    /// Applies `modifications` to the entry `dn`, atomically.
    #[instrument(skip(self, modifications), level = "debug")]
    pub(crate) async fn modify<S>(&self, dn: &str, modifications: Vec<Mod<S>>) -> Result<()>
    where
        S: AsRef<[u8]> + Eq + Hash + Send + Sync,
    {
        let mut ldap = self.handle().await?;
        let outcome = ldap
            .modify(dn, modifications)
            .await
            .and_then(LdapResult::success);
        self.finish("modify", dn, outcome).await
    }

    /// Deletes the (leaf) entry `dn`.
    #[instrument(skip(self), level = "debug")]
    pub(crate) async fn delete(&self, dn: &str) -> Result<()> {
        let mut ldap = self.handle().await?;
        let outcome = ldap.delete(dn).await.and_then(LdapResult::success);
        self.finish("delete", dn, outcome).await
    }

    /// Renames `dn` to the RDN `new_rdn` (already escaped), optionally under
    /// a new parent, dropping the old RDN value.
    #[instrument(skip(self), level = "debug")]
    #[allow(
        dead_code,
        reason = "the catalog mapping renames entries; roles and machines never do"
    )]
    pub(crate) async fn rename(
        &self,
        dn: &str,
        new_rdn: &str,
        new_parent: Option<&str>,
    ) -> Result<()> {
        let mut ldap = self.handle().await?;
        let outcome = ldap
            .modifydn(dn, new_rdn, true, new_parent)
            .await
            .and_then(LdapResult::success);
        self.finish("rename", dn, outcome).await
    }

    async fn finish(
        &self,
        operation: &'static str,
        dn: &str,
        outcome: ldap3::result::Result<LdapResult>,
    ) -> Result<()> {
        match outcome {
            Ok(_) => Ok(()),
            Err(error) => Err(self.fail(operation, dn, error).await),
        }
    }
}

/// The TLS client configuration for `settings`: `None` when no URL talks
/// TLS. Fails with [`DirectoryError::Settings`] naming the CA file when it
/// cannot be read or holds no usable certificate, or when the system has
/// no trusted roots and no CA file is configured.
pub(crate) fn tls_config(settings: &Settings) -> Result<Option<Arc<ClientConfig>>> {
    if !settings.uses_tls() {
        return Ok(None);
    }
    let roots = match &settings.ca_certificate {
        Some(path) => ca_file_roots(path)?,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| {
            DirectoryError::Settings(format!("cannot set up TLS with the ring provider: {error}"))
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// The certificates of the PEM file `path`, as the only trusted roots.
fn ca_file_roots(path: &Path) -> Result<RootCertStore> {
    let fail = |reason: String| {
        Err(DirectoryError::Settings(format!(
            "CA certificate file {}: {reason}",
            path.display()
        )))
    };
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        Err(error) => return fail(format!("cannot be read: {error}")),
    };
    let mut roots = RootCertStore::empty();
    for (index, certificate) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let certificate = match certificate {
            Ok(certificate) => certificate,
            // The library's own text for this one shows the marker as bytes.
            Err(rustls::pki_types::pem::Error::MissingSectionEnd { .. }) => {
                return fail("is not valid PEM: a section has no -----END line".to_owned());
            }
            Err(error) => return fail(format!("is not valid PEM: {error}")),
        };
        if let Err(error) = roots.add(certificate) {
            return fail(format!(
                "certificate {} cannot be used as a trusted root: {error}",
                index + 1
            ));
        }
    }
    if roots.is_empty() {
        return fail("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(roots)
}

/// The system's trusted roots (the ones OpenSSL would use, `SSL_CERT_FILE`
/// and `SSL_CERT_DIR` included). Unreadable ones are skipped as long as
/// some remain.
fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let reasons: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(DirectoryError::Settings(format!(
            "TLS is asked for but the system has no trusted root certificates{}; \
             name the directory's CA with the ca-certificate setting",
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join("; "))
            }
        )));
    }
    for error in &found.errors {
        tracing::debug!(%error, "skipped some system root certificates");
    }
    Ok(roots)
}

/// Opens a connection to the first URL that accepts it and the bind.
async fn open(settings: &Settings, tls: Option<&Arc<ClientConfig>>) -> Result<Ldap> {
    let mut failures = Vec::new();
    for url in &settings.urls {
        let attempt =
            tokio::time::timeout(settings.connect_timeout, open_one(settings, tls, url)).await;
        match attempt {
            Ok(Ok(ldap)) => {
                tracing::debug!(url, "connected to the directory");
                return Ok(ldap);
            }
            Ok(Err(reason)) => failures.push(format!("{url}: {reason}")),
            Err(_) => failures.push(format!(
                "{url}: no answer within {:?}",
                settings.connect_timeout
            )),
        }
    }
    Err(DirectoryError::Connect {
        urls: settings.urls.join(", "),
        reason: failures.join("; "),
    })
}

/// Connects to one URL and binds; the error is the reason in words.
async fn open_one(
    settings: &Settings,
    tls: Option<&Arc<ClientConfig>>,
    url: &str,
) -> std::result::Result<Ldap, String> {
    let starttls = settings.starttls && url.starts_with("ldap://");
    let mut connection_settings = LdapConnSettings::new()
        .set_conn_timeout(settings.connect_timeout)
        .set_starttls(starttls);
    if let Some(config) = tls {
        connection_settings = connection_settings.set_config(config.clone());
    }
    let (connection, mut ldap) = LdapConnAsync::with_settings(connection_settings, url)
        .await
        .map_err(|error| describe_connect_error(error, starttls))?;
    tokio::spawn(async move {
        if let Err(error) = connection.drive().await {
            tracing::debug!(%error, "directory connection ended");
        }
    });
    ldap.with_timeout(settings.connect_timeout);
    let bound = match &settings.bind {
        Bind::None => return Ok(ldap),
        Bind::Simple { dn, password } => ldap.simple_bind(dn, password.expose()).await,
        Bind::SaslExternal => ldap.sasl_external_bind().await,
    };
    match bound.and_then(LdapResult::success) {
        Ok(_) => Ok(ldap),
        Err(error) => {
            let bind_dn = match &settings.bind {
                Bind::Simple { dn, .. } => dn.as_str(),
                _ => "",
            };
            Err(map_error("bind", bind_dn, error, settings.connect_timeout).to_string())
        }
    }
}

/// Why opening a connection failed, in words: TLS failures and a refused
/// StartTLS are told apart from plain network errors.
fn describe_connect_error(error: LdapError, starttls: bool) -> String {
    match error {
        LdapError::LdapResult { result } if starttls => {
            let text = result.text.trim();
            format!(
                "the server refused StartTLS: {} ({}){}",
                crate::error::code_name(result.rc),
                result.rc,
                if text.is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                }
            )
        }
        LdapError::Io { source } => {
            let tls_error = source
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            match tls_error {
                Some(tls_error) => format!("TLS handshake failed: {tls_error}"),
                None if source.kind() == std::io::ErrorKind::UnexpectedEof => format!(
                    "the server closed the connection during the TLS handshake or before \
                     answering ({source}); is it serving TLS there?"
                ),
                None => source.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// Maps an ldap3 error for `operation` on `dn` to a [`DirectoryError`].
fn map_error(
    operation: &'static str,
    dn: &str,
    error: LdapError,
    timeout: Duration,
) -> DirectoryError {
    match error {
        LdapError::LdapResult { result } => {
            let mut message = result.text.trim().to_owned();
            if !result.matched.is_empty() {
                if !message.is_empty() {
                    message.push_str("; ");
                }
                message.push_str(&format!("closest existing entry: {}", result.matched));
            }
            DirectoryError::Ldap {
                operation,
                dn: dn.to_owned(),
                code: result.rc,
                message,
            }
        }
        LdapError::Timeout { .. } => DirectoryError::Timeout {
            operation,
            dn: dn.to_owned(),
            after: timeout,
        },
        LdapError::FilterParsing => DirectoryError::Ldap {
            operation,
            dn: dn.to_owned(),
            // The client-side "filter error" code of the C API.
            code: 87,
            message: "the search filter does not parse".to_owned(),
        },
        other => DirectoryError::ConnectionLost {
            operation,
            dn: dn.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// Counts the search requests of a paged search: the first one, then one
/// more each time a page ends with a cookie (the paging adapter in front of
/// this one then sends the next request).
#[derive(Debug, Clone)]
struct CountRequests {
    searches: Arc<AtomicU64>,
}

#[async_trait]
impl<'a> Adapter<'a, String, Vec<String>> for CountRequests {
    async fn start(
        &mut self,
        stream: &mut SearchStream<'a, String, Vec<String>>,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: Vec<String>,
    ) -> ldap3::result::Result<()> {
        self.searches.fetch_add(1, Ordering::Relaxed);
        stream.start(base, scope, filter, attributes).await
    }

    async fn next(
        &mut self,
        stream: &mut SearchStream<'a, String, Vec<String>>,
    ) -> ldap3::result::Result<Option<ResultEntry>> {
        let next = stream.next().await;
        if let Ok(None) = next {
            let more_pages = stream.res.as_ref().is_some_and(|result| {
                result.ctrls.iter().any(|control| match control {
                    Control(Some(ControlType::PagedResults), raw) => !raw
                        .parse::<ldap3::controls::PagedResults>()
                        .cookie
                        .is_empty(),
                    _ => false,
                })
            });
            if more_pages {
                self.searches.fetch_add(1, Ordering::Relaxed);
            }
        }
        next
    }

    async fn finish(&mut self, stream: &mut SearchStream<'a, String, Vec<String>>) -> LdapResult {
        stream.finish().await
    }
}

/// Reading attribute values from entries, whichever map ldap3 put them in.
///
/// ldap3 puts values in `attrs` when they are valid UTF-8 and in
/// `bin_attrs` otherwise, by value rather than by attribute, and the server
/// chooses the spelling of attribute names: look-ups here ignore case and
/// check both maps.
/// One value, as the set an add or a replace takes.
pub(crate) fn single<T: Eq + Hash>(value: impl Into<T>) -> HashSet<T> {
    HashSet::from([value.into()])
}

pub(crate) trait EntryValues {
    /// Every value of `attribute` as text (binary values are skipped).
    fn texts(&self, attribute: &str) -> Vec<&str>;
    /// The first text value of `attribute`.
    fn text(&self, attribute: &str) -> Option<&str> {
        self.texts(attribute).into_iter().next()
    }
    /// Every value of `attribute` as bytes, text or not.
    fn bytes(&self, attribute: &str) -> Vec<Vec<u8>>;
    /// True when the entry has `class` among its object classes.
    fn has_class(&self, class: &str) -> bool {
        self.texts("objectClass")
            .iter()
            .any(|value| value.eq_ignore_ascii_case(class))
    }
}

impl EntryValues for SearchEntry {
    fn texts(&self, attribute: &str) -> Vec<&str> {
        self.attrs
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(attribute))
            .flat_map(|(_, values)| values.iter().map(String::as_str))
            .collect()
    }

    fn bytes(&self, attribute: &str) -> Vec<Vec<u8>> {
        let text = self
            .attrs
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(attribute))
            .flat_map(|(_, values)| values.iter().map(|value| value.as_bytes().to_vec()));
        let binary = self
            .bin_attrs
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(attribute))
            .flat_map(|(_, values)| values.iter().cloned());
        text.chain(binary).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn values_are_found_in_both_maps_whatever_the_case() {
        let entry = SearchEntry {
            dn: "cn=m,dc=x".to_owned(),
            attrs: HashMap::from([
                (
                    "objectClass".to_owned(),
                    vec!["device".to_owned(), "roleoutMachine".to_owned()],
                ),
                (
                    "userCertificate;binary".to_owned(),
                    vec!["ascii-looking".to_owned()],
                ),
            ]),
            bin_attrs: HashMap::from([(
                "userCertificate;binary".to_owned(),
                vec![vec![0xff, 0x00]],
            )]),
        };
        assert!(entry.has_class("ROLEOUTMACHINE"));
        assert_eq!(entry.text("objectclass"), Some("device"));
        let certificates = entry.bytes("usercertificate;binary");
        assert_eq!(certificates.len(), 2);
        assert!(certificates.contains(&vec![0xff, 0x00]));
        assert!(entry.texts("cn").is_empty());
    }

    #[test]
    fn result_codes_keep_code_dn_and_matched_dn() {
        let error = map_error(
            "add",
            "cn=a,ou=missing,dc=x",
            LdapError::LdapResult {
                result: LdapResult {
                    rc: 32,
                    matched: "dc=x".to_owned(),
                    text: String::new(),
                    refs: vec![],
                    ctrls: vec![],
                },
            },
            Duration::from_secs(1),
        );
        assert!(error.is_no_such_object());
        let text = error.to_string();
        assert!(
            text.contains("cn=a,ou=missing,dc=x") && text.contains("closest existing entry: dc=x"),
            "{text}"
        );
        let timeout = map_error(
            "search",
            "dc=x",
            LdapError::EndOfStream,
            Duration::from_secs(1),
        );
        assert!(timeout.is_unavailable());
    }
}
