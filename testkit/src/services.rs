//! The services a test may need, each named by an environment variable,
//! and the one rule for a test whose service is not named.

/// Set in CI: a test that would be skipped for want of a service fails
/// instead.
pub const REQUIRE_SERVICES_VAR: &str = "CHAT_TEST_REQUIRE_SERVICES";

/// Something outside the test process that a test needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// A MySQL/MariaDB server, `mysql://USER[:PW]@HOST:PORT`, where tests
    /// may create and drop databases of their own.
    Mysql,
    /// A shared Redis, `redis://HOST:PORT`; each test keeps under keys of
    /// its own. Naming it also says that `redis-server` is installed, for
    /// the tests that run one of their own.
    Redis,
    /// The nginx binary, with its stream module.
    Nginx,
    /// The chromedriver binary, with the Chromium it drives installed
    /// (Debian's `chromium-driver`); tests run a private one.
    Chromedriver,
    /// A shared Redis Cluster (7 or later), its nodes as comma-separated
    /// `redis://HOST:PORT`; each test keeps under keys of its own. Naming
    /// it also says that `redis-server` and `redis-cli` are installed, for
    /// the tests that run a cluster of their own.
    RedisCluster,
    /// The `systemd-analyze` binary (systemd 252 or later), to check the
    /// shipped unit file.
    SystemdAnalyze,
}

impl Service {
    /// The variable that names it.
    pub const fn var(self) -> &'static str {
        match self {
            Service::Mysql => "CHAT_TEST_MYSQL_URL",
            Service::Redis => "CHAT_TEST_REDIS_URL",
            Service::Nginx => "CHAT_TEST_NGINX",
            Service::Chromedriver => "CHAT_TEST_CHROMEDRIVER",
            Service::RedisCluster => "CHAT_TEST_REDIS_CLUSTER",
            Service::SystemdAnalyze => "CHAT_TEST_SYSTEMD_ANALYZE",
        }
    }

    /// Its value, or `None` when the variable is unset or empty.
    pub fn configured(self) -> Option<String> {
        std::env::var(self.var()).ok().filter(|v| !v.is_empty())
    }

    /// Its value. Panics when it is not named: a test reaches this only
    /// when [`check`] let it run (see [`crate::harness`]).
    pub fn value(self) -> String {
        self.configured().unwrap_or_else(|| {
            panic!(
                "{} is not set: this test needs it (the harness ignores such tests)",
                self.var()
            )
        })
    }
}

/// Whether a test may run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Every service it needs is named.
    Ready,
    /// Some are not: the test is skipped, and counted as ignored with
    /// this reason.
    Skip(String),
    /// Some are not, but `CHAT_TEST_REQUIRE_SERVICES` is set: the test
    /// fails with this message.
    Missing(String),
}

/// The skip rule: a test runs when every service in `needs` is named; else
/// it is skipped with a message, unless `CHAT_TEST_REQUIRE_SERVICES` is
/// set, when it fails.
pub fn check(needs: &[Service]) -> Availability {
    let missing: Vec<Service> = needs
        .iter()
        .copied()
        .filter(|s| s.configured().is_none())
        .collect();
    rule(&missing, std::env::var_os(REQUIRE_SERVICES_VAR).is_some())
}

/// [`check`] once the environment is read.
fn rule(missing: &[Service], required: bool) -> Availability {
    if missing.is_empty() {
        return Availability::Ready;
    }
    let missing = missing
        .iter()
        .map(|s| s.var())
        .collect::<Vec<_>>()
        .join(", ");
    if required {
        Availability::Missing(format!(
            "needs {missing}, not set, but {REQUIRE_SERVICES_VAR} is"
        ))
    } else {
        Availability::Skip(format!("needs {missing}"))
    }
}

#[cfg(test)]
mod tests {
    use super::{Availability, Service, rule};

    #[test]
    fn a_test_whose_services_are_named_runs() {
        assert_eq!(rule(&[], false), Availability::Ready);
        assert_eq!(rule(&[], true), Availability::Ready);
    }

    #[test]
    fn a_missing_service_skips_the_test_naming_every_missing_variable() {
        assert_eq!(
            rule(&[Service::Mysql, Service::Nginx], false),
            Availability::Skip("needs CHAT_TEST_MYSQL_URL, CHAT_TEST_NGINX".to_owned())
        );
    }

    #[test]
    fn a_missing_service_fails_the_test_when_services_are_required() {
        assert_eq!(
            rule(&[Service::Redis], true),
            Availability::Missing(
                "needs CHAT_TEST_REDIS_URL, not set, but CHAT_TEST_REQUIRE_SERVICES is".to_owned()
            )
        );
    }
}
