//! Child processes that cannot outlive the test binary.
//!
//! A `static` never runs `Drop`, and a test binary may end by `exit()` after
//! a failed test, by a panic outside a test, or by SIGKILL from a CI
//! timeout. Three layers cover that:
//! - `atexit` kills the children and removes the temp dir on every normal
//!   exit (libtest calls `exit(101)` on failures, `main` returns otherwise);
//! - `PR_SET_PDEATHSIG(SIGKILL)` makes the kernel kill them when their parent
//!   dies for any other reason. It fires when the *thread* that forked them
//!   exits, so they are spawned from a dedicated thread that never returns;
//! - a sweep at start removes temp dirs left by binaries that were SIGKILLed
//!   (and so could not run `atexit`).

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

static PIDS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static EXITING: AtomicBool = AtomicBool::new(false);
static REGISTER: Once = Once::new();

/// Temp-dir prefix; the pid in it lets a later run sweep orphans.
pub(crate) const DIR_PREFIX: &str = "testkit-";

/// True once the process is exiting: children dying then is expected.
pub(crate) fn exiting() -> bool {
    EXITING.load(Ordering::SeqCst)
}

/// Spawns `cmd` with stdout and stderr to `log`. Must be called from the
/// supervisor thread (see module doc).
pub(crate) fn spawn(mut cmd: Command, log: &Path) -> Result<Child> {
    register_atexit();
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    die_with_parent(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("spawning {:?}", cmd.get_program()))?;
    lock(&PIDS).push(child.id() as i32);
    Ok(child)
}

/// Makes the kernel SIGKILL the child when the spawning thread exits.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Kills a child now (failed start attempt) and forgets it.
pub(crate) fn kill(child: &mut Child) {
    let pid = child.id() as i32;
    let _ = child.kill();
    let _ = child.wait();
    lock(&PIDS).retain(|p| *p != pid);
}

/// Removes `dir` at exit.
pub(crate) fn remove_at_exit(dir: PathBuf) {
    register_atexit();
    lock(&DIRS).push(dir);
}

/// Loopback ports that are free right now, all distinct (the listeners are
/// held until every port is picked). A race with another process remains
/// possible; the caller retries a start whose child exits early.
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// Removes `testkit-<pid>-*` temp dirs whose process is gone.
pub(crate) fn sweep_orphans() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the pid exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn register_atexit() {
    REGISTER.call_once(|| {
        // SAFETY: registering a plain extern "C" fn.
        unsafe { libc::atexit(cleanup) };
    });
}

extern "C" fn cleanup() {
    EXITING.store(true, Ordering::SeqCst);
    // SIGKILL, not SIGTERM: the apiserver's graceful shutdown takes seconds
    // and the data is thrown away anyway. Newest first: apiserver, then etcd.
    let pids: Vec<i32> = lock(&PIDS).drain(..).rev().collect();
    for &pid in &pids {
        // SAFETY: pids of our own children (unreaped, so not reused).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &pids {
        // SAFETY: reap so the dirs are no longer in use; ECHILD is fine.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
    for dir in lock(&DIRS).drain(..) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A poisoned lock (a panic elsewhere) must not stop the cleanup.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `child` has exited, without reaping it (`WNOWAIT`), so its pid
/// stays reserved for [`cleanup`] and cannot be reused by another process.
pub(crate) fn has_exited(child: &Child) -> bool {
    // SAFETY: waitid on our own child with a zeroed siginfo out-parameter.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            child.id(),
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        rc == 0 && info.si_pid() != 0
    }
}

/// Sends SIGTERM to `child`, as a kubelet stopping a pod does; tests of a
/// graceful shutdown need it and `std::process::Child` only offers SIGKILL.
pub fn terminate(child: &Child) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: a signal to our own unreaped child, whose pid cannot be reused.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}
