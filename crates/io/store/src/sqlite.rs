//! [`Locations`] on SQLite, write-behind.
//!
//! The bindings live in memory (a [`MemoryLocations`] index, loaded from the file at
//! open): lookups and the registrar's writes never touch SQLite on the SIP core's task.
//! Every change is queued for a writer thread that owns the connection (WAL mode) and
//! applies what has gathered in one transaction (group commit), at most [`GROUP_DELAY`]
//! after the first change of a batch. [`SqliteLocations::flusher`] gives a handle that
//! waits until every change queued so far is committed (the server calls it on
//! shutdown); dropping the store does the same.
//!
//! Durability: a clean stop loses nothing. A crash of the process loses at most the
//! changes of the last [`GROUP_DELAY`] (they were answered 200 but not yet committed);
//! with `synchronous=NORMAL` a power loss may also lose commits made since the last WAL
//! checkpoint. A write that fails is logged (the REGISTER was already answered).

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use registrar::{Binding, FlowRecord, Locations, MemoryLocations, StoreError};
use rusqlite::{Connection, params};
use sip::Transport;
use tracing::{debug, error};

/// Longest time a change waits in memory before its batch is committed.
pub const GROUP_DELAY: Duration = Duration::from_millis(50);

/// Schema version in `PRAGMA user_version`. Version 2: the bindings are the primary-key
/// B-tree itself (`WITHOUT ROWID`) and no secondary index, so a refresh updates one row
/// in place (version 1 had a rowid table, a primary-key index and indexes on `conn` and
/// `expires_at`: a refresh re-inserted the row into four B-trees). Lookups by `conn` or
/// expiry are served from memory; the purge every 30 s scans the table.
const VERSION: i64 = 2;

const TABLE: &str = "(
    aor        TEXT NOT NULL,
    contact    TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    q          INTEGER,
    call_id    TEXT NOT NULL,
    cseq       INTEGER NOT NULL,
    transport  TEXT NOT NULL,
    remote     TEXT NOT NULL,
    local      TEXT NOT NULL,
    conn       INTEGER,
    user_agent TEXT,
    PRIMARY KEY (aor, contact)
) WITHOUT ROWID";

const COLUMNS: &str =
    "aor, contact, expires_at, q, call_id, cseq, transport, remote, local, conn, user_agent";

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A change for the writer thread.
#[derive(Debug)]
enum Op {
    Upsert(Binding),
    Remove { aor: String, contact: String },
    Purge(u64),
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    /// Changes ever queued, and ever committed (or given up on after an error).
    queued: u64,
    done: u64,
    /// A flush is waiting: commit without waiting for the batch to gather.
    urgent: bool,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer (first change of a batch, flush, shutdown).
    work: Condvar,
    /// Wakes flushers when `done` moves.
    committed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, op: Op) {
        let mut q = self.lock();
        let first = q.ops.is_empty();
        q.ops.push(op);
        q.queued += 1;
        drop(q);
        // Only the first change of a batch wakes the writer; later ones ride along.
        if first {
            self.work.notify_one();
        }
    }

    /// Blocks until every change queued before the call is committed.
    fn flush(&self) {
        let mut q = self.lock();
        let target = q.queued;
        if q.done >= target {
            return;
        }
        q.urgent = true;
        self.work.notify_one();
        while q.done < target {
            q = self
                .committed
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Waits for the location store's pending writes; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct StoreFlusher(Arc<Shared>);

impl StoreFlusher {
    /// Blocks until every change made before the call is committed to the file.
    pub fn flush(&self) {
        self.0.flush();
    }
}

pub struct SqliteLocations {
    mem: MemoryLocations,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl SqliteLocations {
    /// Opens (creating if needed) the database at `path` and loads its bindings.
    ///
    /// Connection ids do not survive a restart, so bindings that could only be reached
    /// over a connection (WebSocket) are dropped on open.
    pub fn open(path: &Path) -> Result<SqliteLocations, StoreError> {
        let db = Connection::open(path).map_err(err)?;
        Self::init(db)
    }

    pub fn in_memory() -> Result<SqliteLocations, StoreError> {
        Self::init(Connection::open_in_memory().map_err(err)?)
    }

    fn init(db: Connection) -> Result<SqliteLocations, StoreError> {
        // WAL + NORMAL: durable across process crashes, fsync only at checkpoints.
        let _mode: String = db
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err)?;
        db.execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(err)?;
        migrate(&db).map_err(err)?;
        db.execute("DELETE FROM bindings WHERE transport IN ('WS','WSS')", [])
            .map_err(err)?;
        let mut mem = MemoryLocations::new();
        {
            let mut stmt = db
                .prepare(&format!("SELECT {COLUMNS} FROM bindings"))
                .map_err(err)?;
            let rows = stmt.query_map([], row).map_err(err)?;
            for r in rows {
                if let Some(b) = r.map_err(err)? {
                    mem.upsert(&b)?;
                }
            }
        }
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let writer = std::thread::Builder::new()
            .name("location-store".into())
            .spawn(move || writer(db, &s))
            .map_err(err)?;
        Ok(SqliteLocations {
            mem,
            shared,
            writer: Some(writer),
        })
    }

    /// A handle that waits for pending writes (for shutdown).
    pub fn flusher(&self) -> StoreFlusher {
        StoreFlusher(self.shared.clone())
    }

    /// Blocks until every change made so far is committed.
    pub fn flush(&self) {
        self.shared.flush();
    }
}

impl Drop for SqliteLocations {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.work.notify_one();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Creates the table, or brings one written by an older version to [`VERSION`].
fn migrate(db: &Connection) -> rusqlite::Result<()> {
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= VERSION {
        return Ok(());
    }
    let old: i64 = db.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'bindings'",
        [],
        |r| r.get(0),
    )?;
    let copy = if old > 0 {
        format!(
            "INSERT OR REPLACE INTO bindings_v{VERSION} ({COLUMNS}) SELECT {COLUMNS} FROM bindings;
             DROP TABLE bindings;"
        )
    } else {
        String::new()
    };
    db.execute_batch(&format!(
        "BEGIN;
         CREATE TABLE bindings_v{VERSION} {TABLE};
         {copy}
         ALTER TABLE bindings_v{VERSION} RENAME TO bindings;
         PRAGMA user_version = {VERSION};
         COMMIT;"
    ))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Binding>> {
    let transport: String = r.get(6)?;
    let remote: String = r.get(7)?;
    let local: String = r.get(8)?;
    let (Some(transport), Ok(remote), Ok(local)) =
        (Transport::parse(&transport), remote.parse(), local.parse())
    else {
        return Ok(None);
    };
    Ok(Some(Binding {
        aor: r.get::<_, String>(0)?.into(),
        contact: r.get::<_, String>(1)?.into(),
        expires_at: r.get::<_, i64>(2)? as u64,
        q: r.get::<_, Option<i64>>(3)?.map(|q| q as u16),
        call_id: r.get::<_, String>(4)?.into(),
        cseq: r.get::<_, i64>(5)? as u32,
        flow: FlowRecord {
            transport,
            remote,
            local,
            conn: r.get::<_, Option<i64>>(9)?.map(|c| c as u64),
        },
        user_agent: r.get::<_, Option<String>>(10)?.map(Arc::from),
    }))
}

/// The writer thread: waits for a batch to gather, commits it in one transaction.
fn writer(db: Connection, shared: &Shared) {
    // The batch being written. Swapped with the queue's, so both keep their capacity:
    // the core's pushes do not grow a fresh vector every batch.
    let mut ops = Vec::new();
    loop {
        let mut q = shared.lock();
        while q.ops.is_empty() && !q.shutdown {
            q = shared.work.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        if q.ops.is_empty() && q.shutdown {
            return;
        }
        // Let the batch gather, unless someone waits for it.
        let deadline = Instant::now() + GROUP_DELAY;
        while !q.urgent && !q.shutdown {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            q = shared
                .work
                .wait_timeout(q, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut q.ops, &mut ops);
        let upto = q.queued;
        q.urgent = false;
        drop(q);
        let started = Instant::now();
        if let Err(e) = apply(&db, &ops) {
            error!(error = %e, changes = ops.len(), "location store: write failed");
        }
        debug!(changes = ops.len(), took = ?started.elapsed(), "location store: committed");
        let mut q = shared.lock();
        q.done = upto;
        drop(q);
        shared.committed.notify_all();
        ops.clear();
    }
}

const UPSERT: &str = "INSERT INTO bindings (aor, contact, expires_at, q, call_id, cseq, \
    transport, remote, local, conn, user_agent) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) \
    ON CONFLICT (aor, contact) DO UPDATE SET expires_at = ?3, q = ?4, call_id = ?5, cseq = ?6, \
    transport = ?7, remote = ?8, local = ?9, conn = ?10, user_agent = ?11";

/// Applies one batch in one transaction. Every statement, BEGIN and COMMIT included, is
/// prepared once and cached on the connection.
fn apply(db: &Connection, ops: &[Op]) -> rusqlite::Result<()> {
    db.prepare_cached("BEGIN")?.execute([])?;
    let done = write_ops(db, ops).and_then(|()| db.prepare_cached("COMMIT")?.execute([]));
    if let Err(e) = done {
        let _ = db.execute_batch("ROLLBACK");
        return Err(e);
    }
    Ok(())
}

fn write_ops(db: &Connection, ops: &[Op]) -> rusqlite::Result<()> {
    // An update in place when the binding exists (a refresh, the common case).
    let mut upsert = db.prepare_cached(UPSERT)?;
    let mut remove = db.prepare_cached("DELETE FROM bindings WHERE aor = ?1 AND contact = ?2")?;
    let mut purge = db.prepare_cached("DELETE FROM bindings WHERE expires_at <= ?1")?;
    for op in ops {
        match op {
            Op::Upsert(b) => {
                upsert.execute(params![
                    b.aor,
                    b.contact,
                    b.expires_at as i64,
                    b.q.map(i64::from),
                    b.call_id,
                    b.cseq as i64,
                    b.flow.transport.as_str(),
                    b.flow.remote.to_string(),
                    b.flow.local.to_string(),
                    b.flow.conn.map(|c| c as i64),
                    b.user_agent,
                ])?;
            }
            Op::Remove { aor, contact } => {
                remove.execute(params![aor, contact])?;
            }
            Op::Purge(now) => {
                purge.execute(params![*now as i64])?;
            }
        }
    }
    Ok(())
}

impl Locations for SqliteLocations {
    fn lookup(&mut self, aor: &str, now: u64) -> Result<Vec<Binding>, StoreError> {
        self.mem.lookup(aor, now)
    }

    fn upsert(&mut self, b: &Binding) -> Result<(), StoreError> {
        self.mem.upsert(b)?;
        self.shared.push(Op::Upsert(b.clone()));
        Ok(())
    }

    fn remove(&mut self, aor: &str, contact: &str) -> Result<(), StoreError> {
        self.mem.remove(aor, contact)?;
        self.shared.push(Op::Remove {
            aor: aor.to_string(),
            contact: contact.to_string(),
        });
        Ok(())
    }

    fn remove_flow(&mut self, conn: u64) -> Result<Vec<Binding>, StoreError> {
        let gone = self.mem.remove_flow(conn)?;
        for b in &gone {
            self.shared.push(Op::Remove {
                aor: b.aor.to_string(),
                contact: b.contact.to_string(),
            });
        }
        Ok(gone)
    }

    fn purge_expired(&mut self, now: u64) -> Result<usize, StoreError> {
        let n = self.mem.purge_expired(now)?;
        if n > 0 {
            self.shared.push(Op::Purge(now));
        }
        Ok(n)
    }

    fn count(&mut self) -> Result<usize, StoreError> {
        self.mem.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(aor: &str, contact: &str, transport: Transport, conn: Option<u64>) -> Binding {
        Binding {
            aor: aor.into(),
            contact: contact.into(),
            expires_at: 1000,
            q: Some(500),
            call_id: "c".into(),
            cseq: 1,
            flow: FlowRecord {
                transport,
                remote: "127.0.0.1:4000".parse().unwrap(),
                local: "127.0.0.1:5060".parse().unwrap(),
                conn,
            },
            user_agent: Some("ua".into()),
        }
    }

    fn temp_db(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("sb-store-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("locations.db");
        let _ = std::fs::remove_file(&path);
        (dir, path)
    }

    fn rows_on_disk(path: &Path) -> i64 {
        let db = Connection::open(path).unwrap();
        db.query_row("SELECT COUNT(*) FROM bindings", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn bindings_survive_reopen() {
        let (dir, path) = temp_db("reopen");
        {
            let mut db = SqliteLocations::open(&path).unwrap();
            db.upsert(&binding("sip:a@x", "sip:a@h", Transport::Udp, None))
                .unwrap();
            db.upsert(&binding(
                "sip:a@x",
                "sip:a@w.invalid;transport=ws",
                Transport::Ws,
                Some(3),
            ))
            .unwrap();
            assert_eq!(db.lookup("sip:a@x", 10).unwrap().len(), 2);
            // Dropped here: pending writes are committed before the thread ends.
        }
        let mut db = SqliteLocations::open(&path).unwrap();
        let got = db.lookup("sip:a@x", 10).unwrap();
        assert_eq!(
            got,
            vec![binding("sip:a@x", "sip:a@h", Transport::Udp, None)]
        );
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flush_commits_every_change_made_before_it() {
        let (dir, path) = temp_db("flush");
        let mut db = SqliteLocations::open(&path).unwrap();
        let flusher = db.flusher();
        for i in 0..500 {
            db.upsert(&binding(
                &format!("sip:u{i}@x"),
                "sip:u@h",
                Transport::Udp,
                None,
            ))
            .unwrap();
        }
        db.remove("sip:u7@x", "sip:u@h").unwrap();
        // Visible in memory at once, on disk after the flush.
        assert_eq!(db.count().unwrap(), 499);
        flusher.flush();
        assert_eq!(rows_on_disk(&path), 499);
        // The writer batches: far fewer commits than changes is the point, but the
        // observable contract is the flush, and that an idle store stays flushed.
        flusher.flush();
        db.purge_expired(2000).unwrap();
        db.flush();
        assert_eq!(rows_on_disk(&path), 0);
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn changes_reach_the_file_without_a_flush() {
        let (dir, path) = temp_db("behind");
        let mut db = SqliteLocations::open(&path).unwrap();
        db.upsert(&binding("sip:a@x", "sip:a@h", Transport::Udp, None))
            .unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while rows_on_disk(&path) == 0 && Instant::now() < until {
            std::thread::sleep(GROUP_DELAY);
        }
        assert_eq!(rows_on_disk(&path), 1);
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_version_1_file_is_migrated_with_its_bindings() {
        let (dir, path) = temp_db("migrate");
        {
            // The schema written by the first release (rowid table and three indexes).
            let db = Connection::open(&path).unwrap();
            db.execute_batch(
                "CREATE TABLE bindings (aor TEXT NOT NULL, contact TEXT NOT NULL,
                 expires_at INTEGER NOT NULL, q INTEGER, call_id TEXT NOT NULL,
                 cseq INTEGER NOT NULL, transport TEXT NOT NULL, remote TEXT NOT NULL,
                 local TEXT NOT NULL, conn INTEGER, user_agent TEXT, PRIMARY KEY (aor, contact));
                 CREATE INDEX bindings_conn ON bindings(conn) WHERE conn IS NOT NULL;
                 CREATE INDEX bindings_expiry ON bindings(expires_at);
                 INSERT INTO bindings VALUES ('sip:a@x', 'sip:a@h', 1000, 500, 'c', 1, 'UDP',
                 '127.0.0.1:4000', '127.0.0.1:5060', NULL, 'ua');",
            )
            .unwrap();
        }
        let mut db = SqliteLocations::open(&path).unwrap();
        assert_eq!(
            db.lookup("sip:a@x", 10).unwrap(),
            vec![binding("sip:a@x", "sip:a@h", Transport::Udp, None)]
        );
        // A refresh after the migration updates the row in place.
        let mut b = binding("sip:a@x", "sip:a@h", Transport::Udp, None);
        b.expires_at = 2000;
        b.cseq = 2;
        db.upsert(&b).unwrap();
        db.flush();
        drop(db);
        let raw = Connection::open(&path).unwrap();
        let version: i64 = raw
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
        let indexes: i64 = raw
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0);
        let (expires, cseq): (i64, i64) = raw
            .query_row("SELECT expires_at, cseq FROM bindings", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((expires, cseq), (2000, 2));
        drop(raw);
        // Opening the migrated file again changes nothing.
        let mut db = SqliteLocations::open(&path).unwrap();
        assert_eq!(db.lookup("sip:a@x", 10).unwrap(), vec![b]);
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flow_removal_and_purge() {
        let mut db = SqliteLocations::in_memory().unwrap();
        db.upsert(&binding(
            "sip:a@x",
            "sip:a@w.invalid;transport=ws",
            Transport::Ws,
            Some(3),
        ))
        .unwrap();
        db.upsert(&binding("sip:b@x", "sip:b@h", Transport::Tcp, Some(3)))
            .unwrap();
        assert_eq!(db.remove_flow(3).unwrap().len(), 1);
        assert_eq!(db.count().unwrap(), 1);
        assert!(db.lookup("sip:b@x", 1000).unwrap().is_empty());
        assert_eq!(db.purge_expired(1000).unwrap(), 1);
        assert_eq!(db.count().unwrap(), 0);
        db.flush();
    }
}
