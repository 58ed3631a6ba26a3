//! Fault injection against a real cluster (two `chatd` processes, MariaDB,
//! Redis, nginx where a client needs a way around a dead node): clients
//! stream numbered messages between users on different nodes while one
//! thing breaks, and a checker on the clients' side (support/stream.rs)
//! holds the delivery contract to account: every acknowledged message is
//! delivered exactly once and in order per conversation, and presence is
//! right within 10 s. Each test prints one line with what it measured;
//! docs/reliability.md collects them.
//!
//! ```text
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 CHAT_TEST_REDIS_URL=redis://127.0.0.1:6379 \
//!   CHAT_TEST_NGINX=/usr/sbin/nginx cargo test --workspace --test faults -- --nocapture
//! ```
//!
//! Whatever a test restarts or cuts is its own: a private `redis-server`,
//! a proxy in front of the database or of one client.

mod support;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chat_testkit::proxy::{Mode, Proxy};
use chat_testkit::{eventually, trial};
use chatcore::model::UserId;
use support::stream::{Checker, ReceiverHandle, Resend, SendPlan, SenderHandle};
use support::{Cluster, ClusterOptions, PASSWORD, User, WAIT, login, new_user, next_texts};
use tokio::io::AsyncWriteExt;

fn main() -> ExitCode {
    let with_nginx = [
        trial!(sigkill_of_the_recipients_node),
        trial!(sigkill_of_the_senders_node),
    ]
    .map(|test| test.needs(Cluster::NEEDS_WITH_NGINX));
    let without = [
        trial!(sigstop_of_a_node_within_and_past_its_lease),
        trial!(redis_restart),
        trial!(database_connection_cut_and_restored),
        trial!(half_open_client_found_by_heartbeat),
        trial!(a_client_that_stops_reading_is_disconnected_and_resumes),
    ]
    .map(|test| test.needs(Cluster::NEEDS));
    let tests = with_nginx.into_iter().chain(without);
    chat_testkit::harness::run(tests.map(|test| test.multi_thread(2)))
}

/// Presence must be right this long after a fault (or its end).
const PRESENCE_BOUND: Duration = Duration::from_secs(10);
/// Generous bound for traffic to flow again on a loaded, niced machine;
/// the measured times are printed, not asserted.
const FLOW: Duration = Duration::from_secs(40);
/// Messages each conversation must deliver before a fault and after it.
const BEFORE: usize = 20;
const AFTER: usize = 20;
/// Lease of the tests that kill or stop a node: short enough that a dead
/// node's users are offline well inside the 10 s presence bound even on a
/// loaded machine (the default, 9 s, is held to 10 s in cluster_failures).
const LEASE_SECS: u64 = 4;

async fn befriend(watcher: &User, friends: &[UserId]) {
    for friend in friends {
        watcher
            .client
            .add_friend(*friend)
            .await
            .unwrap_or_else(|e| panic!("{} befriends {friend}: {e}", watcher.name));
    }
}

/// Whether `watcher`'s friend list shows `id` online; `None` while the
/// list cannot be had (errno 30 just after a backend came back).
async fn shows_online(watcher: &User, id: UserId) -> Option<bool> {
    let friends = watcher.client.friends().await.ok()?;
    friends.iter().find(|f| f.id == id).map(|f| f.online())
}

/// Waits until `watcher` sees each user in `want` online (true) or offline
/// (false), within [`PRESENCE_BOUND`] of `since`; returns the time from
/// `since`.
async fn presence_settles(watcher: &User, want: &[(UserId, bool)], since: Instant) -> Duration {
    eventually(
        &format!("{} sees {want:?} (id, online) within 10 s", watcher.name),
        PRESENCE_BOUND.saturating_sub(since.elapsed()),
        || async {
            for (id, online) in want {
                if shows_online(watcher, *id).await != Some(*online) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    since.elapsed()
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| d.as_millis().to_string())
}

/// Two conversations crossing the nodes, `s1` on `a` to `r1` on `b` and
/// `s2` on `b` to `r2` on `a` (each client reconnecting to its own node),
/// flowing when this returns; and a watcher on `a`, friends with both
/// recipients, to check presence with.
struct Crossed {
    checker: Checker,
    convs: [&'static str; 2],
    senders: Vec<SenderHandle>,
    receivers: Vec<ReceiverHandle>,
    watcher: User,
    recipients: [UserId; 2],
}

async fn crossed_streams(fault: &str, convs: [&'static str; 2], a: &str, b: &str) -> Crossed {
    let s1 = new_user(a, "s1").await;
    let r1 = new_user(b, "r1").await;
    let s2 = new_user(b, "s2").await;
    let r2 = new_user(a, "r2").await;
    let watcher = new_user(a, "watcher").await;
    let recipients = [r1.id, r2.id];
    befriend(&watcher, &recipients).await;

    let checker = Checker::new(fault);
    let receivers = vec![checker.receiver(r1, &[b]), checker.receiver(r2, &[a])];
    let senders = vec![
        checker.sender(s1, SendPlan::new(convs[0], recipients[0], &[a])),
        checker.sender(s2, SendPlan::new(convs[1], recipients[1], &[b])),
    ];
    checker
        .wait_flowing(&convs, Instant::now(), BEFORE, FLOW)
        .await;
    Crossed {
        checker,
        convs,
        senders,
        receivers,
        watcher,
        recipients,
    }
}

/// The users of a test that fails node `a`: two `movers`, who reconnect
/// to the other node and must show online again, and a `bystander`, who
/// stays away and must show offline, on `a`; two `others` and the
/// `watcher`, friends with the first three, on `b`.
struct AroundNode {
    movers: [User; 2],
    bystander: User,
    others: [User; 2],
    watcher: User,
}

async fn around_node(a: &str, b: &str, movers: [&str; 2], others: [&str; 2]) -> AroundNode {
    let movers = [new_user(a, movers[0]).await, new_user(a, movers[1]).await];
    let bystander = new_user(a, "bystander").await;
    let others = [new_user(b, others[0]).await, new_user(b, others[1]).await];
    let watcher = new_user(b, "watcher").await;
    befriend(&watcher, &[movers[0].id, movers[1].id, bystander.id]).await;
    AroundNode {
        movers,
        bystander,
        others,
        watcher,
    }
}

/// SIGKILLs node 0 and waits for it to be gone and for `watcher` to see
/// the `movers` online again and the `bystander` offline; returns when the
/// kill was sent and how long presence took from then.
async fn kill_node_0(
    cluster: &mut Cluster,
    watcher: &User,
    movers: [UserId; 2],
    bystander: UserId,
) -> (Instant, Duration) {
    cluster.node(0).signal("KILL");
    let fault = Instant::now();
    cluster.node_mut(0).wait_exit(WAIT).await;
    let want = [(movers[0], true), (movers[1], true), (bystander, false)];
    (fault, presence_settles(watcher, &want, fault).await)
}

async fn sigkill_of_the_recipients_node() {
    let options = ClusterOptions {
        nginx: true,
        lease_ttl_secs: Some(LEASE_SECS),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(options).await;
    let (a, b, lb) = (
        cluster.node(0).addr.clone(),
        cluster.node(1).addr.clone(),
        cluster.lb().to_owned(),
    );
    let AroundNode {
        movers: [r1, r2],
        bystander,
        others: [s1, s2],
        watcher,
    } = around_node(&a, &b, ["r1", "r2"], ["s1", "s2"]).await;
    let (r1_id, r2_id) = (r1.id, r2.id);

    let checker = Checker::new("recipient node SIGKILL");
    let convs = ["rk1", "rk2"];
    // The recipients come back through nginx, which skips the dead node.
    let receivers = vec![checker.receiver(r1, &[&lb]), checker.receiver(r2, &[&lb])];
    let senders = vec![
        checker.sender(s1, SendPlan::new(convs[0], r1_id, &[&lb])),
        checker.sender(s2, SendPlan::new(convs[1], r2_id, &[&lb])),
    ];
    checker
        .wait_flowing(&convs, Instant::now(), BEFORE, FLOW)
        .await;

    let (fault, presence) = kill_node_0(&mut cluster, &watcher, [r1_id, r2_id], bystander.id).await;
    checker.wait_flowing(&convs, fault, AFTER, FLOW).await;

    let (report, _users) = checker.finish(senders, receivers, FLOW).await;
    eprintln!(
        "{}",
        report.line(&format!(
            "; delivery resumed {} ms after the kill; presence right {} ms after it",
            ms(checker.delivery_resumed_after(&convs, fault)),
            presence.as_millis()
        ))
    );
    report.assert_clean();
}

async fn sigkill_of_the_senders_node() {
    let options = ClusterOptions {
        nginx: true,
        lease_ttl_secs: Some(LEASE_SECS),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(options).await;
    let (a, b, lb) = (
        cluster.node(0).addr.clone(),
        cluster.node(1).addr.clone(),
        cluster.lb().to_owned(),
    );
    let AroundNode {
        movers: [s1, s2],
        bystander,
        others: [r1, r2],
        watcher,
    } = around_node(&a, &b, ["s1", "s2"], ["r1", "r2"]).await;
    let (s1_id, s2_id) = (s1.id, s2.id);

    let checker = Checker::new("sender node SIGKILL");
    // sk1 resends an unanswered message with its cmid; sk2 gives it up.
    let convs = ["sk1", "sk2"];
    let (r1_id, r2_id) = (r1.id, r2.id);
    let receivers = vec![checker.receiver(r1, &[&b]), checker.receiver(r2, &[&b])];
    // Little pause between sends, so that the kill finds sends in flight.
    let mut resending = SendPlan::new(convs[0], r1_id, &[&lb]);
    resending.pace_ms = 2;
    let mut giving_up = SendPlan::new(convs[1], r2_id, &[&lb]);
    giving_up.pace_ms = 2;
    giving_up.resend = Resend::GiveUp;
    let senders = vec![checker.sender(s1, resending), checker.sender(s2, giving_up)];
    checker
        .wait_flowing(&convs, Instant::now(), BEFORE, FLOW)
        .await;

    let (fault, presence) = kill_node_0(&mut cluster, &watcher, [s1_id, s2_id], bystander.id).await;
    checker.wait_flowing(&convs, fault, AFTER, FLOW).await;

    let (report, _users) = checker.finish(senders, receivers, FLOW).await;
    eprintln!(
        "{}",
        report.line(&format!(
            "; sends acked again {} ms after the kill, delivered {} ms after it; \
             presence right {} ms after it",
            ms(checker.sends_resumed_after(&convs, fault)),
            ms(checker.delivery_resumed_after(&convs, fault)),
            presence.as_millis()
        ))
    );
    report.assert_clean();
}

async fn sigstop_of_a_node_within_and_past_its_lease() {
    // Renewed every third of the TTL: a 1 s stop stays well inside it, a
    // 7 s one is well past it, even with a late renewal on a busy machine.
    const LEASE: u64 = 4;
    const SHORT: Duration = Duration::from_secs(1);
    const LONG: Duration = Duration::from_secs(7);
    let options = ClusterOptions {
        lease_ttl_secs: Some(LEASE),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(options).await;
    let (a, b) = (cluster.node(0).addr.clone(), cluster.node(1).addr.clone());
    let AroundNode {
        movers: [r1, r2],
        bystander,
        others: [s1, s2],
        watcher,
    } = around_node(&a, &b, ["r1", "r2"], ["s1", "s2"]).await;
    let (r1_id, r2_id) = (r1.id, r2.id);

    let checker = Checker::new("SIGSTOP/SIGCONT");
    let convs = ["st1", "st2"];
    // A stopped node still completes TCP handshakes (the kernel does), so
    // a client that must move goes straight to the live node.
    let receivers = vec![checker.receiver(r1, &[&b]), checker.receiver(r2, &[&b])];
    let senders = vec![
        checker.sender(s1, SendPlan::new(convs[0], r1_id, &[&b])),
        checker.sender(s2, SendPlan::new(convs[1], r2_id, &[&b])),
    ];
    checker
        .wait_flowing(&convs, Instant::now(), BEFORE, FLOW)
        .await;

    // Within the lease: a stall, nothing more. Sessions stay where they are.
    cluster.node(0).signal("STOP");
    tokio::time::sleep(SHORT).await;
    cluster.node(0).signal("CONT");
    let short_cont = Instant::now();
    let short_presence = presence_settles(
        &watcher,
        &[(r1_id, true), (r2_id, true), (bystander.id, true)],
        short_cont,
    )
    .await;
    checker.wait_flowing(&convs, short_cont, AFTER, FLOW).await;
    let short_resumed = checker.delivery_resumed_after(&convs, short_cont);

    // Past the lease: the node wakes up without it and ends its sessions;
    // the recipients move to the other node, the bystander stays away.
    cluster.node(0).signal("STOP");
    tokio::time::sleep(LONG).await;
    cluster.node(0).signal("CONT");
    let long_cont = Instant::now();
    let long_presence = presence_settles(
        &watcher,
        &[(r1_id, true), (r2_id, true), (bystander.id, false)],
        long_cont,
    )
    .await;
    checker.wait_flowing(&convs, long_cont, AFTER, FLOW).await;

    let (report, _users) = checker.finish(senders, receivers, FLOW).await;
    eprintln!(
        "{}",
        report.line(&format!(
            "; {SHORT:?} stop (lease {LEASE} s): delivery resumed {} ms after SIGCONT, \
             presence right {} ms after it; {LONG:?} stop: delivery resumed {} ms after \
             SIGCONT, presence right {} ms after it",
            ms(short_resumed),
            short_presence.as_millis(),
            ms(checker.delivery_resumed_after(&convs, long_cont)),
            long_presence.as_millis()
        ))
    );
    report.assert_clean();
}

async fn redis_restart() {
    let options = ClusterOptions {
        private_redis: true,
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(options).await;
    let (a, b) = (cluster.node(0).addr.clone(), cluster.node(1).addr.clone());
    let Crossed {
        checker,
        convs,
        senders,
        receivers,
        watcher,
        recipients: [r1_id, r2_id],
    } = crossed_streams("Redis restart", ["rr1", "rr2"], &a, &b).await;

    let redis = cluster.redis.as_mut().expect("a private Redis");
    redis.kill();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.start_again();
    let back = Instant::now();
    let presence = presence_settles(&watcher, &[(r1_id, true), (r2_id, true)], back).await;
    checker.wait_flowing(&convs, back, AFTER, FLOW).await;
    let resumed = checker.delivery_resumed_after(&convs, back);

    let (report, _users) = checker.finish(senders, receivers, FLOW).await;
    eprintln!(
        "{}",
        report.line(&format!(
            "; Redis down {} ms; delivery resumed {} ms after it was back (target 5000), \
             presence right {} ms after it",
            (back - down).as_millis(),
            ms(resumed),
            presence.as_millis()
        ))
    );
    report.assert_clean();
    // The target is 5 s; on a loaded CI machine allow twice that.
    let resumed = resumed.expect("delivery resumed");
    assert!(
        resumed < Duration::from_secs(10),
        "delivery resumed only {resumed:?} after Redis was back"
    );

    // Users who arrive after the restart subscribe on the new Redis.
    let mut x = new_user(&a, "rr-x").await;
    let mut y = new_user(&b, "rr-y").await;
    x.client.send_to(y.id, "after").await.expect("send");
    assert_eq!(next_texts(&mut y, 1).await, ["after"]);
    y.client.send_to(x.id, "and back").await.expect("send");
    assert_eq!(next_texts(&mut x, 1).await, ["and back"]);
}

async fn database_connection_cut_and_restored() {
    const CUT: Duration = Duration::from_secs(3);
    let options = ClusterOptions {
        database_proxy: true,
        // Short limits, so that a request during the cut is refused in
        // seconds rather than waiting the default 5 s twice.
        node_args: [
            "--database-timeout-ms",
            "2000",
            "--database-acquire-timeout-ms",
            "1000",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(options).await;
    let (a, b) = (cluster.node(0).addr.clone(), cluster.node(1).addr.clone());
    let Crossed {
        checker,
        convs,
        senders,
        receivers,
        watcher,
        recipients: [r1_id, r2_id],
    } = crossed_streams("database cut", ["db1", "db2"], &a, &b).await;

    let proxy = cluster.db_proxy.as_ref().expect("a database proxy");
    proxy.set(Mode::Cut);
    let cut = Instant::now();
    tokio::time::sleep(CUT).await;
    proxy.set(Mode::Pass);
    let healed = Instant::now();
    let acked_during_cut: Vec<usize> = convs.iter().map(|c| checker.acked(c)).collect();
    checker.wait_flowing(&convs, healed, AFTER, FLOW).await;
    let presence = presence_settles(&watcher, &[(r1_id, true), (r2_id, true)], healed).await;

    let (report, _users) = checker.finish(senders, receivers, FLOW).await;
    eprintln!(
        "{}",
        report.line(&format!(
            "; database cut for {} ms (acked by then {acked_during_cut:?}); sends acked again \
             {} ms after it was restored, delivered {} ms after; presence right {} ms after",
            (healed - cut).as_millis(),
            ms(checker.sends_resumed_after(&convs, healed)),
            ms(checker.delivery_resumed_after(&convs, healed)),
            presence.as_millis()
        ))
    );
    assert!(
        report.failed_sends > 0,
        "sends during the cut were refused (errno 30)"
    );
    assert_eq!(
        report.reconnects, 0,
        "client connections stay open while the database is away"
    );
    report.assert_clean();
}

async fn half_open_client_found_by_heartbeat() {
    const HEARTBEAT_SECS: u64 = 1;
    let options = ClusterOptions {
        node_args: vec!["--heartbeat-secs".to_owned(), HEARTBEAT_SECS.to_string()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(options).await;
    let (a, b) = (cluster.node(0).addr.clone(), cluster.node(1).addr.clone());
    // r1's network: a proxy that can freeze.
    let network = Proxy::start(&a).await;
    let r1 = new_user(&network.addr, "r1").await;
    let r2 = new_user(&a, "r2").await;
    let s1 = new_user(&b, "s1").await;
    let s2 = new_user(&b, "s2").await;
    let watcher = new_user(&b, "watcher").await;
    let (r1_id, r2_id) = (r1.id, r2.id);
    befriend(&watcher, &[r1_id, r2_id]).await;

    let checker = Checker::new("half-open client");
    let convs = ["ho1", "ho2"];
    let receivers = vec![
        checker.receiver(r1, &[&network.addr]),
        checker.receiver(r2, &[&a]),
    ];
    let senders = vec![
        checker.sender(s1, SendPlan::new(convs[0], r1_id, &[&b])),
        checker.sender(s2, SendPlan::new(convs[1], r2_id, &[&b])),
    ];
    checker
        .wait_flowing(&convs, Instant::now(), BEFORE, FLOW)
        .await;

    network.set(Mode::Freeze);
    let frozen = Instant::now();
    let found = presence_settles(&watcher, &[(r1_id, false), (r2_id, true)], frozen).await;
    // r1 is offline; messages for it are stored meanwhile, and the other
    // conversation goes on.
    let offline = Instant::now();
    let acked_offline = checker.acked(convs[0]);
    eventually(
        "r1's sender is acknowledged while r1 is offline",
        FLOW,
        || async { checker.acked(convs[0]) >= acked_offline + 30 },
    )
    .await;
    checker.wait_flowing(&convs[1..], frozen, AFTER, FLOW).await;
    // The network comes back: the frozen connection is dead (reset), the
    // client reconnects through it and syncs from its cursor.
    let stored_while_away = checker.acked(convs[0]) - acked_offline;
    network.set(Mode::Pass);
    let healed = Instant::now();
    let presence = presence_settles(&watcher, &[(r1_id, true), (r2_id, true)], healed).await;
    checker.wait_flowing(&convs, healed, AFTER, FLOW).await;

    let (report, _users) = checker.finish(senders, receivers, FLOW).await;
    eprintln!(
        "{}",
        report.line(&format!(
            "; heartbeat {HEARTBEAT_SECS} s: shown offline {} ms after the freeze; \
             {stored_while_away} acked while it was offline; after the network came back: \
             online {} ms, backlog delivered {} ms",
            found.as_millis(),
            presence.as_millis(),
            ms(checker.delivery_resumed(&convs[..1], offline, healed)),
        ))
    );
    report.assert_clean();
}

async fn a_client_that_stops_reading_is_disconnected_and_resumes() {
    const OUTBOX: usize = 16;
    // Large messages fill the socket buffers (a few MB on loopback) fast.
    const PAD: usize = 48 * 1024;
    let options = ClusterOptions {
        node_args: ["--outbox", &OUTBOX.to_string(), "--write-timeout-secs", "1"]
            .map(str::to_owned)
            .to_vec(),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(options).await;
    let (a, b) = (cluster.node(0).addr.clone(), cluster.node(1).addr.clone());
    let (registrar, _) = support::connect(&a).await;
    let reader_id = registrar
        .register("reader", PASSWORD)
        .await
        .expect("register the reader");
    drop(registrar);
    let r2 = new_user(&b, "r2").await;
    let r3 = new_user(&a, "r3").await;
    let flooder = new_user(&b, "flooder").await;
    let s2 = new_user(&a, "s2").await;
    let s3 = new_user(&b, "s3").await;
    let watcher = new_user(&b, "watcher").await;
    befriend(&watcher, &[reader_id, r2.id, r3.id]).await;

    // A raw connection that logs in and then never reads; a small receive
    // buffer so that the server's writes block after little data.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut raw = socket
        .connect(a.parse().expect("an address"))
        .await
        .expect("connect the reader");
    raw.write_all(
        format!(
            "{{\"msgid\":1,\"id\":{},\"password\":\"{PASSWORD}\",\"proto\":2,\"rid\":1}}\n",
            reader_id.0
        )
        .as_bytes(),
    )
    .await
    .expect("send the login");
    eventually("the reader logs in", WAIT, || async {
        shows_online(&watcher, reader_id).await == Some(true)
    })
    .await;

    let checker = Checker::new("client stops reading");
    let convs = ["sr", "ok2", "ok3"];
    let (r2_id, r3_id) = (r2.id, r3.id);
    let mut receivers = vec![checker.receiver(r2, &[&b]), checker.receiver(r3, &[&a])];
    let mut flood = SendPlan::new(convs[0], reader_id, &[&b]);
    flood.pad = PAD;
    flood.pace_ms = 0;
    let senders = vec![
        checker.sender(flooder, flood),
        checker.sender(s2, SendPlan::new(convs[1], r2_id, &[&a])),
        checker.sender(s3, SendPlan::new(convs[2], r3_id, &[&b])),
    ];
    let flood_start = Instant::now();
    eventually(
        "the server disconnects the reader that does not read",
        Duration::from_secs(60),
        || async { shows_online(&watcher, reader_id).await == Some(false) },
    )
    .await;
    let dropped_after = flood_start.elapsed();
    let flooded = checker.acked(convs[0]);
    senders[0].set_pace_ms(20);
    // The others were not held up.
    checker
        .wait_flowing(&convs[1..], flood_start, BEFORE, FLOW)
        .await;
    drop(raw);

    // The reader comes back as a normal client and resumes from its
    // cursor (never moved: it acked nothing).
    let reader = login(&a, reader_id, "reader").await;
    let back = Instant::now();
    receivers.push(checker.receiver(reader, &[&a]));
    let presence = presence_settles(
        &watcher,
        &[(reader_id, true), (r2_id, true), (r3_id, true)],
        back,
    )
    .await;
    checker.wait_flowing(&convs, back, AFTER, FLOW).await;

    let (report, _users) = checker.finish(senders, receivers, FLOW).await;
    eprintln!(
        "{}",
        report.line(&format!(
            "; outbox {OUTBOX}, write timeout 1 s: disconnected {} ms after the flood \
             started ({flooded} messages of {} KiB acked by then); after logging in again \
             presence right {} ms, delivery resumed {} ms",
            dropped_after.as_millis(),
            PAD / 1024,
            presence.as_millis(),
            ms(checker.delivery_resumed_after(&convs[..1], back)),
        ))
    );
    report.assert_clean();
    assert_eq!(
        report.reconnects, 0,
        "nobody but the reader that stopped reading lost their connection"
    );
}
