//! Database rows of the participants domain.

pub mod participant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "participants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub session_id: String,
        pub role: String,
        pub display_name: String,
        pub present: bool,
        pub first_joined_at: Option<ChronoDateTimeUtc>,
        pub last_joined_at: Option<ChronoDateTimeUtc>,
        pub left_at: Option<ChronoDateTimeUtc>,
        pub created_at: ChronoDateTimeUtc,
        /// A supervisor's mode: `listen`, `whisper` or `barge`.
        pub mode: Option<String>,
        /// Set when the participant was removed from the session (their link answers 410).
        pub removed_at: Option<ChronoDateTimeUtc>,
        /// The chat platform's id of an agent added by invitation or transfer.
        pub external_id: Option<String>,
        /// Where an invitation was e-mailed.
        pub email: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod join_link {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "join_links")]
    pub struct Model {
        /// Hex of the 16 random bytes inside the token.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub session_id: String,
        pub participant_id: String,
        pub role: String,
        pub expires_at: ChronoDateTimeUtc,
        pub revoked_at: Option<ChronoDateTimeUtc>,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
