//! Redis restarts under traffic between two `chatd` processes (one
//! MySQL/MariaDB database, a private `redis-server`): no acknowledged
//! message is lost or duplicated, delivery resumes within 5 s of Redis
//! being back, and presence is written back.
//!
//! ```text
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 CHAT_TEST_REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo test -p chatd --test cluster_redis_restart
//! ```
//! (`CHAT_TEST_REDIS_URL` only says that Redis is installed: this test
//! runs a `redis-server` of its own on a free port.)

mod support;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chatcore::client::Event;
use chatcore::model::Target;
use support::{Cluster, ClusterOptions, User, WAIT, eventually, new_user, next_texts, sees_online};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What one sender -> recipient stream has done so far.
#[derive(Debug, Default)]
struct Log {
    /// When each message (text `"<name> <i>"`) was acknowledged.
    acked: Vec<Instant>,
    /// (inbox seq, text) of each message the recipient got, in order.
    received: Vec<(i64, String)>,
    /// Why a task stopped early.
    trouble: Option<String>,
}

/// One sender on one node writing continuously to one recipient on the
/// other node.
struct Stream {
    name: String,
    log: Arc<Mutex<Log>>,
    sender: JoinHandle<User>,
    recipient: JoinHandle<User>,
}

impl Stream {
    fn log(&self) -> MutexGuard<'_, Log> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(trouble) = &log.trouble {
            panic!("{}: {trouble}", self.name);
        }
        log
    }

    fn acked(&self) -> usize {
        self.log().acked.len()
    }

    fn received(&self) -> usize {
        self.log().received.len()
    }
}

fn start_stream(
    name: &str,
    sender: User,
    mut recipient: User,
    stop_sending: CancellationToken,
    stop_receiving: CancellationToken,
) -> Stream {
    let log = Arc::new(Mutex::new(Log::default()));
    let record_ack = |log: &Arc<Mutex<Log>>| {
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .acked
            .push(Instant::now());
    };
    let to = recipient.id;
    let sender = tokio::spawn({
        let log = Arc::clone(&log);
        let name = name.to_owned();
        async move {
            let mut i = 0usize;
            while !stop_sending.is_cancelled() {
                let text = format!("{name} {i}");
                // A resend with the same client message id is idempotent.
                let cmid = format!("{name}-{i}");
                let first_try = Instant::now();
                loop {
                    match sender
                        .client
                        .send(Target::User(to), &text, Some(&cmid))
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if first_try.elapsed() < Duration::from_secs(20) => {
                            eprintln!("{text}: {e}; resending");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => {
                            log.lock().unwrap_or_else(|p| p.into_inner()).trouble =
                                Some(format!("{text} never acknowledged: {e}"));
                            return sender;
                        }
                    }
                }
                record_ack(&log);
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sender
        }
    });
    let recipient = tokio::spawn({
        let log = Arc::clone(&log);
        async move {
            loop {
                let event = tokio::select! {
                    _ = stop_receiving.cancelled() => return recipient,
                    event = recipient.client.next_event() => event,
                };
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                match event {
                    Some(Event::Message(m)) => {
                        let seq = m.seq.map_or(-1, |s| s.0);
                        log.received.push((seq, m.msg));
                    }
                    other => {
                        log.trouble = Some(format!(
                            "{} expected messages, got {other:?}",
                            recipient.name
                        ));
                        return recipient;
                    }
                }
            }
        }
    });
    Stream {
        name: name.to_owned(),
        log,
        sender,
        recipient,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_traffic_loses_nothing_and_delivery_resumes_within_5_s() {
    let options = ClusterOptions {
        private_redis: true,
        ..ClusterOptions::default()
    };
    let Some(mut cluster) = Cluster::start("cluster Redis restart", options).await else {
        return;
    };
    let (a, b) = (cluster.node(0).addr.clone(), cluster.node(1).addr.clone());
    let s1 = new_user(&a, "s1").await;
    let r1 = new_user(&b, "r1").await;
    let s2 = new_user(&b, "s2").await;
    let r2 = new_user(&a, "r2").await;
    let watcher = new_user(&a, "watcher").await;
    let (r1_id, r2_id) = (r1.id, r2.id);
    for friend in [r1_id, r2_id] {
        watcher.client.add_friend(friend).await.expect("friend");
        assert!(sees_online(&watcher, friend).await);
    }

    let stop_sending = CancellationToken::new();
    let stop_receiving = CancellationToken::new();
    let mut streams = [
        start_stream(
            "a-to-b",
            s1,
            r1,
            stop_sending.clone(),
            stop_receiving.clone(),
        ),
        start_stream(
            "b-to-a",
            s2,
            r2,
            stop_sending.clone(),
            stop_receiving.clone(),
        ),
    ];
    eventually("traffic flows both ways", WAIT, || async {
        streams.iter().all(|s| s.received() >= 10)
    })
    .await;

    // Redis goes away for a second of traffic, then comes back empty.
    let redis = cluster.redis.as_mut().expect("a private Redis");
    redis.kill();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.start_again().await;
    let back = Instant::now();
    let acked_before_back: Vec<usize> = streams.iter().map(Stream::acked).collect();

    // Delivery resumes: a message acknowledged after Redis came back (and
    // so everything before it) reaches its recipient within 5 s.
    let resumed = eventually(
        "delivery resumes within 5 s of Redis being back",
        Duration::from_secs(5),
        || async {
            streams
                .iter()
                .zip(&acked_before_back)
                .all(|(s, &n)| s.received() > n)
        },
    )
    .await;

    // Presence is written back: the nodes record their sessions again.
    let present = eventually(
        "users on both nodes show online again after the restart",
        Duration::from_secs(9),
        || async { sees_online(&watcher, r1_id).await && sees_online(&watcher, r2_id).await },
    )
    .await;

    // More traffic on the restored Redis, then everything acknowledged
    // must have arrived exactly once, in order.
    let more: Vec<usize> = streams.iter().map(|s| s.acked() + 20).collect();
    eventually("traffic goes on after the restart", WAIT, || async {
        streams.iter().zip(&more).all(|(s, &n)| s.acked() >= n)
    })
    .await;
    stop_sending.cancel();
    let mut users = Vec::new();
    for stream in &mut streams {
        users.push((&mut stream.sender).await.expect("sender task"));
    }
    let totals: Vec<usize> = streams.iter().map(Stream::acked).collect();
    eventually("every acknowledged message arrives", WAIT, || async {
        streams.iter().zip(&totals).all(|(s, &n)| s.received() >= n)
    })
    .await;
    stop_receiving.cancel();
    for stream in &mut streams {
        users.push((&mut stream.recipient).await.expect("recipient task"));
    }
    for (stream, &total) in streams.iter().zip(&totals) {
        let log = stream.log();
        let texts: Vec<&str> = log.received.iter().map(|(_, t)| t.as_str()).collect();
        let expected: Vec<String> = (0..total).map(|i| format!("{} {i}", stream.name)).collect();
        assert_eq!(
            texts, expected,
            "{}: every message once, in order",
            stream.name
        );
        support::assert_consecutive(&stream.name, &log.received);
    }

    // New logins and chat work on the restarted Redis.
    let mut x = new_user(&a, "x").await;
    let mut y = new_user(&b, "y").await;
    x.client.send_to(y.id, "after").await.expect("send");
    assert_eq!(next_texts(&mut y, 1).await, ["after"]);
    y.client.send_to(x.id, "and back").await.expect("send");
    assert_eq!(next_texts(&mut x, 1).await, ["and back"]);

    eprintln!(
        "Redis down {:?}; delivery resumed {resumed:?} after it was back, presence {present:?} after that; {totals:?} messages",
        back - down
    );
}
