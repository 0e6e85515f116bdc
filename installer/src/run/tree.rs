//! Finding every process a command started, wherever it went.
//!
//! A process group is not enough: a descendant that calls `setsid` (a
//! daemonizing installer helper does) leaves the group, and a timeout that
//! kills the group misses it. Where the kernel offers cgroup v2 and the
//! agent may make cgroups below its own (as root, or with `Delegate=yes`
//! under systemd), each command runs in a cgroup of its own,
//! `roleout-AGENTPID-N` next to the agent's: nothing a command starts can
//! leave it, `cgroup.kill` ends all of it at once, and an agent that was
//! killed leaves cgroups a later agent finds by name
//! ([`sweep_abandoned`]) and empties before it runs anything.
//!
//! Elsewhere the agent makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`): descendants orphaned by their parents are
//! re-parented to it instead of to init, so a stop can still find them as
//! its children. A killed agent's orphans are then out of reach; the
//! cgroup is the mechanism, the subreaper the fallback.
//!
//! The command enters its cgroup before it is executed: it is started
//! through `/bin/sh`, which writes its own pid into `cgroup.procs` and then
//! `exec`s the command (the same process, so the command's pid, exit
//! status and signals are unchanged), so not even its first instant is
//! spent outside.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The prefix of every cgroup a command runs in.
const PREFIX: &str = "roleout-";

/// The script that moves the shell into the cgroup named by `$0` and
/// becomes the command. A move the kernel refuses (a cgroup this user may
/// make but not enter) leaves the command in the agent's cgroup, still in
/// its own process group: it runs rather than fail on its container.
const ENTER: &str = "{ echo $$ > \"$0\"; } 2>/dev/null; exec \"$@\"";

/// The longest a stop waits for a cgroup to empty after `SIGKILL`.
const EMPTY_DEADLINE: Duration = Duration::from_secs(10);

/// Where this process's cgroup v2 directory is, when there is one it may
/// make cgroups in.
fn own_cgroup() -> Option<&'static Path> {
    static OWN: OnceLock<Option<PathBuf>> = OnceLock::new();
    OWN.get_or_init(|| {
        let mount = cgroup2_mount()?;
        let relative = fs::read_to_string("/proc/self/cgroup")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("0::").map(str::to_owned))?;
        let path = mount.join(relative.trim_start_matches('/'));
        // Whether cgroups can be made here is learnt by making one.
        let probe = path.join(format!("{PREFIX}{}-probe", std::process::id()));
        match fs::create_dir(&probe) {
            Ok(()) => {
                let _ = fs::remove_dir(&probe);
                Some(path)
            }
            Err(_) => None,
        }
    })
    .as_deref()
}

/// The mount point of the cgroup v2 hierarchy.
fn cgroup2_mount() -> Option<PathBuf> {
    crate::mounts::table()
        .into_iter()
        .find(|mount| mount.fs_type == "cgroup2")
        .map(|mount| mount.point)
}

/// How one command's processes are kept track of.
#[derive(Debug)]
pub(crate) enum Tree {
    /// A cgroup of its own (removed when the command is over).
    Cgroup(PathBuf),
    /// This process is a child subreaper; the command's orphans become
    /// its children.
    Subreaper,
}

impl Tree {
    /// A new cgroup for one command where possible, else the subreaper.
    pub(crate) fn new() -> Tree {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        if let Some(own) = own_cgroup() {
            let number = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = own.join(format!("{PREFIX}{}-{number}", std::process::id()));
            if fs::create_dir(&path).is_ok() {
                return Tree::Cgroup(path);
            }
        }
        Tree::subreaper()
    }

    /// This process as a child subreaper: the orphans of what it started
    /// become its children.
    pub(crate) fn subreaper() -> Tree {
        static SUBREAPER: OnceLock<bool> = OnceLock::new();
        SUBREAPER.get_or_init(|| nix::sys::prctl::set_child_subreaper(true).is_ok());
        Tree::Subreaper
    }

    /// The cgroup, when the command is kept in one.
    pub(crate) fn cgroup(&self) -> Option<&Path> {
        match self {
            Tree::Cgroup(path) => Some(path),
            Tree::Subreaper => None,
        }
    }

    /// Whether the command is kept in a cgroup.
    pub(crate) fn is_cgroup(&self) -> bool {
        matches!(self, Tree::Cgroup(_))
    }

    /// The program and arguments that run `program` with `arguments` inside
    /// this tree: through `/bin/sh`, which enters the cgroup and `exec`s.
    pub(crate) fn wrap(&self, program: &str, arguments: Vec<String>) -> (String, Vec<String>) {
        match self {
            Tree::Cgroup(path) => {
                let mut wrapped = vec![
                    "-c".to_owned(),
                    ENTER.to_owned(),
                    path.join("cgroup.procs").display().to_string(),
                    program.to_owned(),
                ];
                wrapped.extend(arguments);
                (super::SHELL.to_owned(), wrapped)
            }
            Tree::Subreaper => (program.to_owned(), arguments),
        }
    }

    /// Sends `signal` to every process of the tree (the command itself
    /// too, where it is a member).
    pub(crate) fn signal_all(&self, signal: Signal) {
        for pid in self.strays() {
            let _ = kill(pid, signal);
        }
    }

    /// The processes in the tree: the cgroup's members, or the orphans
    /// re-parented to this process (its children that are not a command
    /// it started).
    fn strays(&self) -> Vec<Pid> {
        match self {
            Tree::Cgroup(path) => cgroup_members(path),
            Tree::Subreaper => {
                let leaders = lock(leaders());
                children_of(nix::unistd::getpid())
                    .into_iter()
                    .filter(|pid| !leaders.contains(&pid.as_raw()))
                    .collect()
            }
        }
    }

    /// Kills whatever is left in the tree and waits (bounded) until it is
    /// gone: `cgroup.kill` where the kernel has it, else `SIGKILL` to each
    /// member until none is left. The command itself is the caller's to
    /// signal and reap.
    pub(crate) fn kill_all(&self) {
        match self {
            Tree::Cgroup(path) => kill_cgroup(path),
            Tree::Subreaper => {
                let deadline = Instant::now() + EMPTY_DEADLINE;
                loop {
                    let orphans = self.strays();
                    if orphans.is_empty() || Instant::now() >= deadline {
                        break;
                    }
                    for orphan in orphans {
                        let _ = kill(orphan, Signal::SIGKILL);
                        // Re-parented to this process: its to reap.
                        let _ = nix::sys::wait::waitpid(
                            orphan,
                            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                        );
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// Records `pid` as a command this process started (the subreaper
    /// must not take it for an orphan).
    pub(crate) fn started(pid: Pid) {
        lock(leaders()).insert(pid.as_raw());
    }

    /// Forgets `pid` once it is reaped.
    pub(crate) fn reaped(pid: Pid) {
        lock(leaders()).remove(&pid.as_raw());
    }

    /// Lets go of the tree after the command ended on its own: processes it
    /// left running on purpose (a daemon it started) are moved to the
    /// agent's cgroup, and the command's cgroup is removed.
    pub(crate) fn release(&self) {
        if let Tree::Cgroup(path) = self {
            if let Some(parent) = path.parent() {
                for pid in cgroup_members(path) {
                    let _ = fs::write(parent.join("cgroup.procs"), pid.to_string());
                }
            }
            let _ = fs::remove_dir(path);
        }
    }

    /// Removes the cgroup once it is empty (after [`Tree::kill_all`]).
    pub(crate) fn remove(&self) {
        if let Tree::Cgroup(path) = self {
            let _ = fs::remove_dir(path);
        }
    }
}

/// The commands this process started and has not reaped yet.
fn leaders() -> &'static Mutex<HashSet<i32>> {
    static LEADERS: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    LEADERS.get_or_init(|| Mutex::new(HashSet::new()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn cgroup_members(path: &Path) -> Vec<Pid> {
    fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse::<i32>().ok())
        .map(Pid::from_raw)
        .collect()
}

fn kill_cgroup(path: &Path) {
    let has_kill = fs::write(path.join("cgroup.kill"), "1").is_ok();
    let deadline = Instant::now() + EMPTY_DEADLINE;
    loop {
        let members = cgroup_members(path);
        if members.is_empty() || Instant::now() >= deadline {
            return;
        }
        if !has_kill {
            for pid in members {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids whose parent is `parent`, from `/proc`.
fn children_of(parent: Pid) -> Vec<Pid> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| parent_of(*pid) == Some(parent.as_raw()))
        .map(Pid::from_raw)
        .collect()
}

/// The parent pid in `/proc/PID/stat` (the field after the `)` that ends
/// the command name, which may itself hold spaces and parentheses).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Ends every command an agent that is gone left running: the cgroups
/// `roleout-PID-N` next to this agent's whose PID is not a live process.
/// Returns how many processes were killed. A no-op without cgroups.
pub fn sweep_abandoned() -> io::Result<usize> {
    let Some(own) = own_cgroup() else {
        return Ok(0);
    };
    let mut killed = 0;
    for entry in fs::read_dir(own)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|name| name.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(owner) = rest
            .split('-')
            .next()
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = owner == nix::unistd::getpid().as_raw()
            || Path::new(&format!("/proc/{owner}")).exists();
        if alive {
            continue;
        }
        let path = entry.path();
        killed += cgroup_members(&path).len();
        kill_cgroup(&path);
        let _ = fs::remove_dir(&path);
    }
    Ok(killed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_is_read_past_a_command_name_with_parentheses() {
        let own = nix::unistd::getpid().as_raw();
        let parent = nix::unistd::getppid().as_raw();
        assert_eq!(parent_of(own), Some(parent));
    }

    #[test]
    fn the_wrapper_enters_the_cgroup_and_execs_the_command() {
        let tree = Tree::Cgroup(PathBuf::from("/sys/fs/cgroup/x/roleout-1-0"));
        let (program, arguments) = tree.wrap("/usr/bin/printf", vec!["%s".to_owned()]);
        assert_eq!(program, "/bin/sh");
        assert_eq!(
            arguments,
            [
                "-c",
                ENTER,
                "/sys/fs/cgroup/x/roleout-1-0/cgroup.procs",
                "/usr/bin/printf",
                "%s"
            ]
        );
        let (program, arguments) = Tree::Subreaper.wrap("/usr/bin/true", Vec::new());
        assert_eq!((program.as_str(), arguments.len()), ("/usr/bin/true", 0));
    }
}
