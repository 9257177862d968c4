//! Use cases, one entry point each. Services take the handles they use (a database, the
//! session bus, keys), not the whole application state.

pub mod bus;
pub mod chat_calls;
pub mod compliance;
pub mod participants;
pub mod recording_control;
pub mod recordings;
pub mod reports;
pub mod server_quality;
pub mod sessions;
pub mod snapshots;
pub mod sweeper;
