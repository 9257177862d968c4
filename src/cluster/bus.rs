//! The session bus across nodes: a signal (the REST API ended a session, removed a
//! participant, …) is applied on the node that raised it and broadcast to every other
//! node (`{prefix}.signal`), which applies it to its own rooms (a no-op unless it owns the
//! session's room) and its own TURN server's revocations.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Node;
use super::wire::{self, SignalMsg, WireSignal};
use crate::services::bus::{RoomSignal, SessionBus};

/// Publishes signals to the other nodes (the local parts of the bus are beside it in a
/// [`crate::services::bus::Fanout`]).
pub struct Broadcast(pub Arc<Node>);

#[async_trait]
impl SessionBus for Broadcast {
    async fn publish(&self, session_id: &str, signal: RoomSignal) {
        let node = &self.0;
        let m = SignalMsg {
            id: uuid::Uuid::new_v4().simple().to_string(),
            origin: node.name.clone(),
            session: session_id.to_owned(),
            signal: WireSignal::from(&signal),
        };
        let send = node
            .client
            .publish(node.subject_signal(), wire::encode(&m).into());
        match tokio::time::timeout(Duration::from_secs(2), send).await {
            Ok(Ok(())) => {}
            _ => tracing::warn!(
                session_id,
                "could not tell the other nodes about a session change (broker unreachable); \
                 their sockets learn it when they reconnect"
            ),
        }
    }
}

/// Subscribes to the other nodes' signals; the returned task applies them to `local`.
pub async fn start(
    node: Arc<Node>,
    local: Arc<dyn SessionBus>,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, super::ClusterError> {
    let mut sub = node.subscribe(node.subject_signal()).await?;
    Ok(tokio::spawn(async move {
        // Recently applied ids: a signal is applied once even if it arrives twice.
        let mut seen: HashSet<String> = HashSet::new();
        let mut order: VecDeque<String> = VecDeque::new();
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                m = sub.next() => match m { Some(m) => m, None => return },
            };
            let m = match wire::decode::<SignalMsg>(&msg.payload) {
                Ok(m) => m,
                Err(e) => {
                    node.metrics.dropped.with_label_values(&["malformed"]).inc();
                    tracing::warn!(error = %e, "malformed session signal dropped");
                    continue;
                }
            };
            if m.origin == node.name || !seen.insert(m.id.clone()) {
                continue;
            }
            order.push_back(m.id);
            if order.len() > 4096
                && let Some(old) = order.pop_front()
            {
                seen.remove(&old);
            }
            match m.signal.into_signal() {
                Some(signal) => local.publish(&m.session, signal).await,
                None => {
                    node.metrics.dropped.with_label_values(&["malformed"]).inc();
                    tracing::warn!("session signal with an unknown mode dropped");
                }
            }
        }
    }))
}
