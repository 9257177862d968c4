//! Recording control: a session's recording mode and state, and every participant's
//! consent decision (who, when, which wording, from where).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    /// `off`, `always`, `on_demand`; null: the server's `[recording] mode`.
    RecordingMode,
    /// `off`, `recording`, `paused`, `stopped`; null: never started.
    RecordingState,
}

#[derive(DeriveIden)]
enum RecordingConsents {
    Table,
    Id,
    SessionId,
    ParticipantId,
    /// `given`, `declined`, `withdrawn`.
    Decision,
    At,
    WordingVersion,
    Ip,
    UserAgent,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for col in [Sessions::RecordingMode, Sessions::RecordingState] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(ColumnDef::new(col).string().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(RecordingConsents::Table)
                    .col(
                        ColumnDef::new(RecordingConsents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(RecordingConsents::SessionId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RecordingConsents::ParticipantId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RecordingConsents::Decision)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RecordingConsents::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(RecordingConsents::WordingVersion)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RecordingConsents::Ip).string().null())
                    .col(ColumnDef::new(RecordingConsents::UserAgent).string().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(RecordingConsents::Table, RecordingConsents::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recording_consents_session")
                    .table(RecordingConsents::Table)
                    .col(RecordingConsents::SessionId)
                    .col(RecordingConsents::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(RecordingConsents::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        for col in [Sessions::RecordingState, Sessions::RecordingMode] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
