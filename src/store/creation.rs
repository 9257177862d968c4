//! Storing new sessions: planning every row of a session up front, writing one or a
//! batch in a single transaction (with the fan-out of their first events and the link post
//! they asked for), and answering idempotent retries.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, IdenStatic,
    IntoActiveModel, Iterable, ModelTrait, QueryFilter, QueryOrder, Statement, Value,
};
use serde_json::json;

use super::sessions::{DEFAULT_CUSTOMER_NAME, SessionView, load_view};
use super::timeline::{NewEvent, after_events, kinds_of};
use crate::domain::EventKind;
use crate::domain::fields::{AgentId, ConversationRef, DisplayName, Email, Locale, Metadata};
use crate::domain::session::{Role, Status};
use crate::store::entities::{event, session};
use crate::store::entities::{join_link, participant};
use crate::store::links as participants;

/// A validated request to create a session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub conversation: ConversationRef,
    pub agent_id: AgentId,
    pub agent_name: DisplayName,
    pub customer_name: Option<DisplayName>,
    pub customer_email: Option<Email>,
    pub customer_locale: Option<Locale>,
    pub metadata: Metadata,
    pub relay_only: bool,
    /// Customers wait in a lobby until an agent admits them.
    pub lobby: bool,
    /// Integration (id) to post the customer's link through, in the same transaction.
    pub post_link_via: Option<String>,
    /// `auto`, `p2p` or `routed` (checked at the edge); `None`: the server's default.
    pub media_mode: Option<&'static str>,
    /// `off`, `always` or `on_demand` (checked at the edge); `None`: the server's default.
    pub recording_mode: Option<&'static str>,
}

/// Who created the session and under which idempotency key.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub api_key_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub idempotency_hash: Option<String>,
}

/// Outcome of [`create`].
pub enum Created {
    New(SessionView),
    /// Same idempotency key and same body: the session made the first time.
    Replayed(SessionView),
    /// Same idempotency key, different body.
    KeyReused,
}

/// A session about to be stored: every row built (ids drawn, links minted, bind values
/// laid out), nothing written yet. Built by the request's task, so the one writer only
/// concatenates.
#[derive(Debug, Clone)]
pub struct Planned {
    pub view: SessionView,
    pub post_link_via: Option<String>,
    events: Vec<NewEvent>,
    /// Bind values per table, in [`insert_sql`]'s column order.
    values: [Vec<Value>; 4],
}

/// The tables a new session writes, with their columns (an event's id is generated).
fn planned_tables() -> [(&'static str, Vec<&'static str>); 4] {
    fn cols<E: EntityTrait>(skip: &[&str]) -> (&'static str, Vec<&'static str>) {
        let table = E::default().table_name();
        let cols = E::Column::iter()
            .map(|c| c.as_str())
            .filter(|c| !skip.contains(c))
            .collect();
        (table, cols)
    }
    [
        cols::<session::Entity>(&[]),
        cols::<participant::Entity>(&[]),
        cols::<join_link::Entity>(&[]),
        cols::<event::Entity>(&["id"]),
    ]
}

/// Builds the rows of a new session: the session, its agent and customer, a link each,
/// and its first timeline events (`session.created`, `link.issued` per role).
pub fn plan(new: NewSession, origin: Origin, ttl: chrono::Duration, now: DateTime<Utc>) -> Planned {
    // Stored timestamps carry microseconds (PostgreSQL's precision), so what the create
    // answers equals what a later read returns.
    let now = now.trunc_subsecs(6);
    let id = crate::domain::SessionId::generate().into_string();
    let expires_at = now + ttl;
    let session = session::Model {
        id: id.clone(),
        conversation_platform: new.conversation.platform,
        conversation_id: new.conversation.id,
        agent_id: new.agent_id.as_str().to_owned(),
        agent_name: new.agent_name.as_str().to_owned(),
        customer_name: new.customer_name.as_ref().map(|n| n.as_str().to_owned()),
        customer_email: new.customer_email.as_ref().map(|e| e.as_str().to_owned()),
        customer_locale: new.customer_locale.as_ref().map(|l| l.as_str().to_owned()),
        metadata: new.metadata.into_value(),
        status: Status::Created.as_str().to_owned(),
        relay_only: new.relay_only,
        media_mode: new.media_mode.map(str::to_owned),
        recording_mode: new.recording_mode.map(str::to_owned),
        recording_state: None,
        created_at: now,
        updated_at: now,
        expires_at,
        ended_at: None,
        end_reason: None,
        api_key_id: origin.api_key_id,
        idempotency_key: origin.idempotency_key,
        idempotency_hash: origin.idempotency_hash,
        lobby: new.lobby,
        lobby_message: None,
    };
    let customer_name = new
        .customer_name
        .as_ref()
        .map(|n| n.as_str())
        .unwrap_or(DEFAULT_CUSTOMER_NAME);
    let mut participants_rows = Vec::with_capacity(2);
    let mut links = Vec::with_capacity(2);
    for (role, name) in [
        (Role::Agent, new.agent_name.as_str()),
        (Role::Customer, customer_name),
    ] {
        let mut p = participants::new_participant(&id, role, name, now);
        if role == Role::Agent {
            p.external_id = Some(session.agent_id.clone());
        }
        links.push(participants::new_link(&p, expires_at, now));
        participants_rows.push(p);
    }
    let mut events = vec![NewEvent {
        session_id: id.clone(),
        kind: EventKind::SessionCreated,
        participant_id: None,
        data: json!({
            "conversation": {"platform": session.conversation_platform, "id": session.conversation_id},
            "agent": {"id": session.agent_id, "name": session.agent_name},
        }),
        at: now,
    }];
    for l in &links {
        events.push(NewEvent {
            session_id: id.clone(),
            kind: EventKind::LinkIssued,
            participant_id: Some(l.participant_id.clone()),
            data: json!({"role": l.role, "expires_at": l.expires_at}),
            at: now,
        });
    }
    fn values_of<M: ModelTrait>(rows: &[M]) -> Vec<Value> {
        rows.iter()
            .flat_map(|m| <M::Entity as EntityTrait>::Column::iter().map(move |c| m.get(c)))
            .collect()
    }
    let event_values = events
        .iter()
        .flat_map(|e| {
            [
                Value::from(e.session_id.clone()),
                Value::from(e.kind.as_str()),
                Value::from(e.at),
                Value::from(e.participant_id.clone()),
                Value::from(e.data.clone()),
            ]
        })
        .collect();
    let values = [
        values_of(std::slice::from_ref(&session)),
        values_of(&participants_rows),
        values_of(&links),
        event_values,
    ];
    Planned {
        view: SessionView {
            session,
            participants: participants_rows,
            links,
        },
        post_link_via: new.post_link_via,
        events,
        values,
    }
}

/// `INSERT INTO table (cols) VALUES (…), (…)` for `rows` rows, in the backend's
/// placeholder style.
fn insert_sql(backend: DbBackend, table: &str, cols: &[&str], rows: usize) -> String {
    let quoted: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
    let mut n = 0;
    let tuples: Vec<String> = (0..rows)
        .map(|_| {
            let ph: Vec<String> = cols
                .iter()
                .map(|_| {
                    n += 1;
                    crate::store::placeholder(backend, n)
                })
                .collect();
            format!("({})", ph.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO \"{table}\" ({}) VALUES {}",
        quoted.join(", "),
        tuples.join(", ")
    )
}

/// Stores planned sessions in one write transaction: one multi-row insert per table, the
/// outbox hook of their timeline events, and the link posts of sessions that asked for
/// one. All or nothing. (The session writer's path on PostgreSQL; on SQLite it has its own
/// connection, see [`write_planned`].)
pub async fn insert_planned(db: &DatabaseConnection, batch: &[Planned]) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let txn = crate::store::begin_write(db).await?;
    for p in batch {
        if let Some(integration_id) = &p.post_link_via {
            // Bind before the events, so `session.created` reaches this integration.
            session::Entity::insert(p.view.session.clone().into_active_model())
                .exec_without_returning(&txn)
                .await?;
            crate::store::integrations::link_session(
                &txn,
                &p.view.session.id,
                integration_id,
                p.view.session.created_at,
            )
            .await?;
        }
    }
    let tables = planned_tables();
    let mut statements = Vec::with_capacity(4);
    for (t, (table, cols)) in tables.iter().enumerate() {
        // Sessions bound above are already stored.
        let rows: Vec<&Planned> = batch
            .iter()
            .filter(|p| t > 0 || p.post_link_via.is_none())
            .collect();
        let values: Vec<Value> = rows
            .iter()
            .flat_map(|p| p.values[t].iter().cloned())
            .collect();
        if values.is_empty() {
            continue;
        }
        let sql = insert_sql(backend, table, cols, values.len() / cols.len());
        statements.push((sql, values));
    }
    let events: Vec<NewEvent> = batch
        .iter()
        .flat_map(|p| p.events.iter().cloned())
        .collect();
    for (sql, values) in statements {
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    let hook = crate::store::fanout::EventHook::load(&txn, &kinds_of(&events)).await?;
    if !hook.is_idle() {
        let ids = planned_event_ids(&txn, batch, &events).await?;
        after_events(&txn, &hook, &events, &ids).await?;
    }
    for p in batch {
        if let Some(integration_id) = &p.post_link_via {
            let s = &p.view.session;
            crate::store::fanout::enqueue_post_link(
                &txn,
                &s.id,
                &s.conversation_id,
                integration_id,
                s.created_at,
            )
            .await?;
        }
    }
    txn.commit().await
}

/// The ids the database gave the events of a batch just inserted (per session they grow
/// in insertion order), matched to `events`.
async fn planned_event_ids<C: ConnectionTrait>(
    c: &C,
    batch: &[Planned],
    events: &[NewEvent],
) -> Result<Vec<i64>, DbErr> {
    let stored = event::Entity::find()
        .filter(event::Column::SessionId.is_in(batch.iter().map(|p| p.view.session.id.clone())))
        .order_by_asc(event::Column::Id)
        .all(c)
        .await?;
    let mut by_session: std::collections::HashMap<&str, std::collections::VecDeque<i64>> =
        Default::default();
    for e in &stored {
        by_session
            .entry(e.session_id.as_str())
            .or_default()
            .push_back(e.id);
    }
    events
        .iter()
        .map(|e| {
            by_session
                .get_mut(e.session_id.as_str())
                .and_then(|q| q.pop_front())
                .ok_or_else(|| DbErr::Custom("a planned event was not stored".into()))
        })
        .collect()
}

/// Stores one planned session. A unique violation on its idempotency key means a
/// concurrent request with the same key won: answer with that session (or `KeyReused`).
pub async fn insert_one(db: &DatabaseConnection, planned: Planned) -> Result<Created, DbErr> {
    match insert_planned(db, std::slice::from_ref(&planned)).await {
        Ok(()) => Ok(Created::New(planned.view)),
        Err(e) if planned.view.session.idempotency_key.is_some() && is_unique_violation(&e) => {
            after_key_conflict(db, &planned).await
        }
        Err(e) => Err(e),
    }
}

/// The answer to a planned session whose idempotency key a concurrent request stored
/// first: that session (same body) or `KeyReused`.
pub async fn after_key_conflict(
    db: &DatabaseConnection,
    planned: &Planned,
) -> Result<Created, DbErr> {
    let s = &planned.view.session;
    let origin = Origin {
        api_key_id: s.api_key_id.clone(),
        idempotency_key: s.idempotency_key.clone(),
        idempotency_hash: s.idempotency_hash.clone(),
    };
    Ok(find_idempotent(db, &origin)
        .await?
        .unwrap_or(Created::KeyReused))
}

/// Writes one planned session on the session writer's SQLite connection, inside its open
/// transaction: the rows [`insert_planned`] writes, in the same order, with each event's
/// webhooks (`hook`, read in this transaction) and the link post it asked for. Returns
/// how many deliveries it enqueued.
pub fn write_planned(
    w: &crate::store::sqlite_writer::SqliteWriter,
    hook: &crate::store::fanout::EventHook,
    p: &Planned,
) -> Result<usize, crate::store::sqlite_writer::WriterError> {
    let s = &p.view.session;
    w.insert(s, false)?;
    let linked: Vec<String> = p.post_link_via.iter().cloned().collect();
    for i in &linked {
        w.insert(
            &crate::store::integrations::link_row(&s.id, i, s.created_at),
            false,
        )?;
    }
    for x in &p.view.participants {
        w.insert(x, false)?;
    }
    for l in &p.view.links {
        w.insert(l, false)?;
    }
    let mut deliveries = Vec::new();
    for e in &p.events {
        let row = event::Model {
            id: 0,
            session_id: e.session_id.clone(),
            kind: e.kind.as_str().to_owned(),
            at: e.at,
            participant_id: e.participant_id.clone(),
            data: e.data.clone(),
        };
        let id = w.insert(&row, true)?;
        deliveries.extend(hook.deliveries(
            s,
            &linked,
            e.kind,
            id,
            e.participant_id.as_deref(),
            &e.data,
            e.at,
        ));
    }
    if let Some(i) = &p.post_link_via {
        deliveries.push(crate::store::fanout::post_link_delivery(
            &s.id,
            &s.conversation_id,
            i,
        ));
    }
    let n = deliveries.len();
    for d in deliveries {
        w.insert(&crate::store::outbox::pending_row(d, s.created_at), true)?;
    }
    Ok(n)
}

/// Creates a session in its own transaction (the group-committing path is
/// `sessions::batch::Creator`). An idempotency key seen before answers with that session.
pub async fn create(
    db: &DatabaseConnection,
    new: NewSession,
    origin: Origin,
    ttl: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Created, DbErr> {
    if let Some(found) = find_idempotent(db, &origin).await? {
        return Ok(found);
    }
    insert_one(db, plan(new, origin, ttl, now)).await
}

fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

pub async fn find_idempotent(
    db: &DatabaseConnection,
    origin: &Origin,
) -> Result<Option<Created>, DbErr> {
    let (Some(k), Some(h)) = (&origin.idempotency_key, &origin.idempotency_hash) else {
        return Ok(None);
    };
    let mut q = session::Entity::find().filter(session::Column::IdempotencyKey.eq(k.clone()));
    q = match &origin.api_key_id {
        Some(a) => q.filter(session::Column::ApiKeyId.eq(a.clone())),
        None => q.filter(session::Column::ApiKeyId.is_null()),
    };
    let Some(found) = q.one(db).await? else {
        return Ok(None);
    };
    if found.idempotency_hash.as_deref() != Some(h.as_str()) {
        return Ok(Some(Created::KeyReused));
    }
    let view = load_view(db, found).await?;
    Ok(Some(Created::Replayed(view)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_insert_in_each_placeholder_style() {
        assert_eq!(
            insert_sql(DbBackend::Sqlite, "t", &["a", "b"], 2),
            "INSERT INTO \"t\" (\"a\", \"b\") VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            insert_sql(DbBackend::Postgres, "t", &["a", "b"], 2),
            "INSERT INTO \"t\" (\"a\", \"b\") VALUES ($1, $2), ($3, $4)"
        );
    }
}
