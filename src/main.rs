//! The `sightline` command: a thin shim over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use sightline::config::{CliOverrides, Config, Loaded, TurnOverrides};
use sightline::store::{self as storage, apikeys};
use sightline::{Application, telemetry};

// Many short-lived allocations per request (JSON, SQL, headers): mimalloc keeps them
// thread-local where glibc's malloc spent ~15% of a create's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sightline: one-click video calls for contact-center chats, with a bundled TURN relay.
#[derive(Parser)]
#[command(name = "sightline", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (HTTP API, join pages, signaling).
    Serve(ConfigArgs),
    /// Apply database migrations and exit.
    Migrate(ConfigArgs),
    /// Manage API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Manage agent tokens (minted by `POST /api/v1/agent-tokens`).
    #[command(subcommand)]
    AgentToken(AgentTokenCommand),
    /// Run only the TURN relay (for extra relay nodes sharing the credential secret).
    Turn(sightline_turn::cli::TurnArgs),
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key and print it once (it is stored only as a hash).
    Create {
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List API keys (never their secrets).
    List(ConfigArgs),
    /// Revoke an API key by id or name.
    Revoke {
        /// The key's id or name.
        id_or_name: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Subcommand)]
enum AgentTokenCommand {
    /// List the most recent agent tokens (ids, agents, keys, expiry, state; never tokens).
    List(ConfigArgs),
    /// Revoke an agent token by its id, or every live token of an agent; running servers
    /// refuse them within a second.
    Revoke {
        /// The token's id (the `id` of the mint response).
        #[arg(required_unless_present = "agent", conflicts_with = "agent")]
        id: Option<String>,
        /// Revoke every live token of this agent id instead.
        #[arg(long, value_name = "AGENT_ID", allow_hyphen_values = true)]
        agent: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// TOML configuration file. Precedence: defaults < file < SIGHTLINE_* env < flags.
    #[arg(long, env = "SIGHTLINE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on for HTTP [default: 127.0.0.1:8080] (env SIGHTLINE_LISTEN).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Directory for the SQLite database and generated secrets [default: ./data]
    /// (env SIGHTLINE_DATA_DIR).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Base URL join links are built from, e.g. https://video.example.com
    /// [default: http://ADDR] (env SIGHTLINE_PUBLIC_URL).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Database URL (sqlite://… or, with the `postgres` feature, postgres://…)
    /// [default: sqlite in DIR] (env SIGHTLINE_DATABASE_URL).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Address for the bundled TURN server, UDP and TCP (repeatable)
    /// [default: 127.0.0.1:3478] (config `turn.listen`).
    #[arg(long = "turn-listen", value_name = "ADDR")]
    turn_listen: Vec<std::net::SocketAddr>,
    /// Do not start the bundled TURN server (config `turn.enabled = false`).
    #[arg(long = "no-turn")]
    no_turn: bool,
    /// Let outbound webhooks reach this private CIDR (repeatable, or comma-separated in
    /// SIGHTLINE_ALLOW_OUTBOUND), e.g. 10.0.0.0/8 for a chat platform on the LAN.
    #[arg(long, value_name = "CIDR", env = "SIGHTLINE_ALLOW_OUTBOUND", value_delimiter = ',',
          value_parser = parse_cidr_arg)]
    allow_outbound: Vec<ipnet::IpNet>,
}

fn parse_cidr_arg(s: &str) -> Result<ipnet::IpNet, String> {
    sightline::config::parse_cidr(s)
}

impl ConfigArgs {
    fn load(&self) -> Result<Loaded, String> {
        let cli = CliOverrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            public_url: self.public_url.clone(),
            database_url: self.database_url.clone(),
            turn: (self.no_turn || !self.turn_listen.is_empty()).then(|| TurnOverrides {
                enabled: self.no_turn.then_some(false),
                listen: (!self.turn_listen.is_empty()).then(|| self.turn_listen.clone()),
            }),
            allow_outbound: self.allow_outbound.clone(),
        };
        Config::load(self.config.as_deref(), &cli).map_err(|e| e.to_string())
    }
}

fn load_or_exit(args: &ConfigArgs) -> Result<Config, ExitCode> {
    match args.load() {
        Ok(Loaded { config, warnings }) => {
            telemetry::init(config.log_format, &config.log_level);
            for w in warnings {
                tracing::warn!("{w}");
            }
            Ok(config)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

async fn open_db(config: &Config) -> anyhow::Result<sea_orm::DatabaseConnection> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let db = storage::connect(&config.database_url()).await?;
    storage::migrate(&db).await?;
    Ok(db)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    if let Some(key) = app.bootstrap_key() {
        show_bootstrap_key(key, &app.state().config.data_dir)?;
    }
    let public = app.state().public_url.clone();
    tracing::info!(url = %app.base_url(), public_url = %public, "sightline is serving");
    println!(
        "Sightline is serving on {} (public URL {public}; API docs at {public}/api/docs)",
        app.base_url()
    );
    let stop = app.stop_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    app.run_until_stopped().await
}

/// Hands the first API key to the operator without putting it in the logs: on the
/// terminal when stdout is one, otherwise in a file only the owner can read (its path is
/// logged, never the key).
fn show_bootstrap_key(key: &str, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        println!(
            "\n  First start: an API key was created for you. It is shown only this once:\n\n    {key}\n\n  Use it as `Authorization: Bearer <key>`. Create more with `sightline api-key create --name NAME`.\n"
        );
        return Ok(());
    }
    let path = sightline::app::save_bootstrap_key(data_dir, key)?;
    tracing::warn!(
        path = %path.display(),
        "first start: an API key was created and written to this file (mode 0600); \
         read it, keep it elsewhere and delete the file"
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    sightline::install_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => match load_or_exit(&args) {
            Ok(c) => serve(c).await,
            Err(code) => return code,
        },
        Command::Migrate(args) => match load_or_exit(&args) {
            Ok(c) => open_db(&c).await.map(|_| println!("migrations applied")),
            Err(code) => return code,
        },
        Command::ApiKey(cmd) => api_key(cmd).await,
        Command::AgentToken(cmd) => agent_token(cmd).await,
        Command::Turn(args) => {
            telemetry::init(sightline::config::LogFormat::Pretty, "info");
            sightline_turn::cli::run(args).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn api_key(cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    match cmd {
        ApiKeyCommand::Create { name, config } => {
            let Ok(c) = load_or_exit(&config) else {
                anyhow::bail!("invalid configuration");
            };
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 100,
                "--name must be 1 to 100 characters"
            );
            let db = open_db(&c).await?;
            let key = apikeys::create(&db, name, now).await?;
            eprintln!(
                "API key `{}` (id {}) created. It is shown only this once:",
                key.name, key.id
            );
            println!("{}", key.secret);
        }
        ApiKeyCommand::List(config) => {
            let Ok(c) = load_or_exit(&config) else {
                anyhow::bail!("invalid configuration");
            };
            let db = open_db(&c).await?;
            for k in apikeys::list(&db).await? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let last_used = k.last_used_at.map_or_else(
                    || "never used".to_owned(),
                    |t| format!("last used {}", t.to_rfc3339()),
                );
                println!(
                    "{}\t{}\t{}…\t{}\t{}\t{}",
                    k.id,
                    k.name,
                    k.prefix,
                    k.created_at.to_rfc3339(),
                    state,
                    last_used
                );
            }
        }
        ApiKeyCommand::Revoke { id_or_name, config } => {
            let Ok(c) = load_or_exit(&config) else {
                anyhow::bail!("invalid configuration");
            };
            let db = open_db(&c).await?;
            anyhow::ensure!(
                apikeys::revoke(&db, &id_or_name, now).await?,
                "no active key with that id or name"
            );
            println!("revoked");
        }
    }
    Ok(())
}

async fn agent_token(cmd: AgentTokenCommand) -> anyhow::Result<()> {
    use sightline::store::agent_tokens as store;
    let now = chrono::Utc::now();
    match cmd {
        AgentTokenCommand::List(config) => {
            let Ok(c) = load_or_exit(&config) else {
                anyhow::bail!("invalid configuration");
            };
            let db = open_db(&c).await?;
            for t in store::list(&db, 1000).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.expires_at <= now {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\tkey {}\t{}\texpires {}\t{}",
                    t.id,
                    t.agent_id,
                    t.api_key_id,
                    t.created_at.to_rfc3339(),
                    t.expires_at.to_rfc3339(),
                    state
                );
            }
        }
        AgentTokenCommand::Revoke { id, agent, config } => {
            let Ok(c) = load_or_exit(&config) else {
                anyhow::bail!("invalid configuration");
            };
            let target = match (id, agent) {
                (Some(id), None) => store::Target::Token(id.trim().to_owned()),
                (None, Some(agent)) => store::Target::Agent(agent),
                _ => anyhow::bail!("give a token id or --agent AGENT_ID"),
            };
            let db = open_db(&c).await?;
            let n = store::revoke(&db, &target, now).await?;
            anyhow::ensure!(n > 0, "no live agent token matches");
            println!("revoked {n}");
        }
    }
    Ok(())
}
