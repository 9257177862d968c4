//! Authentication of REST callers: `Authorization: Bearer <api key>`, checked against
//! the key store (with its one-second cache) for every request.

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::apikeys::Caller;

/// `Authorization: Bearer <api key>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", key_name = "Authorization", checker = "check_bearer")]
pub struct ApiKeyAuth(pub Caller);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("state missing")))?;
    match state.api_keys.authenticate(&state.db, &bearer.token).await {
        Ok(Some(caller)) => Ok(caller),
        Ok(None) => Err(ApiError::Unauthorized.into()),
        Err(e) => Err(ApiError::from(e).into()),
    }
}
