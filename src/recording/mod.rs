//! Recording routed calls: the recorder (RTP → WebM, no transcoding), encrypted files, keys.
// The seam is copied verbatim: its `len` without `is_empty` stays as agreed.
#[allow(clippy::len_without_is_empty)]
pub mod contract;
pub mod files;
pub mod keys;
pub mod range;
pub mod sealed;
