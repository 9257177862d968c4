//! REST: `/api/v1/deliveries`: what the outbox holds, why something failed, and a manual
//! retry for dead letters.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::http::auth::ApiKeyAuth;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::outbox::{DEAD, DELIVERED, PENDING, delivery};

#[derive(Tags)]
pub enum DeliveryTags {
    /// The outbox: webhooks, chat posts and e-mails on their way out.
    Deliveries,
}

#[derive(Debug, Clone, Object)]
pub struct Delivery {
    pub id: i64,
    /// The `webhook-id` receivers see; stable across retries.
    pub message_id: String,
    /// `event`, `post_message`, `email` or `transcript` (the call's chat, posted at its end).
    pub kind: String,
    /// For `event`: the webhook type.
    #[oai(nullable)]
    pub event_type: Option<String>,
    #[oai(nullable)]
    pub session_id: Option<String>,
    #[oai(nullable)]
    pub integration_id: Option<String>,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed (for a refused post, the platform's own reason, e.g.
    /// `the platform answered HTTP 401: Invalid Access Token`).
    #[oai(nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[oai(nullable)]
    pub delivered_at: Option<DateTime<Utc>>,
    /// The platform's id of the delivered message (a Chatwoot message id, a Matrix event
    /// id), when it said.
    #[oai(nullable)]
    pub remote_id: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct DeliveryPage {
    pub items: Vec<Delivery>,
    /// Pass as `after` for the next page; absent on the last page.
    #[oai(nullable)]
    pub next_after: Option<i64>,
}

fn to_api(m: delivery::Model) -> Delivery {
    Delivery {
        id: m.id,
        message_id: m.message_id,
        kind: m.kind,
        event_type: m.event_type,
        session_id: m.session_id,
        integration_id: m.integration_id,
        status: m.status,
        attempts: m.attempts,
        next_attempt_at: m.next_attempt_at,
        last_error: m.last_error,
        created_at: m.created_at,
        updated_at: m.updated_at,
        delivered_at: m.delivered_at,
        remote_id: m.remote_id,
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("delivery_not_found", "no delivery with this id")
}

pub struct DeliveriesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "DeliveryTags::Deliveries")]
impl DeliveriesApi {
    /// List deliveries
    ///
    /// Oldest first. Filter by `status` (`pending`, `delivered`, `dead`) and session.
    #[oai(path = "/deliveries", method = "get", operation_id = "listDeliveries")]
    #[allow(clippy::too_many_arguments)] // one parameter per query filter
    async fn list(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        /// Only deliveries in this status: `pending`, `delivered` or `dead`.
        #[oai(validator(pattern = r"^(pending|delivered|dead)$"))]
        status: Query<Option<String>>,
        /// Only deliveries of this session.
        #[oai(validator(max_length = 128))]
        session_id: Query<Option<String>>,
        /// Only deliveries through this integration.
        #[oai(validator(max_length = 128))]
        integration_id: Query<Option<String>>,
        /// Only deliveries with an id greater than this.
        after: Query<Option<i64>>,
        /// Page size, 1 to 500 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u64>>,
    ) -> Result<Json<DeliveryPage>, ApiError> {
        let limit = limit.0.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_limit",
                "limit must be between 1 and 500",
            ));
        }
        let mut q = delivery::Entity::find();
        if let Some(s) = status.0.as_deref() {
            if ![PENDING, DELIVERED, DEAD].contains(&s) {
                return Err(ApiError::bad_request(
                    "invalid_status",
                    "status must be pending, delivered or dead",
                ));
            }
            q = q.filter(delivery::Column::Status.eq(s));
        }
        if let Some(s) = session_id.0 {
            q = q.filter(delivery::Column::SessionId.eq(s));
        }
        if let Some(s) = integration_id.0 {
            q = q.filter(delivery::Column::IntegrationId.eq(s));
        }
        if let Some(a) = after.0 {
            q = q.filter(delivery::Column::Id.gt(a));
        }
        let rows = q
            .order_by_asc(delivery::Column::Id)
            .limit(limit)
            .all(&state.db)
            .await?;
        let next_after = if rows.len() as u64 == limit {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok(Json(DeliveryPage {
            items: rows.into_iter().map(to_api).collect(),
            next_after,
        }))
    }

    /// Get a delivery
    #[oai(path = "/deliveries/:id", method = "get", operation_id = "getDelivery")]
    async fn get(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<i64>,
    ) -> Result<Json<Delivery>, ApiError> {
        let row = delivery::Entity::find_by_id(id.0)
            .one(&state.db)
            .await?
            .ok_or_else(not_found)?;
        Ok(Json(to_api(row)))
    }

    /// Retry a delivery
    ///
    /// Puts a dead (or pending) delivery back in the queue now, with a fresh attempt
    /// count and age. Its `message_id` is kept, so receivers can still deduplicate.
    #[oai(
        path = "/deliveries/:id/retry",
        method = "post",
        operation_id = "retryDelivery"
    )]
    async fn retry(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<i64>,
    ) -> Result<Json<Delivery>, ApiError> {
        let row = delivery::Entity::find_by_id(id.0)
            .one(&state.db)
            .await?
            .ok_or_else(not_found)?;
        if row.status == DELIVERED {
            return Err(ApiError::conflict(
                "already_delivered",
                "this delivery has already been delivered",
            ));
        }
        let now = Utc::now();
        let mut a: delivery::ActiveModel = row.into();
        a.status = Set(PENDING.to_owned());
        a.attempts = Set(0);
        a.next_attempt_at = Set(now);
        a.age_from = Set(now);
        a.updated_at = Set(now);
        let row = a.update(&state.db).await?;
        crate::store::outbox::wake();
        Ok(Json(to_api(row)))
    }
}
