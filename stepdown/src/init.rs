//! `--init`: stay as PID 1 after the drop (holding no privileges), run the
//! command as a child, forward signals to it, reap every zombie, and exit
//! with the child's status. What tini and dumb-init do, without a second binary.

use crate::report::{Vals, NO};
use crate::sys;

const SIGHUP: u32 = 1;
const SIGINT: u32 = 2;
const SIGQUIT: u32 = 3;
const SIGUSR1: u32 = 10;
const SIGUSR2: u32 = 12;
const SIGTERM: u32 = 15;
const SIGCHLD: u32 = 17;
const SIGTTOU: u32 = 22;
const SIGWINCH: u32 = 28;

const FORWARDED: [u32; 7] = [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH];

fn bit(sig: u32) -> u64 {
    1 << (sig - 1)
}

/// The exit status a shell would show: the code, or 128+N for signal N.
pub fn exit_code(status: i32) -> i32 {
    let signal = status & 0x7f;
    if signal == 0 {
        (status >> 8) & 0xff
    } else {
        128 + signal
    }
}

/// Forks; the child gets the original signal mask back and calls `exec`
/// (which does not return), the parent supervises it until it exits.
pub fn supervise(exec: impl FnOnce()) -> ! {
    let set = FORWARDED.iter().fold(bit(SIGCHLD), |s, sig| s | bit(*sig));
    // Blocked signals still reach PID 1 and wait in the queue for sigwait;
    // blocking them before the fork means none is lost in between.
    let old = match sys::sigprocmask(sys::SIG_BLOCK, set) {
        Ok(old) => old,
        Err(e) => crate::fail(b"--init: sigprocmask failed%e", Vals { e: Some(e), ..NO }),
    };
    // An inherited "ignore" would make the kernel reap children itself and never say so.
    let _ = sys::default_action(SIGCHLD);
    // When not PID 1, orphans of the command still come to us.
    let _ = sys::prctl(sys::PR_SET_CHILD_SUBREAPER, 1, 0);
    let child = match sys::fork() {
        Ok(0) => {
            // The command gets a process group of its own and, when there is a
            // terminal, the foreground: Ctrl-C then reaches it once, from the
            // terminal, not a second time through PID 1 (tini does the same).
            // SIGTTOU is blocked while a background group takes the terminal.
            let _ = sys::sigprocmask(sys::SIG_BLOCK, bit(SIGTTOU));
            if sys::setpgid().is_ok() {
                let _ = sys::set_foreground(0, sys::pid());
            }
            let _ = sys::sigprocmask(sys::SIG_SETMASK, old);
            exec();
            sys::exit(127)
        }
        Ok(pid) => pid,
        Err(e) => crate::fail(b"--init: fork failed%e", Vals { e: Some(e), ..NO }),
    };
    loop {
        match sys::sigwait(set) {
            Ok(SIGCHLD) => {
                while let Ok(Some((pid, status))) = sys::wait_any(sys::WNOHANG) {
                    if pid == child {
                        // Other processes of the container end with it, as under tini.
                        sys::exit(exit_code(status));
                    }
                }
            }
            Ok(sig) => {
                let _ = sys::kill(child, sig);
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_like_a_shell() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(7 << 8), 7);
        assert_eq!(exit_code(15), 143);
        assert_eq!(exit_code(9 | 0x80), 137, "core dump flag ignored");
    }
}
