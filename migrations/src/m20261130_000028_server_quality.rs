//! Call quality as the server's media engine measures it in routed calls: one small row
//! per participant, direction and interval (every 5 s), for the report page's charts and
//! verdicts. Kept apart from the pages' own reports (`quality_samples`): another source,
//! other fields.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ServerQualitySamples {
    Table,
    Id,
    SessionId,
    ParticipantId,
    Direction,
    At,
    IntervalMs,
    Packets,
    Lost,
    LossPermille,
    JitterMs,
    RttMs,
    Kbps,
    Freezes,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ServerQualitySamples as Q;
        let int = |c: Q| ColumnDef::new(c).integer().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(Q::Table)
                    .col(
                        ColumnDef::new(Q::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Q::SessionId).string().not_null())
                    .col(ColumnDef::new(Q::ParticipantId).string().not_null())
                    .col(ColumnDef::new(Q::Direction).string().not_null())
                    .col(ColumnDef::new(Q::At).timestamp_with_time_zone().not_null())
                    .col(int(Q::IntervalMs))
                    .col(int(Q::Packets))
                    .col(int(Q::Lost))
                    .col(int(Q::LossPermille))
                    .col(int(Q::JitterMs))
                    .col(ColumnDef::new(Q::RttMs).integer().null())
                    .col(int(Q::Kbps))
                    .col(int(Q::Freezes))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Q::Table, Q::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_server_quality_samples_session")
                    .table(Q::Table)
                    .col(Q::SessionId)
                    .col(Q::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ServerQualitySamples::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
