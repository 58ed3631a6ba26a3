//! Redis Cluster for tests: the shared one named by
//! `CHAT_TEST_REDIS_CLUSTER`, and clusters of a test's own (three masters,
//! three replicas) for tests that kill a master or move a slot. They are
//! driven with `redis-cli`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::Service;

/// The nodes of the shared Redis Cluster (see [`Service::value`]).
pub fn shared_nodes() -> Vec<String> {
    parse_nodes(&Service::RedisCluster.value())
}

/// `redis://HOST:PORT` entries of a comma-separated list.
pub fn parse_nodes(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How long a cluster has to settle (create, fail over, take a slot).
const SETTLE: Duration = Duration::from_secs(30);

/// One `redis-server` of a cluster.
#[derive(Debug)]
struct Server {
    port: u16,
    child: Mutex<Option<Child>>,
}

impl Server {
    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stop(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Redis Cluster of the test's own on free ports of 127.0.0.1: three
/// masters with a replica each, `--cluster-node-timeout 2000` (a dead
/// master's replica takes over within seconds), no persistence; killed
/// when dropped. Every method takes `&self`, so that a test can share it
/// with a blocking task (to fail it while traffic flows). Tests that run
/// one need [`Service::RedisCluster`].
#[derive(Debug)]
pub struct PrivateRedisCluster {
    servers: Vec<Server>,
    dir: PathBuf,
    _own_dir: tempfile::TempDir,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// The slots it serves (masters), as inclusive ranges.
    pub slots: Vec<(u16, u16)>,
}

impl PrivateRedisCluster {
    /// Starts six servers, makes them a cluster and waits until it serves
    /// every slot with every replica in place.
    pub fn start() -> PrivateRedisCluster {
        let own_dir = tempfile::Builder::new()
            .prefix("chat-redis-cluster-")
            .tempdir()
            .expect("a temporary directory");
        let dir = own_dir.path().to_owned();
        let mut cluster = PrivateRedisCluster {
            servers: Vec::new(),
            dir,
            _own_dir: own_dir,
        };
        for _ in 0..6 {
            let server = start_server(&cluster.dir);
            cluster.servers.push(server);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for server in &cluster.servers {
            create.arg(format!("127.0.0.1:{}", server.port));
        }
        let status = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs (install redis-tools)");
        assert!(status.success(), "redis-cli --cluster create failed");
        cluster.wait_healthy();
        cluster
    }

    /// Every live node, `redis://127.0.0.1:PORT`.
    pub fn urls(&self) -> Vec<String> {
        self.live_ports()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    fn live_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.servers
            .iter()
            .filter(|s| s.child().is_some())
            .map(|s| s.port)
    }

    /// Runs `redis-cli -p PORT ARGS...` and returns its output; panics when
    /// it fails.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli(port, args).unwrap_or_else(|| panic!("redis-cli -p {port} {args:?} failed"))
    }

    /// The slot of a key or shard channel.
    pub fn slot_of(&self, name: &str) -> u16 {
        let port = self.live_ports().next().expect("a live node");
        self.cli(port, &["CLUSTER", "KEYSLOT", name])
            .trim()
            .parse()
            .expect("a slot number")
    }

    /// The cluster as a live node sees it.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        let port = self.live_ports().next().expect("a live node");
        parse_cluster_nodes(&self.cli(port, &["CLUSTER", "NODES"]))
    }

    /// The master serving `slot` now, as every live node agrees.
    pub fn master_of(&self, slot: u16) -> Option<ClusterNode> {
        let mut seen = None;
        for port in self.live_ports() {
            let nodes = parse_cluster_nodes(&cli(port, &["CLUSTER", "NODES"])?);
            let master = nodes.into_iter().find(|n| {
                n.master && !n.failed && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
            })?;
            match &seen {
                None => seen = Some(master),
                Some(m) if *m == master => {}
                Some(_) => return None,
            }
        }
        seen
    }

    /// Kills the server on `port` (SIGKILL).
    pub fn kill(&self, port: u16) {
        self.servers
            .iter()
            .find(|s| s.port == port)
            .expect("a server of this cluster")
            .stop();
    }

    /// Waits until every live node says the cluster is ok, every slot has
    /// a live master, and every live replica is in sync with its master
    /// (a replica that never synced cannot take over).
    pub fn wait_healthy(&self) {
        wait_until("the cluster serves every slot", || {
            let live: Vec<u16> = self.live_ports().collect();
            let ok = live.iter().all(|&p| {
                cli(p, &["CLUSTER", "INFO"]).is_some_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
                }) && cli(p, &["INFO", "replication"]).is_some_and(|info| {
                    info.contains("role:master") || info.contains("master_link_status:up")
                })
            });
            ok && [0, 8000, 16383]
                .iter()
                .all(|&slot| self.master_of(slot).is_some_and(|m| live.contains(&m.port)))
        });
    }

    /// Moves `slot` (and its keys) from its master to the master on
    /// `to_port`, as `redis-cli --cluster reshard` does: IMPORTING,
    /// MIGRATING, MIGRATE the keys, then SETSLOT NODE everywhere.
    pub fn move_slot(&self, slot: u16, to_port: u16) {
        let from = self.master_of(slot).expect("the slot has a master");
        let to_id = self.cli(to_port, &["CLUSTER", "MYID"]).trim().to_owned();
        let s = slot.to_string();
        self.cli(to_port, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &from.id]);
        self.cli(from.port, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &to_id]);
        loop {
            let keys = self.cli(from.port, &["CLUSTER", "GETKEYSINSLOT", &s, "100"]);
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = to_port.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys);
            self.cli(from.port, &args);
        }
        for node in self.nodes().iter().filter(|n| n.master && !n.failed) {
            self.cli(node.port, &["CLUSTER", "SETSLOT", &s, "NODE", &to_id]);
        }
        wait_until("every node knows the slot's new master", || {
            self.master_of(slot).is_some_and(|m| m.id == to_id)
        });
    }

    /// Where its files and logs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        for server in &self.servers {
            server.stop();
        }
    }
}

/// A port of 127.0.0.1 free now whose cluster bus port (+10000) is free
/// too.
fn free_cluster_port() -> u16 {
    loop {
        let port = crate::free_port();
        if port <= u16::MAX - 10000
            && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
        {
            return port;
        }
    }
}

/// Starts a cluster-enabled server on a free port and waits until it
/// answers; tries other ports when one was taken meanwhile (other tests
/// pick free ports too).
fn start_server(dir: &Path) -> Server {
    for _ in 0..5 {
        let port = free_cluster_port();
        let server = Server {
            port,
            child: Mutex::new(Some(spawn_server(dir, port))),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if cli(port, &["PING"]).is_some_and(|o| o.trim() == "PONG") {
                return server;
            }
            let exited = server
                .child()
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        server.stop();
    }
    panic!(
        "no redis-server of the cluster started (see {})",
        dir.display()
    );
}

fn spawn_server(dir: &Path, port: u16) -> Child {
    let p = port.to_string();
    Command::new("redis-server")
        .args(["--port", &p, "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
        .args(["--cluster-config-file", &format!("nodes-{p}.conf")])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(format!("redis-{p}.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server runs (install redis-server)")
}

/// `redis-cli -p PORT ARGS...`'s output, or `None` when it fails.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        // -e: an error reply is a failure (exit code 1).
        .args(["-e", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    output.status.success().then_some(text)
}

fn wait_until(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE;
    while !probe() {
        assert!(Instant::now() < deadline, "not within {SETTLE:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Parses `CLUSTER NODES`.
pub fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields
                .get(1)?
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            let flags = fields.get(2)?;
            let slots = fields
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|a| (a, a)),
                })
                .collect();
            Some(ClusterNode {
                id: fields.first()?.to_string(),
                port,
                master: flags.contains("master"),
                failed: flags.contains("fail"),
                slots,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_parse() {
        let text = "07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected\n\
                    67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922 11000 [12->-abc]\n\
                    e7d1 127.0.0.1:30001@40001 myself,master,fail - 0 0 1 connected 0-5460\n";
        let nodes = parse_cluster_nodes(text);
        assert_eq!(nodes.len(), 3);
        assert!(!nodes[0].master);
        assert_eq!(nodes[1].port, 30002);
        assert_eq!(nodes[1].slots, vec![(5461, 10922), (11000, 11000)]);
        assert!(nodes[2].master && nodes[2].failed);
        assert_eq!(
            parse_nodes("redis://a:1, redis://b:2,"),
            ["redis://a:1", "redis://b:2"]
        );
    }
}
