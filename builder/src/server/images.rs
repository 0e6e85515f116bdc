//! The image routes: an imaging source uploads an image of itself.
//!
//! The source offers the digests of its manifest and files
//! (`POST /v1/content/missing`, the have list) and is told which the
//! content store lacks (the want list); it sends only those
//! (`PUT /v1/content/{sha256}`, each streamed into the store and named
//! only once its digest and length are the ones given); then it sends the
//! description (`POST /v1/images`), which is checked against the manifest
//! and the store before its entry is written. Capturing an unchanged
//! source again moves no file and writes nothing.
//!
//! Only a machine an admin made an imaging source may use these routes,
//! and it may not replace an image another machine uploaded.

use std::io::Read;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use roleout_directory::images::ImageWrite;
use roleout_model::ids::Sha256;
use roleout_model::protocol::{
    ContentOffer, ContentStatus, ContentStored, ContentWant, ErrorCode, ImageStatus, ImageStored,
    ImageUpload, MAX_OFFERED_DIGESTS,
};
use roleout_model::tree::Manifest;
use roleout_store::content::ContentStore;
use tokio::sync::mpsc;
use tracing::info;

use crate::server::error::ApiError;
use crate::server::routes::{
    Requester, Shared, directory_failed, read_body, requester, strict_digest,
};
use crate::server::state::ServerState;

/// The requester, when an admin made it an imaging source.
async fn imaging_source(state: &ServerState, headers: &HeaderMap) -> Result<Requester, ApiError> {
    let requester = requester(state, headers).await?;
    if !requester.entry.imaging_source {
        info!(machine = %requester.session.machine, outcome = "refused", reason = "not an imaging source", "image upload");
        return Err(ApiError::new(
            ErrorCode::NotImagingSource,
            format!(
                "The machine {} is not an imaging source; an admin makes it one with `source add {}`.",
                requester.session.machine, requester.session.machine
            ),
        ));
    }
    Ok(requester)
}

fn store_of(state: &ServerState) -> Result<ContentStore, ApiError> {
    ContentStore::new(state.content_dir.clone()).map_err(ApiError::internal)
}

fn respond<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /v1/content/{sha256}`: a content, for another roleoutd of this
/// installation that lacks it: an installation engine
/// (`Authorization: Engine TOKEN`, a token only a roleoutd holding the
/// token secret can make, naming an engine registered under `ou=engines`)
/// or a peer behind the same name (`Authorization: Peer TOKEN`).
pub(crate) async fn get_content(
    State(state): Shared,
    headers: HeaderMap,
    Path(digest): Path<String>,
) -> Response {
    let result = async {
        let refused = || {
            ApiError::new(
                ErrorCode::Unauthorized,
                "This route is for the roleoutd of this installation: send Authorization: \
                 Engine TOKEN or Peer TOKEN.",
            )
        };
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(refused)?;
        let now = std::time::SystemTime::now();
        if let Some(token) = authorization.strip_prefix("Peer ") {
            if !state.authenticator.verify_peer_token(token.trim(), now) {
                return Err(refused());
            }
        } else {
            let token = authorization.strip_prefix("Engine ").ok_or_else(refused)?;
            let engine = state
                .authenticator
                .verify_engine_token(token.trim(), now)
                .ok_or_else(refused)?;
            let registered = state
                .directory
                .is_engine(&engine)
                .await
                .map_err(directory_failed)?;
            if !registered {
                info!(%engine, outcome = "refused", reason = "not a registered engine", "content");
                return Err(refused());
            }
        }
        let digest = strict_digest(&digest)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "There is no such content."))?;
        crate::server::routes::serve_content(&store_of(&state)?, &digest, &headers, "content").await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/content/missing`: the have list in, the want list out.
pub(crate) async fn missing(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            imaging_source(&state, &headers).await?;
            let offer: ContentOffer = read_body(&state, &headers, body).await?;
            if offer.digests.len() > MAX_OFFERED_DIGESTS {
                return Err(ApiError::new(
                    ErrorCode::InvalidBody,
                    format!("Offer at most {MAX_OFFERED_DIGESTS} digests at a time."),
                ));
            }
            let store = store_of(&state)?;
            let missing = tokio::task::spawn_blocking(move || store.missing(&offer.digests))
                .await
                .map_err(ApiError::internal)?;
            Ok(ContentWant { missing })
        }
        .await,
    )
}

/// What the request body yields, for a blocking reader: the pieces come
/// through a bounded channel, so at most a few are in memory at once.
struct ChannelReader {
    pieces: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.pieces.blocking_recv() {
                Some(Ok(piece)) => self.current = piece,
                Some(Err(reason)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        reason,
                    ));
                }
                None => return Ok(0),
            }
        }
        let count = buffer.len().min(self.current.len());
        buffer[..count].copy_from_slice(&self.current[..count]);
        self.current = self.current.slice(count..);
        Ok(count)
    }
}

/// `PUT /v1/content/{sha256}`: one content, streamed into the store.
pub(crate) async fn put_content(
    State(state): Shared,
    headers: HeaderMap,
    Path(digest): Path<String>,
    body: Body,
) -> Response {
    respond(put_content_inner(state, headers, digest, body).await)
}

async fn put_content_inner(
    state: Arc<ServerState>,
    headers: HeaderMap,
    digest: String,
    body: Body,
) -> Result<ContentStored, ApiError> {
    let requester = imaging_source(&state, &headers).await?;
    let digest = strict_digest(&digest).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidBody,
            "Name the content by its SHA-256 in lowercase hex.",
        )
    })?;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidBody,
                "Send the content's length (Content-Length).",
            )
        })?;
    let store = store_of(&state)?;
    if store.contains(&digest) {
        return Ok(ContentStored {
            status: ContentStatus::Present,
        });
    }
    let (sender, receiver) = mpsc::channel(8);
    let what = format!("content {digest} from {}", requester.session.machine);
    let expected = digest.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            pieces: receiver,
            current: Bytes::new(),
        };
        store.put_expecting(&what, reader, &expected, length)
    });
    let mut stream = body.into_data_stream();
    while let Some(piece) = next_piece(&mut stream).await {
        let piece = piece.map_err(|error| error.to_string());
        let failed = piece.is_err();
        if sender.send(piece).await.is_err() || failed {
            // The writer stopped (a wrong length or digest), or the
            // body broke off: what the writer says is the answer.
            break;
        }
    }
    drop(sender);
    let stored = writer.await.map_err(ApiError::internal)?;
    match stored {
        Ok(_) => {
            info!(machine = %requester.session.machine, %digest, bytes = length, "content stored");
            Ok(ContentStored {
                status: ContentStatus::Stored,
            })
        }
        Err(error) => {
            info!(machine = %requester.session.machine, %digest, %error, outcome = "refused", "content");
            Err(ApiError::new(
                ErrorCode::InvalidBody,
                format!("The content was not stored: {error}."),
            ))
        }
    }
}

/// The next piece of a body's data.
async fn next_piece(stream: &mut axum::body::BodyDataStream) -> Option<Result<Bytes, axum::Error>> {
    use axum::body::HttpBody;
    std::future::poll_fn(|context| {
        std::pin::Pin::new(&mut *stream)
            .poll_frame(context)
            .map(|frame| {
                frame.map(|frame| frame.map(|frame| frame.into_data().unwrap_or_default()))
            })
    })
    .await
}

/// Reads and checks the manifest `digest` from `store`: present, and
/// canonical (so its bytes are its tree's one spelling).
fn read_manifest(store: &ContentStore, digest: &Sha256) -> Result<Manifest, ApiError> {
    let path = store.path_of(digest);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::new(
                ErrorCode::MissingContent,
                format!(
                    "The image's manifest {digest} is not in roleoutd's store; upload it first."
                ),
            ));
        }
        Err(error) => return Err(ApiError::internal(format!("{}: {error}", path.display()))),
    };
    Manifest::parse(&bytes).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidBody,
            format!("The image's manifest {digest} is not a manifest: {error}."),
        )
    })
}

/// The aliases of the image's kernels (`modules.alias` and
/// `modules.builtin.alias` of each kernel in `lib/modules` or
/// `usr/lib/modules`) that could claim a storage or network controller,
/// each once, in order.
fn controller_aliases(store: &ContentStore, manifest: &Manifest) -> Result<Vec<String>, ApiError> {
    let mut aliases = std::collections::BTreeSet::new();
    for entry in manifest.entries() {
        let path = entry.path.as_str();
        let in_modules = path.starts_with("lib/modules/") || path.starts_with("usr/lib/modules/");
        let alias_file =
            path.ends_with("/modules.alias") || path.ends_with("/modules.builtin.alias");
        let Some(digest) = entry.content().filter(|_| in_modules && alias_file) else {
            continue;
        };
        let file = store.path_of(digest);
        let text = std::fs::read(&file)
            .map_err(|error| ApiError::internal(format!("{}: {error}", file.display())))?;
        aliases.extend(roleout_model::image::controller_aliases(
            &String::from_utf8_lossy(&text),
        ));
    }
    Ok(aliases.into_iter().collect())
}

/// `POST /v1/images`: the description, checked against its manifest and
/// the store, kept as the image's entry.
pub(crate) async fn store_image(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    respond(
        async {
            let requester = imaging_source(&state, &headers).await?;
            let machine = requester.session.machine.clone();
            let upload: ImageUpload = read_body(&state, &headers, body).await?;
            let mut description = upload.description;
            description
                .check_format()
                .map_err(|reason| ApiError::new(ErrorCode::InvalidBody, reason))?;
            let store = store_of(&state)?;
            let manifest_digest = description.manifest.clone();
            let (manifest, missing, aliases) = tokio::task::spawn_blocking(move || {
                let manifest = read_manifest(&store, &manifest_digest)?;
                let contents = manifest.contents();
                let missing = store.missing(&contents);
                let aliases = if missing.is_empty() {
                    controller_aliases(&store, &manifest)?
                } else {
                    Vec::new()
                };
                Ok::<_, ApiError>((manifest, missing, aliases))
            })
            .await
            .map_err(ApiError::internal)??;
            if let Some(first) = missing.first() {
                return Err(ApiError::new(
                    ErrorCode::MissingContent,
                    format!(
                        "{} file(s) the manifest names are not in roleoutd's store (the first: {first}); upload them first.",
                        missing.len()
                    ),
                ));
            }
            if description.entries != manifest.entries().len() as u64 {
                return Err(ApiError::new(
                    ErrorCode::InvalidBody,
                    format!(
                        "The description counts {} entries, but its manifest has {}.",
                        description.entries,
                        manifest.entries().len()
                    ),
                ));
            }
            // What each file system must hold is counted here, from the
            // manifest, not taken from the sender.
            roleout_model::image::count_data(&manifest, &mut description.partitions);
            let written = state
                .directory
                .store_image(&description, Some(&machine), &aliases)
                .await
                .map_err(directory_failed)?;
            let status = match written {
                ImageWrite::Created => ImageStatus::Created,
                ImageWrite::Replaced => ImageStatus::Replaced,
                ImageWrite::Unchanged => ImageStatus::Unchanged,
                ImageWrite::Taken { source } => {
                    return Err(ApiError::new(
                        ErrorCode::NotImagingSource,
                        format!(
                            "The image {} was captured from {source}; capture under another name, or an admin removes it first.",
                            description.name
                        ),
                    ));
                }
            };
            info!(%machine, image = %description.name, manifest = %description.manifest, ?status, "image stored");
            Ok(ImageStored {
                status,
                manifest: description.manifest,
            })
        }
        .await,
    )
}
