//! The SIP transaction layer, sans-IO: RFC 3261 §17
//! (<https://www.rfc-editor.org/rfc/rfc3261#section-17>) with the fix of RFC 6026
//! (<https://www.rfc-editor.org/rfc/rfc6026>), for a stateful proxy, a registrar or a UA.
//!
//! [`Transactions`] holds every client and server transaction of one element. It has
//! four kinds of input ([`Transactions::receive`], [`Transactions::send_request`],
//! [`Transactions::respond`] / [`Transactions::transport_error`], and
//! [`Transactions::handle_timeout`]) and two outputs ([`Transactions::poll_output`] and
//! [`Transactions::poll_timeout`]). It never reads a clock: every input carries `now`.
//!
//! **Drain rule**: after every call that takes `&mut self`, drain
//! [`Transactions::poll_output`] to `None` before making the next call, then sleep until
//! [`Transactions::poll_timeout`] and call [`Transactions::handle_timeout`].
//!
//! ```
//! # use std::time::Instant;
//! # use switchboard_sip::transaction::{Config, Output, Transactions};
//! # fn run(now: Instant, msg: switchboard_sip::Message, flow: switchboard_sip::transaction::Flow) {
//! let mut txns = Transactions::new(Config::default());
//! txns.receive(now, msg, flow);
//! while let Some(out) = txns.poll_output() {
//!     match out {
//!         Output::Transmit { flow, bytes } => { /* send `bytes` on `flow` */ let _ = (flow, bytes); }
//!         Output::Event(event) => { /* hand `event` to the TU */ let _ = event; }
//!     }
//! }
//! # }
//! ```
//!
//! What the layer implements, and where it departs from the text:
//!
//! - The four machines of §17.1.1, §17.1.2, §17.2.1 and §17.2.2, with RFC 6026's
//!   Accepted state in both INVITE machines (Timers L and M), so that 2xx responses and
//!   their ACKs are never absorbed by a transaction that has gone away.
//! - Matching per §17.1.3 (branch + CSeq method) and §17.2.3 (branch + sent-by + method,
//!   ACK matching INVITE), with the RFC 2543 fallback for requests whose branch lacks the
//!   `z9hG4bK` cookie.
//! - Timers per Table 4 with T1/T2/T4 from [`Config`]; Timer D is 32 s on unreliable
//!   transports. T1 and T2 below 1 ms are raised to 1 ms (a zero interval would
//!   retransmit forever in one call).
//! - Responses are sent back on the flow the request that created the server transaction
//!   arrived on (for UDP its source address, as with RFC 3581 `rport`), retransmissions
//!   included; the I/O layer may redirect per §18.2.2 (e.g. a closed connection).
//! - A request without a parseable top Via or CSeq (or, for an RFC 2543 request, From,
//!   To or Call-ID) is dropped: the TU validates requests before feeding them in. A
//!   response without a usable Via branch or CSeq is reported as
//!   [`Event::StrayResponse`].
//! - When Timer H fires (no ACK for a 300-699 response) the transaction just ends with
//!   [`Event::Terminated`]; transport errors on server transactions do the same.
//!
//! No call panics, whatever the order of calls or the content of the messages.

mod client;
mod server;
mod timer;

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::builder::{Reply, ResponseBuilder};
use crate::header::{BRANCH_MAGIC, Transport};
use crate::message::Message;
use crate::method::Method;

use client::{InviteClient, NonInviteClient};
use server::{InviteServer, Legacy, LegacyMatch, NonInviteServer};
use timer::{Timer, TimerQueue, TimerTable};

/// Timer values (RFC 3261 §17.1.1.1 and Table 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// RTT estimate; 500 ms by default.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses; 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network; 5 s.
    pub t4: Duration,
    /// Send "100 Trying" as soon as an INVITE server transaction is created (§17.2.1:
    /// MUST unless the TU answers within 200 ms). Default true.
    pub auto_trying: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            auto_trying: true,
        }
    }
}

impl Config {
    /// 64*T1: Timers B, F, H, J (unreliable), L and M.
    fn t64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Where a message came from / goes to. `conn` identifies a stream connection (TCP/WS)
/// owned by the I/O layer; `None` for UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Reliable transports get no retransmissions and zero Timers D, I, J and K.
    pub transport: Transport,
    /// The peer's address (for a received request, its source address).
    pub remote: SocketAddr,
    /// Our address the message came in on or goes out from.
    pub local: SocketAddr,
    /// The stream connection, if any.
    pub conn: Option<u64>,
}

/// A map keyed by ids this process hands out itself (transaction ids, counters), never
/// by values from the network: such keys need no keyed hash against flooding, so a
/// multiplicative hash stands in for SipHash on every message's lookups.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of one integer (the high bits, which hashbrown tags with, are
/// well mixed; sequential ids keep distinct low bits).
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by integer keys; folds any other input in a byte at a time.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A transaction id, unique for the life of a [`Transactions`] (client and server
/// transactions share one id space).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId(u64);

/// What [`Transactions::poll_output`] returns.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send these bytes on this flow.
    Transmit { flow: Flow, bytes: Bytes },
    /// Something for the transaction user.
    Event(Event),
}

/// What the transaction layer tells its user (the TU: proxy core, registrar, UA core).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A new request for the TU. `id` is the server transaction (None for an ACK that
    /// matched no INVITE server transaction, i.e. the ACK for a 2xx, which the TU or
    /// proxy handles statelessly).
    Request {
        id: Option<TxnId>,
        msg: Message,
        flow: Flow,
    },
    /// A response for a client transaction: 1xx and the final response; in the RFC 6026
    /// Accepted state, every further 2xx too.
    Response { id: TxnId, msg: Message, flow: Flow },
    /// A response that matched no client transaction (a proxy forwards stray 2xx
    /// statelessly, §16.7 / RFC 6026 §8.9).
    StrayResponse { msg: Message, flow: Flow },
    /// Timer B or F fired, or the transport failed before a final response: the client
    /// transaction failed and the TU should act as if a 408 arrived (§8.1.3.1).
    Timeout { id: TxnId },
    /// An ACK matched an INVITE server transaction in the Accepted state (RFC 6026 §8.7):
    /// the ACK for the 2xx, passed to the TU.
    Ack { id: TxnId, msg: Message, flow: Flow },
    /// The transaction reached Terminated and was removed. Always the last event for an id.
    Terminated { id: TxnId },
}

/// The caller misused [`Transactions::respond`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    #[error("no such transaction")]
    UnknownTransaction,
    #[error("not a server transaction")]
    NotServerTransaction,
    #[error("not a response")]
    NotAResponse,
    #[error("the transaction's state does not allow this response")]
    InvalidState,
}

/// What a state machine asks of the layer after handling an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Keep,
    /// Move to Terminated: remove the transaction.
    Terminate,
    /// Report [`Event::Timeout`], then terminate.
    Fail,
}

/// The outputs and timer queue a state machine writes to, with the current time.
struct Ctx<'a> {
    now: Instant,
    config: &'a Config,
    out: &'a mut VecDeque<Output>,
    queue: &'a mut TimerQueue,
}

impl Ctx<'_> {
    fn transmit(&mut self, flow: Flow, bytes: Bytes) {
        self.out.push_back(Output::Transmit { flow, bytes });
    }

    fn event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }
}

/// What every transaction has besides its state.
#[derive(Debug)]
struct Core {
    id: TxnId,
    /// Where requests (client) or responses (server) go.
    flow: Flow,
    /// The request that created the transaction, kept while it may be retransmitted
    /// or answered; dropped once the final response is sent or received, so the
    /// transactions waiting out Timers D, J, K, L and M hold only what they re-send.
    request: Option<Message>,
    reliable: bool,
    /// Current interval of the retransmission timer (A, E or G).
    interval: Duration,
    timers: TimerTable,
}

impl Core {
    fn new(id: TxnId, flow: Flow, request: Message, config: &Config) -> Core {
        Core {
            id,
            flow,
            request: Some(request),
            reliable: flow.transport.is_reliable(),
            interval: config.t1,
            timers: TimerTable::default(),
        }
    }

    fn arm(&mut self, ctx: &mut Ctx<'_>, timer: Timer, after: Duration) {
        ctx.queue
            .arm(&mut self.timers, self.id, timer, ctx.now, after);
    }

    /// Arms a timer whose firing ends the transaction; a zero duration (reliable
    /// transports: Timers D, I, J, K) ends it at once.
    fn arm_end(&mut self, ctx: &mut Ctx<'_>, timer: Timer, after: Duration) -> Step {
        if after.is_zero() {
            Step::Terminate
        } else {
            self.arm(ctx, timer, after);
            Step::Keep
        }
    }
}

#[derive(Debug)]
enum Machine {
    InviteClient(InviteClient),
    NonInviteClient(NonInviteClient),
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
}

impl Machine {
    fn is_server(&self) -> bool {
        matches!(self, Machine::InviteServer(_) | Machine::NonInviteServer(_))
    }

    /// A client transaction that has not yet passed a final response to the TU.
    fn awaiting_final(&self) -> bool {
        matches!(
            self,
            Machine::InviteClient(InviteClient::Calling | InviteClient::Proceeding)
                | Machine::NonInviteClient(NonInviteClient::Trying | NonInviteClient::Proceeding)
        )
    }

    #[cfg(test)]
    fn state_name(&self) -> &'static str {
        match self {
            Machine::InviteClient(s) => match s {
                InviteClient::Calling => "Calling",
                InviteClient::Proceeding => "Proceeding",
                InviteClient::Completed { .. } => "Completed",
                InviteClient::Accepted => "Accepted",
            },
            Machine::NonInviteClient(s) => match s {
                NonInviteClient::Trying => "Trying",
                NonInviteClient::Proceeding => "Proceeding",
                NonInviteClient::Completed => "Completed",
            },
            Machine::InviteServer(s) => match s {
                InviteServer::Proceeding { .. } => "Proceeding",
                InviteServer::Completed { .. } => "Completed",
                InviteServer::Confirmed => "Confirmed",
                InviteServer::Accepted => "Accepted",
            },
            Machine::NonInviteServer(s) => match s {
                NonInviteServer::Trying => "Trying",
                NonInviteServer::Proceeding { .. } => "Proceeding",
                NonInviteServer::Completed { .. } => "Completed",
            },
        }
    }
}

/// §17.1.3: a response matches a client transaction by the branch of its top Via and
/// the method of its CSeq.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClientKey {
    branch: String,
    method: Method,
}

/// §17.2.3: a request with an RFC 3261 branch matches a server transaction by branch,
/// sent-by and method (ACK counting as INVITE).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: String,
    sent_by: String,
    method: Method,
}

/// Which index entry points at a transaction (removed with it).
#[derive(Debug)]
enum Index {
    Client(ClientKey),
    Server(ServerKey),
    Legacy(Box<Legacy>),
}

#[derive(Debug)]
struct Txn {
    core: Core,
    machine: Machine,
    index: Index,
}

/// Every transaction of one SIP element. See the [module docs](self) for the drain rule.
#[derive(Debug)]
pub struct Transactions {
    config: Config,
    next_id: u64,
    txns: IdMap<TxnId, Txn>,
    clients: HashMap<ClientKey, TxnId>,
    servers: HashMap<ServerKey, TxnId>,
    /// RFC 2543 server transactions by (Call-ID, CSeq number).
    legacy: HashMap<(String, u32), Vec<TxnId>>,
    queue: TimerQueue,
    out: VecDeque<Output>,
}

/// Shortest T1/T2 accepted; see the module docs.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

impl Transactions {
    /// An empty transaction layer (T1 and T2 below 1 ms are raised to 1 ms).
    pub fn new(mut config: Config) -> Self {
        config.t1 = config.t1.max(MIN_INTERVAL);
        config.t2 = config.t2.max(MIN_INTERVAL);
        Transactions {
            config,
            next_id: 0,
            txns: IdMap::default(),
            clients: HashMap::new(),
            servers: HashMap::new(),
            legacy: HashMap::new(),
            queue: TimerQueue::default(),
            out: VecDeque::new(),
        }
    }

    /// Feeds a parsed message received on `flow`. Retransmissions are absorbed (server
    /// transactions re-send the last response); new requests and responses become events.
    pub fn receive(&mut self, now: Instant, msg: Message, flow: Flow) {
        if msg.is_request() {
            self.receive_request(now, msg, flow);
        } else {
            self.receive_response(now, msg, flow);
        }
        self.prune();
    }

    /// Starts a client transaction for `msg` and transmits it on `flow`. INVITE gets the
    /// INVITE machine, every other method the non-INVITE one. The request must carry its
    /// top Via with a unique branch (§8.1.1.7).
    ///
    /// Misuse does not panic: an ACK (not a transaction) is sent as by
    /// [`Transactions::send_stateless`] and its id reported [`Event::Terminated`] at
    /// once; a message without a top Via branch (which no response could match) or that
    /// is not a request is not sent, and its id gets [`Event::Timeout`] and
    /// [`Event::Terminated`] at once.
    pub fn send_request(&mut self, now: Instant, msg: Message, flow: Flow) -> TxnId {
        let id = self.alloc_id();
        let method = msg.method().cloned();
        let branch = msg
            .top_via()
            .ok()
            .and_then(|v| v.branch().filter(|b| !b.is_empty()).map(str::to_string));
        match (method, branch) {
            (Some(Method::Ack), _) => {
                self.out.push_back(Output::Transmit {
                    flow,
                    bytes: msg.bytes(),
                });
                self.out.push_back(Output::Event(Event::Terminated { id }));
            }
            (Some(method), Some(branch)) => {
                let key = ClientKey {
                    branch,
                    method: method.clone(),
                };
                self.clients.insert(key.clone(), id);
                let bytes = msg.bytes();
                let mut core = Core::new(id, flow, msg, &self.config);
                let mut ctx = Ctx {
                    now,
                    config: &self.config,
                    out: &mut self.out,
                    queue: &mut self.queue,
                };
                ctx.transmit(flow, bytes);
                let machine = if method == Method::Invite {
                    client::invite_start(&mut core, &mut ctx);
                    Machine::InviteClient(InviteClient::Calling)
                } else {
                    client::non_invite_start(&mut core, &mut ctx);
                    Machine::NonInviteClient(NonInviteClient::Trying)
                };
                self.txns.insert(
                    id,
                    Txn {
                        core,
                        machine,
                        index: Index::Client(key),
                    },
                );
            }
            _ => {
                self.out.push_back(Output::Event(Event::Timeout { id }));
                self.out.push_back(Output::Event(Event::Terminated { id }));
            }
        }
        self.prune();
        id
    }

    /// Sends a response on server transaction `id`.
    ///
    /// INVITE: 1xx in Proceeding is sent; 2xx moves to Accepted (RFC 6026), where
    /// further 2xx (the TU's retransmissions) are sent too; 300-699 moves to Completed
    /// with Timer G retransmissions (unreliable transports) and Timer H. Non-INVITE: 1xx
    /// moves to Proceeding, 200-699 to Completed with Timer J. Any other response is an
    /// error and nothing is sent.
    pub fn respond(&mut self, now: Instant, id: TxnId, response: Message) -> Result<(), TxnError> {
        let code = response.code().ok_or(TxnError::NotAResponse)?;
        let bytes = response.bytes();
        self.send_reply(now, id, Reply { code, bytes })
    }

    /// [`Transactions::respond`] with a response we built ([`ResponseBuilder::reply`]),
    /// which is not parsed again.
    ///
    /// [`ResponseBuilder::reply`]: crate::ResponseBuilder::reply
    pub fn send_reply(&mut self, now: Instant, id: TxnId, reply: Reply) -> Result<(), TxnError> {
        let Reply { code, bytes } = reply;
        if !(100..=699).contains(&code) {
            return Err(TxnError::NotAResponse);
        }
        let Some(txn) = self.txns.get_mut(&id) else {
            return Err(TxnError::UnknownTransaction);
        };
        let mut ctx = Ctx {
            now,
            config: &self.config,
            out: &mut self.out,
            queue: &mut self.queue,
        };
        // RFC 2543 ACK matching needs the To tag of the final response (§17.2.3).
        let legacy_tag = (code >= 200 && matches!(txn.index, Index::Legacy(_))).then(|| {
            Message::parse(&bytes)
                .ok()
                .and_then(|m| m.to().ok().and_then(|t| t.tag().map(str::to_string)))
        });
        let step = match &mut txn.machine {
            Machine::InviteServer(st) => {
                server::invite_respond(st, &mut txn.core, &mut ctx, bytes, code)?
            }
            Machine::NonInviteServer(st) => {
                server::non_invite_respond(st, &mut txn.core, &mut ctx, bytes, code)?
            }
            Machine::InviteClient(_) | Machine::NonInviteClient(_) => {
                return Err(TxnError::NotServerTransaction);
            }
        };
        if let (Some(tag), Index::Legacy(legacy)) = (legacy_tag, &mut txn.index) {
            legacy.final_to_tag = Some(tag);
        }
        self.apply(id, step);
        self.prune();
        Ok(())
    }

    /// Transmits without a transaction (the ACK for a 2xx, stateless forwarding).
    pub fn send_stateless(&mut self, msg: Message, flow: Flow) {
        self.out.push_back(Output::Transmit {
            flow,
            bytes: msg.bytes(),
        });
    }

    /// The I/O layer could not send for transaction `id` (§17.1.4, §17.2.4). A client
    /// transaction still waiting for a final response reports [`Event::Timeout`]; every
    /// transaction then ends with [`Event::Terminated`]. Unknown ids are ignored.
    pub fn transport_error(&mut self, _now: Instant, id: TxnId) {
        let Some(txn) = self.txns.get(&id) else {
            return;
        };
        let step = if txn.machine.awaiting_final() {
            Step::Fail
        } else {
            Step::Terminate
        };
        self.apply(id, step);
        self.prune();
    }

    /// Fires every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(due) = self.queue.pop_due(now) {
            let Some(txn) = self.txns.get_mut(&due.id) else {
                continue;
            };
            if !txn.core.timers.fire(&due) {
                continue;
            }
            let mut ctx = Ctx {
                now,
                config: &self.config,
                out: &mut self.out,
                queue: &mut self.queue,
            };
            let core = &mut txn.core;
            let step = match &mut txn.machine {
                Machine::InviteClient(st) => client::invite_timer(st, core, &mut ctx, due.timer),
                Machine::NonInviteClient(st) => {
                    client::non_invite_timer(st, core, &mut ctx, due.timer)
                }
                Machine::InviteServer(st) => server::invite_timer(st, core, &mut ctx, due.timer),
                Machine::NonInviteServer(st) => server::non_invite_timer(st, due.timer),
            };
            self.apply(due.id, step);
        }
        self.prune();
        self.shrink();
    }

    /// The next output. Drain to `None` after every call that takes `&mut self`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest pending timer, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.next()
    }

    /// For CANCEL handling (§9.2): the INVITE server transaction that `cancel` matches
    /// by the §17.2.3 rules with the method aside (branch and sent-by, or for an RFC
    /// 2543 request Request-URI, To and From tags, Call-ID, CSeq number and top Via).
    /// The transaction may already have sent its final response.
    pub fn find_invite_for_cancel(&self, cancel: &Message) -> Option<TxnId> {
        let via = cancel.top_via().ok()?;
        match via.branch().filter(|b| b.starts_with(BRANCH_MAGIC)) {
            Some(branch) => {
                let key = ServerKey {
                    branch: branch.to_string(),
                    sent_by: via.sent_by(),
                    method: Method::Invite,
                };
                self.servers.get(&key).copied()
            }
            None => {
                let cseq = cancel.cseq().ok()?;
                let probe = Legacy::of(cancel, via, cseq)?;
                self.find_legacy(&probe, LegacyMatch::Cancel)
            }
        }
    }

    /// Whether `request` (not an ACK) is a retransmission of a server transaction's
    /// request (§17.2.3 matching by branch, sent-by and method), which the layer only
    /// answers with the last response: the TU can pass it in without validating it.
    /// RFC 2543 requests (no magic cookie) never count.
    pub fn is_retransmission(&self, request: &Message) -> bool {
        let Some(method) = request.method().filter(|m| **m != Method::Ack) else {
            return false;
        };
        let Ok(via) = request.top_via() else {
            return false;
        };
        let Some(branch) = via.branch().filter(|b| b.starts_with(BRANCH_MAGIC)) else {
            return false;
        };
        let key = ServerKey {
            branch: branch.to_string(),
            sent_by: via.sent_by(),
            method: method.clone(),
        };
        self.servers.contains_key(&key)
    }

    /// The request that created server transaction `id`, and the flow it came on
    /// (`None` for a non-INVITE server transaction once it has sent its final response).
    pub fn server_request(&self, id: TxnId) -> Option<(&Message, Flow)> {
        let txn = self.txns.get(&id)?;
        if !txn.machine.is_server() {
            return None;
        }
        Some((txn.core.request.as_ref()?, txn.core.flow))
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// No live transactions.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    // --- internals ----------------------------------------------------------

    fn alloc_id(&mut self) -> TxnId {
        self.next_id = self.next_id.wrapping_add(1);
        TxnId(self.next_id)
    }

    fn receive_response(&mut self, now: Instant, msg: Message, flow: Flow) {
        let key = msg.top_via().ok().and_then(|via| {
            let branch = via.branch().filter(|b| !b.is_empty())?.to_string();
            let method = msg.cseq().ok()?.method;
            Some(ClientKey { branch, method })
        });
        let id = key.and_then(|k| self.clients.get(&k).copied());
        let Some(txn) = id.and_then(|id| self.txns.get_mut(&id)) else {
            self.out
                .push_back(Output::Event(Event::StrayResponse { msg, flow }));
            return;
        };
        let id = txn.core.id;
        let mut ctx = Ctx {
            now,
            config: &self.config,
            out: &mut self.out,
            queue: &mut self.queue,
        };
        let step = match &mut txn.machine {
            Machine::InviteClient(st) => {
                client::invite_response(st, &mut txn.core, &mut ctx, msg, flow)
            }
            Machine::NonInviteClient(st) => {
                client::non_invite_response(st, &mut txn.core, &mut ctx, msg, flow)
            }
            // The client index only points at client transactions.
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => Step::Keep,
        };
        self.apply(id, step);
    }

    fn receive_request(&mut self, now: Instant, msg: Message, flow: Flow) {
        let Some(method) = msg.method().cloned() else {
            return;
        };
        // Requests without these were rejected by the TU's validation; drop them.
        let Ok(via) = msg.top_via() else {
            return;
        };
        let Ok(cseq) = msg.cseq() else {
            return;
        };
        let is_ack = method == Method::Ack;
        let (found, index) = match via.branch().filter(|b| b.starts_with(BRANCH_MAGIC)) {
            Some(branch) => {
                // §17.2.3 rules 1-3; "ACK, where the method of the request that created
                // the transaction is INVITE".
                let key = ServerKey {
                    branch: branch.to_string(),
                    sent_by: via.sent_by(),
                    method: if is_ack {
                        Method::Invite
                    } else {
                        method.clone()
                    },
                };
                (self.servers.get(&key).copied(), Index::Server(key))
            }
            None => {
                // §17.2.3 RFC 2543 compatibility.
                let Some(probe) = Legacy::of(&msg, via, cseq) else {
                    return;
                };
                let how = if is_ack {
                    LegacyMatch::Ack
                } else {
                    LegacyMatch::Request
                };
                (
                    self.find_legacy(&probe, how),
                    Index::Legacy(Box::new(probe)),
                )
            }
        };
        match found {
            Some(id) => self.server_input(now, id, msg, flow, is_ack),
            // Not a transaction: the ACK for a 2xx goes to the TU (§17.2.3, RFC 6026 §8.7).
            None if is_ack => self.out.push_back(Output::Event(Event::Request {
                id: None,
                msg,
                flow,
            })),
            None => self.new_server(msg, flow, method, index),
        }
    }

    /// A retransmission or an ACK matched server transaction `id`.
    fn server_input(&mut self, now: Instant, id: TxnId, msg: Message, flow: Flow, is_ack: bool) {
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        let mut ctx = Ctx {
            now,
            config: &self.config,
            out: &mut self.out,
            queue: &mut self.queue,
        };
        let step = match &mut txn.machine {
            Machine::InviteServer(st) if is_ack => {
                server::invite_ack(st, &mut txn.core, &mut ctx, msg, flow)
            }
            Machine::InviteServer(st) => server::invite_request(st, &txn.core, &mut ctx),
            Machine::NonInviteServer(st) if !is_ack => {
                server::non_invite_request(st, &txn.core, &mut ctx)
            }
            _ => Step::Keep,
        };
        self.apply(id, step);
    }

    fn new_server(&mut self, msg: Message, flow: Flow, method: Method, index: Index) {
        let id = self.alloc_id();
        match &index {
            Index::Server(key) => {
                self.servers.insert(key.clone(), id);
            }
            Index::Legacy(legacy) => self.legacy.entry(legacy.index_key()).or_default().push(id),
            Index::Client(_) => {}
        }
        let core = Core::new(id, flow, msg.clone(), &self.config);
        let machine = if method == Method::Invite {
            // §17.2.1: "The server transaction MUST generate a 100 (Trying) response
            // unless it knows that the TU will generate a provisional or final response
            // within 200 ms"; its To gets no tag (§8.2.6 "SHOULD NOT" for 100).
            let last = if self.config.auto_trying {
                let trying = ResponseBuilder::new(&msg, 100, None).reply().bytes;
                self.out.push_back(Output::Transmit {
                    flow,
                    bytes: trying.clone(),
                });
                Some(trying)
            } else {
                None
            };
            Machine::InviteServer(InviteServer::Proceeding { last })
        } else {
            Machine::NonInviteServer(NonInviteServer::Trying)
        };
        self.txns.insert(
            id,
            Txn {
                core,
                machine,
                index,
            },
        );
        // "The request MUST be passed to the TU." Nothing is armed until the TU responds.
        self.out.push_back(Output::Event(Event::Request {
            id: Some(id),
            msg,
            flow,
        }));
    }

    fn find_legacy(&self, probe: &Legacy, how: LegacyMatch) -> Option<TxnId> {
        let ids = self.legacy.get(&probe.index_key())?;
        ids.iter().copied().find(|id| {
            let Some(txn) = self.txns.get(id) else {
                return false;
            };
            let Index::Legacy(legacy) = &txn.index else {
                return false;
            };
            let invite_only = how != LegacyMatch::Request;
            (!invite_only || matches!(txn.machine, Machine::InviteServer(_)))
                && legacy.matches(probe, how)
        })
    }

    fn apply(&mut self, id: TxnId, step: Step) {
        match step {
            Step::Keep => {}
            Step::Terminate => self.remove(id),
            Step::Fail => {
                self.out.push_back(Output::Event(Event::Timeout { id }));
                self.remove(id);
            }
        }
    }

    /// Terminated: "the transaction MUST be destroyed immediately" (§17.1.1.2, §17.2.1).
    fn remove(&mut self, id: TxnId) {
        let Some(txn) = self.txns.remove(&id) else {
            return;
        };
        match txn.index {
            Index::Client(key) => {
                if self.clients.get(&key) == Some(&id) {
                    self.clients.remove(&key);
                }
            }
            Index::Server(key) => {
                if self.servers.get(&key) == Some(&id) {
                    self.servers.remove(&key);
                }
            }
            Index::Legacy(legacy) => {
                let key = legacy.index_key();
                if let Some(ids) = self.legacy.get_mut(&key) {
                    ids.retain(|x| *x != id);
                    if ids.is_empty() {
                        self.legacy.remove(&key);
                    }
                }
            }
        }
        self.out.push_back(Output::Event(Event::Terminated { id }));
    }

    /// Drops stale timer entries from the front of the queue so `poll_timeout` is exact.
    fn prune(&mut self) {
        let txns = &self.txns;
        self.queue.prune(|id| txns.get(&id).map(|t| &t.core.timers));
    }

    /// Gives memory back after a load peak.
    fn shrink(&mut self) {
        fn shrink<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(m: &mut HashMap<K, V, S>) {
            if m.capacity() > 1024 && m.capacity() > 8 * m.len() {
                m.shrink_to(2 * m.len());
            }
        }
        shrink(&mut self.txns);
        shrink(&mut self.clients);
        shrink(&mut self.servers);
        shrink(&mut self.legacy);
        self.queue.shrink();
    }

    #[cfg(test)]
    fn state(&self, id: TxnId) -> Option<&'static str> {
        self.txns.get(&id).map(|t| t.machine.state_name())
    }

    #[cfg(test)]
    fn armed(&self, id: TxnId) -> Vec<Timer> {
        self.txns
            .get(&id)
            .map(|t| t.core.timers.armed())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::HeaderName;
    use crate::rng::Rng;

    const T1: Duration = Duration::from_millis(500);
    const T2: Duration = Duration::from_secs(4);
    const T4: Duration = Duration::from_secs(5);

    /// The fake clock's single anchor; every other instant is `start + Duration`.
    #[allow(clippy::disallowed_methods)]
    fn start() -> Instant {
        Instant::now()
    }

    fn flow(transport: Transport) -> Flow {
        Flow {
            transport,
            remote: "192.0.2.10:5060".parse().unwrap(),
            local: "192.0.2.1:5060".parse().unwrap(),
            conn: transport.is_reliable().then_some(7),
        }
    }

    fn udp() -> Flow {
        flow(Transport::Udp)
    }

    fn tcp() -> Flow {
        flow(Transport::Tcp)
    }

    /// A request built field by field.
    struct Req {
        method: &'static str,
        branch: Option<&'static str>,
        sent_by: &'static str,
        to_tag: Option<&'static str>,
        cseq: u32,
        extra: &'static str,
    }

    impl Req {
        fn new(method: &'static str) -> Req {
            Req {
                method,
                branch: Some("z9hG4bKabc1"),
                sent_by: "192.0.2.10:5060",
                to_tag: None,
                cseq: 1,
                extra: "",
            }
        }
        fn branch(mut self, b: Option<&'static str>) -> Req {
            self.branch = b;
            self
        }
        fn sent_by(mut self, s: &'static str) -> Req {
            self.sent_by = s;
            self
        }
        fn tagged(mut self, t: &'static str) -> Req {
            self.to_tag = Some(t);
            self
        }
        fn cseq(mut self, n: u32) -> Req {
            self.cseq = n;
            self
        }
        fn extra(mut self, e: &'static str) -> Req {
            self.extra = e;
            self
        }
        fn build(&self) -> Message {
            let via = match self.branch {
                Some(b) => format!("SIP/2.0/UDP {};branch={b}", self.sent_by),
                None => format!("SIP/2.0/UDP {}", self.sent_by),
            };
            let to = match self.to_tag {
                Some(t) => format!("<sip:bob@example.com>;tag={t}"),
                None => "<sip:bob@example.com>".to_string(),
            };
            let s = format!(
                "{m} sip:bob@example.com SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:alice@example.com>;tag=f1\r\nTo: {to}\r\nCall-ID: c1@192.0.2.10\r\nCSeq: {n} {m}\r\n{extra}Content-Length: 0\r\n\r\n",
                m = self.method,
                n = self.cseq,
                extra = self.extra,
            );
            Message::parse(s.as_bytes()).unwrap()
        }
    }

    fn response(req: &Message, code: u16, to_tag: Option<&str>) -> Message {
        let b = ResponseBuilder::new(req, code, None);
        match to_tag {
            Some(t) => b.to_tag(t).build(),
            None => b.build(),
        }
    }

    fn drain(t: &mut Transactions) -> Vec<Output> {
        std::iter::from_fn(|| t.poll_output()).collect()
    }

    fn sent(out: &[Output]) -> Vec<Message> {
        out.iter()
            .filter_map(|o| match o {
                Output::Transmit { bytes, .. } => Some(Message::parse(bytes).unwrap()),
                Output::Event(_) => None,
            })
            .collect()
    }

    fn events(out: &[Output]) -> Vec<&Event> {
        out.iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e),
                Output::Transmit { .. } => None,
            })
            .collect()
    }

    /// Fires timers deadline by deadline up to `until`; returns each output with the
    /// offset from `t0` at which it came out.
    fn run(t: &mut Transactions, t0: Instant, until: Instant) -> Vec<(Duration, Output)> {
        let mut log = Vec::new();
        while let Some(at) = t.poll_timeout() {
            if at > until {
                break;
            }
            t.handle_timeout(at);
            log.extend(std::iter::from_fn(|| t.poll_output()).map(|o| (at - t0, o)));
        }
        log
    }

    fn transmit_times(log: &[(Duration, Output)]) -> Vec<Duration> {
        log.iter()
            .filter(|(_, o)| matches!(o, Output::Transmit { .. }))
            .map(|(d, _)| *d)
            .collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A server transaction for `req` received over `flow`; returns its id.
    fn serve(t: &mut Transactions, now: Instant, req: &Message, flow: Flow) -> TxnId {
        t.receive(now, req.clone(), flow);
        let out = drain(t);
        let ids: Vec<TxnId> = events(&out)
            .iter()
            .filter_map(|e| match e {
                Event::Request { id: Some(id), .. } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 1, "{out:?}");
        ids[0]
    }

    // --- client transactions ------------------------------------------------

    #[test]
    fn timer_a_doubles_from_t1_and_timer_b_fires_at_64_t1() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        let id = t.send_request(t0, invite.clone(), udp());
        let out = drain(&mut t);
        assert_eq!(sent(&out).len(), 1);
        assert_eq!(sent(&out)[0].as_bytes(), invite.as_bytes());
        assert_eq!(t.armed(id), vec![Timer::A, Timer::B]);
        assert_eq!(t.poll_timeout(), Some(t0 + T1));

        let log = run(&mut t, t0, t0 + Duration::from_secs(100));
        // Retransmits at T1, then every doubled interval: T1, 3T1, 7T1, 15T1, 31T1, 63T1.
        let expected: Vec<Duration> = [1, 3, 7, 15, 31, 63].iter().map(|k| T1 * *k).collect();
        assert_eq!(transmit_times(&log), expected);
        let ev: Vec<_> = log
            .iter()
            .filter_map(|(d, o)| match o {
                Output::Event(e) => Some((*d, e)),
                Output::Transmit { .. } => None,
            })
            .collect();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].0, T1 * 64);
        assert!(matches!(ev[0].1, Event::Timeout { id: i } if *i == id));
        assert!(matches!(ev[1].1, Event::Terminated { id: i } if *i == id));
        assert!(t.is_empty());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn timer_e_doubles_capped_at_t2_then_f() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let id = t.send_request(t0, Req::new("REGISTER").build(), udp());
        drain(&mut t);
        let log = run(&mut t, t0, t0 + Duration::from_secs(100));
        let expected: Vec<Duration> = [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ]
        .iter()
        .map(|n| ms(*n))
        .collect();
        assert_eq!(transmit_times(&log), expected);
        let last = &log[log.len() - 2..];
        assert_eq!(last[0].0, T1 * 64);
        assert!(matches!(last[0].1, Output::Event(Event::Timeout { id: i }) if i == id));
        assert!(matches!(last[1].1, Output::Event(Event::Terminated { id: i }) if i == id));
    }

    #[test]
    fn non_invite_client_proceeding_retransmits_at_t2_and_completes_with_k() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let req = Req::new("OPTIONS").build();
        let id = t.send_request(t0, req.clone(), udp());
        drain(&mut t);
        // First retransmit at T1; the next is due at 3*T1.
        assert_eq!(
            transmit_times(&run(&mut t, t0, t0 + ms(600))),
            vec![ms(500)]
        );
        t.receive(t0 + ms(600), response(&req, 100, None), udp());
        let out = drain(&mut t);
        assert!(
            matches!(events(&out)[..], [Event::Response { id: i, msg, .. }] if *i == id && msg.code() == Some(100))
        );
        assert_eq!(t.state(id), Some("Proceeding"));
        // The pending E still fires at 1.5 s, then every T2.
        let log = run(&mut t, t0, t0 + ms(10_000));
        assert_eq!(
            transmit_times(&log),
            vec![ms(1500), ms(1500) + T2, ms(1500) + T2 * 2]
        );

        let ok = response(&req, 200, Some("b1"));
        t.receive(t0 + ms(10_000), ok.clone(), udp());
        let out = drain(&mut t);
        assert!(
            matches!(events(&out)[..], [Event::Response { msg, .. }] if msg.code() == Some(200))
        );
        assert_eq!(t.state(id), Some("Completed"));
        assert_eq!(t.armed(id), vec![Timer::K]);
        // A retransmitted 200 is absorbed.
        t.receive(t0 + ms(10_100), ok, udp());
        assert!(drain(&mut t).is_empty());
        // Timer K = T4.
        assert_eq!(t.poll_timeout(), Some(t0 + ms(10_000) + T4));
        let log = run(&mut t, t0, t0 + ms(20_000));
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].0, ms(10_000) + T4);
        assert!(matches!(log[0].1, Output::Event(Event::Terminated { .. })));
        assert!(t.is_empty());
    }

    #[test]
    fn reliable_transport_has_no_retransmissions_and_zero_k_and_d() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let options = Req::new("OPTIONS").build();
        let id = t.send_request(t0, options.clone(), tcp());
        assert_eq!(sent(&drain(&mut t)).len(), 1);
        assert_eq!(t.armed(id), vec![Timer::F]);
        t.receive(t0 + ms(100), response(&options, 200, Some("x")), tcp());
        let out = drain(&mut t);
        // Timer K is zero: Terminated right after the response.
        assert!(
            matches!(events(&out)[..], [Event::Response { .. }, Event::Terminated { id: i }] if *i == id)
        );

        let invite = Req::new("INVITE").branch(Some("z9hG4bKtcp")).build();
        let id = t.send_request(t0, invite.clone(), tcp());
        drain(&mut t);
        assert_eq!(t.armed(id), vec![Timer::B]);
        // Nothing but Timer B until 64*T1.
        let log = run(&mut t, t0, t0 + T1 * 63);
        assert!(log.is_empty());
        t.receive(t0 + ms(200), response(&invite, 486, Some("x")), tcp());
        let out = drain(&mut t);
        assert_eq!(sent(&out)[0].method(), Some(&Method::Ack));
        // Timer D is zero on reliable transports.
        assert!(
            matches!(events(&out)[..], [Event::Response { .. }, Event::Terminated { id: i }] if *i == id)
        );
        assert!(t.is_empty());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn invite_client_acks_non_2xx_and_absorbs_retransmitted_final() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        // A request forwarded by a proxy: two Vias, a Route set.
        let invite = Req::new("INVITE")
            .extra("Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bKup\r\nRoute: <sip:p1.example.com;lr>\r\nRoute: <sip:p2.example.com;lr>\r\nContact: <sip:alice@192.0.2.10>\r\n")
            .build();
        let id = t.send_request(t0, invite.clone(), udp());
        drain(&mut t);

        t.receive(t0 + ms(100), response(&invite, 180, Some("b7")), udp());
        let out = drain(&mut t);
        assert!(
            matches!(events(&out)[..], [Event::Response { msg, .. }] if msg.code() == Some(180))
        );
        assert_eq!(t.state(id), Some("Proceeding"));
        // Proceeding: Timers A and B are off.
        assert!(t.armed(id).is_empty());
        assert_eq!(t.poll_timeout(), None);

        let busy = response(&invite, 486, Some("b7"));
        t.receive(t0 + ms(2000), busy.clone(), udp());
        let out = drain(&mut t);
        let acks = sent(&out);
        assert_eq!(acks.len(), 1);
        assert!(matches!(&out[0], Output::Transmit { flow, .. } if *flow == udp()));
        let ack = &acks[0];
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.uri_str(), invite.uri_str());
        let vias: Vec<&str> = ack.values(HeaderName::Via).collect();
        assert_eq!(vias, vec!["SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc1"]);
        assert_eq!(
            ack.header(HeaderName::To),
            Some("<sip:bob@example.com>;tag=b7")
        );
        assert_eq!(
            ack.header(HeaderName::From),
            invite.header(HeaderName::From)
        );
        assert_eq!(ack.call_id().unwrap(), invite.call_id().unwrap());
        assert_eq!(ack.header(HeaderName::CSeq), Some("1 ACK"));
        let routes: Vec<&str> = ack.header_lines(HeaderName::Route).collect();
        assert_eq!(
            routes,
            vec!["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(ack.max_forwards().unwrap(), Some(70));
        assert_eq!(ack.content_length(), Some(0));
        assert!(ack.header(HeaderName::Contact).is_none());
        ack.validate().unwrap();
        assert!(
            matches!(events(&out)[..], [Event::Response { msg, .. }] if msg.code() == Some(486))
        );
        assert_eq!(t.state(id), Some("Completed"));

        // A retransmitted 486 re-sends the same ACK and is not passed up.
        t.receive(t0 + ms(2500), busy, udp());
        let out = drain(&mut t);
        assert_eq!(out.len(), 1);
        assert_eq!(sent(&out)[0].as_bytes(), ack.as_bytes());

        // Timer D: 32 s on UDP.
        assert_eq!(
            t.poll_timeout(),
            Some(t0 + ms(2000) + Duration::from_secs(32))
        );
        let log = run(&mut t, t0, t0 + Duration::from_secs(60));
        assert!(
            matches!(log[..], [(d, Output::Event(Event::Terminated { .. }))] if d == ms(34_000))
        );
    }

    #[test]
    fn invite_client_2xx_enters_accepted_and_passes_every_2xx() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        let id = t.send_request(t0, invite.clone(), udp());
        drain(&mut t);
        let ok_a = response(&invite, 200, Some("fork-a"));
        t.receive(t0 + ms(300), ok_a.clone(), udp());
        let out = drain(&mut t);
        // No ACK from the transaction: the TU acknowledges 2xx (§13.2.2.4).
        assert!(sent(&out).is_empty());
        assert!(matches!(events(&out)[..], [Event::Response { id: i, .. }] if *i == id));
        assert_eq!(t.state(id), Some("Accepted"));
        assert_eq!(t.armed(id), vec![Timer::M]);

        // A retransmission and a 2xx from another fork both reach the TU.
        t.receive(t0 + ms(800), ok_a, udp());
        t.receive(t0 + ms(900), response(&invite, 200, Some("fork-b")), udp());
        let out = drain(&mut t);
        let tags: Vec<String> = events(&out)
            .iter()
            .map(|e| match e {
                Event::Response { msg, .. } => msg.to().unwrap().tag().unwrap().to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tags, vec!["fork-a", "fork-b"]);
        // Non-2xx in Accepted is absorbed.
        t.receive(t0 + ms(950), response(&invite, 486, Some("fork-c")), udp());
        assert!(drain(&mut t).is_empty());

        // Timer M = 64*T1 from the first 2xx.
        let log = run(&mut t, t0, t0 + Duration::from_secs(100));
        assert!(
            matches!(log[..], [(d, Output::Event(Event::Terminated { .. }))] if d == ms(300) + T1 * 64)
        );
        // After that, a 2xx matches nothing: a proxy forwards it statelessly.
        t.receive(
            t0 + Duration::from_secs(100),
            response(&invite, 200, Some("fork-a")),
            udp(),
        );
        assert!(matches!(
            events(&drain(&mut t))[..],
            [Event::StrayResponse { .. }]
        ));
    }

    #[test]
    fn response_matching_uses_branch_and_cseq_method() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        let inv = t.send_request(t0, invite.clone(), udp());
        // CANCEL reuses the INVITE's branch (§9.1) and is its own client transaction.
        let cancel = Req::new("CANCEL").build();
        let can = t.send_request(t0, cancel.clone(), udp());
        drain(&mut t);
        t.receive(t0 + ms(10), response(&cancel, 200, Some("x")), udp());
        t.receive(t0 + ms(20), response(&invite, 487, Some("x")), udp());
        let out = drain(&mut t);
        let ids: Vec<(TxnId, u16)> = events(&out)
            .iter()
            .filter_map(|e| match e {
                Event::Response { id, msg, .. } => Some((*id, msg.code().unwrap())),
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec![(can, 200), (inv, 487)]);
    }

    #[test]
    fn stray_and_unusable_responses() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let unknown = response(
            &Req::new("INVITE").branch(Some("z9hG4bKnobody")).build(),
            200,
            Some("x"),
        );
        t.receive(t0, unknown, udp());
        let no_via =
            Message::parse(b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        t.receive(t0, no_via, udp());
        let out = drain(&mut t);
        assert!(matches!(
            events(&out)[..],
            [Event::StrayResponse { .. }, Event::StrayResponse { .. }]
        ));
        assert!(t.is_empty());
    }

    // --- server transactions ------------------------------------------------

    #[test]
    fn invite_server_sends_100_and_resends_last_response_on_retransmit() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        t.receive(t0, invite.clone(), udp());
        let out = drain(&mut t);
        let trying = sent(&out);
        assert_eq!(trying.len(), 1);
        assert_eq!(trying[0].code(), Some(100));
        assert_eq!(trying[0].to().unwrap().tag(), None);
        assert_eq!(trying[0].top_via().unwrap().branch(), Some("z9hG4bKabc1"));
        assert!(matches!(&out[0], Output::Transmit { flow, .. } if *flow == udp()));
        let id = match events(&out)[..] {
            [
                Event::Request {
                    id: Some(id),
                    msg,
                    flow,
                },
            ] => {
                assert_eq!(msg.as_bytes(), invite.as_bytes());
                assert_eq!(*flow, udp());
                *id
            }
            ref other => panic!("{other:?}"),
        };
        assert_eq!(
            t.server_request(id)
                .map(|(m, f)| (m.as_bytes().to_vec(), f)),
            Some((invite.as_bytes().to_vec(), udp()))
        );
        // No timers in Proceeding.
        assert_eq!(t.poll_timeout(), None);

        // A retransmitted INVITE re-sends the 100 and is not passed up.
        t.receive(t0 + T1, invite.clone(), udp());
        let out = drain(&mut t);
        assert_eq!(out.len(), 1);
        assert_eq!(sent(&out)[0].as_bytes(), trying[0].as_bytes());

        // Then the most recent provisional.
        let ringing = response(&invite, 180, Some("t1"));
        t.respond(t0 + ms(700), id, ringing.clone()).unwrap();
        assert_eq!(sent(&drain(&mut t))[0].as_bytes(), ringing.as_bytes());
        t.receive(t0 + T1 * 3, invite.clone(), udp());
        assert_eq!(sent(&drain(&mut t))[0].as_bytes(), ringing.as_bytes());

        // Without auto_trying nothing is sent until the TU answers.
        let mut quiet = Transactions::new(Config {
            auto_trying: false,
            ..Config::default()
        });
        quiet.receive(t0, invite.clone(), udp());
        let out = drain(&mut quiet);
        assert!(sent(&out).is_empty());
        quiet.receive(t0 + T1, invite, udp());
        assert!(drain(&mut quiet).is_empty());
    }

    #[test]
    fn invite_server_non_2xx_timer_g_capped_at_t2_and_h_at_64_t1() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        let id = serve(&mut t, t0, &invite, udp());
        let busy = response(&invite, 486, Some("t1"));
        t.respond(t0, id, busy.clone()).unwrap();
        assert_eq!(sent(&drain(&mut t))[0].as_bytes(), busy.as_bytes());
        assert_eq!(t.state(id), Some("Completed"));
        assert_eq!(t.armed(id), vec![Timer::G, Timer::H]);

        let log = run(&mut t, t0, t0 + Duration::from_secs(100));
        let expected: Vec<Duration> = [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ]
        .iter()
        .map(|n| ms(*n))
        .collect();
        assert_eq!(transmit_times(&log), expected);
        for (_, o) in &log {
            if let Output::Transmit { bytes, .. } = o {
                assert_eq!(&bytes[..], busy.as_bytes());
            }
        }
        // Timer H = 64*T1: the ACK never came; the transaction just ends.
        let ev: Vec<_> = log
            .iter()
            .filter(|(_, o)| matches!(o, Output::Event(_)))
            .collect();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, T1 * 64);
        assert!(matches!(ev[0].1, Output::Event(Event::Terminated { id: i }) if i == id));
        assert!(t.is_empty());
    }

    #[test]
    fn invite_server_ack_confirms_and_timer_i_terminates() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        let id = serve(&mut t, t0, &invite, udp());
        let busy = response(&invite, 486, Some("t1"));
        t.respond(t0 + ms(100), id, busy.clone()).unwrap();
        drain(&mut t);
        // An INVITE retransmission in Completed re-sends the final response.
        t.receive(t0 + ms(200), invite.clone(), udp());
        assert_eq!(sent(&drain(&mut t))[0].as_bytes(), busy.as_bytes());
        // The TU cannot respond again.
        assert_eq!(
            t.respond(t0 + ms(250), id, response(&invite, 500, Some("t1"))),
            Err(TxnError::InvalidState)
        );

        // The ACK (same branch, §17.1.1.3) moves to Confirmed: G stops, I = T4.
        let ack = Req::new("ACK").tagged("t1").build();
        t.receive(t0 + ms(300), ack.clone(), udp());
        assert!(drain(&mut t).is_empty());
        assert_eq!(t.state(id), Some("Confirmed"));
        assert_eq!(t.armed(id), vec![Timer::I]);
        // ACK and INVITE retransmissions are absorbed in Confirmed.
        t.receive(t0 + ms(400), ack, udp());
        t.receive(t0 + ms(400), invite, udp());
        assert!(drain(&mut t).is_empty());

        let log = run(&mut t, t0, t0 + Duration::from_secs(60));
        assert!(
            matches!(log[..], [(d, Output::Event(Event::Terminated { id: i }))] if d == ms(300) + T4 && i == id)
        );
        assert!(t.is_empty());
    }

    #[test]
    fn invite_server_2xx_accepted_passes_acks_and_timer_l_terminates() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        let id = serve(&mut t, t0, &invite, udp());
        let ok = response(&invite, 200, Some("t1"));
        t.respond(t0 + ms(100), id, ok.clone()).unwrap();
        assert_eq!(sent(&drain(&mut t))[0].as_bytes(), ok.as_bytes());
        assert_eq!(t.state(id), Some("Accepted"));
        assert_eq!(t.armed(id), vec![Timer::L]);

        // No 2xx retransmission by the transaction; INVITE retransmits are absorbed.
        assert!(run(&mut t, t0, t0 + ms(5000)).is_empty());
        t.receive(t0 + ms(5000), invite.clone(), udp());
        assert!(drain(&mut t).is_empty());
        // The TU's own 2xx retransmissions are sent; anything else is refused.
        t.respond(t0 + ms(5100), id, ok.clone()).unwrap();
        assert_eq!(sent(&drain(&mut t))[0].as_bytes(), ok.as_bytes());
        assert_eq!(
            t.respond(t0 + ms(5100), id, response(&invite, 486, Some("t1"))),
            Err(TxnError::InvalidState)
        );
        assert_eq!(
            t.respond(t0 + ms(5100), id, response(&invite, 180, Some("t1"))),
            Err(TxnError::InvalidState)
        );
        assert!(drain(&mut t).is_empty());

        // An ACK that matches (same branch) goes to the TU as Event::Ack, every time.
        let ack = Req::new("ACK").tagged("t1").build();
        t.receive(t0 + ms(5200), ack.clone(), udp());
        t.receive(t0 + ms(5300), ack, udp());
        let out = drain(&mut t);
        assert!(
            matches!(events(&out)[..], [Event::Ack { id: a, .. }, Event::Ack { id: b, .. }] if *a == id && *b == id)
        );
        // The usual ACK for a 2xx has a new branch: it matches nothing.
        let ack2 = Req::new("ACK")
            .branch(Some("z9hG4bKack"))
            .tagged("t1")
            .build();
        t.receive(t0 + ms(5400), ack2, udp());
        assert!(matches!(
            events(&drain(&mut t))[..],
            [Event::Request { id: None, .. }]
        ));
        assert_eq!(t.state(id), Some("Accepted"));

        // Timer L = 64*T1 after the 2xx.
        let log = run(&mut t, t0, t0 + Duration::from_secs(100));
        assert!(
            matches!(log[..], [(d, Output::Event(Event::Terminated { id: i }))] if d == ms(100) + T1 * 64 && i == id)
        );
    }

    #[test]
    fn non_invite_server_retransmissions_and_timer_j() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let reg = Req::new("REGISTER").build();
        let id = serve(&mut t, t0, &reg, udp());
        // Trying: retransmissions are discarded.
        t.receive(t0 + T1, reg.clone(), udp());
        assert!(drain(&mut t).is_empty());
        // Proceeding: the last provisional is re-sent.
        let trying = response(&reg, 100, None);
        t.respond(t0 + ms(600), id, trying.clone()).unwrap();
        drain(&mut t);
        assert_eq!(t.state(id), Some("Proceeding"));
        t.receive(t0 + T1 * 3, reg.clone(), udp());
        assert_eq!(sent(&drain(&mut t))[0].as_bytes(), trying.as_bytes());
        // Completed: the final is re-sent; other finals are refused.
        let ok = response(&reg, 200, Some("r1"));
        t.respond(t0 + ms(2000), id, ok.clone()).unwrap();
        assert_eq!(sent(&drain(&mut t))[0].as_bytes(), ok.as_bytes());
        assert_eq!(t.state(id), Some("Completed"));
        assert_eq!(t.armed(id), vec![Timer::J]);
        // Completed keeps the response bytes only, not the request.
        assert!(t.server_request(id).is_none());
        t.receive(t0 + T1 * 7, reg.clone(), udp());
        assert_eq!(sent(&drain(&mut t))[0].as_bytes(), ok.as_bytes());
        assert_eq!(
            t.respond(t0 + ms(4000), id, response(&reg, 500, None)),
            Err(TxnError::InvalidState)
        );
        // Timer J = 64*T1 on UDP, with no response retransmissions of its own.
        let log = run(&mut t, t0, t0 + Duration::from_secs(100));
        assert!(
            matches!(log[..], [(d, Output::Event(Event::Terminated { id: i }))] if d == ms(2000) + T1 * 64 && i == id)
        );
        // The next identical request is a new transaction.
        let again = serve(&mut t, t0 + Duration::from_secs(100), &reg, udp());
        assert_ne!(again, id);

        // Over TCP, Timer J is zero.
        let mut t = Transactions::new(Config::default());
        let id = serve(&mut t, t0, &reg, tcp());
        t.respond(t0, id, ok).unwrap();
        let out = drain(&mut t);
        assert_eq!(sent(&out).len(), 1);
        assert!(matches!(events(&out)[..], [Event::Terminated { id: i }] if *i == id));
        assert!(t.is_empty());
    }

    #[test]
    fn server_matching_needs_branch_sent_by_and_method() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        let id = serve(&mut t, t0, &invite, udp());
        // Same branch from another sent-by: a different transaction (§17.2.3 rule 2).
        let other = serve(
            &mut t,
            t0,
            &Req::new("INVITE").sent_by("203.0.113.5:5060").build(),
            udp(),
        );
        assert_ne!(other, id);
        // Same branch, different method: a different transaction (rule 3).
        let bye = serve(&mut t, t0, &Req::new("BYE").build(), udp());
        assert_ne!(bye, id);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn cancel_is_its_own_transaction_and_finds_its_invite() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        let inv = serve(&mut t, t0, &invite, udp());
        let cancel = Req::new("CANCEL").build();
        let can = serve(&mut t, t0 + ms(100), &cancel, udp());
        assert_ne!(can, inv);
        assert_eq!(t.find_invite_for_cancel(&cancel), Some(inv));
        assert_eq!(
            t.find_invite_for_cancel(&Req::new("CANCEL").branch(Some("z9hG4bKother")).build()),
            None
        );
        assert_eq!(
            t.find_invite_for_cancel(&Req::new("CANCEL").sent_by("203.0.113.5").build()),
            None
        );
        // §9.2: 200 to the CANCEL, 487 to the INVITE.
        t.respond(t0 + ms(100), can, response(&cancel, 200, Some("t1")))
            .unwrap();
        let (req, _) = t.server_request(inv).unwrap();
        let terminated = response(&req.clone(), 487, Some("t1"));
        t.respond(t0 + ms(100), inv, terminated).unwrap();
        let codes: Vec<u16> = sent(&drain(&mut t))
            .iter()
            .map(|m| m.code().unwrap())
            .collect();
        assert_eq!(codes, vec![200, 487]);
    }

    #[test]
    fn rfc2543_requests_match_on_dialog_fields() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").branch(None).build();
        let id = serve(&mut t, t0, &invite, udp());
        // An identical retransmission matches and gets the 100 again.
        t.receive(t0 + T1, invite.clone(), udp());
        let out = drain(&mut t);
        assert!(matches!(sent(&out)[..], [ref m] if m.code() == Some(100)));
        assert!(events(&out).is_empty());
        // A branch without the cookie is RFC 2543 too: the Via differs, so no match.
        let other_via = serve(
            &mut t,
            t0,
            &Req::new("INVITE").branch(Some("1234")).build(),
            udp(),
        );
        assert_ne!(other_via, id);
        // A new CSeq is a new transaction.
        let next = serve(
            &mut t,
            t0,
            &Req::new("INVITE").branch(None).cseq(2).build(),
            udp(),
        );
        assert_ne!(next, id);

        // CANCEL: same Request-URI, tags, Call-ID, CSeq number and Via.
        let cancel = Req::new("CANCEL").branch(None).build();
        assert_eq!(t.find_invite_for_cancel(&cancel), Some(id));
        let can = serve(&mut t, t0, &cancel, udp());
        assert_ne!(can, id);

        t.respond(t0 + ms(100), id, response(&invite, 486, Some("s1")))
            .unwrap();
        drain(&mut t);
        // An ACK whose To tag is not the one we sent matches nothing.
        t.receive(
            t0 + ms(200),
            Req::new("ACK").branch(None).tagged("zz").build(),
            udp(),
        );
        assert!(matches!(
            events(&drain(&mut t))[..],
            [Event::Request { id: None, .. }]
        ));
        assert_eq!(t.state(id), Some("Completed"));
        // The ACK with our To tag confirms the transaction.
        t.receive(
            t0 + ms(300),
            Req::new("ACK").branch(None).tagged("s1").build(),
            udp(),
        );
        assert!(drain(&mut t).is_empty());
        assert_eq!(t.state(id), Some("Confirmed"));

        // Non-INVITE retransmissions match too.
        let options = Req::new("OPTIONS").branch(None).cseq(9).build();
        let o = serve(&mut t, t0, &options, udp());
        t.respond(t0, o, response(&options, 200, Some("o1")))
            .unwrap();
        drain(&mut t);
        t.receive(t0 + T1, options, udp());
        assert!(matches!(sent(&drain(&mut t))[..], [ref m] if m.code() == Some(200)));

        // Everything ends and the secondary index empties.
        run(&mut t, t0, t0 + Duration::from_secs(3600));
        drain(&mut t);
        for id in [other_via, next, can] {
            t.transport_error(t0, id);
        }
        drain(&mut t);
        assert!(t.is_empty());
        assert!(t.legacy.is_empty());
    }

    // --- errors and misuse --------------------------------------------------

    #[test]
    fn transport_errors() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        let c = t.send_request(t0, invite.clone(), udp());
        drain(&mut t);
        t.transport_error(t0, c);
        assert!(
            matches!(events(&drain(&mut t))[..], [Event::Timeout { id: a }, Event::Terminated { id: b }] if *a == c && *b == c)
        );

        // After the final response, the TU has its answer: no Timeout.
        let c = t.send_request(t0, invite.clone(), udp());
        drain(&mut t);
        t.receive(t0, response(&invite, 486, Some("x")), udp());
        drain(&mut t);
        t.transport_error(t0, c);
        assert!(matches!(events(&drain(&mut t))[..], [Event::Terminated { id }] if *id == c));

        let s = serve(&mut t, t0, &invite, udp());
        t.transport_error(t0, s);
        assert!(matches!(events(&drain(&mut t))[..], [Event::Terminated { id }] if *id == s));
        // Unknown or already gone: ignored.
        t.transport_error(t0, s);
        assert!(drain(&mut t).is_empty());
        assert!(t.is_empty());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn misuse_is_reported_not_panicked() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let invite = Req::new("INVITE").build();
        assert_eq!(
            t.respond(t0, TxnId(42), response(&invite, 200, None)),
            Err(TxnError::UnknownTransaction)
        );
        let c = t.send_request(t0, invite.clone(), udp());
        drain(&mut t);
        assert_eq!(
            t.respond(t0, c, response(&invite, 200, None)),
            Err(TxnError::NotServerTransaction)
        );
        assert_eq!(
            t.respond(t0, c, invite.clone()),
            Err(TxnError::NotAResponse)
        );
        assert!(t.server_request(c).is_none());

        // ACK through send_request: sent statelessly, id ends at once.
        let ack = Req::new("ACK").tagged("x").build();
        let a = t.send_request(t0, ack.clone(), udp());
        let out = drain(&mut t);
        assert_eq!(sent(&out)[0].as_bytes(), ack.as_bytes());
        assert!(matches!(events(&out)[..], [Event::Terminated { id }] if *id == a));
        // No branch: never sent, fails at once.
        let bare = Message::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let b = t.send_request(t0, bare, udp());
        let out = drain(&mut t);
        assert!(sent(&out).is_empty());
        assert!(
            matches!(events(&out)[..], [Event::Timeout { id: x }, Event::Terminated { id: y }] if *x == b && *y == b)
        );
        // Requests without Via or CSeq are dropped.
        t.receive(
            t0,
            Message::parse(
                b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            )
            .unwrap(),
            udp(),
        );
        t.receive(t0, Message::parse(b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKq\r\nContent-Length: 0\r\n\r\n").unwrap(), udp());
        // RFC 2543 requests also need From, To and Call-ID.
        t.receive(t0, Message::parse(b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").unwrap(), udp());
        assert!(drain(&mut t).is_empty());
        // send_stateless just transmits.
        t.send_stateless(ack.clone(), tcp());
        assert!(matches!(&drain(&mut t)[..], [Output::Transmit { flow, .. }] if *flow == tcp()));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn zero_and_huge_timer_values_neither_loop_nor_panic() {
        let t0 = start();
        for config in [
            Config {
                t1: Duration::ZERO,
                t2: Duration::ZERO,
                t4: Duration::ZERO,
                auto_trying: true,
            },
            Config {
                t1: Duration::MAX,
                t2: Duration::MAX,
                t4: Duration::MAX,
                auto_trying: true,
            },
        ] {
            let mut t = Transactions::new(config);
            let invite = Req::new("INVITE").build();
            t.send_request(t0, invite.clone(), udp());
            t.send_request(t0, Req::new("OPTIONS").build(), udp());
            let s = serve(&mut t, t0, &invite, udp());
            t.respond(t0, s, response(&invite, 500, Some("x"))).unwrap();
            drain(&mut t);
            let log = run(&mut t, t0, t0 + Duration::from_secs(3600));
            assert!(log.len() < 100_000);
        }
    }

    #[test]
    fn many_transactions_leave_nothing_behind() {
        let t0 = start();
        let mut t = Transactions::new(Config::default());
        let branches: Vec<String> = (0..5000).map(|i| format!("z9hG4bK{i}")).collect();
        for (i, b) in branches.iter().enumerate() {
            let raw = format!(
                "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch={b}\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            let req = Message::parse(raw.as_bytes()).unwrap();
            t.send_request(t0, req.clone(), udp());
            let id = serve(&mut t, t0, &req, if i % 2 == 0 { udp() } else { tcp() });
            t.respond(t0, id, response(&req, 200, Some("t"))).unwrap();
            t.receive(t0, response(&req, 200, Some("t")), udp());
        }
        drain(&mut t);
        // UDP server transactions wait for Timer J, client ones for Timer K.
        assert_eq!(t.len(), 7500);
        run(&mut t, t0, t0 + Duration::from_secs(3600));
        assert!(t.is_empty());
        assert!(t.clients.is_empty() && t.servers.is_empty() && t.legacy.is_empty());
        assert_eq!(t.queue.len(), 0);
        assert_eq!(t.poll_timeout(), None);
    }

    /// Drives the layer with a seeded random sequence of every kind of call, with
    /// messages that match, half-match and do not match. Nothing may panic, ids never
    /// come back after Terminated, and once the clock has run far ahead only
    /// transactions that wait for the TU or the network without a timer remain.
    #[test]
    fn random_call_sequences_never_panic() {
        let t0 = start();
        for seed in 0..20 {
            let mut rng = Rng::new(seed);
            let mut t = Transactions::new(Config {
                auto_trying: seed % 2 == 0,
                ..Config::default()
            });
            let mut now = t0;
            let mut ids: Vec<TxnId> = Vec::new();
            let mut dead = std::collections::HashSet::new();
            let branches = [Some("z9hG4bK1"), Some("z9hG4bK2"), Some("old"), None];
            let methods = ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE"];
            for _ in 0..400 {
                let pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
                let req = Req::new(methods[pick(&mut rng, methods.len())])
                    .branch(branches[pick(&mut rng, branches.len())])
                    .cseq(1 + pick(&mut rng, 2) as u32);
                let req = if pick(&mut rng, 2) == 0 {
                    req.tagged("t1")
                } else {
                    req
                };
                let msg = req.build();
                let f = if pick(&mut rng, 3) == 0 { tcp() } else { udp() };
                let code = [100, 180, 200, 202, 302, 486, 603][pick(&mut rng, 7)];
                match pick(&mut rng, 7) {
                    0 => t.receive(now, msg, f),
                    1 => t.receive(now, response(&msg, code, Some("t1")), f),
                    2 => ids.push(t.send_request(now, msg, f)),
                    3 => {
                        if let Some(id) = ids.get(pick(&mut rng, ids.len().max(1))) {
                            let _ = t.respond(now, *id, response(&msg, code, Some("t1")));
                        }
                    }
                    4 => {
                        if let Some(id) = ids.get(pick(&mut rng, ids.len().max(1))) {
                            t.transport_error(now, *id);
                        }
                    }
                    5 => {
                        let _ = t.find_invite_for_cancel(&msg);
                    }
                    _ => {
                        now += ms(pick(&mut rng, 5000) as u64);
                        t.handle_timeout(now);
                    }
                }
                for o in drain(&mut t) {
                    if let Output::Event(e) = o {
                        match e {
                            Event::Request { id: Some(id), .. } => {
                                assert!(!dead.contains(&id));
                                ids.push(id);
                            }
                            Event::Response { id, .. }
                            | Event::Ack { id, .. }
                            | Event::Timeout { id } => {
                                assert!(!dead.contains(&id), "{id:?} after Terminated");
                            }
                            Event::Terminated { id } => {
                                assert!(dead.insert(id), "{id:?} terminated twice");
                            }
                            Event::Request { id: None, .. } | Event::StrayResponse { .. } => {}
                        }
                    }
                }
                // poll_timeout is exact: every lane's first entry is a live, armed timer.
                let txns = &t.txns;
                assert!(
                    t.queue
                        .top_is_live(|id| txns.get(&id).map(|x| &x.core.timers))
                );
            }
            now += Duration::from_secs(3600);
            t.handle_timeout(now);
            drain(&mut t);
            assert_eq!(t.poll_timeout(), None);
            for (id, txn) in &t.txns {
                let state = t.state(*id).unwrap();
                let waiting = match txn.machine {
                    Machine::InviteClient(_) => state == "Proceeding",
                    Machine::InviteServer(_) => state == "Proceeding",
                    Machine::NonInviteServer(_) => state == "Trying" || state == "Proceeding",
                    Machine::NonInviteClient(_) => false,
                };
                assert!(waiting, "{id:?} stuck in {state}");
            }
        }
    }
}
