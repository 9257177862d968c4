//! E-mail invites: a [`Mailer`] trait with a lettre SMTP implementation, HTML and
//! plain-text bodies from localized askama templates, always sent through the outbox.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{MailConfig, SmtpTls};
use crate::delivery::message::pick_language;
use crate::delivery::senders::DeliveryEnv;

/// What sending an e-mail delivery needs: the link-making handles of every sender, the
/// SMTP transport and the sender address.
#[derive(Clone)]
pub struct MailEnv {
    pub links: DeliveryEnv,
    /// SMTP, when `mail.host` is configured.
    pub mailer: Option<std::sync::Arc<dyn Mailer>>,
    /// `mail.from`.
    pub from: String,
}
use crate::delivery::worker::AttemptError;
use crate::store::outbox::delivery;
use crate::store::sessions as repo;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail configuration: {0}")]
    Config(String),
    #[error("composing the message: {0}")]
    Compose(String),
    #[error("SMTP: {0}")]
    Send(String),
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>>;

/// Something that sends e-mail.
pub trait Mailer: Send + Sync {
    fn send(&self, message: Message) -> SendFuture<'_>;
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Mailer for SmtpMailer {
    fn send(&self, message: Message) -> SendFuture<'_> {
        Box::pin(async move {
            self.transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError::Send(e.to_string()))
        })
    }
}

/// Builds the SMTP mailer from config; `None` when no host is configured.
pub fn from_config(cfg: &MailConfig, timeout: Duration) -> Result<Option<SmtpMailer>, MailError> {
    let Some(host) = cfg.host.as_deref() else {
        return Ok(None);
    };
    let tls_params =
        || TlsParameters::new(host.to_owned()).map_err(|e| MailError::Config(e.to_string()));
    let tls = match cfg.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_params()?),
        SmtpTls::Tls => Tls::Wrapper(tls_params()?),
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(cfg.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
        b = b.credentials(Credentials::new(
            user.clone(),
            pass.expose_secret().to_owned(),
        ));
    }
    Ok(Some(SmtpMailer {
        transport: b.build(),
    }))
}

#[derive(Template)]
#[template(path = "email_invite_en.txt")]
struct TextEn<'a> {
    customer_name: Option<&'a str>,
    agent_name: &'a str,
    link: &'a str,
}
#[derive(Template)]
#[template(path = "email_invite_de.txt")]
struct TextDe<'a> {
    customer_name: Option<&'a str>,
    agent_name: &'a str,
    link: &'a str,
}
#[derive(Template)]
#[template(path = "email_invite_en.html")]
struct HtmlEn<'a> {
    customer_name: Option<&'a str>,
    agent_name: &'a str,
    link: &'a str,
}
#[derive(Template)]
#[template(path = "email_invite_de.html")]
struct HtmlDe<'a> {
    customer_name: Option<&'a str>,
    agent_name: &'a str,
    link: &'a str,
}

/// Subject, plain text and HTML of an invite in `lang`.
pub fn render_invite(
    lang: &str,
    customer_name: Option<&str>,
    agent_name: &str,
    link: &str,
) -> Result<(String, String, String), askama::Error> {
    Ok(match lang {
        "de" => (
            format!("{agent_name} lädt Sie zu einem Videoanruf ein"),
            TextDe {
                customer_name,
                agent_name,
                link,
            }
            .render()?,
            HtmlDe {
                customer_name,
                agent_name,
                link,
            }
            .render()?,
        ),
        _ => (
            format!("{agent_name} invites you to a video call"),
            TextEn {
                customer_name,
                agent_name,
                link,
            }
            .render()?,
            HtmlEn {
                customer_name,
                agent_name,
                link,
            }
            .render()?,
        ),
    })
}

/// Outbox delivery of an e-mail invite (rendered now, with the session's live link).
pub async fn send_invite(state: &MailEnv, row: &delivery::Model) -> Result<(), AttemptError> {
    let mailer = state
        .mailer
        .as_ref()
        .ok_or_else(|| AttemptError::retry("mail is not configured (mail.host)"))?;
    let to = row
        .payload
        .get("to")
        .and_then(|v| v.as_str())
        .ok_or_else(|| AttemptError::permanent("invite has no recipient"))?;
    let to: Mailbox = to
        .parse()
        .map_err(|_| AttemptError::permanent("recipient is not an address"))?;
    let locale = row.payload.get("locale").and_then(|v| v.as_str());
    let (subject, text, html) = match row.payload.get("participant_id").and_then(|v| v.as_str()) {
        // An invited participant (expert, supervisor, agent): their own link, and who
        // invited them.
        Some(pid) => {
            let (view, p, link) = participant_and_link(&state.links, row, pid).await?;
            let inviter = row
                .payload
                .get("invited_by")
                .and_then(|v| v.as_str())
                .unwrap_or(&view.session.agent_name);
            render_invite(
                pick_language([locale]),
                Some(&p.display_name),
                inviter,
                &link,
            )
        }
        None => {
            let (view, link) =
                crate::delivery::senders::session_and_customer_link(&state.links, row).await?;
            let s = &view.session;
            let lang = pick_language([locale, s.customer_locale.as_deref()]);
            render_invite(lang, s.customer_name.as_deref(), &s.agent_name, &link)
        }
    }
    .map_err(|e| AttemptError::permanent(format!("template: {e}")))?;
    let from: Mailbox = state
        .from
        .parse()
        .map_err(|_| AttemptError::permanent("mail.from is not a mailbox"))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{}@sightline>", row.message_id)))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| AttemptError::permanent(format!("composing: {e}")))?;
    mailer
        .send(message)
        .await
        .map_err(|e| AttemptError::retry(e.to_string()))
}

/// The invited participant of an e-mail delivery and their live link.
async fn participant_and_link(
    state: &DeliveryEnv,
    row: &delivery::Model,
    participant_id: &str,
) -> Result<
    (
        repo::SessionView,
        crate::store::entities::participant::Model,
        String,
    ),
    AttemptError,
> {
    let session_id = row
        .session_id
        .as_deref()
        .ok_or_else(|| AttemptError::permanent("delivery has no session"))?;
    let view = repo::get(&state.db, session_id)
        .await
        .map_err(|e| AttemptError::retry(format!("database: {e}")))?
        .ok_or_else(|| AttemptError::permanent("the session was deleted"))?;
    let p = view
        .participants
        .iter()
        .find(|p| p.id == participant_id)
        .cloned()
        .ok_or_else(|| AttemptError::permanent("the invited participant is gone"))?;
    let link = view
        .participant_url(&state.join_key, &state.public_url, participant_id)
        .ok_or_else(|| {
            AttemptError::permanent("the session ended or the participant was removed")
        })?;
    Ok((view, p, link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_carry_the_link_and_escape_html() {
        let (s, t, h) = render_invite("en", Some("Sam <b>"), "Ana", "http://x/j/t").unwrap();
        assert!(s.contains("Ana") && t.contains("http://x/j/t") && h.contains("http://x/j/t"));
        assert!(
            h.contains("Sam &#60;b&#62;") || h.contains("Sam &lt;b&gt;"),
            "{h}"
        );
        let (_, t, _) = render_invite("de", None, "Ana", "L").unwrap();
        assert!(t.starts_with("Guten Tag,"), "{t}");
    }
}
