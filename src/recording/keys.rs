//! Keys of recordings at rest.
//!
//! * The **master key** (32 bytes) lives in a file, ideally outside the data directory
//!   (`recording.master_key_file`). It never encrypts media: it wraps session keys.
//! * Each session's **recording key** (32 random bytes) is created when its first
//!   recording opens and stored only wrapped (XChaCha20-Poly1305 under the master key,
//!   bound to the session id) in the `session_keys` table. Deleting that row destroys
//!   the session's recordings everywhere the files were copied (crypto-shredding).
//! * Each file is sealed with its own key, HMAC-SHA256(session key, recording id), so
//!   no two files share a key and nonce space.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

const WRAP_AAD: &[u8] = b"sightline/session-key/v1\0";
const WRAP_NONCE: usize = 24;

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: a key file holds 64 hex characters (32 bytes)")]
    Format(PathBuf),
    /// The wrapped key does not open under this master key (another master key, or
    /// changed bytes).
    #[error("the session key does not unwrap under this master key")]
    Unwrap,
}

/// The master key (zeroed when dropped; never logged).
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A session's recording key in the clear (zeroed when dropped).
pub type SessionKey = Zeroizing<[u8; 32]>;

/// Reads a 32-byte key kept as 64 hex characters (surrounding white space ignored).
pub fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), key.as_mut_slice())
        .map_err(|_| KeyError::Format(path.to_owned()))?;
    Ok(key)
}

/// Reads the key at `path`, or creates it there (32 random bytes, mode 0600) when the file
/// does not exist. Returns whether it was created.
pub fn load_or_create_key_file(path: &Path) -> Result<(Zeroizing<[u8; 32]>, bool), KeyError> {
    if path.exists() {
        return Ok((read_key_file(path)?, false));
    }
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let key = Zeroizing::new(rand::random::<[u8; 32]>());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = match opts.open(path) {
        Ok(f) => f,
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Ok((read_key_file(path)?, false));
        }
        Err(e) => return Err(io(e)),
    };
    let text = Zeroizing::new(format!("{}\n", hex::encode(key.as_slice())));
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok((key, true))
}

impl MasterKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// Loads `configured`, or the generated key at `{data_dir}/recording-master.key`
    /// (created on first use). The second value is a warning to log when the key lives
    /// beside the data.
    pub fn load(
        configured: Option<&Path>,
        data_dir: &Path,
    ) -> Result<(Self, Option<String>), KeyError> {
        match configured {
            Some(path) => Ok((Self(read_key_file(path)?), None)),
            None => {
                let path = data_dir.join("recording-master.key");
                let (key, _) = load_or_create_key_file(&path)?;
                let warning = format!(
                    "the recording master key is {} beside the data it protects: a backup of \
                     the data directory then holds the key too; set recording.master_key_file \
                     to a file kept elsewhere",
                    path.display()
                );
                Ok((Self(key), Some(warning)))
            }
        }
    }

    fn aad(session_id: &str) -> Vec<u8> {
        [WRAP_AAD, session_id.as_bytes()].concat()
    }

    /// Wraps a session key: 24-byte nonce ‖ ciphertext ‖ tag.
    pub fn wrap(&self, session_id: &str, key: &SessionKey) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(self.0.as_slice().into());
        let nonce: [u8; WRAP_NONCE] = rand::random();
        let aad = Self::aad(session_id);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key.as_slice(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals 32 bytes");
        [nonce.as_slice(), &ct].concat()
    }

    /// Unwraps a session key wrapped for `session_id`.
    pub fn unwrap_key(&self, session_id: &str, wrapped: &[u8]) -> Result<SessionKey, KeyError> {
        if wrapped.len() < WRAP_NONCE {
            return Err(KeyError::Unwrap);
        }
        let (nonce, ct) = wrapped.split_at(WRAP_NONCE);
        let cipher = XChaCha20Poly1305::new(self.0.as_slice().into());
        let aad = Self::aad(session_id);
        let plain = Zeroizing::new(
            cipher
                .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
                .map_err(|_| KeyError::Unwrap)?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(KeyError::Unwrap);
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

/// A new random session key.
pub fn new_session_key() -> SessionKey {
    Zeroizing::new(rand::random())
}

/// The key that seals one recording's file.
pub fn file_key(session_key: &SessionKey, recording_id: &uuid::Uuid) -> Zeroizing<[u8; 32]> {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(session_key.as_slice())
        .expect("HMAC takes any key length");
    mac.update(b"sightline/recording-file/v1\0");
    mac.update(recording_id.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_open_only_for_their_session_and_master() {
        let m = MasterKey::from_bytes([1; 32]);
        let k = new_session_key();
        let w = m.wrap("s1", &k);
        assert_eq!(*m.unwrap_key("s1", &w).expect("unwraps"), *k);
        assert!(m.unwrap_key("s2", &w).is_err(), "bound to the session");
        assert!(MasterKey::from_bytes([2; 32]).unwrap_key("s1", &w).is_err());
        let mut bad = w.clone();
        bad[30] ^= 1;
        assert!(m.unwrap_key("s1", &bad).is_err());
        assert!(m.unwrap_key("s1", &w[..10]).is_err());
    }

    #[test]
    fn a_generated_key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (m1, warning) = MasterKey::load(None, dir.path()).expect("creates");
        assert!(warning.expect("warns").contains("recording-master.key"));
        let path = dir.path().join("recording-master.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (m2, _) = MasterKey::load(Some(&path), dir.path()).expect("reloads");
        assert_eq!(*m1.0, *m2.0);
        std::fs::write(&path, "not hex").expect("write");
        assert!(matches!(
            MasterKey::load(Some(&path), dir.path()),
            Err(KeyError::Format(_))
        ));
    }

    #[test]
    fn file_keys_differ_per_recording() {
        let k = new_session_key();
        let a = file_key(&k, &uuid::Uuid::from_u128(1));
        let b = file_key(&k, &uuid::Uuid::from_u128(2));
        assert_ne!(*a, *b);
    }
}
