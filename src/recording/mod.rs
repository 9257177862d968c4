//! Recording routed calls: the recorder (RTP → WebM, no transcoding), encrypted files, keys.
pub mod contract;
pub mod mux;
pub mod recorder;

pub use recorder::{Recorder, RecorderError};
