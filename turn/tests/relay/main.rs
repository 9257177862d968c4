//! The TURN server's integration tests, one binary: the real server on port 0 on
//! loopback against coturn's clients (UDP, TCP, TLS), webrtc-rs peers, headless
//! Chromium, hostile stream clients and black-box security probes.

mod common;

mod browser_relay;
mod coturn_clients;
mod security;
mod streams;
mod webrtc_relay;
