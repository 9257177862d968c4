//! REST for the compliance officer: legal holds, erasure (of a session, of a customer's
//! sessions) and exports for data-subject requests (a ZIP with a signed manifest).

use chrono::{DateTime, Utc};
use poem::Body;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi, ResponseContent, Tags};

use crate::http::auth::ApiKeyAuth;
use crate::http::error::ApiError;
use crate::http::sessions::{not_found, parse_session_id};
use crate::http::state::AppState;
use crate::services::compliance::{self as service, ErasureError, ExportError, Subject};

#[derive(Tags)]
pub enum ComplianceTags {
    /// Legal holds, erasure and exports for data-subject requests.
    Compliance,
}

pub struct ComplianceApi;

#[derive(Debug, Clone, Object)]
pub struct HoldRequest {
    /// Why the session is held (e.g. a case reference).
    #[oai(validator(min_length = 1, max_length = 500))]
    #[oai(deserialize_with = "crate::http::strict::string")]
    pub reason: String,
}

#[derive(Debug, Clone, Object)]
pub struct Hold {
    pub session_id: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// Who placed it (`api_key:<id>`).
    pub created_by: String,
}

#[derive(ApiResponse)]
pub enum HoldPlaced {
    /// Placed.
    #[oai(status = 201)]
    Created(Json<Hold>),
    /// The session was already held: the existing hold.
    #[oai(status = 200)]
    Existing(Json<Hold>),
}

#[derive(ApiResponse)]
pub enum Released {
    /// Released (retention and erasure apply again).
    #[oai(status = 204)]
    Done,
}

/// What an erasure removed (counts only).
#[derive(Debug, Clone, Object)]
pub struct Erasure {
    pub sessions: Vec<String>,
    pub participants: u64,
    pub chat_messages: u64,
    pub snapshots: u64,
    pub recordings: u64,
    pub ratings: u64,
}

#[derive(ResponseContent)]
pub enum ZipBody {
    #[oai(content_type = "application/zip")]
    Zip(Binary<Body>),
}

#[derive(ApiResponse)]
pub enum ExportResponse {
    /// The archive.
    #[oai(status = 200)]
    Ok(
        ZipBody,
        #[oai(header = "content-disposition")] String,
        #[oai(header = "cache-control")] String,
    ),
}

fn erasure_problem(e: ErasureError) -> ApiError {
    let detail = e.to_string();
    match e {
        ErasureError::NotFound => not_found(),
        ErasureError::Held(_) => ApiError::conflict("legal_hold", detail),
        ErasureError::Live(_) => ApiError::conflict("session_live", detail),
        ErasureError::Db(e) => e.into(),
    }
}

/// `DELETE /sessions/{id}` (declared with the other `/sessions/{id}` operations in
/// `http::sessions`, since one path belongs to one API in the OpenAPI document).
pub(crate) async fn erase_session(state: &AppState, id: &str) -> Result<Json<Erasure>, ApiError> {
    let id = existing_session(state, id).await?;
    let e = service::erase_session(&state.db, &state.recordings, &id, Utc::now())
        .await
        .map_err(erasure_problem)?;
    Ok(Json(Erasure {
        sessions: vec![id],
        participants: e.participants,
        chat_messages: e.chat_messages,
        snapshots: e.snapshots,
        recordings: e.recordings,
        ratings: e.ratings,
    }))
}

fn hold_to_api(h: crate::store::holds::LegalHold) -> Hold {
    Hold {
        session_id: h.session_id,
        reason: h.reason,
        created_at: h.created_at,
        created_by: h.created_by,
    }
}

async fn existing_session(state: &AppState, id: &str) -> Result<String, ApiError> {
    let id = parse_session_id(id)?;
    if crate::store::sessions::get(&state.db, &id).await?.is_none() {
        return Err(not_found());
    }
    Ok(id.to_string())
}

#[OpenApi(prefix_path = "/api/v1", tag = "ComplianceTags::Compliance")]
impl ComplianceApi {
    /// Place a legal hold
    ///
    /// While held, nothing of the session is deleted: retention skips it, erasure and
    /// recording deletion answer `409 legal_hold`.
    #[oai(
        path = "/sessions/:id/hold",
        method = "post",
        operation_id = "placeHold"
    )]
    async fn place_hold(
        &self,
        state: poem::web::Data<&AppState>,
        auth: ApiKeyAuth,
        id: Path<String>,
        body: Json<HoldRequest>,
    ) -> Result<HoldPlaced, ApiError> {
        let id = existing_session(&state, &id.0).await?;
        let by = format!("api_key:{}", auth.0.key_id);
        let (h, created) =
            crate::store::holds::place(&state.db, &id, body.0.reason.trim(), &by, Utc::now())
                .await?;
        Ok(if created {
            HoldPlaced::Created(Json(hold_to_api(h)))
        } else {
            HoldPlaced::Existing(Json(hold_to_api(h)))
        })
    }

    /// Release a legal hold
    ///
    /// Idempotent: a session that is not held answers `204` too.
    #[oai(
        path = "/sessions/:id/hold",
        method = "delete",
        operation_id = "releaseHold"
    )]
    async fn release_hold(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Released, ApiError> {
        let id = existing_session(&state, &id.0).await?;
        if !crate::store::holds::release(&state.db, &id).await? {
            return Err(ApiError::not_found(
                "hold_not_found",
                "the session is not held",
            ));
        }
        Ok(Released::Done)
    }

    /// Erase a customer
    ///
    /// Erases every session whose customer (or any participant) has this e-mail address,
    /// as `DELETE /sessions/{id}` does. Nothing is erased when one of them is live or
    /// under a legal hold (`409`).
    #[oai(path = "/customers", method = "delete", operation_id = "eraseCustomer")]
    async fn erase_customer(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        #[oai(validator(min_length = 3, max_length = 320))] email: Query<String>,
    ) -> Result<Json<Erasure>, ApiError> {
        let ids = service::erase_customer(&state.db, &state.recordings, &email.0, Utc::now())
            .await
            .map_err(erasure_problem)?;
        Ok(Json(Erasure {
            sessions: ids,
            participants: 0,
            chat_messages: 0,
            snapshots: 0,
            recordings: 0,
            ratings: 0,
        }))
    }

    /// Export for a data-subject request
    ///
    /// A ZIP of every session of a conversation (`conversation_id`) or of a customer
    /// (`email`): per session `session.json`, `timeline.json`, `chat.json`,
    /// `recordings.json`, photos and the decrypted recordings; `manifest.json` lists every
    /// file with its SHA-256 and `SHA256SUMS` the same for `sha256sum -c`; both are signed
    /// (`.sig`, raw Ed25519) by the key at `/exports/public-key`.
    #[oai(path = "/exports", method = "get", operation_id = "exportData")]
    async fn export(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        #[oai(validator(min_length = 1, max_length = 200))] conversation_id: Query<Option<String>>,
        #[oai(validator(min_length = 3, max_length = 320))] email: Query<Option<String>>,
    ) -> Result<ExportResponse, ApiError> {
        let subject = match (conversation_id.0, email.0) {
            (Some(c), None) => Subject::Conversation(c),
            (None, Some(e)) => Subject::Email(e),
            _ => {
                return Err(ApiError::unprocessable(
                    "export_subject",
                    "give exactly one of conversation_id and email",
                ));
            }
        };
        let tmp = tempfile_in(&state)?;
        let file = service::export(
            &state.db,
            &state.recordings,
            &state.export_key,
            &subject,
            tmp,
            Utc::now(),
        )
        .await
        .map_err(|e| match e {
            ExportError::Nothing => ApiError::not_found("nothing_to_export", "no session matches"),
            ExportError::Db(e) => e.into(),
            other => ApiError::internal(anyhow::anyhow!(other)),
        })?;
        let file = tokio::fs::File::from_std(file);
        let mut file = file;
        use tokio::io::AsyncSeekExt;
        file.seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(ApiError::internal)?;
        let name = format!("export-{}.zip", Utc::now().format("%Y%m%dT%H%M%SZ"));
        Ok(ExportResponse::Ok(
            ZipBody::Zip(Binary(Body::from_async_read(file))),
            format!("attachment; filename=\"{name}\""),
            "private, no-store".to_owned(),
        ))
    }

    /// The export signing key
    ///
    /// The Ed25519 public key (PEM) that verifies `manifest.json.sig` and `SHA256SUMS.sig`:
    /// `openssl pkeyutl -verify -pubin -inkey export-key.pem -rawin -in manifest.json
    /// -sigfile manifest.json.sig`.
    #[oai(
        path = "/exports/public-key",
        method = "get",
        operation_id = "exportPublicKey"
    )]
    async fn public_key(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
    ) -> Result<PlainText<String>, ApiError> {
        Ok(PlainText(state.export_key.public_pem()))
    }
}

/// An unnamed temporary file in the recordings directory (deleted when closed).
fn tempfile_in(state: &AppState) -> Result<std::fs::File, ApiError> {
    let dir = state.recordings.dir().join("tmp");
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    tempfile_file(&dir).map_err(ApiError::internal)
}

fn tempfile_file(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    // Opened, then unlinked at once: the space returns when the answer is sent.
    let path = dir.join(format!("export-{}.zip", uuid::Uuid::new_v4()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(f)
}
