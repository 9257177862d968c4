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
}
