//! The progress bar: a phase name and the live counters, redrawn a few
//! times a second on stderr (hidden when stderr is not a terminal).

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::metrics::Counters;

/// A progress display that follows a run's counters until dropped.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    stop: CancellationToken,
}

impl Progress {
    pub fn start(counters: Arc<Counters>, hidden: bool) -> Progress {
        let bar = if hidden {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix:>9} {wide_msg}")
                .expect("static progress template is valid"),
        );
        let stop = CancellationToken::new();
        let ticker_bar = bar.clone();
        let ticker_stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = ticker_stop.cancelled() => break,
                    _ = tick.tick() => ticker_bar.set_message(line(&counters)),
                }
            }
        });
        Progress { bar, stop }
    }

    /// Names the phase the run is in.
    pub fn phase(&self, name: &'static str) {
        self.bar.set_prefix(name);
        tracing::info!(phase = name, "phase");
    }

    pub fn finish(&self) {
        self.stop.cancel();
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn line(c: &Counters) -> String {
    let get = Counters::get;
    format!(
        "conn {} login {} failed {} | sent {} acked {} delivered {} refused {} | logins {} pings {} closed {}",
        get(&c.connected),
        get(&c.logged_in),
        get(&c.setup_failed),
        get(&c.sent),
        get(&c.acked),
        get(&c.delivered),
        get(&c.refused),
        get(&c.logins),
        get(&c.pings),
        get(&c.closed),
    )
}
