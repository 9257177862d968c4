//! The sealed file format of recordings at rest: append-only, each record encrypted and
//! authenticated on its own, so that a file is readable while it is written, a crash
//! leaves a file readable up to its last whole record, and any change is detected.
//!
//! ```text
//! header (32 bytes):  magic "SIGHTREC" | version 1 (1 byte) | recording id (16 bytes, UUID)
//!                     | nonce prefix (7 random bytes)
//! record (repeated):  ciphertext length (u32, big endian) | ChaCha20-Poly1305 ciphertext + tag
//! ```
//!
//! Record `i` is sealed with the nonce `prefix ‖ i (u32 BE) ‖ final flag (1 byte)` and the
//! associated data `header ‖ i (u32 BE) ‖ final flag`: a record moved, swapped, copied to
//! another file or another recording, or marked final when it was not, fails its tag.
//! The last record of a finished file carries the final flag (often empty): a file whose
//! last whole record does not carry it was cut short (a crash, or someone truncating it),
//! and the reader says so ([`SealedReader::is_complete`]) while still reading what is there.
//! The key is the recording's own (see [`crate::recording::keys`]).

use std::io::{self, Read, Seek, SeekFrom, Write};

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"SIGHTREC";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 32;
const PREFIX_LEN: usize = 7;
const TAG_LEN: usize = 16;
/// The largest plaintext of one record (appends beyond it are split).
pub const MAX_RECORD: usize = 1 << 20;

/// Why a sealed file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    #[error("reading the file: {0}")]
    Io(#[from] io::Error),
    #[error("not a sealed recording")]
    NotSealed,
    #[error("unsupported sealed format version {0}")]
    Version(u8),
    #[error("the file belongs to another recording")]
    WrongRecording,
    #[error("the file is corrupt: {0}")]
    Corrupt(&'static str),
    /// A record failed authentication: the bytes were changed, or the key is not this
    /// file's (destroyed and replaced, or another session's).
    #[error("record {0} failed authentication")]
    Tampered(u64),
    #[error("the range is outside the plaintext")]
    Range,
}

/// Makes written bytes durable (`fdatasync` for files).
pub trait SyncData {
    fn sync_data(&self) -> io::Result<()>;
}

impl SyncData for std::fs::File {
    fn sync_data(&self) -> io::Result<()> {
        std::fs::File::sync_data(self)
    }
}

impl SyncData for Vec<u8> {
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
}

fn header(recording_id: &uuid::Uuid, prefix: &[u8; PREFIX_LEN]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8] = VERSION;
    h[9..25].copy_from_slice(recording_id.as_bytes());
    h[25..].copy_from_slice(prefix);
    h
}

fn nonce_and_aad(header: &[u8; HEADER_LEN], index: u32, last: bool) -> ([u8; 12], Vec<u8>) {
    let mut nonce = [0u8; 12];
    nonce[..PREFIX_LEN].copy_from_slice(&header[25..]);
    nonce[PREFIX_LEN..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    let mut aad = Vec::with_capacity(HEADER_LEN + 5);
    aad.extend_from_slice(header);
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(u8::from(last));
    (nonce, aad)
}

/// What a finished file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Plaintext bytes.
    pub len: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
}

/// Appends plaintext to a sealed file: `append` buffers, `flush` seals what is buffered as
/// one record and writes it, `finish` writes the final record.
pub struct SealedWriter<W: Write + SyncData> {
    out: W,
    cipher: ChaCha20Poly1305,
    header: [u8; HEADER_LEN],
    next: u32,
    buf: Vec<u8>,
    len: u64,
    hasher: Sha256,
    sync: bool,
    /// Set after a failed write: the file may end in a partial record, so nothing more
    /// is written to it.
    broken: bool,
}

impl<W: Write + SyncData> SealedWriter<W> {
    /// Writes the header. `sync`: `fdatasync` after every flush (always at finish).
    pub fn create(
        mut out: W,
        key: &[u8; 32],
        recording_id: &uuid::Uuid,
        sync: bool,
    ) -> io::Result<Self> {
        let prefix: [u8; PREFIX_LEN] = rand::random();
        let header = header(recording_id, &prefix);
        out.write_all(&header)?;
        Ok(Self {
            out,
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
            header,
            next: 0,
            buf: Vec::new(),
            len: 0,
            hasher: Sha256::new(),
            sync,
            broken: false,
        })
    }

    fn check(&self) -> io::Result<()> {
        if self.broken {
            Err(io::Error::other("an earlier write failed"))
        } else {
            Ok(())
        }
    }

    /// Buffers plaintext (a full record's worth is sealed and written at once).
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.check()?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.buf.extend_from_slice(bytes);
        while self.buf.len() >= MAX_RECORD {
            let rest = self.buf.split_off(MAX_RECORD);
            let record = std::mem::replace(&mut self.buf, rest);
            self.seal(record, false)?;
        }
        Ok(())
    }

    fn seal(&mut self, mut record: Vec<u8>, last: bool) -> io::Result<()> {
        let index = self.next;
        self.next = index
            .checked_add(1)
            .ok_or_else(|| io::Error::other("too many records in one file"))?;
        let (nonce, aad) = nonce_and_aad(&self.header, index, last);
        self.cipher
            .encrypt_in_place(Nonce::from_slice(&nonce), &aad, &mut record)
            .map_err(|_| io::Error::other("sealing failed"))?;
        let len = u32::try_from(record.len()).map_err(|_| io::Error::other("record too long"))?;
        let mut frame = Vec::with_capacity(4 + record.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&record);
        if let Err(e) = self.out.write_all(&frame) {
            self.broken = true;
            return Err(e);
        }
        Ok(())
    }

    /// Seals and writes what is buffered (nothing when empty); `fdatasync` when configured.
    pub fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        if !self.buf.is_empty() {
            let record = std::mem::take(&mut self.buf);
            self.seal(record, false)?;
        }
        self.out.flush()?;
        if self.sync {
            self.out.sync_data()?;
        }
        Ok(())
    }

    /// Plaintext bytes appended so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the final record and makes the file durable.
    pub fn finish(mut self) -> io::Result<(W, Sealed)> {
        self.check()?;
        let record = std::mem::take(&mut self.buf);
        self.seal(record, true)?;
        self.out.flush()?;
        self.out.sync_data()?;
        let sha256 = self.hasher.finalize().into();
        Ok((
            self.out,
            Sealed {
                len: self.len,
                sha256,
            },
        ))
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    /// Offset of the ciphertext in the file.
    offset: u64,
    ct_len: u32,
    /// Offset of its plaintext in the whole plaintext.
    plain_start: u64,
}

/// Reads a sealed file: its plaintext length, and any plaintext range, record by record.
pub struct SealedReader<R: Read + Seek> {
    src: R,
    cipher: ChaCha20Poly1305,
    header: [u8; HEADER_LEN],
    records: Vec<Record>,
    plain_len: u64,
    complete: bool,
}

impl<R: Read + Seek> SealedReader<R> {
    /// Reads the header and the records' frames, and authenticates the last record (which
    /// tells whether the file was finished). `expected`: the recording the file must be.
    pub fn open(
        mut src: R,
        key: &[u8; 32],
        expected: Option<&uuid::Uuid>,
    ) -> Result<Self, SealedError> {
        let file_len = src.seek(SeekFrom::End(0))?;
        src.seek(SeekFrom::Start(0))?;
        let mut header = [0u8; HEADER_LEN];
        if file_len < HEADER_LEN as u64 {
            return Err(SealedError::NotSealed);
        }
        src.read_exact(&mut header)?;
        if &header[..8] != MAGIC {
            return Err(SealedError::NotSealed);
        }
        if header[8] != VERSION {
            return Err(SealedError::Version(header[8]));
        }
        if let Some(id) = expected
            && &header[9..25] != id.as_bytes()
        {
            return Err(SealedError::WrongRecording);
        }
        let mut records = Vec::new();
        let mut at = HEADER_LEN as u64;
        let mut plain = 0u64;
        let mut src = io::BufReader::new(src);
        while at + 4 <= file_len {
            let mut len = [0u8; 4];
            src.read_exact(&mut len)?;
            let ct_len = u32::from_be_bytes(len);
            if (ct_len as usize) < TAG_LEN || ct_len as usize > MAX_RECORD + TAG_LEN {
                return Err(SealedError::Corrupt("a record length is out of bounds"));
            }
            if at + 4 + u64::from(ct_len) > file_len {
                break; // A record cut short: the file ends before it.
            }
            if records.len() >= u32::MAX as usize {
                return Err(SealedError::Corrupt("too many records"));
            }
            records.push(Record {
                offset: at + 4,
                ct_len,
                plain_start: plain,
            });
            plain += u64::from(ct_len) - TAG_LEN as u64;
            at += 4 + u64::from(ct_len);
            src.seek_relative(i64::from(ct_len))?;
        }
        let mut r = Self {
            src: src.into_inner(),
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
            header,
            records,
            plain_len: plain,
            complete: false,
        };
        if let Some(last) = r.records.len().checked_sub(1) {
            if r.decrypt(last, true).is_ok() {
                r.complete = true;
                if at != file_len {
                    return Err(SealedError::Corrupt("bytes after the final record"));
                }
            } else {
                r.decrypt(last, false)?;
            }
        }
        Ok(r)
    }

    /// Plaintext bytes readable.
    pub fn len(&self) -> u64 {
        self.plain_len
    }

    pub fn is_empty(&self) -> bool {
        self.plain_len == 0
    }

    /// Whether the file ends with its final record (false: cut short by a crash or
    /// truncation; what is there is still readable).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    fn decrypt(&mut self, i: usize, last: bool) -> Result<Vec<u8>, SealedError> {
        let rec = self.records[i];
        self.src.seek(SeekFrom::Start(rec.offset))?;
        let mut buf = vec![0u8; rec.ct_len as usize];
        self.src.read_exact(&mut buf)?;
        let index = u32::try_from(i).map_err(|_| SealedError::Corrupt("too many records"))?;
        let (nonce, aad) = nonce_and_aad(&self.header, index, last);
        self.cipher
            .decrypt_in_place(Nonce::from_slice(&nonce), &aad, &mut buf)
            .map_err(|_| SealedError::Tampered(i as u64))?;
        Ok(buf)
    }

    /// Decrypts the plaintext bytes `start..end` and hands them to `sink` record by record.
    pub fn read_range(
        &mut self,
        start: u64,
        end: u64,
        mut sink: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), SealedError> {
        if start > end || end > self.plain_len {
            return Err(SealedError::Range);
        }
        if start == end {
            return Ok(());
        }
        // The record holding `start`: the last whose plaintext begins at or before it.
        let first = self
            .records
            .partition_point(|r| r.plain_start <= start)
            .saturating_sub(1);
        let last_index = self.records.len() - 1;
        for i in first..self.records.len() {
            let rec = self.records[i];
            if rec.plain_start >= end {
                break;
            }
            let plain = self.decrypt(i, self.complete && i == last_index)?;
            let from = start.saturating_sub(rec.plain_start) as usize;
            let to = (end - rec.plain_start).min(plain.len() as u64) as usize;
            if from < to {
                sink(&plain[from..to])?;
            }
        }
        Ok(())
    }

    /// The whole plaintext (tests and exports of small files).
    pub fn read_all(&mut self) -> Result<Vec<u8>, SealedError> {
        let mut out = Vec::with_capacity(self.plain_len as usize);
        self.read_range(0, self.plain_len, |b| {
            out.extend_from_slice(b);
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
#[path = "sealed_tests.rs"]
mod tests;
