//! Chatwoot starts calls: its signed account webhooks (`/video` in a private note) and a
//! macro's webhook action (a secret URL; the call is for the conversation's assignee).
//! The dashboard app is in [`super::chatwoot_app`]. The protocol itself (signature,
//! payloads) is pure, in `domain::chatwoot`.

use chrono::Utc;
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::{Object, OpenApi, Tags};

use crate::delivery::adapters;
use crate::domain::chatwoot::{self as cw, Webhook};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::chat_calls::{self, CallEnv, ChatCall, StartError};
use crate::store::integrations::{inbound, integration};

#[derive(Tags)]
pub enum ChatwootTags {
    /// Chatwoot starts calls: account webhooks, a macro, a dashboard app (see
    /// docs/chatwoot.md).
    Chatwoot,
}

/// A JSON request body kept as the bytes that arrived (a signature is over them).
pub struct RawJson(pub Vec<u8>);

impl poem_openapi::payload::Payload for RawJson {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("object")))
    }
}

impl poem_openapi::payload::ParsePayload for RawJson {
    const IS_REQUIRED: bool = true;

    async fn from_request(
        _request: &poem::Request,
        body: &mut poem::RequestBody,
    ) -> poem::Result<Self> {
        // The body limit middleware has already bounded and read it.
        let bytes = body.take()?.into_vec().await.map_err(|_| {
            ApiError::bad_request("unreadable_body", "request body could not be read")
        })?;
        Ok(Self(bytes))
    }
}

impl<'a> poem_openapi::ApiExtractor<'a> for RawJson {
    const TYPES: &'static [poem_openapi::ApiExtractorType] =
        &[poem_openapi::ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
        use poem_openapi::payload::{ParsePayload, Payload};
        Some(poem_openapi::registry::MetaRequest {
            description: None,
            content: vec![poem_openapi::registry::MetaMediaType {
                content_type: <Self as Payload>::CONTENT_TYPE,
                schema: <Self as Payload>::schema_ref(),
            }],
            required: <Self as ParsePayload>::IS_REQUIRED,
        })
    }

    async fn from_request(
        request: &'a poem::Request,
        body: &mut poem::RequestBody,
        _param_opts: poem_openapi::ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        use poem_openapi::payload::{ParsePayload, Payload};
        match request.content_type() {
            Some(ct) if <Self as Payload>::check_content_type(ct) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(ct) => Err(poem_openapi::error::ContentTypeError::NotSupported {
                content_type: ct.to_string(),
            }
            .into()),
            None => Err(poem_openapi::error::ContentTypeError::ExpectContentType.into()),
        }
    }
}

/// What Sightline did with a Chatwoot request.
#[derive(Debug, Clone, Object)]
pub struct ChatwootResult {
    /// `started` (a call was started), `replayed` (this request already started it),
    /// `already_live` (the conversation has a live call; nothing new posted), `ignored`
    /// (not a request to start a call) or `duplicate` (this delivery was handled before).
    pub result: String,
    /// Why it was ignored.
    #[oai(nullable)]
    pub reason: Option<String>,
    /// The call's session.
    #[oai(nullable)]
    pub session_id: Option<String>,
}

fn ack(result: &str, reason: Option<&str>, session_id: Option<&str>) -> Json<ChatwootResult> {
    Json(ChatwootResult {
        result: result.to_owned(),
        reason: reason.map(str::to_owned),
        session_id: session_id.map(str::to_owned),
    })
}

fn not_found() -> ApiError {
    ApiError::not_found(
        "integration_not_found",
        "no Chatwoot integration with this id",
    )
}

/// The Chatwoot integration with this id (or name).
pub(crate) async fn chatwoot_integration(
    state: &AppState,
    id: &str,
) -> Result<integration::Model, ApiError> {
    crate::store::integrations::find(&state.db, id)
        .await?
        .filter(|i| i.kind == "chatwoot")
        .ok_or_else(not_found)
}

pub(crate) fn call_env(state: &AppState) -> CallEnv {
    CallEnv {
        db: state.db.clone(),
        creator: state.creator.clone(),
        ttl: chrono::Duration::seconds(state.config.sessions.ttl_secs as i64),
        lobby: state.config.sessions.lobby,
    }
}

pub(crate) fn start_error(e: StartError) -> ApiError {
    match e {
        StartError::Invalid(why) => ApiError::bad_request("invalid_field", why),
        StartError::KeyReused => ApiError::conflict("event_reused", e.to_string()),
        StartError::Db(e) => e.into(),
    }
}

/// The call for a Chatwoot conversation and agent.
pub(crate) fn chat_call(c: &cw::StartCall, key: String) -> ChatCall {
    ChatCall {
        conversation_id: c.conversation_id.to_string(),
        agent_id: c.agent.id.to_string(),
        agent_name: c.agent.name.clone(),
        customer_name: c.contact.name.clone(),
        customer_email: c.contact.email.clone(),
        key,
        // Chatwoot has private notes: the agent's link always goes there.
        agent_note: true,
    }
}

fn account_matches(i: &integration::Model, c: &cw::StartCall) -> bool {
    let configured = match i.config.get("account_id") {
        Some(serde_json::Value::String(s)) => s.parse::<u64>().ok(),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    c.account_id.is_none() || c.account_id == configured
}

/// How long handled delivery ids are remembered: longer than any request can pass the
/// timestamp check (a timestamp up to the tolerance in the future, replayed until it is
/// the tolerance in the past), so a replay is refused for one reason or the other.
const REMEMBER_SECS: i64 = 3 * cw::TOLERANCE_SECS;

pub struct ChatwootApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ChatwootTags::Chatwoot")]
impl ChatwootApi {
    /// Receive Chatwoot account webhooks
    ///
    /// Point a Chatwoot account webhook (event *Message created*) here. Signed by Chatwoot
    /// with the integration's `config.webhook_secret`: `X-Chatwoot-Signature: sha256=<hex
    /// HMAC-SHA256(secret, "{X-Chatwoot-Timestamp}.{body}")>`; timestamps more than five
    /// minutes off are refused, a repeated `X-Chatwoot-Delivery` is acknowledged and
    /// ignored. The command (default `/video`) in a private note by an agent starts a call
    /// for that conversation and agent: the customer's link is posted publicly, the
    /// agent's as a private note. Everything else is acknowledged (`200`) and ignored.
    #[oai(
        path = "/integrations/:id/chatwoot/events",
        method = "post",
        operation_id = "chatwootEvents"
    )]
    async fn events(
        &self,
        state: Data<&AppState>,
        /// The integration's id or name.
        #[oai(validator(max_length = 128))]
        id: Path<String>,
        #[oai(name = "X-Chatwoot-Signature", validator(max_length = 200))] signature: Header<
            Option<String>,
        >,
        #[oai(name = "X-Chatwoot-Timestamp", validator(max_length = 20))] timestamp: Header<
            Option<String>,
        >,
        #[oai(name = "X-Chatwoot-Delivery", validator(max_length = 128))] delivery: Header<
            Option<String>,
        >,
        body: RawJson,
    ) -> Result<Json<ChatwootResult>, ApiError> {
        let i = chatwoot_integration(&state, &id.0).await?;
        let Some(secret) = i
            .config
            .get("webhook_secret")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
        else {
            tracing::warn!(integration = %i.name, "Chatwoot webhook refused: no webhook_secret configured");
            return Err(ApiError::unauthenticated(
                "webhook_secret_not_set",
                "this integration has no config.webhook_secret; set it to the webhook's secret from Chatwoot",
            ));
        };
        let now = Utc::now();
        if let Err(e) = cw::verify(
            secret.as_bytes(),
            signature.0.as_deref(),
            timestamp.0.as_deref(),
            &body.0,
            now.timestamp(),
        ) {
            tracing::warn!(integration = %i.name, reason = %e, "Chatwoot webhook refused");
            return Err(ApiError::unauthenticated(e.code(), e.to_string()));
        }
        let delivery = delivery
            .0
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty() && d.len() <= cw::MAX_DELIVERY_ID)
            .map(|d| format!("chatwoot:{d}"));
        if let Some(d) = &delivery
            && inbound::seen(&state.db, &i.id, d).await?
        {
            tracing::info!(integration = %i.name, delivery = %d, "Chatwoot webhook ignored: delivery already handled");
            return Ok(ack(
                "duplicate",
                Some("this delivery was handled before"),
                None,
            ));
        }
        let command = adapters::chatwoot_command(&i.config);
        let parsed = cw::parse_webhook(&body.0, &command).map_err(|e| {
            tracing::warn!(integration = %i.name, reason = %e, "Chatwoot webhook refused");
            ApiError::bad_request(e.code(), e.to_string())
        })?;
        let remember = |d: Option<String>| {
            let db = state.db.clone();
            let iid = i.id.clone();
            async move {
                if let Some(d) = d {
                    let keep = now - chrono::Duration::seconds(REMEMBER_SECS);
                    inbound::record(&db, &iid, &d, now, keep).await?;
                }
                Ok::<(), sea_orm::DbErr>(())
            }
        };
        let call = match parsed {
            Webhook::Ignore(reason) => {
                tracing::info!(integration = %i.name, reason, "Chatwoot webhook ignored");
                remember(delivery).await?;
                return Ok(ack("ignored", Some(reason), None));
            }
            Webhook::StartCall(c) if !account_matches(&i, &c) => {
                let reason = "the webhook is from another Chatwoot account";
                tracing::warn!(integration = %i.name, reason, "Chatwoot webhook ignored");
                remember(delivery).await?;
                return Ok(ack("ignored", Some(reason), None));
            }
            Webhook::StartCall(c) => c,
        };
        // The message that asked makes the start idempotent (a replay with a new delivery
        // id answers the same call).
        let key = match call.message_id {
            Some(m) => format!("message:{m}"),
            None => format!("conversation:{}:{}", call.conversation_id, now.timestamp()),
        };
        let (view, replayed) = chat_calls::start(&call_env(&state), &i, chat_call(&call, key), now)
            .await
            .map_err(start_error)?;
        remember(delivery).await?;
        tracing::info!(session_id = %view.session.id, integration = %i.name,
            conversation = call.conversation_id, replayed, "call started from a Chatwoot note");
        Ok(ack(
            if replayed { "replayed" } else { "started" },
            None,
            Some(&view.session.id),
        ))
    }

    /// Start a call from a Chatwoot macro
    ///
    /// The URL of a macro's *Send webhook event* action (shown once as
    /// `chatwoot_macro_url`: it carries a secret, as Chatwoot does not sign macro
    /// webhooks). Chatwoot sends the conversation but not who ran the macro, so the call
    /// is started for the conversation's assignee (`422 no_assignee` without one). While
    /// the conversation has a live call, that call is answered and nothing new is posted.
    #[oai(
        path = "/integrations/:id/chatwoot/macro/:secret",
        method = "post",
        operation_id = "chatwootMacro"
    )]
    async fn macro_call(
        &self,
        state: Data<&AppState>,
        /// The integration's id or name.
        #[oai(validator(max_length = 128))]
        id: Path<String>,
        /// The secret segment of `chatwoot_macro_url`.
        #[oai(validator(max_length = 128))]
        secret: Path<String>,
        body: RawJson,
    ) -> Result<Json<ChatwootResult>, ApiError> {
        let i = chatwoot_integration(&state, &id.0).await?;
        let expected = adapters::macro_secret(&i.signing_secret);
        if !cw::same_secret(&secret.0, &expected) {
            tracing::warn!(integration = %i.name, "Chatwoot macro call refused: wrong URL secret");
            return Err(ApiError::unauthenticated(
                "macro_secret_mismatch",
                "this macro URL is not (or no longer) valid; copy chatwoot_macro_url again",
            ));
        }
        let call = cw::parse_macro(&body.0).map_err(|e| {
            tracing::warn!(integration = %i.name, reason = %e, "Chatwoot macro call refused");
            match e {
                cw::PayloadError::NoAssignee => ApiError::unprocessable(e.code(), e.to_string()),
                _ => ApiError::bad_request(e.code(), e.to_string()),
            }
        })?;
        if !account_matches(&i, &call) {
            return Err(ApiError::unprocessable(
                "wrong_account",
                "the conversation belongs to another Chatwoot account",
            ));
        }
        let conv = call.conversation_id.to_string();
        if let Some(live) = chat_calls::live_call(&state.db, "chatwoot", &conv).await? {
            return Ok(ack("already_live", None, Some(&live.session.id)));
        }
        let now = Utc::now();
        // Two runs within ten seconds (a double click) are one call.
        let key = format!("macro:{conv}:{}", now.timestamp() / 10);
        let (view, replayed) = chat_calls::start(&call_env(&state), &i, chat_call(&call, key), now)
            .await
            .map_err(start_error)?;
        tracing::info!(session_id = %view.session.id, integration = %i.name,
            conversation = call.conversation_id, "call started from a Chatwoot macro");
        Ok(ack(
            if replayed { "replayed" } else { "started" },
            None,
            Some(&view.session.id),
        ))
    }
}
