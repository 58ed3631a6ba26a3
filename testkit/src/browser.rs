//! Headless Chromium driven over WebDriver, for tests of a web page: one
//! private chromedriver per test binary (started on first use, stopped
//! when [`crate::harness::run`] ends), one browser session per
//! [`Browser`], and, when a test fails, a screenshot and the HTML of every
//! window it had open under `target/browser-failures/<test>/`.
//!
//! Tests that open one need [`Service::Chromedriver`].

use std::collections::HashSet;
use std::fs::File;
use std::future::Future;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use fantoccini::key::Key;

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::Service;

/// How long a wait for the page lasts unless the test says otherwise.
pub const WAIT: Duration = Duration::from_secs(10);

/// The browser window: big enough for the page's two-pane layout.
const WINDOW_SIZE: &str = "1280,800";

/// The chromedriver this test binary shares between its tests.
static DRIVER: Mutex<Option<Driver>> = Mutex::new(None);

fn driver() -> MutexGuard<'static, Option<Driver>> {
    DRIVER.lock().unwrap_or_else(|p| p.into_inner())
}

/// A chromedriver of the test binary's own on a free port of 127.0.0.1.
#[derive(Debug)]
struct Driver {
    child: Child,
    url: String,
    /// The Chromium next to it, when there is one (Debian installs both in
    /// one directory); else chromedriver looks for Chrome itself.
    chromium: Option<PathBuf>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let binary = PathBuf::from(Service::Chromedriver.value());
        let dir = tempfile::Builder::new()
            .prefix("chat-chromedriver-")
            .tempdir()
            .expect("a temporary directory");
        let log = dir.path().join("chromedriver.log");
        let port = crate::free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("stderr.log")).expect("a log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("{} runs: {e}", binary.display()));
        let chromium = binary
            .parent()
            .map(|bin| bin.join("chromium"))
            .filter(|path| path.exists());
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited ({status}):\n{}", driver.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port}:\n{}",
                driver.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        driver
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// What a new session asks for: headless Chromium fit to run as root
    /// in a container.
    fn capabilities(&self) -> serde_json::Map<String, Value> {
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-renderer-backgrounding",
                "--disable-background-timer-throttling",
                "--disable-backgrounding-occluded-windows",
                format!("--window-size={WINDOW_SIZE}"),
            ],
        });
        if let Some(chromium) = &self.chromium {
            options["binary"] = json!(chromium.display().to_string());
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "timeouts": {"implicit": 0, "pageLoad": 20_000, "script": 10_000},
        });
        match capabilities {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SIGTERM first: chromedriver then ends the browsers it started.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops the shared chromedriver, if one was started (the harness calls
/// this after the last test).
pub fn stop_driver() {
    let stopped = driver().take();
    drop(stopped);
}

/// The chromedriver's URL and the capabilities of a new session.
fn session_request() -> (String, serde_json::Map<String, Value>) {
    let mut driver = driver();
    let driver = driver.get_or_insert_with(Driver::start);
    (driver.url.clone(), driver.capabilities())
}

/// One browser (a WebDriver session: its own profile, cookies and
/// storage) for one simulated user. Dropping it closes it; when the test
/// is failing, it first saves every window it has open (see the module
/// docs).
#[derive(Debug)]
pub struct Browser {
    client: Client,
    session: String,
    driver_url: String,
    /// Who it is in the test (a user's name), for file names and messages.
    pub label: String,
    test: String,
}

impl Browser {
    /// Opens a new headless Chromium window for `label`.
    pub async fn open(label: &str) -> Browser {
        let (driver_url, capabilities) = session_request();
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .unwrap_or_else(|e| {
                let log = driver().as_ref().map(Driver::log_tail).unwrap_or_default();
                panic!("a browser session for {label}: {e}\nchromedriver log:\n{log}")
            });
        let session = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("a session id");
        Browser {
            client,
            session,
            driver_url,
            label: label.to_owned(),
            test: crate::harness::current_test().unwrap_or_else(|| "unnamed".to_owned()),
        }
    }

    /// The WebDriver client, for what these helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Loads `url` and waits until the document has loaded.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{}: load {url}: {e}", self.label));
    }

    /// Reloads the page.
    pub async fn reload(&self) {
        self.client
            .refresh()
            .await
            .unwrap_or_else(|e| panic!("{}: reload: {e}", self.label));
    }

    /// The elements that match `css` now (maybe none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: find {css}: {e}", self.label))
    }

    /// Polls `probe` until it returns `Some`, within `within`; a WebDriver
    /// error (an element replaced while it was read, say) counts as "not
    /// yet". Panics with `what`, and the last error, when time is up.
    pub async fn wait_within<T, F, Fut>(&self, what: &str, within: Duration, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, CmdError>>,
    {
        match self.try_wait_within(within, probe).await {
            Ok(value) => value,
            Err(Some(e)) => panic!(
                "{}: not within {within:?}: {what} (last error: {e})",
                self.label
            ),
            Err(None) => panic!("{}: not within {within:?}: {what}", self.label),
        }
    }

    /// [`Browser::wait_within`] that returns, instead of panicking, the
    /// last error (if any) when time is up.
    pub async fn try_wait_within<T, F, Fut>(
        &self,
        within: Duration,
        mut probe: F,
    ) -> Result<T, Option<CmdError>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, CmdError>>,
    {
        let deadline = Instant::now() + within;
        let mut last_error = None;
        loop {
            match probe().await {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
            if Instant::now() >= deadline {
                return Err(last_error);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`Browser::wait_within`] for [`WAIT`].
    pub async fn wait<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, CmdError>>,
    {
        self.wait_within(what, WAIT, probe).await
    }

    /// The first element matching `css`, once there is one.
    pub async fn element(&self, css: &str) -> Element {
        self.wait(&format!("an element {css}"), || async {
            Ok(self
                .client
                .find_all(Locator::Css(css))
                .await?
                .into_iter()
                .next())
        })
        .await
    }

    /// The first element matching `css`, once it is shown and enabled.
    pub async fn usable(&self, css: &str) -> Element {
        self.wait(&format!("{css} shown and enabled"), || async {
            for element in self.client.find_all(Locator::Css(css)).await? {
                if element.is_displayed().await? && element.is_enabled().await? {
                    return Ok(Some(element));
                }
            }
            Ok(None)
        })
        .await
    }

    /// Clicks `css` once it is shown and enabled.
    pub async fn click(&self, css: &str) {
        self.wait(&format!("a click on {css}"), || async {
            let element = self.usable(css).await;
            element.click().await.map(Some)
        })
        .await
    }

    /// Replaces the value of the input `css` with `text`, typed as keys.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.usable(css).await;
        element
            .clear()
            .await
            .unwrap_or_else(|e| panic!("{}: clear {css}: {e}", self.label));
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("{}: type into {css}: {e}", self.label));
    }

    /// Presses `key` in `css` (once it is shown and enabled).
    pub async fn press(&self, css: &str, key: Key) {
        let element = self.usable(css).await;
        element
            .send_keys(&char::from(key).to_string())
            .await
            .unwrap_or_else(|e| panic!("{}: press {key:?} in {css}: {e}", self.label));
    }

    /// The text of the first element matching `css`, or `None` when there
    /// is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        let found = self.find_all(css).await;
        match found.first() {
            Some(element) => element.text().await.ok(),
            None => None,
        }
    }

    /// Waits until the first element matching `css` reads `expected`
    /// (whitespace at either end aside).
    pub async fn wait_text(&self, css: &str, expected: &str) {
        self.wait(&format!("{css} reading {expected:?}"), || async {
            let Some(element) = self
                .client
                .find_all(Locator::Css(css))
                .await?
                .into_iter()
                .next()
            else {
                return Ok(None);
            };
            Ok((element.text().await?.trim() == expected).then_some(()))
        })
        .await
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page
    /// and returns what it returns.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{}: script failed: {e}\n{script}", self.label))
    }

    /// A PNG of the window as it is now.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("{}: screenshot: {e}", self.label))
    }

    /// Where a failed test's files go: `target/browser-failures/<test>/`,
    /// emptied of an earlier run's files the first time in this process.
    fn failure_dir(&self) -> PathBuf {
        static CLEARED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
        let dir = target_dir().join("browser-failures").join(&self.test);
        let mut cleared = CLEARED.lock().unwrap_or_else(|p| p.into_inner());
        if cleared
            .get_or_insert_with(HashSet::new)
            .insert(self.test.clone())
        {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let _ = std::fs::create_dir_all(&dir);
        dir
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        let dir = failing.then(|| self.failure_dir());
        // The session's own client runs on the test's runtime, which is
        // busy running this drop: a client of our own, on a thread of our
        // own, takes over the session.
        let (url, session, label) = (&self.driver_url, &self.session, &self.label);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => return eprintln!("{label}: no runtime to close the browser: {e}"),
                };
                runtime.block_on(async {
                    let client =
                        match Client::with_existing_session(url, session, HttpConnector::new())
                            .await
                        {
                            Ok(client) => client,
                            Err(e) => return eprintln!("{label}: browser session lost: {e}"),
                        };
                    if let Some(dir) = &dir {
                        save_windows(&client, dir, label).await;
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
                });
            });
        });
    }
}

/// Saves a PNG and the HTML of every window of `client` in `dir`.
async fn save_windows(client: &Client, dir: &Path, label: &str) {
    let windows = client.windows().await.unwrap_or_default();
    for (i, window) in windows.into_iter().enumerate() {
        if client.switch_to_window(window).await.is_err() {
            continue;
        }
        let name = if i == 0 {
            label.to_owned()
        } else {
            format!("{label}-{i}")
        };
        match client.screenshot().await {
            Ok(png) => {
                let path = dir.join(format!("{name}.png"));
                match std::fs::write(&path, png) {
                    Ok(()) => eprintln!("{label}: screenshot saved to {}", path.display()),
                    Err(e) => eprintln!("{label}: could not save {}: {e}", path.display()),
                }
            }
            Err(e) => eprintln!("{label}: no screenshot: {e}"),
        }
        if let Ok(html) = client.source().await {
            let _ = std::fs::write(dir.join(format!("{name}.html")), html);
        }
    }
}

/// The build's `target` directory: a test binary runs from
/// `target/<profile>/deps/`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_owned))
        .filter(|dir| dir.join("CACHEDIR.TAG").exists() || dir.ends_with("target"))
        .unwrap_or_else(std::env::temp_dir)
}
