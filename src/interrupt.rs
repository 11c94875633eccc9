//! Ctrl-C, SIGTERM, SIGHUP: remove the temporary files and directories of
//! outputs being written, then exit 130 (INT) or 128+N. A registry push needs
//! nothing here: its tag is the last request, so an interrupted push leaves
//! no tag (at most an upload session, which the registry expires).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes `path` (a temp file or directory) if harden is interrupted.
/// A path that was renamed into place no longer exists by then.
pub fn track(path: &Path) {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.to_path_buf());
}

/// A temp file in `$TMPDIR` (an input copied from a pipe, a layer being
/// compressed), removed when dropped and also if harden is interrupted.
pub fn temp_file(prefix: &str) -> anyhow::Result<tempfile::NamedTempFile> {
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile()
        .map_err(|e| temp_error(&std::env::temp_dir(), "file", e))?;
    track(tmp.path());
    Ok(tmp)
}

/// Why no temp file (or directory) could be made in `dir`: tempfile's own
/// message ends in its random name, which says nothing.
pub fn temp_error(dir: &Path, what: &str, e: std::io::Error) -> anyhow::Error {
    if !dir.exists() {
        return anyhow::anyhow!("the directory {} does not exist", dir.display());
    }
    let text = e.to_string();
    let cause = text.split(" at path ").next().unwrap_or(&text);
    anyhow::anyhow!(
        "cannot create a temporary {what} in {}: {cause}",
        dir.display()
    )
}

/// Starts listening for the signals, on a thread of its own that waits for
/// them (sigwait). Called first thing in main: the signals are blocked in
/// every thread started after it, so that only that thread takes them.
/// (Children get an empty mask: std's Command resets it.)
pub fn install() {
    const CAUGHT: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    // Safety: a sigset_t is plain data that sigemptyset initialises;
    // pthread_sigmask only changes this thread's mask.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in CAUGHT {
            libc::sigaddset(&mut set, signal);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        set
    };
    std::thread::spawn(move || {
        let mut signal: libc::c_int = 0;
        // Safety: `set` is initialised and `signal` a valid out pointer.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            return;
        }
        let removed = clean_up();
        eprintln!("harden: interrupted; removed {removed} temporary file(s), wrote nothing");
        std::process::exit(128 + signal);
    });
}

/// `--timeout`: after `seconds`, remove the temp files and exit 124 (as
/// timeout(1) does), so that a pipeline step never hangs.
pub fn deadline(seconds: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        let removed = clean_up();
        let waiting = crate::progress::last_warning()
            .map(|w| format!(" (last: {w})"))
            .unwrap_or_default();
        eprintln!("harden: error: timed out after {seconds} s (--timeout){waiting}; removed {removed} temporary file(s), wrote nothing");
        std::process::exit(124);
    });
}

fn clean_up() -> usize {
    let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    pending
        .iter()
        .filter(|p| {
            let removed = if p.is_dir() {
                std::fs::remove_dir_all(p)
            } else {
                std::fs::remove_file(p)
            };
            removed.is_ok()
        })
        .count()
}
