//! Participants and their join links: minting, re-deriving, revoking, resolving.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel};

use crate::domain::session::{Role, Status};
use crate::domain::tokens::{TokenError, TokenKey};
use crate::store::entities::session;
use crate::store::entities::{join_link, participant};

fn unhex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

/// Re-derives the token of a stored link (tokens are deterministic in id and expiry).
pub fn token_for(key: &TokenKey, link: &join_link::Model) -> Option<String> {
    let id = unhex(&link.id)?;
    Some(key.seal(&id, link.expires_at.timestamp()))
}

/// A new participant row (not yet stored).
pub fn new_participant(
    session_id: &str,
    role: Role,
    display_name: &str,
    now: DateTime<Utc>,
) -> participant::Model {
    participant::Model {
        id: crate::domain::ParticipantId::generate().into_string(),
        session_id: session_id.to_owned(),
        role: role.as_str().to_owned(),
        display_name: display_name.to_owned(),
        present: false,
        first_joined_at: None,
        last_joined_at: None,
        left_at: None,
        created_at: now,
        mode: role.default_mode().map(|m| m.as_str().to_owned()),
        removed_at: None,
        external_id: None,
        email: None,
    }
}

/// A fresh link for a participant (not yet stored): 16 random bytes as its id, from
/// which its token is derived (see [`token_for`]).
pub fn new_link(
    p: &participant::Model,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> join_link::Model {
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    join_link::Model {
        id: hex::encode(id),
        session_id: p.session_id.clone(),
        participant_id: p.id.clone(),
        role: p.role.clone(),
        expires_at,
        revoked_at: None,
        created_at: now,
    }
}

/// Mints and stores a fresh link for a participant; returns the row and its token.
pub async fn issue_link<C: ConnectionTrait>(
    c: &C,
    key: &TokenKey,
    p: &participant::Model,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(join_link::Model, String), DbErr> {
    let row = new_link(p, expires_at, now)
        .into_active_model()
        .insert(c)
        .await?;
    let token = token_for(key, &row).ok_or_else(|| DbErr::Custom("link id is not hex".into()))?;
    Ok((row, token))
}

/// Why a join link does not open. Each maps to a distinct, friendly page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Malformed, forged or unknown: nothing more is said.
    #[error("this link is not valid")]
    Invalid,
    #[error("this link has expired")]
    Expired,
    #[error("this link has been replaced by a newer one")]
    Revoked,
    #[error("this call has ended")]
    Ended,
    /// The participant was removed from the session.
    #[error("you were removed from this call")]
    Removed,
}

/// Where a participant stands: `invited` (never joined), `present`, `left` or `removed`.
pub fn state_of(p: &participant::Model) -> &'static str {
    if p.removed_at.is_some() {
        "removed"
    } else if p.present {
        "present"
    } else if p.first_joined_at.is_some() {
        "left"
    } else {
        "invited"
    }
}

/// A link that opens: the link, its session and its participant.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub link: join_link::Model,
    pub session: session::Model,
    pub participant: participant::Model,
    pub role: Role,
}

/// Resolves a join token at `now`: signature and expiry first (no database work for
/// forgeries), then revocation and the session's state.
pub async fn resolve<C: ConnectionTrait>(
    c: &C,
    key: &TokenKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Result<Resolved, LinkError>, DbErr> {
    let id = match key.open(token, now.timestamp()) {
        Ok((id, _)) if id.len() == 16 => id,
        Ok(_) | Err(TokenError::Malformed) | Err(TokenError::BadSignature) => {
            return Ok(Err(LinkError::Invalid));
        }
        Err(TokenError::Expired) => return Ok(Err(LinkError::Expired)),
    };
    let Some(link) = join_link::Entity::find_by_id(hex::encode(id))
        .one(c)
        .await?
    else {
        return Ok(Err(LinkError::Invalid));
    };
    let Some(session) = session::Entity::find_by_id(link.session_id.clone())
        .one(c)
        .await?
    else {
        return Ok(Err(LinkError::Invalid));
    };
    if session.status == Status::Ended.as_str() {
        return Ok(Err(LinkError::Ended));
    }
    let Some(participant) = participant::Entity::find_by_id(link.participant_id.clone())
        .one(c)
        .await?
    else {
        return Ok(Err(LinkError::Invalid));
    };
    // Removal revokes the links too; say why.
    if participant.removed_at.is_some() {
        return Ok(Err(LinkError::Removed));
    }
    if link.revoked_at.is_some() {
        return Ok(Err(LinkError::Revoked));
    }
    if link.expires_at <= now {
        return Ok(Err(LinkError::Expired));
    }
    let Ok(role) = link.role.parse::<Role>() else {
        return Ok(Err(LinkError::Invalid));
    };
    Ok(Ok(Resolved {
        link,
        session,
        participant,
        role,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex::encode(b), "0001abff");
        assert_eq!(unhex("0001abff").unwrap(), b);
        assert!(unhex("0g").is_none());
        assert!(unhex("abc").is_none());
    }

    #[test]
    fn participant_states() {
        let now = Utc::now();
        let mut p = new_participant("s", Role::Expert, "X", now);
        assert_eq!(state_of(&p), "invited");
        p.present = true;
        p.first_joined_at = Some(now);
        assert_eq!(state_of(&p), "present");
        p.present = false;
        assert_eq!(state_of(&p), "left");
        p.removed_at = Some(now);
        assert_eq!(state_of(&p), "removed");
    }
}
