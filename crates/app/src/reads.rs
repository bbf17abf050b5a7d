//! What every query reads from: the event store, the read models kept by a [`Runner`] (shared, as
//! a server follows the log while it answers; or one the command line has just caught up), and the
//! bounded as-of replays. Also the pieces every query shares: waiting for a position
//! (read-your-writes), naming an office or a member of staff, and paging.

use crate::answers::{AnswerKey, Answers};
use crate::auth::{Access, Caller, StaffEntry};
use crate::error::{AppError, ErrorKind};
use crate::replays::Replays;
use funnel_domain::RefusalCode;
use funnel_projections::models::Pipeline;
use funnel_projections::{
    AsOf, LiveTables, ReadModel, Runner, TableModel, TableReaders, live_tables,
};
use funnel_store::EventStore;
use funnel_types::{OfficeId, Position, Role, StaffId};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::RwLock;

/// How long reads wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// For `at_least`: until the read models reach the position asked for.
    pub read_wait: Duration,
    /// For a token not known yet: until the read models reach the log head.
    pub auth_wait: Duration,
    /// As-of replays running at once.
    pub max_replays: usize,
    /// As-of results kept.
    pub replay_cache: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            read_wait: Duration::from_secs(10),
            auth_wait: Duration::from_secs(2),
            max_replays: 2,
            replay_cache: 0,
        }
    }
}

/// The read side every query runs against. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Reads {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn EventStore>,
    runner: Arc<RwLock<Runner>>,
    options: ReadOptions,
    replays: Replays,
    /// Read-only connections to the table models' tables, opened on first use.
    tables: std::sync::OnceLock<Arc<TableReaders>>,
    /// Reads of the tables running at once: no more than the connections kept, so that a burst
    /// of queries waits for a kept connection rather than opening (and parsing the schema of) new
    /// ones.
    table_reads: tokio::sync::Semaphore,
    /// The position the live read models reflect, as the runner announces it (subscribed on
    /// first use).
    live: std::sync::OnceLock<tokio::sync::watch::Receiver<Position>>,
    /// Polled reports computed at the live position.
    answers: Answers,
}

impl Reads {
    /// Reads over `store` and the read models `runner` keeps (which must have [`Access`] and the
    /// models the queries asked of it registered).
    pub fn new(
        store: Arc<dyn EventStore>,
        runner: Arc<RwLock<Runner>>,
        options: ReadOptions,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                runner,
                replays: Replays::new(options.max_replays, options.replay_cache),
                options,
                tables: std::sync::OnceLock::new(),
                table_reads: tokio::sync::Semaphore::new(TableReaders::KEPT),
                live: std::sync::OnceLock::new(),
                answers: Answers::default(),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    pub fn runner(&self) -> &Arc<RwLock<Runner>> {
        &self.inner.runner
    }

    pub fn options(&self) -> &ReadOptions {
        &self.inner.options
    }

    /// Runs `f` in one read transaction over the table models' tables, on a blocking thread and
    /// without the runner's lock (which is taken once, to learn the file, on the first call).
    pub async fn read_tables<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, AppError> {
        let readers = match self.inner.tables.get() {
            Some(r) => r.clone(),
            None => {
                let r = Arc::new(self.runner().read().await.table_readers());
                self.inner.tables.get_or_init(|| r).clone()
            }
        };
        let _permit = self
            .inner
            .table_reads
            .acquire()
            .await
            .map_err(AppError::internal)?;
        tokio::task::spawn_blocking(move || readers.read(f))
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::internal)
    }

    /// Runs `f` on the live tables of the table model `M` in one read transaction; unavailable
    /// while they do not exist yet or were built by another version (being built).
    pub async fn read_live_tables<M: TableModel, T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection, &LiveTables) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, AppError> {
        self.read_tables(move |conn| match live_tables(conn, M::NAME)? {
            Some(t) if t.version == M::VERSION => f(conn, &t).map(Some),
            _ => Ok(None),
        })
        .await?
        .ok_or_else(|| {
            AppError::unavailable(
                format!("the {} read model is being built", M::NAME),
                format!("读模型 {} 正在建立", M::NAME),
            )
        })
    }

    /// The as-of replays' limit and cache.
    pub fn replays(&self) -> &Replays {
        &self.inner.replays
    }

    /// The read model `M` as of `as_of`, reading the log no further than `head`: replayed from
    /// the nearest history snapshot in the checkpoint file (or the start of the log), within the
    /// replays' limit, or from their cache.
    pub async fn as_of<M: ReadModel + Send + Sync>(
        &self,
        as_of: AsOf,
        head: Position,
    ) -> Result<Arc<M>, AppError> {
        let store = self.store().clone();
        self.inner
            .replays
            .model::<M, _, _>(store.as_ref(), as_of, head, || async move {
                self.read_tables(move |c| {
                    funnel_projections::history::start(c, M::NAME, M::VERSION, as_of, head)
                })
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(model = M::NAME, error = %e, "history snapshots unreadable; replaying from the start");
                    Default::default()
                })
            })
            .await
    }

    /// The log head, refusing a position the caller names beyond it.
    pub async fn not_beyond_head(&self, p: Position) -> Result<Position, AppError> {
        let head = self.store().head().await?;
        if p > head {
            return Err(AppError::new(
                ErrorKind::Unprocessable,
                "request.beyond_head",
                format!("position {p} is beyond the log head {head}"),
                format!("位置 {p} 超出日志末尾 {head}"),
            ));
        }
        Ok(head)
    }

    /// Waits until the read models reflect `at_least`; a position beyond the log head is refused.
    pub async fn wait_for(&self, at_least: Option<u64>) -> Result<(), AppError> {
        let Some(p) = at_least.map(Position) else {
            return Ok(());
        };
        self.not_beyond_head(p).await?;
        funnel_projections::wait_until_shared(self.runner(), p, self.options().read_wait)
            .await
            .map_err(|e| {
                AppError::unavailable(
                    format!("the read models have not reached position {p} yet: {e}"),
                    format!("读模型尚未到达位置 {p}"),
                )
            })
    }

    /// The position the live read models reflect now, without waiting for the runner's lock
    /// (after the first call).
    pub async fn live_position(&self) -> Position {
        let rx = match self.inner.live.get() {
            Some(rx) => rx,
            None => {
                let rx = self.runner().read().await.watch_live_checkpoint();
                self.inner.live.get_or_init(|| rx)
            }
        };
        *rx.borrow()
    }

    /// `f`'s answer on the live state of `M` (see [`Reads::with_model`]), computed once per
    /// position of the read models for everyone asking the same `key`: a poll at a position
    /// already answered costs a lookup. The answer is the same as `f`'s: `key` must name
    /// everything it depends on besides the model.
    pub async fn kept<M: ReadModel, T: Send + Sync + 'static>(
        &self,
        key: AnswerKey,
        f: impl Fn(&M, Position) -> T,
    ) -> Result<Arc<T>, AppError> {
        let now = self.live_position().await;
        let slot = self.inner.answers.slot(now, key);
        let compute = || async {
            self.with_model(|m: &M, position| {
                (
                    position,
                    Arc::new(f(m, position)) as Arc<dyn Any + Send + Sync>,
                )
            })
            .await
        };
        let mut computed = false;
        let (at, answer) = slot
            .get_or_try_init(|| {
                computed = true;
                compute()
            })
            .await?
            .clone();
        // Kept by a caller whose models had not reached `now` (a model switched back while being
        // rebuilt): not an answer of `now`.
        let answer = if at < now && !computed {
            compute().await?.1
        } else {
            answer
        };
        answer.downcast::<T>().map_err(|_| {
            AppError::internal(format!(
                "the answer kept as {} is of another type",
                key.report
            ))
        })
    }

    /// Runs `f` on a read model's current state and the position it reflects, under the read lock
    /// and without copying the state; unavailable while the model is being rebuilt from an
    /// unreadable snapshot.
    pub async fn with_model<M: ReadModel, T>(
        &self,
        f: impl FnOnce(&M, Position) -> T,
    ) -> Result<T, AppError> {
        let r = self.runner().read().await;
        let m = r.get::<M>().ok_or_else(|| {
            AppError::unavailable(
                format!("the {} read model is being rebuilt", M::NAME),
                format!("读模型 {} 正在重建", M::NAME),
            )
        })?;
        Ok(f(m, r.live_checkpoint()))
    }

    /// The office a query names by id, code (any case) or exact name.
    pub async fn office(&self, text: &str) -> Result<OfficeId, AppError> {
        let found = {
            let r = self.runner().read().await;
            r.get::<Access>()
                .and_then(|a| a.find_office(text))
                .or_else(|| r.get::<Pipeline>().and_then(|p| p.find_office(text.trim())))
        };
        if let Some(id) = found {
            return Ok(id);
        }
        // An id of an office the read models have not seen yet is still an office id.
        text.trim().parse::<OfficeId>().map_err(|_| {
            AppError::not_found(
                "office.not_found",
                format!("no office `{text}` (give its id, code or name)"),
                format!("没有办事处 `{text}`（请给出其编号、代码或名称）"),
            )
        })
    }

    /// The time zone of an office as the access model knows it; headquarters' zone
    /// (`funnel_domain::time::DEFAULT_TIME_ZONE`) for none or an office not on record.
    pub async fn office_zone(&self, office: Option<OfficeId>) -> Result<chrono_tz::Tz, AppError> {
        self.with_model(|access: &Access, _| {
            let entry = office.and_then(|o| access.offices.get(&o));
            funnel_domain::time::zone(entry.map(|o| o.timezone.as_str()))
        })
        .await
    }

    /// The office a query names, if it names one.
    pub async fn optional_office(&self, text: Option<&str>) -> Result<Option<OfficeId>, AppError> {
        match text {
            Some(text) => self.office(text).await.map(Some),
            None => Ok(None),
        }
    }

    /// A member of staff named by id, by name however its brackets, spacing and case are written,
    /// or by a unique beginning of a name (`crate::staff_names`), from the access model. A name
    /// that several people answer to (former staff included) is refused with their names and ids
    /// rather than guessed; a miss lists the closest names.
    pub async fn staff_named(&self, text: &str) -> Result<(StaffId, StaffEntry), AppError> {
        let text = text.trim();
        let (found, entry) = self
            .with_model(|access: &Access, _| {
                let found = crate::staff_names::lookup(
                    access.staff.iter().map(|(id, s)| (*id, s.name.as_str())),
                    text,
                );
                let entry = match &found {
                    crate::staff_names::Lookup::Found(id) => access.staff.get(id).cloned(),
                    _ => None,
                };
                (found, entry)
            })
            .await?;
        if let (crate::staff_names::Lookup::Found(id), Some(entry)) = (&found, entry) {
            return Ok((*id, entry));
        }
        let (en, zh) = crate::staff_names::explain(text, &found).unwrap_or_else(|| {
            (
                format!("no member of staff `{text}`"),
                format!("没有员工 `{text}`"),
            )
        });
        Err(match found {
            crate::staff_names::Lookup::Ambiguous(_) => {
                AppError::new(ErrorKind::Conflict, "staff.ambiguous_name", en, zh)
            }
            _ => AppError::not_found("staff.not_found", en, zh),
        })
    }
}

/// May the caller read what `whom` did or must do? Themselves; office managers their office's
/// people; headquarters, auditors and the local operator everyone.
pub fn check_person(caller: &Caller, whom: StaffId, entry: &StaffEntry) -> Result<(), AppError> {
    if whom == caller.staff_id || caller.reads_all() {
        return Ok(());
    }
    if caller.role == Role::OfficeManager && entry.office.is_some() && entry.office == caller.office
    {
        return Ok(());
    }
    Err(AppError::forbidden(
        RefusalCode::OtherOffice,
        format!(
            "a {} reads only their own work; office managers read their office's, headquarters and auditors everyone's",
            caller.role
        ),
        format!(
            "{}只能查看本人的记录；办事处经理可查看本办事处，总部与审计可查看所有人",
            caller.role.label_zh()
        ),
    ))
}

/// One page of `items`, which come sorted by `key`: those after the cursor `after`, at most
/// `limit` of them, and the cursor of the next page when more follow (`None` on the last page).
pub fn page<T, K: Ord>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
    after: Option<&K>,
    limit: usize,
) -> (Vec<T>, Option<K>) {
    let mut rest = items
        .into_iter()
        .filter(|t| after.is_none_or(|a| key(t) > *a))
        .peekable();
    let mut out = Vec::new();
    while out.len() < limit {
        match rest.next() {
            Some(t) => out.push(t),
            None => break,
        }
    }
    let next = rest.peek().and(out.last()).map(&key);
    (out, next)
}

/// Where a page starts and how long it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paging<K> {
    /// Items after this cursor (the previous page's `next`).
    pub after: Option<K>,
    /// At most this many.
    pub limit: usize,
}

impl<K> Paging<K> {
    /// A page size as a request gives it: 100 when absent, refused outside 1 to 1000.
    pub fn bounded(after: Option<K>, limit: Option<usize>) -> Result<Self, AppError> {
        Ok(Self {
            after,
            limit: page_limit(limit)?,
        })
    }

    /// Everything in one page (the command line's reports).
    pub fn everything() -> Self {
        Self {
            after: None,
            limit: usize::MAX,
        }
    }
}

/// A page size: `limit` (100 when absent), refused outside 1 to 1000.
pub fn page_limit(limit: Option<usize>) -> Result<usize, AppError> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::bad_request(
            "limit",
            "it must be between 1 and 1000",
        ));
    }
    Ok(limit)
}
