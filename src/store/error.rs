//! The error of the session aggregate's use cases.

use sea_orm::DbErr;

/// Why a use case on a session was refused, or failed: one enum for the services'
/// boundary (the store's writes check the rules inside their transaction and answer with
/// it too). The HTTP layer maps each variant to one status and stable code, in one place.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no session with this id")]
    SessionNotFound,
    #[error("the session has ended")]
    SessionEnded,
    #[error("the session has expired")]
    SessionExpired,
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("give `email`; the session's customer has none")]
    EmailRequired,
    #[error("no participant with this id in the session")]
    ParticipantNotFound,
    #[error("a session has exactly one customer; it cannot be invited")]
    CustomerNotInvitable,
    #[error("only supervisors have a mode")]
    ModeNotAllowed,
    #[error("the session already has {max} participants")]
    ParticipantLimit { max: u32 },
    #[error("this agent is already in the session")]
    SameAgent,
    #[error("the customer cannot be removed; end the session instead")]
    CannotRemoveCustomer,
    #[error("the last agent cannot be removed; transfer or end the session instead")]
    LastAgent,
    #[error("the participant was removed from the session")]
    ParticipantRemoved,
    #[error("the transfer target is not an agent of this session")]
    NotAnAgent,
    #[error("e-mail is not configured on this server (mail.host)")]
    MailNotConfigured,
    #[error(transparent)]
    Db(#[from] DbErr),
}
