//! One interactive `roleout-admin` session on a real terminal (tmux)
//! against the managed slapd of a state directory, as an admin works:
//! `import` with a completed path, a look at the suite with `tree`,
//! `customize` with a completed suite name where a refused answer names
//! the rule and is asked again, `build`, `customize --show`; then a new
//! session recalls the last command from the history and runs it again.

use std::path::{Path, PathBuf};

use roleout_directory::LocalDirectory;

use crate::tmux::{Terminal, require_tmux};

const BINARY: &str = env!("CARGO_BIN_EXE_roleout-admin");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The prompt once the shell is connected, without its trailing space
/// (the screen does not keep trailing spaces).
const PROMPT: &str = "roleout ou=roleout,dc=example,dc=org:/>";

/// Starts the shell on `state` in the workspace, with this HOME.
fn shell(home: &Path, state: &Path) -> Terminal {
    let state = state.to_str().expect("a UTF-8 temporary path");
    Terminal::start(home, &workspace(), BINARY, &["--state-dir", state])
}

/// Types `line` and Enter once the prompt shows after `anchor`, so no key
/// reaches the program before its editor reads them.
fn run_after(terminal: &Terminal, anchor: &str, line: &str) {
    terminal.wait_for_after(anchor, PROMPT);
    terminal.type_text(line);
    terminal.keys(&["Enter"]);
}

#[test]
fn a_session_imports_customizes_with_a_retry_builds_and_remembers() {
    require_tmux();
    let state = tempfile::tempdir().expect("a temporary state directory");
    let home = tempfile::tempdir().expect("a temporary home");
    // The slapd roleoutd would be running; the shell attaches to it.
    let local = LocalDirectory::persistent(state.path().join("ldap")).expect("slapd starts");
    assert_eq!(local.suffix(), "dc=example,dc=org", "the prompt names it");
    let history_file = home.path().join("data/roleout/history");

    let terminal = shell(home.path(), state.path());
    // Before the first command the prompt names the state directory.
    terminal.wait_for(&format!("roleout {}:/>", state.path().display()));

    // Tab completes the path of the example catalog.
    terminal.type_text("import exam");
    terminal.keys(&["Tab"]);
    terminal.wait_for("/> import examples/");
    terminal.keys(&["Enter"]);
    terminal.wait_for("7 added, 0 updated, 0 unchanged");

    // The example catalog already holds a developer fileset of the mail
    // client; the tree shows it beside the default one.
    run_after(&terminal, "7 added, 0 updated, 0 unchanged", "tree domino");
    terminal.wait_for_after("/> tree domino", "suite domino 9.0.1");
    let screen = terminal.wait_for_after("/> tree domino", "  member domino-admin");
    let tree = &screen[screen.rfind("/> tree domino").expect("the command")..];
    let client = tree
        .split("\n  member ")
        .find(|member| member.starts_with("notes-client "))
        .expect("the mail client in the tree");
    assert!(
        client.contains("\n    product notes-client 9.0.1\n")
            && client.contains("\n      fileset: default, developer\n"),
        "{tree}"
    );

    // Tab completes the suite name from the directory.
    terminal.wait_for_after("/> tree domino", PROMPT);
    terminal.type_text("customize dom");
    terminal.keys(&["Tab"]);
    terminal.wait_for("/> customize domino");
    terminal.keys(&["Enter"]);
    terminal.wait_for(
        "Mail server (mail_server, string): The host name of your Domino mail server. [default: mail.example.org]",
    );
    // The default is typed in already; replace it with a bad host name.
    terminal.wait_for("Mail server: mail.example.org");
    terminal.keys(&["C-u"]);
    terminal.type_text("bad host!");
    terminal.keys(&["Enter"]);
    // The refusal names the variable and the rule, and the same question
    // comes again, with the default typed in again.
    let refusal = "Mail server: variable mail_server: the value \"bad host!\"";
    let screen = terminal.wait_for(refusal);
    let refused_line = screen
        .lines()
        .find(|line| line.starts_with(refusal))
        .expect("the refusal line");
    assert!(refused_line.ends_with("(rule: pattern)"), "{screen}");
    terminal.wait_for_after(refusal, "Mail server: mail.example.org");
    terminal.keys(&["C-u"]);
    // Another server than the default, so what is stored is what was
    // typed, not what was offered.
    terminal.type_text("mx1.example.org");
    terminal.keys(&["Enter"]);
    let screen = terminal.wait_for(
        "Mailbox size (mail_quota, choice): Large mailboxes need a manager's approval. [choices: standard, large] [default: standard]",
    );
    assert_eq!(
        screen.matches("Mail server (mail_server, string)").count(),
        1,
        "the question is asked again, not introduced again:\n{screen}"
    );
    terminal.wait_for("Mailbox size: standard");
    terminal.keys(&["C-u"]);
    terminal.type_text("large");
    terminal.keys(&["Enter"]);
    terminal.wait_for(
        "stored 2 value(s) for suite domino (suite-wide)\n  mail_quota = large\n  mail_server = mx1.example.org\n",
    );

    run_after(&terminal, "  mail_server = mx1.example.org", "build domino");
    // No role is defined yet: one role set, the machines without a role.
    let summary = "1 role set(s): 1 built, 0 unchanged, 0 failed";
    let screen = terminal.wait_for_after("/> build domino", summary);
    assert!(screen.contains("\ndomino default: built "), "{screen}");

    run_after(&terminal, summary, "customize domino --show");
    terminal.wait_for_after(
        "/> customize domino --show",
        "suite domino (suite-wide):\n  mail_quota = large\n  mail_server = mx1.example.org\n",
    );
    // Ctrl-D on an empty line leaves.
    terminal.wait_for_after("/> customize domino --show", PROMPT);
    terminal.keys(&["C-d"]);
    terminal.wait_for_exit();

    // The commands are remembered, the answers to questions are not.
    let history = std::fs::read_to_string(&history_file).expect("the history file");
    assert_eq!(
        history,
        "import examples/\ntree domino\ncustomize domino\nbuild domino\ncustomize domino --show\n"
    );

    // A new session: Up brings back the last command; it runs again and
    // finds the values the directory kept.
    let again = shell(home.path(), state.path());
    again.wait_for(&format!("roleout {}:/>", state.path().display()));
    again.keys(&["Up"]);
    again.wait_for("/> customize domino --show");
    again.keys(&["Enter"]);
    again.wait_for(
        "suite domino (suite-wide):\n  mail_quota = large\n  mail_server = mx1.example.org\n",
    );
    run_after(&again, "  mail_server = mx1.example.org", "exit");
    again.wait_for_exit();
    drop(local);
}
