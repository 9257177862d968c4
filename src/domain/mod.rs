//! Pure types and rules of the product, no IO: roles and their permissions, the kinds of
//! timeline events, the session state machine.

pub mod agent_token;
pub mod events;
pub mod fields;
pub mod ids;
pub mod images;
pub mod media;
pub mod quality;
pub mod recording;
pub mod role;
pub mod server_quality;
pub mod session;

pub use events::EventKind;
pub use ids::{ParticipantId, SessionId};
pub use role::{Grant, Mode, Role, Seat};
pub mod chatwoot;
pub mod matrix;
pub mod outcome;
pub mod tokens;
