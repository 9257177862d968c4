//! REST: photos taken during a call. Pages upload and view them with their own join link
//! (`/api/v1/join/{token}/snapshots…`, the credential they already hold); integrations
//! list and download them with an API key (`/api/v1/sessions/{id}/snapshots`,
//! `/api/v1/snapshots/{id}`). Thin wrappers over `services::snapshots`.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, ResponseContent, Tags};

use crate::domain::Role;
use crate::http::auth::ApiKeyAuth;
use crate::http::connect::link_error;
use crate::http::error::ApiError;
use crate::http::sessions::{not_found, parse_session_id};
use crate::http::state::AppState;
use crate::services::snapshots::{self as service, Handles, SnapshotError, SnapshotKind};
use crate::store::snapshots::{self as store_snapshots, SnapshotMeta};

#[derive(Tags)]
pub enum SnapshotTags {
    /// Photos taken during a call: "show me" photos from the customer's camera and
    /// frames captured from a video.
    Snapshots,
}

pub struct SnapshotsApi;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Kind {
    /// Taken on the uploader's own page (the rear camera, on an agent's request).
    Photo,
    /// A frame captured from someone's video.
    Frame,
}

/// A stored photo (its bytes at `/snapshots/{id}`).
#[derive(Debug, Clone, Object)]
pub struct Snapshot {
    pub id: String,
    pub session_id: String,
    /// The participant who uploaded it.
    pub participant_id: String,
    /// `photo` or `frame`.
    pub kind: String,
    /// `image/jpeg`, `image/png` or `image/webp`, from the bytes themselves.
    pub content_type: String,
    /// Bytes as stored (JPEG metadata removed).
    pub size: i64,
    /// Hex SHA-256 of the stored bytes: what a download returns.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
pub struct SnapshotList {
    pub items: Vec<Snapshot>,
}

#[derive(ApiResponse)]
pub enum Uploaded {
    /// Stored; staff in the call see it at once.
    #[oai(status = 201)]
    Created(Json<Snapshot>),
}

#[derive(ResponseContent)]
pub enum ImageBody {
    #[oai(content_type = "image/jpeg")]
    Jpeg(Binary<Vec<u8>>),
    #[oai(content_type = "image/png")]
    Png(Binary<Vec<u8>>),
    #[oai(content_type = "image/webp")]
    Webp(Binary<Vec<u8>>),
}

#[derive(ApiResponse)]
pub enum Image {
    /// The image as stored.
    #[oai(status = 200)]
    Ok(
        ImageBody,
        #[oai(header = "cache-control")] String,
        #[oai(header = "x-content-type-options")] String,
        #[oai(header = "content-security-policy")] String,
    ),
}

fn to_api(m: SnapshotMeta) -> Snapshot {
    Snapshot {
        id: m.id,
        session_id: m.session_id,
        participant_id: m.participant_id,
        kind: m.kind,
        content_type: m.content_type,
        size: m.size,
        sha256: m.sha256,
        created_at: m.created_at,
    }
}

/// The one mapping of snapshot errors to problem documents.
fn problem(e: SnapshotError) -> ApiError {
    let detail = e.to_string();
    match e {
        SnapshotError::Unsupported => ApiError::unprocessable("unsupported_image", detail),
        SnapshotError::Malformed(_) => ApiError::unprocessable("malformed_image", detail),
        SnapshotError::Limit(_) => ApiError::conflict("snapshot_limit", detail),
        SnapshotError::Db(e) => e.into(),
    }
}

fn snapshot_not_found() -> ApiError {
    ApiError::not_found("snapshot_not_found", "no such photo")
}

fn image(m: crate::store::snapshots::snapshot::Model) -> Image {
    let body = match m.content_type.as_str() {
        "image/png" => ImageBody::Png(Binary(m.data)),
        "image/webp" => ImageBody::Webp(Binary(m.data)),
        _ => ImageBody::Jpeg(Binary(m.data)),
    };
    Image::Ok(
        body,
        "private, no-store".to_owned(),
        "nosniff".to_owned(),
        "default-src 'none'; sandbox".to_owned(),
    )
}

/// Resolves a page's join link (same answers as `/connect` for dead links).
async fn participant(
    state: &AppState,
    token: &str,
) -> Result<crate::store::links::Resolved, ApiError> {
    crate::store::links::resolve(&state.db, &state.keys.join, token, Utc::now())
        .await?
        .map_err(link_error)
}

#[OpenApi(prefix_path = "/api/v1", tag = "SnapshotTags::Snapshots")]
impl SnapshotsApi {
    /// Upload a photo from a join page
    ///
    /// The raw image bytes (JPEG, PNG or WebP, decided by the bytes, at most
    /// `snapshots.max_bytes`), authorized by the uploader's own join link. JPEG metadata
    /// (EXIF with any GPS position, XMP, IPTC, comments) is removed before storing.
    /// Agents and supervisors in the call get a `snapshot` signaling message at once.
    #[oai(
        path = "/join/:token/snapshots",
        method = "post",
        operation_id = "uploadSnapshot"
    )]
    async fn upload(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
        /// `photo` (default) or `frame`.
        kind: Query<Option<Kind>>,
        body: Binary<Vec<u8>>,
    ) -> Result<Uploaded, ApiError> {
        let r = participant(&state, &token.0).await?;
        let max = state.config.snapshots.max_bytes;
        if body.0.len() > max {
            return Err(ApiError::PayloadTooLarge { limit: max });
        }
        let kind = match kind.0.unwrap_or(Kind::Photo) {
            Kind::Photo => SnapshotKind::Photo,
            Kind::Frame => SnapshotKind::Frame,
        };
        let h = Handles {
            db: state.db.clone(),
            bus: state.bus.clone(),
            max_per_session: state.config.snapshots.max_per_session,
        };
        let meta = service::take(
            &h,
            &r.session.id,
            &r.participant.id,
            kind,
            body.0,
            Utc::now(),
        )
        .await
        .map_err(problem)?;
        Ok(Uploaded::Created(Json(to_api(meta))))
    }

    /// View a photo from a join page
    ///
    /// For the participants of the photo's session: agents, supervisors and experts see
    /// every photo, a customer only their own.
    #[oai(
        path = "/join/:token/snapshots/:id",
        method = "get",
        operation_id = "viewSnapshot"
    )]
    async fn view(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
        id: Path<String>,
    ) -> Result<Image, ApiError> {
        let r = participant(&state, &token.0).await?;
        let m = store_snapshots::get(&state.db, &id.0)
            .await?
            .filter(|m| m.session_id == r.session.id)
            .ok_or_else(snapshot_not_found)?;
        if r.role == Role::Customer && m.participant_id != r.participant.id {
            return Err(snapshot_not_found());
        }
        Ok(image(m))
    }

    /// Session photos
    ///
    /// Every photo of the session, oldest first (metadata; bytes at `/snapshots/{id}`).
    #[oai(
        path = "/sessions/:id/snapshots",
        method = "get",
        operation_id = "listSessionSnapshots"
    )]
    async fn list(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<SnapshotList>, ApiError> {
        let id = parse_session_id(&id.0)?;
        if crate::store::sessions::get(&state.db, &id).await?.is_none() {
            return Err(not_found());
        }
        let items = store_snapshots::list(&state.db, &id).await?;
        Ok(Json(SnapshotList {
            items: items.into_iter().map(to_api).collect(),
        }))
    }

    /// Download a photo
    ///
    /// The image bytes as stored; their SHA-256 is the `sha256` of the listing.
    #[oai(
        path = "/snapshots/:id",
        method = "get",
        operation_id = "downloadSnapshot"
    )]
    async fn download(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Image, ApiError> {
        let m = store_snapshots::get(&state.db, &id.0)
            .await?
            .ok_or_else(snapshot_not_found)?;
        Ok(image(m))
    }
}
