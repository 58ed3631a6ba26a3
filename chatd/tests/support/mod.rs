//! Shared by the `chatd` process tests: real `chatd` processes on a
//! throwaway MySQL/MariaDB database, Redis (shared or private), nginx in
//! front, and the typed client to talk to them.
//!
//! Services come from the environment (`chat_testkit::Service`): the
//! suites that need them run on `chat_testkit::harness`, which reports a
//! test whose service is not named as ignored, with the reason, unless
//! `CHAT_TEST_REQUIRE_SERVICES` is set, when it fails instead. The
//! helpers here may take the services as given:
//!
//! - `CHAT_TEST_MYSQL_URL`: a server URL, `mysql://USER[:PW]@HOST:PORT`
//!   (databases are created per test and dropped after);
//! - `CHAT_TEST_REDIS_URL`: a shared Redis, each test under a key prefix of
//!   its own (its presence also means `redis-server` is installed, for
//!   tests that run a private one);
//! - `CHAT_TEST_NGINX`: the nginx binary (with the stream module);
//! - `CHAT_TEST_REDIS_CLUSTER`: a shared Redis Cluster (its nodes,
//!   comma-separated), for clusters started with `redis_cluster`.
//!
//! Every process a test starts is owned by a guard whose `Drop` kills it by
//! pid; when a test fails, the guards print the processes' logs.
#![allow(dead_code, unreachable_pub)]

pub mod http;
pub mod nginx;
pub mod process;
pub mod redis;
pub mod stream;
pub mod web;
pub mod ws;

use std::time::Duration;

use chat_testkit::mysql::ThrowawayDatabase;
use chat_testkit::nginx::Nginx;
use chat_testkit::proxy::Proxy;
use chat_testkit::redis::PrivateRedis;
use chat_testkit::{Service, unique_name};
use chatcore::client::{ChatMessage, Client, Event, LoginInfo};
use chatcore::model::UserId;

pub use process::Chatd;

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(10);

/// A process stopped by a signal (`kill -SIG pid`).
pub fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A logged-in user and the connection it is logged in on.
#[derive(Debug)]
pub struct User {
    pub client: Client,
    pub id: UserId,
    pub name: String,
    /// The client side of the TCP connection: what nginx logs as
    /// `$remote_port`.
    pub local_port: u16,
    /// The resume token of the last login.
    pub resume: String,
}

impl User {
    /// The user `info` logged in as on `client`.
    pub fn logged_in(client: Client, local_port: u16, name: &str, info: LoginInfo) -> User {
        User {
            client,
            id: info.id,
            name: name.to_owned(),
            local_port,
            resume: info
                .resume
                .expect("a native login gets a resume token")
                .token,
        }
    }
}

pub const PASSWORD: &str = "pw";

/// A TCP connection (native client) and its local port, or why there is
/// none within `within` (a stopped node accepts in its kernel but never
/// answers, and an unreachable one may not refuse).
pub async fn try_connect(addr: &str, within: Duration) -> Result<(Client, u16), String> {
    let stream = tokio::time::timeout(within, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let port = stream.local_addr().map_err(|e| e.to_string())?.port();
    Ok((Client::new(stream), port))
}

/// A TCP connection (native client) and its local port.
pub async fn connect(addr: &str) -> (Client, u16) {
    try_connect(addr, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Registers `name` over a connection to `addr` and logs it in there.
pub async fn new_user(addr: &str, name: &str) -> User {
    let (client, local_port) = connect(addr).await;
    let id = client
        .register(name, PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("register {name} at {addr}: {e}"));
    let info = client
        .login(id, PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("login {name} at {addr}: {e}"));
    User::logged_in(client, local_port, name, info)
}

/// Logs user `id` in again over a new connection to `addr`.
pub async fn login(addr: &str, id: UserId, name: &str) -> User {
    let (client, local_port) = connect(addr).await;
    let info = client
        .login(id, PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("login {name} ({id}) at {addr}: {e}"));
    User::logged_in(client, local_port, name, info)
}

/// Logs `user` in again over a new connection to `addr` with its resume
/// token, without the password.
pub async fn resume(addr: &str, user: &User) -> User {
    let (client, local_port) = connect(addr).await;
    let info = client
        .resume(&user.resume)
        .await
        .unwrap_or_else(|e| panic!("resume {} ({}) at {addr}: {e}", user.name, user.id));
    assert_eq!(info.id, user.id, "the token names its user");
    User::logged_in(client, local_port, &user.name, info)
}

/// The next event on `user`'s connection that is not a friend's presence
/// (which these tests do not follow), or `None` once it closed.
pub async fn next_event(user: &mut User) -> Option<Event> {
    loop {
        match user.client.next_event_within(WAIT).await {
            Some(Event::Presence { .. }) => continue,
            other => return other,
        }
    }
}

/// The next chat message on `user`'s connection; panics on anything else
/// but presence (a kick, the connection closing) or after [`WAIT`].
pub async fn next_message(user: &mut User) -> ChatMessage {
    match next_event(user).await {
        Some(Event::Message(m)) => m,
        other => panic!(
            "{} ({}) expected a chat message, got {other:?}",
            user.name, user.id
        ),
    }
}

/// The next `n` messages as (inbox seq, text), in arrival order.
pub async fn next_deliveries(user: &mut User, n: usize) -> Vec<(i64, String)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let m = next_message(user).await;
        let seq = m.seq.expect("a delivery carries its seq");
        out.push((seq.0, m.msg));
    }
    out
}

/// The texts of the next `n` messages, in arrival order, after checking
/// that their inbox seqs follow each other.
pub async fn next_texts(user: &mut User, n: usize) -> Vec<String> {
    let deliveries = next_deliveries(user, n).await;
    assert_consecutive(&user.name, &deliveries);
    deliveries.into_iter().map(|(_, text)| text).collect()
}

/// Panics unless the seqs follow each other (no gap, no repeat).
pub fn assert_consecutive(who: &str, deliveries: &[(i64, String)]) {
    for pair in deliveries.windows(2) {
        assert_eq!(
            pair[1].0,
            pair[0].0 + 1,
            "{who}: inbox seqs must follow each other: {deliveries:?}"
        );
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Kicked(u32),
    Closed,
}

/// Reads `user`'s connection until the server ends it; returns the chat
/// messages that came before the end, and how it ended. Panics when it
/// does not end within `within`.
pub async fn read_until_ended(user: &mut User, within: Duration) -> (Vec<ChatMessage>, Ending) {
    let deadline = tokio::time::Instant::now() + within;
    let mut messages = Vec::new();
    loop {
        let event = tokio::time::timeout_at(deadline, user.client.next_event())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} ({}): the connection was not ended within {within:?}; received {messages:?}",
                    user.name, user.id
                )
            });
        match event {
            Some(Event::Message(m)) => messages.push(m),
            Some(Event::Kicked { errno, .. }) => {
                // The server closes the connection after the kick.
                let rest = tokio::time::timeout_at(deadline, user.client.next_event()).await;
                assert!(
                    matches!(rest, Ok(None)),
                    "{}: after KICKED the connection closes, got {rest:?}",
                    user.name
                );
                return (messages, Ending::Kicked(errno));
            }
            Some(Event::Error { .. } | Event::Presence { .. }) => {}
            None => return (messages, Ending::Closed),
        }
    }
}

/// Whether `watcher` sees `friend` online in its friend list.
pub async fn sees_online(watcher: &User, friend: UserId) -> bool {
    let friends = watcher
        .client
        .friends()
        .await
        .unwrap_or_else(|e| panic!("{} lists friends: {e}", watcher.name));
    friends
        .iter()
        .find(|f| f.id == friend)
        .unwrap_or_else(|| panic!("{friend} is not a friend of {}", watcher.name))
        .online()
}

/// The address the deployment's nginx connects to the nodes from.
pub const NGINX_SOURCE: &str = "127.0.0.2";

/// What a test cluster is made of.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub nodes: usize,
    /// `--lease-ttl-secs`; `None` for chatd's default.
    pub lease_ttl_secs: Option<u64>,
    /// Put nginx in front (needs [`Service::Nginx`]).
    pub nginx: bool,
    /// A `redis-server` of the test's own instead of the shared Redis.
    pub private_redis: bool,
    /// The shared Redis Cluster instead of the shared Redis (needs
    /// [`Service::RedisCluster`]).
    pub redis_cluster: bool,
    /// The nodes reach the database through a [`Proxy`] of the test's own
    /// ([`Cluster::db_proxy`]), which can cut it.
    pub database_proxy: bool,
    /// More `chatd` flags, for every node.
    pub node_args: Vec<String>,
    /// Give every node an admin listener ([`Cluster::admins`]) serving the
    /// admin API with this bearer token.
    pub admin_token: Option<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 2,
            lease_ttl_secs: None,
            nginx: false,
            private_redis: false,
            redis_cluster: false,
            database_proxy: false,
            node_args: Vec::new(),
            admin_token: None,
        }
    }
}

/// `chatd` nodes on one throwaway database and one Redis key prefix,
/// optionally behind nginx. Dropping it kills every process (fields drop
/// in order: nginx, nodes, Redis) and then drops the database.
#[derive(Debug)]
pub struct Cluster {
    pub nginx: Option<Nginx>,
    pub nodes: Vec<Chatd>,
    pub redis: Option<PrivateRedis>,
    /// Between the nodes and the database, with `database_proxy`.
    pub db_proxy: Option<Proxy>,
    pub redis_url: String,
    /// The Redis Cluster's nodes, with `redis_cluster` (then `redis_url`
    /// is empty).
    pub redis_cluster: Option<Vec<String>>,
    pub prefix: String,
    /// Each node's admin listener, with `admin_token`.
    pub admins: Vec<String>,
    pub db: ThrowawayDatabase,
    pub logs: tempfile::TempDir,
}

impl Cluster {
    /// What a cluster needs.
    pub const NEEDS: &[Service] = &[Service::Mysql, Service::Redis];
    /// What a cluster with nginx in front needs.
    pub const NEEDS_WITH_NGINX: &[Service] = &[Service::Mysql, Service::Redis, Service::Nginx];
    /// What a cluster on the shared Redis Cluster needs.
    pub const NEEDS_ON_REDIS_CLUSTER: &[Service] = &[Service::Mysql, Service::RedisCluster];

    /// Starts the cluster and waits until every part accepts connections.
    /// It needs MySQL, Redis and, with `nginx`, nginx ([`Cluster::NEEDS`],
    /// [`Cluster::NEEDS_WITH_NGINX`]).
    pub async fn start(options: ClusterOptions) -> Cluster {
        let logs = tempfile::Builder::new()
            .prefix("chatd-cluster-")
            .tempdir()
            .expect("tempdir");
        let db = ThrowawayDatabase::create().await;
        let redis = options
            .private_redis
            .then(|| PrivateRedis::start_in(logs.path()));
        let redis_cluster = options
            .redis_cluster
            .then(chat_testkit::redis_cluster::shared_nodes);
        let redis_url = match (&redis, &redis_cluster) {
            (Some(redis), _) => redis.url(),
            (None, Some(_)) => String::new(),
            (None, None) => chat_testkit::redis::shared_url(),
        };
        let prefix = unique_name("chat_test");
        let db_proxy = if options.database_proxy {
            Some(Proxy::start(&db.server.addr).await)
        } else {
            None
        };
        let database_url = match &db_proxy {
            Some(proxy) => db.url_via(&proxy.addr),
            None => db.url.clone(),
        };
        let token_file = options.admin_token.as_deref().map(|token| {
            let path = logs.path().join("admin-token");
            std::fs::write(&path, format!("{token}\n")).expect("write the admin token");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod the admin token");
            path
        });
        let mut admins = Vec::new();
        let mut nodes = Vec::new();
        for i in 1..=options.nodes {
            let node_id = format!("node{i}");
            let mut args = vec!["--database-url".to_owned(), database_url.clone()];
            match &redis_cluster {
                Some(nodes) => {
                    for node in nodes {
                        args.extend(["--redis-cluster-node".to_owned(), node.clone()]);
                    }
                }
                None => args.extend(["--redis-url".to_owned(), redis_url.clone()]),
            }
            args.extend([
                "--redis-prefix".to_owned(),
                prefix.clone(),
                "--node-id".to_owned(),
                node_id.clone(),
                // No --resume-key: the nodes agree on one in Redis, so a
                // token from one node works on all (what
                // a_killed_nodes_users_show_offline_and_resume_on_the_other_node
                // relies on).
            ]);
            if let Some(ttl) = options.lease_ttl_secs {
                args.extend(["--lease-ttl-secs".to_owned(), ttl.to_string()]);
            }
            if options.nginx {
                // The deployment's nginx connects from 127.0.0.2 and sends
                // the PROXY header (deploy/nginx/chat.conf).
                args.extend(["--proxy-protocol-from".to_owned(), NGINX_SOURCE.to_owned()]);
            }
            args.extend(options.node_args.iter().cloned());
            if let Some(file) = &token_file {
                let admin = format!("127.0.0.1:{}", chat_testkit::free_port());
                args.extend([
                    "--admin-addr".to_owned(),
                    admin.clone(),
                    "--admin-token-file".to_owned(),
                    file.display().to_string(),
                ]);
                admins.push(admin);
            }
            nodes.push(Chatd::spawn(&node_id, logs.path(), &args));
        }
        let mut cluster = Cluster {
            nginx: None,
            nodes,
            redis,
            db_proxy,
            redis_url,
            redis_cluster,
            prefix,
            admins,
            db,
            logs,
        };
        for node in &mut cluster.nodes {
            node.wait_listening().await;
        }
        if options.nginx {
            let upstreams: Vec<&str> = cluster.nodes.iter().map(|n| n.addr.as_str()).collect();
            let web: Vec<&str> = cluster.nodes.iter().map(|n| n.web.as_str()).collect();
            let nginx = nginx::start(cluster.logs.path(), &upstreams, &web).await;
            cluster.nginx = Some(nginx);
        }
        cluster
    }

    /// Node `i` (0-based).
    pub fn node(&self, i: usize) -> &Chatd {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Chatd {
        &mut self.nodes[i]
    }

    /// The address clients use through nginx.
    pub fn lb(&self) -> &str {
        &self.nginx.as_ref().expect("a cluster with nginx").addr
    }

    /// The node id of `user`'s current session, as recorded in Redis
    /// presence (`<prefix>:session:<user>` = `<node>|<boot>|<session>`).
    pub async fn session_node(&self, user: UserId) -> Option<String> {
        match &self.redis_cluster {
            Some(nodes) => redis::cluster_session_node(nodes, &self.prefix, user).await,
            None => redis::session_node(&self.redis_url, &self.prefix, user).await,
        }
    }

    /// The node whose `--node-id` is `id`.
    pub fn node_by_id(&self, id: &str) -> &Chatd {
        self.nodes
            .iter()
            .find(|n| n.node_id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The processes print their logs as they are dropped.
            eprintln!("(logs kept in {})", self.logs.path().display());
            self.logs.disable_cleanup(true);
        }
        // Processes first, so that no node writes its keys back.
        self.nginx = None;
        self.nodes.clear();
        match &self.redis_cluster {
            Some(nodes) => redis::delete_cluster_prefix(nodes, &self.prefix),
            None if self.redis.is_none() => redis::delete_prefix(&self.redis_url, &self.prefix),
            None => {}
        }
    }
}
