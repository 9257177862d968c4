//! Sightline's bundled TURN server (RFC 8489 STUN, RFC 8656 TURN, RFC 6156).
//!
//! * [`stun`]: the message codec;
//! * [`core`]: the sans-IO relay (allocations, permissions, channels, nonces,
//!   policy, quotas) driven by inputs and the current time;
//! * [`shell`]: the sockets (UDP engine thread on mio, TCP/TLS on tokio);
//! * [`credentials`]: TURN REST credentials shared with the app;
//! * [`revocations`]: credentials the app took back before their expiry;
//! * [`cli`]: the `sightline turn` command.

pub mod cli;
pub mod config;
pub mod core;
pub mod credentials;
pub mod framing;
pub mod nonce;
pub mod policy;
pub mod revocations;
pub mod shell;
pub mod stats;
pub mod stun;

pub use config::{TurnConfig, TurnError};
pub use revocations::Revocations;
pub use shell::TurnServer;
pub use stats::TurnStats;

#[cfg(test)]
mod api_tests {
    /// The app keeps these in shared state and moves them across tasks.
    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<crate::TurnServer>();
        check::<crate::TurnConfig>();
        check::<crate::TurnError>();
        check::<crate::TurnStats>();
    }
}
