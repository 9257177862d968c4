//! REST: the customer's rating of a call. The end screen posts it with the page's own
//! link (`/api/v1/join/{token}/rating`, also after the session has ended); integrations
//! read it with an API key (`/api/v1/sessions/{id}/ratings`) or as the `session.rated`
//! webhook.

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::http::auth::ApiKeyAuth;
use crate::http::connect::link_error;
use crate::http::error::ApiError;
use crate::http::sessions::{not_found, parse_session_id};
use crate::http::state::AppState;
use crate::store::feedback::{self as store_feedback, Rating};

#[derive(Tags)]
pub enum FeedbackTags {
    /// How the customer rated the call.
    Feedback,
}

pub struct FeedbackApi;

/// The customer's rating, from the end screen.
#[derive(Debug, Clone, Object)]
pub struct RateCall {
    /// 1 (bad) to 5 (very good).
    #[oai(validator(minimum(value = "1"), maximum(value = "5")))]
    pub score: u8,
    /// Optional words about the call (plain text).
    #[oai(validator(max_length = 1000))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct CallRating {
    pub participant_id: String,
    pub score: u8,
    #[oai(nullable)]
    pub comment: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
pub struct RatingList {
    pub items: Vec<CallRating>,
}

#[derive(ApiResponse)]
pub enum Rated {
    /// Stored; `session.rated` is on the timeline.
    #[oai(status = 201)]
    Created(Json<CallRating>),
}

fn to_api(r: Rating) -> CallRating {
    CallRating {
        participant_id: r.participant_id,
        score: u8::try_from(r.score).unwrap_or(0),
        comment: r.comment,
        at: r.at,
    }
}

/// Line breaks stay, other control characters become spaces, blanks around go.
fn clean_comment(raw: &str) -> Option<String> {
    let s: String = raw
        .chars()
        .map(|c| if c == '\n' || !c.is_control() { c } else { ' ' })
        .collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

#[OpenApi(prefix_path = "/api/v1", tag = "FeedbackTags::Feedback")]
impl FeedbackApi {
    /// Rate the call from the end screen
    ///
    /// The customer's 1–5 rating and an optional comment, authorized by the customer's own
    /// join link, also after the session has ended (until the link expires). Once per
    /// participant.
    #[oai(
        path = "/join/:token/rating",
        method = "post",
        operation_id = "rateCall"
    )]
    async fn rate(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
        body: Json<RateCall>,
    ) -> Result<Rated, ApiError> {
        let body = body.0;
        let now = Utc::now();
        let (p, role) = store_feedback::link_owner(&state.db, &state.keys.join, &token.0, now)
            .await?
            .map_err(link_error)?;
        if role != "customer" {
            return Err(ApiError::denied(
                "not_customer",
                "only the customer rates the call",
            ));
        }
        let r = Rating {
            participant_id: p.id,
            session_id: p.session_id,
            score: i32::from(body.score),
            comment: body.comment.as_deref().and_then(clean_comment),
            at: now,
        };
        if !store_feedback::insert(&state.db, r.clone()).await? {
            return Err(ApiError::conflict(
                "already_rated",
                "this call has been rated already",
            ));
        }
        Ok(Rated::Created(Json(to_api(r))))
    }

    /// Session ratings
    ///
    /// The customer's rating of the call, if given.
    #[oai(
        path = "/sessions/:id/ratings",
        method = "get",
        operation_id = "listSessionRatings"
    )]
    async fn list(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<RatingList>, ApiError> {
        let id = parse_session_id(&id.0)?;
        if crate::store::sessions::get(&state.db, &id).await?.is_none() {
            return Err(not_found());
        }
        let items = store_feedback::list(&state.db, &id).await?;
        Ok(Json(RatingList {
            items: items.into_iter().map(to_api).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn comments_are_plain_text() {
        assert_eq!(
            super::clean_comment(" great\u{7} call\n thanks ").as_deref(),
            Some("great  call\n thanks")
        );
        assert_eq!(super::clean_comment(" \t "), None);
    }
}
