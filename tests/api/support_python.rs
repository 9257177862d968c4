//! Where the tests find their Python tools.

/// The virtualenv `scripts/setup-test-deps` fills with the tests' Python tools
/// (schemathesis, matrix-synapse, standardwebhooks): `~/.cache/sightline-test/venv`.
pub fn test_venv() -> Option<std::path::PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(cache.join("sightline-test/venv"))
}
