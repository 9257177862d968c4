//! REST: recordings of routed calls (metadata, media decrypted as it streams with HTTP
//! Range, deletion), with an API key; and the report page's own media route
//! (`/r/{report token}/recordings/{id}`), authorized by the report link like the page.

use chrono::{DateTime, Utc};
use poem::Body;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, ResponseContent, Tags};

use crate::http::auth::ApiKeyAuth;
use crate::http::error::ApiError;
use crate::http::sessions::{not_found, parse_session_id};
use crate::http::state::AppState;
use crate::recording::files::ReadError;
use crate::recording::range::Plan;
use crate::services::recordings::{self as service, Media, Viewer};
use crate::store::recordings::{self as repo, Recording as Row};

#[derive(Tags)]
pub enum RecordingTags {
    /// Recordings of routed calls: one file per participant and span (WebM), encrypted
    /// at rest, decrypted as they stream.
    Recordings,
}

pub struct RecordingsApi;

/// A recording's metadata.
#[derive(Debug, Clone, Object)]
pub struct Recording {
    pub id: String,
    pub session_id: String,
    pub participant_id: String,
    /// The participant's role (`agent`, `customer`, …), when known.
    #[oai(nullable)]
    pub role: Option<String>,
    /// `writing`, `ready`, `failed` (stopped early; what was written is kept) or
    /// `interrupted` (the server stopped while writing; readable up to its last second).
    pub status: String,
    /// Wall-clock time of the file's time zero: play files side by side offset by it.
    pub started_at: DateTime<Utc>,
    pub started_at_ms: i64,
    #[oai(nullable)]
    pub duration_ms: Option<i64>,
    /// Bytes of the decrypted file.
    pub bytes: i64,
    /// Codecs written, e.g. `["vp8", "opus"]`.
    pub codecs: Vec<String>,
    /// Hex SHA-256 of the decrypted file (what `/media` returns whole).
    #[oai(nullable)]
    pub sha256: Option<String>,
    pub content_type: String,
    /// Why it stopped early (`failed`).
    #[oai(nullable)]
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct RecordingList {
    pub items: Vec<Recording>,
}

#[derive(ResponseContent)]
pub enum MediaBody {
    #[oai(content_type = "video/webm")]
    Webm(Binary<Body>),
}

#[derive(ApiResponse)]
pub enum MediaResponse {
    /// The whole file.
    #[oai(status = 200)]
    Full(
        MediaBody,
        #[oai(header = "accept-ranges")] String,
        #[oai(header = "content-length")] u64,
        #[oai(header = "cache-control")] String,
    ),
    /// The requested byte range.
    #[oai(status = 206)]
    Partial(
        MediaBody,
        #[oai(header = "accept-ranges")] String,
        #[oai(header = "content-length")] u64,
        #[oai(header = "content-range")] String,
        #[oai(header = "cache-control")] String,
    ),
    /// The range lies outside the file (`content-range: bytes */{length}`).
    #[oai(status = 416)]
    NotSatisfiable(#[oai(header = "content-range")] String),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted: the file is removed, the id answers `404` from now on.
    #[oai(status = 204)]
    Done,
}

pub fn to_api(r: &Row, role: Option<String>) -> Recording {
    Recording {
        id: r.id.clone(),
        session_id: r.session_id.clone(),
        participant_id: r.participant_id.clone(),
        role,
        status: r.status.clone(),
        started_at: DateTime::from_timestamp_millis(r.started_at_ms).unwrap_or_default(),
        started_at_ms: r.started_at_ms,
        duration_ms: r.duration_ms,
        bytes: r.bytes,
        codecs: r
            .codecs
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        sha256: r.sha256.clone(),
        content_type: r.content_type.clone(),
        failure: r.failure.clone(),
    }
}

pub(crate) fn recording_not_found() -> ApiError {
    ApiError::not_found("recording_not_found", "no such recording")
}

/// The one mapping of read errors to problem documents.
pub(crate) fn read_problem(e: ReadError) -> ApiError {
    match e {
        ReadError::Gone | ReadError::KeyDestroyed => recording_not_found(),
        ReadError::Db(e) => e.into(),
        other => ApiError::internal(anyhow::anyhow!(other)),
    }
}

async fn roles(
    state: &AppState,
    session_id: &str,
) -> Result<std::collections::HashMap<String, String>, ApiError> {
    Ok(crate::store::sessions::get(&state.db, session_id)
        .await?
        .map(|v| v.participants.into_iter().map(|p| (p.id, p.role)).collect())
        .unwrap_or_default())
}

async fn find(state: &AppState, id: &str) -> Result<Row, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(recording_not_found());
    }
    repo::get(&state.db, id)
        .await?
        .ok_or_else(recording_not_found)
}

/// Turns a media plan into the answer (shared with the report page's route).
pub(crate) fn media_response(m: Media) -> MediaResponse {
    let body = || MediaBody::Webm(Binary(Body::from_bytes_stream(m.body)));
    let cache = "private, no-store".to_owned();
    match m.plan {
        Plan::Full => MediaResponse::Full(body(), "bytes".into(), m.total, cache),
        Plan::Partial { start, end } => MediaResponse::Partial(
            body(),
            "bytes".into(),
            end - start + 1,
            format!("bytes {start}-{end}/{}", m.total),
            cache,
        ),
        Plan::Unsatisfiable => MediaResponse::NotSatisfiable(format!("bytes */{}", m.total)),
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "RecordingTags::Recordings")]
impl RecordingsApi {
    /// Session recordings
    ///
    /// Every recording of the session that is not deleted, in the order they began.
    #[oai(
        path = "/sessions/:id/recordings",
        method = "get",
        operation_id = "listSessionRecordings"
    )]
    async fn list(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<RecordingList>, ApiError> {
        let id = parse_session_id(&id.0)?;
        if crate::store::sessions::get(&state.db, &id).await?.is_none() {
            return Err(not_found());
        }
        let roles = roles(&state, &id).await?;
        let items = repo::list(&state.db, &id).await?;
        Ok(Json(RecordingList {
            items: items
                .iter()
                .map(|r| to_api(r, roles.get(&r.participant_id).cloned()))
                .collect(),
        }))
    }

    /// A recording
    #[oai(
        path = "/recordings/:id",
        method = "get",
        operation_id = "getRecording"
    )]
    async fn get(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<Recording>, ApiError> {
        let r = find(&state, &id.0).await?;
        let roles = roles(&state, &r.session_id).await?;
        Ok(Json(to_api(&r, roles.get(&r.participant_id).cloned())))
    }

    /// Download or play a recording
    ///
    /// The WebM file, decrypted as it streams. Supports one `Range: bytes=a-b`, `a-` or
    /// `-n` (`206` with `Content-Range`; `416` outside the file), so a browser can seek.
    /// A request from the first byte is recorded on the timeline as
    /// `recording.downloaded` (which API key, when).
    #[oai(
        path = "/recordings/:id/media",
        method = "get",
        operation_id = "getRecordingMedia"
    )]
    async fn media(
        &self,
        state: poem::web::Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<String>,
        /// `bytes=a-b`, `bytes=a-` or `bytes=-n`.
        #[oai(name = "Range")]
        range: Header<Option<String>>,
    ) -> Result<MediaResponse, ApiError> {
        let r = find(&state, &id.0).await?;
        let viewer = Viewer::ApiKey(auth.0.key_id.clone());
        let m = service::media(
            &state.db,
            &state.recordings,
            &r,
            range.0.as_deref(),
            &viewer,
            Utc::now(),
        )
        .await
        .map_err(read_problem)?;
        Ok(media_response(m))
    }

    /// Delete a recording
    ///
    /// Removes the file and marks the recording deleted (`recording.deleted` on the
    /// timeline). Refused (`409 legal_hold`) while the session is under a legal hold.
    #[oai(
        path = "/recordings/:id",
        method = "delete",
        operation_id = "deleteRecording"
    )]
    async fn delete(
        &self,
        state: poem::web::Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        let r = find(&state, &id.0).await?;
        if crate::store::holds::is_held(&state.db, &r.session_id).await? {
            return Err(ApiError::conflict(
                "legal_hold",
                "the session is under a legal hold: release it first",
            ));
        }
        if r.status == repo::WRITING {
            return Err(ApiError::conflict(
                "recording_in_progress",
                "the recording is still being written: stop it first",
            ));
        }
        let by = format!("api_key:{}", auth.0.key_id);
        if !service::delete(&state.recordings, &r, &by, Utc::now())
            .await
            .map_err(read_problem)?
        {
            return Err(recording_not_found());
        }
        Ok(Deleted::Done)
    }
}

/// `GET /r/{token}/recordings/{id}`: the report page's players fetch media with the report
/// link's token (the credential the page itself was opened with); audited as
/// `recording.played`.
#[poem::handler]
pub async fn report_media(
    req: &poem::Request,
    state: poem::web::Data<&AppState>,
    poem::web::Path((token, id)): poem::web::Path<(String, String)>,
) -> poem::Response {
    use poem::IntoResponse;
    let Some(session_id) = crate::http::pages::report::session_of(&state, &token) else {
        return recording_not_found().into_response();
    };
    let r = match find(&state, &id).await {
        Ok(r) if r.session_id == session_id => r,
        Ok(_) => return recording_not_found().into_response(),
        Err(e) => return e.into_response(),
    };
    let range = req
        .headers()
        .get(poem::http::header::RANGE)
        .and_then(|v| v.to_str().ok());
    match service::media(
        &state.db,
        &state.recordings,
        &r,
        range,
        &Viewer::ReportPage,
        Utc::now(),
    )
    .await
    {
        Ok(m) => media_response(m).into_response(),
        Err(e) => read_problem(e).into_response(),
    }
}
