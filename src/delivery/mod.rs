//! Delivery: the outbox worker and one sender per kind (event webhooks, chat posts,
//! e-mail), registered in `app.rs`. The worker knows only the registry in [`senders`].

pub mod adapters;
pub mod email;
pub mod matrix_sync;
pub mod message;
pub mod net;
pub mod senders;
pub mod signing;
pub mod transcript;
pub mod webhook;
pub mod worker;
