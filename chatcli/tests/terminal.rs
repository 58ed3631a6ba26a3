//! `chatcli` in a pseudo-terminal, as a person uses it: tab completion, a
//! message arriving while a line is half typed, Ctrl-C, Ctrl-D, the
//! history file.

mod common;

use std::time::Duration;

use chatcore::client::Event;
use common::{Server, WAIT, login, password, register};
use rexpect::session::{Options, spawn_with_options};

#[test]
fn an_interactive_session_in_a_pseudo_terminal() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    let server = runtime.block_on(Server::start());
    let addr = server.addr;
    let (alice, bob) =
        runtime.block_on(async { (register(addr, "alice").await, register(addr, "bob").await) });
    let mut bob_client = runtime.block_on(login(addr, bob, "bob"));
    let home = tempfile::tempdir()?;
    let history = home.path().join("history");

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chatcli"));
    command
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--login")
        .arg(alice.to_string())
        .arg("--history")
        .arg(&history)
        .env("CHAT_PASSWORD", password("alice"))
        .env("HOME", home.path())
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    let mut p = spawn_with_options(
        command,
        Options::new()
            .timeout_ms(Some(WAIT.as_millis() as u64))
            .strip_ansi_escape_codes(true),
    )?;
    p.exp_string("current login user => id:1 name:alice")?;
    p.exp_string("alice> ")?;

    // Tab completes the seed's command word.
    p.send("addf\t")?;
    p.flush()?;
    p.exp_string("addfriend:")?;
    p.send(&format!("{bob}\r"))?;
    p.flush()?;
    p.exp_string(&format!("[{bob}]bob is now your friend"))?;

    // Tab completes the friend's id; a message arrives mid-line and the
    // half-typed line is drawn again, intact, below it.
    p.send("chat:\t")?;
    p.flush()?;
    p.exp_string(&format!("chat:{bob}:"))?;
    p.send("half typ")?;
    p.flush()?;
    p.exp_string("half typ")?;
    runtime.block_on(bob_client.send_to(alice, "hi alice, mid-line"))?;
    p.exp_string(&format!("[{bob}]bob said: hi alice, mid-line"))?;
    p.exp_string(&format!("alice> chat:{bob}:half typ"))?;
    p.send("ed\r")?;
    p.flush()?;
    p.exp_string(&format!("to [{bob}]bob: half typed"))?;
    // Bob may first hear that his friend alice came online.
    loop {
        match runtime.block_on(bob_client.next_event_within(WAIT)) {
            Some(Event::Presence { .. }) => continue,
            Some(Event::Message(m)) => assert_eq!(m.msg, "half typed"),
            other => panic!("bob expected the message, got {other:?}"),
        }
        break;
    }

    // Ctrl-C drops the line: what follows is a fresh command.
    p.send("garbage")?;
    p.flush()?;
    p.exp_string("garbage")?;
    p.send_control('c')?;
    // rustyline drops what was typed ahead of a Ctrl-C: wait for the prompt.
    p.exp_string("alice> ")?;
    p.send("/friends\r")?;
    p.flush()?;
    p.exp_string(&format!("{bob} bob online"))?;

    // Someone else befriends alice: her friend list (and so completion)
    // learns them from the presence push, without a /friends.
    let carol = runtime.block_on(register(addr, "carol"));
    let carol_client = runtime.block_on(login(addr, carol, "carol"));
    runtime.block_on(carol_client.add_friend(alice))?;
    p.exp_string(&format!("[{carol}]carol is online"))?;
    p.send(&format!("chat:{carol}\t"))?;
    p.flush()?;
    p.exp_string(&format!("chat:{carol}:"))?;
    p.send("hello carol\r")?;
    p.flush()?;
    p.exp_string(&format!("to [{carol}]carol: hello carol"))?;

    // Ctrl-D quits cleanly.
    p.send_control('d')?;
    p.exp_eof()?;
    let status = p.process().wait()?;
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );

    let kept = std::fs::read_to_string(&history)?;
    assert!(kept.contains(&format!("addfriend:{bob}")), "{kept}");
    assert!(kept.contains(&format!("chat:{bob}:half typed")), "{kept}");
    assert!(!kept.contains("garbage"), "{kept}");

    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), server.stop())
            .await
            .expect("server stops")
    });
    Ok(())
}
