//! Sessions: one call bound to one chat conversation.

pub mod batch;
pub mod entity;
pub mod fields;
/// The session state machine lives in the domain layer.
pub use crate::domain::session as machine;
pub mod repo;
pub mod sqlite_writer;
