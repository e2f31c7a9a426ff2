//! [`Locations`] on SQLite (WAL mode, one connection owned by the SIP core's task).

use std::path::Path;

use registrar::{Binding, FlowRecord, Locations, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use sip::Transport;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bindings (
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
);
CREATE INDEX IF NOT EXISTS bindings_conn ON bindings(conn) WHERE conn IS NOT NULL;
CREATE INDEX IF NOT EXISTS bindings_expiry ON bindings(expires_at);
";

pub struct SqliteLocations {
    db: Connection,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl SqliteLocations {
    /// Opens (creating if needed) the database at `path`.
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
        db.execute_batch(SCHEMA).map_err(err)?;
        db.execute("DELETE FROM bindings WHERE transport IN ('WS','WSS')", [])
            .map_err(err)?;
        Ok(SqliteLocations { db })
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
            aor: r.get(0)?,
            contact: r.get(1)?,
            expires_at: r.get::<_, i64>(2)? as u64,
            q: r.get::<_, Option<i64>>(3)?.map(|q| q as u16),
            call_id: r.get(4)?,
            cseq: r.get::<_, i64>(5)? as u32,
            flow: FlowRecord {
                transport,
                remote,
                local,
                conn: r.get::<_, Option<i64>>(9)?.map(|c| c as u64),
            },
            user_agent: r.get(10)?,
        }))
    }
}

const COLUMNS: &str =
    "aor, contact, expires_at, q, call_id, cseq, transport, remote, local, conn, user_agent";

impl Locations for SqliteLocations {
    fn lookup(&mut self, aor: &str, now: u64) -> Result<Vec<Binding>, StoreError> {
        let mut stmt = self
            .db
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM bindings WHERE aor = ?1 AND expires_at > ?2"
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map(params![aor, now as i64], Self::row)
            .map_err(err)?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(b) = r.map_err(err)? {
                out.push(b);
            }
        }
        registrar::location::sort_bindings(&mut out);
        Ok(out)
    }

    fn upsert(&mut self, b: &Binding) -> Result<(), StoreError> {
        let mut stmt = self
            .db
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO bindings ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"
            ))
            .map_err(err)?;
        stmt.execute(params![
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
        ])
        .map_err(err)?;
        Ok(())
    }

    fn remove(&mut self, aor: &str, contact: &str) -> Result<(), StoreError> {
        self.db
            .prepare_cached("DELETE FROM bindings WHERE aor = ?1 AND contact = ?2")
            .and_then(|mut s| s.execute(params![aor, contact]))
            .map_err(err)?;
        Ok(())
    }

    fn remove_flow(&mut self, conn: u64) -> Result<Vec<Binding>, StoreError> {
        let mut stmt = self
            .db
            .prepare_cached(&format!("SELECT {COLUMNS} FROM bindings WHERE conn = ?1"))
            .map_err(err)?;
        let rows = stmt
            .query_map(params![conn as i64], Self::row)
            .map_err(err)?;
        let mut gone = Vec::new();
        for r in rows {
            if let Some(b) = r.map_err(err)?
                && b.needs_flow()
            {
                gone.push(b);
            }
        }
        drop(stmt);
        for b in &gone {
            self.remove(&b.aor, &b.contact)?;
        }
        Ok(gone)
    }

    fn purge_expired(&mut self, now: u64) -> Result<usize, StoreError> {
        self.db
            .execute(
                "DELETE FROM bindings WHERE expires_at <= ?1",
                params![now as i64],
            )
            .map_err(err)
    }

    fn count(&mut self) -> Result<usize, StoreError> {
        let n: Option<i64> = self
            .db
            .query_row("SELECT COUNT(*) FROM bindings", [], |r| r.get(0))
            .optional()
            .map_err(err)?;
        Ok(n.unwrap_or(0) as usize)
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

    #[test]
    fn bindings_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("sb-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("locations.db");
        let _ = std::fs::remove_file(&path);
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
        }
        let mut db = SqliteLocations::open(&path).unwrap();
        let got = db.lookup("sip:a@x", 10).unwrap();
        assert_eq!(
            got,
            vec![binding("sip:a@x", "sip:a@h", Transport::Udp, None)]
        );
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
    }
}
