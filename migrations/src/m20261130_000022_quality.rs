//! Call quality reported by the pages every 5 s (`stats`): one small row per report and
//! participant, for the report page's chart and verdict.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum QualitySamples {
    Table,
    Id,
    SessionId,
    ParticipantId,
    At,
    LossPermille,
    JitterMs,
    RttMs,
    Kbps,
    Fps,
    Freezes,
    Limitation,
    Level,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let int = |c: QualitySamples| ColumnDef::new(c).integer().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(QualitySamples::Table)
                    .col(
                        ColumnDef::new(QualitySamples::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(QualitySamples::SessionId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(QualitySamples::ParticipantId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(QualitySamples::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(int(QualitySamples::LossPermille))
                    .col(int(QualitySamples::JitterMs))
                    .col(int(QualitySamples::RttMs))
                    .col(int(QualitySamples::Kbps))
                    .col(int(QualitySamples::Fps))
                    .col(int(QualitySamples::Freezes))
                    .col(
                        ColumnDef::new(QualitySamples::Limitation)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(QualitySamples::Level).string().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(QualitySamples::Table, QualitySamples::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_quality_samples_session")
                    .table(QualitySamples::Table)
                    .col(QualitySamples::SessionId)
                    .col(QualitySamples::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(QualitySamples::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
