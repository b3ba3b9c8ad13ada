//! The node's one writer task: group commit into the exchange's ledger.
//!
//! It collects every change that arrived while the previous batch was committing, then — in one transaction
//! — takes the exchange's ledger lock, catches the books up with the other nodes' rows, runs the changes
//! against the current books, inserts their entries and commits. BEGIN, the lock and the catch-up travel in
//! one round trip, INSERT and COMMIT in a second: tokio-postgres sends queries issued together in the order
//! they are issued, and the catch-up and the INSERT are prepared statements (see [`super::Session`]), so
//! each reaches the server inside the transaction, after what precedes it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

use super::{Backend, Cursor, Inner, Session};
use crate::ids::new_id;
use crate::ledger::books::Books;
use crate::ledger::entry::Entry;
use crate::ledger::store::{Balances, Shared};
use crate::ledger::LedgerError;

/// Stops draining the queue once a batch holds this many changes, so one batch's latency stays bounded.
const MAX_BATCH: usize = 4096;

/// A change to run: `Some(entries)` to record (and then answer), `None` when it refused (it answered itself).
pub(super) type Run = Box<dyn FnOnce(&Books, &Balances) -> Option<Vec<Entry>> + Send>;

/// What the writer is asked.
pub(super) enum Job {
    Change {
        run: Run,
        done: oneshot::Sender<Result<(), LedgerError>>,
        submitted: tokio::time::Instant,
    },
    /// Wake up (e.g. to rebuild untrusted books) with nothing to record.
    Nudge,
    /// Finish what is queued, then stop.
    Stop,
}

impl Job {
    pub(super) fn nudge() -> Job {
        Job::Nudge
    }

    pub(super) fn stop() -> Job {
        Job::Stop
    }
}

/// Who waits for a change's commit, and since when.
type Waiter = (oneshot::Sender<Result<(), LedgerError>>, tokio::time::Instant);

/// Runs until asked to stop or every sender is gone.
pub(super) async fn run(inner: Arc<Inner>, shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    // Opened now rather than at the first change, so the node's first sale does not wait for it.
    let mut session: Option<Session> = inner.open_session().await.ok();
    let mut stopping = false;
    while !stopping {
        let Some(first) = jobs.recv().await else { break };
        let mut batch = Vec::new();
        let mut take = |job: Job, batch: &mut Vec<(Run, Waiter)>| match job {
            Job::Change { run, done, submitted } => batch.push((run, (done, submitted))),
            Job::Nudge => {}
            Job::Stop => stopping = true,
        };
        take(first, &mut batch);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => take(job, &mut batch),
                Err(_) => break,
            }
        }
        if session.as_ref().is_none_or(Session::is_closed) {
            session = inner.open_session().await.ok();
        }
        let Some(open) = session.as_ref() else {
            fail(batch, "PostgreSQL cannot be reached");
            continue;
        };
        if commit_batch(&inner, &shared, open, batch).await.is_err() {
            session = None;
        }
    }
}

/// Answers every waiter of a batch that could not run: nothing was recorded.
fn fail(batch: Vec<(Run, Waiter)>, why: &str) {
    for (_, (done, _)) in batch {
        let _ = done.send(Err(LedgerError::Unavailable(why.to_owned())));
    }
}

/// One batch, start to finish. `Err` means the connection should be replaced.
async fn commit_batch(inner: &Inner, shared: &Shared, session: &Session, batch: Vec<(Run, Waiter)>) -> Result<(), ()> {
    let client = &session.client;
    let mut cursor = inner.cursor.lock().await;
    if cursor.untrusted {
        if let Err(error) = rebuild(inner, shared, client, &mut cursor).await {
            fail(batch, &error.to_string());
            return Err(());
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    let begin_sql = format!("BEGIN; SELECT pg_advisory_xact_lock({})", inner.lock_key);
    let begin = client.batch_execute(&begin_sql);
    let after: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&cursor.seq];
    let catch_up = client.query(&session.catch_up, &after);
    let (begun, rows) = tokio::join!(inner.round_trip("begin", begin), inner.round_trip("catch_up", catch_up));
    let rows = match begun.and(rows) {
        Ok(rows) => rows,
        Err(trip) => {
            fail(batch, &trip.message);
            // A statement that timed out may still be running (waiting on a lock): a ROLLBACK would queue
            // behind it for as long as it lasts. The connection is let go instead; the server rolls back.
            return if trip.refused { roll_back(inner, client).await } else { Err(()) };
        }
    };
    if let Err(error) = inner.apply_rows(shared, &rows, &mut cursor) {
        fail(batch, &error.to_string());
        return roll_back(inner, client).await;
    }

    let batch_id = new_id("b_");
    let mut out = Rows::default();
    let mut waiting = Vec::new();
    let mut own = Vec::new();
    let mut next = cursor.seq;
    {
        let mut books = shared.books.lock();
        for (run, done) in batch {
            match run(&books, &shared.balances) {
                // A change with nothing to record (a repeated deposit) waits for the batch too: it may answer
                // with an entry of this batch, which nobody is told of before COMMIT.
                Some(entries) => {
                    for entry in entries {
                        next += 1;
                        out.push(next, &entry);
                        own.push(entry.clone());
                        shared.apply(&mut books, entry);
                    }
                    waiting.push(done);
                }
                // Refused: answered now (the change sent its own answer).
                None => {
                    let _ = done.0.send(Ok(()));
                }
            }
        }
    }
    if own.is_empty() {
        // Nothing to record: what the changes read was committed before this batch.
        for (done, _) in waiting {
            let _ = done.send(Ok(()));
        }
        return roll_back(inner, client).await;
    }
    // The books now hold entries the log may never get; they are trusted again once COMMIT is known.
    cursor.untrusted = true;
    let node = &inner.options.node;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] =
        [node, &batch_id, &out.seq, &out.kind, &out.lead_id, &out.ping_id, &out.buyer, &out.return_id, &out.entry];
    let insert = client.execute(&session.insert, &params);
    let commit = client.batch_execute("COMMIT");
    let (inserted, committed) = tokio::join!(inner.round_trip("insert", insert), inner.round_trip("commit", commit));
    let outcome = match (inserted, committed) {
        (Ok(_), Ok(())) => Outcome::Committed,
        // The server refused the rows (a unique index: a rule a change should have caught): rolled back.
        (Err(trip), _) if trip.refused => Outcome::RolledBack(trip.message),
        (Err(trip), _) | (_, Err(trip)) => Outcome::Unknown(trip.message),
    };
    let outcome = match outcome {
        Outcome::Unknown(why) => {
            // Reads answer 503 meanwhile (the books are untrusted) instead of waiting for the lock.
            drop(cursor);
            let settled = settle(inner, &batch_id, session.backend).await;
            cursor = inner.cursor.lock().await;
            match settled {
                Some(true) => Outcome::Committed,
                Some(false) => Outcome::RolledBack(why),
                None => Outcome::Unknown(why),
            }
        }
        known => known,
    };
    // What a change not known to be committed answers: a batch rolled back recorded nothing (503 saying so);
    // one of unknown outcome may have (503 saying that).
    let (why, known) = match outcome {
        Outcome::Committed => {
            cursor.seq = next;
            cursor.untrusted = false;
            drop(cursor);
            for (done, submitted) in waiting {
                if let Some(observe) = &inner.options.on_commit {
                    observe(submitted.elapsed());
                }
                let _ = done.send(Ok(()));
            }
            shared.committed(&own);
            return Ok(());
        }
        Outcome::RolledBack(why) => (why, true),
        Outcome::Unknown(why) => (why, false),
    };
    tracing::error!(reason = %why, known, changes = waiting.len(), "ledger batch not committed, or not known to be; rebuilding the books");
    let error = if known { LedgerError::Unavailable } else { LedgerError::OutcomeUnknown };
    for (done, _) in waiting {
        let _ = done.send(Err(error(why.clone())));
    }
    Err(())
}

/// Ends the open transaction; `Err` (replace the connection) when even that does not come back in time.
async fn roll_back(inner: &Inner, client: &Client) -> Result<(), ()> {
    inner.round_trip("rollback", client.batch_execute("ROLLBACK")).await.map_err(drop)
}

/// How a batch ended.
enum Outcome {
    Committed,
    RolledBack(String),
    /// The connection died around COMMIT and the log could not be asked for [`OUTCOME_ASK_FOR`]: the change
    /// is answered as of unknown outcome (503 saying so); the rebuild that follows shows what happened.
    Unknown(String),
}

/// How long the log is asked, again and again, about a batch whose COMMIT went unanswered before its changes
/// are answered "outcome unknown". A PostgreSQL that restarts or a connection cut by a proxy usually answers
/// again within it, and the change gets its true answer: a deposit that committed is answered as booked, not
/// as a 503 the operator would retry (and book twice).
const OUTCOME_ASK_FOR: Duration = Duration::from_secs(10);

/// Asks [`batch_committed`] until it knows, at most [`OUTCOME_ASK_FOR`], with backoff.
async fn settle(inner: &Inner, batch_id: &str, backend: Backend) -> Option<bool> {
    let give_up = tokio::time::Instant::now() + OUTCOME_ASK_FOR;
    let mut wait = Duration::from_millis(100);
    loop {
        if let Ok(Some(known)) = tokio::time::timeout_at(give_up, batch_committed(inner, batch_id, backend)).await {
            return Some(known);
        }
        if tokio::time::Instant::now() + wait >= give_up {
            return None;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(1));
    }
}

/// How long the server process that ran a batch of unknown outcome is given to end.
const BACKEND_END_WAIT_MS: i64 = 4_000;

/// Asks the log on a fresh connection whether a batch committed, once the server process that ran it
/// (`backend`) is gone. That process may still be running the batch — an INSERT waiting on a lock past this
/// node's timeout, a slow disk — with its COMMIT already sent: asked before it ends, the log could say "not
/// committed" of a batch that commits a moment later, and a change answered "nothing was recorded" (a
/// deposit the operator then makes again) would be booked. It is ended first (`pg_terminate_backend`, which
/// waits for it to exit): whatever it had not committed is rolled back, and the answer is final. `None`
/// when that cannot be made sure of.
async fn batch_committed(inner: &Inner, batch_id: &str, backend: Backend) -> Option<bool> {
    let client = inner.connect().await.ok()?;
    let listed = "FROM pg_stat_activity \
        WHERE pid = $1 AND (extract(epoch FROM backend_start) * 1000000)::bigint = $2";
    let end = format!("SELECT pg_terminate_backend(pid, {BACKEND_END_WAIT_MS}) {listed}");
    let process: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&backend.pid, &backend.started_us];
    inner.round_trip("end_backend", client.query(&end, &process)).await.ok()?;
    // Ended in time, or gone already (a lost connection), unless still listed.
    let still = format!("SELECT count(*) {listed}");
    let running = inner.round_trip("end_backend", client.query_one(&still, &process)).await.ok()?;
    if running.get::<_, i64>(0) > 0 {
        return None;
    }
    let sql = format!("SELECT count(*) FROM {}.entries WHERE batch = $1", inner.schema);
    let rows = inner.round_trip("check_batch", client.query_one(&sql, &[&batch_id])).await.ok()?;
    Some(rows.get::<_, i64>(0) > 0)
}

/// Replaces this node's books with the log's.
async fn rebuild(inner: &Inner, shared: &Shared, client: &Client, cursor: &mut Cursor) -> Result<(), LedgerError> {
    let (books, seq) = inner.load_all(client).await?;
    shared.replace(books);
    cursor.seq = seq;
    cursor.untrusted = false;
    tracing::info!(seq, "ledger books rebuilt from PostgreSQL");
    Ok(())
}

/// A batch's rows as column arrays, for one `INSERT … SELECT FROM UNNEST(…)`.
#[derive(Default)]
struct Rows {
    seq: Vec<i64>,
    kind: Vec<&'static str>,
    lead_id: Vec<Option<String>>,
    ping_id: Vec<Option<String>>,
    buyer: Vec<Option<String>>,
    return_id: Vec<Option<String>>,
    entry: Vec<String>,
}

impl Rows {
    fn push(&mut self, seq: i64, entry: &Entry) {
        let (kind, lead_id, ping_id, buyer, return_id) = match entry {
            Entry::Sale { sale, .. } => ("sale", Some(&sale.lead_id), Some(&sale.ping_id), Some(&sale.buyer), None),
            Entry::Deposit { deposit, .. } => ("deposit", None, None, Some(&deposit.buyer), None),
            Entry::Payout { .. } => ("payout", None, None, None, None),
            Entry::Return { filed } => {
                ("return", Some(&filed.lead_id), None, Some(&filed.buyer), Some(&filed.return_id))
            }
            Entry::Decision { decision } => ("decision", None, None, None, Some(&decision.return_id)),
            Entry::Terms { terms } => ("terms", None, None, Some(&terms.buyer), None),
            Entry::Standing { buyer, .. } => ("standing", None, None, Some(buyer), None),
        };
        self.seq.push(seq);
        self.kind.push(kind);
        self.lead_id.push(lead_id.cloned());
        self.ping_id.push(ping_id.cloned());
        self.buyer.push(buyer.cloned());
        self.return_id.push(return_id.cloned());
        self.entry.push(serde_json::to_string(entry).expect("entries serialize"));
    }
}
