//! The connection: one task per client that owns its transport and the
//! connection's state machine, `Anonymous → Live → (Anonymous …) → Closed`.
//! It reads frames, hands typed requests to the service, acts on the typed
//! outcome, and writes replies and deliveries.
//!
//! - `mod.rs`: the state machine and its loop, the one place that decides
//!   the dialect of a connection;
//! - `transport.rs`: whole frames in and out; TCP with its legacy pacing;
//! - `writer.rs`: encoding and counting what is written;
//! - `delivery.rs`: a live session's cursor, doorbells and refills;
//! - `presence.rs`: friends' presence as a native session shows it.

mod delivery;
mod presence;
mod transport;
mod writer;

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use transport::TcpTransport;
pub use transport::{FrameError, Transport};

use crate::codec::DEFAULT_MAX_FRAME;
use crate::hub::FeedEvent;
use crate::limit::{RateLimit, TokenBucket};
use crate::protocol::{
    ClientFrame, Dialect, ErrorCode, ErrorReply, ParseError, Request, ServerFrame,
    encode_legacy_login, msgid,
};
use crate::service::{Caller, ChatService, LoggedIn, Outcome};
use crate::telemetry::{self, DeliveryPath};
use delivery::Live;
use writer::Writer;

/// Doorbells taken from a session's queue at once.
const DELIVERY_BATCH: usize = 256;

/// Per-connection limits and timings.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Longest accepted frame, in bytes.
    pub max_frame: usize,
    /// Deliveries queued for one session before it must refill from the
    /// store instead.
    pub outbox_capacity: usize,
    /// A native session that sent nothing for this long gets a PING; after
    /// three times this long it is closed.
    pub heartbeat: Duration,
    /// Pause between frames to a legacy client, whose single `recv` would
    /// merge frames that arrive together.
    pub legacy_pace: Duration,
    /// A write that cannot complete in this time marks a client that does
    /// not read: it is disconnected (and resumes from its cursor later).
    pub write_timeout: Duration,
    /// Requests per second (and burst) one connection may send; PING and
    /// PONG are not counted, so heartbeats always get through.
    pub rate_limit: RateLimit,
    /// A connection not logged in this long after it opened (or after its
    /// logout) is closed; `None` lets it wait forever.
    pub login_timeout: Option<Duration>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            max_frame: DEFAULT_MAX_FRAME,
            outbox_capacity: 1024,
            heartbeat: Duration::from_secs(30),
            legacy_pace: Duration::from_millis(10),
            write_timeout: Duration::from_secs(30),
            rate_limit: RateLimit::default(),
            login_timeout: Some(Duration::from_secs(120)),
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug)]
enum State {
    /// Not logged in. `dialect` is the one its last login or register
    /// asked for (legacy before any); `deadline` is when it is closed for
    /// not logging in.
    Anonymous {
        dialect: Dialect,
        deadline: Option<Instant>,
    },
    /// A user's session.
    Live(Box<Live>),
}

impl State {
    fn anonymous(dialect: Dialect, config: &ConnectionConfig) -> State {
        State::Anonymous {
            dialect,
            deadline: config.login_timeout.map(|t| Instant::now() + t),
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            State::Anonymous { dialect, .. } => *dialect,
            State::Live(live) => live.dialect(),
        }
    }

    /// The dialect of a reply to a request that did not run: the one the
    /// request announced while the connection is anonymous, the
    /// session's otherwise.
    fn reply_dialect(&self, announced: Option<Dialect>) -> Dialect {
        match (self, announced) {
            (State::Anonymous { .. }, Some(announced)) => announced,
            _ => self.dialect(),
        }
    }

    /// What the hub feeds a live session; never resolves otherwise.
    async fn feed(&mut self, batch: &mut Vec<crate::hub::SessionEvent>) -> FeedEvent {
        match self {
            State::Live(live) => live.feed.next(batch, DELIVERY_BATCH).await,
            State::Anonymous { .. } => std::future::pending().await,
        }
    }
}

/// Why the loop ended.
enum Exit {
    Closed,
    Kicked(ErrorCode),
    /// Anonymous for longer than the login timeout.
    NoLogin(Duration),
    Error(io::Error),
}

/// Serves one client over a byte stream (TCP, TLS, a pipe) until it
/// closes, the session is ended, or `shutdown` fires. `peer` is the
/// client's address when the transport has one (failed logins are also
/// counted per address).
pub fn serve<IO>(
    io: IO,
    peer: Option<IpAddr>,
    service: ChatService,
    config: ConnectionConfig,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send
where
    IO: AsyncRead + AsyncWrite + Send + Unpin,
{
    // Not an `async fn`: the transport is built here and only the inner
    // future is kept, so an idle connection's task holds one copy of it.
    let transport = TcpTransport::new(
        io,
        config.max_frame,
        config.write_timeout,
        config.legacy_pace,
    );
    serve_transport(transport, peer, service, config, shutdown)
}

/// Serves one client over any transport of whole frames (a WebSocket, for
/// one); see [`serve`].
pub async fn serve_transport<T: Transport>(
    transport: T,
    peer: Option<IpAddr>,
    service: ChatService,
    config: ConnectionConfig,
    shutdown: CancellationToken,
) {
    let _open = telemetry::OpenConnection::count();
    let fixed = transport.dialect();
    let mut conn = Connection {
        service,
        state: State::anonymous(fixed.unwrap_or(Dialect::Legacy), &config),
        fixed,
        out: Writer::new(transport),
        caller: Caller {
            peer,
            outbox_capacity: config.outbox_capacity,
        },
        last_inbound: Instant::now(),
        last_ping: Instant::now(),
        bucket: TokenBucket::new(config.rate_limit, Instant::now()),
        config,
    };
    let exit = conn.run(&shutdown).await;
    conn.finish(exit).await;
    conn.out.close().await;
}

/// One client's connection.
struct Connection<T> {
    service: ChatService,
    config: ConnectionConfig,
    state: State,
    /// The transport's own dialect, which overrides what requests announce.
    fixed: Option<Dialect>,
    out: Writer<T>,
    caller: Caller,
    last_inbound: Instant,
    last_ping: Instant,
    bucket: TokenBucket,
}

impl<T: Transport> Connection<T> {
    async fn run(&mut self, shutdown: &CancellationToken) -> Exit {
        // Allocated when deliveries come: an idle connection holds none.
        let mut batch = Vec::new();
        loop {
            let heartbeat_due = self.last_inbound.max(self.last_ping) + self.config.heartbeat;
            let (login_deadline, retry_refill_at, heartbeat_on) = match &self.state {
                State::Anonymous { deadline, .. } => (*deadline, None, false),
                State::Live(live) => (
                    None,
                    live.retry_refill_at(),
                    live.dialect() == Dialect::Native,
                ),
            };
            // Output before input: deliveries and refills owed to this
            // client are written before its next request is read. A client
            // that keeps its send window full would otherwise always have a
            // frame ready, and its deliveries would wait behind every one
            // of its requests (the outbox would overflow into store
            // refills, and delivery latency would grow for as long as it
            // kept sending).
            let result = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Exit::Kicked(ErrorCode::ShuttingDown),
                // Work that comes is boxed, as requests are below: only
                // while it runs does the task carry its state.
                fed = self.state.feed(&mut batch) => match fed {
                    FeedEvent::Ended(code) => return Exit::Kicked(code),
                    FeedEvent::Deliveries => Box::pin(self.deliver(&mut batch)).await,
                    FeedEvent::Refill => Box::pin(self.refill()).await,
                    FeedEvent::Presence => Box::pin(self.show_presence()).await,
                },
                _ = sleep_until(retry_refill_at.unwrap_or_else(Instant::now)), if retry_refill_at.is_some() => {
                    Box::pin(self.refill()).await
                }
                _ = sleep_until(login_deadline.unwrap_or_else(Instant::now)), if login_deadline.is_some() => {
                    return Exit::NoLogin(self.config.login_timeout.unwrap_or_default());
                }
                frame = self.out.transport().recv() => {
                    self.last_inbound = Instant::now();
                    match frame {
                        None => return Exit::Closed,
                        Some(Err(FrameError::TooLarge { limit })) => {
                            telemetry::frame_in(None);
                            let reply = ServerFrame::Error(ErrorReply::with_detail(
                                ErrorCode::FrameTooLarge,
                                None,
                                None,
                                format!("frame longer than {limit} bytes"),
                            ));
                            let _ = self.out.send(&reply, self.state.dialect()).await;
                            return Exit::Closed;
                        }
                        Some(Err(FrameError::Io(e))) => return Exit::Error(e),
                        // Boxed: a request's future (any handler's) is the
                        // largest state of this task, and an idle connection
                        // would carry its size all the time; boxed it lives
                        // only while a request runs.
                        Some(Ok(bytes)) => Box::pin(self.request(&bytes)).await,
                    }
                }
                _ = sleep_until(heartbeat_due), if heartbeat_on => {
                    if self.last_inbound.elapsed() >= self.config.heartbeat * 3 {
                        return Exit::Kicked(ErrorCode::IdleTimeout);
                    }
                    self.last_ping = Instant::now();
                    Box::pin(self.out.send(&ServerFrame::Ping, Dialect::Native)).await
                }
            };
            if let Err(e) = result {
                return Exit::Error(e);
            }
        }
    }

    /// Says goodbye as `exit` calls for and ends the session. By
    /// reference: a future that took the connection by value would hold a
    /// second copy of it in every idle connection's task.
    async fn finish(&mut self, exit: Exit) {
        let dialect = self.state.dialect();
        let out = &mut self.out;
        match exit {
            Exit::Kicked(code) => {
                tracing::debug!(?code, "ending connection");
                let _ = out.send(&ServerFrame::Kicked { code }, dialect).await;
            }
            Exit::NoLogin(limit) => {
                tracing::debug!("closing a connection that did not log in");
                // An error frame rather than a kicked notice: there is no
                // session to end, and it reads the same in both dialects.
                let reply = ServerFrame::Error(ErrorReply::with_detail(
                    ErrorCode::IdleTimeout,
                    None,
                    None,
                    format!("not logged in within {} s", limit.as_secs()),
                ));
                let _ = out.send(&reply, dialect).await;
            }
            Exit::Error(e) => tracing::debug!(error = %e, "connection failed"),
            Exit::Closed => {}
        }
        if let State::Live(live) = &self.state {
            self.service.end_session(&live.session).await;
        }
    }

    async fn deliver(&mut self, batch: &mut Vec<crate::hub::SessionEvent>) -> io::Result<()> {
        let batch = std::mem::take(batch);
        match &mut self.state {
            State::Live(live) => live.deliver(&self.service, &mut self.out, batch).await,
            State::Anonymous { .. } => Ok(()),
        }
    }

    async fn show_presence(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Live(live) => live.show_presence(&self.service, &mut self.out).await,
            State::Anonymous { .. } => Ok(()),
        }
    }

    async fn refill(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Live(live) => live.refill(&self.service, &mut self.out).await,
            State::Anonymous { .. } => Ok(()),
        }
    }

    /// Handles one frame from the client.
    async fn request(&mut self, bytes: &[u8]) -> io::Result<()> {
        let parsed = ClientFrame::decode(bytes);
        // Only an anonymous connection takes this into account.
        let announced = self.fixed.or_else(|| announced(&parsed));
        // Heartbeats are exempt: a liveness check must not fail because
        // the client was busy.
        let exempt = matches!(&parsed, Ok(f) if matches!(f.request, Request::Ping | Request::Pong));
        if !exempt && !self.bucket.try_take(Instant::now()) {
            let (rid, req) = match &parsed {
                Ok(f) => (f.rid, Some(f.request.msgid())),
                Err(e) => (e.rid, e.msgid),
            };
            telemetry::frame_in(req);
            let reply = ServerFrame::Error(ErrorReply::new(ErrorCode::RateLimited, req, rid));
            return self
                .out
                .send(&reply, self.state.reply_dialect(announced))
                .await;
        }
        let ClientFrame { rid, request } = match parsed {
            Ok(frame) => {
                telemetry::frame_in(Some(frame.request.msgid()));
                frame
            }
            Err(e) => {
                telemetry::frame_in(e.msgid);
                let reply =
                    ServerFrame::Error(ErrorReply::with_detail(e.code, e.msgid, e.rid, e.detail));
                return self
                    .out
                    .send(&reply, self.state.reply_dialect(announced))
                    .await;
            }
        };
        let req = request.msgid();
        let outcome = match (&mut self.state, request) {
            (_, Request::Ping) => Outcome::Reply(ServerFrame::Pong { rid }),
            (_, Request::Pong) => Outcome::Silent,
            (State::Anonymous { dialect, .. }, Request::Anonymous(request)) => {
                // Only an anonymous connection picks its dialect, and it
                // keeps it even when the attempt fails.
                *dialect = self.fixed.unwrap_or_else(|| request.dialect());
                self.service
                    .handle_anonymous(self.caller, *dialect, rid, request)
                    .await
            }
            (State::Live(live), Request::Session(request)) => {
                self.service.handle(&live.session, rid, request).await
            }
            (State::Live(_), Request::Anonymous(_)) => Outcome::Reply(ServerFrame::Error(
                ErrorReply::new(ErrorCode::AlreadyLoggedIn, Some(req), rid),
            )),
            (State::Anonymous { .. }, Request::Session(_)) => Outcome::Reply(ServerFrame::Error(
                ErrorReply::new(ErrorCode::NotLoggedIn, Some(req), rid),
            )),
        };
        match outcome {
            Outcome::Reply(frame) => self.out.send(&frame, self.state.dialect()).await,
            Outcome::Silent => Ok(()),
            Outcome::LoggedIn(login) => self.logged_in(*login).await,
            Outcome::LoggedOut(frame) => {
                // Deliveries still queued belonged to that session: they
                // go with its feed.
                let dialect = self.state.dialect();
                self.state = State::anonymous(dialect, &self.config);
                self.out.send(&frame, dialect).await
            }
        }
    }

    /// Becomes the session, then writes the login reply and the first page
    /// of the backlog.
    async fn logged_in(&mut self, login: LoggedIn) -> io::Result<()> {
        let LoggedIn {
            session,
            feed,
            reply,
            backlog,
        } = login;
        let dialect = session.dialect();
        let shown = match dialect {
            Dialect::Native => presence::ShownPresence::new(&reply.friends),
            Dialect::Legacy => presence::ShownPresence::default(),
        };
        let live = Box::new(Live::new(session, feed, reply.cursor, shown));
        let carried = match dialect {
            // Native clients get the backlog as pushes.
            Dialect::Native => {
                ServerFrame::LoginOk(Box::new(reply)).encode(dialect, self.out.buffer());
                0
            }
            Dialect::Legacy => encode_legacy_login(&reply, &backlog, self.out.buffer()),
        };
        let full_page = backlog.len() >= self.service.config().sync_page as usize;
        // The connection is the session from here on, whatever the writes
        // below come to: its end must release it.
        self.state = State::Live(live);
        telemetry::frames_out(msgid::LOGIN_ACK, 1);
        telemetry::deliveries(DeliveryPath::Store, carried as u64);
        self.out.flush(dialect).await?;
        let State::Live(live) = &mut self.state else {
            return Ok(());
        };
        if carried > 0 {
            live.advance(&self.service, backlog[carried - 1].seq).await;
        }
        live.write_entries(&self.service, &mut self.out, &backlog[carried..])
            .await?;
        if full_page {
            live.refill(&self.service, &mut self.out).await?;
        }
        Ok(())
    }
}

/// The dialect a request announces on an anonymous connection.
fn announced(parsed: &Result<ClientFrame, ParseError>) -> Option<Dialect> {
    match parsed {
        Ok(ClientFrame {
            request: Request::Anonymous(request),
            ..
        }) => Some(request.dialect()),
        Ok(_) => None,
        // A frame that failed to parse may still say which dialect its
        // client speaks.
        Err(e) => e.proto.map(|p| Dialect::from_proto(Some(p))),
    }
}
