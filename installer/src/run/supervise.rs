//! A supervisor per command, so that a command outlives the agent and is
//! never run twice.
//!
//! An agent can be killed at any moment (`kill -9`, the out-of-memory
//! killer, a crash). Were the agent the command's parent, the command's end
//! would be known to nobody, and the next agent could only start the step
//! again, though the command may have finished or still be running. So each
//! command of an install step runs under a small supervisor,
//! `roleout supervise-step DIR …`, which:
//!
//! - holds an exclusive `flock` on `DIR/lock` for its whole life: whether
//!   a supervisor is alive for a command is a fact anyone can test, and it
//!   stops being true exactly when the supervisor ends, however it ends;
//! - starts the command in a cgroup of its own, named after the supervisor
//!   (so the sweep for commands of dead agents leaves it alone while it is
//!   supervised, see `tree`), and records where in `DIR/supervisor.json`;
//! - relays the command's output to the agent, keeping a bounded copy
//!   with secrets masked, and goes on reading when the agent is gone, so
//!   the command never meets a broken pipe;
//! - waits for the command and records how it ended in `DIR/end.json`,
//!   durably, before it exits. Signals the agent sends to stop a command
//!   reach the command; the supervisor blocks them and records how the
//!   command took them.
//!
//! The agent writes `DIR/agent.json` before it starts the supervisor: when
//! the command started, where its log stood, and a token the supervisor is
//! given on its command line. A supervisor whose token is not the one in
//! the directory runs nothing, so a supervisor that starts late, for a
//! directory that was given up and made anew, cannot run a second copy.
//!
//! An agent restarted during a step looks at the directory ([`look`])
//! before it runs the command: an end recorded is read, and the command is
//! not run again; a supervisor alive is waited for ([`wait_for`]); a
//! directory whose supervisor is gone without an end was interrupted along
//! with the command (a reboot, or the supervisor killed too), so what it
//! left running is ended and the command runs again.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{SigSet, Signal, killpg};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::capture::{BoundedBuffer, CaptureLimit, CapturedOutput};
use super::logwatch::LogStart;
use super::outcome::{Exit, StopReason};
use super::redact::Secrets;
use super::tree::Tree;
use crate::state::atomic::{PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, write_atomic};

/// The hidden `roleout` subcommand that supervises one command.
pub const SUBCOMMAND: &str = "supervise-step";

/// The exit code of a supervisor that ran nothing: its directory was given
/// up, or already records an end.
pub const RAN_NOTHING: i32 = 75;

const LOCK: &str = "lock";
const AGENT: &str = "agent.json";
const SUPERVISOR: &str = "supervisor.json";
const END: &str = "end.json";
const STOP: &str = "stop.json";
const RESERVE: &str = "reserve";

/// Space set aside before a command starts, freed for the record of its
/// end: a command that fills the disk still has its end recorded, and a
/// command whose end could not be recorded is not started.
const RESERVE_BYTES: i64 = 1 << 20;

/// The longest pause between two looks at a supervisor being waited for.
const POLL: Duration = Duration::from_millis(50);

/// What the agent records before it starts the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AgentRecord {
    /// The supervisor must be given this to run anything.
    pub(crate) token: String,
    /// When the command was started (ms since the Unix epoch).
    pub(crate) started_at_ms: u64,
    /// Where the command's log stood before it started.
    pub(crate) log: Option<LogStart>,
}

/// What the supervisor records before it starts the command.
#[derive(Debug, Serialize, Deserialize)]
struct SupervisorRecord {
    /// The supervisor's pid, also its process group's (and the command's).
    pid: i32,
    /// The command's cgroup, when it has one.
    cgroup: Option<PathBuf>,
}

/// How the command ended, recorded by its supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndRecord {
    /// How its process ended; none when it could not be started.
    pub(crate) exit: Option<Exit>,
    /// Why it could not be started.
    pub(crate) spawn_error: Option<String>,
    /// When it ended (ms since the Unix epoch).
    pub(crate) finished_at_ms: u64,
    /// What it printed on stdout, bounded, secrets masked.
    pub(crate) stdout: CapturedOutput,
    /// What it printed on stderr, bounded, secrets masked.
    pub(crate) stderr: CapturedOutput,
}

/// Why an agent stopped the command, recorded before it signals it.
#[derive(Debug, Serialize, Deserialize)]
struct StopRecord {
    reason: StopReason,
}

/// What a command's directory says about it.
#[derive(Debug)]
pub(crate) enum Found {
    /// Nothing was started there.
    Nothing,
    /// Its supervisor is alive: the command runs (or is being recorded).
    Running(AgentRecord),
    /// It ended, and how is recorded.
    Ended {
        agent: AgentRecord,
        end: EndRecord,
        stopped: Option<StopReason>,
    },
    /// It was started, and its supervisor is gone without recording an
    /// end. What it left running has been ended and the directory removed.
    Lost,
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not readable: {error}", path.display()),
            )
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes, PRIVATE_FILE_MODE).map_err(io::Error::other)
}

fn open_lock(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE_MODE)
        .open(dir.join(LOCK))
}

/// Makes `dir` for a new start and records the agent's part; returns the
/// record, whose token the supervisor is to be given.
pub(crate) fn prepare(dir: &Path, log: Option<LogStart>) -> io::Result<AgentRecord> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)?;
    let record = AgentRecord {
        token: format!(
            "{}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos()),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
        started_at_ms: now_ms(),
        log,
    };
    write_json(&dir.join(AGENT), &record)?;
    let reserve = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE)
        .open(dir.join(RESERVE))?;
    match nix::fcntl::posix_fallocate(&reserve, 0, RESERVE_BYTES) {
        // A file system that cannot set space aside records as it can.
        Ok(()) | Err(Errno::EOPNOTSUPP | Errno::EINVAL) => {}
        Err(errno) => {
            return Err(io::Error::new(
                io::Error::from(errno).kind(),
                format!(
                    "cannot set aside room in {} to record how the command ends: {errno}",
                    dir.display()
                ),
            ));
        }
    }
    Ok(record)
}

/// Records `end` in the room set aside for it; when even that is too
/// little for the output kept, the end is recorded without the output.
fn record_end(dir: &Path, end: &EndRecord) -> io::Result<()> {
    let _ = fs::remove_file(dir.join(RESERVE));
    match write_json(&dir.join(END), end) {
        Ok(()) => Ok(()),
        Err(error) => {
            let lost = CapturedOutput {
                text: format!("(the output was not kept: {error})"),
                total_bytes: end.stdout.total_bytes,
                omitted_bytes: end.stdout.total_bytes,
            };
            write_json(
                &dir.join(END),
                &EndRecord {
                    stdout: lost.clone(),
                    stderr: CapturedOutput {
                        total_bytes: end.stderr.total_bytes,
                        omitted_bytes: end.stderr.total_bytes,
                        ..lost
                    },
                    ..end.clone()
                },
            )
        }
    }
}

/// Whether a supervisor holds `dir` now.
fn held(dir: &Path) -> io::Result<bool> {
    match Flock::lock(open_lock(dir)?, FlockArg::LockExclusiveNonblock) {
        Ok(_released_on_drop) => Ok(false),
        Err((_, Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, errno)) => Err(errno.into()),
    }
}

/// Reads what `dir` says about its command; a lost start is cleaned up
/// here (see [`Found::Lost`]).
pub(crate) fn look(dir: &Path) -> io::Result<Found> {
    let Some(agent) = read_json::<AgentRecord>(&dir.join(AGENT))? else {
        // The agent stopped before it recorded a start: nothing ran.
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        return Ok(Found::Nothing);
    };
    if let Some(found) = ended(dir, &agent)? {
        return Ok(found);
    }
    let lock = match Flock::lock(open_lock(dir)?, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => return Ok(Found::Running(agent)),
        Err((_, errno)) => return Err(errno.into()),
    };
    // No supervisor lives: it either recorded the end after the first look
    // or died without one.
    if let Some(found) = ended(dir, &agent)? {
        return Ok(found);
    }
    end_leftovers(dir);
    // Removed while the lock is held: a supervisor that starts only now
    // finds no token to run for.
    fs::remove_dir_all(dir)?;
    drop(lock);
    Ok(Found::Lost)
}

fn ended(dir: &Path, agent: &AgentRecord) -> io::Result<Option<Found>> {
    let Some(end) = read_json::<EndRecord>(&dir.join(END))? else {
        return Ok(None);
    };
    let stopped = read_json::<StopRecord>(&dir.join(STOP))?.map(|stop| stop.reason);
    Ok(Some(Found::Ended {
        agent: agent.clone(),
        end,
        stopped,
    }))
}

/// The recorded end of `dir`'s command, if it has one.
pub(crate) fn read_end(dir: &Path) -> io::Result<Option<EndRecord>> {
    read_json(&dir.join(END))
}

/// The cgroup the supervisor of `dir` put its command in, if it recorded
/// one.
pub(crate) fn recorded_cgroup(dir: &Path) -> Option<PathBuf> {
    read_json::<SupervisorRecord>(&dir.join(SUPERVISOR))
        .ok()
        .flatten()
        .and_then(|record| record.cgroup)
}

/// Records why the agent stops the command, before it signals it.
pub(crate) fn record_stop(dir: &Path, reason: StopReason) {
    let _ = write_json(&dir.join(STOP), &StopRecord { reason });
}

/// Ends whatever the command of `dir` left in its cgroup.
fn end_leftovers(dir: &Path) {
    if let Some(cgroup) = recorded_cgroup(dir) {
        let tree = Tree::Cgroup(cgroup);
        tree.kill_all();
        tree.remove();
    }
}

/// Waits until the supervisor of `dir` (started by an agent that is gone)
/// ends. At `deadline` the command is stopped as its own agent would have
/// (`SIGTERM` to its process group, `grace`, then `SIGKILL` and its
/// cgroup); `check`, run every `interval`, saying true stops it too.
/// Returns why it was stopped, if it was.
pub(crate) fn wait_for(
    dir: &Path,
    deadline: Instant,
    grace: Duration,
    interval: Option<Duration>,
    mut check: impl FnMut() -> bool,
) -> io::Result<Option<StopReason>> {
    let mut next_check = interval.map(|interval| Instant::now() + interval);
    loop {
        if !held(dir)? {
            return Ok(None);
        }
        let now = Instant::now();
        if now >= deadline {
            stop(dir, grace, Some(StopReason::Timeout))?;
            return Ok(Some(StopReason::Timeout));
        }
        if let (Some(at), Some(interval)) = (next_check, interval) {
            if now >= at {
                if check() {
                    stop(dir, grace, Some(StopReason::FailureInLog))?;
                    return Ok(Some(StopReason::FailureInLog));
                }
                next_check = Some(now + interval);
            }
        }
        let until = next_check.map_or(deadline, |at| at.min(deadline));
        thread::sleep(until.saturating_duration_since(now).min(POLL));
    }
}

/// Stops a supervised command whose agent is gone, recording why when
/// there is a reason the command's report will give (a run given up has
/// none: its folder goes).
fn stop(dir: &Path, grace: Duration, reason: Option<StopReason>) -> io::Result<()> {
    if let Some(reason) = reason {
        record_stop(dir, reason);
    }
    let Some(record) = read_json::<SupervisorRecord>(&dir.join(SUPERVISOR))? else {
        return Ok(());
    };
    let group = Pid::from_raw(record.pid);
    // The supervisor holds the lock until it is gone, so its pid (and with
    // it the group id) cannot have been given to another process yet.
    let _ = killpg(group, Signal::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until && held(dir)? {
        thread::sleep(POLL.min(grace));
    }
    if held(dir)? {
        let _ = killpg(group, Signal::SIGKILL);
    }
    end_leftovers(dir);
    Ok(())
}

/// Ends every supervised command below `root` (the records of a run
/// that was given up) whose supervisor still runs; returns how many.
pub fn end_all_under(root: &Path) -> usize {
    let mut ended = 0;
    let mut folders = vec![root.to_owned()];
    // Bounded: run / step / command / attempt.
    for _ in 0..4 {
        let mut below = Vec::new();
        for folder in folders {
            for entry in fs::read_dir(&folder).into_iter().flatten().flatten() {
                let path = entry.path();
                if !path.is_dir() {
                    continue;
                }
                if path.join(AGENT).exists() {
                    if held(&path).unwrap_or(false) && stop(&path, STOP_GRACE, None).is_ok() {
                        ended += 1;
                    }
                } else {
                    below.push(path);
                }
            }
        }
        folders = below;
    }
    ended
}

/// How long a command of a run given up has between `SIGTERM` and
/// `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What a supervisor is told on its command line.
#[derive(Debug)]
pub struct SuperviseArgs {
    /// The command's directory.
    pub dir: PathBuf,
    /// The token the agent recorded in it.
    pub token: String,
    /// How long to wait for the output pipes after the command exited.
    pub drain: Duration,
    /// How much output to keep.
    pub capture: CaptureLimit,
    /// The command: program and arguments.
    pub argv: Vec<OsString>,
}

/// The supervisor process: runs `args.argv` as described in the module
/// documentation and returns the supervisor's exit code (0 once an end is
/// recorded, [`RAN_NOTHING`], or 70 when it could not do its part).
pub fn supervise(args: &SuperviseArgs) -> i32 {
    match supervise_inner(args) {
        Ok(code) => code,
        Err(error) => {
            let _ = writeln!(
                io::stderr(),
                "roleout {SUBCOMMAND}: {}: {error}",
                args.dir.display()
            );
            70
        }
    }
}

fn supervise_inner(args: &SuperviseArgs) -> io::Result<i32> {
    // The agent stops a command by signalling its process group, which is
    // this process's: those signals are for the command, and this process
    // lives on to record how the command took them. (A child starts with
    // no signal blocked: the standard library clears the mask.)
    let mut blocked = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        blocked.add(signal);
    }
    blocked.thread_block().map_err(io::Error::from)?;
    // The secrets come on standard input; an agent that died before it
    // sent them leaves them to be masked when the end is read.
    let mut sent = String::new();
    let _ = io::stdin().read_to_string(&mut sent);
    let secrets = Secrets::new(serde_json::from_str::<Vec<String>>(&sent).unwrap_or_default());

    let _lock = Flock::lock(open_lock(&args.dir)?, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io::Error::from(errno))?;
    let agent = read_json::<AgentRecord>(&args.dir.join(AGENT))?;
    if agent.is_none_or(|agent| agent.token != args.token) || args.dir.join(END).exists() {
        return Ok(RAN_NOTHING);
    }
    let (program, rest) = args
        .argv
        .split_first()
        .ok_or_else(|| io::Error::other("no command to run"))?;
    let tree = Tree::new();
    write_json(
        &args.dir.join(SUPERVISOR),
        &SupervisorRecord {
            pid: nix::unistd::getpid().as_raw(),
            cgroup: tree.cgroup().map(Path::to_owned),
        },
    )?;
    let (program, rest) = tree.wrap(
        &program.to_string_lossy(),
        rest.iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect(),
    );
    let spawned = Command::new(&program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            tree.remove();
            let empty = BoundedBuffer::new(args.capture).snapshot(&secrets);
            record_end(
                &args.dir,
                &EndRecord {
                    exit: None,
                    spawn_error: Some(error.to_string()),
                    finished_at_ms: now_ms(),
                    stdout: empty.clone(),
                    stderr: empty,
                },
            )?;
            return Ok(0);
        }
    };
    // The child's pid fits a pid_t: the kernel hands out no larger ones.
    let pid = Pid::from_raw(child.id() as i32);
    Tree::started(pid);
    let (done, drained) = mpsc::channel();
    let stdout = relay(
        child.stdout.take(),
        io::stdout(),
        args.capture,
        done.clone(),
    )?;
    let stderr = relay(child.stderr.take(), io::stderr(), args.capture, done)?;
    let status = child.wait()?;
    Tree::reaped(pid);
    // A process the command left in the background may hold the pipes.
    let _ = drained.recv_timeout(args.drain);
    tree.release();
    let exit = match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(status.into_raw()),
    };
    let snapshot = |buffer: &Arc<Mutex<BoundedBuffer>>| {
        buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .snapshot(&secrets)
    };
    record_end(
        &args.dir,
        &EndRecord {
            exit: Some(exit),
            spawn_error: None,
            finished_at_ms: now_ms(),
            stdout: snapshot(&stdout),
            stderr: snapshot(&stderr),
        },
    )?;
    Ok(0)
}

/// Copies `stream` to `sink` on a thread of its own, keeping a bounded copy;
/// once `sink` fails (the agent is gone) it only keeps the copy, so the
/// command can go on writing. Drops `done` at the stream's end.
fn relay(
    stream: Option<impl Read + Send + 'static>,
    mut sink: impl Write + Send + 'static,
    limit: CaptureLimit,
    done: mpsc::Sender<()>,
) -> io::Result<Arc<Mutex<BoundedBuffer>>> {
    let buffer = Arc::new(Mutex::new(BoundedBuffer::new(limit)));
    let Some(mut stream) = stream else {
        return Ok(buffer);
    };
    let kept = Arc::clone(&buffer);
    thread::Builder::new()
        .name("roleout-relay".to_owned())
        .spawn(move || {
            let _done = done;
            let mut relaying = true;
            let mut chunk = vec![0; 64 * 1024];
            loop {
                let count = match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(count) => count,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                kept.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(&chunk[..count]);
                if relaying {
                    relaying = sink
                        .write_all(&chunk[..count])
                        .and_then(|()| sink.flush())
                        .is_ok();
                }
            }
        })?;
    Ok(buffer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_an_agent_record_ran_nothing_and_is_cleared() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("attempt-1");
        fs::create_dir(&dir).unwrap();
        assert!(matches!(look(&dir).unwrap(), Found::Nothing));
        assert!(!dir.exists());
    }

    #[test]
    fn a_start_whose_supervisor_is_gone_without_an_end_is_lost_and_cleared() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("attempt-1");
        prepare(&dir, None).unwrap();
        assert!(matches!(look(&dir).unwrap(), Found::Lost));
        assert!(!dir.exists());
    }

    #[test]
    fn a_held_lock_means_running_and_a_recorded_end_is_read() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("attempt-1");
        let agent = prepare(&dir, None).unwrap();
        let lock = Flock::lock(open_lock(&dir).unwrap(), FlockArg::LockExclusive).unwrap();
        assert!(matches!(look(&dir).unwrap(), Found::Running(_)));
        let empty = BoundedBuffer::new(CaptureLimit::default()).snapshot(&Secrets::default());
        write_json(
            &dir.join(END),
            &EndRecord {
                exit: Some(Exit::Code(3)),
                spawn_error: None,
                finished_at_ms: agent.started_at_ms + 5,
                stdout: empty.clone(),
                stderr: empty,
            },
        )
        .unwrap();
        drop(lock);
        match look(&dir).unwrap() {
            Found::Ended { end, stopped, .. } => {
                assert_eq!(end.exit, Some(Exit::Code(3)));
                assert_eq!(stopped, None);
            }
            other => panic!("{other:?}"),
        }
    }
}
