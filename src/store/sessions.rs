//! Sessions in the database. Every state change and its timeline event are written in one
//! transaction; `append_event` is the single funnel for timeline rows.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, IdenStatic, IntoActiveModel, Iterable, ModelTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement, Value,
};
use serde_json::json;

use crate::domain::EventKind;
use crate::domain::fields::{AgentId, ConversationRef, DisplayName, Email, Locale, Metadata};
use crate::domain::session::{Input, Machine, MachineError, Role, Status};
use crate::domain::tokens::TokenKey;
use crate::store::entities::{event, session};
use crate::store::entities::{join_link, participant};
use crate::store::links as participants;

/// Participant changes of a running session (see `participants::store`), re-exported so
/// session-level callers find them beside the rest of the session's storage.
pub use crate::store::participants::{ParticipantError, complete_transfer, record_event, set_mode};

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
}

/// Who created the session and under which idempotency key.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub api_key_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub idempotency_hash: Option<String>,
}

/// A session with its participants and their live links.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub session: session::Model,
    pub participants: Vec<participant::Model>,
    pub links: Vec<join_link::Model>,
}

impl SessionView {
    pub fn status(&self) -> Status {
        self.session.status.parse().unwrap_or(Status::Ended)
    }

    /// The URL of a role's live link (`{public_url}/j/{token}`), if the session has not ended.
    pub fn join_url(&self, key: &TokenKey, public_url: &str, role: Role) -> Option<String> {
        self.link(role)
            .and_then(|l| participants::token_for(key, l))
            .map(|t| format!("{public_url}/j/{t}"))
    }

    /// The participant a role's URL belongs to: the customer, or the session's agent (the
    /// agent participant with the session's `agent_id`, else the first agent not removed).
    pub fn owner(&self, role: Role) -> Option<&participant::Model> {
        let mut of_role = self
            .participants
            .iter()
            .filter(|p| p.role == role.as_str() && p.removed_at.is_none());
        match role {
            Role::Agent => of_role
                .clone()
                .find(|p| p.external_id.as_deref() == Some(self.session.agent_id.as_str()))
                .or_else(|| of_role.next()),
            _ => of_role.next(),
        }
    }

    /// The live (unrevoked) link of a role's owner (see [`SessionView::owner`]), if the
    /// session has not ended.
    pub fn link(&self, role: Role) -> Option<&join_link::Model> {
        self.participant_link(&self.owner(role)?.id)
    }

    /// The live (unrevoked) link of a participant, if the session has not ended and the
    /// participant was not removed.
    pub fn participant_link(&self, participant_id: &str) -> Option<&join_link::Model> {
        if self.status() == Status::Ended {
            return None;
        }
        let removed = self
            .participants
            .iter()
            .any(|p| p.id == participant_id && p.removed_at.is_some());
        if removed {
            return None;
        }
        self.links
            .iter()
            .filter(|l| l.participant_id == participant_id && l.revoked_at.is_none())
            .max_by_key(|l| l.created_at)
    }

    /// The URL of a participant's live link.
    pub fn participant_url(
        &self,
        key: &TokenKey,
        public_url: &str,
        participant_id: &str,
    ) -> Option<String> {
        self.participant_link(participant_id)
            .and_then(|l| participants::token_for(key, l))
            .map(|t| format!("{public_url}/j/{t}"))
    }
}

pub const DEFAULT_CUSTOMER_NAME: &str = "Customer";

/// A timeline event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub session_id: String,
    pub kind: EventKind,
    pub participant_id: Option<String>,
    pub data: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// Appends one timeline event (see [`append_events`]).
pub async fn append_event<C: ConnectionTrait>(
    c: &C,
    session_id: &str,
    kind: EventKind,
    participant_id: Option<&str>,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let ids = append_events(
        c,
        vec![NewEvent {
            session_id: session_id.to_owned(),
            kind,
            participant_id: participant_id.map(str::to_owned),
            data,
            at: now,
        }],
    )
    .await?;
    ids.first()
        .copied()
        .ok_or_else(|| DbErr::Custom("the event insert returned no id".into()))
}

/// Appends timeline events in one statement and returns their ids in order. Everything
/// that happens to a session passes through here (or, for new sessions, through
/// [`insert_planned`], which shares [`after_events`]): the outbox hook runs in the same
/// transaction, so the webhooks of these events commit (or roll back) with them.
pub async fn append_events<C: ConnectionTrait>(
    c: &C,
    events: Vec<NewEvent>,
) -> Result<Vec<i64>, DbErr> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let rows = events.iter().map(|e| event::ActiveModel {
        id: sea_orm::NotSet,
        session_id: Set(e.session_id.clone()),
        kind: Set(e.kind.as_str().to_owned()),
        at: Set(e.at),
        participant_id: Set(e.participant_id.clone()),
        data: Set(e.data.clone()),
    });
    // Ids grow in insertion order (AUTOINCREMENT / identity); RETURNING's row order is
    // not guaranteed, so sort.
    let mut ids = event::Entity::insert_many(rows)
        .exec_with_returning_keys(c)
        .await?;
    ids.sort_unstable();
    if ids.len() != events.len() {
        return Err(DbErr::Custom(format!(
            "{} events inserted, {} ids returned",
            events.len(),
            ids.len()
        )));
    }
    let hook = crate::store::fanout::EventHook::load(c, &kinds_of(&events)).await?;
    after_events(c, &hook, &events, &ids).await?;
    Ok(ids)
}

fn kinds_of(events: &[NewEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

/// The outbox hook for stored events (`ids[i]` is the id of `events[i]`).
async fn after_events<C: ConnectionTrait>(
    c: &C,
    hook: &crate::store::fanout::EventHook,
    events: &[NewEvent],
    ids: &[i64],
) -> Result<(), DbErr> {
    if hook.is_idle() {
        return Ok(());
    }
    for (e, id) in events.iter().zip(ids) {
        hook.on_event(
            c,
            &e.session_id,
            e.kind,
            *id,
            e.participant_id.as_deref(),
            &e.data,
            e.at,
        )
        .await?;
    }
    Ok(())
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
    let id = uuid::Uuid::now_v7().to_string();
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

async fn load_view<C: ConnectionTrait>(c: &C, s: session::Model) -> Result<SessionView, DbErr> {
    let participants = participant::Entity::find()
        .filter(participant::Column::SessionId.eq(s.id.clone()))
        .order_by_asc(participant::Column::CreatedAt)
        .all(c)
        .await?;
    let links = join_link::Entity::find()
        .filter(join_link::Column::SessionId.eq(s.id.clone()))
        .all(c)
        .await?;
    Ok(SessionView {
        session: s,
        participants,
        links,
    })
}

pub async fn get<C: ConnectionTrait>(c: &C, id: &str) -> Result<Option<SessionView>, DbErr> {
    match session::Entity::find_by_id(id.to_owned()).one(c).await? {
        Some(s) => Ok(Some(load_view(c, s).await?)),
        None => Ok(None),
    }
}

/// Filters for listing sessions, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub conversation_id: Option<String>,
    pub platform: Option<String>,
    pub status: Option<Status>,
    /// Return sessions older than this id (the previous page's last id).
    pub before_id: Option<String>,
    pub limit: u64,
}

/// One page; `more` tells whether another page follows.
pub async fn list(
    db: &DatabaseConnection,
    q: &ListQuery,
) -> Result<(Vec<SessionView>, bool), DbErr> {
    let mut find = session::Entity::find();
    if let Some(c) = &q.conversation_id {
        find = find.filter(session::Column::ConversationId.eq(c.clone()));
    }
    if let Some(p) = &q.platform {
        find = find.filter(session::Column::ConversationPlatform.eq(p.clone()));
    }
    if let Some(s) = q.status {
        find = find.filter(session::Column::Status.eq(s.as_str()));
    }
    if let Some(b) = &q.before_id {
        find = find.filter(session::Column::Id.lt(b.clone()));
    }
    let mut rows = find
        .order_by_desc(session::Column::Id)
        .limit(q.limit + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > q.limit;
    rows.truncate(q.limit as usize);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(load_view(db, r).await?);
    }
    Ok((out, more))
}

pub async fn events(
    db: &DatabaseConnection,
    session_id: &str,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<event::Model>, DbErr> {
    let mut q = event::Entity::find().filter(event::Column::SessionId.eq(session_id.to_owned()));
    if let Some(a) = after {
        q = q.filter(event::Column::Id.gt(a));
    }
    q.order_by_asc(event::Column::Id).limit(limit).all(db).await
}

fn machine_of(s: &session::Model, participants: &[participant::Model]) -> Machine {
    let mut present = [0u32; 4];
    for (i, role) in Role::ALL.into_iter().enumerate() {
        present[i] = participants
            .iter()
            .filter(|p| p.role == role.as_str() && p.present)
            .count() as u32;
    }
    Machine {
        status: s.status.parse().unwrap_or(Status::Ended),
        present,
        expires_at: s.expires_at,
    }
}

async fn save_step<C: ConnectionTrait>(
    c: &C,
    s: &session::Model,
    to: Status,
    end_reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut active: session::ActiveModel = s.clone().into();
    active.status = Set(to.as_str().to_owned());
    active.updated_at = Set(now);
    if to == Status::Ended {
        active.ended_at = Set(Some(now));
        active.end_reason = Set(end_reason.map(str::to_owned));
    }
    active.update(c).await?;
    Ok(())
}

/// Ends a session. `Ok(None)`: no such session; `Err(MachineError::Ended)` inside: it had
/// already ended (the view is returned so callers can answer idempotently).
pub async fn end(
    db: &DatabaseConnection,
    id: &str,
    reason: &str,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<(SessionView, bool)>, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let Some(view) = get(&txn, id).await? else {
        return Ok(None);
    };
    let mut m = machine_of(&view.session, &view.participants);
    match m.apply(Input::End(reason.to_owned()), now) {
        Err(MachineError::Ended) => {
            drop(txn);
            return Ok(Some((view, false)));
        }
        Ok(_) => {}
    }
    save_step(&txn, &view.session, Status::Ended, Some(reason), now).await?;
    participant::Entity::update_many()
        .col_expr(participant::Column::Present, Expr::value(false))
        .filter(participant::Column::SessionId.eq(id.to_owned()))
        .filter(participant::Column::Present.eq(true))
        .col_expr(participant::Column::LeftAt, Expr::value(now))
        .exec(&txn)
        .await?;
    let duration = (now - view.session.created_at).num_seconds();
    append_event(
        &txn,
        id,
        EventKind::SessionEnded,
        by,
        json!({"reason": reason, "duration_secs": duration, "from_status": view.session.status}),
        now,
    )
    .await?;
    let fresh = get(&txn, id).await?;
    txn.commit().await?;
    Ok(fresh.map(|v| (v, true)))
}

/// Revokes the customer's live link and issues a new one.
/// Why a customer link cannot be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateRefused {
    /// The session has ended.
    Ended,
    /// The session has expired (the sweeper has not ended it yet): a new link would be
    /// dead on arrival.
    Expired,
}

pub async fn rotate_customer_link(
    db: &DatabaseConnection,
    key: &TokenKey,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Result<SessionView, RotateRefused>>, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let Some(view) = get(&txn, id).await? else {
        return Ok(None);
    };
    if view.status() == Status::Ended {
        return Ok(Some(Err(RotateRefused::Ended)));
    }
    if view.session.expires_at <= now {
        return Ok(Some(Err(RotateRefused::Expired)));
    }
    let Some(customer) = view
        .participants
        .iter()
        .find(|p| p.role == Role::Customer.as_str())
        .cloned()
    else {
        return Ok(Some(Err(RotateRefused::Ended)));
    };
    join_link::Entity::update_many()
        .col_expr(join_link::Column::RevokedAt, Expr::value(now))
        .filter(join_link::Column::ParticipantId.eq(customer.id.clone()))
        .filter(join_link::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    append_event(
        &txn,
        id,
        EventKind::LinkRevoked,
        Some(&customer.id),
        json!({"role": "customer"}),
        now,
    )
    .await?;
    participants::issue_link(&txn, key, &customer, view.session.expires_at, now).await?;
    append_event(
        &txn,
        id,
        EventKind::LinkIssued,
        Some(&customer.id),
        json!({"role": "customer", "expires_at": view.session.expires_at}),
        now,
    )
    .await?;
    let fresh = get(&txn, id).await?;
    txn.commit().await?;
    Ok(fresh.map(Ok))
}

/// Presence changes reported by signaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Joined,
    Left,
    Reconnecting,
}

/// Records a participant joining, leaving or reconnecting and drives the session state.
/// Returns the new status, or `Err(Ended)` if the session had ended.
pub async fn record_presence(
    db: &DatabaseConnection,
    session_id: &str,
    participant_id: &str,
    presence: Presence,
    now: DateTime<Utc>,
) -> Result<Result<Status, MachineError>, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let Some(view) = get(&txn, session_id).await? else {
        return Ok(Err(MachineError::Ended));
    };
    let Some(p) = view
        .participants
        .iter()
        .find(|p| p.id == participant_id)
        .cloned()
    else {
        return Ok(Err(MachineError::Ended));
    };
    let role: Role = p.role.parse().unwrap_or(Role::Customer);
    let mut m = machine_of(&view.session, &view.participants);
    let (input, kind) = match presence {
        Presence::Joined => (Some(Input::Joined(role)), EventKind::ParticipantJoined),
        Presence::Left => (Some(Input::Left(role)), EventKind::ParticipantLeft),
        Presence::Reconnecting => (None, EventKind::ParticipantReconnecting),
    };
    let step = match input {
        Some(i) => match m.apply(i, now) {
            Ok(s) => Some(s),
            Err(e) => return Ok(Err(e)),
        },
        None if view.status() == Status::Ended => return Ok(Err(MachineError::Ended)),
        None => None,
    };
    let mut active: participant::ActiveModel = p.clone().into();
    match presence {
        Presence::Joined => {
            active.present = Set(true);
            active.last_joined_at = Set(Some(now));
            if p.first_joined_at.is_none() {
                active.first_joined_at = Set(Some(now));
            }
        }
        Presence::Left => {
            active.present = Set(false);
            active.left_at = Set(Some(now));
        }
        Presence::Reconnecting => {}
    }
    active.update(&txn).await?;
    if let Some(s) = &step
        && s.changed()
    {
        save_step(&txn, &view.session, s.to, None, now).await?;
    }
    append_event(
        &txn,
        session_id,
        kind,
        Some(participant_id),
        json!({"role": role.as_str(), "display_name": p.display_name}),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(step.map(|s| s.to).unwrap_or(m.status)))
}

/// Ends every session that has expired with nobody in it. Returns how many ended.
pub async fn sweep_expired(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(sweep_expired_ids(db, now).await?.len() as u64)
}

/// Ends expired sessions (up to 500 a call) and returns their ids.
pub async fn sweep_expired_ids(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    let candidates = session::Entity::find()
        .filter(session::Column::Status.ne(Status::Ended.as_str()))
        .filter(session::Column::ExpiresAt.lte(now))
        .limit(500)
        .all(db)
        .await?;
    let mut ended = Vec::new();
    for s in candidates {
        let txn = crate::store::begin_write(db).await?;
        let Some(view) = get(&txn, &s.id).await? else {
            continue;
        };
        let mut m = machine_of(&view.session, &view.participants);
        let Ok(step) = m.apply(Input::Tick, now) else {
            continue;
        };
        if step.to == Status::Ended {
            let reason = step.end_reason.unwrap_or_default();
            save_step(&txn, &view.session, Status::Ended, Some(&reason), now).await?;
            let duration = (now - view.session.created_at).num_seconds();
            append_event(
                &txn,
                &s.id,
                EventKind::SessionEnded,
                None,
                json!({"reason": reason, "duration_secs": duration, "from_status": view.session.status}),
                now,
            )
            .await?;
            txn.commit().await?;
            ended.push(s.id.clone());
        }
    }
    Ok(ended)
}

/// Counts sessions by status (for metrics).
pub async fn count_by_status(db: &DatabaseConnection) -> Result<Vec<(String, i64)>, DbErr> {
    session::Entity::find()
        .select_only()
        .column(session::Column::Status)
        .column_as(session::Column::Id.count(), "n")
        .group_by(session::Column::Status)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await
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
