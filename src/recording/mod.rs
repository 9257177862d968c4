//! Recording routed calls: the recorder (RTP → WebM, no transcoding), encrypted files, keys.
pub mod contract;
pub mod files;
pub mod keys;
pub mod mux;
pub mod range;
pub mod recorder;
pub mod sealed;

pub use recorder::{Recorder, RecorderError};
