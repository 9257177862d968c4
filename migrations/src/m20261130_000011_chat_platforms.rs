//! Chat platforms that talk back: the platform's id of a delivered message, the dashboard
//! app's agent sign-ins (a reference, never the agent's Chatwoot token), and where a
//! Matrix bot's `/sync` left off.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    RemoteId,
}

#[derive(DeriveIden)]
enum ChatwootAppSessions {
    Table,
    /// SHA-256 (hex) of the random reference the agent's cookie carries.
    Id,
    IntegrationId,
    AgentId,
    AgentName,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum MatrixSyncCursors {
    Table,
    IntegrationId,
    Cursor,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(ColumnDef::new(Outbox::RemoteId).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ChatwootAppSessions::Table)
                    .col(
                        ColumnDef::new(ChatwootAppSessions::Id)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ChatwootAppSessions::IntegrationId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ChatwootAppSessions::AgentId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ChatwootAppSessions::AgentName)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ChatwootAppSessions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ChatwootAppSessions::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MatrixSyncCursors::Table)
                    .col(
                        ColumnDef::new(MatrixSyncCursors::IntegrationId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(MatrixSyncCursors::Cursor)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MatrixSyncCursors::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            MatrixSyncCursors::Table.into_iden(),
            ChatwootAppSessions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::RemoteId)
                    .to_owned(),
            )
            .await
    }
}
