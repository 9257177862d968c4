//! Everything that can happen to a session, as it appears on the timeline and in webhooks.
//!
//! One enum, never a string literal: a typo is a compile error, not a silently disabled
//! webhook.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    SessionCreated,
    SessionLinkPosted,
    SessionEnded,
    SessionTransferStarted,
    SessionTransferred,
    LinkIssued,
    LinkRevoked,
    ParticipantInvited,
    ParticipantRemoved,
    ParticipantModeChanged,
    ParticipantWaiting,
    ParticipantAdmitted,
    ParticipantDenied,
    ParticipantDeclined,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantReconnecting,
    /// An e-mail invitation was queued (internal bookkeeping, not a webhook).
    InviteQueued,
    /// A participant's pre-call check: camera, microphone, TURN transports.
    ParticipantPrechecked,
    /// A photo or a frame capture was uploaded.
    SnapshotTaken,
    /// A participant's network reports crossed the degradation threshold.
    QualityDegraded,
    /// The customer rated the call.
    SessionRated,
    /// A post into the conversation was dead-lettered (the platform refused it, or it
    /// expired): the reason is the platform's.
    DeliveryFailed,
    /// A recording's file was finished and is ready to play.
    RecordingReady,
    /// A recording stopped early (disk full, write error); what was written is kept.
    RecordingFailed,
    /// A recording was played from the report page (audit).
    RecordingPlayed,
    /// A recording was downloaded through the API (audit).
    RecordingDownloaded,
    /// A recording was deleted (its file removed).
    RecordingDeleted,
    /// The session's personal data was erased (no personal data in the event).
    SessionErased,
    /// The retention job deleted expired data of this session.
    RetentionPurged,
    /// The session's recording started (an agent, an API client, or `always`).
    RecordingStarted,
    /// The recording was paused (nothing is written until it resumes).
    RecordingPaused,
    RecordingResumed,
    RecordingStopped,
    /// A participant gave, declined or withdrew consent to being recorded.
    RecordingConsent,
}

impl EventKind {
    pub const ALL: [EventKind; 35] = [
        EventKind::SessionCreated,
        EventKind::SessionLinkPosted,
        EventKind::SessionEnded,
        EventKind::SessionTransferStarted,
        EventKind::SessionTransferred,
        EventKind::LinkIssued,
        EventKind::LinkRevoked,
        EventKind::ParticipantInvited,
        EventKind::ParticipantRemoved,
        EventKind::ParticipantModeChanged,
        EventKind::ParticipantWaiting,
        EventKind::ParticipantAdmitted,
        EventKind::ParticipantDenied,
        EventKind::ParticipantDeclined,
        EventKind::ParticipantJoined,
        EventKind::ParticipantLeft,
        EventKind::ParticipantReconnecting,
        EventKind::InviteQueued,
        EventKind::ParticipantPrechecked,
        EventKind::SnapshotTaken,
        EventKind::QualityDegraded,
        EventKind::SessionRated,
        EventKind::DeliveryFailed,
        EventKind::RecordingReady,
        EventKind::RecordingFailed,
        EventKind::RecordingPlayed,
        EventKind::RecordingDownloaded,
        EventKind::RecordingDeleted,
        EventKind::SessionErased,
        EventKind::RetentionPurged,
        EventKind::RecordingStarted,
        EventKind::RecordingPaused,
        EventKind::RecordingResumed,
        EventKind::RecordingStopped,
        EventKind::RecordingConsent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SessionCreated => "session.created",
            EventKind::SessionLinkPosted => "session.link_posted",
            EventKind::SessionEnded => "session.ended",
            EventKind::SessionTransferStarted => "session.transfer_started",
            EventKind::SessionTransferred => "session.transferred",
            EventKind::LinkIssued => "link.issued",
            EventKind::LinkRevoked => "link.revoked",
            EventKind::ParticipantInvited => "participant.invited",
            EventKind::ParticipantRemoved => "participant.removed",
            EventKind::ParticipantModeChanged => "participant.mode_changed",
            EventKind::ParticipantWaiting => "participant.waiting",
            EventKind::ParticipantAdmitted => "participant.admitted",
            EventKind::ParticipantDenied => "participant.denied",
            EventKind::ParticipantDeclined => "participant.declined",
            EventKind::ParticipantJoined => "participant.joined",
            EventKind::ParticipantLeft => "participant.left",
            EventKind::ParticipantReconnecting => "participant.reconnecting",
            EventKind::InviteQueued => "invite.queued",
            EventKind::ParticipantPrechecked => "participant.prechecked",
            EventKind::SnapshotTaken => "snapshot.taken",
            EventKind::QualityDegraded => "quality.degraded",
            EventKind::SessionRated => "session.rated",
            EventKind::DeliveryFailed => "delivery.failed",
            EventKind::RecordingReady => "recording.ready",
            EventKind::RecordingFailed => "recording.failed",
            EventKind::RecordingPlayed => "recording.played",
            EventKind::RecordingDownloaded => "recording.downloaded",
            EventKind::RecordingDeleted => "recording.deleted",
            EventKind::SessionErased => "session.erased",
            EventKind::RetentionPurged => "retention.purged",
            EventKind::RecordingStarted => "recording.started",
            EventKind::RecordingPaused => "recording.paused",
            EventKind::RecordingResumed => "recording.resumed",
            EventKind::RecordingStopped => "recording.stopped",
            EventKind::RecordingConsent => "recording.consent",
        }
    }

    /// Whether integrations can subscribe to this kind as a webhook `type`
    /// (link bookkeeping stays internal).
    pub fn is_webhook(self) -> bool {
        !matches!(
            self,
            EventKind::LinkIssued | EventKind::LinkRevoked | EventKind::InviteQueued
        )
    }

    /// The kinds integrations can subscribe to.
    pub fn webhook_kinds() -> impl Iterator<Item = EventKind> {
        Self::ALL.into_iter().filter(|k| k.is_webhook())
    }
}

impl FromStr for EventKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for k in EventKind::ALL {
            assert!(seen.insert(k.as_str()), "duplicate {k}");
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
        }
        assert!("session.create".parse::<EventKind>().is_err());
    }

    #[test]
    fn link_bookkeeping_is_not_a_webhook() {
        assert!(!EventKind::LinkIssued.is_webhook());
        assert!(EventKind::ParticipantDeclined.is_webhook());
        assert_eq!(EventKind::webhook_kinds().count(), EventKind::ALL.len() - 3);
    }
}
