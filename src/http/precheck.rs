//! REST: `POST /api/v1/join/{token}/precheck`, the pre-call check of a join page (camera,
//! microphone, which TURN transports gave a relay candidate). Recorded on the timeline as
//! `participant.prechecked`; agents in the call see it at once, usually before the
//! customer has joined.

use chrono::Utc;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::domain::EventKind;
use crate::http::connect::link_error;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::bus::{PrecheckNote, RoomSignal};

#[derive(Tags)]
pub enum PrecheckTags {
    /// A join page's device and network check before joining.
    Precheck,
}

pub struct PrecheckApi;

/// Per TURN transport: whether a relay candidate was gathered over it; `null` when the
/// page was not offered that transport.
#[derive(Debug, Clone, Copy, Object)]
pub struct RelayCheck {
    #[oai(nullable)]
    pub udp: Option<bool>,
    #[oai(nullable)]
    pub tcp: Option<bool>,
    #[oai(nullable)]
    pub tls: Option<bool>,
}

#[derive(Debug, Clone, Copy, Object)]
pub struct PrecheckResult {
    /// A live camera track.
    pub camera: bool,
    /// A live microphone track.
    pub microphone: bool,
    pub relay: RelayCheck,
}

/// Most checks recorded per participant (a page checks once per load; reloads repeat it).
pub const MAX_CHECKS: u64 = 10;

#[derive(ApiResponse)]
pub enum Checked {
    /// Recorded.
    #[oai(status = 204)]
    Recorded,
}

#[OpenApi(prefix_path = "/api/v1", tag = "PrecheckTags::Precheck")]
impl PrecheckApi {
    /// Report a pre-call check
    ///
    /// What a join page found before joining, authorized by its own link. At most ten
    /// per participant (`429 rate_limited` after).
    #[oai(
        path = "/join/:token/precheck",
        method = "post",
        operation_id = "reportPrecheck"
    )]
    async fn precheck(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
        body: Json<PrecheckResult>,
    ) -> Result<Checked, ApiError> {
        let b = body.0;
        let now = Utc::now();
        let r = crate::store::links::resolve(&state.db, &state.keys.join, &token.0, now)
            .await?
            .map_err(link_error)?;
        {
            use crate::store::entities::event;
            use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
            let done = event::Entity::find()
                .filter(event::Column::SessionId.eq(r.session.id.as_str()))
                .filter(event::Column::ParticipantId.eq(r.participant.id.as_str()))
                .filter(event::Column::Kind.eq(EventKind::ParticipantPrechecked.as_str()))
                .count(&state.db)
                .await?;
            if done >= MAX_CHECKS {
                return Err(ApiError::TooManyRequests);
            }
        }
        let note = PrecheckNote {
            camera: b.camera,
            microphone: b.microphone,
            udp: b.relay.udp,
            tcp: b.relay.tcp,
            tls: b.relay.tls,
        };
        crate::store::participants::record_event(
            &state.db,
            &r.session.id,
            EventKind::ParticipantPrechecked,
            Some(&r.participant.id),
            serde_json::json!({
                "camera": b.camera,
                "microphone": b.microphone,
                "relay": {"udp": b.relay.udp, "tcp": b.relay.tcp, "tls": b.relay.tls},
            }),
            now,
        )
        .await
        .map_err(crate::http::participants::problem)?;
        let signal = RoomSignal::Precheck {
            participant_id: r.participant.id.clone(),
            name: r.participant.display_name.clone(),
            note,
        };
        state.bus.publish(&r.session.id, signal).await;
        Ok(Checked::Recorded)
    }
}
