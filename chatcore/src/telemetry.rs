//! The metrics this crate records, through the `metrics` facade: names,
//! descriptions, and the cheap recording helpers the layers call. Every
//! call is a no-op until the embedding program installs a recorder (chatd
//! installs a Prometheus one); install it before starting a node.
//!
//! Keys are built at compile time (static names and label values), so
//! recording on the hot path allocates nothing.

use metrics::{Counter, Gauge, Histogram, Key, Level, Metadata, Unit};

use crate::protocol::{Dialect, ErrorCode, ServerFrame, msgid};

/// Metric names, each with its unit in the name.
pub(crate) mod names {
    /// Gauge: client connections open on this node.
    pub(crate) const CONNECTIONS: &str = "chat_connections";
    /// Gauge: distinct users with a session on this node.
    pub(crate) const LOGGED_IN_USERS: &str = "chat_logged_in_users";
    /// Counter by `kind` (the msgid's name): frames read from clients.
    pub(crate) const FRAMES_IN: &str = "chat_frames_in_total";
    /// Counter by `kind`: frames written to clients.
    pub(crate) const FRAMES_OUT: &str = "chat_frames_out_total";
    /// Counter by `code` (the error's name, as `rate_limited`): error
    /// replies sent to clients, the refusals of every limit among them.
    pub(crate) const ERRORS: &str = "chat_errors_total";
    /// Counter by `outcome` (`ok`, `error`): chat send requests.
    pub(crate) const SENDS: &str = "chat_sends_total";
    /// Counter by `path` (`live` from the bus, `store` from a sync or
    /// refill): inbox entries written to a recipient's connection.
    pub(crate) const DELIVERIES: &str = "chat_deliveries_total";
    /// Histogram by `op` (the `Store` method): store call latency.
    pub(crate) const STORE_DURATION: &str = "chat_store_duration_seconds";
    /// Counter by `op`: store calls that failed (unavailable or internal
    /// errors; answers such as "name taken" are not failures).
    pub(crate) const STORE_ERRORS: &str = "chat_store_errors_total";
    /// Histogram: latency of one bus publish (a batch of events).
    pub(crate) const BUS_PUBLISH_DURATION: &str = "chat_bus_publish_duration_seconds";
    /// Counter: bus publishes that failed.
    pub(crate) const BUS_PUBLISH_ERRORS: &str = "chat_bus_publish_errors_total";
    /// Counter: times a bus subscriber connection was re-established.
    pub(crate) const BUS_RECONNECTS: &str = "chat_bus_reconnects_total";
    /// Counter by `kind` (`message`, `inbox_entry`): rows retention
    /// deleted.
    pub(crate) const RETENTION_PRUNED: &str = "chat_retention_pruned_total";
}

/// Registers the description and unit of every metric with the installed
/// recorder (exporters print them as `# HELP`).
pub fn describe() {
    use names::*;
    metrics::describe_gauge!(CONNECTIONS, Unit::Count, "Client connections open");
    metrics::describe_gauge!(
        LOGGED_IN_USERS,
        Unit::Count,
        "Users with a session on this node"
    );
    metrics::describe_counter!(FRAMES_IN, Unit::Count, "Frames read from clients, by msgid");
    metrics::describe_counter!(
        FRAMES_OUT,
        Unit::Count,
        "Frames written to clients, by msgid"
    );
    metrics::describe_counter!(
        ERRORS,
        Unit::Count,
        "Error replies sent to clients, by error code"
    );
    metrics::describe_counter!(SENDS, Unit::Count, "Chat send requests, by outcome");
    metrics::describe_counter!(
        DELIVERIES,
        Unit::Count,
        "Inbox entries written to recipients, live from the bus or from the store"
    );
    metrics::describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Store call latency, by method"
    );
    metrics::describe_counter!(
        STORE_ERRORS,
        Unit::Count,
        "Store calls that failed (unavailable or internal), by method"
    );
    metrics::describe_histogram!(
        BUS_PUBLISH_DURATION,
        Unit::Seconds,
        "Latency of publishing one batch of bus events"
    );
    metrics::describe_counter!(BUS_PUBLISH_ERRORS, Unit::Count, "Failed bus publishes");
    metrics::describe_counter!(
        BUS_RECONNECTS,
        Unit::Count,
        "Times the bus subscriber connection was re-established"
    );
    metrics::describe_counter!(
        RETENTION_PRUNED,
        Unit::Count,
        "Rows retention deleted: acknowledged old messages and their inbox entries"
    );
}

static METADATA: Metadata<'static> = Metadata::new("chatcore", Level::INFO, Some("chatcore"));

/// A `&'static Key` for a metric name and optional label, both constants,
/// built once at compile time.
macro_rules! static_key {
    ($name:expr) => {{
        static KEY: ::metrics::Key = ::metrics::Key::from_static_name($name);
        &KEY
    }};
    ($name:expr, $label:literal => $value:expr) => {{
        static LABELS: [::metrics::Label; 1] =
            [::metrics::Label::from_static_parts($label, $value)];
        static KEY: ::metrics::Key = ::metrics::Key::from_static_parts($name, &LABELS);
        &KEY
    }};
}
pub(crate) use static_key;

pub(crate) fn counter(key: &'static Key) -> Counter {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
}

pub(crate) fn gauge(key: &'static Key) -> Gauge {
    metrics::with_recorder(|recorder| recorder.register_gauge(key, &METADATA))
}

pub(crate) fn histogram(key: &'static Key) -> Histogram {
    metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
}

/// The counter of `$metric` labelled with the name of message id `$id`.
macro_rules! counter_by_kind {
    ($metric:expr, $id:expr) => {
        counter(match $id {
            msgid::LOGIN => static_key!($metric, "kind" => "login"),
            msgid::LOGIN_ACK => static_key!($metric, "kind" => "login_ack"),
            msgid::REG => static_key!($metric, "kind" => "reg"),
            msgid::REG_ACK => static_key!($metric, "kind" => "reg_ack"),
            msgid::ONE_CHAT => static_key!($metric, "kind" => "one_chat"),
            msgid::ADD_FRIEND => static_key!($metric, "kind" => "add_friend"),
            msgid::CREATE_GROUP => static_key!($metric, "kind" => "create_group"),
            msgid::ADD_GROUP => static_key!($metric, "kind" => "add_group"),
            msgid::GROUP_CHAT => static_key!($metric, "kind" => "group_chat"),
            msgid::LOGINOUT => static_key!($metric, "kind" => "loginout"),
            msgid::ERROR => static_key!($metric, "kind" => "error"),
            msgid::ACK => static_key!($metric, "kind" => "ack"),
            msgid::CHAT_ACK => static_key!($metric, "kind" => "chat_ack"),
            msgid::DELIVERED => static_key!($metric, "kind" => "delivered"),
            msgid::SYNC => static_key!($metric, "kind" => "sync"),
            msgid::SYNC_ACK => static_key!($metric, "kind" => "sync_ack"),
            msgid::HISTORY => static_key!($metric, "kind" => "history"),
            msgid::HISTORY_ACK => static_key!($metric, "kind" => "history_ack"),
            msgid::LIST_FRIENDS => static_key!($metric, "kind" => "list_friends"),
            msgid::FRIENDS_ACK => static_key!($metric, "kind" => "friends_ack"),
            msgid::LIST_GROUPS => static_key!($metric, "kind" => "list_groups"),
            msgid::GROUPS_ACK => static_key!($metric, "kind" => "groups_ack"),
            msgid::LIST_MEMBERS => static_key!($metric, "kind" => "list_members"),
            msgid::MEMBERS_ACK => static_key!($metric, "kind" => "members_ack"),
            msgid::REMOVE_FRIEND => static_key!($metric, "kind" => "remove_friend"),
            msgid::LEAVE_GROUP => static_key!($metric, "kind" => "leave_group"),
            msgid::PING => static_key!($metric, "kind" => "ping"),
            msgid::PONG => static_key!($metric, "kind" => "pong"),
            msgid::KICKED => static_key!($metric, "kind" => "kicked"),
            msgid::RESUME => static_key!($metric, "kind" => "resume"),
            msgid::CHANGE_PASSWORD => static_key!($metric, "kind" => "change_password"),
            msgid::PRESENCE => static_key!($metric, "kind" => "presence"),
            msgid::READ => static_key!($metric, "kind" => "read"),
            msgid::CONVERSATIONS => static_key!($metric, "kind" => "conversations"),
            msgid::CONVERSATIONS_ACK => static_key!($metric, "kind" => "conversations_ack"),
            msgid::FIND_USER => static_key!($metric, "kind" => "find_user"),
            msgid::USERS_ACK => static_key!($metric, "kind" => "users_ack"),
            _ => static_key!($metric, "kind" => "unknown"),
        })
    };
}

/// A frame read from a client: `msgid` as far as it could be read, `None`
/// for one that is not even a JSON object with a `msgid`.
pub(crate) fn frame_in(id: Option<u32>) {
    match id {
        Some(id) => counter_by_kind!(names::FRAMES_IN, id).increment(1),
        None => counter(static_key!(names::FRAMES_IN, "kind" => "invalid")).increment(1),
    }
}

/// `count` frames with message id `id` written to a client.
pub(crate) fn frames_out(id: u32, count: u64) {
    if count == 0 {
        return;
    }
    counter_by_kind!(names::FRAMES_OUT, id).increment(count);
}

/// One frame written to a client in `dialect`.
pub(crate) fn frame_out(frame: &ServerFrame, dialect: Dialect) {
    frames_out(wire_msgid(frame, dialect), 1);
    if let ServerFrame::Error(e) = frame {
        error_sent(e.code);
    }
}

/// An error reply with `code` sent to a client (or, for a refused
/// connection, tried: a refused client may be gone before it reads it).
pub fn error_sent(code: ErrorCode) {
    macro_rules! by_code {
        ($($code:ident => $name:literal,)*) => {
            match code {
                $(ErrorCode::$code => static_key!(names::ERRORS, "code" => $name),)*
            }
        };
    }
    counter(by_code! {
        LoginFailed => "login_failed",
        BadFrame => "bad_frame",
        UnknownMsgid => "unknown_msgid",
        BadField => "bad_field",
        FrameTooLarge => "frame_too_large",
        NotLoggedIn => "not_logged_in",
        IdentityMismatch => "identity_mismatch",
        AlreadyLoggedIn => "already_logged_in",
        ResumeRejected => "resume_rejected",
        TooManyAttempts => "too_many_attempts",
        NameTaken => "name_taken",
        InvalidValue => "invalid_value",
        UnknownUser => "unknown_user",
        UnknownGroup => "unknown_group",
        NotMember => "not_member",
        GroupNameTaken => "group_name_taken",
        NotFriend => "not_friend",
        LimitReached => "limit_reached",
        Unavailable => "unavailable",
        Internal => "internal",
        RateLimited => "rate_limited",
        ServerFull => "server_full",
        Kicked => "kicked",
        ShuttingDown => "shutting_down",
        IdleTimeout => "idle_timeout",
        Banned => "banned",
        EndedByAdmin => "ended_by_admin",
    })
    .increment(1);
}

/// The `msgid` a frame travels under in `dialect` (mirrors
/// `ServerFrame::encode`).
pub(crate) fn wire_msgid(frame: &ServerFrame, dialect: Dialect) -> u32 {
    let legacy = dialect == Dialect::Legacy;
    match frame {
        ServerFrame::LoginOk(_) => msgid::LOGIN_ACK,
        ServerFrame::RegisterOk { .. } => msgid::REG_ACK,
        ServerFrame::Push { message, .. } => push_msgid(message),
        ServerFrame::Error(e) => match e.req {
            Some(msgid::LOGIN) if legacy => msgid::LOGIN_ACK,
            Some(msgid::REG) if legacy => msgid::REG_ACK,
            _ => msgid::ERROR,
        },
        ServerFrame::Ack(_) => msgid::ACK,
        ServerFrame::ChatAck(_) => msgid::CHAT_ACK,
        ServerFrame::Sync(_) => msgid::SYNC_ACK,
        ServerFrame::History { .. } => msgid::HISTORY_ACK,
        ServerFrame::Friends { .. } => msgid::FRIENDS_ACK,
        ServerFrame::Groups { .. } => msgid::GROUPS_ACK,
        ServerFrame::Members { .. } => msgid::MEMBERS_ACK,
        ServerFrame::Conversations { .. } => msgid::CONVERSATIONS_ACK,
        ServerFrame::Users { .. } => msgid::USERS_ACK,
        ServerFrame::Ping => msgid::PING,
        ServerFrame::Pong { .. } => msgid::PONG,
        // The seed's client gets a chat line from `system` instead.
        ServerFrame::Kicked { .. } if legacy => msgid::ONE_CHAT,
        ServerFrame::Kicked { .. } => msgid::KICKED,
        ServerFrame::Presence { .. } => msgid::PRESENCE,
    }
}

/// The `msgid` of a chat message pushed to a recipient.
pub(crate) fn push_msgid(message: &crate::model::Message) -> u32 {
    match message.target {
        crate::model::Target::User(_) => msgid::ONE_CHAT,
        crate::model::Target::Group(_) => msgid::GROUP_CHAT,
    }
}

/// Where delivered inbox entries came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryPath {
    /// A bus doorbell, written as it arrived.
    Live,
    /// Read from the store: login sync, a refill after a gap.
    Store,
}

/// `count` inbox entries written to a recipient's connection.
pub(crate) fn deliveries(path: DeliveryPath, count: u64) {
    if count == 0 {
        return;
    }
    let key = match path {
        DeliveryPath::Live => static_key!(names::DELIVERIES, "path" => "live"),
        DeliveryPath::Store => static_key!(names::DELIVERIES, "path" => "store"),
    };
    counter(key).increment(count);
}

/// One chat send request, stored (`ok`) or refused.
pub(crate) fn send(ok: bool) {
    let key = if ok {
        static_key!(names::SENDS, "outcome" => "ok")
    } else {
        static_key!(names::SENDS, "outcome" => "error")
    };
    counter(key).increment(1);
}

/// Retention deleted `messages` messages and `entries` inbox entries.
pub(crate) fn pruned(messages: u64, entries: u64) {
    if messages > 0 {
        counter(static_key!(names::RETENTION_PRUNED, "kind" => "message")).increment(messages);
    }
    if entries > 0 {
        counter(static_key!(names::RETENTION_PRUNED, "kind" => "inbox_entry")).increment(entries);
    }
}

/// A user gained its first (`true`) or lost its last session on this node.
pub(crate) fn user_logged_in(online: bool) {
    let users = gauge(static_key!(names::LOGGED_IN_USERS));
    if online {
        users.increment(1.0);
    } else {
        users.decrement(1.0);
    }
}

/// The bus subscriber connection came back after a loss.
#[cfg(feature = "redis")]
pub(crate) fn bus_reconnected() {
    counter(static_key!(names::BUS_RECONNECTS)).increment(1);
}

/// Counts one open connection while it lives.
#[derive(Debug)]
pub(crate) struct OpenConnection(());

impl OpenConnection {
    pub(crate) fn count() -> OpenConnection {
        gauge(static_key!(names::CONNECTIONS)).increment(1.0);
        OpenConnection(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        gauge(static_key!(names::CONNECTIONS)).decrement(1.0);
    }
}
