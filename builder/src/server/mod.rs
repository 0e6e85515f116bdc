//! roleoutd: the HTTP/JSON server of Fig. 10's server side.
//!
//! [`config`] resolves the settings, [`tls`] the certificate, [`state`]
//! the secrets kept in the state directory, [`routes`] the API, and
//! [`serve`] runs it until a shutdown signal.

pub mod cache;
pub mod catalog;
pub mod config;
pub mod error;
pub mod flights;
pub mod gate;
pub mod images;
pub mod jobs;
pub mod metrics;
pub mod rotation;
pub mod routes;
pub mod state;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::server::state::ServerState;

/// How long open connections may finish after a shutdown signal.
const GRACE: Duration = Duration::from_secs(10);

/// Serves `state` on `listen` (TLS when `tls` is given) until `shutdown`
/// completes, then lets open requests finish for a few seconds. Writes the
/// bound address to `STATE/roleoutd.addr` once listening.
///
/// Only HTTP/1.1 is spoken (the one protocol offered in ALPN; an HTTP/2
/// preface is refused, not served), and a client has `header_timeout` to
/// send each request head, the first one on a connection included, so a
/// half-sent request holds nothing for long.
pub async fn serve(
    state: Arc<ServerState>,
    listen: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    state_dir: &Path,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = routes::router(state);
    let handle: Handle<SocketAddr> = Handle::new();
    let address_file = state_dir.join("roleoutd.addr");
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            if let Some(address) = handle.listening().await {
                tracing::info!(%address, "roleoutd is listening");
                if let Err(error) = tokio::fs::write(&address_file, format!("{address}\n")).await {
                    tracing::warn!(%error, file = %address_file.display(), "cannot record the listen address");
                }
            }
        });
    }
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            handle.graceful_shutdown(Some(GRACE));
        });
    }
    // Handlers see the caller's address (enrolments are limited per
    // source).
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(config) => {
            bounded(
                axum_server::bind_rustls(listen, RustlsConfig::from_config(config)),
                handle,
                header_timeout,
            )
            .serve(service)
            .await
        }
        None => {
            bounded(axum_server::bind(listen), handle, header_timeout)
                .serve(service)
                .await
        }
    }
}

/// `server` speaking HTTP/1.1 only and giving a client `header_timeout` to
/// send each request head (see [`serve`]).
fn bounded<Acceptor>(
    server: axum_server::Server<SocketAddr, Acceptor>,
    handle: Handle<SocketAddr>,
    header_timeout: Duration,
) -> axum_server::Server<SocketAddr, Acceptor> {
    let mut server = server
        .handle(handle)
        .http1_only()
        .first_request_timeout(header_timeout);
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    server
}
