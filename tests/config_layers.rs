//! Configuration layering: defaults → TOML file → SIGHTLINE_* environment → CLI flags.
//! One test function, because the environment is process-wide.

use std::io::Write;

use sightline::config::{CliOverrides, Config};

#[test]
fn layers_apply_in_order_and_bad_values_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sightline.toml");
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(
        f,
        "listen = \"127.0.0.1:9001\"\npublic_url = \"https://file.example.com\"\nmistyped_key = 1\n\n[sessions]\nttl_secs = 600\n\n[turn]\nrealm = \"file-realm\""
    )
    .unwrap();

    // File over defaults; unknown keys are reported, not fatal.
    let loaded = Config::load(Some(&file), &CliOverrides::default()).unwrap();
    assert_eq!(loaded.config.listen.port(), 9001);
    assert_eq!(loaded.config.sessions.ttl_secs, 600);
    assert_eq!(loaded.config.turn.realm, "file-realm");
    assert_eq!(
        loaded.config.max_body_bytes,
        Config::default().max_body_bytes
    );
    assert!(
        loaded.warnings.iter().any(|w| w.contains("mistyped_key")),
        "{:?}",
        loaded.warnings
    );

    // Environment over the file (nested keys with `__`), CLI over the environment.
    unsafe {
        std::env::set_var("SIGHTLINE_LISTEN", "127.0.0.1:9002");
        std::env::set_var("SIGHTLINE_PUBLIC_URL", "https://env.example.com");
        std::env::set_var("SIGHTLINE_SESSIONS__TTL_SECS", "900");
        std::env::set_var("SIGHTLINE_TURN_SECRET", "a-turn-secret-from-env");
    }
    let cli = CliOverrides {
        public_url: Some("https://cli.example.com".into()),
        ..Default::default()
    };
    let c = Config::load(Some(&file), &cli).unwrap().config;
    assert_eq!(c.listen.port(), 9002);
    assert_eq!(c.sessions.ttl_secs, 900);
    assert_eq!(c.public_url.as_deref(), Some("https://cli.example.com"));
    assert!(c.turn.secret.is_some());
    // Secrets never show in Debug output.
    assert!(!format!("{c:?}").contains("a-turn-secret-from-env"));

    // A bad value stops the start with a message naming the key.
    unsafe { std::env::set_var("SIGHTLINE_SESSIONS__TTL_SECS", "5") };
    let err = Config::load(Some(&file), &CliOverrides::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("sessions.ttl_secs"), "{err}");
    unsafe { std::env::set_var("SIGHTLINE_SESSIONS__TTL_SECS", "soon") };
    let err = Config::load(Some(&file), &CliOverrides::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.to_lowercase().contains("sessions.ttl_secs"), "{err}");
    unsafe { std::env::remove_var("SIGHTLINE_SESSIONS__TTL_SECS") };

    // Secrets from files.
    let secret_file = dir.path().join("key");
    std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef-from-file\n").unwrap();
    unsafe { std::env::set_var("SIGHTLINE_SECRET_KEY_FILE", &secret_file) };
    let c = Config::load(Some(&file), &CliOverrides::default())
        .unwrap()
        .config;
    use secrecy::ExposeSecret;
    assert_eq!(
        c.secret_key.unwrap().expose_secret(),
        "0123456789abcdef0123456789abcdef-from-file"
    );

    // A missing config file is an error, not silently ignored.
    let err = Config::load(
        Some(&dir.path().join("nope.toml")),
        &CliOverrides::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("nope.toml"), "{err}");

    for k in [
        "SIGHTLINE_LISTEN",
        "SIGHTLINE_PUBLIC_URL",
        "SIGHTLINE_TURN_SECRET",
        "SIGHTLINE_SECRET_KEY_FILE",
    ] {
        unsafe { std::env::remove_var(k) };
    }
}
