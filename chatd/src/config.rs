//! Command-line flags (each with an environment fallback and an optional
//! `--config` file under it), turned into the configuration structs of
//! `chatcore` once, here.
//!
//! Precedence, highest first: a flag, its environment variable, the
//! `--config` file (`file.rs`), the built-in default. `check.rs` prints
//! the outcome for `--check-config`, secrets redacted.

mod check;
mod file;

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use ipnet::IpNet;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

use chatcore::codec::DEFAULT_MAX_FRAME;
use chatcore::connection::ConnectionConfig;
use chatcore::limit::{LoginGuardConfig, RateLimit};
use chatcore::redis_target::RedisTarget;
use chatcore::server::{ServerConfig, TrustedProxies};
use chatcore::service::{HashParams, ResumeConfig, ResumeKey, ResumeKeyError, ServiceConfig};
use chatcore::store::SqlStoreOptions;

use crate::web::WebConfig;

/// The default database: a SQLite file in the working directory, created on
/// first start.
pub(crate) const DEFAULT_DATABASE_URL: &str = "sqlite://chat.db?mode=rwc";

/// Cluster chat server speaking the ZJP-ChatServer protocol (JSON frames
/// over TCP). With no flags it runs a single node on a SQLite file in the
/// working directory.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "Every flag but --config and --check-config may also be set in the \
                  --config file, under its long name (`database-url = \"...\"`; a \
                  repeatable flag takes an array). A flag beats its environment variable, \
                  which beats the file, which beats the default. deploy/chatd.toml is a \
                  commented example."
)]
pub(crate) struct Config {
    /// A TOML file of settings whose keys are these flags' long names
    /// (`listen = "127.0.0.1:6000"`); flags and environment variables
    /// override it. Unknown keys are an error.
    #[arg(long, env = "CHAT_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// Check the configuration, print the settings in effect (passwords
    /// and keys redacted) with where each came from, and exit: 0 when it
    /// is valid, 1 with the reasons when not.
    #[arg(long)]
    pub(crate) check_config: bool,

    /// Address to accept clients on.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:6000")]
    pub(crate) listen: String,

    /// Database URL: `sqlite://FILE?mode=rwc` or
    /// `mysql://USER:PASSWORD@HOST:PORT/DB`.
    #[arg(long, env = "CHAT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub(crate) database_url: String,

    /// Largest number of database connections.
    #[arg(long, env = "CHAT_DATABASE_POOL", default_value_t = 16)]
    pub(crate) database_pool: u32,

    /// Milliseconds one database call may take (waiting for a connection
    /// included); past it the client gets errno 30 "temporarily
    /// unavailable".
    #[arg(long, env = "CHAT_DATABASE_TIMEOUT_MS", default_value_t = 5000)]
    pub(crate) database_timeout_ms: u64,

    /// Milliseconds to wait for a free pooled database connection.
    #[arg(long, env = "CHAT_DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 5000)]
    pub(crate) database_acquire_timeout_ms: u64,

    /// Store each chat message in its own transaction instead of sharing
    /// transactions between concurrent sends (group commit).
    #[arg(long, env = "CHAT_NO_BATCH_SENDS")]
    pub(crate) no_batch_sends: bool,

    /// Most sends committed in one transaction.
    #[arg(long, env = "CHAT_BATCH_MAX", default_value_t = 256)]
    pub(crate) batch_max: usize,

    /// Microseconds a batch that is not full waits for more sends; 0 takes
    /// only those already queued (which batches by itself under load).
    #[arg(long, env = "CHAT_BATCH_WINDOW_US", default_value_t = 0)]
    pub(crate) batch_window_us: u64,

    /// Batches in flight at once on MySQL/MariaDB (SQLite always uses one).
    #[arg(long, env = "CHAT_BATCH_WRITERS", default_value_t = 2)]
    pub(crate) batch_writers: usize,

    /// Do not apply pending schema migrations at start.
    #[arg(long, env = "CHAT_NO_MIGRATE")]
    pub(crate) no_migrate: bool,

    /// Redis URL for the cluster bus and presence; without it this node runs
    /// alone with in-process ones.
    #[arg(long, env = "CHAT_REDIS_URL", conflicts_with = "redis_cluster_nodes")]
    pub(crate) redis_url: Option<String>,

    /// A node of the Redis Cluster (7 or later) for the cluster bus and
    /// presence, `redis://HOST:PORT`; repeat it for more seed nodes (the
    /// environment variable takes them comma-separated). Instead of
    /// `--redis-url`: nodes on one Redis and nodes on a Cluster cannot
    /// serve the same users (docs/cluster.md).
    #[arg(
        long = "redis-cluster-node",
        env = "CHAT_REDIS_CLUSTER_NODES",
        value_delimiter = ','
    )]
    pub(crate) redis_cluster_nodes: Vec<String>,

    /// Start of every Redis key and channel of this cluster, so that
    /// several clusters can share one Redis.
    #[arg(long, env = "CHAT_REDIS_PREFIX", default_value = "chat")]
    pub(crate) redis_prefix: String,

    /// This node's name in the cluster (default: generated at start).
    #[arg(long, env = "CHAT_NODE_ID")]
    pub(crate) node_id: Option<String>,

    /// Seconds a node's lease lasts without renewal: a killed node's users
    /// show offline after at most this long.
    #[arg(long, env = "CHAT_LEASE_TTL_SECS", default_value_t = 9)]
    pub(crate) lease_ttl_secs: u64,

    /// Longest accepted frame in bytes; a longer one gets an error and the
    /// connection is closed.
    #[arg(long, env = "CHAT_MAX_FRAME", default_value_t = DEFAULT_MAX_FRAME)]
    pub(crate) max_frame: usize,

    /// Longest chat message in bytes.
    #[arg(long, env = "CHAT_MAX_MESSAGE", default_value_t = 60 * 1024)]
    pub(crate) max_message: usize,

    /// Most clients served at once; one more is told "server is full"
    /// (errno 33) and closed.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub(crate) max_connections: usize,

    /// Requests per second one connection may send on average (PING and
    /// PONG excepted); a request over it gets errno 32 and is not run.
    /// 0 turns the limit off.
    #[arg(long, env = "CHAT_RATE_LIMIT", default_value_t = RateLimit::default().per_second)]
    pub(crate) rate_limit: u32,

    /// Requests one connection may send at once after a quiet spell (the
    /// token bucket's size).
    #[arg(long, env = "CHAT_RATE_BURST", default_value_t = RateLimit::default().burst)]
    pub(crate) rate_burst: u32,

    /// Seconds a connection may stay without logging in before it is
    /// closed (errno 42); 0 lets it wait forever. Generous by default: the
    /// seed's console client connects before its user picks "login" from
    /// its menu, and never reconnects.
    #[arg(long, env = "CHAT_LOGIN_TIMEOUT_SECS", default_value_t = 120)]
    pub(crate) login_timeout_secs: u64,

    /// Failed logins for one user id from one address (IPv6: one /64)
    /// after which that user's logins from that address are refused
    /// (errno 18) for 1 s, doubling with each further failure up to 5 min;
    /// 0 turns it off. The user from any other address is not held back.
    /// Counted in Redis, across the cluster, when one is configured.
    #[arg(long, env = "CHAT_LOGIN_MAX_FAILURES", default_value_t = LoginGuardConfig::default().max_failures_per_user_address)]
    pub(crate) login_max_failures: u32,

    /// Failed logins from one address (IPv6: one /64), for any users,
    /// after which logins from it are refused the same way; 0 turns it
    /// off. Behind a proxy that does not pass the client's address (see
    /// --proxy-protocol-from) every client has the proxy's: set 0 there.
    #[arg(long, env = "CHAT_LOGIN_MAX_FAILURES_PER_ADDRESS", default_value_t = LoginGuardConfig::default().max_failures_per_address)]
    pub(crate) login_max_failures_per_address: u32,

    /// Registrations one address (IPv6: one /64) may make per minute;
    /// beyond them REG gets errno 18 until the minute is over. Counted in
    /// Redis, across the cluster, when one is configured. 0 (the default)
    /// turns it off; docs/security.md recommends a value.
    #[arg(long, env = "CHAT_REGISTER_RATE", default_value_t = ServiceConfig::default().register_rate)]
    pub(crate) register_rate: u32,

    /// Most groups one user may belong to (errno 27 beyond); 0: no limit.
    #[arg(long, env = "CHAT_MAX_GROUPS_PER_USER", default_value_t = ServiceConfig::default().max_groups_per_user)]
    pub(crate) max_groups_per_user: u32,

    /// Most members one group may have (errno 27 beyond); 0: no limit.
    #[arg(long, env = "CHAT_MAX_GROUP_MEMBERS", default_value_t = ServiceConfig::default().max_group_members)]
    pub(crate) max_group_members: u32,

    /// Deliveries queued per session before it refills from the store.
    #[arg(long, env = "CHAT_OUTBOX", default_value_t = 1024)]
    pub(crate) outbox: usize,

    /// Seconds of silence before a native client is pinged; three times
    /// this closes the connection.
    #[arg(long, env = "CHAT_HEARTBEAT_SECS", default_value_t = 30)]
    pub(crate) heartbeat_secs: u64,

    /// Milliseconds between frames to a legacy (seed) client, whose single
    /// 1024-byte read would merge frames that arrive together.
    #[arg(long, env = "CHAT_LEGACY_PACE_MS", default_value_t = 10)]
    pub(crate) legacy_pace_ms: u64,

    /// Seconds a write may block before the client counts as not reading
    /// and is disconnected.
    #[arg(long, env = "CHAT_WRITE_TIMEOUT_SECS", default_value_t = 30)]
    pub(crate) write_timeout_secs: u64,

    /// Seconds to wait for clients to be told goodbye at shutdown.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE_SECS", default_value_t = 5)]
    pub(crate) shutdown_grace_secs: u64,

    /// argon2id memory cost in KiB (OWASP: 19456).
    #[arg(long, env = "CHAT_ARGON2_MEMORY_KIB", default_value_t = HashParams::default().memory_kib)]
    pub argon2_memory_kib: u32,

    /// argon2id passes.
    #[arg(long, env = "CHAT_ARGON2_ITERATIONS", default_value_t = HashParams::default().iterations)]
    pub argon2_iterations: u32,

    /// Password hashes computed at once; logins beyond wait their turn.
    #[arg(long, env = "CHAT_HASH_THREADS", default_value_t = default_hash_threads())]
    pub(crate) hash_threads: usize,

    /// Secret of at least 32 bytes that signs resume tokens (prefer the
    /// environment variable: flags show in `ps`). Every node of a cluster
    /// needs the same one for tokens to work on any node. Without it, nodes
    /// on a Redis agree on one kept there (made by the first node to start,
    /// under the key prefix); a node alone on a SQLite file keeps one in a
    /// file beside it (`<database>.resume-key`); on any other database a
    /// node alone makes a random one at start, and its tokens die with it.
    #[arg(long, env = "CHAT_RESUME_KEY", hide_env_values = true)]
    pub(crate) resume_key: Option<String>,

    /// Seconds a resume token stays valid (logout and password change
    /// revoke it sooner).
    #[arg(long, env = "CHAT_RESUME_TTL_SECS", default_value_t = 24 * 3600)]
    pub(crate) resume_ttl_secs: u64,

    /// A load balancer (an address or a CIDR range, e.g. `10.0.0.0/8`)
    /// whose PROXY protocol header (v1 or v2) names the client on the TCP
    /// listener, and whose `X-Forwarded-For` the web listener believes;
    /// repeatable (comma-separated in the environment). Connections from
    /// it must start with the header; a header from anyone else is
    /// refused. Without any, the web listener believes loopback only.
    #[arg(long = "proxy-protocol-from", env = "CHAT_PROXY_PROTOCOL_FROM", value_delimiter = ',', value_parser = parse_range)]
    pub(crate) proxy_protocol_from: Vec<IpNet>,

    /// Address (`HOST:PORT`) of the web listener: the browser client at `/`
    /// and WebSocket connections at `/ws`. `off` turns it off.
    #[arg(long, env = "CHAT_WEB_ADDR", default_value = "127.0.0.1:6080")]
    pub(crate) web_addr: String,

    /// An origin (`https://chat.example.org`) besides the web listener's
    /// own whose pages may open WebSockets; repeatable (comma-separated in
    /// the environment). Pages of any other site are refused with 403.
    #[arg(
        long = "web-allowed-origin",
        env = "CHAT_WEB_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub(crate) web_allowed_origins: Vec<String>,

    /// Address (`HOST:PORT`) of the admin HTTP listener, off unless given.
    /// It serves `GET /health` (200 when the database and the bus answer,
    /// 503 with the reason otherwise) and `GET /metrics` (Prometheus text
    /// format) without authentication: bind it to a private address. With
    /// `--admin-token-file` it also serves the `/admin/` API.
    #[arg(long, env = "CHAT_ADMIN_ADDR")]
    pub(crate) admin_addr: Option<String>,

    /// File holding the bearer token of the admin API (`/admin/users/...`:
    /// look at, kick, ban, set the password of, delete accounts; see
    /// docs/admin.md), read once at start; a trailing newline is ignored.
    /// It must not be empty or readable by other users. Without it the
    /// `/admin/` routes do not exist.
    #[arg(long, env = "CHAT_ADMIN_TOKEN_FILE")]
    pub(crate) admin_token_file: Option<PathBuf>,

    /// Delete messages older than this many days once every recipient
    /// has acknowledged them (with their inbox entries), in small batches
    /// once an hour; unacknowledged messages are kept whatever their age.
    /// 0 (the default) keeps every message.
    #[arg(long, env = "CHAT_RETENTION_DAYS", default_value_t = 0)]
    pub(crate) retention_days: u32,

    /// Log filter, in `tracing` EnvFilter syntax (e.g. `info,chatcore=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub(crate) log: String,

    /// Log line format on stderr: `text` for people, `json` (one object a
    /// line, fields at the top level) for log shippers.
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// Instead of serving: a one-off task on the database above.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// chatd's one-off tasks; without one it serves.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Import a ZJP-ChatServer (seed) MySQL database into the database of
    /// --database-url (docs/import-seed.md).
    ///
    /// chatd's own flags (or their CHAT_* variables) go before
    /// `import-seed`: --database-url names the target; --argon2-memory-kib,
    /// --argon2-iterations and --hash-threads hash the seed's passwords;
    /// --max-message bounds the messages. Safe to interrupt and run again:
    /// it resumes, and once complete it changes nothing.
    ImportSeed(crate::import_seed::ImportSeedArgs),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The configuration and where each setting came from.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) config: Config,
    command: clap::Command,
    matches: ArgMatches,
    /// The keys the `--config` file set.
    from_file: Vec<String>,
}

impl Loaded {
    /// The settings in effect as TOML, secrets redacted, each with its
    /// source (for `--check-config`).
    pub(crate) fn report(&self) -> String {
        check::report(&self.command, &self.matches, &self.from_file)
    }
}

/// An address range, or one address as a range of its own.
fn parse_range(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is neither an address nor a CIDR range"))
}

fn default_hash_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Config {
    /// Parses `args` (the program name first) over the environment, the
    /// `--config` file they or the environment name, and the defaults. A
    /// `clap::Error` in the result is the command line's (print it with
    /// `exit`: it may be `--help`); anything else is the file's.
    pub(crate) fn load_from<I, T>(args: I) -> anyhow::Result<Loaded>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        // Once to learn where the file is (a file adds only defaults, so
        // a command line wrong without it is wrong with it too)...
        let first = Config::command().try_get_matches_from(&args)?;
        let path = first.get_one::<PathBuf>("config").cloned();
        let (command, from_file) = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the configuration file {}", path.display())
                })?;
                file::apply(Config::command(), &text)
                    .with_context(|| format!("in the configuration file {}", path.display()))?
            }
            None => (Config::command(), Vec::new()),
        };
        // ...then with the file's values as the defaults, under the flags
        // and the environment.
        let matches = command.clone().try_get_matches_from(&args)?;
        let config = Config::from_arg_matches(&matches)?;
        Ok(Loaded {
            config,
            command,
            matches,
            from_file,
        })
    }

    /// The problems that would stop this configuration from starting a
    /// node, found without touching the database, Redis or the network.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            problems.push(format!("invalid --log filter {:?}: {e}", self.log));
        }
        if let Some(secret) = &self.resume_key
            && let Err(e) = ResumeKey::from_secret(secret.as_bytes())
        {
            problems.push(format!("invalid --resume-key (CHAT_RESUME_KEY): {e}"));
        }
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("mysql:")) {
            problems.push(format!(
                "unsupported --database-url {}: expected sqlite://FILE?mode=rwc or \
                 mysql://USER:PASSWORD@HOST:PORT/DB",
                self.redacted_database_url()
            ));
        }
        // Checked here, not by clap's `requires`: a setting from the
        // --config file is a default to clap, which `requires` ignores.
        if self.admin_token_file.is_some() && self.admin_addr.is_none() {
            problems.push(
                "--admin-token-file needs --admin-addr: the /admin/ API is served on the \
                 admin listener"
                    .to_owned(),
            );
        }
        let addresses = [
            ("--listen", Some(self.listen.as_str())),
            ("--web-addr", self.web_addr()),
            ("--admin-addr", self.admin_addr.as_deref()),
        ];
        for (flag, addr) in addresses {
            if let Some(addr) = addr
                && let Err(e) = crate::listen::resolve(addr)
            {
                problems.push(format!("invalid {flag} {addr:?}: {e}"));
            }
        }
        problems
    }

    /// Open files this configuration needs at most: one per client
    /// connection, plus the margin of `nofile::MARGIN` per database
    /// connection and for the rest.
    pub(crate) fn files_needed(&self) -> u64 {
        crate::nofile::files_needed(self.max_connections, self.database_pool)
    }

    pub(crate) fn store_options(&self) -> SqlStoreOptions {
        let mut options = SqlStoreOptions::new(&self.database_url);
        options.max_connections = self.database_pool;
        options.run_migrations = !self.no_migrate;
        options.request_timeout = Duration::from_millis(self.database_timeout_ms.max(1));
        options.acquire_timeout = Duration::from_millis(self.database_acquire_timeout_ms.max(1));
        options.batch_sends = !self.no_batch_sends;
        options.max_batch = self.batch_max.max(1);
        options.batch_window = Duration::from_micros(self.batch_window_us);
        options.batch_writers = self.batch_writers.max(1);
        options
    }

    /// The database URL without its password, for logs.
    pub(crate) fn redacted_database_url(&self) -> String {
        redact(&self.database_url)
    }

    pub(crate) fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "node".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }

    /// The Redis under the cluster bus and presence, if any.
    pub(crate) fn redis_target(&self) -> Option<RedisTarget> {
        if !self.redis_cluster_nodes.is_empty() {
            return Some(RedisTarget::Cluster(self.redis_cluster_nodes.clone()));
        }
        self.redis_url.clone().map(RedisTarget::Single)
    }

    pub(crate) fn hash_params(&self) -> HashParams {
        HashParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            ..HashParams::default()
        }
    }

    /// The service's settings; `shared_key` is the resume key the cluster
    /// agreed on when none was configured (see `resume_key.rs`).
    pub(crate) fn service_config(
        &self,
        shared_key: Option<ResumeKey>,
    ) -> Result<ServiceConfig, ResumeKeyError> {
        let key = match (&self.resume_key, shared_key) {
            (Some(secret), _) => ResumeKey::from_secret(secret.as_bytes())?,
            (None, Some(shared)) => shared,
            // A node alone: its tokens need work on no other node.
            (None, None) => ResumeKey::random(),
        };
        Ok(ServiceConfig {
            max_message_bytes: self.max_message,
            login_guard: LoginGuardConfig {
                max_failures_per_user_address: self.login_max_failures,
                max_failures_per_address: self.login_max_failures_per_address,
                ..LoginGuardConfig::default()
            },
            register_rate: self.register_rate,
            max_groups_per_user: self.max_groups_per_user,
            max_group_members: self.max_group_members,
            resume: ResumeConfig {
                key,
                ttl: Duration::from_secs(self.resume_ttl_secs.max(1)),
            },
            ..ServiceConfig::default()
        })
    }

    /// The web listener's address, unless it is off.
    pub(crate) fn web_addr(&self) -> Option<&str> {
        (!self.web_addr.eq_ignore_ascii_case("off")).then_some(self.web_addr.as_str())
    }

    pub(crate) fn web_config(&self) -> WebConfig {
        let server = self.server_config();
        WebConfig {
            connection: server.connection,
            allowed_origins: self.web_allowed_origins.clone(),
            trusted_proxies: server.trusted_proxies.clone(),
            shutdown_grace: server.shutdown_grace,
            keepalive: server.keepalive,
        }
    }

    pub(crate) fn server_config(&self) -> ServerConfig {
        ServerConfig {
            connection: ConnectionConfig {
                max_frame: self.max_frame,
                outbox_capacity: self.outbox,
                heartbeat: Duration::from_secs(self.heartbeat_secs.max(1)),
                legacy_pace: Duration::from_millis(self.legacy_pace_ms),
                write_timeout: Duration::from_secs(self.write_timeout_secs.max(1)),
                rate_limit: RateLimit {
                    per_second: self.rate_limit,
                    burst: self.rate_burst,
                },
                login_timeout: (self.login_timeout_secs > 0)
                    .then(|| Duration::from_secs(self.login_timeout_secs)),
            },
            max_connections: self.max_connections,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            trusted_proxies: TrustedProxies::new(self.proxy_protocol_from.clone()),
            ..ServerConfig::default()
        }
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
/// The user information ends at the authority's last `@`: a password may
/// hold an `@` of its own (URL parsers take it so), and the path or query
/// after the authority may too.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_script_keeps_the_database_password_off_command_lines() {
        // `ps` shows every process's arguments to every user of the machine.
        let script = include_str!("../../deploy/cluster.sh");
        let on_a_command_line = script
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .find(|line| line.contains("--database-url"));
        assert_eq!(on_a_command_line, None);
        assert!(script.contains("export CHAT_DATABASE_URL"));
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact("mysql://chat:s3cret@db:3306/chat"),
            "mysql://chat:***@db:3306/chat"
        );
        assert_eq!(redact("mysql://root@db/chat"), "mysql://root@db/chat");
        // An `@` in the password is the password's: all of it goes.
        assert_eq!(
            redact("mysql://chat:p@ss@w0rd@db:3306/chat"),
            "mysql://chat:***@db:3306/chat"
        );
        // One after the authority is not.
        assert_eq!(
            redact("mysql://chat:s3cret@db/chat?user=a@b"),
            "mysql://chat:***@db/chat?user=a@b"
        );
        assert_eq!(redact(DEFAULT_DATABASE_URL), DEFAULT_DATABASE_URL);
    }

    #[test]
    fn redis_cluster_nodes_repeat_and_exclude_a_single_redis() {
        let config = Config::try_parse_from([
            "chatd",
            "--redis-cluster-node",
            "redis://127.0.0.1:7000",
            "--redis-cluster-node",
            "redis://127.0.0.1:7001",
        ])
        .expect("valid flags");
        assert_eq!(
            config.redis_target(),
            Some(RedisTarget::Cluster(vec![
                "redis://127.0.0.1:7000".to_owned(),
                "redis://127.0.0.1:7001".to_owned()
            ]))
        );
        let single = Config::try_parse_from(["chatd", "--redis-url", "redis://r:6379"])
            .expect("valid flags");
        assert_eq!(
            single.redis_target(),
            Some(RedisTarget::Single("redis://r:6379".to_owned()))
        );
        assert_eq!(
            Config::try_parse_from(["chatd"])
                .expect("no flags")
                .redis_target(),
            None
        );
        assert!(
            Config::try_parse_from([
                "chatd",
                "--redis-url",
                "redis://r:6379",
                "--redis-cluster-node",
                "redis://127.0.0.1:7000",
            ])
            .is_err(),
            "one Redis or a Cluster, not both"
        );
    }

    #[test]
    fn limit_flags_reach_the_configs() {
        let config = Config::try_parse_from([
            "chatd",
            "--max-connections",
            "7",
            "--rate-limit",
            "50",
            "--rate-burst",
            "60",
            "--login-timeout-secs",
            "9",
            "--login-max-failures",
            "3",
            "--login-max-failures-per-address",
            "0",
            "--register-rate",
            "4",
            "--max-groups-per-user",
            "11",
            "--max-group-members",
            "12",
            "--max-message",
            "1000",
        ])
        .expect("flags parse");
        let server = config.server_config();
        assert_eq!(server.max_connections, 7);
        assert_eq!(
            server.connection.rate_limit,
            RateLimit {
                per_second: 50,
                burst: 60
            }
        );
        assert_eq!(
            server.connection.login_timeout,
            Some(Duration::from_secs(9))
        );
        let service = config.service_config(None).expect("service config");
        assert_eq!(service.login_guard.max_failures_per_user_address, 3);
        assert_eq!(service.login_guard.max_failures_per_address, 0);
        assert_eq!(service.register_rate, 4);
        assert_eq!(service.max_groups_per_user, 11);
        assert_eq!(service.max_group_members, 12);
        assert_eq!(service.max_message_bytes, 1000);
    }

    #[test]
    fn limits_default_on_and_zero_turns_the_login_timeout_off() {
        let config = Config::try_parse_from(["chatd"]).expect("no flags");
        let server = config.server_config();
        assert_eq!(server.connection.rate_limit, RateLimit::default());
        assert_eq!(
            server.connection.login_timeout,
            Some(Duration::from_secs(120))
        );
        let service = config.service_config(None).expect("service config");
        assert_eq!(service.login_guard.max_failures_per_user_address, 5);
        assert_eq!(service.register_rate, 0, "off unless asked for");
        assert_eq!(service.max_groups_per_user, 500);
        assert_eq!(service.max_group_members, 1000);

        let off = Config::try_parse_from(["chatd", "--login-timeout-secs", "0"]).expect("flags");
        assert_eq!(off.server_config().connection.login_timeout, None);
    }

    #[test]
    fn a_short_resume_key_is_refused_with_its_length() {
        let config =
            Config::try_parse_from(["chatd", "--resume-key", "too short"]).expect("flags parse");
        assert_eq!(
            config.service_config(None).map(|_| ()),
            Err(ResumeKeyError::TooShort { len: 9, min: 32 })
        );
    }

    #[test]
    fn admin_and_retention_flags_parse_and_a_token_needs_the_listener() {
        let config = Config::try_parse_from([
            "chatd",
            "--admin-addr",
            "127.0.0.1:9100",
            "--admin-token-file",
            "/run/chatd/admin-token",
            "--retention-days",
            "30",
        ])
        .expect("flags");
        assert_eq!(
            config.admin_token_file.as_deref(),
            Some(std::path::Path::new("/run/chatd/admin-token"))
        );
        assert_eq!(config.retention_days, 30);
        let defaults = Config::try_parse_from(["chatd"]).expect("flags");
        assert_eq!(
            (defaults.admin_token_file, defaults.retention_days),
            (None, 0)
        );
        let orphan = Config::try_parse_from(["chatd", "--admin-token-file", "t"]).expect("flags");
        assert!(
            orphan
                .problems()
                .iter()
                .any(|p| p.contains("--admin-token-file needs --admin-addr")),
            "a token without --admin-addr serves nothing: {:?}",
            orphan.problems()
        );
        assert!(config.problems().is_empty(), "{:?}", config.problems());
    }

    #[test]
    fn every_flag_has_help() {
        use clap::CommandFactory;
        let command = Config::command();
        let subcommands = command.get_subcommands().flat_map(|c| c.get_arguments());
        for arg in command.get_arguments().chain(subcommands) {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_help().is_some(), "--{id} has no help");
        }
    }
}
