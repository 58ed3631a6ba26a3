//! `chatd import-seed`: copies a ZJP-ChatServer (seed) database into
//! chatd's store: users with their ids, names and (hashed) passwords,
//! friendships, groups with their members and roles, and the offline
//! messages into their recipients' inboxes. See docs/import-seed.md.
//!
//! Stages, in order: users, friends, groups, members, messages. Each batch
//! is one transaction of the target that also records the checkpoint
//! (`plan::Checkpoint`), so an interrupted import resumes after its last
//! batch and a finished one is not done again.
//!
//! - `source.rs`: reading the seed's tables, undoing its GBK mistake.
//! - `plan.rs`: the checkpoint, and what becomes of offline rows.
//! - `report.rs`: the counts and the skipped rows, with why.

mod plan;
mod report;
mod source;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use chatcore::model::{GroupId, GroupInfo, MessageId, Role, UserId, UserInfo};
use chatcore::service::{Passwords, ServiceConfig, acceptable_name};
use chatcore::store::{ImportBatch, ImportedUser, SqlStore};

use self::plan::{Checkpoint, MessagePlanner, Progress, read_chat};
use self::report::{Report, Skip};
use self::source::{Seed, SeedText, Table};
use crate::config::Config;

/// Where the seed's password may come from besides a file.
const PASSWORD_VAR: &str = "CHAT_IMPORT_SOURCE_PASSWORD";

/// `chatd import-seed`'s own flags (its help is `config::Command`'s).
#[derive(Debug, clap::Args)]
pub(crate) struct ImportSeedArgs {
    /// The seed's database, `mysql://USER@HOST:PORT/DB`, without a password:
    /// that comes from CHAT_IMPORT_SOURCE_PASSWORD or --source-password-file.
    #[arg(long, value_name = "URL")]
    pub(crate) from: String,

    /// A file whose first line is the seed database's password (else
    /// CHAT_IMPORT_SOURCE_PASSWORD, else none).
    #[arg(long, value_name = "FILE")]
    pub(crate) source_password_file: Option<PathBuf>,

    /// Read and check everything and report what an import would do, but
    /// write nothing (not even chatd's schema).
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Seed rows per transaction of the target.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) batch_size: u32,
}

pub(crate) async fn run(config: &Config, args: &ImportSeedArgs) -> anyhow::Result<()> {
    let options = source::parse_url(&args.from)?;
    let password = source_password(args)?;
    let seed = Seed::connect(options, password.as_deref()).await?;
    drop(password);
    let target = Target::open(config, &seed.name, args.dry_run).await?;
    let checkpoint = target.checkpoint().await?;
    if checkpoint.progress == Progress::Done {
        println!(
            "{} was imported into {} already; nothing to do. What that import did:\n{}",
            seed.name,
            config.redacted_database_url(),
            checkpoint.report
        );
        seed.close().await;
        return Ok(());
    }

    let users = seed.users().await?;
    let groups = seed.groups().await?;
    let names = ServiceConfig::default();
    let importable_users: BTreeMap<i64, String> = users
        .iter()
        .filter_map(|u| user_verdict(u, &names).ok().map(|name| (u.id, name)))
        .collect();
    let importable_groups: BTreeMap<i64, (String, String)> = groups
        .iter()
        .filter_map(|g| group_verdict(g, &names).ok().map(|ng| (g.id, ng)))
        .collect();
    target
        .refuse_clashes(&checkpoint.progress, &importable_users, &importable_groups)
        .await?;

    let mut import = Import {
        seed: &seed,
        target,
        report: checkpoint.report,
        batch: args.batch_size as usize,
        users: importable_users,
        groups: importable_groups,
        bars: std::io::stderr().is_terminal(),
    };
    let mut progress = checkpoint.progress;
    if let Progress::Users { after } = progress {
        let passwords = Passwords::new(config.hash_params(), config.hash_threads)
            .context("invalid --argon2-memory-kib or --argon2-iterations")?;
        import
            .users(&users, after, &passwords, config.hash_threads)
            .await?;
        progress = Progress::Friends {
            after: (i64::MIN, i64::MIN),
        };
    }
    if let Progress::Friends { after } = progress {
        import.friends(after).await?;
        progress = Progress::Groups { after: i64::MIN };
    }
    if let Progress::Groups { after } = progress {
        import.groups(&groups, after).await?;
        progress = Progress::Members {
            after: (i64::MIN, i64::MIN),
        };
    }
    if let Progress::Members { after } = progress {
        import.members(after).await?;
        progress = Progress::Messages {
            rows: 0,
            open: Vec::new(),
        };
    }
    if let Progress::Messages { rows, open } = progress {
        import
            .messages(rows, MessagePlanner::resume(&open), config.max_message)
            .await?;
    }
    seed.close().await;
    let verb = if args.dry_run {
        "dry run, nothing written: would import"
    } else {
        "imported"
    };
    println!(
        "{verb} {} into {}:\n{}",
        seed.name,
        config.redacted_database_url(),
        import.report
    );
    if let Some(store) = import.target.store {
        store.close().await.context("closing the target database")?;
    }
    Ok(())
}

fn source_password(args: &ImportSeedArgs) -> anyhow::Result<Option<String>> {
    if let Some(file) = &args.source_password_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading --source-password-file {}", file.display()))?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_owned()));
    }
    Ok(std::env::var(PASSWORD_VAR).ok())
}

/// The name a seed user is imported with, or why it is not.
fn user_verdict(user: &source::SeedUser, names: &ServiceConfig) -> Result<String, Skip> {
    let name = match &user.name {
        SeedText::Null => return Err(Skip::UserNoName),
        SeedText::Invalid => return Err(Skip::UserInvalidText),
        SeedText::Text(name) => name,
    };
    if !acceptable_name(name, names.max_name_chars) {
        return Err(Skip::UserNameRefused);
    }
    if !user.password_ok {
        return Err(Skip::UserNoPassword);
    }
    Ok(name.clone())
}

/// The name and description a seed group is imported with, or why not.
fn group_verdict(
    group: &source::SeedGroup,
    names: &ServiceConfig,
) -> Result<(String, String), Skip> {
    let desc = match &group.desc {
        SeedText::Null => String::new(),
        SeedText::Text(desc) => desc.clone(),
        SeedText::Invalid => return Err(Skip::GroupInvalidText),
    };
    let SeedText::Text(name) = &group.name else {
        return Err(Skip::GroupInvalidText);
    };
    if !acceptable_name(name, names.max_name_chars) || desc.chars().count() > names.max_desc_chars {
        return Err(Skip::GroupNameRefused);
    }
    Ok((name.clone(), desc))
}

/// The store imported into; none for a dry run, which writes nothing.
struct Target {
    store: Option<SqlStore>,
    /// Its name for the seed, keying the checkpoint.
    source: String,
    /// Write nothing: `store`, if any, is only read.
    dry_run: bool,
    /// Message ids a dry run makes up (negative: never a stored one).
    made_up: i64,
}

impl Target {
    async fn open(config: &Config, source: &str, dry_run: bool) -> anyhow::Result<Target> {
        let mut options = config.store_options();
        // No sends to batch; a batch of imports may take a while.
        options.batch_sends = false;
        options.request_timeout = options.request_timeout.max(Duration::from_secs(300));
        let store = if dry_run {
            None
        } else {
            Some(SqlStore::connect(options).await.with_context(|| {
                format!("opening the database {}", config.redacted_database_url())
            })?)
        };
        let mut target = Target {
            store,
            source: source.to_owned(),
            dry_run,
            made_up: 0,
        };
        if dry_run {
            // Read the target without migrating it: a dry run writes
            // nothing, and a target without chatd's schema holds nothing.
            let mut read_only = config.store_options();
            read_only.batch_sends = false;
            read_only.run_migrations = false;
            match SqlStore::connect(read_only).await {
                Ok(store) => match store.import_checkpoint(source).await {
                    Ok(_) => target.store = Some(store),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "cannot read the target (no chatd schema yet?): checking against an empty one"
                    ),
                },
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot open the target: checking against an empty one"
                ),
            }
        }
        Ok(target)
    }

    async fn checkpoint(&self) -> anyhow::Result<Checkpoint> {
        let Some(store) = &self.store else {
            return Ok(fresh());
        };
        match store.import_checkpoint(&self.source).await? {
            None => Ok(fresh()),
            Some(state) => serde_json::from_str(&state).context(
                "the target's import checkpoint is unreadable (written by another version?)",
            ),
        }
    }

    /// Fails, listing them, when the target holds users or groups with the
    /// ids or names of seed ones, other than those this import wrote.
    async fn refuse_clashes(
        &self,
        progress: &Progress,
        users: &BTreeMap<i64, String>,
        groups: &BTreeMap<i64, (String, String)>,
    ) -> anyhow::Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let user_list: Vec<UserInfo> = users
            .iter()
            .map(|(&id, name)| UserInfo {
                id: UserId(id),
                name: name.clone(),
            })
            .collect();
        let group_list: Vec<GroupInfo> = groups
            .iter()
            .map(|(&id, (name, desc))| GroupInfo {
                id: GroupId(id),
                name: name.clone(),
                desc: desc.clone(),
            })
            .collect();
        let found = store.import_clashes(&user_list, &group_list).await?;
        let mut clashes = Vec::new();
        for user in found.users {
            let ours = progress.user_done(user.id.0) && users.get(&user.id.0) == Some(&user.name);
            if !ours {
                clashes.push(format!(
                    "user {} {:?}: {}",
                    user.id,
                    user.name,
                    what_clashes(user.id.0, &user.name, users.iter().map(|(id, n)| (*id, n)))
                ));
            }
        }
        for group in found.groups {
            let ours = progress.group_done(group.id.0)
                && groups.get(&group.id.0).map(|(name, _)| name) == Some(&group.name);
            if !ours {
                clashes.push(format!(
                    "group {} {:?}: {}",
                    group.id,
                    group.name,
                    what_clashes(
                        group.id.0,
                        &group.name,
                        groups.iter().map(|(id, (n, _))| (*id, n))
                    )
                ));
            }
        }
        if !clashes.is_empty() {
            bail!(
                "the target already holds users or groups with the ids or names of the seed's; \
                 nothing was written. Import into a database without them. In the target:\n  {}",
                clashes.join("\n  ")
            );
        }
        Ok(())
    }

    /// Commits `batch` with the checkpoint `make` gives once the new
    /// messages' ids are known; a dry run makes ids up.
    async fn commit(
        &mut self,
        batch: &ImportBatch,
        make: impl FnOnce(&[MessageId]) -> Checkpoint + Send,
    ) -> anyhow::Result<Vec<MessageId>> {
        let store = match &self.store {
            Some(store) if !self.dry_run => store,
            _ => {
                let ids = batch
                    .messages
                    .iter()
                    .map(|_| {
                        self.made_up -= 1;
                        MessageId(self.made_up)
                    })
                    .collect();
                return Ok(ids);
            }
        };
        let ids = store
            .import_batch(&self.source, batch, |ids| {
                // Plain data with string keys: serialising cannot fail.
                serde_json::to_string(&make(ids)).expect("a checkpoint serialises")
            })
            .await
            .context("writing a batch into the target (nothing of it was written)")?;
        Ok(ids)
    }
}

fn fresh() -> Checkpoint {
    Checkpoint {
        progress: Progress::START,
        report: Report::default(),
    }
}

/// Which seed row a target row clashes with.
fn what_clashes<'a>(id: i64, name: &str, seed: impl Iterator<Item = (i64, &'a String)>) -> String {
    let mut what = Vec::new();
    for (seed_id, seed_name) in seed {
        if seed_id == id {
            what.push(format!("has the id of the seed's {seed_name:?}"));
        } else if seed_name == name {
            what.push(format!("has the name of the seed's {seed_id}"));
        }
    }
    what.join(", ")
}

/// One run of an import, stage by stage.
struct Import<'a> {
    seed: &'a Seed,
    target: Target,
    report: Report,
    batch: usize,
    /// Seed users that are (or will be) imported, with their names.
    users: BTreeMap<i64, String>,
    /// Seed groups that are (or will be) imported.
    groups: BTreeMap<i64, (String, String)>,
    /// Whether to draw progress bars (stderr is a terminal).
    bars: bool,
}

impl Import<'_> {
    fn bar(&self, stage: &str, total: u64) -> ProgressBar {
        let target = if self.bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} rows {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(stage.to_owned());
        tracing::info!(stage, rows = total, "importing");
        bar
    }

    async fn commit(
        &mut self,
        batch: &ImportBatch,
        progress: impl FnOnce(&[MessageId]) -> Progress + Send,
    ) -> anyhow::Result<Vec<MessageId>> {
        let report = &self.report;
        self.target
            .commit(batch, |ids| Checkpoint {
                progress: progress(ids),
                report: report.clone(),
            })
            .await
    }

    async fn users(
        &mut self,
        users: &[source::SeedUser],
        after: i64,
        passwords: &Passwords,
        threads: usize,
    ) -> anyhow::Result<()> {
        let bar = self.bar("users", users.len() as u64);
        let names = ServiceConfig::default();
        let left: Vec<&source::SeedUser> = users.iter().filter(|u| u.id > after).collect();
        bar.set_position((users.len() - left.len()) as u64);
        for chunk in left.chunks(self.batch) {
            let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
                continue;
            };
            let mut batch = ImportBatch::default();
            let mut wanted = Vec::new();
            for user in chunk {
                match user_verdict(user, &names) {
                    Ok(name) => wanted.push((user.id, name)),
                    Err(why) => self.report.skip(why, 1, || format!("user {}", user.id)),
                }
            }
            if !self.target.dry_run {
                batch.users = self
                    .hash(first.id - 1, last.id, wanted, passwords, threads)
                    .await?;
            } else {
                batch.users = wanted
                    .into_iter()
                    .map(|(id, name)| ImportedUser {
                        id: UserId(id),
                        name,
                        password_hash: String::new(),
                    })
                    .collect();
            }
            self.report.users += batch.users.len() as u64;
            let after = last.id;
            self.commit(&batch, |_| Progress::Users { after }).await?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// The `wanted` users (ids in `after..=last`) with their seed passwords
    /// hashed, `threads` at a time; the passwords live only until hashed.
    async fn hash(
        &self,
        after: i64,
        last: i64,
        wanted: Vec<(i64, String)>,
        passwords: &Passwords,
        threads: usize,
    ) -> anyhow::Result<Vec<ImportedUser>> {
        let mut sent: BTreeMap<i64, Vec<u8>> = self
            .seed
            .passwords(after, last)
            .await?
            .into_iter()
            .collect();
        let jobs = wanted.into_iter().map(|(id, name)| {
            let password = sent.remove(&id).map(String::from_utf8);
            async move {
                let Some(Ok(password)) = password else {
                    bail!(
                        "user {id}'s password changed in the seed during the import; run it again"
                    );
                };
                let password_hash = passwords
                    .hash_password(&password)
                    .await
                    .with_context(|| format!("hashing user {id}'s password"))?;
                Ok(ImportedUser {
                    id: UserId(id),
                    name,
                    password_hash,
                })
            }
        });
        futures::stream::iter(jobs)
            .buffered(threads.max(1))
            .try_collect()
            .await
    }

    async fn friends(&mut self, mut after: (i64, i64)) -> anyhow::Result<()> {
        let bar = self.bar("friends", self.seed.count(Table::Friend).await?);
        loop {
            let rows = self.seed.friends(after, self.batch).await?;
            if rows.is_empty() {
                break;
            }
            let mut batch = ImportBatch::default();
            for r in &rows {
                let which = || format!("{} -> {}", r.user, r.friend);
                if r.count > 1 {
                    self.report
                        .skip(Skip::FriendDuplicate, (r.count - 1) as u64, which);
                }
                if r.user == r.friend {
                    self.report.skip(Skip::FriendSelf, 1, which);
                } else if !self.users.contains_key(&r.user) || !self.users.contains_key(&r.friend) {
                    self.report.skip(Skip::FriendDangling, 1, which);
                } else if r.mirrored {
                    self.report.skip(Skip::FriendMirror, 1, which);
                } else {
                    batch.friendships.push((UserId(r.user), UserId(r.friend)));
                }
                after = (r.user, r.friend);
                bar.inc(r.count.max(1) as u64);
            }
            self.report.friendships += batch.friendships.len() as u64;
            self.commit(&batch, |_| Progress::Friends { after }).await?;
        }
        bar.finish_and_clear();
        Ok(())
    }

    async fn groups(&mut self, groups: &[source::SeedGroup], after: i64) -> anyhow::Result<()> {
        let bar = self.bar("groups", groups.len() as u64);
        let left: Vec<&source::SeedGroup> = groups.iter().filter(|g| g.id > after).collect();
        bar.set_position((groups.len() - left.len()) as u64);
        for chunk in left.chunks(self.batch) {
            let Some(last) = chunk.last() else {
                continue;
            };
            let mut batch = ImportBatch::default();
            for group in chunk {
                match self.groups.get(&group.id) {
                    Some((name, desc)) => batch.groups.push(GroupInfo {
                        id: GroupId(group.id),
                        name: name.clone(),
                        desc: desc.clone(),
                    }),
                    None => {
                        let why = group_verdict(group, &ServiceConfig::default())
                            .err()
                            .unwrap_or(Skip::GroupInvalidText);
                        self.report.skip(why, 1, || format!("group {}", group.id));
                    }
                }
            }
            self.report.groups += batch.groups.len() as u64;
            let after = last.id;
            self.commit(&batch, |_| Progress::Groups { after }).await?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(())
    }

    async fn members(&mut self, mut after: (i64, i64)) -> anyhow::Result<()> {
        let bar = self.bar("members", self.seed.count(Table::Groupuser).await?);
        loop {
            let rows = self.seed.members(after, self.batch).await?;
            if rows.is_empty() {
                break;
            }
            let mut batch = ImportBatch::default();
            for r in &rows {
                let which = || format!("group {} user {}", r.group, r.user);
                if r.count > 1 {
                    self.report
                        .skip(Skip::MemberDuplicate, (r.count - 1) as u64, which);
                }
                if !self.groups.contains_key(&r.group) || !self.users.contains_key(&r.user) {
                    self.report.skip(Skip::MemberDangling, 1, which);
                } else {
                    let role = if r.creator {
                        Role::Creator
                    } else {
                        Role::Normal
                    };
                    batch.members.push((GroupId(r.group), UserId(r.user), role));
                }
                after = (r.group, r.user);
                bar.inc(r.count.max(1) as u64);
            }
            self.report.members += batch.members.len() as u64;
            self.commit(&batch, |_| Progress::Members { after }).await?;
        }
        bar.finish_and_clear();
        Ok(())
    }

    /// Offline messages from row `done` on (the rows before are imported),
    /// then the checkpoint that says the import is complete.
    async fn messages(
        &mut self,
        done: u64,
        mut planner: MessagePlanner,
        max_bytes: usize,
    ) -> anyhow::Result<()> {
        let bar = self.bar("messages", self.seed.count(Table::Offlinemessage).await?);
        bar.set_position(done);
        let cut_at = self.seed.message_column_length().await?;
        let started_ms = chrono::Utc::now().timestamp_millis();
        let seed = self.seed;
        let mut rows = std::pin::pin!(seed.messages());
        let mut batch = ImportBatch::default();
        let mut row: u64 = 0;
        let mut in_batch = 0;
        while let Some(m) = rows.try_next().await? {
            let this = row;
            row += 1;
            if this < done {
                continue;
            }
            bar.inc(1);
            let which = || format!("row {} (for user {})", this + 1, m.recipient);
            let SeedText::Text(text) = &m.text else {
                self.report.skip(Skip::MessageInvalidText, 1, which);
                continue;
            };
            let chat = match read_chat(text, m.chars, cut_at, max_bytes) {
                Ok(chat) => chat,
                Err(why) => {
                    self.report.skip(why, 1, which);
                    continue;
                }
            };
            let why = if !self.users.contains_key(&m.recipient) {
                Some(Skip::MessageUnknownRecipient)
            } else if !self.users.contains_key(&chat.sender.0) {
                Some(Skip::MessageUnknownSender)
            } else if chat.group.is_some_and(|g| !self.groups.contains_key(&g.0)) {
                Some(Skip::MessageUnknownGroup)
            } else {
                None
            };
            if let Some(why) = why {
                self.report.skip(why, 1, which);
                continue;
            }
            let sent_at_ms = chat.sent_at_ms.unwrap_or_else(|| {
                self.report.untimed_messages += 1;
                started_ms
            });
            planner.place(
                this,
                UserId(m.recipient),
                text,
                chat,
                sent_at_ms,
                &mut batch,
            );
            in_batch += 1;
            if in_batch >= self.batch {
                self.count_messages(&batch);
                let ids = self
                    .commit(&batch, |ids| Progress::Messages {
                        rows: row,
                        open: planner.checkpoint(ids),
                    })
                    .await?;
                planner.committed(&ids);
                batch = ImportBatch::default();
                in_batch = 0;
            }
        }
        self.count_messages(&batch);
        self.commit(&batch, |_| Progress::Done).await?;
        bar.finish_and_clear();
        Ok(())
    }

    fn count_messages(&mut self, batch: &ImportBatch) {
        self.report.messages += batch.messages.len() as u64;
        self.report.inbox_entries += batch.deliveries.len() as u64;
    }
}
