//! The `roleout-admin` binary as admins and their scripts use it: one-shot
//! commands, `-c` and standard-input scripts (how errors stop them, their
//! exit statuses and one-line messages, answers to questions), `help`, the
//! suggestion for a mistyped command, and an interactive session on a real
//! terminal (tmux): completion, hidden password entry, Ctrl-C, history kept
//! across sessions without secrets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::tmux::{Terminal, require_tmux};

const BINARY: &str = env!("CARGO_BIN_EXE_roleout-admin");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn examples() -> PathBuf {
    workspace().join("examples")
}

/// Runs `roleout-admin` with `arguments`, `stdin` on its standard input,
/// HOME in a fresh directory (so no history of the person running the tests
/// is touched) and the given working directory.
fn admin(arguments: &[&str], stdin: &str) -> Output {
    let home = tempfile::tempdir().expect("a temporary home");
    let mut child = Command::new(BINARY)
        .args(arguments)
        .current_dir(workspace())
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env_remove("ROLEOUT_STATE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roleout-admin starts");
    let mut input = child.stdin.take().expect("a piped standard input");
    // The child may stop reading early (a failed script); that is its right.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().expect("roleout-admin ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn status(output: &Output) -> i32 {
    output
        .status
        .code()
        .expect("roleout-admin exits, not killed")
}

fn xml_examples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(examples())
        .expect("the examples directory")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".xml"))
        .collect();
    names.sort();
    names
}

#[test]
fn dash_c_runs_every_statement_in_order() {
    let output = admin(&["-c", "help; check examples/jre.xml\nhelp exit"], "");
    let stdout = text(&output.stdout);
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    let list = stdout.find("Commands:").expect("the command list");
    let check = stdout
        .find("examples/jre.xml: ok: product jre")
        .expect("check's report");
    let exit_help = stdout.find("Example: exit 3").expect("exit's help");
    assert!(list < check && check < exit_help, "{stdout}");
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn wildcards_expand_to_files() {
    let output = admin(&["-c", "check examples/*.xml"], "");
    let stdout = text(&output.stdout);
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    let names = xml_examples();
    assert!(names.len() > 1, "the examples hold several descriptors");
    for name in &names {
        assert!(
            stdout.contains(&format!("examples/{name}: ok:")),
            "{name} in {stdout}"
        );
    }
    assert!(
        stdout.contains(&format!(
            "{} file(s) checked: {} valid",
            names.len(),
            names.len()
        )),
        "{stdout}"
    );
}

#[test]
fn standard_input_scripts_skip_comments_and_stop_at_a_usage_error() {
    let script = "# check the catalog first\n\nhelp exit   # then the rest\ncheck --bogus examples/jre.xml\nhelp\n";
    let output = admin(&[], script);
    assert_eq!(status(&output), 2);
    assert_eq!(
        text(&output.stderr),
        "roleout-admin: line 4: check: unexpected argument '--bogus' found; try 'help check'\n"
    );
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Example: exit 3"), "{stdout}");
    assert!(
        !stdout.contains("Commands:"),
        "help after the error ran: {stdout}"
    );
}

#[test]
fn a_failed_command_stops_the_script_with_status_one() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let broken = directory.path().join("broken.xml");
    std::fs::write(&broken, "<product id=\"x\">\n  <unclosed>\n").expect("a broken descriptor");
    let script = format!(
        "check examples/jre.xml\ncheck '{}'\nhelp\n",
        broken.display()
    );
    let output = admin(&[], &script);
    assert_eq!(status(&output), 1);
    let stderr = text(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        "roleout-admin: line 2: check: 1 of 1 file(s) have errors"
    );
    // check's own diagnostics name the file before that.
    assert!(stderr.contains("broken.xml:"), "{stderr}");
    assert!(!text(&output.stdout).contains("Commands:"));
}

#[test]
fn mistyped_commands_get_a_suggestion() {
    let output = admin(&["-c", "help exit\nchekc examples/jre.xml"], "");
    assert_eq!(status(&output), 2);
    assert_eq!(
        text(&output.stderr),
        "roleout-admin: line 2: chekc: unknown command 'chekc'; did you mean 'check'?\n"
    );
    let unknown = admin(&["-c", "frobnicate"], "");
    assert_eq!(
        text(&unknown.stderr),
        "roleout-admin: line 1: frobnicate: unknown command 'frobnicate'; 'help' lists the commands\n"
    );
}

#[test]
fn broken_quoting_is_a_usage_error() {
    let output = admin(&["-c", "check 'examples/jre.xml"], "");
    assert_eq!(status(&output), 2);
    assert_eq!(
        text(&output.stderr),
        "roleout-admin: line 1: unclosed ' quote\n"
    );
}

#[test]
fn exit_stops_a_script_with_its_status() {
    let output = admin(&["-c", "help exit; exit 3; help"], "");
    assert_eq!(status(&output), 3);
    assert!(!text(&output.stdout).contains("Commands:"));
    let quit = admin(&[], "quit\nhelp\n");
    assert_eq!(status(&quit), 0);
    assert_eq!(text(&quit.stdout), "");
}

#[test]
fn help_lists_every_command_and_explains_each() {
    let output = admin(&["-c", "help"], "");
    let list = text(&output.stdout);
    assert_eq!(status(&output), 0);
    let names: Vec<&str> = list
        .lines()
        .skip(1)
        .filter(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .map(|name| name.trim_end_matches(','))
        .collect();
    assert_eq!(
        names,
        [
            "approve",
            "bind",
            "build",
            "cd",
            "check",
            "customize",
            "delete",
            "deploy",
            "diff",
            "disable",
            "enroll-token",
            "engine",
            "exit",
            "export",
            "find",
            "group",
            "help",
            "image",
            "import",
            "job",
            "ls",
            "machine",
            "new-product",
            "plan",
            "role",
            "show",
            "source",
            "status",
            "targets",
            "tree",
            "version"
        ],
        "{list}"
    );
    assert!(
        list.contains("  check         Check descriptor files offline"),
        "{list}"
    );
    for name in names {
        let explained = admin(&["help", name], "");
        let help = text(&explained.stdout);
        assert_eq!(status(&explained), 0, "help {name}");
        assert!(help.contains("Example: "), "help {name}: {help}");
        assert!(
            help.contains(&format!("Usage: {name}")),
            "help {name}: {help}"
        );
        // `help NAME` and `NAME --help` are the same text.
        let flag = admin(&["-c", &format!("{name} --help")], "");
        assert_eq!(text(&flag.stdout), help, "{name} --help");
    }
}

#[test]
fn one_shot_commands_run_and_fail_like_any_program() {
    let jre = examples().join("jre.xml");
    let ok = admin(&["check", &jre.display().to_string()], "");
    assert_eq!(status(&ok), 0, "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("ok: product jre"));
    let missing = admin(&["check", "no-such-file.xml"], "");
    assert_eq!(status(&missing), 1);
    assert!(text(&missing.stderr).ends_with("roleout-admin: check: 1 of 1 file(s) have errors\n"));
    let usage = admin(&["check"], "");
    assert_eq!(status(&usage), 2);
    let both = admin(&["-c", "help", "check", "x.xml"], "");
    assert_eq!(status(&both), 2);
    let bad_url = admin(&["--url", "http://ldap.example.org", "help"], "");
    assert_eq!(status(&bad_url), 2);
    assert!(text(&bad_url.stderr).contains("ldap://, ldaps:// or ldapi://"));
}

#[test]
fn questions_take_their_answers_from_standard_input() {
    // A script on standard input answers with its next lines.
    let output = admin(
        &[],
        "bind\ncn=admin,dc=example,dc=org\nnot-shown-secret\nhelp exit\n",
    );
    let stdout = text(&output.stdout);
    assert_eq!(status(&output), 0, "{}", text(&output.stderr));
    assert!(
        stdout.contains("bind: the next connection binds as cn=admin,dc=example,dc=org"),
        "{stdout}"
    );
    assert!(stdout.contains("Example: exit 3"), "{stdout}");
    assert!(!stdout.contains("not-shown-secret") && !text(&output.stderr).contains("not-shown"));
    // With -c the answers come from standard input; none is a cancel.
    let answered = admin(&["-c", "bind cn=reader"], "secret\n");
    assert_eq!(status(&answered), 0, "{}", text(&answered.stderr));
    let cancelled = admin(&["-c", "bind cn=reader"], "");
    assert_eq!(status(&cancelled), 1);
    assert_eq!(
        text(&cancelled.stderr),
        "roleout-admin: line 1: bind: cancelled\n"
    );
}

/// Starts `roleout-admin` in a terminal, in the workspace, with this HOME.
fn start_shell(home: &Path) -> Terminal {
    Terminal::start(home, &workspace(), BINARY, &[])
}

#[test]
fn interactive_session_completes_hides_secrets_and_remembers() {
    require_tmux();
    let home = tempfile::tempdir().expect("a temporary home");
    let prompt = "roleout ./roleout-state:/> ";
    let history_file = home.path().join("data/roleout/history");

    let terminal = start_shell(home.path());
    terminal.wait_for(prompt.trim_end());
    // A partial command and Tab: the name is completed, then a file name.
    terminal.type_text("chec");
    terminal.keys(&["Tab"]);
    terminal.wait_for("/> check");
    terminal.type_text("examples/jr");
    terminal.keys(&["Tab"]);
    terminal.wait_for("/> check examples/jre.xml");
    terminal.keys(&["Enter"]);
    terminal.wait_for("1 file(s) checked: 1 valid");

    // A failing command prints its error and the shell goes on.
    terminal.type_text("chekc");
    terminal.keys(&["Enter"]);
    terminal.wait_for("chekc: unknown command 'chekc'; did you mean 'check'?");

    // The password is asked without echo and never reaches the history.
    terminal.type_text("bind cn=admin,dc=example,dc=org");
    terminal.keys(&["Enter"]);
    terminal.wait_for("Password for cn=admin,dc=example,dc=org:");
    terminal.type_text("typed-secret-1");
    terminal.keys(&["Enter"]);
    let screen = terminal.wait_for("bind: the next connection binds as cn=admin,dc=example,dc=org");
    assert!(
        !screen.contains("typed-secret-1"),
        "the password was echoed:\n{screen}"
    );

    // Questions go through the editor, with the default typed in already;
    // the answers are not commands and stay out of the history.
    terminal.type_text("bind");
    terminal.keys(&["Enter"]);
    terminal.wait_for("Bind DN: cn=admin,dc=example,dc=org");
    terminal.keys(&["C-u"]);
    terminal.type_text("cn=reader");
    terminal.keys(&["Enter"]);
    terminal.wait_for("Password for cn=reader:");
    terminal.type_text("typed-secret-2");
    terminal.keys(&["Enter"]);
    let screen = terminal.wait_for("bind: the next connection binds as cn=reader");
    assert!(
        !screen.contains("typed-secret-2"),
        "the password was echoed:\n{screen}"
    );

    // Ctrl-C drops the line being typed; the shell goes on.
    terminal.type_text("never-run-line");
    terminal.keys(&["C-c"]);
    // Keys typed before the new prompt may be lost by the editor, as a
    // person would not type them; wait for it.
    terminal.wait_for(&format!("never-run-line\n{}", prompt.trim_end()));
    terminal.type_text("help");
    terminal.keys(&["Enter"]);
    terminal.wait_for("exit, quit");

    terminal.type_text("exit");
    terminal.keys(&["Enter"]);
    terminal.wait_for_exit();

    let history = std::fs::read_to_string(&history_file).expect("the history file");
    assert_eq!(
        history,
        "check examples/jre.xml\nchekc\nbind cn=admin,dc=example,dc=org\nbind\nhelp\nexit\n"
    );

    // A new session finds the history: Up brings back the latest lines.
    let again = start_shell(home.path());
    again.wait_for(prompt.trim_end());
    again.keys(&["Up"]);
    again.wait_for("/> exit");
    again.keys(&["Up"]);
    again.wait_for("/> help");
    again.keys(&["Up", "Up", "Up", "Up"]);
    again.wait_for("/> check examples/jre.xml");
    // Run it again: it moves to the end of the history, kept once.
    again.keys(&["Enter"]);
    again.wait_for("1 file(s) checked: 1 valid");
    // Ctrl-D on an empty line leaves.
    again.keys(&["C-d"]);
    again.wait_for_exit();
    let history = std::fs::read_to_string(&history_file).expect("the history file");
    assert_eq!(
        history,
        "chekc\nbind cn=admin,dc=example,dc=org\nbind\nhelp\nexit\ncheck examples/jre.xml\n"
    );
}
