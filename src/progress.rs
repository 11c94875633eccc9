//! What harden tells the user while it works: lines on stderr, and progress
//! bars for blob transfers when stderr is a terminal. `-q` silences both.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static VERBOSE: AtomicBool = AtomicBool::new(false);
static QUIET: AtomicBool = AtomicBool::new(false);

/// `-v` or `RUST_LOG` (debug, trace, or a filter naming harden): request-level lines.
pub fn set_verbose(flag: bool) {
    let env = std::env::var("RUST_LOG").unwrap_or_default();
    let from_env = ["debug", "trace", "harden"].iter().any(|w| env.contains(w));
    VERBOSE.store(flag || from_env, Ordering::Relaxed);
}

/// A request-level line on stderr when verbose; `message` is built only then.
pub fn trace(message: impl FnOnce() -> String) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("harden: debug: {}", message());
    }
}

/// The last warning, for a `--timeout` to name what it was waiting on.
static LAST_WARNING: Mutex<Option<String>> = Mutex::new(None);

/// A warning on stderr, unless `-q` (for code that has no `Progress`).
pub fn warn(message: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("harden: warning: {message}");
    }
    *LAST_WARNING.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.to_string());
}

/// The last `warn` message, if any.
pub fn last_warning() -> Option<String> {
    LAST_WARNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
    quiet: bool,
    /// Which image the lines are about, when several are hardened at once.
    label: Option<String>,
}

impl Progress {
    /// The output of this run; `quiet` also silences `warn`.
    pub fn new(quiet: bool) -> Progress {
        QUIET.store(quiet, Ordering::Relaxed);
        let tty = std::io::stderr().is_terminal();
        Progress {
            bars: (tty && !quiet).then(MultiProgress::new),
            quiet,
            label: None,
        }
    }

    /// The same output, each line prefixed with `label`.
    pub fn labelled(&self, label: String) -> Progress {
        Progress {
            label: Some(label),
            ..self.clone()
        }
    }

    /// One line on stderr (above the bars when there are some).
    pub fn say(&self, message: &str) {
        if self.quiet {
            return;
        }
        let line = match &self.label {
            Some(label) => format!("harden: {label}: {message}"),
            None => format!("harden: {message}"),
        };
        // An ordinary line with its newline: the bars are cleared around it
        // (MultiProgress::println pads to the terminal's width instead).
        match &self.bars {
            Some(m) => m.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// A bar for `size` bytes, or a count of bytes when the size is not
    /// known; a no-op without a terminal.
    pub fn bar(&self, label: &str, size: Option<u64>) -> Bar {
        Bar(self.bars.as_ref().map(|m| {
            let template = match size {
                Some(_) => "{msg:24} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec}",
                None => "{msg:24} {bytes:>10} {bytes_per_sec}",
            };
            let bar = m.add(size.map_or_else(ProgressBar::no_length, ProgressBar::new));
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("template")
                    .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar
        }))
    }
}

#[derive(Clone)]
pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n)
        }
    }

    /// Back to zero, for a transfer that starts over.
    pub fn restart(&self) {
        if let Some(b) = &self.0 {
            b.set_position(0)
        }
    }
}

impl Bar {
    pub fn done(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear()
        }
    }
}
