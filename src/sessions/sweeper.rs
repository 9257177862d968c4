//! Background task that ends expired sessions nobody is in.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Runs until `stop` is cancelled.
pub async fn run(state: AppState, stop: CancellationToken) {
    let every = Duration::from_secs(state.config.sessions.sweep_interval_secs);
    loop {
        match crate::sessions::repo::sweep_expired_ids(&state.db, chrono::Utc::now()).await {
            Ok(ids) if ids.is_empty() => {}
            Ok(ids) => {
                tracing::info!(ended = ids.len(), "expired sessions ended");
                for id in &ids {
                    state.session_ended(id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "session sweep failed"),
        }
        match crate::agent::store::prune(&state.db, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(forgotten = n, "expired agent tokens forgotten"),
            Err(e) => tracing::warn!(error = %e, "agent token prune failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}
