//! Parsed, bounded values accepted at the API edge ("parse, don't validate").

use std::fmt;

/// Why a field was refused; `field` is the JSON path the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.field, self.message)
    }
}

fn err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// Trimmed text of 1..=max characters without control characters.
fn bounded_text(field: &'static str, raw: &str, max: usize) -> Result<String, FieldError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(err(field, "must not be empty"));
    }
    // Counted before trimming, as the OpenAPI document's `maxLength` counts.
    if raw.chars().count() > max {
        return Err(err(field, format!("must be at most {max} characters")));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(err(field, "must not contain control characters"));
    }
    Ok(v.to_owned())
}

/// A short identifier: 1..=128 visible ASCII characters.
fn ident(field: &'static str, raw: &str) -> Result<String, FieldError> {
    if raw.is_empty() {
        return Err(err(field, "must not be empty"));
    }
    if raw.len() > 128 {
        return Err(err(field, "must be at most 128 characters"));
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(field, "must be visible ASCII without spaces"));
    }
    Ok(raw.to_owned())
}

/// The chat conversation a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRef {
    pub platform: String,
    pub id: String,
}

impl ConversationRef {
    pub fn parse(platform: &str, id: &str) -> Result<Self, FieldError> {
        let platform = ident("conversation.platform", platform)?;
        if !platform
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(err(
                "conversation.platform",
                "may contain only letters, digits, '-', '_' and '.'",
            ));
        }
        Ok(Self {
            platform,
            id: ident("conversation.id", id)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        bounded_text(field, raw, 80).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentId(String);

impl AgentId {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        ident("agent.id", raw).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An e-mail address: one `@`, a dotted domain, no spaces, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let v = raw.trim();
        let bad = || err(field, "is not a valid e-mail address");
        if raw.chars().count() > 254 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = v.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.chars().count() > 64
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || v.contains(['<', '>', ',', ';', '"', '\\'])
        {
            return Err(bad());
        }
        Ok(Self(v.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A BCP 47 language tag such as `en`, `fr-CA` or `zh-Hant-TW` (shape only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locale(String);

impl Locale {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let bad = || err(field, "is not a language tag such as `en` or `pt-BR`");
        if raw.is_empty() || raw.len() > 35 {
            return Err(bad());
        }
        let mut parts = raw.split('-');
        let lang = parts.next().unwrap_or_default();
        if !(2..=3).contains(&lang.len()) || !lang.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad());
        }
        for p in parts {
            if !(1..=8).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad());
            }
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Caller-defined JSON object stored with the session (≤ 4 KiB, ≤ 50 keys, depth ≤ 4).
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata(serde_json::Value);

pub const MAX_METADATA_BYTES: usize = 4096;
/// Most keys a metadata object may have.
pub const MAX_METADATA_KEYS: usize = 50;

impl Metadata {
    pub fn empty() -> Self {
        Self(serde_json::Value::Object(Default::default()))
    }

    pub fn parse(v: serde_json::Value) -> Result<Self, FieldError> {
        let obj = v
            .as_object()
            .ok_or_else(|| err("metadata", "must be a JSON object"))?;
        if obj.len() > MAX_METADATA_KEYS {
            return Err(err("metadata", "must have at most 50 keys"));
        }
        if depth(&v) > 4 {
            return Err(err("metadata", "must be nested at most 4 levels deep"));
        }
        let size = serde_json::to_vec(&v)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > MAX_METADATA_BYTES {
            return Err(err(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes as JSON"),
            ));
        }
        Ok(Self(v))
    }

    pub fn as_value(&self) -> &serde_json::Value {
        &self.0
    }

    pub fn into_value(self) -> serde_json::Value {
        self.0
    }
}

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Free-text reason given when ending a session.
pub fn end_reason(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    match raw {
        None => Ok(None),
        Some(r) if r.trim().is_empty() => Ok(None),
        Some(r) => bounded_text("reason", r, 200).map(Some),
    }
}

/// An optional field: absent, or blank (only white space), means `None`; anything else
/// must parse.
pub fn optional<T>(
    raw: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, FieldError>,
) -> Result<Option<T>, FieldError> {
    raw.filter(|s| !s.trim().is_empty()).map(parse).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ref() {
        assert!(ConversationRef::parse("chatwoot", "123").is_ok());
        assert!(ConversationRef::parse("", "1").is_err());
        assert!(ConversationRef::parse("chat woot", "1").is_err());
        assert!(ConversationRef::parse("x", &"9".repeat(129)).is_err());
        assert!(ConversationRef::parse("x", "a b").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("n", "  Ana  ").unwrap().as_str(), "Ana");
        assert!(DisplayName::parse("n", "   ").is_err());
        assert!(DisplayName::parse("n", &"é".repeat(81)).is_err());
        assert!(DisplayName::parse("n", &"é".repeat(80)).is_ok());
        assert!(DisplayName::parse("n", "a\u{0}b").is_err());
    }

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(Email::parse("e", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@@b.co",
            "a b@c.de",
            "a@b..co",
            "a@.b.co",
            "x@y.z,\"q\"@r.s",
        ] {
            assert!(Email::parse("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locales() {
        for ok in ["en", "pt-BR", "zh-Hant-TW", "fil"] {
            assert!(Locale::parse("l", ok).is_ok(), "{ok}");
        }
        for bad in ["", "e", "english", "en_US", "en--US", "12"] {
            assert!(Locale::parse("l", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_limits() {
        assert!(Metadata::parse(serde_json::json!({"crm": "42"})).is_ok());
        assert!(Metadata::parse(serde_json::json!([1])).is_err());
        assert!(Metadata::parse(serde_json::json!({"a": "x".repeat(5000)})).is_err());
        assert!(Metadata::parse(serde_json::json!({"a": {"b": {"c": {"d": {"e": 1}}}}})).is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}") {
            let _ = ConversationRef::parse(&s, &s);
            let _ = DisplayName::parse("n", &s);
            let _ = Email::parse("e", &s);
            let _ = Locale::parse("l", &s);
            let _ = AgentId::parse(&s);
            let _ = end_reason(Some(&s));
        }

        #[test]
        fn accepted_names_are_bounded_and_trimmed(s in "\\PC{0,300}") {
            if let Ok(n) = DisplayName::parse("n", &s) {
                prop_assert!(n.as_str().chars().count() <= 80);
                prop_assert_eq!(n.as_str(), n.as_str().trim());
            }
        }
    }
}
