//! Standalone TURN server binary used by `bench/compare-coturn.sh` (the app
//! exposes the same thing as `sightline turn`).

use clap::Parser;

#[derive(Parser)]
#[command(about = "Sightline TURN server (benchmark binary)")]
struct Cmd {
    #[command(flatten)]
    turn: sightline_turn::cli::TurnArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut cfg = Cmd::parse().turn.into_config()?;
    // Benchmark knob only (not a CLI flag): engine threads per listener.
    if let Some(n) = std::env::var("SIGHTLINE_TURN_ENGINE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.engine_threads = n;
    }
    sightline_turn::cli::run_config(cfg).await
}
