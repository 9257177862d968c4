//! How the engine builds its peer connections: the codecs it offers (Opus and VP8 with
//! their feedback), the library's default interceptors (NACK both ways, receiver reports,
//! transport-wide congestion feedback as a receiver) and ICE settings.

use std::time::{Duration, Instant};

use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};

use super::core::{EngineError, PT_OPUS, PT_VP8};
use super::rules::Kind;

pub(super) fn random_token(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// The one codec per kind the engine negotiates. Video asks for NACK, PLI, FIR and
/// receiver-estimated bitrate (the engine sends REMB to publishers and reads it from
/// subscribers).
pub(super) fn codec(kind: Kind) -> RTCRtpCodecParameters {
    match kind {
        Kind::Audio => RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: PT_OPUS,
        },
        Kind::Video => RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: ["nack", "nack pli", "ccm fir", "goog-remb"]
                    .iter()
                    .map(|f| {
                        let (typ, parameter) = f.split_once(' ').unwrap_or((f, ""));
                        RTCPFeedback {
                            typ: typ.to_owned(),
                            parameter: parameter.to_owned(),
                        }
                    })
                    .collect(),
            },
            payload_type: PT_VP8,
        },
    }
}

pub(super) fn rtc_kind(kind: Kind) -> RtpCodecKind {
    match kind {
        Kind::Audio => RtpCodecKind::Audio,
        Kind::Video => RtpCodecKind::Video,
    }
}

pub(super) fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

pub(super) fn new_pc(ufrag: &str, now: Instant) -> Result<RTCPeerConnection, EngineError> {
    let mut media = MediaEngine::default();
    for kind in Kind::ALL {
        media
            .register_codec(codec(kind), rtc_kind(kind))
            .map_err(internal)?;
    }
    // Sender and receiver reports reach the engine's quality tracker (wire-most); PLI, FIR
    // and REMB reach the engine's feedback handling (application-most).
    let registry = rtc::interceptor::Registry::new().with(
        super::quality::REPORTS_SLOT,
        super::quality::ReportsToEngine::default(),
    );
    let registry = register_default_interceptors(registry, &mut media)
        .map_err(internal)?
        .with(
            rtc::interceptor::Slot::Custom(super::tap::SLOT),
            super::tap::FeedbackTap::default(),
        );
    let settings = SettingEngineBuilder::new()
        .with_ice_credentials(ufrag.to_owned(), random_token(32))
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        // The engine has one host candidate and controls ICE: it nominates the first
        // pair that works. The library's defaults make it wait 1 s before nominating
        // a pair whose remote it learnt from a check (its trickled candidate not yet
        // in) and 2 s for a relayed one: time a page switching to a routed call would
        // spend with no engine media.
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        .with_relay_acceptance_min_wait(Some(Duration::ZERO))
        .with_srflx_acceptance_min_wait(Some(Duration::ZERO))
        .build();
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .build(now)
        .map_err(internal)
}
