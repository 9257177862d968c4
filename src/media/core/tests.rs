//! The core's behaviour on the in-memory network (see `harness`): forwarding, key-frame
//! requests, NACK per hop, REMB and the bitrate cap, and bad input.

use std::time::Duration;

use super::harness::{Net, is_rtp};
use crate::domain::Role;

fn call_of_two(cap_bps: u64) -> Net {
    let mut net = Net::new(cap_bps);
    net.join("a", Role::Agent);
    net.join("b", Role::Customer);
    net.settle();
    // ICE, DTLS, the first media and renegotiations.
    net.run(Duration::from_secs(2), 900);
    assert!(
        net.client("b").seqs("a", "video").len() > 20,
        "b got {:?}",
        net.client("b").got.rtp.keys().collect::<Vec<_>>()
    );
    net
}

#[test]
fn two_clients_exchange_media_in_memory() {
    let mut net = call_of_two(2_500_000);
    let before = net.client("a").seqs("b", "audio").len();
    net.run(Duration::from_secs(1), 900);
    assert!(net.client("a").seqs("b", "audio").len() >= before + 45);
    let _ = is_rtp(&[]);
}
