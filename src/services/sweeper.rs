//! Background task that ends expired sessions nobody is in, forgets expired agent tokens
//! and runs the retention job.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::services::bus::{RoomSignal, SessionBus};

/// Runs every `every` until `stop` is cancelled; tells the bus about each session it ends.
pub async fn run(
    db: sea_orm::DatabaseConnection,
    every: Duration,
    bus: std::sync::Arc<dyn SessionBus>,
    retention: Option<std::sync::Arc<crate::services::recordings::RetentionJob>>,
    stop: CancellationToken,
) {
    run_when(db, every, bus, retention, stop, || async { true }).await
}

/// [`run`], skipping the rounds for which `may_run` says no (in a cluster: while another
/// node holds the sweeper's lease).
pub async fn run_when<F, Fut>(
    db: sea_orm::DatabaseConnection,
    every: Duration,
    bus: std::sync::Arc<dyn SessionBus>,
    retention: Option<std::sync::Arc<crate::services::recordings::RetentionJob>>,
    stop: CancellationToken,
    may_run: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if !may_run().await {
            tokio::select! {
                _ = tokio::time::sleep(every) => continue,
                _ = stop.cancelled() => return,
            }
        }
        match crate::store::sessions::sweep_expired_ids(&db, chrono::Utc::now()).await {
            Ok(ids) if ids.is_empty() => {}
            Ok(ids) => {
                tracing::info!(ended = ids.len(), "expired sessions ended");
                for id in &ids {
                    let reason = crate::domain::session::REASON_EXPIRED.to_owned();
                    bus.publish(id, RoomSignal::Ended { reason }).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "session sweep failed"),
        }
        match crate::store::agent_tokens::prune(&db, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(forgotten = n, "expired agent tokens forgotten"),
            Err(e) => tracing::warn!(error = %e, "agent token prune failed"),
        }
        // Retention (recordings, photos and chat, sessions) runs here so that, in a
        // cluster, one node at a time does it.
        if let Some(job) = &retention {
            job.run().await;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}
