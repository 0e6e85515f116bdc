// The commit Roleout's binaries are built from, for their `--version`: the
// build scripts of roleout-builder and roleout-installer are this file
// (`include!`), and pass the commit on as ROLEOUT_BUILD_COMMIT.
//
// The commit is `git rev-parse`'s; without git or a repository (a source
// tarball) it is the ROLEOUT_COMMIT environment variable's, else "unknown".
// The script runs again only when the commit can have changed: when HEAD,
// the branch it names or ROLEOUT_COMMIT changes, not on every build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ROLEOUT_COMMIT");
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            watch_head();
            commit
        }
        None => given_commit().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=ROLEOUT_BUILD_COMMIT={commit}");
}

/// What `git ARGS` prints, run in the crate's folder; `None` when git is
/// missing or fails (no repository, no commit yet).
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}

/// Asks Cargo to run this script again when HEAD moves: HEAD itself (a
/// checkout), and the branch it names (a commit), whether that is a loose
/// ref file or in packed-refs (then the folder its file would appear in).
fn watch_head() {
    let mut watched = Vec::new();
    watched.extend(git(&["rev-parse", "--git-path", "HEAD"]));
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(loose) = git(&["rev-parse", "--git-path", &branch]) {
            let mut path = PathBuf::from(loose);
            while !path.exists() && path.pop() {}
            watched.extend(path.to_str().map(str::to_owned));
        }
        watched.extend(git(&["rev-parse", "--git-path", "packed-refs"]));
    }
    for path in watched {
        // A path that does not exist would make Cargo run the script on
        // every build.
        if !path.is_empty() && std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// ROLEOUT_COMMIT, when it is set to something a version line can hold.
fn given_commit() -> Option<String> {
    let given = std::env::var("ROLEOUT_COMMIT").ok()?;
    let given = given.trim();
    if given.is_empty() {
        return None;
    }
    if given
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    {
        Some(given.to_owned())
    } else {
        println!("cargo:warning=ROLEOUT_COMMIT={given:?} is not a commit name; using \"unknown\"");
        None
    }
}
