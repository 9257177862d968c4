//! `Application::build` wires everything from a [`Config`] and binds the listeners (port 0
//! allowed); tests and `main` use the same builder.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::state::{AppState, Keys, Relay};
use crate::metrics::Metrics;
use crate::relay;
use crate::store::{self as storage, apikeys};
use sightline_turn::TurnServer;

pub struct Application {
    http_addr: SocketAddr,
    state: AppState,
    stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
    bootstrap_key: Option<String>,
    /// Writes routed calls' recordings; every open file is finished on shutdown.
    recorder: Option<crate::recording::Recorder>,
}

/// Reads the master secret from config, or from `{data_dir}/secret.key`, creating it
/// (0600) on first start.
fn master_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = &config.secret_key {
        return Ok(s.expose_secret().as_bytes().to_vec());
    }
    let path = config.data_dir.join("secret.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let bytes = STANDARD
            .decode(text.trim())
            .with_context(|| format!("{} is not base64", path.display()))?;
        anyhow::ensure!(
            bytes.len() >= 32,
            "{} holds fewer than 32 bytes",
            path.display()
        );
        return Ok(bytes);
    }
    let mut bytes = vec![0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    write_private(&path, STANDARD.encode(&bytes).as_bytes())?;
    Ok(bytes)
}

/// Name of the file the first API key is written to when there is no terminal to show
/// it on.
pub const BOOTSTRAP_KEY_FILE: &str = "bootstrap-api-key";

/// Writes the first API key to `{data_dir}/bootstrap-api-key`, readable only by the
/// owner (0600), replacing a stale file from an earlier database; returns its path.
pub fn save_bootstrap_key(data_dir: &Path, key: &str) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let path = data_dir.join(BOOTSTRAP_KEY_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("replacing {}", path.display())),
    }
    write_private(&path, format!("{key}\n").as_bytes())?;
    Ok(path)
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

impl Application {
    /// Opens the database (migrating it), binds HTTP, starts background tasks.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_inner(config, None).await
    }

    /// [`build`](Self::build) with the recording tap given: what is told, per participant,
    /// when their media starts or stops being recorded.
    /// (Tests: the recorder is not started; the tap sees every change instead.)
    pub async fn build_with_tap(
        config: Config,
        tap: Arc<dyn crate::services::recording_control::RecordingTap>,
    ) -> anyhow::Result<Self> {
        Self::build_inner(config, Some(tap)).await
    }

    async fn build_inner(
        config: Config,
        tap: Option<Arc<dyn crate::services::recording_control::RecordingTap>>,
    ) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        config.validate()?;
        if config.database_url.is_none() || config.secret_key.is_none() {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("creating data directory {}", config.data_dir.display())
            })?;
        }
        let db = storage::connect(&config.database_url())
            .await
            .context("opening the database")?;
        storage::migrate(&db)
            .await
            .context("migrating the database")?;
        let keys = Keys::new(&master_secret(&config)?);
        let (recording_master, warning) = crate::recording::keys::MasterKey::load(
            config.recording.master_key_file.as_deref(),
            &config.data_dir,
        )
        .context("loading the recording master key")?;
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        let export_key = crate::services::compliance::ExportKey::load(
            config.recording.export_key_file.as_deref(),
            &config.data_dir,
        )
        .context("loading the export signing key")?;
        let recordings = Arc::new(crate::recording::files::RecordingFiles::new(
            db.clone(),
            config.recording.dir(&config.data_dir),
            recording_master,
            config.recording.fsync,
        ));
        // Recordings left `writing` by a previous run of this server. (In a cluster
        // another node may be writing them: left to an operator for now.)
        if config.cluster.is_none() {
            let n = recordings
                .recover()
                .await
                .context("recovering interrupted recordings")?;
            if n > 0 {
                tracing::warn!(
                    recordings = n,
                    "recordings interrupted by the last stop are readable up to their last second"
                );
            }
        }
        let turn_secrets = config.turn.secrets(&keys.derive_secret("turn"));

        let bootstrap_key = if config.bootstrap_api_key && apikeys::list(&db).await?.is_empty() {
            Some(
                apikeys::create(&db, "bootstrap", chrono::Utc::now())
                    .await?
                    .secret,
            )
        } else {
            None
        };

        let nofile = crate::http::listener::raise_nofile_limit();
        let limits = crate::http::listener::limits(&config.http, nofile);
        let metrics = Arc::new(Metrics::new());
        let conns = crate::http::listener::ConnGuard::new(limits, metrics.conns.clone());
        let acceptor = crate::http::listener::GuardedAcceptor::bind(config.listen, conns.clone())
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let http_addr = acceptor
            .local_socket_addr()
            .context("listener has no address")?;
        if let Some(n) = nofile
            && limits.max_connections as u64 > n
        {
            tracing::warn!(
                open_files = n,
                max_connections = limits.max_connections,
                "http.max_connections is above the open-file limit; accept() will fail \
                 before the cap refuses (raise the limit or lower the cap)"
            );
        }
        tracing::info!(
            open_files = nofile,
            max_connections = limits.max_connections,
            max_connections_per_ip = limits.max_connections_per_ip,
            "HTTP connection limits"
        );
        let public_url: Arc<str> = config.public_url_for(http_addr).into();
        let mut config = config;
        let (demo_on, why) = config.demo.resolve(http_addr, config.public_url.as_deref());
        config.demo.enabled = Some(demo_on);
        if demo_on {
            tracing::info!(reason = why, "demo agent desktop on at /demo");
        } else {
            tracing::info!(
                reason = why,
                "demo agent desktop off (demo.enabled = true turns it on)"
            );
        }
        let stop = CancellationToken::new();
        // The media engine first: the bundled TURN server may relay to its address.
        let media = if config.media.enabled {
            let engine = crate::media::MediaEngine::start(&config.media, stop.clone())
                .await
                .map_err(|(key, message)| anyhow::anyhow!("configuration: `{key}`: {message}"))?;
            Some(engine)
        } else {
            None
        };
        let mut revoker = None;
        let relay = if config.turn.enabled {
            let mut turn_config = config
                .turn
                .to_turn_config(turn_secrets.clone())
                .map_err(|m| anyhow::anyhow!("turn: {m}"))?;
            // Clients behind UDP-blocking firewalls reach the engine through TURN: its
            // exact addresses pass the peer policy; other private addresses stay refused.
            if let Some(m) = &media {
                turn_config.allow_peer_addrs.push(m.local_addr());
                if m.announce() != m.local_addr() {
                    turn_config.allow_peer_addrs.push(m.announce());
                }
            }
            let r = relay::revoke::TurnRevoker::new(
                turn_config.revocations.clone(),
                config.turn.credential_ttl_secs,
            );
            // Before the first request can arrive (nothing ends sessions before the
            // background tasks and HTTP start below).
            let n = relay::revoke::load(&db, &r, chrono::Utc::now())
                .await
                .context("loading revoked TURN credentials")?;
            tracing::info!(
                revoked = n,
                "TURN credentials of ended sessions and replaced links are refused"
            );
            revoker = Some(r);
            let server = TurnServer::start(turn_config)
                .await
                .context("starting the bundled TURN server")?;
            let host = config
                .turn
                .public_host
                .clone()
                .or_else(|| relay::host_of(&public_url))
                .unwrap_or_else(|| http_addr.ip().to_string());
            let urls = relay::urls_for(&host, &server, &config.turn.advertise);
            tracing::info!(
                udp = ?server.udp_addrs(),
                tcp = ?server.tcp_addrs(),
                tls = ?server.tls_addrs(),
                "bundled TURN server listening"
            );
            Some(Relay {
                server: Arc::new(server),
                urls,
            })
        } else {
            None
        };
        let timeout = Duration::from_millis(config.outbox.request_timeout_ms);
        let outbound = Arc::new(
            crate::delivery::net::Outbound::new(config.outbound.allow.clone(), timeout)
                .context("building the outbound HTTP client")?,
        );
        let mailer = crate::delivery::email::from_config(&config.mail, timeout)
            .context("configuring SMTP")?
            .map(|m| Arc::new(m) as Arc<dyn crate::delivery::email::Mailer>);
        let ice = crate::relay::ice::IceProvider::new(
            &config.ice,
            &turn_secrets[0],
            Duration::from_secs(config.turn.credential_ttl_secs),
            relay.as_ref().map(|r| r.urls.clone()).unwrap_or_default(),
        );
        let writer_db = crate::store::sqlite_writer::connect_writer(&db)
            .context("opening the session writer's database connection")?;
        let demo_limits = Arc::new(crate::http::pages::demo::DemoLimits::new(&config.demo));
        // The session bus: what happens to a session outside signaling reaches the live
        // rooms and, when the bundled TURN server runs, its revocations.
        use crate::services::bus::{Fanout, SessionBus};
        let mut beyond_rooms: Vec<Arc<dyn SessionBus>> = Vec::new();
        // The chat transcript goes to the conversation when the call ends.
        beyond_rooms.push(Arc::new(crate::delivery::transcript::TranscriptOnEnd {
            db: db.clone(),
        }));
        if let Some(revoker) = &revoker {
            beyond_rooms.push(Arc::new(relay::revoke::RevokeOnSignal {
                db: db.clone(),
                revoker: revoker.clone(),
            }));
        }
        let local_beyond: Arc<dyn SessionBus> = Arc::new(Fanout(beyond_rooms));
        // A cluster node also tells the other nodes (their rooms and TURN servers).
        let node = match &config.cluster {
            Some(c) => Some(crate::cluster::Node::connect(c, &metrics.registry).await?),
            None => None,
        };
        let beyond_rooms: Arc<dyn SessionBus> = match &node {
            Some(n) => Arc::new(Fanout(vec![
                local_beyond.clone(),
                Arc::new(crate::cluster::bus::Broadcast(n.clone())),
            ])),
            None => local_beyond.clone(),
        };
        // The recorder writes what the engine's tap hands it into the encrypted files.
        let recorder = match (&tap, &media) {
            (None, Some(m)) => Some(
                crate::recording::Recorder::start(
                    m,
                    recordings.clone() as Arc<dyn crate::recording::contract::SpanStore>,
                )
                .await,
            ),
            _ => None,
        };
        let tap: Arc<dyn crate::services::recording_control::RecordingTap> = match (tap, &recorder)
        {
            (Some(t), _) => t,
            (None, Some(r)) => Arc::new(r.clone()),
            (None, None) => Arc::new(crate::services::recording_control::LoggingTap),
        };
        let recording = Arc::new(crate::services::recording_control::Control {
            db: db.clone(),
            config: config.recording.clone(),
            media: media.as_ref().map(|_| config.media.mode),
            dir: config.recording.dir(&config.data_dir),
            tap,
        });
        let sig = &config.signaling;
        let rooms = crate::signaling::hub::Rooms::new(
            stop.clone(),
            crate::signaling::hub::RoomEnv {
                db: db.clone(),
                config: crate::signaling::room::RoomConfig {
                    grace: Duration::from_secs(sig.grace_secs),
                    transfer_warm: Duration::from_secs(sig.transfer_warm_secs),
                    max_visible: crate::signaling::room::MAX_VISIBLE,
                    media: media.as_ref().map(|_| config.media.mode),
                    max_routed: config.media.max_per_call,
                },
                ended: beyond_rooms.clone(),
                media: media.clone(),
                recording: recording.clone(),
            },
        );
        let bus: Arc<dyn SessionBus> =
            Arc::new(Fanout(vec![Arc::new(rooms.clone()), beyond_rooms]));
        let router = node
            .as_ref()
            .map(|n| crate::cluster::router::Router::new(n.clone(), rooms.clone(), db.clone()));
        let signaling = match &router {
            Some(r) => crate::cluster::Signaling::Cluster(r.clone()),
            None => crate::cluster::Signaling::Local(rooms.clone()),
        };
        let state = AppState {
            config: Arc::new(config),
            creator: crate::store::batch::Creator::start(db.clone(), writer_db, metrics.clone()),
            db,
            keys: Arc::new(keys),
            api_keys: Default::default(),
            agent_tokens: Default::default(),
            demo: demo_limits,
            public_url,
            metrics,
            bus,
            rooms: rooms.clone(),
            signaling,
            cluster: node.clone(),
            conns,
            ice: Arc::new(ice),
            turn_secret: turn_secrets[0].clone().into(),
            relay,
            media,
            outbound,
            recordings,
            export_key: Arc::new(export_key),
            mailer,
            recording,
        };
        let retention = state.config.retention.is_active().then(|| {
            Arc::new(crate::services::recordings::RetentionJob {
                db: state.db.clone(),
                files: state.recordings.clone(),
                cfg: state.config.retention.clone(),
            })
        });
        let sweep_every = Duration::from_secs(state.config.sessions.sweep_interval_secs);
        let sweeper = match &node {
            // One node at a time sweeps: the one holding the sweeper's lease.
            Some(n) => {
                let lease = Arc::new(crate::cluster::TaskLease {
                    db: state.db.clone(),
                    node: n.clone(),
                    name: "sweeper",
                    ttl: (sweep_every * 3).max(Duration::from_secs(10)),
                });
                tokio::spawn(crate::services::sweeper::run_when(
                    state.db.clone(),
                    sweep_every,
                    state.bus.clone(),
                    retention.clone(),
                    stop.clone(),
                    move || {
                        let lease = lease.clone();
                        async move { lease.held().await }
                    },
                ))
            }
            None => tokio::spawn(crate::services::sweeper::run(
                state.db.clone(),
                sweep_every,
                state.bus.clone(),
                retention.clone(),
                stop.clone(),
            )),
        };
        let mut tasks = vec![
            sweeper,
            tokio::spawn(crate::delivery::worker::run(
                state.db.clone(),
                state.config.outbox.clone(),
                senders(&state),
                stop.clone(),
            )),
        ];
        tasks.push(tokio::spawn(crate::delivery::matrix_sync::run(
            crate::delivery::matrix_sync::SyncEnv {
                db: state.db.clone(),
                outbound: state.outbound.clone(),
                calls: crate::services::chat_calls::CallEnv {
                    db: state.db.clone(),
                    creator: state.creator.clone(),
                    ttl: chrono::Duration::seconds(state.config.sessions.ttl_secs as i64),
                    lobby: state.config.sessions.lobby,
                },
                request_timeout: Duration::from_millis(state.config.outbox.request_timeout_ms),
            },
            stop.clone(),
        )));
        if let Some(revoker) = revoker {
            tasks.push(tokio::spawn(relay::revoke::run(revoker, stop.clone())));
        }
        if let (Some(node), Some(router)) = (&node, &router) {
            // Signals from the other nodes reach the rooms and TURN server here only.
            let here: Arc<dyn SessionBus> =
                Arc::new(Fanout(vec![Arc::new(rooms.clone()), local_beyond]));
            tasks.push(crate::cluster::bus::start(node.clone(), here, stop.clone()).await?);
            tasks.extend(router.start(stop.clone()).await?);
            tasks.push(tokio::spawn(node.clone().run_heartbeat(stop.clone())));
        }
        let app = crate::http::routes(state.clone());
        let server_stop = stop.clone();
        let server = tokio::spawn(async move {
            poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    app,
                    async move { server_stop.cancelled().await },
                    Some(Duration::from_secs(10)),
                )
                .await
        });
        Ok(Self {
            http_addr,
            state,
            stop,
            server,
            tasks,
            bootstrap_key,
            recorder,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// `http://ip:port` of the bound HTTP listener.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The API key minted on the first start of an empty database, if any.
    pub fn bootstrap_key(&self) -> Option<&str> {
        self.bootstrap_key.as_deref()
    }

    /// A token that stops the application when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until the application is stopped (by the stop token), then drains.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            stop,
            server,
            tasks,
            state,
            recorder,
            ..
        } = self;
        let result = server.await;
        // Every open recording is finished (flushed, hashed, marked ready) before the
        // database closes.
        if let Some(r) = &recorder {
            r.stop_all().await;
        }
        stop.cancel();
        for t in tasks {
            let _ = t.await;
        }
        let relay = state.relay.clone();
        state.db.clone().close().await.ok();
        drop(state);
        if let Some(r) = relay
            && let Ok(server) = Arc::try_unwrap(r.server)
        {
            server.shutdown().await;
        }
        result.context("server task")?.context("server")?;
        Ok(())
    }

    /// Stops gracefully and waits for everything to finish.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.run_until_stopped().await
    }
}

/// The outbox's senders, one per delivery kind.
fn senders(state: &AppState) -> crate::delivery::senders::Senders {
    use crate::delivery::senders::{Sender, Senders, Sent};
    use crate::delivery::worker::AttemptError;
    use crate::store::outbox::Kind;
    use crate::store::outbox::delivery::Model as Row;

    use crate::delivery::senders::DeliveryEnv;
    struct EventWebhook(DeliveryEnv);
    struct ChatPost(DeliveryEnv);
    struct Email(crate::delivery::email::MailEnv);

    #[async_trait::async_trait]
    impl Sender for EventWebhook {
        async fn send(&self, row: &Row) -> Result<Sent, AttemptError> {
            crate::delivery::webhook::send_event(&self.0, row).await
        }
    }
    #[async_trait::async_trait]
    impl Sender for ChatPost {
        async fn send(&self, row: &Row) -> Result<Sent, AttemptError> {
            crate::delivery::webhook::send_post(&self.0, row).await
        }

        /// A post that was dead-lettered becomes a `delivery.failed` event (a webhook
        /// with the platform's reason), committed with the dead letter.
        async fn failed(
            &self,
            txn: &crate::store::WriteTxn,
            row: &Row,
            reason: &str,
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), sea_orm::DbErr> {
            let Some(sid) = &row.session_id else {
                return Ok(());
            };
            crate::store::timeline::append_event(
                txn,
                sid,
                crate::domain::EventKind::DeliveryFailed,
                None,
                serde_json::json!({
                    "integration_id": row.integration_id,
                    "delivery_id": row.id,
                    "reason": reason,
                }),
                now,
            )
            .await
            .map(|_| ())
        }

        async fn delivered(
            &self,
            txn: &crate::store::WriteTxn,
            row: &Row,
            now: chrono::DateTime<chrono::Utc>,
        ) -> Result<(), sea_orm::DbErr> {
            // Notes for the agents are not the link; only the customer's link is "posted".
            let (Some(sid), None) = (&row.session_id, row.payload.get("note")) else {
                return Ok(());
            };
            crate::store::timeline::append_event(
                txn,
                sid,
                crate::domain::EventKind::SessionLinkPosted,
                None,
                serde_json::json!({
                    "integration_id": row.integration_id,
                    "delivery_id": row.id,
                    "platform_message_id": row.remote_id,
                }),
                now,
            )
            .await
            .map(|_| ())
        }
    }
    #[async_trait::async_trait]
    impl Sender for Email {
        async fn send(&self, row: &Row) -> Result<Sent, AttemptError> {
            crate::delivery::email::send_invite(&self.0, row)
                .await
                .map(|()| Sent::default())
        }
    }

    let env = DeliveryEnv {
        db: state.db.clone(),
        outbound: state.outbound.clone(),
        join_key: Arc::new(state.keys.join.clone()),
        public_url: state.public_url.clone(),
        report_key: Arc::new(state.keys.report.clone()),
        link_post_max_age: Duration::from_secs(state.config.outbox.link_post_max_age_secs),
    };
    let mail = crate::delivery::email::MailEnv {
        links: env.clone(),
        mailer: state.mailer.clone(),
        from: state.config.mail.from.clone(),
    };
    Senders::new()
        .register(Kind::Event, Arc::new(EventWebhook(env.clone())))
        .register(Kind::PostMessage, Arc::new(ChatPost(env.clone())))
        .register(Kind::Email, Arc::new(Email(mail)))
        .register(
            Kind::Transcript,
            Arc::new(crate::delivery::transcript::TranscriptSender(env)),
        )
}
