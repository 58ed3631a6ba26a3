//! Numbered message streams between users and a checker of the delivery
//! contract, seen from the clients' side, for the fault-injection tests.
//!
//! A sender task sends `"<conv>:<n>"` (n = 1, 2, ...) to one recipient and
//! records which numbers were acknowledged (`CHAT_ACK`). A receiver task
//! reads its deliveries as a correct native client does (docs/protocol.md
//! §6.5): it drops a push whose `seq` is not above the highest it has seen,
//! acks the rest with `DELIVERED`, and records per conversation which
//! numbers arrived, with their `mid`. Both reconnect by themselves when
//! their connection ends, with their resume token, as real clients would.
//!
//! [`Checker::finish`] stops the senders, waits for the stragglers, asks
//! each recipient's inbox for anything after its highest `seq` (the final
//! sync) and counts, per conversation: acked numbers never received (lost),
//! numbers received more than once under distinct `mid`s or `seq`s
//! (duplicated: the server stored or delivered a message twice), and
//! numbers received after a higher one (reordered).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chatcore::client::{Client, ClientError, Event};
use chatcore::model::{Seq, Target, UserId};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{PASSWORD, User, try_connect};

/// One received message, after the client's `seq` filter.
#[derive(Debug, Clone)]
struct Receipt {
    n: u64,
    mid: i64,
    seq: i64,
    at: Instant,
    /// Got by the final `SYNC` rather than pushed.
    by_final_sync: bool,
}

/// One conversation: one sender, one recipient.
#[derive(Debug, Default)]
struct Conv {
    /// Numbers 1..=attempted were sent at least once.
    attempted: u64,
    /// Acknowledged numbers and when (first acknowledgement).
    acked: BTreeMap<u64, Instant>,
    /// Sends that failed (refused, timed out, connection lost).
    failed_sends: u64,
    /// Why they failed: the client's error, by text, and how often.
    failures: BTreeMap<String, u64>,
    /// Resends the server recognised by their `cmid` (`dup: true`).
    dup_acks: u64,
    received: Vec<Receipt>,
}

#[derive(Debug, Default)]
struct Book {
    convs: BTreeMap<String, Conv>,
    /// Pushes a receiver dropped by `seq` (at-least-once redelivery after
    /// a reconnect: normal, not a duplicate).
    redelivered: u64,
    /// A `seq` that did not follow the highest seen: a skipped inbox entry.
    seq_gaps: Vec<String>,
    /// Frames that did not parse as `"<conv>:<n>"`.
    strays: Vec<String>,
    reconnects: u64,
}

/// The shared record of every stream of one test.
#[derive(Debug, Clone)]
pub struct Checker {
    fault: String,
    book: Arc<Mutex<Book>>,
    stop_senders: CancellationToken,
    stop_receivers: CancellationToken,
}

/// How a sender treats a send whose outcome it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Every send carries a `cmid` (`<conv>-<n>`); a failed one is sent
    /// again with the same `cmid` until acknowledged, so it is stored at
    /// most once whatever happened to the first try.
    SameCmid,
    /// No `cmid`; a failed send is given up and the next number follows.
    /// The given-up one may or may not have been stored.
    GiveUp,
}

/// What a sender does.
#[derive(Debug, Clone)]
pub struct SendPlan {
    pub conv: String,
    pub to: UserId,
    pub resend: Resend,
    /// Bytes of filler after the number.
    pub pad: usize,
    /// Pause between sends, in ms; see [`SenderHandle::set_pace_ms`].
    pub pace_ms: u64,
    /// Where to reconnect, tried in turn.
    pub reconnect_to: Vec<String>,
}

impl SendPlan {
    pub fn new(conv: &str, to: UserId, reconnect_to: &[&str]) -> SendPlan {
        SendPlan {
            conv: conv.to_owned(),
            to,
            resend: Resend::SameCmid,
            pad: 0,
            pace_ms: 20,
            reconnect_to: reconnect_to.iter().map(|a| (*a).to_owned()).collect(),
        }
    }
}

#[derive(Debug)]
pub struct SenderHandle {
    pub conv: String,
    pace_ms: Arc<AtomicU64>,
    task: JoinHandle<User>,
}

impl SenderHandle {
    pub fn set_pace_ms(&self, ms: u64) {
        self.pace_ms.store(ms, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct ReceiverHandle {
    pub name: String,
    /// The highest `seq` the client has seen.
    highest: Arc<AtomicU64>,
    task: JoinHandle<User>,
}

/// What [`Checker::finish`] counted.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub fault: String,
    pub sent: u64,
    pub acked: u64,
    /// Distinct numbers received.
    pub delivered: u64,
    /// Acknowledged numbers never received.
    pub lost: u64,
    /// Extra receipts of a number under another `mid` or `seq`.
    pub duplicated: u64,
    /// Receipts of a number lower than one received before it.
    pub reordered: u64,
    /// Received although never acknowledged (a send whose ack was lost).
    pub unacked_delivered: u64,
    pub failed_sends: u64,
    /// Why sends failed, and how often.
    pub failures: BTreeMap<String, u64>,
    pub dup_acks: u64,
    pub redelivered: u64,
    pub by_final_sync: u64,
    pub reconnects: u64,
    pub seq_gaps: Vec<String>,
    pub strays: Vec<String>,
    /// Per conversation, what went wrong (empty when all is well).
    pub problems: Vec<String>,
}

impl Report {
    /// The one-line summary the fault tests print.
    pub fn line(&self, extra: &str) -> String {
        format!(
            "fault {}: sent {} acked {} delivered {} lost {} duplicated {} reordered {} \
             (unacked delivered {}, failed sends {}, cmid dups {}, seq-dropped redeliveries {}, \
             by final sync {}, reconnects {}; send errors {:?}){extra}",
            self.fault,
            self.sent,
            self.acked,
            self.delivered,
            self.lost,
            self.duplicated,
            self.reordered,
            self.unacked_delivered,
            self.failed_sends,
            self.dup_acks,
            self.redelivered,
            self.by_final_sync,
            self.reconnects,
            self.failures,
        )
    }

    /// Panics unless every acknowledged message arrived exactly once and in
    /// order, and nothing arrived twice.
    pub fn assert_clean(&self) {
        assert!(
            self.lost == 0
                && self.duplicated == 0
                && self.reordered == 0
                && self.seq_gaps.is_empty()
                && self.strays.is_empty(),
            "{}: the delivery contract was broken: {}\nseq gaps: {:?}\nstray frames: {:?}",
            self.fault,
            self.problems.join("; "),
            self.seq_gaps,
            self.strays,
        );
        assert!(self.acked > 0, "{}: nothing was acknowledged", self.fault);
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// `"<conv>:<n>"`, optionally followed by `":<filler>"`.
fn parse(text: &str) -> Option<(&str, u64)> {
    let mut parts = text.splitn(3, ':');
    let conv = parts.next()?;
    let n = parts.next()?.parse().ok()?;
    Some((conv, n))
}

/// Connects to `addr` within a few seconds, with short calls: a stopped
/// node accepts in its kernel but never answers, so the next address
/// should be tried soon.
async fn connect_quietly(addr: &str) -> Result<(Client, u16), String> {
    let (mut client, port) = try_connect(addr, Duration::from_secs(3)).await?;
    client.set_timeout(Duration::from_secs(5));
    Ok((client, port))
}

/// Logs `user` in again over a new connection, trying `addrs` in turn until
/// one works: with the resume token, or with the password if the token is
/// refused. Gives up after `within` or when `stop` fires.
pub async fn reconnect(
    user: &User,
    addrs: &[String],
    within: Duration,
    stop: &CancellationToken,
) -> Result<User, String> {
    let deadline = Instant::now() + within;
    let mut last_error = String::from("no address to reconnect to");
    for attempt in 0.. {
        if Instant::now() >= deadline || stop.is_cancelled() || addrs.is_empty() {
            break;
        }
        let addr = &addrs[attempt % addrs.len()];
        match connect_quietly(addr).await {
            Ok((client, port)) => {
                let login = match client.resume(&user.resume).await {
                    Err(ClientError::Server { errno: 17, .. }) => {
                        client.login(user.id, PASSWORD).await
                    }
                    other => other,
                };
                match login {
                    Ok(info) => return Ok(User::logged_in(client, port, &user.name, info)),
                    Err(e) => last_error = format!("log in at {addr}: {e}"),
                }
            }
            Err(e) => last_error = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "{} ({}) could not reconnect: {last_error}",
        user.name, user.id
    ))
}

impl Checker {
    pub fn new(fault: &str) -> Checker {
        Checker {
            fault: fault.to_owned(),
            book: Arc::new(Mutex::new(Book::default())),
            stop_senders: CancellationToken::new(),
            stop_receivers: CancellationToken::new(),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts sending as `user` per `plan`.
    pub fn sender(&self, user: User, plan: SendPlan) -> SenderHandle {
        self.book().convs.entry(plan.conv.clone()).or_default();
        let pace_ms = Arc::new(AtomicU64::new(plan.pace_ms));
        let task = tokio::spawn(run_sender(
            self.clone(),
            user,
            plan.clone(),
            Arc::clone(&pace_ms),
        ));
        SenderHandle {
            conv: plan.conv,
            pace_ms,
            task,
        }
    }

    /// Starts reading `user`'s deliveries; it reconnects to `reconnect_to`
    /// (in turn) whenever its connection ends.
    pub fn receiver(&self, user: User, reconnect_to: &[&str]) -> ReceiverHandle {
        let highest = Arc::new(AtomicU64::new(0));
        let name = user.name.clone();
        let addrs = reconnect_to.iter().map(|a| (*a).to_owned()).collect();
        let task = tokio::spawn(run_receiver(
            self.clone(),
            user,
            addrs,
            Arc::clone(&highest),
        ));
        ReceiverHandle {
            name,
            highest,
            task,
        }
    }

    /// Numbers of `conv` acknowledged so far.
    pub fn acked(&self, conv: &str) -> usize {
        self.book().convs.get(conv).map_or(0, |c| c.acked.len())
    }

    /// Messages of `conv` received so far.
    pub fn received(&self, conv: &str) -> usize {
        self.book().convs.get(conv).map_or(0, |c| c.received.len())
    }

    /// Messages of `conv` acknowledged after `since` and received.
    pub fn received_acked_after(&self, conv: &str, since: Instant) -> usize {
        let book = self.book();
        let Some(c) = book.convs.get(conv) else {
            return 0;
        };
        c.received
            .iter()
            .filter(|r| c.acked.get(&r.n).is_some_and(|at| *at > since))
            .count()
    }

    /// Waits until each of `convs` has received `n` messages acknowledged
    /// after `since`; panics after `within`.
    pub async fn wait_flowing(&self, convs: &[&str], since: Instant, n: usize, within: Duration) {
        let start = Instant::now();
        loop {
            if convs
                .iter()
                .all(|c| self.received_acked_after(c, since) >= n)
            {
                return;
            }
            if start.elapsed() > within {
                let counts: Vec<(String, usize, usize)> = convs
                    .iter()
                    .map(|c| {
                        (
                            (*c).to_owned(),
                            self.acked(c),
                            self.received_acked_after(c, since),
                        )
                    })
                    .collect();
                panic!(
                    "{}: delivery did not flow within {within:?} \
                     (conv, acked, received acked-after): {counts:?}",
                    self.fault
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How long after `since` each of `convs` received its first message
    /// acknowledged after `since`; the slowest conversation.
    pub fn delivery_resumed_after(&self, convs: &[&str], since: Instant) -> Option<Duration> {
        self.delivery_resumed(convs, since, since)
    }

    /// How long after `from` each of `convs` received its first message
    /// acknowledged after `acked_after`; the slowest conversation.
    pub fn delivery_resumed(
        &self,
        convs: &[&str],
        acked_after: Instant,
        from: Instant,
    ) -> Option<Duration> {
        let book = self.book();
        let mut slowest = Duration::ZERO;
        for conv in convs {
            let c = book.convs.get(*conv)?;
            let first = c
                .received
                .iter()
                .filter(|r| c.acked.get(&r.n).is_some_and(|at| *at > acked_after))
                .map(|r| r.at)
                .min()?;
            slowest = slowest.max(first.saturating_duration_since(from));
        }
        Some(slowest)
    }

    /// How long after `since` each of `convs` got its first acknowledgement;
    /// the slowest conversation.
    pub fn sends_resumed_after(&self, convs: &[&str], since: Instant) -> Option<Duration> {
        let book = self.book();
        let mut slowest = Duration::ZERO;
        for conv in convs {
            let c = book.convs.get(*conv)?;
            let first = c.acked.values().filter(|at| **at > since).min()?;
            slowest = slowest.max(first.saturating_duration_since(since));
        }
        Some(slowest)
    }

    /// Stops the senders, waits (up to `within`) for every acknowledged
    /// message to arrive, stops the receivers, runs the final sync on each
    /// recipient's connection and counts.
    pub async fn finish(
        &self,
        senders: Vec<SenderHandle>,
        receivers: Vec<ReceiverHandle>,
        within: Duration,
    ) -> (Report, Vec<User>) {
        self.stop_senders.cancel();
        let mut users = Vec::new();
        for sender in senders {
            users.push(sender.task.await.expect("sender task"));
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline && !self.all_acked_received() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop_receivers.cancel();
        for receiver in receivers {
            let user = receiver.task.await.expect("receiver task");
            let after = receiver.highest.load(Ordering::Relaxed) as i64;
            self.final_sync(&user, after).await;
            users.push(user);
        }
        (self.count(), users)
    }

    fn all_acked_received(&self) -> bool {
        self.book().convs.values().all(|c| {
            let got: BTreeSet<u64> = c.received.iter().map(|r| r.n).collect();
            c.acked.keys().all(|n| got.contains(n))
        })
    }

    /// Reads the inbox after `after` page by page, as a client resyncing
    /// from its highest `seq` does.
    async fn final_sync(&self, user: &User, mut after: i64) {
        loop {
            let (page, more) = user
                .client
                .sync(Seq(after), 500)
                .await
                .unwrap_or_else(|e| panic!("final sync of {}: {e}", user.name));
            for m in &page {
                let seq = m.seq.expect("a synced message has its seq").0;
                self.record_receipt(&user.name, seq, after, m.mid.0, &m.msg, true);
                after = after.max(seq);
            }
            if !more {
                return;
            }
        }
    }

    fn record_receipt(
        &self,
        who: &str,
        seq: i64,
        highest: i64,
        mid: i64,
        text: &str,
        by_final_sync: bool,
    ) {
        let mut book = self.book();
        if seq != highest + 1 {
            book.seq_gaps
                .push(format!("{who}: seq {seq} after {highest} ({text:.40})"));
        }
        let Some((conv, n)) = parse(text) else {
            book.strays.push(format!("{who}: {text:.60}"));
            return;
        };
        book.convs
            .entry(conv.to_owned())
            .or_default()
            .received
            .push(Receipt {
                n,
                mid,
                seq,
                at: Instant::now(),
                by_final_sync,
            });
    }

    fn count(&self) -> Report {
        let book = self.book();
        let mut report = Report {
            fault: self.fault.clone(),
            redelivered: book.redelivered,
            seq_gaps: book.seq_gaps.clone(),
            strays: book.strays.clone(),
            reconnects: book.reconnects,
            ..Report::default()
        };
        for (name, c) in &book.convs {
            report.sent += c.attempted;
            report.acked += c.acked.len() as u64;
            report.failed_sends += c.failed_sends;
            for (why, count) in &c.failures {
                *report.failures.entry(why.clone()).or_default() += count;
            }
            report.dup_acks += c.dup_acks;
            let mut seen: HashMap<u64, (i64, i64)> = HashMap::new();
            let mut duplicated = Vec::new();
            let mut reordered = Vec::new();
            let mut highest_n = 0;
            for r in &c.received {
                report.by_final_sync += u64::from(r.by_final_sync);
                if let Some(first) = seen.get(&r.n) {
                    duplicated.push(format!(
                        "{} (mid/seq {:?} and {}/{})",
                        r.n, first, r.mid, r.seq
                    ));
                    continue;
                }
                seen.insert(r.n, (r.mid, r.seq));
                if r.n < highest_n {
                    reordered.push(format!("{} after {highest_n}", r.n));
                }
                highest_n = highest_n.max(r.n);
                if !c.acked.contains_key(&r.n) {
                    report.unacked_delivered += 1;
                }
            }
            let lost: Vec<u64> = c
                .acked
                .keys()
                .filter(|n| !seen.contains_key(n))
                .copied()
                .collect();
            report.delivered += seen.len() as u64;
            report.lost += lost.len() as u64;
            report.duplicated += duplicated.len() as u64;
            report.reordered += reordered.len() as u64;
            if !lost.is_empty() {
                report
                    .problems
                    .push(format!("{name}: acked but lost {lost:?}"));
            }
            if !duplicated.is_empty() {
                report
                    .problems
                    .push(format!("{name}: duplicated {duplicated:?}"));
            }
            if !reordered.is_empty() {
                report
                    .problems
                    .push(format!("{name}: reordered {reordered:?}"));
            }
        }
        report
    }
}

async fn run_sender(
    checker: Checker,
    mut user: User,
    plan: SendPlan,
    pace_ms: Arc<AtomicU64>,
) -> User {
    let stop = checker.stop_senders.clone();
    let mut n = 0u64;
    let mut retry_same = false;
    let filler = "x".repeat(plan.pad);
    while !stop.is_cancelled() {
        if !retry_same {
            n += 1;
        }
        retry_same = false;
        let mut text = format!("{}:{n}", plan.conv);
        if plan.pad > 0 {
            text.push(':');
            text.push_str(&filler);
        }
        let cmid = format!("{}-{n}", plan.conv);
        let cmid = (plan.resend == Resend::SameCmid).then_some(cmid.as_str());
        checker
            .book()
            .convs
            .entry(plan.conv.clone())
            .or_default()
            .attempted = n;
        match user.client.send(Target::User(plan.to), &text, cmid).await {
            Ok(sent) => {
                let mut book = checker.book();
                let conv = book.convs.entry(plan.conv.clone()).or_default();
                conv.acked.entry(n).or_insert_with(Instant::now);
                conv.dup_acks += u64::from(sent.duplicate);
            }
            Err(e) => {
                {
                    let mut book = checker.book();
                    let conv = book.convs.entry(plan.conv.clone()).or_default();
                    conv.failed_sends += 1;
                    *conv.failures.entry(e.to_string()).or_default() += 1;
                }
                retry_same = plan.resend == Resend::SameCmid;
                if e.errno().is_some() {
                    // Refused (errno 30 while a backend is away): the
                    // connection is fine, try again shortly.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                } else {
                    // Closed, timed out: a real client starts over on a new
                    // connection.
                    checker.book().reconnects += 1;
                    match reconnect(&user, &plan.reconnect_to, Duration::from_secs(60), &stop).await
                    {
                        Ok(again) => user = again,
                        Err(e) if stop.is_cancelled() => {
                            eprintln!("{}: stopped while reconnecting: {e}", plan.conv);
                        }
                        Err(e) => panic!("sender of {}: {e}", plan.conv),
                    }
                }
                continue;
            }
        }
        let pace = pace_ms.load(Ordering::Relaxed);
        if pace > 0 {
            tokio::time::sleep(Duration::from_millis(pace)).await;
        }
    }
    user
}

async fn run_receiver(
    checker: Checker,
    mut user: User,
    addrs: Vec<String>,
    highest: Arc<AtomicU64>,
) -> User {
    let stop = checker.stop_receivers.clone();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return user,
            event = user.client.next_event() => event,
        };
        match event {
            Some(Event::Message(m)) => {
                let seq = m.seq.expect("a push carries its seq").0;
                let top = highest.load(Ordering::Relaxed) as i64;
                if seq <= top {
                    checker.book().redelivered += 1;
                    continue;
                }
                checker.record_receipt(&user.name, seq, top, m.mid.0, &m.msg, false);
                highest.store(seq as u64, Ordering::Relaxed);
                // Fire and forget, like the reference client; a lost ack
                // only means a redelivery later.
                let _ = user.client.ack(Seq(seq)).await;
            }
            // A refused DELIVERED (errno 30 while the database is away):
            // the cursor stays behind, redeliveries are dropped by seq.
            Some(Event::Error { .. } | Event::Presence { .. }) => {}
            Some(Event::Kicked { .. }) | None => {
                checker.book().reconnects += 1;
                match reconnect(&user, &addrs, Duration::from_secs(60), &stop).await {
                    Ok(again) => user = again,
                    Err(e) if stop.is_cancelled() => {
                        panic!("receiver {} stopped before it reconnected: {e}", user.name)
                    }
                    Err(e) => panic!("receiver: {e}"),
                }
            }
        }
    }
}

/// `start` to now, in ms, for the summaries.
pub fn since_ms(start: Instant) -> u128 {
    ms(start.elapsed())
}
