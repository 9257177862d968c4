//! Unit tests of the core without sockets; time is passed in, no sleeps.

mod auth;
mod harness;
mod relay;
mod revoked;
