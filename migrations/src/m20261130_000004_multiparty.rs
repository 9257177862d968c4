//! Calls with more than two people: a supervisor's mode, removal of an invited guest, the
//! agent id of an agent added by invitation or transfer, and the session's lobby.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Participants {
    Table,
    Mode,
    RemovedAt,
    ExternalId,
    Email,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Lobby,
    LobbyMessage,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        let p = [
            ColumnDef::new(Participants::Mode)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Participants::RemovedAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(Participants::ExternalId)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Participants::Email)
                .string()
                .null()
                .to_owned(),
        ];
        for mut col in p {
            manager
                .alter_table(
                    Table::alter()
                        .table(Participants::Table)
                        .add_column(&mut col)
                        .to_owned(),
                )
                .await?;
        }
        let s = [
            ColumnDef::new(Sessions::Lobby)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
            ColumnDef::new(Sessions::LobbyMessage)
                .string()
                .null()
                .to_owned(),
        ];
        for mut col in s {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(&mut col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            Participants::Mode,
            Participants::RemovedAt,
            Participants::ExternalId,
            Participants::Email,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Participants::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        for col in [Sessions::Lobby, Sessions::LobbyMessage] {
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
