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
    sightline_turn::cli::run(Cmd::parse().turn).await
}
