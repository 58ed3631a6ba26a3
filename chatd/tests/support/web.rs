//! The web client (`chatd/web/`) in a real browser, through the test hooks
//! listed at the top of its `index.html`: what a user does on the page, and
//! what the page shows.

use std::cell::RefCell;
use std::time::Duration;

use chat_testkit::browser::{Browser, Key};
use serde_json::{Value, json};

use super::PASSWORD;

/// How long the page may take to come back after its node restarted: its
/// reconnect backoff grows to a few seconds.
pub const RECONNECT_WAIT: Duration = Duration::from_secs(30);

/// A kind of conversation, as the page names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Group => "group",
        }
    }
}

/// One message as the open conversation shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub mid: Option<i64>,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub text: String,
}

/// The chat page of one user in a browser of its own.
#[derive(Debug)]
pub struct ChatPage {
    pub browser: Browser,
    /// The page's address, `http://HOST:PORT/`.
    pub url: String,
    /// The user's id, once registered or logged in.
    pub id: Option<i64>,
}

impl ChatPage {
    /// A browser for `label` with the page at `url` loaded.
    pub async fn open(label: &str, url: &str) -> ChatPage {
        let browser = Browser::open(label).await;
        browser.goto(url).await;
        browser.element("#conn-state").await;
        ChatPage {
            browser,
            url: url.to_owned(),
            id: None,
        }
    }

    /// The user id, once known.
    pub fn id(&self) -> i64 {
        self.id.expect("a registered user")
    }

    /// Registers `name` (password [`PASSWORD`]) with the page's form and
    /// returns the new id it shows.
    pub async fn register(&mut self, name: &str) -> i64 {
        let b = &self.browser;
        b.fill("#register-name", name).await;
        b.fill("#register-password", PASSWORD).await;
        b.click("#register-submit").await;
        let id = b
            .wait(&format!("the id of the new user {name}"), || async {
                let shown = b.text("#register-result [data-testid=new-user-id]").await;
                Ok(shown.and_then(|id| id.trim().parse::<i64>().ok()))
            })
            .await;
        self.id = Some(id);
        id
    }

    /// Logs user `id` in with the page's form and waits until it is online.
    pub async fn login(&mut self, id: i64) {
        let b = &self.browser;
        b.fill("#login-id", &id.to_string()).await;
        b.fill("#login-password", PASSWORD).await;
        b.click("#login-submit").await;
        self.id = Some(id);
        self.wait_online().await;
    }

    /// Registers `name` and logs it in; returns its id.
    pub async fn sign_up(&mut self, name: &str) -> i64 {
        let id = self.register(name).await;
        self.login(id).await;
        id
    }

    /// Waits until the page says it is online as its user.
    pub async fn wait_online(&self) {
        self.wait_online_within(chat_testkit::browser::WAIT).await;
    }

    /// [`ChatPage::wait_online`] with a deadline of its own.
    pub async fn wait_online_within(&self, within: Duration) {
        let b = &self.browser;
        let me = self.id;
        b.wait_within("the page online as its user", within, || async {
            let state = self
                .eval(
                    "return window.chatApp ? window.chatApp.state() : null;",
                    vec![],
                )
                .await;
            let online = state["conn"] == "online";
            let mine = me.is_none_or(|me| state["me"]["id"] == me);
            Ok((online && mine).then_some(()))
        })
        .await;
        b.wait_text("#conn-state", "online").await;
    }

    /// Runs a script in the page.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.browser.eval(script, args).await
    }

    /// `window.chatApp.state()`.
    pub async fn state(&self) -> Value {
        self.eval("return window.chatApp.state();", vec![]).await
    }

    /// Looks `prefix` up in the search box and adds user `id` among the
    /// results as a friend; waits until the friend is listed.
    pub async fn befriend(&self, prefix: &str, id: i64) {
        let b = &self.browser;
        b.fill("#search-input", prefix).await;
        let result = format!("[data-testid=search-result][data-user-id=\"{id}\"]");
        b.element(&result).await;
        b.click(&format!("{result} [data-testid=add-friend]")).await;
        b.element(&conversation_css(Kind::User, id)).await;
        b.press("#search-input", Key::Escape).await;
    }

    /// Creates group `name` with the page's form; returns its id.
    pub async fn create_group(&self, name: &str) -> i64 {
        let b = &self.browser;
        let before = self.group_ids().await;
        b.fill("#create-group-name", name).await;
        b.click("#create-group-submit").await;
        b.wait(&format!("group {name} in the list"), || async {
            Ok(self
                .group_ids()
                .await
                .into_iter()
                .find(|id| !before.contains(id)))
        })
        .await
    }

    async fn group_ids(&self) -> Vec<i64> {
        let ids = self
            .eval(
                "return Array.from(document.querySelectorAll(\
                 '[data-testid=conversation][data-kind=group]'), e => Number(e.dataset.id));",
                vec![],
            )
            .await;
        serde_json::from_value(ids).unwrap_or_default()
    }

    /// Opens a conversation from the sidebar; waits until it is shown.
    pub async fn open_conversation(&self, kind: Kind, id: i64) {
        let b = &self.browser;
        b.click(&conversation_css(kind, id)).await;
        b.element(&format!(
            "#conversation[data-kind={}][data-id=\"{id}\"]",
            kind.name()
        ))
        .await;
    }

    /// Types `text` into the composer and presses Send.
    pub async fn send(&self, text: &str) {
        let b = &self.browser;
        b.fill("#composer", text).await;
        b.click("#send").await;
    }

    /// The messages of the open conversation, oldest first.
    pub async fn messages(&self) -> Vec<Shown> {
        let list = self
            .eval(
                "return Array.from(document.querySelectorAll('#conversation [data-testid=message]'), \
                 e => ({mid: e.dataset.mid ? Number(e.dataset.mid) : null, \
                        state: e.dataset.state || '', \
                        text: (e.querySelector('[data-testid=message-text]') || {}).textContent || ''}));",
                vec![],
            )
            .await;
        list.as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|m| Shown {
                        mid: m["mid"].as_i64(),
                        state: m["state"].as_str().unwrap_or_default().to_owned(),
                        text: m["text"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the open conversation shows exactly `texts`, in order,
    /// each stored (`sent`, with a `mid`), and returns them.
    pub async fn wait_messages(&self, texts: &[&str]) -> Vec<Shown> {
        self.wait_messages_within(texts, chat_testkit::browser::WAIT)
            .await
    }

    /// [`ChatPage::wait_messages`] with a deadline of its own.
    pub async fn wait_messages_within(&self, texts: &[&str], within: Duration) -> Vec<Shown> {
        let last = RefCell::new(Vec::new());
        let found = self
            .browser
            .try_wait_within(within, || async {
                let shown = self.messages().await;
                let done = shown.len() == texts.len()
                    && shown
                        .iter()
                        .zip(texts)
                        .all(|(m, t)| m.text == *t && m.state == "sent" && m.mid.is_some());
                *last.borrow_mut() = shown.clone();
                Ok(done.then_some(shown))
            })
            .await;
        found.unwrap_or_else(|_| {
            panic!(
                "{}: the conversation did not show {texts:?} (all sent) within {within:?}; it shows {:#?}",
                self.browser.label,
                last.borrow()
            )
        })
    }

    /// The unread count the sidebar shows for a conversation (0 when its
    /// badge is hidden or empty).
    pub async fn unread(&self, kind: Kind, id: i64) -> u64 {
        let count = self
            .eval(
                "const b = document.querySelector(arguments[0] + ' [data-testid=unread]'); \
                 return b && !b.hidden ? b.textContent.trim() : '';",
                vec![json!(conversation_css(kind, id))],
            )
            .await;
        count.as_str().and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    /// Waits until the sidebar shows `expected` unread for a conversation.
    pub async fn wait_unread(&self, kind: Kind, id: i64, expected: u64) {
        self.browser
            .wait(
                &format!("{expected} unread in {} {id}", kind.name()),
                || async { Ok((self.unread(kind, id).await == expected).then_some(())) },
            )
            .await;
    }

    /// Waits until the sidebar shows friend `id` as `state` (`online`,
    /// `offline`).
    pub async fn wait_presence(&self, id: i64, state: &str) {
        let css = format!(
            "{} [data-testid=presence]",
            conversation_css(Kind::User, id)
        );
        self.browser.wait_text(&css, state).await;
    }
}

/// The sidebar item of a conversation.
pub fn conversation_css(kind: Kind, id: i64) -> String {
    format!(
        "[data-testid=conversation][data-kind={}][data-id=\"{id}\"]",
        kind.name()
    )
}
