//! Subprocesses a test starts itself (the operator binary, say), with the
//! same no-leak guarantee as the control plane.

use std::process::{Child, Command};

/// A child process killed when this guard drops (the test ends or panics)
/// and, through `PR_SET_PDEATHSIG`, when the thread that spawned it exits or
/// the test binary dies — so a failed test never leaves it running.
#[derive(Debug)]
pub struct Guarded(pub Child);

impl Guarded {
    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Exit status if the child has already exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.0.try_wait()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `cmd` (stdio as configured on it) under a [`Guarded`].
///
/// The death signal is bound to the *calling thread*: spawn from the test's
/// own thread (a `#[tokio::test]` body or a task of its runtime), never
/// from `spawn_blocking` or another short-lived thread, or the child dies
/// when that thread ends (tokio retires idle blocking threads after 10 s).
pub fn spawn_guarded(cmd: &mut Command) -> std::io::Result<Guarded> {
    crate::process::die_with_parent(cmd);
    cmd.spawn().map(Guarded)
}
