//! The change feed: a persistent search that tells a long-running reader
//! (roleoutd) which entries changed, so it can keep what it read in memory
//! and drop exactly what went stale, instead of re-reading the directory
//! on every request.
//!
//! It is LDAP Content Synchronization (RFC 4533) in refreshAndPersist mode,
//! which OpenLDAP offers through the `syncprov` overlay (the embedded slapd
//! loads it). To skip the initial transfer of every entry, the feed first
//! asks for the current synchronization cookie with a refreshOnly search
//! that matches nothing, then persists from that cookie: the server sends
//! the changes made since (normally none), says the refresh is done, and
//! from then on sends each added, modified, renamed or deleted entry as it
//! is committed.
//!
//! What the listener is told, and what it may conclude:
//! - [`FeedEvent::Live`]: from now on every change is reported. Anything
//!   read before may be stale; a cache starts empty here.
//! - [`FeedEvent::Changed`]: one entry changed (its DN after the change;
//!   its object classes and `cn`, unless it was deleted).
//! - [`FeedEvent::Lost`]: changes may go unreported until the next `Live`;
//!   a cache must stop answering. The feed reconnects by itself, waiting
//!   longer after each failure (up to [`MAX_BACKOFF`]).
//! - [`FeedEvent::Unsupported`]: the server does not synchronize this base;
//!   the feed stops for good and readers must read the directory each time.
//!
//! A persistent search on a connection that died without a word (a
//! firewall dropping idle flows) would wait forever, so the feed probes its
//! connection every [`PROBE_INTERVAL`] with a Who am I? request and treats
//! a probe that fails or times out as a lost feed.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use ldap3::controls::{MakeCritical, RefreshMode, SyncDone, SyncInfo, SyncRequest, parse_syncinfo};
use ldap3::exop::WhoAmI;
use ldap3::{Ldap, LdapError, ResultEntry, Scope, SearchEntry};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::connection::Directory;

/// OID of the Sync Request control, as listed in the root DSE.
const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";

/// OID of the Sync Done control, which carries the cookie.
const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";

/// How often the feed's connection is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(15);

/// The longest wait between two attempts to re-establish the feed.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// LDAP result code unavailableCriticalExtension: the server knows the
/// control but will not apply it here (no syncprov on this database).
const UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;

/// e-syncRefreshRequired (RFC 4533 §2.5): the server cannot go on from the
/// cookie given.
const SYNC_REFRESH_REQUIRED: u32 = 4096;

/// A filter no entry matches: the cookie request transfers no entry.
const NOTHING: &str = "(!(objectClass=*))";

/// One changed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryChange {
    /// The entry's DN (after the change, for a rename).
    pub dn: String,
    /// Its object classes, lowercased; empty when it was deleted.
    pub object_classes: Vec<String>,
    /// Its `cn` values; empty when it was deleted or has none.
    pub common_names: Vec<String>,
}

impl EntryChange {
    /// True when the entry carries `class` (compared without case).
    pub fn has_class(&self, class: &str) -> bool {
        self.object_classes
            .iter()
            .any(|name| name.eq_ignore_ascii_case(class))
    }

    /// True when this change is a deletion (nothing but the DN is known).
    pub fn is_deletion(&self) -> bool {
        self.object_classes.is_empty()
    }
}

/// What the feed tells its listener (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// Every change from now on is reported.
    Live,
    /// One entry changed.
    Changed(EntryChange),
    /// Changes may go unreported until the next `Live`.
    Lost {
        /// Why, for the log.
        reason: String,
    },
    /// The server does not synchronize this base; the feed has stopped.
    Unsupported {
        /// Why, for the log.
        reason: String,
    },
}

/// A running change feed; dropping it stops the feed.
#[derive(Debug)]
pub struct ChangeFeed {
    task: JoinHandle<()>,
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How one attempt at the feed ended.
enum Ended {
    Lost(String),
    Unsupported(String),
    /// The server will not go on from the cookie (e-syncRefreshRequired).
    RefreshRequired,
}

impl Directory {
    /// Starts the change feed of everything under the base on a connection
    /// of its own, calling `listener` with each [`FeedEvent`] (from the
    /// feed's task: the listener must be quick and must not block).
    pub fn spawn_change_feed<F>(&self, listener: F) -> ChangeFeed
    where
        F: Fn(FeedEvent) + Send + Sync + 'static,
    {
        let directory = self.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                let (ended, was_live) = watch_once(&directory, &listener).await;
                match ended {
                    Ended::Unsupported(reason) => {
                        info!(%reason, "no change feed: every request reads the directory");
                        listener(FeedEvent::Unsupported { reason });
                        return;
                    }
                    Ended::RefreshRequired => {
                        let reason = "the server asked for a refresh".to_owned();
                        warn!(%reason, retry_in = ?backoff, "change feed lost");
                        listener(FeedEvent::Lost { reason });
                    }
                    Ended::Lost(reason) => {
                        warn!(%reason, retry_in = ?backoff, "change feed lost");
                        listener(FeedEvent::Lost { reason });
                    }
                }
                if was_live {
                    backoff = Duration::from_millis(250);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        ChangeFeed { task }
    }
}

/// One attempt: connect, check support, get a cookie, persist until the
/// feed breaks. Returns how it ended and whether it was live at some point.
async fn watch_once<F>(directory: &Directory, listener: &F) -> (Ended, bool)
where
    F: Fn(FeedEvent) + Send + Sync,
{
    let mut ldap = match directory.open_dedicated().await {
        Ok(ldap) => ldap,
        Err(error) => return (Ended::Lost(error.to_string()), false),
    };
    let timeout = directory.settings().operation_timeout;
    let base = directory.layout().base().to_owned();
    match offers_sync(&mut ldap, timeout).await {
        Ok(true) => {}
        Ok(false) => {
            return (
                Ended::Unsupported(
                    "the server does not offer content synchronization (RFC 4533); \
                     on OpenLDAP, add the syncprov overlay to the database; on 389 \
                     Directory Server, enable the Retro Changelog and Content \
                     Synchronization plugins"
                        .to_owned(),
                ),
                false,
            );
        }
        Err(error) => return (Ended::Lost(error), false),
    }
    let cookie = match current_cookie(&mut ldap, &base, timeout).await {
        Ok(cookie) => cookie,
        Err(ended) => return (ended, false),
    };
    let mut ended = persist(&mut ldap, &base, cookie, timeout, listener).await;
    if let (Ended::RefreshRequired, _) = ended {
        // 389 Directory Server ties a cookie to the search that made it
        // (base, scope and filter), so the cookie of the search matching
        // nothing is refused (RFC 4533 e-syncRefreshRequired): persist
        // from the start, and take the refresh for the present content.
        ended = persist(&mut ldap, &base, None, timeout, listener).await;
        if let (Ended::RefreshRequired, live) = ended {
            ended = (
                Ended::Lost("the server asked for a refresh without a cookie".to_owned()),
                live,
            );
        }
    }
    let _ = ldap.unbind().await;
    ended
}

/// Whether the root DSE lists the Sync Request control.
async fn offers_sync(ldap: &mut Ldap, timeout: Duration) -> Result<bool, String> {
    let (entries, _) = ldap
        .with_timeout(timeout)
        .search("", Scope::Base, "(objectClass=*)", vec!["supportedControl"])
        .await
        .and_then(|result| result.success())
        .map_err(|error| format!("cannot read the root DSE: {error}"))?;
    Ok(entries
        .into_iter()
        .map(SearchEntry::construct)
        .any(|entry| {
            entry
                .attrs
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case("supportedControl"))
                .flat_map(|(_, values)| values)
                .any(|oid| oid == SYNC_REQUEST_OID)
        }))
}

/// The synchronization cookie of the base as it is now, from a
/// refreshOnly search that matches nothing.
async fn current_cookie(
    ldap: &mut Ldap,
    base: &str,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, Ended> {
    let request = SyncRequest {
        mode: RefreshMode::RefreshOnly,
        cookie: None,
        reload_hint: false,
    };
    let result = ldap
        .with_controls(request.critical())
        .with_timeout(timeout)
        .search(base, Scope::Subtree, NOTHING, vec!["1.1"])
        .await
        .map_err(|error| Ended::Lost(format!("cannot ask for a sync cookie: {error}")))?;
    let result = result.1;
    if result.rc == UNAVAILABLE_CRITICAL_EXTENSION {
        return Err(Ended::Unsupported(format!(
            "the server will not synchronize {base} ({}); on OpenLDAP, add the syncprov \
             overlay to the database; on 389 Directory Server, enable the Retro Changelog \
             and Content Synchronization plugins",
            result.text
        )));
    }
    if result.rc != 0 {
        return Err(Ended::Lost(format!(
            "the sync cookie request failed: {result}"
        )));
    }
    // ldap3's control parsers panic on malformed values; a server sending
    // one gets a full refresh instead of a crash.
    let cookie = result
        .ctrls
        .iter()
        .find(|control| control.1.ctype == SYNC_DONE_OID)
        .and_then(|control| {
            std::panic::catch_unwind(AssertUnwindSafe(|| control.1.parse::<SyncDone>()))
                .ok()
                .and_then(|done| done.cookie)
        });
    Ok(cookie)
}

/// Persists from `cookie`, telling `listener` of each change, until the
/// search or the connection fails.
async fn persist<F>(
    ldap: &mut Ldap,
    base: &str,
    cookie: Option<Vec<u8>>,
    timeout: Duration,
    listener: &F,
) -> (Ended, bool)
where
    F: Fn(FeedEvent) + Send + Sync,
{
    let mut prober = ldap.clone();
    // Without a cookie, the refresh sends every entry there is: the
    // present content, not changes.
    let refresh_is_content = cookie.is_none();
    let request = SyncRequest {
        mode: RefreshMode::RefreshAndPersist,
        cookie,
        reload_hint: false,
    };
    let mut stream = match ldap
        .with_controls(request.critical())
        .streaming_search(
            base,
            Scope::Subtree,
            "(objectClass=*)",
            vec!["objectClass", "cn"],
        )
        .await
    {
        Ok(stream) => stream,
        Err(error) => {
            return (
                Ended::Lost(format!("cannot start the persistent search: {error}")),
                false,
            );
        }
    };
    let mut live = false;
    let mut probe = tokio::time::interval(PROBE_INTERVAL);
    probe.tick().await;
    loop {
        tokio::select! {
            // Receiving the next item is cancel-safe (a channel receive),
            // so a probe tick in between loses nothing.
            item = stream.next() => match item {
                Ok(Some(entry)) if entry.is_intermediate() => {
                    if !live && refresh_done(entry) {
                        live = true;
                        listener(FeedEvent::Live);
                    }
                }
                Ok(Some(entry)) if entry.is_ref() => {}
                Ok(Some(_)) if !live && refresh_is_content => {}
                Ok(Some(entry)) => listener(FeedEvent::Changed(change_of(entry))),
                Ok(None) => {
                    let result = stream.finish().await;
                    if result.rc == SYNC_REFRESH_REQUIRED && !live {
                        return (Ended::RefreshRequired, false);
                    }
                    return (Ended::Lost(format!("the server ended the persistent search: {result}")), live);
                }
                Err(error) => {
                    let _ = stream.finish().await;
                    return (Ended::Lost(describe(&error)), live);
                }
            },
            _ = probe.tick() => {
                if let Err(error) = prober.with_timeout(timeout).extended(WhoAmI).await {
                    let _ = stream.finish().await;
                    return (Ended::Lost(format!("the feed's connection does not answer: {error}")), live);
                }
            }
        }
    }
}

/// True when a Sync Info message ends the refresh phase.
fn refresh_done(entry: ResultEntry) -> bool {
    match std::panic::catch_unwind(AssertUnwindSafe(|| parse_syncinfo(entry))) {
        Ok(
            SyncInfo::RefreshDelete { refresh_done, .. }
            | SyncInfo::RefreshPresent { refresh_done, .. },
        ) => refresh_done,
        // A new cookie or an id set comes within the refresh; a message
        // that cannot be parsed ends nothing.
        Ok(_) | Err(_) => false,
    }
}

fn change_of(entry: ResultEntry) -> EntryChange {
    let entry = SearchEntry::construct(entry);
    let values = |wanted: &str| -> Vec<String> {
        entry
            .attrs
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .flat_map(|(_, values)| values.iter().cloned())
            .collect()
    };
    EntryChange {
        object_classes: values("objectClass")
            .into_iter()
            .map(|class| class.to_ascii_lowercase())
            .collect(),
        common_names: values("cn"),
        dn: entry.dn,
    }
}

fn describe(error: &LdapError) -> String {
    format!("the persistent search failed: {error}")
}
