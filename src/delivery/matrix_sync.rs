//! Matrix inbound: `!video` typed in a room by an allowed agent starts a call there. The
//! bot account of each Matrix integration with `inbound: true` long-polls `/sync`, one
//! background task per integration (started, restarted on a config change, and stopped by
//! a supervisor that looks at the integrations every second).
//!
//! Why a syncing bot and not an application service: a bot needs only an access token
//! from any homeserver (hosted ones too), no registration file on the homeserver and no
//! inbound connection to Sightline; the price, one long-poll per integration, is nothing
//! at this scale. The cursor (`next_batch`) is stored, so a restart neither misses nor
//! repeats commands (a repeated command is idempotent on its event id anyway; commands
//! older than ten minutes are not acted on).
//!
//! It lives in `delivery/` because it shares the outbound HTTP client (and its SSRF
//! policy) and the Matrix adapter's config; what it starts goes through
//! `services::chat_calls`, like every other call started from a chat.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::delivery::adapters::{self, matrix::Inbound};
use crate::delivery::net::{Method, Outbound, OutboundRequest, SendError};
use crate::domain::matrix as mx;
use crate::services::chat_calls::{self, CallEnv, ChatCall};

/// What the sync loops need.
#[derive(Clone)]
pub struct SyncEnv {
    pub db: DatabaseConnection,
    pub outbound: Arc<Outbound>,
    pub calls: CallEnv,
    /// The outbound request timeout; a long-poll waits at most this long on the server.
    pub request_timeout: Duration,
}

/// Runs until `stop`: one sync loop per Matrix integration with inbound on.
pub async fn run(env: SyncEnv, stop: CancellationToken) {
    let mut loops: HashMap<String, (Inbound, CancellationToken)> = HashMap::new();
    loop {
        match crate::store::integrations::of_kind(&env.db, "matrix").await {
            Ok(list) => {
                let wanted: HashMap<String, (Inbound, i64)> = list
                    .iter()
                    .filter_map(|i| {
                        adapters::matrix::inbound(&i.config)
                            .map(|s| (i.id.clone(), (s, i.updated_at.timestamp_millis())))
                    })
                    .collect();
                loops.retain(|id, (settings, token)| {
                    let keep = wanted.get(id).map(|(s, _)| s) == Some(&*settings);
                    if !keep {
                        token.cancel();
                    }
                    keep
                });
                for (id, (settings, enabled_at_ms)) in wanted {
                    if loops.contains_key(&id) {
                        continue;
                    }
                    let token = stop.child_token();
                    tokio::spawn(sync_loop(
                        env.clone(),
                        id.clone(),
                        settings.clone(),
                        enabled_at_ms,
                        token.clone(),
                    ));
                    loops.insert(id, (settings, token));
                }
            }
            Err(e) => tracing::warn!(error = %e, "matrix: could not list integrations"),
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    for (_, (_, token)) in loops {
        token.cancel();
    }
}

fn request(s: &Inbound, method: Method, path: &str, body: Vec<u8>) -> OutboundRequest {
    OutboundRequest {
        method,
        url: format!("{}{path}", s.homeserver_url),
        headers: vec![("authorization".into(), format!("Bearer {}", s.access_token))],
        body,
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("{0}")]
    Send(#[from] SendError),
    #[error("the homeserver answered HTTP {0}")]
    Status(u16),
    #[error("{0}")]
    Answer(String),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

async fn call(
    env: &SyncEnv,
    s: &Inbound,
    method: Method,
    path: &str,
    body: Vec<u8>,
    timeout: Option<Duration>,
) -> Result<Vec<u8>, SyncError> {
    let reply = env
        .outbound
        .send(&request(s, method, path, body), timeout)
        .await?;
    if (200..300).contains(&reply.status) {
        Ok(reply.body)
    } else {
        Err(SyncError::Status(reply.status))
    }
}

async fn whoami(env: &SyncEnv, s: &Inbound) -> Result<String, SyncError> {
    let body = call(
        env,
        s,
        Method::Get,
        "/_matrix/client/v3/account/whoami",
        Vec::new(),
        None,
    )
    .await?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| SyncError::Answer(e.to_string()))?;
    v.get("user_id")
        .and_then(|u| u.as_str())
        .map(str::to_owned)
        .ok_or_else(|| SyncError::Answer("whoami answered no user_id".into()))
}

/// `enabled_at_ms`: when the integration was last changed (inbound switched on); on the
/// very first sync, only commands after it are acted on.
async fn sync_loop(
    env: SyncEnv,
    id: String,
    s: Inbound,
    enabled_at_ms: i64,
    stop: CancellationToken,
) {
    let mut failures: u32 = 0;
    let mut bot: Option<String> = None;
    while !stop.is_cancelled() {
        let step = async {
            let me = match &bot {
                Some(b) => b.clone(),
                None => {
                    let b = whoami(&env, &s).await?;
                    tracing::info!(integration = %id, bot = %b, "matrix: syncing");
                    bot = Some(b.clone());
                    b
                }
            };
            sync_once(&env, &id, &s, &me, enabled_at_ms).await
        };
        let result = tokio::select! {
            _ = stop.cancelled() => break,
            r = step => r,
        };
        match result {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = Duration::from_millis(500u64.saturating_mul(1 << failures.min(6)));
                tracing::warn!(integration = %id, error = %e, retry_in_ms = wait.as_millis() as u64,
                    "matrix: sync failed");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// One `/sync` round: acts on its commands and invites, then stores the cursor.
async fn sync_once(
    env: &SyncEnv,
    id: &str,
    s: &Inbound,
    bot: &str,
    enabled_at_ms: i64,
) -> Result<(), SyncError> {
    let since = crate::store::integrations::sync_cursor::load(&env.db, id).await?;
    // The first sync finds where "now" is: of its history, only commands typed since the
    // integration was switched on count.
    let wait_ms = if since.is_some() {
        (env.request_timeout.as_millis() as u64 / 2).min(30_000)
    } else {
        0
    };
    let first = since.is_none();
    let body = call(
        env,
        s,
        Method::Get,
        &mx::sync_path(since.as_deref(), wait_ms),
        Vec::new(),
        Some(env.request_timeout + Duration::from_millis(wait_ms)),
    )
    .await?;
    let batch = mx::parse_sync(
        &body,
        bot,
        &s.command,
        &s.agents,
        Utc::now().timestamp_millis(),
    )
    .map_err(SyncError::Answer)?;
    {
        for room in batch.invites.iter().filter(|_| !first) {
            match call(
                env,
                s,
                Method::Post,
                &mx::join_path(room),
                b"{}".to_vec(),
                None,
            )
            .await
            {
                Ok(_) => {
                    tracing::info!(room = %room, "matrix: joined a room an agent invited the bot to")
                }
                Err(e) => tracing::warn!(room = %room, error = %e, "matrix: could not join"),
            }
        }
        for (room, sender) in &batch.refused {
            tracing::info!(room = %room, sender = %sender,
                "matrix: command ignored: the sender is not in config.agents");
        }
        for c in batch
            .commands
            .iter()
            .filter(|c| !first || c.ts >= enabled_at_ms)
        {
            start(env, id, c).await?;
        }
    }
    crate::store::integrations::sync_cursor::save(&env.db, id, &batch.next_batch, Utc::now())
        .await?;
    Ok(())
}

async fn start(env: &SyncEnv, id: &str, c: &mx::Command) -> Result<(), SyncError> {
    let Some(i) = crate::store::integrations::find(&env.db, id).await? else {
        return Ok(());
    };
    let agent_note = adapters::by_kind(&i.kind).is_some_and(|a| a.private_notes(&i.config));
    let call = ChatCall {
        conversation_id: c.room_id.clone(),
        agent_id: c.sender.clone(),
        agent_name: mx::localpart(&c.sender).to_owned(),
        customer_name: None,
        customer_email: None,
        key: format!("event:{}", c.event_id),
        agent_note,
    };
    match chat_calls::start(&env.calls, &i, call, Utc::now()).await {
        Ok((view, replayed)) => {
            tracing::info!(session_id = %view.session.id, room = %c.room_id, replayed,
                "call started from a Matrix command");
            Ok(())
        }
        Err(chat_calls::StartError::Db(e)) => Err(e.into()),
        Err(e) => {
            tracing::warn!(room = %c.room_id, error = %e, "matrix: command refused");
            Ok(())
        }
    }
}
