//! Leases for a deployment of several nodes on one PostgreSQL database: which node owns a
//! live room (`room_leases`), and which node runs a cluster-wide background task such as
//! the sweeper (`task_leases`). Both expire in database time; a single node never uses
//! them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoomLeases {
    Table,
    SessionId,
    Node,
    Epoch,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum TaskLeases {
    Table,
    Name,
    Node,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RoomLeases::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(RoomLeases::SessionId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RoomLeases::Node).string().not_null())
                    .col(
                        ColumnDef::new(RoomLeases::Epoch)
                            .big_integer()
                            .not_null()
                            .default(1),
                    )
                    .col(
                        ColumnDef::new(RoomLeases::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TaskLeases::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(TaskLeases::Name)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(TaskLeases::Node).string().not_null())
                    .col(
                        ColumnDef::new(TaskLeases::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(TaskLeases::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(RoomLeases::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
