//! Database rows of the sessions domain.

pub mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub conversation_platform: String,
        pub conversation_id: String,
        pub agent_id: String,
        pub agent_name: String,
        pub customer_name: Option<String>,
        pub customer_email: Option<String>,
        pub customer_locale: Option<String>,
        pub metadata: Json,
        pub status: String,
        pub relay_only: bool,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        pub expires_at: ChronoDateTimeUtc,
        pub ended_at: Option<ChronoDateTimeUtc>,
        pub end_reason: Option<String>,
        pub api_key_id: Option<String>,
        pub idempotency_key: Option<String>,
        pub idempotency_hash: Option<String>,
        /// Customers wait in a lobby until an agent admits them.
        pub lobby: bool,
        /// Shown to customers waiting in the lobby.
        pub lobby_message: Option<String>,
        /// `auto`, `p2p` or `routed`; null: the server's `[media] mode`.
        pub media_mode: Option<String>,
        /// `off`, `always` or `on_demand`; null: the server's `[recording] mode`.
        pub recording_mode: Option<String>,
        /// `recording`, `paused` or `stopped`; null: never started.
        pub recording_state: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "session_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub session_id: String,
        pub kind: String,
        pub at: ChronoDateTimeUtc,
        pub participant_id: Option<String>,
        pub data: Json,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
