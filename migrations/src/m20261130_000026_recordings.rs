//! Recordings at rest (issue 14): one row per recorded file (the bytes are in encrypted
//! files under `recording.dir`), each session's recording key wrapped by the master key
//! (deleting the row shreds the session's recordings), and legal holds that stop
//! retention and erasure.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Recordings {
    Table,
    Id,
    SessionId,
    ParticipantId,
    Status,
    StartedAtMs,
    EndedAt,
    DurationMs,
    Bytes,
    Sha256,
    Codecs,
    ContentType,
    RelPath,
    Failure,
    CreatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum SessionKeys {
    Table,
    SessionId,
    Wrapped,
    CreatedAt,
}

#[derive(DeriveIden)]
enum LegalHolds {
    Table,
    SessionId,
    Reason,
    CreatedAt,
    CreatedBy,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
}

fn to_session(table: impl IntoTableRef, col: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, col)
        .to(Sessions::Table, Sessions::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Recordings::Table)
                    .col(
                        ColumnDef::new(Recordings::Id)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Recordings::SessionId).string().not_null())
                    .col(
                        ColumnDef::new(Recordings::ParticipantId)
                            .string()
                            .not_null(),
                    )
                    // writing | ready | failed | interrupted | deleted
                    .col(ColumnDef::new(Recordings::Status).string().not_null())
                    // Wall-clock time of the file's time zero, ms since the Unix epoch.
                    .col(
                        ColumnDef::new(Recordings::StartedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Recordings::EndedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(Recordings::DurationMs).big_integer().null())
                    .col(
                        ColumnDef::new(Recordings::Bytes)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Recordings::Sha256).string().null())
                    .col(
                        ColumnDef::new(Recordings::Codecs)
                            .string()
                            .not_null()
                            .default(""),
                    )
                    .col(ColumnDef::new(Recordings::ContentType).string().not_null())
                    .col(ColumnDef::new(Recordings::RelPath).string().not_null())
                    .col(ColumnDef::new(Recordings::Failure).string().null())
                    .col(
                        ColumnDef::new(Recordings::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Recordings::DeletedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(&mut to_session(Recordings::Table, Recordings::SessionId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recordings_session")
                    .table(Recordings::Table)
                    .col(Recordings::SessionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recordings_status")
                    .table(Recordings::Table)
                    .col(Recordings::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SessionKeys::Table)
                    .col(
                        ColumnDef::new(SessionKeys::SessionId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SessionKeys::Wrapped).blob().not_null())
                    .col(
                        ColumnDef::new(SessionKeys::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(&mut to_session(SessionKeys::Table, SessionKeys::SessionId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LegalHolds::Table)
                    .col(
                        ColumnDef::new(LegalHolds::SessionId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(LegalHolds::Reason).text().not_null())
                    .col(
                        ColumnDef::new(LegalHolds::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(LegalHolds::CreatedBy).string().not_null())
                    .foreign_key(&mut to_session(LegalHolds::Table, LegalHolds::SessionId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            LegalHolds::Table.into_iden(),
            SessionKeys::Table.into_iden(),
            Recordings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
