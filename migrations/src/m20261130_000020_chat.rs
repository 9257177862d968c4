//! Text chat inside a call (issue 15): every message a page sent over signaling, kept for
//! the API and the report page. `internal` marks messages only staff saw (from a
//! listening or whispering supervisor).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChatMessages {
    Table,
    Id,
    SessionId,
    ParticipantId,
    Role,
    DisplayName,
    Text,
    Internal,
    At,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChatMessages::Table)
                    .col(
                        ColumnDef::new(ChatMessages::Id)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ChatMessages::SessionId).string().not_null())
                    .col(
                        ColumnDef::new(ChatMessages::ParticipantId)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ChatMessages::Role).string().not_null())
                    .col(
                        ColumnDef::new(ChatMessages::DisplayName)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(ChatMessages::Text).text().not_null())
                    .col(
                        ColumnDef::new(ChatMessages::Internal)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(ChatMessages::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ChatMessages::Table, ChatMessages::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_messages_session")
                    .table(ChatMessages::Table)
                    .col(ChatMessages::SessionId)
                    .col(ChatMessages::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ChatMessages::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
