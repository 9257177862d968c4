//! Use cases of the compliance officer: erasure of a session or of a customer's sessions,
//! and exports for a data-subject request (a ZIP with a signed manifest).

use std::io::Write;
use std::path::Path;

use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey};
use sea_orm::{DatabaseConnection, DbErr};
use sha2::{Digest, Sha256};

use crate::recording::files::{ReadError, RecordingFiles};
use crate::store::erasure::{self as repo, EraseError, Erased};

/// Why an erasure was refused.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("no such session")]
    NotFound,
    #[error("session {0} is under a legal hold: release the hold first")]
    Held(String),
    #[error("session {0} is still live: end it first (POST /api/v1/sessions/{0}/end)")]
    Live(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Erases one session (refused while it is live or held). The recording files are
/// removed after the key is destroyed: from then on they are unreadable even if a copy
/// survives.
pub async fn erase_session(
    db: &DatabaseConnection,
    files: &RecordingFiles,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Erased, ErasureError> {
    let s = repo::session(db, id).await?.ok_or(ErasureError::NotFound)?;
    if repo::is_live(&s, now) {
        return Err(ErasureError::Live(id.to_owned()));
    }
    let (erased, recs) = repo::erase_session(db, id, now)
        .await
        .map_err(|e| match e {
            EraseError::Held => ErasureError::Held(id.to_owned()),
            EraseError::NotFound => ErasureError::NotFound,
            EraseError::Db(e) => ErasureError::Db(e),
        })?;
    for r in recs {
        if let Err(e) = files.remove_file(&r).await {
            tracing::warn!(recording_id = %r.id, error = %e, "erased recording's file not removed (its key is destroyed)");
        }
    }
    tracing::info!(session_id = %id, "session erased");
    Ok(erased)
}

/// Erases every session of a customer (by e-mail). Nothing is erased when one of them is
/// live or held. Returns the sessions erased.
pub async fn erase_customer(
    db: &DatabaseConnection,
    files: &RecordingFiles,
    email: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, ErasureError> {
    let ids = repo::sessions_by_email(db, email).await?;
    for id in &ids {
        if let Some(s) = repo::session(db, id).await?
            && repo::is_live(&s, now)
        {
            return Err(ErasureError::Live(id.clone()));
        }
        if crate::store::holds::is_held(db, id).await? {
            return Err(ErasureError::Held(id.clone()));
        }
    }
    for id in &ids {
        erase_session(db, files, id, now).await?;
    }
    Ok(ids)
}

/// The key that signs export manifests (Ed25519).
pub struct ExportKey(SigningKey);

impl ExportKey {
    /// Loads `configured`, or the key generated at `{data_dir}/export-signing.key`.
    pub fn load(
        configured: Option<&Path>,
        data_dir: &Path,
    ) -> Result<Self, crate::recording::keys::KeyError> {
        let seed = match configured {
            Some(p) => crate::recording::keys::read_key_file(p)?,
            None => {
                crate::recording::keys::load_or_create_key_file(
                    &data_dir.join("export-signing.key"),
                )?
                .0
            }
        };
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The public key as PEM (SubjectPublicKeyInfo, RFC 8410), as `openssl pkeyutl -pubin`
    /// reads it.
    pub fn public_pem(&self) -> String {
        // SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (32 bytes) }
        const SPKI_PREFIX: [u8; 12] = [
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        let der = [
            SPKI_PREFIX.as_slice(),
            self.0.verifying_key().as_bytes().as_slice(),
        ]
        .concat();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

/// Which sessions an export covers.
#[derive(Debug, Clone)]
pub enum Subject {
    Conversation(String),
    Email(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no session matches")]
    Nothing,
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("writing the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the archive: {0}")]
    Zip(#[from] zip::result::ZipError),
}

/// A file of the archive and its SHA-256.
struct Entry {
    path: String,
    bytes: u64,
    sha256: String,
}

/// Builds the ZIP in `out` (a temporary file): per session `session.json`, `timeline.json`,
/// `chat.json`, photos and decrypted recordings; then `manifest.json` (every file with its
/// SHA-256), `SHA256SUMS` (the same, as `sha256sum -c` reads it) and their Ed25519
/// signatures `manifest.json.sig` and `SHA256SUMS.sig`.
pub async fn export(
    db: &DatabaseConnection,
    files: &RecordingFiles,
    key: &ExportKey,
    subject: &Subject,
    out: std::fs::File,
    now: DateTime<Utc>,
) -> Result<std::fs::File, ExportError> {
    let ids = match subject {
        Subject::Conversation(c) => repo::sessions_by_conversation(db, c).await?,
        Subject::Email(e) => repo::sessions_by_email(db, e).await?,
    };
    if ids.is_empty() {
        return Err(ExportError::Nothing);
    }
    let mut zip = zip::ZipWriter::new(out);
    let deflate = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let mut entries: Vec<Entry> = Vec::new();
    for id in &ids {
        let Some(view) = crate::store::sessions::get(db, id).await? else {
            continue;
        };
        let s = &view.session;
        let session_json = serde_json::json!({
            "id": s.id,
            "conversation": {"platform": s.conversation_platform, "id": s.conversation_id},
            "agent": {"id": s.agent_id, "name": s.agent_name},
            "customer": {"name": s.customer_name, "email": s.customer_email, "locale": s.customer_locale},
            "metadata": s.metadata,
            "status": s.status,
            "created_at": s.created_at,
            "ended_at": s.ended_at,
            "end_reason": s.end_reason,
            "participants": view.participants.iter().map(|p| serde_json::json!({
                "id": p.id, "role": p.role, "display_name": p.display_name,
                "first_joined_at": p.first_joined_at, "left_at": p.left_at,
            })).collect::<Vec<_>>(),
        });
        let dir = format!("sessions/{id}");
        put(
            &mut zip,
            &mut entries,
            format!("{dir}/session.json"),
            &pretty(&session_json),
            deflate,
        )?;
        let events = crate::store::timeline::events(db, id, None, 100_000).await?;
        let timeline: Vec<_> = events
            .iter()
            .map(|e| serde_json::json!({"id": e.id, "kind": e.kind, "at": e.at, "participant_id": e.participant_id, "data": e.data}))
            .collect();
        put(
            &mut zip,
            &mut entries,
            format!("{dir}/timeline.json"),
            &pretty(&timeline),
            deflate,
        )?;
        let chat = crate::store::chat::list(db, id, None, 100_000).await?;
        let chat: Vec<_> = chat
            .iter()
            .map(|m| serde_json::json!({"id": m.id, "at": m.at, "participant_id": m.participant_id, "role": m.role, "display_name": m.display_name, "text": m.text, "internal": m.internal}))
            .collect();
        put(
            &mut zip,
            &mut entries,
            format!("{dir}/chat.json"),
            &pretty(&chat),
            deflate,
        )?;
        for meta in crate::store::snapshots::list(db, id).await? {
            if let Some(snap) = crate::store::snapshots::get(db, &meta.id).await? {
                let ext = match snap.content_type.as_str() {
                    "image/png" => "png",
                    "image/webp" => "webp",
                    _ => "jpg",
                };
                put(
                    &mut zip,
                    &mut entries,
                    format!("{dir}/snapshots/{}.{ext}", snap.id),
                    &snap.data,
                    stored,
                )?;
            }
        }
        let recs = crate::store::recordings::list(db, id).await?;
        let manifest: Vec<_> = recs
            .iter()
            .map(|r| serde_json::json!({"id": r.id, "participant_id": r.participant_id, "status": r.status, "started_at_ms": r.started_at_ms, "duration_ms": r.duration_ms, "codecs": r.codecs, "sha256": r.sha256, "file": format!("recordings/{}.webm", r.id)}))
            .collect();
        put(
            &mut zip,
            &mut entries,
            format!("{dir}/recordings.json"),
            &pretty(&manifest),
            deflate,
        )?;
        for r in recs {
            let mut reader = match files.reader(&r).await {
                Ok(reader) => reader,
                Err(e) => {
                    tracing::warn!(recording_id = %r.id, error = %e, "recording left out of the export");
                    continue;
                }
            };
            let path = format!("{dir}/recordings/{}.webm", r.id);
            let (z, entry) = tokio::task::spawn_blocking(move || -> Result<_, ExportError> {
                zip.start_file(path.as_str(), stored)?;
                let mut h = Sha256::new();
                let len = reader.len();
                reader
                    .read_range(0, len, |b| {
                        h.update(b);
                        zip.write_all(b)
                    })
                    .map_err(ReadError::from)?;
                Ok((
                    zip,
                    Entry {
                        path,
                        bytes: len,
                        sha256: hex::encode(h.finalize()),
                    },
                ))
            })
            .await
            .map_err(|e| ExportError::Io(std::io::Error::other(e)))??;
            zip = z;
            entries.push(entry);
        }
    }
    let manifest = serde_json::json!({
        "generated_at": now,
        "subject": match subject {
            Subject::Conversation(c) => serde_json::json!({"conversation_id": c}),
            Subject::Email(e) => serde_json::json!({"email": e}),
        },
        "sessions": ids,
        "files": entries.iter().map(|e| serde_json::json!({"path": e.path, "bytes": e.bytes, "sha256": e.sha256})).collect::<Vec<_>>(),
    });
    let manifest = pretty(&manifest);
    let sums: String = entries
        .iter()
        .map(|e| format!("{}  {}\n", e.sha256, e.path))
        .collect();
    let opts = deflate;
    for (name, data) in [
        ("manifest.json", manifest.clone()),
        ("manifest.json.sig", key.sign(&manifest).to_vec()),
        ("SHA256SUMS", sums.clone().into_bytes()),
        ("SHA256SUMS.sig", key.sign(sums.as_bytes()).to_vec()),
    ] {
        zip.start_file(name, opts)?;
        zip.write_all(&data)?;
    }
    Ok(zip.finish()?)
}

fn put(
    zip: &mut zip::ZipWriter<std::fs::File>,
    entries: &mut Vec<Entry>,
    path: String,
    data: &[u8],
    opts: zip::write::SimpleFileOptions,
) -> Result<(), ExportError> {
    zip.start_file(path.as_str(), opts)?;
    zip.write_all(data)?;
    entries.push(Entry {
        path,
        bytes: data.len() as u64,
        sha256: hex::encode(Sha256::digest(data)),
    });
    Ok(())
}

fn pretty<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}
