//! The job routes a target of a deployment uses, as roleoutd acting as its
//! installation engine:
//!
//! - `GET /v1/jobs/current`: the signed instruction (an `image-job`
//!   envelope naming the job and the machine, its serial the target's
//!   lease serial): the image, what makes the target itself, and the
//!   imaging archive to unpack, with its digest and size;
//! - `GET /v1/jobs/{job}/archive`: that archive, streamed with ranges;
//! - `POST /v1/jobs/{job}/progress`: the phase the target reached, written
//!   to its job entry; `complete` and `failed` release its lease, any other
//!   phase renews it.
//!
//! Each answers only a machine that is a target of the job, whose job is
//! not over, and whose lease still names the job: a target whose lease
//! expired and was taken by another job is told so (`lease-lost`), and
//! stops.
//!
//! The archive is packed once per image manifest, from the content store,
//! into `STATE/archives/MANIFEST.tar.zst`, its digest and size kept beside
//! it; every target of every job of that image gets the same file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path as RoutePath, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use roleout_directory::jobs::DeploymentEntry;
use roleout_model::ids::Sha256;
use roleout_model::job::{JobId, JobTarget};
use roleout_model::keys::unix_seconds;
use roleout_model::lease::Lease;
use roleout_model::protocol::{ArchiveRef, Close, ErrorCode, ImageJob, JobProgress};
use roleout_store::content::ContentStore;
use tracing::{info, warn};

use crate::server::error::ApiError;
use crate::server::routes::{
    Requester, Shared, directory_failed, envelope, read_body, requester, serve_file,
};
use crate::server::state::ServerState;

/// The job `id` (any, with `None`) in which the requester is a target
/// whose job is not over, with its part of the job.
async fn target_job(
    state: &ServerState,
    requester: &Requester,
    id: Option<&JobId>,
) -> Result<(DeploymentEntry, JobTarget), ApiError> {
    let machine = &requester.session.machine;
    let job = match id {
        Some(id) => state.directory.deployment(id).await,
        None => state.directory.open_deployment_of(machine).await,
    }
    .map_err(directory_failed)?;
    if let Some(job) = job {
        let open = job
            .targets
            .iter()
            .any(|status| status.machine == *machine && !status.phase.is_final());
        let target = job
            .deployment
            .targets
            .iter()
            .find(|target| target.machine == *machine)
            .cloned();
        if let (true, Some(target)) = (open, target) {
            return Ok((job, target));
        }
    }
    Err(ApiError::new(
        ErrorCode::NotFound,
        match id {
            Some(id) => format!("{machine} has no part in job {id} that is not over."),
            None => format!("{machine} is not a target of any job now."),
        },
    ))
}

/// The requester's lease, which must name `job` (and, unless
/// `expired_ok`, still hold).
async fn held_lease(
    state: &ServerState,
    requester: &Requester,
    job: &JobId,
    expired_ok: bool,
) -> Result<Lease, ApiError> {
    let lease = state
        .directory
        .lease(&requester.entry.dn)
        .await
        .map_err(directory_failed)?;
    match lease {
        Some(lease)
            if lease.job == job.as_str()
                && (expired_ok || !lease.expired(unix_seconds(SystemTime::now()))) =>
        {
            Ok(lease)
        }
        other => {
            info!(machine = %requester.session.machine, %job, held = ?other.map(|lease| lease.job), outcome = "refused", "lease lost");
            Err(ApiError::new(
                ErrorCode::LeaseLost,
                format!(
                    "The lease of {} for job {job} is gone (it expired, or another job holds the machine); the job stops here.",
                    requester.session.machine
                ),
            ))
        }
    }
}

fn archives_dir(state: &ServerState) -> PathBuf {
    state.state_dir.join("archives")
}

fn archive_paths(state: &ServerState, manifest: &Sha256) -> (PathBuf, PathBuf) {
    let folder = archives_dir(state);
    (
        folder.join(format!("{manifest}.tar.zst")),
        folder.join(format!("{manifest}.json")),
    )
}

/// The imaging archive of `manifest`, packed from the content store the
/// first time it is asked for.
async fn archive_for(state: &Arc<ServerState>, manifest: &Sha256) -> Result<ArchiveRef, ApiError> {
    let (archive, record) = archive_paths(state, manifest);
    // One packing of an archive at a time: a second asker waits and finds
    // it made. Archives of other images are packed meanwhile.
    let packing = state.archives.turn(manifest).await;
    if let Ok(text) = tokio::fs::read(&record).await
        && let Ok(kept) = serde_json::from_slice::<ArchiveRef>(&text)
        && archive.is_file()
    {
        return Ok(kept);
    }
    let store = ContentStore::new(state.content_dir.clone()).map_err(ApiError::internal)?;
    let manifest = manifest.clone();
    let folder = archives_dir(state);
    // An engine (or a peer given an upstream) first brings the files its
    // own store lacks.
    let upstream = upstream_of(state)?;
    tokio::task::spawn_blocking(move || {
        // The turn goes with the packing: a caller that gives up waiting
        // does not let a second packing into the same partial file.
        let _packing = packing;
        if let Some((upstream, authorization)) = upstream {
            let fetched = fetch_missing(&store, &upstream, &authorization, &manifest)?;
            info!(
                manifest = %manifest,
                contents = fetched.0,
                bytes = fetched.1,
                upstream = %upstream.url,
                "image files fetched from upstream"
            );
        }
        pack(&store, &manifest, &folder, &archive, &record)
    })
    .await
    .map_err(ApiError::internal)?
}

/// The roleoutd this one brings what it lacks from, with the
/// `Authorization` value to ask it with: an engine's token naming the
/// engine, or a peer's; `None` for a roleoutd given no upstream.
pub(crate) fn upstream_of(
    state: &ServerState,
) -> Result<Option<(crate::server::state::Upstream, String)>, ApiError> {
    let Some(upstream) = &state.upstream else {
        return Ok(None);
    };
    let now = SystemTime::now();
    let authorization = match &state.engine {
        Some(engine) => format!(
            "Engine {}",
            state
                .authenticator
                .issue_engine_token(engine.as_str(), now)
                .map_err(ApiError::internal)?
        ),
        None => format!(
            "Peer {}",
            state
                .authenticator
                .issue_peer_token(now)
                .map_err(ApiError::internal)?
        ),
    };
    Ok(Some((upstream.clone(), authorization)))
}

/// Brings content `digest` into `store` from `upstream` (checked against
/// its digest, and its size when known, before it is named); returns its
/// size.
pub(crate) fn fetch_content(
    store: &ContentStore,
    upstream: &crate::server::state::Upstream,
    authorization: &str,
    digest: &Sha256,
    size: Option<u64>,
) -> Result<u64, ApiError> {
    let failed = |reason: String| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "This roleoutd could not bring content {digest} from {}: {reason}.",
                upstream.url
            ),
        )
    };
    let response = upstream
        .agent
        .get(format!("{}/v1/content/{digest}", upstream.url))
        .header("Authorization", authorization)
        .call()
        .map_err(|error| failed(error.to_string()))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(failed(format!("HTTP status {status}")));
    }
    let body = response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .reader();
    let what = format!("content {digest}");
    match size {
        Some(size) => store
            .put_expecting(&what, body, digest, size)
            .map(|_| size)
            .map_err(|error| failed(error.to_string())),
        None => store
            .put_reader(&what, body, Some(digest))
            .map(|(_, bytes)| bytes)
            .map_err(|error| failed(error.to_string())),
    }
}

/// Brings into `store` the manifest `manifest` and every file it names
/// that `store` lacks, from `upstream`, each checked against its digest
/// (and size) before it is named. Returns how many contents and bytes
/// came.
fn fetch_missing(
    store: &ContentStore,
    upstream: &crate::server::state::Upstream,
    authorization: &str,
    manifest: &Sha256,
) -> Result<(usize, u64), ApiError> {
    let failed = |reason: String| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "This roleoutd could not read the manifest {manifest} from {}: {reason}.",
                upstream.url
            ),
        )
    };
    let mut fetched = (0, 0);
    if !store.contains(manifest) {
        fetched = (
            1,
            fetch_content(store, upstream, authorization, manifest, None)?,
        );
    }
    let bytes =
        std::fs::read(store.path_of(manifest)).map_err(|error| failed(error.to_string()))?;
    let parsed =
        roleout_model::tree::Manifest::parse(&bytes).map_err(|error| failed(error.to_string()))?;
    let mut sizes = std::collections::BTreeMap::new();
    for entry in parsed.entries() {
        if let Some(digest) = entry.content() {
            sizes.insert(digest.clone(), entry.data_bytes());
        }
    }
    for digest in store.missing(sizes.keys()) {
        let size = sizes.get(&digest).copied().unwrap_or(0);
        fetch_content(store, upstream, authorization, &digest, Some(size))?;
        fetched.0 += 1;
        fetched.1 += size;
    }
    Ok(fetched)
}

fn pack(
    store: &ContentStore,
    manifest: &Sha256,
    folder: &Path,
    archive: &Path,
    record: &Path,
) -> Result<ArchiveRef, ApiError> {
    let internal = |what: &str, error: &dyn std::fmt::Display| {
        ApiError::internal(format!("archive of {manifest}: {what}: {error}"))
    };
    std::fs::create_dir_all(folder).map_err(|error| internal("folder", &error))?;
    let bytes =
        std::fs::read(store.path_of(manifest)).map_err(|error| internal("manifest", &error))?;
    let parsed = roleout_model::tree::Manifest::parse(&bytes)
        .map_err(|error| internal("manifest", &error))?;
    let partial = folder.join(format!("{manifest}.tar.zst.partial"));
    let packed = roleout_store::archive::pack(&parsed, store, &partial)
        .map_err(|error| internal("pack", &error))?;
    let kept = ArchiveRef {
        sha256: packed.sha256,
        size: packed.bytes,
    };
    std::fs::rename(&partial, archive).map_err(|error| internal("rename", &error))?;
    let text = serde_json::to_vec(&kept).map_err(|error| internal("record", &error))?;
    std::fs::write(record, text).map_err(|error| internal("record", &error))?;
    Ok(kept)
}

/// `GET /v1/jobs/current`: the signed instruction.
pub(crate) async fn current(State(state): Shared, headers: HeaderMap) -> Response {
    let result = async {
        let requester = requester(&state, &headers).await?;
        let (job, target) = target_job(&state, &requester, None).await?;
        let deployment = &job.deployment;
        let lease = held_lease(&state, &requester, &deployment.id, false).await?;
        let image = state
            .directory
            .image(&deployment.image)
            .await
            .map_err(directory_failed)?
            .filter(|image| image.description.manifest == deployment.manifest)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!(
                        "Image {} is no longer the one job {} was started with (it was captured again or removed).",
                        deployment.image, deployment.id
                    ),
                )
            })?;
        let archive = archive_for(&state, &deployment.manifest).await?;
        let payload = ImageJob {
            job: deployment.id.clone(),
            image: image.description,
            configuration: target.configuration,
            archive,
            scripts: deployment.scripts.clone(),
        };
        info!(machine = %requester.session.machine, job = %deployment.id, "job instruction");
        envelope(
            &state,
            &requester,
            deployment.id.to_string(),
            &payload,
            None,
            lease.serial,
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /v1/jobs/{job}/archive`: the imaging archive of the job's image.
pub(crate) async fn archive(
    State(state): Shared,
    headers: HeaderMap,
    RoutePath(job): RoutePath<String>,
) -> Response {
    let result = async {
        let requester = requester(&state, &headers).await?;
        let id = JobId::new(job).map_err(|reason| ApiError::new(ErrorCode::NotFound, reason))?;
        let (job, _) = target_job(&state, &requester, Some(&id)).await?;
        held_lease(&state, &requester, &id, false).await?;
        let kept = archive_for(&state, &job.deployment.manifest).await?;
        let (path, _) = archive_paths(&state, &job.deployment.manifest);
        serve_file(&path, &kept.sha256, &headers, "archive").await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /v1/jobs/{job}/progress`: the phase a target reached.
pub(crate) async fn progress(
    State(state): Shared,
    headers: HeaderMap,
    RoutePath(job): RoutePath<String>,
    body: Body,
) -> Response {
    let result = async {
        let requester = requester(&state, &headers).await?;
        let progress: JobProgress = read_body(&state, &headers, body).await?;
        let id = JobId::new(job).map_err(|reason| ApiError::new(ErrorCode::NotFound, reason))?;
        let (job, _) = target_job(&state, &requester, Some(&id)).await?;
        let machine = &requester.session.machine;
        // Ending the job (done, or failed) needs the lease to be this
        // job's still, not live: a target that finished after its lease
        // ran out, untaken, may say so and free itself.
        let lease = held_lease(&state, &requester, &id, progress.phase.is_final()).await?;
        state
            .directory
            .set_target_phase(&id, machine, progress.phase, progress.message.as_deref())
            .await
            .map_err(directory_failed)?;
        if progress.phase.is_final() {
            let released = state
                .directory
                .release_leases(&[(requester.entry.dn.clone(), lease)])
                .await
                .map_err(directory_failed)?;
            info!(%machine, job = %id, phase = %progress.phase, released, "job over for target");
        } else {
            let deployment = &job.deployment;
            let span = deployment
                .lease_until
                .saturating_sub(deployment.started_at)
                .max(60);
            let renewed = state
                .directory
                .renew_lease(
                    &requester.entry.dn,
                    &lease,
                    unix_seconds(SystemTime::now()) + span,
                )
                .await
                .map_err(directory_failed)?;
            if !renewed {
                warn!(%machine, job = %id, "lease not renewed: taken over meanwhile");
            }
            info!(%machine, job = %id, phase = %progress.phase, "job progress");
        }
        Ok::<_, ApiError>(Close::default())
    }
    .await;
    match result {
        Ok(close) => axum::Json(close).into_response(),
        Err(error) => error.into_response(),
    }
}
