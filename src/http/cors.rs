//! CORS for the widget endpoints: the widget runs in the host page (another origin) and
//! calls `/api/v1/widget/…` with an agent token. Only `embed.allowed_origins` may.

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

pub use crate::config::{EmbedSettings, is_origin};

pub struct WidgetCors(pub std::sync::Arc<EmbedSettings>);

impl<E: Endpoint> Middleware<E> for WidgetCors {
    type Output = WidgetCorsEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        WidgetCorsEndpoint {
            inner: ep,
            settings: self.0.clone(),
        }
    }
}

pub struct WidgetCorsEndpoint<E> {
    inner: E,
    settings: std::sync::Arc<EmbedSettings>,
}

impl<E: Endpoint> Endpoint for WidgetCorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let widget_path = req.uri().path().starts_with("/api/v1/widget/");
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .filter(|o| widget_path && self.settings.allows(o))
            .map(str::to_owned);
        if widget_path && req.method() == Method::OPTIONS {
            let mut r = StatusCode::NO_CONTENT.into_response();
            if let Some(o) = &origin {
                let h = r.headers_mut();
                if let Ok(v) = HeaderValue::from_str(o) {
                    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
                }
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, DELETE"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type, idempotency-key"),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
            }
            r.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
            return Ok(r);
        }
        let mut r = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        if widget_path {
            if let Some(v) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
                r.headers_mut()
                    .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            }
            r.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(is_origin("https://desk.example.com"));
        assert!(is_origin("http://127.0.0.1:8080"));
        assert!(!is_origin("https://desk.example.com/"));
        assert!(!is_origin("desk.example.com"));
        assert!(!is_origin("https://a.example?x"));
        assert!(!is_origin("*"));
        let s = EmbedSettings {
            allowed_origins: vec!["https://desk.example.com".into()],
        };
        assert!(s.allows("https://DESK.example.com"));
        assert!(!s.allows("https://evil.example.com"));
    }
}
