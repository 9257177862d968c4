//! sea-orm entities: one per table, grouped by the domain that owns the table.

pub mod api_key;
mod integrations;
mod outbox;
mod participants;
mod sessions;

pub use integrations::{integration, session_link};
pub use outbox::{delivery, inbound};
pub use participants::{join_link, participant};
pub use sessions::{event, session};
