//! PostgreSQL as the ledger of record (cluster mode, API.md section 9).
//!
//! Every entry is an append-only row of `gavel_<name>.entries` with the exchange-wide sequence number `seq`, the
//! node that wrote it and the entry itself as JSON; balances, statements and reports are derived from the rows,
//! as the embedded journal's are from its records. Each node keeps the whole books in memory as a replica and
//! answers reads from it.
//!
//! ## One order for every node
//! Each node has one writer task doing group commit: it takes every change that arrived, opens a transaction,
//! takes the exchange's ledger lock (`pg_advisory_xact_lock`, held until COMMIT), reads the rows other nodes
//! committed since its last `seq` and applies them, runs its changes against the now-current books (a payout
//! sees every sale, a return every other return), inserts their entries with the next sequence numbers and
//! commits. Because the lock is held until commit, sequence numbers become visible in order, with no gaps a
//! reader could skip: a node that reads `seq > cursor` always gets a prefix of the log. A change is answered
//! only after COMMIT. Unique indexes back the rules that must hold across racing nodes (a lead sold once, one
//! sale per ping and buyer, one return per lead, one decision per return) should a bug ever bypass the lock.
//!
//! ## Failures
//! A batch whose INSERT or COMMIT fails leaves this node's books holding entries the log may not have: the
//! books are marked untrusted and rebuilt from the log before the next change or read. When the server dropped
//! the connection during COMMIT the outcome is unknown; the writer asks the log (by the batch's id) before it
//! answers. A change that finds PostgreSQL unreachable fails with [`LedgerError::Unavailable`]: nothing was
//! recorded.
//!
//! ## Layout
//! - `postgres/schema.rs` — the schema, created and upgraded at start, safe when nodes start together.
//! - `postgres/writer.rs` — the writer task: batches, the ledger lock, catch-up, insert, commit.

mod schema;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_postgres::{Client, NoTls, Statement};

use super::books::Books;
use super::entry::Entry;
use super::store::{Balances, Shared};
use super::{Ledger, LedgerError};

pub use schema::SCHEMA_VERSION;

/// Longest any one round trip to PostgreSQL may take before the store counts as unreachable.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Set on each of the ledger's connections. `plan_cache_mode`: see [`Inner::prepare`]. An idle transaction
/// ends after 10 s: a writer holds the exchange's ledger lock from BEGIN to COMMIT, a few milliseconds, and a
/// node cut off from the network mid-batch would otherwise keep it — and every other node from booking
/// anything — until TCP gave up on the connection, hours later.
const SESSION_SETTINGS: &str =
    "SET plan_cache_mode = force_custom_plan; SET idle_in_transaction_session_timeout = '10s'";

/// Times each store round trip: `(operation, seconds)`, for `gavel_store_seconds{store="postgres",op}`.
pub type StoreObserver = Arc<dyn Fn(&'static str, Duration) + Send + Sync>;

/// Where the exchange's ledger lives.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// The exchange's name: the schema is `gavel_<name>`.
    pub exchange: String,
    /// This node's id, written on every row it commits.
    pub node: String,
    pub observer: Option<StoreObserver>,
    /// Sees each change's time from submission to COMMIT (`gavel_journal_commit_seconds`, as the journal's).
    pub on_commit: Option<super::journal::CommitObserver>,
}

/// The store half of a [`Ledger`] whose books are a replica of PostgreSQL.
pub struct PgLedger {
    inner: Arc<Inner>,
    jobs: mpsc::UnboundedSender<writer::Job>,
    writer: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the writer task and the readers share.
struct Inner {
    options: PgOptions,
    config: tokio_postgres::Config,
    schema: String,
    /// The exchange's ledger lock, a key derived from the schema name.
    lock_key: i64,
    /// The last sequence number applied to this node's books, and whether the books can be trusted. Held by
    /// the writer for a whole batch and by a reader while it catches up, so entries apply once and in order.
    cursor: Mutex<Cursor>,
    /// The connection reads catch up on (the writer has its own).
    reader: Mutex<Option<Session>>,
    available: AtomicBool,
}

/// A connection and the statements the ledger runs on it again and again, prepared once when it opens.
///
/// Prepared for the order of a batch as much as for speed: a statement given as text is first prepared, in
/// a round trip of its own, and only then sent — so an `INSERT` given as text and issued together with
/// `COMMIT` reached the server *after* the `COMMIT`, ran on its own outside the transaction and its ledger
/// lock, and nodes writing at once collided on `seq` (each collision a refused batch and a rebuild of the
/// books). A prepared statement goes out when it is called, in the order of the calls.
struct Session {
    client: Client,
    /// Rows after a `seq`: [`Inner::catch_up_sql`].
    catch_up: Statement,
    /// A batch's rows: [`Inner::insert_sql`].
    insert: Statement,
    /// The server process serving this connection: ended before the log is asked about a batch whose
    /// outcome its connection could not report (see `writer::batch_committed`).
    backend: Backend,
}

impl Session {
    /// Whether its connection is gone (a new session is opened in its place).
    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// A PostgreSQL server process: its pid, and when it started (µs since the epoch), so that another process
/// given the same pid later is never taken for it.
#[derive(Debug, Clone, Copy)]
struct Backend {
    pid: i32,
    started_us: i64,
}

/// Which process serves this connection, as [`Backend`] reads it.
const THIS_BACKEND: &str = "SELECT pid, (extract(epoch FROM backend_start) * 1000000)::bigint \
    FROM pg_stat_activity WHERE pid = pg_backend_pid()";

/// A round trip that failed: `refused` when the server answered with an error (it is up and the statement
/// did nothing), else the connection was lost or timed out (the outcome of a write is then unknown).
struct Trip {
    refused: bool,
    message: String,
}

struct Cursor {
    seq: i64,
    /// The books hold entries the log may not have (a failed batch): rebuild before using them.
    untrusted: bool,
}

impl PgLedger {
    /// Connects, creates or upgrades the schema, loads the whole log into books and starts the writer.
    pub async fn open(options: PgOptions) -> Result<Ledger, LedgerError> {
        let mut config: tokio_postgres::Config =
            options.url.parse().map_err(|e| LedgerError::Unavailable(format!("postgres_url: {e}")))?;
        config.connect_timeout(Duration::from_secs(3));
        let schema = format!("gavel_{}", options.exchange);
        let inner = Arc::new(Inner {
            lock_key: lock_key(&schema),
            schema,
            config,
            options,
            cursor: Mutex::new(Cursor { seq: 0, untrusted: false }),
            reader: Mutex::new(None),
            available: AtomicBool::new(false),
        });
        let mut client = inner.connect().await?;
        schema::migrate(&mut client, &inner.schema).await?;
        let (books, seq) = inner.load_all(&client).await?;
        inner.cursor.lock().await.seq = seq;
        *inner.reader.lock().await = Some(inner.prepare(client).await?);
        inner.available.store(true, Ordering::Release);
        let shared = Arc::new(Shared::new(books));
        let (jobs, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(writer::run(Arc::clone(&inner), Arc::clone(&shared), receiver));
        let store = PgLedger { inner, jobs, writer: parking_lot::Mutex::new(Some(task)) };
        Ok(Ledger::replica(shared, store))
    }

    /// Runs a change in the exchange's order (see the module doc); answers once it is committed.
    pub(super) async fn change<T, E>(
        &self,
        change: impl FnOnce(&Books, &Balances) -> Result<(Vec<Entry>, T), E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
    {
        let (answer_tx, mut answer_rx) = oneshot::channel::<Result<T, E>>();
        let (done, committed) = oneshot::channel();
        let run: writer::Run = Box::new(move |books, balances| match change(books, balances) {
            Ok((entries, answer)) => {
                let _ = answer_tx.send(Ok(answer));
                Some(entries)
            }
            Err(refused) => {
                let _ = answer_tx.send(Err(refused));
                None
            }
        });
        let submitted = tokio::time::Instant::now();
        if self.jobs.send(writer::Job::Change { run, done, submitted }).is_err() {
            return Err(E::from(LedgerError::Unavailable("the ledger is closed".into())));
        }
        let committed = committed.await.unwrap_or_else(|_| Err(LedgerError::Unavailable("the writer stopped".into())));
        match answer_rx.try_recv() {
            // The change refused: nothing was recorded, whatever became of the batch.
            Ok(Err(refused)) => Err(refused),
            Ok(Ok(answer)) => committed.map(|()| answer).map_err(E::from),
            // It never ran: the batch failed before it (no connection).
            Err(_) => Err(E::from(committed.err().unwrap_or_else(|| LedgerError::Unavailable("not run".into())))),
        }
    }

    /// Catches the books up with every row committed so far.
    pub(super) async fn sync(&self, shared: &Shared) -> Result<(), LedgerError> {
        let mut cursor = self.inner.cursor.lock().await;
        if cursor.untrusted {
            // The writer rebuilds them before its next batch; until then this node cannot answer reads.
            let _ = self.jobs.send(writer::Job::nudge());
            return Err(LedgerError::Unavailable("this node's books are being rebuilt".into()));
        }
        let mut reader = self.inner.reader.lock().await;
        if reader.as_ref().is_none_or(Session::is_closed) {
            *reader = Some(self.inner.open_session().await?);
        }
        let session = reader.as_ref().expect("connected above");
        let rows = self.inner.timed("catch_up", session.client.query(&session.catch_up, &[&cursor.seq])).await;
        match rows {
            Ok(rows) => self.inner.apply_rows(shared, &rows, &mut cursor),
            Err(error) => {
                *reader = None;
                Err(error)
            }
        }
    }

    /// Whether the last round trip to PostgreSQL worked.
    pub fn is_available(&self) -> bool {
        self.inner.available.load(Ordering::Acquire)
    }

    /// Checks the connection with a trivial query (the health loop), and records the answer.
    pub async fn probe(&self) -> bool {
        let mut reader = self.inner.reader.lock().await;
        if reader.as_ref().is_none_or(Session::is_closed) {
            match self.inner.open_session().await {
                Ok(session) => *reader = Some(session),
                Err(_) => return false,
            }
        }
        let session = reader.as_ref().expect("connected above");
        let ok = self.inner.timed("probe", session.client.simple_query("SELECT 1")).await.is_ok();
        if !ok {
            *reader = None;
        }
        ok
    }

    /// Lets the writer finish what it holds, then stops it.
    pub(super) async fn close(&self) {
        let task = self.writer.lock().take();
        let _ = self.jobs.send(writer::Job::stop());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Inner {
    /// A new connection with the ledger's statements prepared on it (the schema must exist).
    async fn open_session(&self) -> Result<Session, LedgerError> {
        let client = self.connect().await?;
        self.prepare(client).await
    }

    /// Prepares the ledger's statements on `client`, in one round trip. Each execution is planned for its own
    /// parameters (`plan_cache_mode`): a prepared statement otherwise switches to a generic plan after five
    /// runs, and the catch-up's, chosen while the table was small, kept scanning it whole as it grew — it
    /// halved the writer's rate with 64 sales in flight (`cargo bench --bench postgres`, BENCHMARKS.md).
    async fn prepare(&self, client: Client) -> Result<Session, LedgerError> {
        let (catch_up_sql, insert_sql) = (self.catch_up_sql(), self.insert_sql());
        let all = async {
            tokio::try_join!(
                client.batch_execute(SESSION_SETTINGS),
                client.prepare(&catch_up_sql),
                client.prepare(&insert_sql),
                client.simple_query(THIS_BACKEND)
            )
        };
        let ((), catch_up, insert, this_backend) = self.timed("prepare", all).await?;
        let backend = this_backend.iter().find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                Some(Backend { pid: row.get(0)?.parse().ok()?, started_us: row.get(1)?.parse().ok()? })
            }
            _ => None,
        });
        let backend = backend.ok_or_else(|| LedgerError::Unavailable("the server process is not listed".into()))?;
        Ok(Session { client, catch_up, insert, backend })
    }

    async fn connect(&self) -> Result<Client, LedgerError> {
        let connected = tokio::time::timeout(STATEMENT_TIMEOUT, self.config.connect(NoTls)).await;
        match connected {
            Ok(Ok((client, connection))) => {
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "postgres connection ended");
                    }
                });
                Ok(client)
            }
            Ok(Err(error)) => Err(self.down(error.to_string())),
            Err(_) => Err(self.down("connect timed out".into())),
        }
    }

    fn down(&self, why: String) -> LedgerError {
        if self.available.swap(false, Ordering::AcqRel) {
            tracing::warn!(reason = %why, "postgres unreachable");
        }
        LedgerError::Unavailable(why)
    }

    /// Runs one round trip with the statement timeout, timing it and noting whether the store answered.
    async fn round_trip<T>(
        &self,
        op: &'static str,
        query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Trip> {
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(STATEMENT_TIMEOUT, query).await;
        if let Some(observer) = &self.options.observer {
            observer(op, started.elapsed());
        }
        match result {
            Ok(Ok(value)) => {
                if !self.available.swap(true, Ordering::AcqRel) {
                    tracing::info!("postgres reachable");
                }
                Ok(value)
            }
            // The server answered with an error: it is up; the statement was refused.
            Ok(Err(error)) if error.as_db_error().is_some() => Err(Trip { refused: true, message: error.to_string() }),
            Ok(Err(error)) => Err(Trip { refused: false, message: self.down(error.to_string()).to_string() }),
            Err(_) => Err(Trip { refused: false, message: self.down(format!("{op} timed out")).to_string() }),
        }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, LedgerError> {
        self.round_trip(op, query).await.map_err(|trip| LedgerError::Unavailable(trip.message))
    }

    fn insert_sql(&self) -> String {
        format!(
            "INSERT INTO {}.entries (seq, node, batch, kind, lead_id, ping_id, buyer, return_id, entry)
             SELECT u.seq, $1, $2, u.kind, u.lead_id, u.ping_id, u.buyer, u.return_id, u.entry::jsonb
             FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
                  AS u(seq, kind, lead_id, ping_id, buyer, return_id, entry)",
            self.schema
        )
    }

    fn catch_up_sql(&self) -> String {
        format!("SELECT seq, entry::text FROM {}.entries WHERE seq > $1 ORDER BY seq", self.schema)
    }

    /// Applies rows (`seq`, entry text) after the cursor to the books, in order.
    fn apply_rows(
        &self,
        shared: &Shared,
        rows: &[tokio_postgres::Row],
        cursor: &mut Cursor,
    ) -> Result<(), LedgerError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut books = shared.books.lock();
        for row in rows {
            let seq: i64 = row.get(0);
            if seq <= cursor.seq {
                continue;
            }
            if seq != cursor.seq + 1 {
                cursor.untrusted = true;
                return Err(LedgerError::Unavailable(format!("the log skips from {} to {seq}", cursor.seq)));
            }
            let text: &str = row.get(1);
            let entry: Entry = serde_json::from_str(text).map_err(|e| {
                cursor.untrusted = true;
                LedgerError::Unavailable(format!("entry {seq} does not read: {e}"))
            })?;
            shared.apply(&mut books, entry);
            cursor.seq = seq;
        }
        Ok(())
    }

    /// The whole log into fresh books: start-up, and a rebuild after a failed batch.
    async fn load_all(&self, client: &Client) -> Result<(Books, i64), LedgerError> {
        const PAGE: i64 = 10_000;
        let sql =
            format!("SELECT seq, entry::text FROM {}.entries WHERE seq > $1 ORDER BY seq LIMIT {PAGE}", self.schema);
        let mut books = Books::default();
        let mut seq = 0i64;
        loop {
            let rows = self.timed("load", client.query(&sql, &[&seq])).await?;
            for row in &rows {
                let next: i64 = row.get(0);
                let text: &str = row.get(1);
                let entry: Entry = serde_json::from_str(text).map_err(|e| LedgerError::Replay {
                    dir: self.schema.clone(),
                    index: next as usize,
                    problem: e.to_string(),
                })?;
                books.apply(entry).map_err(|e| LedgerError::Replay {
                    dir: self.schema.clone(),
                    index: next as usize,
                    problem: e.to_string(),
                })?;
                seq = next;
            }
            if (rows.len() as i64) < PAGE {
                return Ok((books, seq));
            }
        }
    }
}

/// The advisory lock key of an exchange's ledger: stable, derived from the schema name.
fn lock_key(schema: &str) -> i64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(schema.as_bytes());
    i64::from_le_bytes(digest[..8].try_into().expect("eight bytes"))
}
