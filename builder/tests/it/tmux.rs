//! A terminal for interactive tests of `roleout-admin`: a tmux server of
//! its own per test, keys sent as a person types them, and the screen
//! read back until the expected text shows (only a generous overall
//! deadline fails a test; nothing is timed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the screen may take to show what a test waits for.
const DEADLINE: Duration = Duration::from_secs(60);

/// Fails the test unless tmux can be run here: an interactive test that
/// skipped itself would pass without testing anything, so a machine
/// without tmux is a broken test setup (`scripts/setup.sh` installs it).
pub(crate) fn require_tmux() {
    let works = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        works,
        "tmux cannot be run: the interactive tests need it (scripts/setup.sh installs it)"
    );
}

/// Numbers the terminals, so each has a socket of its own.
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A tmux server of its own, running one program in a terminal.
pub(crate) struct Terminal {
    socket: PathBuf,
}

impl Terminal {
    /// Starts `program` with `arguments` in a new 150x40 tmux session, in
    /// `directory`, with HOME set to `home` and XDG_DATA_HOME to
    /// `home/data` (so no history of the person running the tests is
    /// touched). The tmux socket lives in `home`, one per terminal: a
    /// server whose program just left may still be shutting down on the
    /// socket of the previous terminal, and refuse a new session there.
    pub(crate) fn start(
        home: &Path,
        directory: &Path,
        program: &str,
        arguments: &[&str],
    ) -> Terminal {
        let number = STARTED.fetch_add(1, Ordering::Relaxed);
        let socket = home.join(format!("tmux-{number}.socket"));
        // The tmux server gives the program its own environment, less the
        // state directory a person running the tests may have set.
        let started = Command::new("tmux")
            .env_remove("ROLEOUT_STATE_DIR")
            .arg("-S")
            .arg(&socket)
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "150",
                "-y",
                "40",
                "-c",
            ])
            .arg(directory)
            .arg("-e")
            .arg(format!("HOME={}", home.display()))
            .arg("-e")
            .arg(format!("XDG_DATA_HOME={}", home.join("data").display()))
            .arg(program)
            .args(arguments)
            .output()
            .expect("tmux runs");
        assert!(
            started.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        Terminal { socket }
    }

    fn tmux(&self, arguments: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(arguments)
            .output()
            .expect("tmux runs")
    }

    /// Sends keys by their tmux names (`Enter`, `Tab`, `Up`, `C-u`).
    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut arguments = vec!["send-keys"];
        arguments.extend_from_slice(keys);
        assert!(self.tmux(&arguments).status.success(), "send-keys {keys:?}");
    }

    /// Typed text, sent literally.
    pub(crate) fn type_text(&self, text: &str) {
        assert!(
            self.tmux(&["send-keys", "-l", text]).status.success(),
            "typing {text:?}"
        );
    }

    /// Everything the terminal shows and has scrolled away, with wrapped
    /// lines joined.
    pub(crate) fn screen(&self) -> String {
        let captured = self.tmux(&["capture-pane", "-p", "-J", "-S", "-"]);
        String::from_utf8_lossy(&captured.stdout).into_owned()
    }

    /// Waits until the screen shows `expected` (the program may take its
    /// time; only the overall deadline fails the test).
    pub(crate) fn wait_for(&self, expected: &str) -> String {
        self.wait_until(&format!("{expected:?}"), |screen| screen.contains(expected))
    }

    /// Waits until the screen shows `expected` after the last place it
    /// shows `anchor`: what a command printed after a line that appears
    /// once, when the same text may already be on the screen from before.
    pub(crate) fn wait_for_after(&self, anchor: &str, expected: &str) -> String {
        self.wait_until(&format!("{expected:?} after {anchor:?}"), |screen| {
            screen
                .rfind(anchor)
                .is_some_and(|start| screen[start + anchor.len()..].contains(expected))
        })
    }

    fn wait_until(&self, what: &str, shows: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            if shows(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}; it shows:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the program has left and tmux closed its session.
    pub(crate) fn wait_for_exit(&self) {
        let deadline = Instant::now() + DEADLINE;
        while self.tmux(&["has-session"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "the program did not leave; the screen shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
