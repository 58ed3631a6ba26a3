//! A `main` for test targets with `harness = false` (libtest-mimic), for
//! suites with tests that need services: such a test is reported as
//! ignored, with the reason, when its service is not named (see
//! [`crate::services::check`]), so that `cargo test`'s own summary says
//! what it did not run. Each test runs on a tokio runtime of its own, as
//! under `#[tokio::test]`.
//!
//! ```no_run
//! use chat_testkit::{Service, trial};
//!
//! async fn two_nodes_chat() { /* ... */ }
//!
//! fn main() -> std::process::ExitCode {
//!     chat_testkit::harness::run([trial!(two_nodes_chat).needs(&[Service::Redis])])
//! }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::services::{self, Availability, Service};

tokio::task_local! {
    static TEST_NAME: String;
}

/// The name of the test whose body is running (not in tasks it spawned),
/// for files a test leaves behind, such as a failed browser test's
/// screenshots.
pub fn current_test() -> Option<String> {
    TEST_NAME.try_with(Clone::clone).ok()
}

type Body = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// One test: a name, the services it needs, and an async body that fails
/// by panicking.
pub struct Test {
    name: String,
    needs: Vec<Service>,
    workers: Option<usize>,
    body: Body,
}

impl std::fmt::Debug for Test {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Test")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// A test named `name` running `body` on a current-thread runtime and
/// needing no service.
pub fn test<F, Fut>(name: impl Into<String>, body: F) -> Test
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    Test {
        name: name.into(),
        needs: Vec::new(),
        workers: None,
        body: Box::new(move || Box::pin(body())),
    }
}

/// Where a conformance check of a part the cluster's nodes share runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// Nodes in this process (the in-process implementation).
    Local,
    /// Nodes on the Redis at this URL (`CHAT_TEST_REDIS_URL`).
    Redis(String),
    /// Nodes on the Redis Cluster of these nodes (`CHAT_TEST_REDIS_CLUSTER`).
    Cluster(Vec<String>),
}

/// `check` as three tests, `local::NAME`, `redis::NAME` and
/// `cluster::NAME`, each on its [`Deployment`] and needing its service.
pub fn on_each_deployment<F, Fut>(name: &str, check: F) -> [Test; 3]
where
    F: FnOnce(Deployment) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let (redis, cluster) = (check.clone(), check.clone());
    [
        test(format!("local::{name}"), move || check(Deployment::Local)),
        test(format!("redis::{name}"), move || {
            redis(Deployment::Redis(crate::redis::shared_url()))
        })
        .needs(&[Service::Redis]),
        test(format!("cluster::{name}"), move || {
            cluster(Deployment::Cluster(crate::redis_cluster::shared_nodes()))
        })
        .needs(&[Service::RedisCluster]),
    ]
}

/// [`on_each_deployment`] for each of the `checks`, async functions of the
/// fixture that `fixture` (an async function of a [`Deployment`]) makes.
#[macro_export]
macro_rules! on_each_deployment {
    ($fixture:path; $($check:ident),* $(,)?) => {{
        let mut tests = Vec::new();
        $(
            tests.extend($crate::harness::on_each_deployment(
                stringify!($check),
                |deployment| async move { $check($fixture(deployment).await).await },
            ));
        )*
        tests
    }};
}

/// [`test()`] named after the function it runs.
#[macro_export]
macro_rules! trial {
    ($body:ident) => {
        $crate::harness::test(stringify!($body), $body)
    };
}

impl Test {
    /// It needs `services` as well.
    pub fn needs(mut self, services: &[Service]) -> Test {
        self.needs.extend_from_slice(services);
        self
    }

    /// It runs on a multi-thread runtime with `workers` worker threads
    /// (`#[tokio::test(flavor = "multi_thread", worker_threads = N)]`).
    pub fn multi_thread(mut self, workers: usize) -> Test {
        self.workers = Some(workers);
        self
    }

    fn into_trial(self) -> Trial {
        let Test {
            name,
            needs,
            workers,
            body,
        } = self;
        let test_name = name.clone();
        Trial::ignorable_test(name, move || match services::check(&needs) {
            Availability::Ready => {
                block_on(workers, Box::pin(TEST_NAME.scope(test_name, body())));
                Ok(Completion::Completed)
            }
            Availability::Skip(reason) => Ok(Completion::ignored_with(reason)),
            Availability::Missing(message) => Err(Failed::from(message)),
        })
    }
}

fn block_on(workers: Option<usize>, future: Pin<Box<dyn Future<Output = ()>>>) {
    let mut builder = match workers {
        Some(workers) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(workers);
            builder
        }
        None => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = builder.enable_all().build().expect("a tokio runtime");
    runtime.block_on(future);
}

/// Runs `tests` as the command line asks (filters, `--list`, ...), like
/// the built-in harness, and returns the exit code to end with. Output is
/// not captured: what a test prints always shows.
pub fn run(tests: impl IntoIterator<Item = Test>) -> ExitCode {
    let mut args = Arguments::from_args();
    // The built-in harness reads this; libtest-mimic does not.
    if args.test_threads.is_none() {
        args.test_threads = std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|n| n.parse().ok());
    }
    let trials = tests.into_iter().map(Test::into_trial).collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // Processes shared by the tests of this binary.
    crate::browser::stop_driver();
    conclusion.exit_code()
}
