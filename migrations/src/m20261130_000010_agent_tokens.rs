//! Agent tokens are recorded when minted, so one can be revoked on its own (and every
//! token of an agent, or of an API key, can be found).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AgentTokens {
    Table,
    Id,
    ApiKeyId,
    AgentId,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AgentTokens::Table)
                    .col(
                        ColumnDef::new(AgentTokens::Id)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AgentTokens::ApiKeyId).string().not_null())
                    .col(ColumnDef::new(AgentTokens::AgentId).string().not_null())
                    .col(
                        ColumnDef::new(AgentTokens::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentTokens::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AgentTokens::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_tokens_agent")
                    .table(AgentTokens::Table)
                    .col(AgentTokens::AgentId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agent_tokens_expiry")
                    .table(AgentTokens::Table)
                    .col(AgentTokens::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(AgentTokens::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
