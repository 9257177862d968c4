//! Prometheus metrics: HTTP requests by route and status, latency, sessions by state.

use std::time::Instant;

use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    pub sessions: IntGaugeVec,
    /// TURN counters, copied from the relay's atomics at scrape time.
    pub turn: IntGaugeVec,
    /// Media engine counters, copied from its last turn at scrape time.
    pub media: IntGaugeVec,
    /// Seconds the media engine's task has spent working (see `MediaEngine::busy`).
    pub media_busy: prometheus::Gauge,
    /// Sessions per group-commit transaction (`sessions::batch`).
    pub write_batch_size: Histogram,
    /// Time to store one group-commit batch.
    pub write_batch_seconds: Histogram,
    /// HTTP connections: open, accepted, refused over a cap, closed for slowness.
    pub conns: ConnMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("sightline".into()), None)
            .expect("static registry prefix is valid");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("static metric definition");
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route"],
        )
        .expect("static metric definition");
        let sessions = IntGaugeVec::new(Opts::new("sessions", "Sessions by status"), &["status"])
            .expect("static metric definition");
        let turn = IntGaugeVec::new(
            Opts::new(
                "turn",
                "Bundled TURN server: allocations (live), allocations_total, relayed_packets, \
                 relayed_bytes, auth_failures, policy_refusals, quota_refusals, dropped_packets",
            ),
            &["counter"],
        )
        .expect("static metric definition");
        let media = IntGaugeVec::new(
            Opts::new(
                "media",
                "Media engine: routed_calls and routed_participants (live), forwarded_packets, \
                 forwarded_bytes, received_rtp, refused_rtp (role rules), dropped_datagrams \
                 (unknown source), plis_sent, keyframe_requests_forwarded, \
                 keyframe_requests_limited, rembs_sent, over_cap_rtp (dropped by the bitrate cap), \
                 recorded_rtp, recorded_dropped (recorder behind)",
            ),
            &["counter"],
        )
        .expect("static metric definition");
        let media_busy = prometheus::Gauge::new(
            "media_engine_busy_seconds",
            "Media engine: seconds its task spent handling datagrams, commands and timers and \
             sending the results (monotonic time around each turn; waits excluded)",
        )
        .expect("static metric definition");
        let write_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "session_write_batch_size",
                "Sessions stored per group-commit transaction",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )
        .expect("static metric definition");
        let write_batch_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "session_write_batch_seconds",
                "Time to store one group-commit batch of sessions",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("static metric definition");
        let conns = ConnMetrics {
            open: IntGauge::new("http_connections_open", "Open HTTP connections")
                .expect("static metric definition"),
            accepted: IntCounter::new(
                "http_connections_accepted_total",
                "HTTP connections accepted",
            )
            .expect("static metric definition"),
            refused: IntCounterVec::new(
                Opts::new(
                    "http_connections_refused_total",
                    "HTTP connections refused at accept, by the cap that was full",
                ),
                &["reason"],
            )
            .expect("static metric definition"),
            timeouts: IntCounterVec::new(
                Opts::new(
                    "http_connection_timeouts_total",
                    "HTTP connections closed because the client was too slow, by phase \
                     (header, idle, upgraded, write, body)",
                ),
                &["phase"],
            )
            .expect("static metric definition"),
            accept_errors: IntCounter::new(
                "http_accept_errors_total",
                "accept() failures on the HTTP listener (e.g. out of file descriptors)",
            )
            .expect("static metric definition"),
        };
        for c in [
            Box::new(conns.open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(conns.accepted.clone()),
            Box::new(conns.refused.clone()),
            Box::new(conns.timeouts.clone()),
            Box::new(conns.accept_errors.clone()),
            Box::new(turn.clone()),
            Box::new(write_batch_size.clone()),
            Box::new(write_batch_seconds.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_latency.clone()),
            Box::new(sessions.clone()),
            Box::new(media.clone()),
            Box::new(media_busy.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            http_requests,
            http_latency,
            sessions,
            turn,
            media,
            media_busy,
            write_batch_size,
            write_batch_seconds,
            conns,
        }
    }

    /// Copies the relay's counters into the `sightline_turn` gauge.
    pub fn set_turn(&self, s: &sightline_turn::TurnStats) {
        for (name, v) in [
            ("allocations", s.allocations),
            ("allocations_total", s.allocations_total),
            ("relayed_packets", s.relayed_packets),
            ("relayed_bytes", s.relayed_bytes),
            ("auth_failures", s.auth_failures),
            ("policy_refusals", s.policy_refusals),
            ("quota_refusals", s.quota_refusals),
            ("dropped_packets", s.dropped_packets),
        ] {
            self.turn
                .with_label_values(&[name])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Copies the media engine's counters into the `sightline_media` gauge.
    pub fn set_media(&self, s: &crate::media::Stats, calls: usize, participants: usize) {
        for (name, v) in [
            ("routed_calls", calls as u64),
            ("routed_participants", participants as u64),
            ("forwarded_packets", s.forwarded_packets),
            ("forwarded_bytes", s.forwarded_bytes),
            ("received_rtp", s.rtp_in),
            ("refused_rtp", s.rtp_refused),
            ("dropped_datagrams", s.dropped_unknown),
            ("plis_sent", s.plis_sent),
            ("recorded_rtp", s.rtp_recorded),
            ("recorded_dropped", s.recorded_dropped),
            ("keyframe_requests_forwarded", s.keyframe_requests_forwarded),
            ("keyframe_requests_limited", s.keyframe_requests_limited),
            ("rembs_sent", s.rembs_sent),
            ("over_cap_rtp", s.rtp_over_cap),
        ] {
            self.media
                .with_label_values(&[name])
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Renders the text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Collapses ids and tokens so the route label has a small, fixed set of values.
pub fn route_label(path: &str, status: u16) -> String {
    if path.starts_with("/j/") {
        return "/j/{token}".into();
    }
    if path.starts_with("/r/") {
        return "/r/{token}".into();
    }
    if path.starts_with("/static/") {
        return "/static".into();
    }
    if status == 404 && !path.starts_with("/api/") {
        return "other".into();
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let looks_like_id =
            seg.len() >= 20 || seg.bytes().any(|b| b.is_ascii_digit()) && seg.len() > 8;
        out.push_str(if looks_like_id { "{id}" } else { seg });
        if i > 8 {
            break;
        }
    }
    out
}

/// Middleware that records every request.
pub struct Record(pub std::sync::Arc<Metrics>);

impl<E: Endpoint> Middleware<E> for Record {
    type Output = RecordEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        RecordEndpoint {
            inner: ep,
            metrics: self.0.clone(),
        }
    }
}

pub struct RecordEndpoint<E> {
    inner: E,
    metrics: std::sync::Arc<Metrics>,
}

impl<E: Endpoint> Endpoint for RecordEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let start = Instant::now();
        let path = req.uri().path().to_owned();
        let method = req.method().as_str().to_owned();
        let resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        let status = resp.status().as_u16();
        let route = route_label(&path, status);
        self.metrics
            .http_requests
            .with_label_values(&[route.as_str(), method.as_str(), &status.to_string()])
            .inc();
        self.metrics
            .http_latency
            .with_label_values(&[route.as_str()])
            .observe(start.elapsed().as_secs_f64());
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn labels_collapse_ids() {
        assert_eq!(
            route_label(
                "/api/v1/sessions/0193a0e4-1c2b-7d3e-9f00-aaaaaaaaaaaa/end",
                200
            ),
            "/api/v1/sessions/{id}/end"
        );
        assert_eq!(route_label("/j/abcdef", 410), "/j/{token}");
        assert_eq!(route_label("/nope/x", 404), "other");
        assert_eq!(route_label("/healthz", 200), "/healthz");
    }
}

/// Counters the listener keeps (registered in the app's Prometheus registry).
#[derive(Clone)]
pub struct ConnMetrics {
    pub open: IntGauge,
    pub accepted: IntCounter,
    /// Refused at accept, by `reason`: `max_connections` or `max_connections_per_ip`.
    pub refused: IntCounterVec,
    /// Closed for slowness, by `phase`: `header`, `idle`, `upgraded`, `write`, `body`.
    pub timeouts: IntCounterVec,
    pub accept_errors: IntCounter,
}
