//! The location service: bindings from an address-of-record to contacts (RFC 3261 §10.2, §10.3).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sip::Transport;
use thiserror::Error;

/// Where a REGISTER came from, so requests for the binding can go back the same way
/// (RFC 3261 §18.2.2 for TCP, RFC 7118 §5 for WebSocket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub transport: Transport,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// The stream connection id (TCP/WS) at registration time.
    pub conn: Option<u64>,
}

/// One contact bound to an address-of-record. Its texts are shared (`Arc<str>`): the
/// location service, the store's writer and the 200 that lists it hold the same copy.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// Canonical AOR, `sip:user@domain` (see [`sip::Uri::aor`]).
    pub aor: Arc<str>,
    /// The contact URI as the UA sent it.
    pub contact: Arc<str>,
    /// Expiry in wall-clock seconds since the Unix epoch.
    pub expires_at: u64,
    /// q-value in thousandths (RFC 3261 §20.10).
    pub q: Option<u16>,
    pub call_id: Arc<str>,
    pub cseq: u32,
    pub flow: FlowRecord,
    pub user_agent: Option<Arc<str>>,
}

impl Binding {
    /// Seconds left at `now`.
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }

    /// True if requests must reuse the registering connection: WebSocket contacts
    /// carry an unroutable `.invalid` host (RFC 7118 §5.2).
    pub fn needs_flow(&self) -> bool {
        matches!(self.flow.transport, Transport::Ws | Transport::Wss)
            || sip::Uri::parse(&self.contact).is_ok_and(|u| u.host_lower().ends_with(".invalid"))
    }
}

#[derive(Debug, Error)]
#[error("location store: {0}")]
pub struct StoreError(pub String);

/// Storage of bindings. The registrar keeps no other copy, so an implementation
/// backed by a database makes registrations survive restarts.
pub trait Locations {
    /// Unexpired bindings of an AOR, highest q first, then newest first.
    fn lookup(&mut self, aor: &str, now: u64) -> Result<Vec<Binding>, StoreError>;
    /// Inserts or replaces the binding with the same `(aor, contact)`.
    fn upsert(&mut self, binding: &Binding) -> Result<(), StoreError>;
    fn remove(&mut self, aor: &str, contact: &str) -> Result<(), StoreError>;
    /// Removes bindings that must reuse connection `conn` (it closed); returns them.
    fn remove_flow(&mut self, conn: u64) -> Result<Vec<Binding>, StoreError>;
    /// Deletes expired bindings; returns how many went.
    fn purge_expired(&mut self, now: u64) -> Result<usize, StoreError>;
    /// Number of stored bindings (expired ones not yet purged included).
    fn count(&mut self) -> Result<usize, StoreError>;
}

/// Orders bindings as [`Locations::lookup`] promises.
pub fn sort_bindings(v: &mut [Binding]) {
    v.sort_by(|a, b| {
        b.q.unwrap_or(1000)
            .cmp(&a.q.unwrap_or(1000))
            .then(b.expires_at.cmp(&a.expires_at))
    });
}

/// In-memory location service, for tests and for running without a data directory.
#[derive(Default)]
pub struct MemoryLocations {
    by_aor: HashMap<Arc<str>, Vec<Binding>>,
}

impl MemoryLocations {
    pub fn new() -> MemoryLocations {
        MemoryLocations::default()
    }
}

impl Locations for MemoryLocations {
    fn lookup(&mut self, aor: &str, now: u64) -> Result<Vec<Binding>, StoreError> {
        let mut v: Vec<Binding> = self
            .by_aor
            .get(aor)
            .map(|v| v.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        sort_bindings(&mut v);
        Ok(v)
    }

    fn upsert(&mut self, binding: &Binding) -> Result<(), StoreError> {
        // Most AORs have one contact: room for exactly one (a plain push would reserve
        // four, ~600 bytes wasted per AOR).
        // A refresh finds its AOR: the key is only copied for a new one.
        let list = match self.by_aor.get_mut(&binding.aor) {
            Some(list) => list,
            None => self
                .by_aor
                .entry(binding.aor.clone())
                .or_insert_with(|| Vec::with_capacity(1)),
        };
        match list.iter_mut().find(|b| b.contact == binding.contact) {
            Some(b) => *b = binding.clone(),
            None => list.push(binding.clone()),
        }
        Ok(())
    }

    fn remove(&mut self, aor: &str, contact: &str) -> Result<(), StoreError> {
        if let Some(list) = self.by_aor.get_mut(aor) {
            list.retain(|b| *b.contact != *contact);
            if list.is_empty() {
                self.by_aor.remove(aor);
            }
        }
        Ok(())
    }

    fn remove_flow(&mut self, conn: u64) -> Result<Vec<Binding>, StoreError> {
        let mut gone = Vec::new();
        self.by_aor.retain(|_, list| {
            list.retain(|b| {
                let hit = b.flow.conn == Some(conn) && b.needs_flow();
                if hit {
                    gone.push(b.clone());
                }
                !hit
            });
            !list.is_empty()
        });
        Ok(gone)
    }

    fn purge_expired(&mut self, now: u64) -> Result<usize, StoreError> {
        let mut n = 0;
        self.by_aor.retain(|_, list| {
            let before = list.len();
            list.retain(|b| b.expires_at > now);
            n += before - list.len();
            !list.is_empty()
        });
        Ok(n)
    }

    fn count(&mut self) -> Result<usize, StoreError> {
        Ok(self.by_aor.values().map(Vec::len).sum())
    }
}

/// One location service shared by several server cores (each with its own registrar and
/// transactions): every call takes the lock for that call only. Cheap to clone.
pub struct SharedLocations<L>(Arc<Mutex<L>>);

impl<L> Clone for SharedLocations<L> {
    fn clone(&self) -> Self {
        SharedLocations(self.0.clone())
    }
}

impl<L: Locations> SharedLocations<L> {
    pub fn new(inner: L) -> Self {
        SharedLocations(Arc::new(Mutex::new(inner)))
    }

    /// The store itself, locked.
    pub fn lock(&self) -> MutexGuard<'_, L> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<L: Locations> Locations for SharedLocations<L> {
    fn lookup(&mut self, aor: &str, now: u64) -> Result<Vec<Binding>, StoreError> {
        self.lock().lookup(aor, now)
    }

    fn upsert(&mut self, binding: &Binding) -> Result<(), StoreError> {
        self.lock().upsert(binding)
    }

    fn remove(&mut self, aor: &str, contact: &str) -> Result<(), StoreError> {
        self.lock().remove(aor, contact)
    }

    fn remove_flow(&mut self, conn: u64) -> Result<Vec<Binding>, StoreError> {
        self.lock().remove_flow(conn)
    }

    fn purge_expired(&mut self, now: u64) -> Result<usize, StoreError> {
        self.lock().purge_expired(now)
    }

    fn count(&mut self) -> Result<usize, StoreError> {
        self.lock().count()
    }
}
