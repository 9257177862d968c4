//! Typed configuration: defaults → TOML file → `SIGHTLINE_*` environment → CLI flags.
//!
//! Built once at start-up, validated, and then shared read-only. Secrets are held in
//! [`SecretString`] so they never reach a log line; every secret can also be read from a
//! file (`*_file` keys / `SIGHTLINE_*_FILE` variables).

pub mod cluster;
mod embed;
pub mod incall;
pub mod media;
pub mod recording;
pub mod turn;

pub use embed::{DemoSettings, EmbedSettings, is_origin};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Everything `sightline serve` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address the HTTP server binds (`127.0.0.1:8080`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Base URL that join links are built from. Defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// Directory for the SQLite database and generated secrets.
    pub data_dir: PathBuf,
    /// Database URL; defaults to the SQLite file `{data_dir}/sightline.db`.
    pub database_url: Option<String>,
    /// Key that signs join links and agent tokens (≥ 32 characters). Generated and kept
    /// in `{data_dir}/secret.key` when not set.
    #[serde(serialize_with = "ser_secret_opt")]
    pub secret_key: Option<SecretString>,
    /// Read `secret_key` from this file.
    pub secret_key_file: Option<PathBuf>,
    /// `pretty` (default) or `json`.
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `sightline=debug,info`.
    pub log_level: String,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Print a first API key on the first start of an empty database.
    pub bootstrap_api_key: bool,
    pub sessions: SessionsConfig,
    /// WebSocket signaling limits and timings.
    pub signaling: SignalingConfig,
    /// STUN/TURN servers handed to browsers.
    pub ice: IceConfig,
    /// The bundled TURN server.
    pub turn: turn::TurnSettings,
    /// The server's media engine for routed calls.
    pub media: media::MediaSettings,
    /// Embedding the widget and call panel in other sites.
    pub embed: EmbedSettings,
    /// The `/demo` agent desktop.
    pub demo: DemoSettings,
    /// Outbound HTTP (webhooks, chat platforms): SSRF policy.
    pub outbound: OutboundConfig,
    /// The durable outbox: retry timings and limits.
    pub outbox: OutboxConfig,
    /// SMTP for e-mail invites.
    pub mail: MailConfig,
    /// HTTP connection limits and timeouts.
    pub http: HttpConfig,
    /// The `/metrics` endpoint.
    pub metrics: MetricsConfig,
    /// Photos uploaded during calls.
    pub snapshots: incall::SnapshotsConfig,
    /// Recording routed calls: when, with whose consent.
    pub recording: recording::RecordingConfig,
    /// Several nodes behind a load balancer (see docs/cluster.md); absent: one node.
    pub cluster: Option<cluster::ClusterConfig>,
}

/// Limits on HTTP connections, so that slow or idle clients cannot hold the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// A request head (request line and headers) must arrive within this many ms of
    /// the connection opening or of its first byte.
    pub header_timeout_ms: u64,
    /// A kept-alive connection with no request, or a WebSocket whose peer is silent, is
    /// closed after this many ms; so is a connection whose writes make no progress.
    pub idle_timeout_ms: u64,
    /// A request body must be received within this many ms (answered `408` otherwise).
    pub body_timeout_ms: u64,
    /// Open connections at most; more are refused at once. Default: three quarters of
    /// the open-file limit (which is raised to its hard limit at start).
    pub max_connections: Option<usize>,
    /// Open connections one client address (IPv6: one /64) may hold. Default: a quarter
    /// of `max_connections`.
    pub max_connections_per_ip: Option<usize>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_timeout_ms: 30_000,
            max_connections: None,
            max_connections_per_ip: None,
        }
    }
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    #[serde(serialize_with = "ser_secret_opt")]
    pub token: Option<SecretString>,
    /// Read `metrics.token` from this file.
    pub token_file: Option<PathBuf>,
}

/// Which addresses outbound webhooks may reach. Private, loopback, link-local and other
/// special ranges are refused unless listed in `allow` (same table as TURN peers).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboundConfig {
    /// CIDRs that outbound requests may reach even though they are private
    /// (`SIGHTLINE_OUTBOUND__ALLOW="10.0.0.0/8,127.0.0.1/32"` or `--allow-outbound`).
    #[serde(deserialize_with = "cidr_list")]
    pub allow: Vec<ipnet::IpNet>,
}

fn cidr_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(d)? {
        Raw::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect(),
        Raw::Many(v) => v,
    };
    items
        .iter()
        .map(|s| parse_cidr(s).map_err(serde::de::Error::custom))
        .collect()
}

/// Parses `10.0.0.0/8` or a bare address (a /32 or /128).
pub fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is not a CIDR such as 10.0.0.0/8"))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OutboxConfig {
    /// How often the worker looks for due deliveries when nothing woke it, in ms.
    pub poll_interval_ms: u64,
    /// First retry delay in ms; doubles per attempt (with jitter) up to `max_delay_ms`.
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// After this many failed attempts a delivery is dead-lettered.
    pub max_attempts: u32,
    /// A delivery older than this (seconds since enqueue or manual retry) is dead-lettered.
    pub max_age_secs: u64,
    /// Timeout of one delivery attempt, in ms.
    pub request_timeout_ms: u64,
    /// Deliveries in flight at once (different sessions; one session is always in order).
    pub concurrency: usize,
    /// A post that carries a join link (the customer's link, the agent's private note) and
    /// has not gone out this many seconds after it was queued is dead-lettered instead of
    /// sent: a link arriving much later confuses more than it helps.
    pub link_post_max_age_secs: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 250,
            base_delay_ms: 1000,
            max_delay_ms: 5 * 60 * 1000,
            max_attempts: 25,
            max_age_secs: 48 * 3600,
            request_timeout_ms: 10_000,
            concurrency: 16,
            link_post_max_age_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (only for a relay on a trusted network or tests).
    None,
    /// Upgrade with STARTTLS (required).
    Starttls,
    /// Implicit TLS (SMTPS, usually port 465).
    Tls,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MailConfig {
    /// SMTP host; e-mail invites are disabled while unset.
    pub host: Option<String>,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    #[serde(serialize_with = "ser_secret_opt")]
    pub password: Option<SecretString>,
    /// Read `mail.password` from this file.
    pub password_file: Option<PathBuf>,
    /// The From address, e.g. `Sightline <video@example.com>`.
    pub from: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            password_file: None,
            from: "Sightline <sightline@localhost>".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SignalingConfig {
    /// How long a dropped participant may take to come back before they count as gone.
    pub grace_secs: u64,
    /// Lifetime of the connection credential a page exchanges its link for.
    pub credential_ttl_secs: u64,
    /// Largest accepted WebSocket message in bytes.
    pub max_message_bytes: usize,
    /// Sustained messages per second a connection may send.
    pub rate_per_sec: u32,
    /// Burst of messages above the sustained rate.
    pub rate_burst: u32,
    /// Seconds between server pings.
    pub ping_secs: u64,
    /// Seconds the agents who handed a call over may stay with the new agent (0: leave
    /// at once).
    pub transfer_warm_secs: u64,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            grace_secs: 12,
            credential_ttl_secs: 60,
            max_message_bytes: 64 * 1024,
            rate_per_sec: 40,
            rate_burst: 200,
            ping_secs: 15,
            transfer_warm_secs: 30,
        }
    }
}

/// ICE servers for browsers besides the bundled TURN server (whose URLs are added when
/// it runs). TURN credentials follow the TURN REST scheme with `turn.secret`, so coturn
/// (`use-auth-secret`) or other TURN nodes sharing that secret accept them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IceConfig {
    /// STUN URLs, e.g. `stun:stun.example.com:3478`.
    pub stun_urls: Vec<String>,
    /// External TURN URLs, e.g. `turn:turn.example.com:3478?transport=udp`.
    pub turn_urls: Vec<String>,
    /// Force every call through TURN (`iceTransportPolicy: relay`).
    pub relay_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionsConfig {
    /// How long a session (and its links) lives, in seconds.
    pub ttl_secs: u64,
    /// How often the sweeper ends expired sessions, in seconds.
    pub sweep_interval_secs: u64,
    /// Idempotency keys are remembered this long, in seconds.
    pub idempotency_ttl_secs: u64,
    /// Whether new sessions have a lobby (customers wait until an agent admits them),
    /// when the create request does not say.
    pub lobby: bool,
    /// Most participants a session may have (customer, agents, experts, supervisors;
    /// removed ones do not count), 2 to 12.
    pub max_participants: u32,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 4 * 3600,
            sweep_interval_secs: 30,
            idempotency_ttl_secs: 24 * 3600,
            lobby: false,
            max_participants: 6,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("data"),
            database_url: None,
            secret_key: None,
            secret_key_file: None,
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            max_body_bytes: 64 * 1024,
            bootstrap_api_key: true,
            sessions: SessionsConfig::default(),
            outbound: OutboundConfig::default(),
            outbox: OutboxConfig::default(),
            mail: MailConfig::default(),
            signaling: SignalingConfig::default(),
            ice: IceConfig::default(),
            turn: turn::TurnSettings::default(),
            media: media::MediaSettings::default(),
            embed: EmbedSettings::default(),
            demo: DemoSettings::default(),
            http: HttpConfig::default(),
            metrics: MetricsConfig::default(),
            snapshots: incall::SnapshotsConfig::default(),
            recording: recording::RecordingConfig::default(),
            cluster: None,
        }
    }
}

/// Serializes a secret as `<redacted>` (config dumps never show one).
pub(crate) fn ser_secret_opt<S: serde::Serializer>(
    v: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("<redacted>"),
        None => s.serialize_none(),
    }
}

/// Why a configuration could not be used. The message names the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(Box<figment::Error>),
    #[error("configuration: `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("configuration: cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Values given on the command line; `None` leaves lower layers in force.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CliOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--allow-outbound CIDR` (repeatable): appended to `outbound.allow`.
    #[serde(skip)]
    pub allow_outbound: Vec<ipnet::IpNet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<TurnOverrides>,
}

/// `serve` flags for the bundled TURN server.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TurnOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<Vec<SocketAddr>>,
}

/// The result of loading: the config and warnings to log once logging is up.
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads defaults → `file` → environment → `cli`, then validates.
    pub fn load(file: Option<&Path>, cli: &CliOverrides) -> Result<Loaded, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Io {
                    path: path.to_owned(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Env::prefixed("SIGHTLINE_").split("__").ignore(&[
                "config",
                "turn_secret",
                "allow_outbound",
            ]))
            .merge(
                Env::raw()
                    .only(&["SIGHTLINE_TURN_SECRET"])
                    .map(|_| "turn.secret".into()),
            )
            .merge(Serialized::defaults(cli));
        let warnings = unknown_keys(&figment);
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config
            .outbound
            .allow
            .extend(cli.allow_outbound.iter().copied());
        config.resolve_secret_files()?;
        config.validate()?;
        Ok(Loaded { config, warnings })
    }

    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.secret_key_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            self.secret_key = Some(SecretString::from(text.trim().to_owned()));
        }
        if let Some(path) = &self.turn.secret_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            self.turn.secret = Some(SecretString::from(text.trim().to_owned()));
        }
        if let Some(path) = &self.metrics.token_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            self.metrics.token = Some(SecretString::from(text.trim().to_owned()));
        }
        if let Some(path) = &self.mail.password_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            self.mail.password = Some(SecretString::from(text.trim().to_owned()));
        }
        if let Some(c) = &mut self.cluster
            && let Some(path) = &c.broker_url_file
        {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            c.broker_url = Some(SecretString::from(text.trim().to_owned()));
        }
        Ok(())
    }

    /// Checks every value once; the error names the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url {
            validate_public_url(url)?;
        }
        if let Some(key) = &self.secret_key
            && key.expose_secret().len() < 32
        {
            return Err(invalid("secret_key", "must be at least 32 characters"));
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > 16 * 1024 * 1024 {
            return Err(invalid(
                "max_body_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        if self.sessions.ttl_secs < 60 || self.sessions.ttl_secs > 30 * 24 * 3600 {
            return Err(invalid(
                "sessions.ttl_secs",
                "must be between 60 and 2592000 (30 days)",
            ));
        }
        if !(2..=12).contains(&self.sessions.max_participants) {
            return Err(invalid(
                "sessions.max_participants",
                "must be between 2 and 12",
            ));
        }
        if self.sessions.sweep_interval_secs == 0 || self.sessions.sweep_interval_secs > 3600 {
            return Err(invalid(
                "sessions.sweep_interval_secs",
                "must be between 1 and 3600",
            ));
        }
        let o = &self.outbox;
        if o.poll_interval_ms == 0 || o.poll_interval_ms > 60_000 {
            return Err(invalid(
                "outbox.poll_interval_ms",
                "must be between 1 and 60000",
            ));
        }
        if o.base_delay_ms == 0 || o.max_delay_ms < o.base_delay_ms {
            return Err(invalid(
                "outbox.max_delay_ms",
                "base_delay_ms must be ≥ 1 and max_delay_ms ≥ base_delay_ms",
            ));
        }
        if o.link_post_max_age_secs == 0 {
            return Err(invalid(
                "outbox.link_post_max_age_secs",
                "must be at least 1",
            ));
        }
        if o.max_attempts == 0 || o.max_age_secs == 0 {
            return Err(invalid("outbox.max_attempts", "limits must be at least 1"));
        }
        if o.request_timeout_ms < 10 || o.concurrency == 0 || o.concurrency > 256 {
            return Err(invalid(
                "outbox.request_timeout_ms",
                "timeout must be ≥ 10 ms and concurrency between 1 and 256",
            ));
        }
        if self
            .mail
            .host
            .as_deref()
            .is_some_and(|h| h.trim().is_empty())
        {
            return Err(invalid("mail.host", "must not be empty when set"));
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "mail.from",
                "is not a mailbox such as `Name <a@b.example>`",
            ));
        }
        self.validate_media()?;
        self.validate_http()?;
        self.snapshots.validate()?;
        self.recording.validate()?;
        self.turn.validate().map_err(|m| invalid("turn", m))?;
        self.media
            .validate()
            .map_err(|(key, message)| invalid(key, message))?;
        if let Some(c) = &self.cluster {
            c.validate(self.database_url.as_deref(), self.signaling.grace_secs)
                .map_err(|(key, message)| invalid(key, message))?;
        }
        if self.log_level.trim().is_empty() {
            return Err(invalid("log_level", "must not be empty"));
        }
        Ok(())
    }

    fn validate_http(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        for (key, v) in [
            ("http.header_timeout_ms", h.header_timeout_ms),
            ("http.idle_timeout_ms", h.idle_timeout_ms),
            ("http.body_timeout_ms", h.body_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&v) {
                return Err(invalid(key, "must be between 100 and 3600000 (one hour)"));
            }
        }
        if h.max_connections.is_some_and(|n| n == 0) {
            return Err(invalid("http.max_connections", "must be at least 1"));
        }
        if h.max_connections_per_ip.is_some_and(|n| n == 0) {
            return Err(invalid("http.max_connections_per_ip", "must be at least 1"));
        }
        if self
            .metrics
            .token
            .as_ref()
            .is_some_and(|t| t.expose_secret().trim().len() < 16)
        {
            return Err(invalid("metrics.token", "must be at least 16 characters"));
        }
        Ok(())
    }

    fn validate_media(&self) -> Result<(), ConfigError> {
        let s = &self.signaling;
        if !(2..=300).contains(&s.grace_secs) {
            return Err(invalid("signaling.grace_secs", "must be between 2 and 300"));
        }
        if s.transfer_warm_secs > 600 {
            return Err(invalid(
                "signaling.transfer_warm_secs",
                "must be at most 600",
            ));
        }
        if !(10..=3600).contains(&s.credential_ttl_secs) {
            return Err(invalid(
                "signaling.credential_ttl_secs",
                "must be between 10 and 3600",
            ));
        }
        if !(4096..=1024 * 1024).contains(&s.max_message_bytes) {
            return Err(invalid(
                "signaling.max_message_bytes",
                "must be between 4096 and 1048576",
            ));
        }
        if s.rate_per_sec == 0 || s.rate_burst == 0 {
            return Err(invalid(
                "signaling.rate_per_sec",
                "rate_per_sec and rate_burst must be positive",
            ));
        }
        if !(1..=300).contains(&s.ping_secs) {
            return Err(invalid("signaling.ping_secs", "must be between 1 and 300"));
        }
        for u in &self.ice.stun_urls {
            if !u.starts_with("stun:") && !u.starts_with("stuns:") {
                return Err(invalid(
                    "ice.stun_urls",
                    format!("`{u}` is not a stun: URL"),
                ));
            }
        }
        for u in &self.ice.turn_urls {
            if !u.starts_with("turn:") && !u.starts_with("turns:") {
                return Err(invalid(
                    "ice.turn_urls",
                    format!("`{u}` is not a turn: URL"),
                ));
            }
        }
        Ok(())
    }

    /// The base URL links are built from, without a trailing slash.
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("sightline.db").display()
            ),
        }
    }
}

/// The host part of a URL such as `https://video.example.com:8443/x`.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().map(str::to_owned);
    }
    authority
        .split(':')
        .next()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

fn validate_public_url(url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("public_url", "must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(invalid("public_url", "has no host"));
    }
    if url.contains(['?', '#', ' ']) {
        return Err(invalid(
            "public_url",
            "must not contain a query, fragment or space",
        ));
    }
    Ok(())
}

/// Keys that are set somewhere but that no setting reads: a typo should not pass silently.
fn unknown_keys(figment: &Figment) -> Vec<String> {
    let known = match serde_json::to_value(Config::default()) {
        Ok(v) => v,
        Err(_) => return Vec::new(),
    };
    let Ok(given) = figment.extract::<serde_json::Value>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk_unknown(&given, &known, "", &mut out);
    out
}

fn walk_unknown(
    given: &serde_json::Value,
    known: &serde_json::Value,
    prefix: &str,
    out: &mut Vec<String>,
) {
    let (Some(g), Some(k)) = (given.as_object(), known.as_object()) else {
        return;
    };
    for (key, value) in g {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match k.get(key) {
            None => out.push(format!("unknown configuration key `{path}` is ignored")),
            Some(kv) => walk_unknown(value, kv, &path, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn max_participants_is_bounded() {
        for (n, ok) in [(1, false), (2, true), (6, true), (12, true), (13, false)] {
            let mut c = Config::default();
            c.sessions.max_participants = n;
            let r = c.validate();
            assert_eq!(r.is_ok(), ok, "{n}");
            if let Err(e) = r {
                assert!(e.to_string().contains("sessions.max_participants"), "{e}");
            }
        }
        assert_eq!(Config::default().sessions.max_participants, 6);
        assert!(!Config::default().sessions.lobby);
    }

    #[test]
    fn bad_public_url_names_the_key() {
        let err = validate_public_url("ftp://x").unwrap_err().to_string();
        assert!(err.contains("public_url"), "{err}");
        assert!(validate_public_url("https://video.example.com").is_ok());
        assert!(validate_public_url("https://").is_err());
        assert!(validate_public_url("https://a.example/?x=1").is_err());
    }

    #[test]
    fn unknown_keys_are_reported() {
        let fig = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(
            "listen = \"127.0.0.1:1\"\nlisten_addr = 1\n[sessions]\nttl = 5\n",
        ));
        let warnings = unknown_keys(&fig);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("listen_addr"));
        assert!(warnings[1].contains("sessions.ttl"));
    }
}
