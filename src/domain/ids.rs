//! Typed ids, parsed at the edge: a [`SessionId`] or [`ParticipantId`] is a UUID in its
//! canonical form (lowercase, hyphenated), so code that takes one never sees a malformed
//! or differently spelled id, and a session id cannot be passed where a participant's is
//! expected. Both dereference to `&str` for the store's queries and for logs.

use std::fmt;
use std::ops::Deref;

/// A string that is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {0} id")]
pub struct IdError(pub &'static str);

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A new, time-ordered id (UUID v7).
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// Parses any spelling `uuid` accepts into the canonical form.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                uuid::Uuid::try_parse(s)
                    .map(|u| Self(u.to_string()))
                    .map_err(|_| IdError($what))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id!(SessionId, "session");
uuid_id!(ParticipantId, "participant");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonical_uuids() {
        let upper = "0193A6B2-7C1D-7E4F-8A9B-0C1D2E3F4A5B";
        let id = SessionId::parse(upper).unwrap();
        assert_eq!(id.as_str(), upper.to_lowercase());
        assert_eq!(SessionId::parse(&id).unwrap(), id);
        for bad in [
            "",
            "x",
            "../etc",
            "0193a6b2-7c1d-7e4f-8a9b",
            &"a".repeat(10_000),
        ] {
            assert_eq!(SessionId::parse(bad), Err(IdError("session")));
            assert_eq!(ParticipantId::parse(bad), Err(IdError("participant")));
        }
        let g = ParticipantId::generate();
        assert_eq!(ParticipantId::parse(&g).unwrap(), g);
        assert_ne!(SessionId::generate(), SessionId::generate());
    }
}
