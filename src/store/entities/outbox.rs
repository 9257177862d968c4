//! Database rows of the outbox and integrations domains.

pub mod delivery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The idempotency id receivers see (`webhook-id`), stable across retries.
        pub message_id: String,
        pub kind: String,
        pub event_type: Option<String>,
        pub session_id: Option<String>,
        pub integration_id: Option<String>,
        /// Deliveries with the same key are attempted strictly one after another.
        pub ordering_key: String,
        pub payload: Json,
        pub status: String,
        pub attempts: i32,
        pub next_attempt_at: ChronoDateTimeUtc,
        /// Age limits count from here (enqueue time, or the last manual retry).
        pub age_from: ChronoDateTimeUtc,
        pub last_error: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        pub delivered_at: Option<ChronoDateTimeUtc>,
        /// Claimed by an instance that is sending it, until then.
        pub leased_until: Option<ChronoDateTimeUtc>,
        /// The platform's id of the delivered message (a Chatwoot message id, a Matrix
        /// event id), when it said.
        pub remote_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod inbound {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "inbound_webhooks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub integration_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub webhook_id: String,
        pub received_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
