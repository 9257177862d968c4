//! Pure types and rules of the product, no IO: roles and their permissions, the kinds of
//! timeline events, the session state machine.

pub mod events;
pub mod images;
pub mod quality;
pub mod role;
pub mod session;

pub use events::EventKind;
pub use role::{Grant, Mode, Role, Seat};
pub mod tokens;
