//! Database migrations, one file per migration, portable across SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_core;
mod m20261122_000002_outbox;
mod m20261122_000003_outbox_lease;
mod m20261130_000004_multiparty;
mod m20261130_000010_agent_tokens;
mod m20261130_000011_chat_platforms;
mod m20261130_000020_chat;
mod m20261130_000021_snapshots;
mod m20261130_000022_quality;
mod m20261130_000023_ratings;
mod m20261130_000024_cluster_leases;
mod m20261130_000025_media_mode;
mod m20261130_000026_recordings;
mod m20261130_000027_recording_control;
mod m20261130_000028_server_quality;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_core::Migration),
            Box::new(m20261122_000002_outbox::Migration),
            Box::new(m20261122_000003_outbox_lease::Migration),
            Box::new(m20261130_000004_multiparty::Migration),
            Box::new(m20261130_000010_agent_tokens::Migration),
            Box::new(m20261130_000011_chat_platforms::Migration),
            Box::new(m20261130_000020_chat::Migration),
            Box::new(m20261130_000021_snapshots::Migration),
            Box::new(m20261130_000022_quality::Migration),
            Box::new(m20261130_000023_ratings::Migration),
            Box::new(m20261130_000024_cluster_leases::Migration),
            Box::new(m20261130_000025_media_mode::Migration),
            Box::new(m20261130_000026_recordings::Migration),
            Box::new(m20261130_000027_recording_control::Migration),
            Box::new(m20261130_000028_server_quality::Migration),
        ]
    }
}
