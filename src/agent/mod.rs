//! Agent tokens: short-lived, agent-scoped credentials a host application's backend mints
//! (with its API key) and hands to the browser widget, so browsers never hold API keys.

pub mod api;
pub mod cors;

use serde::{Deserialize, Serialize};

use crate::participants::token::{TokenError, TokenKey};

/// Longest lifetime of an agent token.
pub const MAX_TTL_SECS: u64 = 12 * 3600;
pub const DEFAULT_TTL_SECS: u64 = 3600;

/// What an agent token allows: acting as this agent, for this conversation if set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentClaims {
    #[serde(rename = "a")]
    pub agent_id: String,
    #[serde(rename = "n")]
    pub agent_name: String,
    /// `(platform, conversation id)` the token is limited to.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<(String, String)>,
    /// The API key that minted the token (sessions are attributed to it).
    #[serde(rename = "k")]
    pub api_key_id: String,
    /// Integration the customer's link is always posted through.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub post_link_via: Option<String>,
}

pub fn seal(key: &TokenKey, claims: &AgentClaims, expires_at: i64) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    format!("at_{}", key.seal(&payload, expires_at))
}

pub fn open(key: &TokenKey, token: &str, now: i64) -> Result<(AgentClaims, i64), TokenError> {
    let raw = token.strip_prefix("at_").ok_or(TokenError::Malformed)?;
    let (payload, exp) = key.open(raw, now)?;
    let claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    Ok((claims, exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::participants::token::Purpose;

    fn claims() -> AgentClaims {
        AgentClaims {
            agent_id: "agent-7".into(),
            agent_name: "Ana".into(),
            conversation: Some(("chatwoot".into(), "42".into())),
            api_key_id: "k1".into(),
            post_link_via: None,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let key = TokenKey::derive(b"0123456789abcdef0123456789abcdef", Purpose::AgentToken);
        let t = seal(&key, &claims(), 1000);
        assert_eq!(open(&key, &t, 999).unwrap().0, claims());
        assert_eq!(open(&key, &t, 1000), Err(TokenError::Expired));
        assert_eq!(open(&key, "sl_abc", 0), Err(TokenError::Malformed));
    }

    #[test]
    fn other_purpose_keys_are_refused() {
        let master = b"0123456789abcdef0123456789abcdef";
        let t = seal(
            &TokenKey::derive(master, Purpose::JoinLink),
            &claims(),
            1000,
        );
        let key = TokenKey::derive(master, Purpose::AgentToken);
        assert_eq!(open(&key, &t, 0), Err(TokenError::BadSignature));
    }
}
