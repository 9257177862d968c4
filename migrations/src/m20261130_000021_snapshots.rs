//! Photos taken during a call ("show me", frame captures), stored in the database with
//! their SHA-256: one place to back up, erase with the session (cascade), and reach from
//! every node sharing the database.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Snapshots {
    Table,
    Id,
    SessionId,
    ParticipantId,
    Kind,
    ContentType,
    Size,
    Sha256,
    Data,
    CreatedAt,
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
                    .table(Snapshots::Table)
                    .col(
                        ColumnDef::new(Snapshots::Id)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Snapshots::SessionId).string().not_null())
                    .col(ColumnDef::new(Snapshots::ParticipantId).string().not_null())
                    .col(ColumnDef::new(Snapshots::Kind).string().not_null())
                    .col(ColumnDef::new(Snapshots::ContentType).string().not_null())
                    .col(ColumnDef::new(Snapshots::Size).big_integer().not_null())
                    .col(ColumnDef::new(Snapshots::Sha256).string().not_null())
                    .col(ColumnDef::new(Snapshots::Data).blob().not_null())
                    .col(
                        ColumnDef::new(Snapshots::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Snapshots::Table, Snapshots::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_snapshots_session")
                    .table(Snapshots::Table)
                    .col(Snapshots::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Snapshots::Table).if_exists().to_owned())
            .await
    }
}
