//! Takes TURN credentials back when a call no longer allows them: when a session ends,
//! every participant's credentials stop allocating or refreshing relays on the bundled
//! server; when a customer link is replaced, the credentials handed out under the old
//! link stop (those of the new link work).
//!
//! The bundled server consults a shared [`Revocations`] set in its auth check; this module
//! fills it from session signals, and at start-up from the database (sessions ended and
//! links revoked recently enough that their credentials could still be live).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use sightline_turn::Revocations;
use tokio_util::sync::CancellationToken;

use crate::services::bus::{RoomSignal, SessionBus};
use crate::store::entities::session;
use crate::store::entities::{join_link, participant};

/// Writes revocations for the bundled TURN server. Pure apart from the shared set: the
/// time is passed in.
#[derive(Clone, Debug)]
pub struct TurnRevoker {
    set: Revocations,
    /// Lifetime of the credentials this server hands out (`turn.credential_ttl_secs`).
    ttl_secs: u64,
}

impl TurnRevoker {
    pub fn new(set: Revocations, ttl_secs: u64) -> Self {
        Self { set, ttl_secs }
    }

    /// The participant's session ended at `at`: every credential issued up to then dies.
    pub fn ended(&self, participant_id: &str, at: i64, now: i64) {
        let cutoff = unix(at).saturating_add(self.ttl_secs).saturating_add(1);
        self.set.revoke(participant_id, cutoff, unix(now));
    }

    /// The participant's link was replaced at `at`: credentials issued before then die,
    /// credentials issued for the new link (expiring at or after `at + ttl`) work.
    pub fn link_replaced(&self, participant_id: &str, at: i64, now: i64) {
        let cutoff = unix(at).saturating_add(self.ttl_secs);
        self.set.revoke(participant_id, cutoff, unix(now));
    }

    pub fn prune(&self, now: i64) {
        self.set.prune(unix(now));
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

fn unix(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

/// Participant ids of a session.
async fn participants_of(db: &DatabaseConnection, session_id: &str) -> Result<Vec<String>, DbErr> {
    Ok(participant::Entity::find()
        .filter(participant::Column::SessionId.eq(session_id))
        .all(db)
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect())
}

/// Revokes what the database says could still be live: participants of sessions ended,
/// and links revoked, within the last credential lifetime. Returns the entries written.
pub async fn load(
    db: &DatabaseConnection,
    revoker: &TurnRevoker,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let since = now - chrono::Duration::seconds(revoker.ttl_secs.min(i64::MAX as u64) as i64);
    let ended = session::Entity::find()
        .filter(session::Column::EndedAt.gte(since))
        .all(db)
        .await?;
    let mut n = 0;
    for chunk in ended.chunks(500) {
        let ended_at: std::collections::HashMap<&str, i64> = chunk
            .iter()
            .filter_map(|s| s.ended_at.map(|at| (s.id.as_str(), at.timestamp())))
            .collect();
        let people = participant::Entity::find()
            .filter(participant::Column::SessionId.is_in(ended_at.keys().copied()))
            .all(db)
            .await?;
        for p in people {
            if let Some(at) = ended_at.get(p.session_id.as_str()) {
                revoker.ended(&p.id, *at, now.timestamp());
                n += 1;
            }
        }
    }
    let revoked = join_link::Entity::find()
        .filter(join_link::Column::RevokedAt.gte(since))
        .all(db)
        .await?;
    for l in revoked {
        if let Some(at) = l.revoked_at {
            revoker.link_replaced(&l.participant_id, at.timestamp(), now.timestamp());
            n += 1;
        }
    }
    Ok(n)
}

/// Applies one session signal.
async fn apply(
    db: &DatabaseConnection,
    revoker: &TurnRevoker,
    session_id: &str,
    signal: &RoomSignal,
) -> Result<(), DbErr> {
    let now = Utc::now().timestamp();
    match signal {
        RoomSignal::Ended { .. } => {
            for p in participants_of(db, session_id).await? {
                revoker.ended(&p, now, now);
            }
        }
        // A removed participant's credentials die like those of an ended session.
        RoomSignal::Removed { participant_id } => revoker.ended(participant_id, now, now),
        RoomSignal::LinkRevoked { participant_id } => {
            let links = join_link::Entity::find()
                .filter(join_link::Column::SessionId.eq(session_id))
                .filter(join_link::Column::ParticipantId.eq(participant_id.as_str()))
                .filter(join_link::Column::RevokedAt.is_not_null())
                .all(db)
                .await?;
            for l in links {
                if let Some(at) = l.revoked_at {
                    revoker.link_replaced(&l.participant_id, at.timestamp(), now);
                }
            }
        }
        RoomSignal::ModeChanged { .. }
        | RoomSignal::TransferStarted { .. }
        | RoomSignal::Snapshot(_)
        | RoomSignal::Precheck { .. }
        | RoomSignal::Recording(_) => {}
    }
    Ok(())
}

/// The session bus's TURN side: every signal that takes access away revokes the
/// credentials it covers on the bundled server; a failure reloads from the database.
pub struct RevokeOnSignal {
    pub db: DatabaseConnection,
    pub revoker: TurnRevoker,
}

#[async_trait::async_trait]
impl SessionBus for RevokeOnSignal {
    async fn publish(&self, session_id: &str, signal: RoomSignal) {
        if let Err(e) = apply(&self.db, &self.revoker, session_id, &signal).await {
            tracing::warn!(error = %e, "could not revoke TURN credentials; reloading");
            if let Err(e) = load(&self.db, &self.revoker, Utc::now()).await {
                tracing::error!(error = %e, "reloading TURN revocations failed");
            }
        }
    }
}

/// Prunes expired revocations once a minute until `stop`.
pub async fn run(revoker: TurnRevoker, stop: CancellationToken) {
    let mut prune = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = prune.tick() => revoker.prune(Utc::now().timestamp()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_refuses_everything_issued_so_far_and_link_replaced_only_older_credentials() {
        let set = Revocations::default();
        let r = TurnRevoker::new(set.clone(), 600);
        r.link_replaced("cust", 1000, 1000);
        assert!(
            set.refuses(b"1599:cust", 1000),
            "issued before the new link"
        );
        assert!(!set.refuses(b"1600:cust", 1000), "issued with the new link");
        r.ended("agent", 1000, 1000);
        assert!(
            set.refuses(b"1600:agent", 1000),
            "issued in the second it ended"
        );
        assert!(!set.refuses(b"1600:other", 1000));
        r.prune(1602);
        assert!(r.is_empty());
        assert_eq!(r.len(), 0);
    }
}
