//! Storage of in-call text chat (table `chat_messages`). The only SQL of the chat
//! feature; the room decides who sees a message, the hub stores it here in order.
//! (Kept beside the domain folders so that it moves into `store/` in one step.)

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};

pub mod chat_message {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "chat_messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub session_id: String,
        pub participant_id: String,
        pub role: String,
        pub display_name: String,
        pub text: String,
        /// Seen by staff only (sent by a listening or whispering supervisor).
        pub internal: bool,
        pub at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use chat_message::Model as ChatMessage;

/// Stores one message (its id and time were given when it was relayed).
pub async fn insert(db: &DatabaseConnection, m: ChatMessage) -> Result<(), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    chat_message::Entity::insert(chat_message::ActiveModel {
        id: Set(m.id),
        session_id: Set(m.session_id),
        participant_id: Set(m.participant_id),
        role: Set(m.role),
        display_name: Set(m.display_name),
        text: Set(m.text),
        internal: Set(m.internal),
        at: Set(m.at),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await
}

/// A session's messages, oldest first; `after` is the id of the last message already seen
/// (ids are UUIDv7: they sort by time).
pub async fn list(
    db: &DatabaseConnection,
    session_id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<ChatMessage>, DbErr> {
    use sea_orm::QuerySelect;
    let mut q = chat_message::Entity::find().filter(chat_message::Column::SessionId.eq(session_id));
    if let Some(a) = after {
        q = q.filter(chat_message::Column::Id.gt(a));
    }
    q.order_by_asc(chat_message::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// A session's newest `limit` messages, oldest first.
pub async fn latest(
    db: &DatabaseConnection,
    session_id: &str,
    limit: u64,
) -> Result<Vec<ChatMessage>, DbErr> {
    use sea_orm::QuerySelect;
    let mut rows = chat_message::Entity::find()
        .filter(chat_message::Column::SessionId.eq(session_id))
        .order_by_desc(chat_message::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    rows.reverse();
    Ok(rows)
}
