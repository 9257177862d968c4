//! Recording routed calls: the recorder (RTP → WebM, no transcoding), encrypted files, keys.
pub mod contract;
pub mod keys;
pub mod sealed;
pub mod files;
pub mod range;
