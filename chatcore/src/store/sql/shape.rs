//! The shapes of statements that bind many values: how many ids one
//! statement takes, and how lists are padded so that few distinct
//! statement texts exist (each one is a prepared statement to cache).

/// Most ids bound in one statement (`IN (...)` lists, multi-row inserts);
/// far below SQLite's 32,766 and MySQL's 65,535 placeholders. A power of
/// two, see [`padded`].
pub(super) const CHUNK: usize = 1024;

/// `items` lengthened to the next power of two by repeating the last one,
/// for an `IN (...)` list (or `CASE` branches) that means the same.
///
/// Every distinct statement text is a prepared statement in sqlx's
/// per-connection cache; once the cache is full each new one evicts
/// another, and that eviction (a `COM_STMT_CLOSE`, which has no reply)
/// followed at once by the next command stalls for a delayed ACK (~200 ms
/// on Linux loopback, as sqlx does not set `TCP_NODELAY`). Lists padded to
/// powers of two, and multi-row inserts cut into power-of-two runs
/// ([`pow2_runs`]), keep the number of shapes small and the cache warm.
pub(super) fn padded<T: Copy>(items: &[T]) -> Vec<T> {
    let mut list = items.to_vec();
    if let Some(&last) = items.last() {
        list.resize(items.len().next_power_of_two(), last);
    }
    list
}

/// `0..len` cut into consecutive runs whose lengths are powers of two,
/// longest first (see [`padded`]).
pub(super) fn pow2_runs(len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = len - start;
        if left == 0 {
            return None;
        }
        let run = 1 << left.ilog2();
        start += run;
        Some(start - run..start)
    })
}
