//! sea-orm entities: one per table, grouped by the domain that owns the table.

pub mod api_key;
mod integrations;
mod outbox;
mod participants;
mod sessions;

pub use integrations::{app_session, integration, session_link, sync_cursor};
pub use outbox::{delivery, inbound};
pub use participants::{join_link, participant};
pub use sessions::{event, session};
