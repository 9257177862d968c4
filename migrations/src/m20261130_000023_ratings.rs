//! The customer's rating of a call (1–5 and an optional comment), given on the page's end
//! screen; one per participant.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Ratings {
    Table,
    ParticipantId,
    SessionId,
    Score,
    Comment,
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
                    .table(Ratings::Table)
                    .col(
                        ColumnDef::new(Ratings::ParticipantId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Ratings::SessionId).string().not_null())
                    .col(ColumnDef::new(Ratings::Score).integer().not_null())
                    .col(ColumnDef::new(Ratings::Comment).text().null())
                    .col(
                        ColumnDef::new(Ratings::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Ratings::Table, Ratings::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ratings_session")
                    .table(Ratings::Table)
                    .col(Ratings::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Ratings::Table).if_exists().to_owned())
            .await
    }
}
