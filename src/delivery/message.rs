//! The text posted into a conversation, from askama templates, localized.

use askama::Template;

#[derive(Template)]
#[template(path = "message_en.txt")]
struct En<'a> {
    agent_name: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "message_de.txt")]
struct De<'a> {
    agent_name: &'a str,
    link: &'a str,
}

/// Languages with their own templates; everything else falls back to English.
pub const LANGUAGES: &[&str] = &["en", "de"];

/// The supported language of a BCP 47 tag (`de-AT` → `de`), if any.
pub fn language_of(tag: &str) -> Option<&'static str> {
    let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
    LANGUAGES.iter().copied().find(|l| *l == primary)
}

/// Picks the first supported language of the candidates, else English.
pub fn pick_language<'a>(candidates: impl IntoIterator<Item = Option<&'a str>>) -> &'static str {
    candidates
        .into_iter()
        .flatten()
        .find_map(language_of)
        .unwrap_or("en")
}

pub fn render(lang: &str, agent_name: &str, link: &str) -> Result<String, askama::Error> {
    let text = match lang {
        "de" => De { agent_name, link }.render()?,
        _ => En { agent_name, link }.render()?,
    };
    Ok(text.trim_end().to_owned())
}

/// The private note with the agent's own link.
pub fn agent_link_note(lang: &str, link: &str) -> String {
    match lang {
        "de" => format!(
            "Videoanruf gestartet. Der Link für den Kunden steht im Gespräch. Ihr Link (nur für Sie): {link}"
        ),
        _ => format!(
            "Video call started. The customer's link is in the conversation. Your link (only for you): {link}"
        ),
    }
}

/// The private note when the customer joined.
pub fn customer_joined_note(lang: &str, customer: Option<&str>) -> String {
    match (lang, customer) {
        ("de", Some(c)) => format!("{c} ist dem Videoanruf beigetreten."),
        ("de", None) => "Der Kunde ist dem Videoanruf beigetreten.".to_owned(),
        (_, Some(c)) => format!("{c} joined the video call."),
        (_, None) => "The customer joined the video call.".to_owned(),
    }
}

/// The private note when the call ended: its duration and the report link.
pub fn call_ended_note(lang: &str, duration_secs: i64, report_url: Option<&str>) -> String {
    let d = duration_secs.max(0);
    let (m, s) = (d / 60, d % 60);
    let (ended, report) = match lang {
        "de" => (
            format!("Der Videoanruf endete nach {m} min {s} s."),
            "Bericht",
        ),
        _ => (
            format!("The video call ended after {m} min {s} s."),
            "Report",
        ),
    };
    match report_url {
        Some(url) => format!("{ended} {report}: {url}"),
        None => ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localized_with_link_and_agent() {
        let en = render("en", "Ana", "https://v.example/j/abc").unwrap();
        assert!(
            en.contains("Ana") && en.contains("https://v.example/j/abc"),
            "{en}"
        );
        let de = render(pick_language([Some("de-AT")]), "Ana", "L").unwrap();
        assert!(de.contains("Videoanruf"), "{de}");
        assert_eq!(pick_language([None, Some("xx"), Some("de")]), "de");
        assert_eq!(pick_language([Some("fr")]), "en");
    }

    #[test]
    fn notes() {
        assert!(agent_link_note("en", "L").ends_with("L"));
        assert_eq!(
            customer_joined_note("en", Some("Sam")),
            "Sam joined the video call."
        );
        assert_eq!(
            call_ended_note("en", 252, Some("https://v/r/x")),
            "The video call ended after 4 min 12 s. Report: https://v/r/x"
        );
        assert_eq!(
            call_ended_note("en", 5, None),
            "The video call ended after 0 min 5 s."
        );
    }
}
