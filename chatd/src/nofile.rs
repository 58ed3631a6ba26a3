//! The open-files limit (RLIMIT_NOFILE) that `--max-connections` needs:
//! raised at start when the soft limit is lower, or a refusal to start
//! when even the hard limit is. (Under a soft limit of 1,024, the 10,000
//! default connections are unreachable and `accept` fails over and over.)

use anyhow::bail;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Files one database connection may hold: a socket for MySQL; the
/// database, its write-ahead log and its shared-memory index for SQLite.
const PER_DATABASE_CONNECTION: u64 = 3;
/// Files for everything else: Redis connections (bus, subscriber,
/// presence, counters), the listeners, the admin listener's clients,
/// stdio, the runtime's epoll and event descriptors, the resume key file.
const MARGIN: u64 = 128;

/// Open files a node needs with `max_connections` clients and a database
/// pool of `database_pool` connections (SQLite's writer counted too).
pub(crate) fn files_needed(max_connections: usize, database_pool: u32) -> u64 {
    let clients = u64::try_from(max_connections).unwrap_or(u64::MAX);
    clients
        .saturating_add(PER_DATABASE_CONNECTION * (u64::from(database_pool) + 1))
        .saturating_add(MARGIN)
}

/// What [`ensure`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The soft limit (`None`: unlimited) was already enough.
    Enough { soft: Option<u64> },
    /// The soft limit was raised from `from` to `to`.
    Raised { from: u64, to: u64 },
}

/// This process's limit as (soft, hard); `None` is unlimited.
pub(crate) fn current() -> (Option<u64>, Option<u64>) {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    (current, maximum)
}

/// Raises this process's soft limit to `needed` when it is lower; fails
/// with what to do when the hard limit is lower (only a privileged
/// process may raise that).
pub(crate) fn ensure(needed: u64, max_connections: usize) -> anyhow::Result<Outcome> {
    let (soft, hard) = current();
    let Some(soft) = soft.filter(|&soft| soft < needed) else {
        return Ok(Outcome::Enough { soft });
    };
    if let Some(hard) = hard.filter(|&hard| hard < needed) {
        bail!("{}", too_low(needed, hard, max_connections));
    }
    if let Err(e) = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum: hard,
        },
    ) {
        bail!(
            "--max-connections {max_connections} needs up to {needed} open files; raising the \
             soft limit (RLIMIT_NOFILE) from {soft} failed: {e}"
        );
    }
    Ok(Outcome::Raised {
        from: soft,
        to: needed,
    })
}

/// The refusal when the hard limit is `hard`.
pub(crate) fn too_low(needed: u64, hard: u64, max_connections: usize) -> String {
    let fits = hard.saturating_sub(needed.saturating_sub(max_connections as u64));
    format!(
        "--max-connections {max_connections} needs up to {needed} open files, but the hard \
         limit on open files (RLIMIT_NOFILE) is {hard}: raise it (`ulimit -Hn {needed}` as \
         root, LimitNOFILE={needed} in a systemd unit, or nofile in limits.conf), or \
         lower --max-connections to {fits} or less"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_need_is_the_connections_plus_a_margin() {
        assert_eq!(files_needed(10_000, 16), 10_000 + 3 * 17 + 128);
        assert_eq!(files_needed(0, 0), 3 + 128);
    }

    #[test]
    fn a_need_within_the_soft_limit_changes_nothing() {
        let (soft, _) = current();
        assert!(matches!(ensure(16, 1), Ok(Outcome::Enough { .. })));
        assert_eq!(current().0, soft);
    }

    #[test]
    fn the_refusal_says_what_fits() {
        let needed = files_needed(10_000, 16);
        let text = too_low(needed, 1024, 10_000);
        assert!(text.contains("hard limit on open files (RLIMIT_NOFILE) is 1024"));
        assert!(
            text.contains("lower --max-connections to 845 or less"),
            "{text}"
        );
    }
}
