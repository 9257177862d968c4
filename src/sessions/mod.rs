//! Sessions: one call bound to one chat conversation.

pub mod api;
pub mod batch;
pub mod entity;
pub mod fields;
pub mod machine;
pub mod repo;
pub mod sweeper;
