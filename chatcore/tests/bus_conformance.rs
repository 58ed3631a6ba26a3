//! The `Bus` contract, checked against every implementation: the
//! in-process bus always, Redis when `CHAT_TEST_REDIS_URL` is set, a Redis
//! Cluster (sharded pub/sub) when `CHAT_TEST_REDIS_CLUSTER` is set.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::redis::{PrivateRedis, shared_url};
use chat_testkit::redis_cluster::shared_nodes;
use chat_testkit::{Deployment, Service, Test, test, trial};
use chatcore::bus::{Bus, BusEvent, BusReceiver, KickReason, LocalBroker, RedisBus};
use chatcore::model::{Message, MessageId, Seq, Target, UserId, UserInfo};
use chatcore::presence::SessionId;
use chatcore::redis_target::RedisTarget;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() -> ExitCode {
    let mut tests = conformance();
    tests.push(
        trial!(redis_bus_recovers_from_a_restart_and_asks_for_resync).needs(&[Service::Redis]),
    );
    tests.push(
        test("redis::a_node_missing_from_the_roster_resyncs", || async {
            a_node_missing_from_the_roster_resyncs(RedisTarget::Single(shared_url())).await;
        })
        .needs(&[Service::Redis]),
    );
    tests.push(
        test(
            "cluster::a_node_missing_from_the_roster_resyncs",
            || async {
                a_node_missing_from_the_roster_resyncs(RedisTarget::Cluster(shared_nodes())).await;
            },
        )
        .needs(&[Service::RedisCluster]),
    );
    chat_testkit::harness::run(tests)
}

const WAIT: Duration = Duration::from_secs(5);

/// Two endpoints of one bus, as two nodes hold them.
struct Pair {
    a: Arc<dyn Bus>,
    a_rx: BusReceiver,
    b: Arc<dyn Bus>,
    b_rx: BusReceiver,
    _stop: tokio_util::sync::DropGuard,
}

fn local_pair() -> Pair {
    let broker = LocalBroker::new();
    let (a, a_rx) = broker.join(1024);
    let (b, b_rx) = broker.join(1024);
    Pair {
        a: Arc::new(a),
        a_rx,
        b: Arc::new(b),
        b_rx,
        _stop: CancellationToken::new().drop_guard(),
    }
}

async fn redis_pair(url: &str) -> Pair {
    target_pair(&RedisTarget::Single(url.to_owned())).await
}

async fn target_pair(target: &RedisTarget) -> Pair {
    let prefix = format!("test-{:016x}", getrandom::u64().expect("random"));
    prefixed_pair(target, &prefix).await
}

async fn prefixed_pair(target: &RedisTarget, prefix: &str) -> Pair {
    let stop = CancellationToken::new();
    // The subscribers end with `stop`, dropped with the pair.
    let tasks = TaskTracker::new();
    let (a, a_rx) = RedisBus::connect_to(target, prefix, "a", 1024, &tasks, stop.clone())
        .await
        .expect("redis bus");
    let (b, b_rx) = RedisBus::connect_to(target, prefix, "b", 1024, &tasks, stop.clone())
        .await
        .expect("redis bus");
    Pair {
        a: Arc::new(a),
        a_rx,
        b: Arc::new(b),
        b_rx,
        _stop: stop.drop_guard(),
    }
}

/// A user id no other test (or test run) uses.
fn fresh_user() -> UserId {
    UserId((getrandom::u64().expect("random") >> 2) as i64 + 1_000_000)
}

fn deliver(user: UserId, seq: i64) -> BusEvent {
    BusEvent::Deliver {
        user,
        seq: Seq(seq),
        message: Arc::new(Message {
            id: MessageId(seq),
            sender: UserInfo {
                id: UserId(1),
                name: "sender ✓".into(),
            },
            target: Target::User(user),
            body: format!("body {seq} \"quoted\""),
            client_msg_id: None,
            sent_at_ms: 1_700_000_000_000 + seq,
        }),
    }
}

/// The next event other than a `Resync`.
async fn next(rx: &mut BusReceiver) -> Option<BusEvent> {
    loop {
        match tokio::time::timeout(WAIT, rx.recv()).await.ok()?? {
            BusEvent::Resync { .. } => continue,
            event => return Some(event),
        }
    }
}

/// Drops whatever is still in flight (probes, resyncs).
async fn drain(rx: &mut BusReceiver) {
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {}
}

/// Subscribes and waits until the subscription is live: a probe published
/// afterwards arrives (subscriptions may take effect in the background).
async fn subscribe_live(bus: &Arc<dyn Bus>, rx: &mut BusReceiver, user: UserId) {
    bus.subscribe(user);
    for _ in 0..100 {
        bus.publish(vec![deliver(user, 0)]).await.expect("publish");
        if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await
            && event.user() == Some(user)
            && !matches!(event, BusEvent::Resync { .. })
        {
            drain(rx).await;
            return;
        }
    }
    panic!("subscription never became live");
}

async fn events_reach_subscribers_in_order(mut pair: Pair) {
    let user = fresh_user();
    subscribe_live(&pair.b, &mut pair.b_rx, user).await;
    let events: Vec<BusEvent> = (1..=20).map(|s| deliver(user, s)).collect();
    pair.a.publish(events.clone()).await.expect("publish");
    for expected in events {
        assert_eq!(next(&mut pair.b_rx).await, Some(expected));
    }
    // A's own endpoint never subscribed: nothing for it.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), next(&mut pair.a_rx))
            .await
            .is_err()
    );
}

async fn every_interested_node_gets_the_event(mut pair: Pair) {
    let user = fresh_user();
    subscribe_live(&pair.a, &mut pair.a_rx, user).await;
    subscribe_live(&pair.b, &mut pair.b_rx, user).await;
    // B's probes reached A too.
    drain(&mut pair.a_rx).await;
    let kick = BusEvent::Kick {
        user,
        session: SessionId(0xfeed),
        reason: KickReason::Admin,
    };
    pair.a.publish(vec![kick.clone()]).await.expect("publish");
    assert_eq!(next(&mut pair.a_rx).await, Some(kick.clone()));
    assert_eq!(next(&mut pair.b_rx).await, Some(kick));
}

async fn unsubscribed_users_events_stop(mut pair: Pair) {
    let user = fresh_user();
    let other = fresh_user();
    subscribe_live(&pair.b, &mut pair.b_rx, user).await;
    subscribe_live(&pair.b, &mut pair.b_rx, other).await;
    pair.b.unsubscribe(user);
    // Interest in `other` still works after `user` is dropped, and once it
    // arrives the unsubscription has taken effect too (same connection).
    tokio::time::sleep(Duration::from_millis(100)).await;
    pair.a
        .publish(vec![deliver(user, 1), deliver(other, 2)])
        .await
        .expect("publish");
    assert_eq!(next(&mut pair.b_rx).await, Some(deliver(other, 2)));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), next(&mut pair.b_rx))
            .await
            .is_err(),
        "no event for an unsubscribed user"
    );
}

async fn a_messages_doorbells_reach_each_recipients_node_alone(mut pair: Pair) {
    // More recipients than nodes: a bus that can address nodes sends the
    // message to each node once; each node still hears of its users only.
    let on_a = fresh_user();
    let on_b = fresh_user();
    let nowhere = [fresh_user(), fresh_user()];
    subscribe_live(&pair.a, &mut pair.a_rx, on_a).await;
    subscribe_live(&pair.b, &mut pair.b_rx, on_b).await;
    let BusEvent::Deliver { message, .. } = deliver(on_a, 7) else {
        unreachable!("deliver makes a Deliver")
    };
    pair.a
        .publish_deliveries(
            Arc::clone(&message),
            vec![
                (on_a, Seq(7)),
                (nowhere[0], Seq(1)),
                (on_b, Seq(3)),
                (nowhere[1], Seq(2)),
            ],
        )
        .await
        .expect("publish");
    for (rx, user, seq) in [
        (&mut pair.a_rx, on_a, Seq(7)),
        (&mut pair.b_rx, on_b, Seq(3)),
    ] {
        let expected = BusEvent::Deliver {
            user,
            seq,
            message: Arc::clone(&message),
        };
        assert_eq!(next(rx).await, Some(expected));
        assert!(
            tokio::time::timeout(Duration::from_millis(200), next(rx))
                .await
                .is_err(),
            "each node hears of its own recipient, once"
        );
    }
}

async fn a_live_endpoint_answers_ping(mut pair: Pair) {
    // Once a subscription is live, the endpoint can both receive and send.
    subscribe_live(&pair.b, &mut pair.b_rx, fresh_user()).await;
    pair.b.ping().await.expect("a live endpoint answers ping");
}

/// Two endpoints on `deployment`.
async fn fixture(deployment: Deployment) -> Pair {
    match deployment {
        Deployment::Local => local_pair(),
        Deployment::Redis(url) => redis_pair(&url).await,
        Deployment::Cluster(nodes) => target_pair(&RedisTarget::Cluster(nodes)).await,
    }
}

fn conformance() -> Vec<Test> {
    chat_testkit::on_each_deployment!(fixture;
        events_reach_subscribers_in_order,
        every_interested_node_gets_the_event,
        unsubscribed_users_events_stop,
        a_messages_doorbells_reach_each_recipients_node_alone,
        a_live_endpoint_answers_ping,
    )
}

/// Redis only: a restarted server loses subscriptions; the bus reconnects,
/// subscribes again and says `Resync`, and later events flow again.
async fn redis_bus_recovers_from_a_restart_and_asks_for_resync() {
    let mut redis = PrivateRedis::start();
    let mut pair = redis_pair(&redis.url()).await;
    let user = fresh_user();
    subscribe_live(&pair.b, &mut pair.b_rx, user).await;

    redis.restart();
    // After the restart the subscriber comes back and asks for a resync.
    let resync = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match pair.b_rx.recv().await {
                Some(BusEvent::Resync { user: Some(u) }) if u == user => return,
                Some(_) => continue,
                None => panic!("bus closed"),
            }
        }
    })
    .await;
    assert!(resync.is_ok(), "resync after the restart");
    // Publishing works again (the pool reconnects too).
    let mut delivered = false;
    for seq in 1..50 {
        if pair.a.publish(vec![deliver(user, seq)]).await.is_ok()
            && let Some(BusEvent::Deliver { .. }) = next(&mut pair.b_rx).await
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "events flow after the restart");
}

/// Redis and Cluster: a node whose roster entry vanished (Redis lost it)
/// lists itself again at its next renewal and resyncs every user, since a
/// group's doorbells sent meanwhile went to the nodes listed.
async fn a_node_missing_from_the_roster_resyncs(target: RedisTarget) {
    let prefix = format!("test-{:016x}", getrandom::u64().expect("random"));
    let roster = if target.is_cluster() {
        format!("{{{prefix}}}:bus:nodes")
    } else {
        format!("{prefix}:bus:nodes")
    };
    let mut pair = prefixed_pair(&target, &prefix).await;
    let user = fresh_user();
    subscribe_live(&pair.b, &mut pair.b_rx, user).await;
    let listed: Vec<String> =
        query(&target, redis::cmd("ZRANGE").arg(&roster).arg(0).arg(-1)).await;
    assert_eq!(listed, ["a", "b"], "both nodes list themselves");

    let () = query(&target, redis::cmd("DEL").arg(&roster)).await;
    let resync = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match pair.b_rx.recv().await {
                Some(BusEvent::Resync { user: None }) => return,
                Some(_) => continue,
                None => panic!("bus closed"),
            }
        }
    })
    .await;
    assert!(
        resync.is_ok(),
        "the node resyncs every user once it is back"
    );
    let listed: Vec<String> =
        query(&target, redis::cmd("ZRANGE").arg(&roster).arg(0).arg(-1)).await;
    assert!(
        listed.contains(&"b".to_owned()),
        "and it is listed again: {listed:?}"
    );
}

/// Runs one command on the target (on a Cluster, on its key's node).
async fn query<T: redis::FromRedisValue>(target: &RedisTarget, cmd: &redis::Cmd) -> T {
    match target {
        RedisTarget::Single(url) => {
            let client = redis::Client::open(url.as_str()).expect("redis url");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis connection");
            cmd.query_async(&mut conn).await.expect("redis command")
        }
        RedisTarget::Cluster(nodes) => {
            let client = redis::cluster::ClusterClient::new(nodes.clone()).expect("cluster nodes");
            let mut conn = client
                .get_async_connection()
                .await
                .expect("cluster connection");
            cmd.query_async(&mut conn).await.expect("cluster command")
        }
    }
}
