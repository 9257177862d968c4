//! Recording routed calls: the recorder (RTP → WebM, no transcoding), encrypted files, keys.
pub mod contract;
