//! Agent tokens: short-lived, agent-scoped credentials a host application's backend mints
//! (with its API key) and hands to the browser widget, so browsers never hold API keys.

use serde::{Deserialize, Serialize};

use crate::domain::tokens::{TokenError, TokenKey};

/// Longest lifetime of an agent token.
pub const MAX_TTL_SECS: u64 = 12 * 3600;
pub const DEFAULT_TTL_SECS: u64 = 3600;
/// Longest agent token accepted (after its `at_` prefix). Every token the mint endpoint can make
/// fits: the longest fields allowed (a 128-character id, an 80-character name of 4-byte
/// characters, a 128-character conversation) come to about 1,600 characters.
pub const MAX_TOKEN_CHARS: usize = 2048;

/// What an agent token allows: acting as this agent, for this conversation if set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The token's id (recorded at mint time, so the token can be revoked on its own).
    #[serde(rename = "j", default, skip_serializing_if = "String::is_empty")]
    pub token_id: String,
    /// Minted by the demo page: may start calls, never e-mail or post anywhere.
    #[serde(rename = "d", default, skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
}

pub fn seal(key: &TokenKey, claims: &AgentClaims, expires_at: i64) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    format!("at_{}", key.seal(&payload, expires_at))
}

pub fn open(key: &TokenKey, token: &str, now: i64) -> Result<(AgentClaims, i64), TokenError> {
    let raw = token.strip_prefix("at_").ok_or(TokenError::Malformed)?;
    let (payload, exp) = key.open_bounded(raw, now, MAX_TOKEN_CHARS)?;
    let claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    Ok((claims, exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tokens::Purpose;

    fn claims() -> AgentClaims {
        AgentClaims {
            agent_id: "agent-7".into(),
            agent_name: "Ana".into(),
            conversation: Some(("chatwoot".into(), "42".into())),
            api_key_id: "k1".into(),
            post_link_via: None,
            token_id: "0123456789abcdef0123456789abcdef".into(),
            demo: false,
        }
    }

    #[test]
    fn the_longest_claims_the_api_accepts_make_a_usable_token() {
        let key = TokenKey::derive(b"0123456789abcdef0123456789abcdef", Purpose::AgentToken);
        // Worst cases: every id character needs a JSON escape, every name character is
        // four UTF-8 bytes.
        let longest = AgentClaims {
            agent_id: "\\".repeat(128),
            agent_name: "\u{1F600}".repeat(80),
            conversation: Some(("p".repeat(128), "\"".repeat(128))),
            api_key_id: uuid::Uuid::now_v7().to_string(),
            post_link_via: Some(uuid::Uuid::now_v7().to_string()),
            token_id: "0123456789abcdef0123456789abcdef".into(),
            demo: true,
        };
        let t = seal(&key, &longest, 2_000_000_000);
        assert!(t.len() <= MAX_TOKEN_CHARS, "{} characters", t.len());
        assert_eq!(open(&key, &t, 0).unwrap().0, longest);
        // Anything longer is refused before decoding.
        let too_long = format!("at_{}", "A".repeat(MAX_TOKEN_CHARS + 1));
        assert_eq!(open(&key, &too_long, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn tokens_without_the_new_fields_still_parse() {
        let old = br#"{"a":"x","n":"X","k":"k1"}"#;
        let c: AgentClaims = serde_json::from_slice(old).unwrap();
        assert!(c.token_id.is_empty() && !c.demo);
        let json = serde_json::to_string(&AgentClaims {
            token_id: "t".into(),
            ..c
        })
        .unwrap();
        assert!(!json.contains("\"d\""), "{json}");
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
