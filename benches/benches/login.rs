//! `ChatService::handle` of a `LOGIN` on a fresh connection: the password
//! check on the blocking pool, the presence claim and everything the reply
//! shows (10 friends, 3 groups of 10 members; no backlog), on the
//! in-memory store. Once with the argon2id cost `chatd` ships
//! (`HashParams::default()`, OWASP's 19 MiB and 2 passes) and once with
//! the cheapest parameters, which tests use, to show what the hash costs.
//! Only the login is timed; the logout after it is not.
//!
//! ```text
//! cargo bench --workspace --bench login -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Method and figures: `docs/benchmarks.md`.

mod support;

use std::time::{Duration, Instant};

use chatcore::model::UserId;
use chatcore::service::{HashParams, Outcome};
use criterion::{Criterion, SamplingMode};
use support::{BenchNode, StoreKind};
use tokio::runtime::Runtime;

const FRIENDS: usize = 10;
const GROUPS: usize = 3;
const GROUP_MEMBERS: usize = 10;

/// A node with one user who has friends and groups.
async fn populated_node(params: HashParams) -> (BenchNode, UserId) {
    let mut node = BenchNode::start(StoreKind::Memory, params).await;
    let user = node.register("user").await;
    let session = node.login(user).await;
    for i in 0..FRIENDS {
        let friend = node.register(&format!("friend{i}")).await;
        node.befriend(&session, friend).await;
    }
    for g in 0..GROUPS {
        let group = node.create_group(&session, &format!("group{g}")).await;
        for m in 1..GROUP_MEMBERS {
            let member = node.register(&format!("member{g}.{m}")).await;
            let member_session = node.login(member).await;
            node.join_group(&member_session, group).await;
            // Every other member stays online, for the reply's presence.
            if m % 2 == 0 {
                node.service.end_session(&member_session).await;
            }
        }
    }
    node.service.end_session(&session).await;
    (node, user)
}

fn bench_login(c: &mut Criterion, rt: &Runtime, name: &str, params: HashParams) {
    let (node, user) = rt.block_on(populated_node(params));
    let mut group = c.benchmark_group("login");
    // A login at the shipped cost takes tens of milliseconds: few,
    // equally long samples.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let request = BenchNode::login_request(user);
                    let started = Instant::now();
                    let outcome = node
                        .service
                        .handle_anonymous(support::caller(), request.dialect(), Some(1), request)
                        .await;
                    elapsed += started.elapsed();
                    match outcome {
                        Outcome::LoggedIn(login) => {
                            assert_eq!(login.reply.friends.len(), FRIENDS);
                            assert_eq!(login.reply.groups.len(), GROUPS);
                            node.service.end_session(&login.session).await;
                        }
                        other => panic!("login failed: {other:?}"),
                    }
                }
                elapsed
            })
        });
    });
    group.finish();
    node.stop();
}

fn main() {
    let rt = support::runtime();
    let mut c = Criterion::default().configure_from_args();
    bench_login(&mut c, &rt, "argon2id_shipped", HashParams::default());
    bench_login(
        &mut c,
        &rt,
        "argon2id_insecure_fast",
        HashParams::insecure_fast(),
    );
    c.final_summary();
}
