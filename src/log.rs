//! The library's log lines and where they go.
//!
//! A deliberately small logger: five levels, one process-wide sink and one maximum level.
//! A line above the maximum level costs one relaxed atomic load and nothing else (its
//! message is not even formatted), so lines may sit on warm paths; per-notification lines
//! stay at [`Level::Trace`].
//!
//! Without a sink, [`Level::Error`] and [`Level::Warn`] lines go to standard error (the
//! default maximum level is [`Level::Warn`]); finer lines are dropped. With a sink, every
//! line up to the maximum level goes to it.
//!
//! # The sink's lifetime
//!
//! The sink is called on whichever library thread has something to say (shard threads, the
//! dispatcher, the thread calling into the library), possibly from several at once: it must
//! be thread-safe. No lock is held while it runs, so it may call [`set_sink`] itself. A
//! replaced sink is dropped when its last call in progress (on any thread) has returned, or
//! at once by [`set_sink`] when none is; it is dropped exactly once. A line logged from
//! inside the sink (say the sink calls into the library) is dropped rather than fed back
//! into it.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::fmt;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// How important a line is; each level includes the ones above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something failed that the application should know about (a panicking callback).
    Error = 1,
    /// Something unexpected that the library worked around (a filter that cannot apply).
    Warn = 2,
    /// Lifecycle: engines starting and stopping.
    Info = 3,
    /// Decisions and soft-state changes: authorization, expiries.
    Debug = 4,
    /// Per-notification detail.
    Trace = 5,
}

impl Level {
    /// The level with this number (1 = error ... 5 = trace), as the C API numbers them.
    pub fn from_number(n: i64) -> Option<Level> {
        Some(match n {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            4 => Level::Debug,
            5 => Level::Trace,
            _ => return None,
        })
    }

    /// The level's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Receives log lines: `(level, message, target)`. The target is the module that logged,
/// such as `"impp::engine::shard"`. Both strings are borrowed for the call.
pub type Sink = Box<dyn Fn(Level, &str, &str) + Send + Sync>;

/// Shared so that a call in progress keeps its sink alive after a replacement.
type SharedSink = Arc<dyn Fn(Level, &str, &str) + Send + Sync>;

static SINK: RwLock<Option<SharedSink>> = RwLock::new(None);
static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

thread_local! {
    /// Set while this thread runs the sink, so that lines the sink itself causes do not
    /// recurse into it.
    static IN_SINK: Cell<bool> = const { Cell::new(false) };
}

/// Installs `sink` (`None`: back to the standard-error default) and drops the previous one
/// once its calls in progress have returned (see the module notes). Any thread; allowed
/// from inside the sink.
pub fn set_sink(sink: Option<Sink>) {
    let new: Option<SharedSink> = sink.map(Arc::from);
    let old = {
        let mut slot = SINK.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *slot, new)
    };
    // Outside the lock: dropping the last reference runs the sink's destructor (a C
    // `free_user_data`), which may itself log or set a sink.
    drop(old);
}

/// Lines finer than `level` are dropped (cheaply). Any thread; takes effect at once.
pub fn set_max_level(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// The current maximum level.
pub fn max_level() -> Level {
    Level::from_number(i64::from(MAX_LEVEL.load(Ordering::Relaxed))).unwrap_or(Level::Warn)
}

/// Whether a line at `level` would go anywhere (one atomic load).
#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Sends one line to the sink (or the default). Callers check [`enabled`] first; the
/// macros do.
pub fn emit(level: Level, target: &str, message: fmt::Arguments<'_>) {
    if IN_SINK.with(Cell::get) {
        return;
    }
    let sink = SINK
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(Arc::clone);
    let Some(sink) = sink else {
        if level <= Level::Warn {
            // Whole line in one write, so lines of different threads do not interleave.
            let line = format!("impp [{level}] {target}: {message}\n");
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        return;
    };
    let text = match message.as_str() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(message.to_string()),
    };
    IN_SINK.with(|flag| flag.set(true));
    // A panicking sink must not take a library thread down with it.
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| sink(level, &text, target)));
    IN_SINK.with(|flag| flag.set(false));
    if outcome.is_err() {
        let _ = writeln!(
            std::io::stderr().lock(),
            "impp: the log sink panicked on a {level} line from {target}: {text}"
        );
    }
    // `sink` (maybe the last reference to a replaced sink) is dropped here, after its call.
}

/// Logs at a level: `log!(Level::Info, "engine started with {} workers", n)`. The message
/// is formatted only when the level is enabled. The target is the calling module, or what
/// `target: T,` before the message names (`log::debug!(target: LOG_TARGET, "...")`): code
/// moved into a child module keeps the target its lines had, so an application filtering by
/// target sees the same lines.
macro_rules! log {
    ($level:expr, target: $target:expr, $($arg:tt)+) => {{
        let level = $level;
        if $crate::log::enabled(level) {
            $crate::log::emit(level, $target, format_args!($($arg)+));
        }
    }};
    ($level:expr, $($arg:tt)+) => {{
        let level = $level;
        if $crate::log::enabled(level) {
            $crate::log::emit(level, module_path!(), format_args!($($arg)+));
        }
    }};
}

/// Logs an [`Level::Error`] line.
macro_rules! log_error {
    ($($arg:tt)+) => { $crate::log::log!($crate::log::Level::Error, $($arg)+) };
}

/// Logs a [`Level::Warn`] line.
macro_rules! log_warn {
    ($($arg:tt)+) => { $crate::log::log!($crate::log::Level::Warn, $($arg)+) };
}

/// Logs an [`Level::Info`] line.
macro_rules! log_info {
    ($($arg:tt)+) => { $crate::log::log!($crate::log::Level::Info, $($arg)+) };
}

/// Logs a [`Level::Debug`] line.
macro_rules! log_debug {
    ($($arg:tt)+) => { $crate::log::log!($crate::log::Level::Debug, $($arg)+) };
}

/// Logs a [`Level::Trace`] line.
macro_rules! log_trace {
    ($($arg:tt)+) => { $crate::log::log!($crate::log::Level::Trace, $($arg)+) };
}

// Defined under other names: a macro defined as `warn` would clash with the built-in
// attribute of that name. Used by path: `log::warn!(...)`.
pub(crate) use {
    log, log_debug as debug, log_error as error, log_info as info, log_trace as trace,
    log_warn as warn,
};

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Mutex, MutexGuard};

    use super::*;

    /// The logger is process-wide: tests that change it take this lock.
    fn exclusive() -> MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::new(());
        LOCK.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lines of this test module only (other tests of the crate log concurrently).
    type Lines = Arc<Mutex<Vec<(Level, String)>>>;

    fn collector() -> (Lines, Sink) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let lines = Arc::clone(&lines);
            Box::new(move |level, message: &str, target: &str| {
                if target == module_path!() {
                    lines.lock().unwrap().push((level, message.to_owned()));
                }
            })
        };
        (lines, sink)
    }

    #[test]
    fn levels_filter_and_the_sink_gets_target_and_message() {
        let _guard = exclusive();
        let (lines, sink) = collector();
        set_sink(Some(sink));
        set_max_level(Level::Info);
        assert_eq!(max_level(), Level::Info);
        error!("one {}", 1);
        warn!("two");
        info!("three");
        debug!("not this");
        trace!("nor this");
        set_max_level(Level::Trace);
        trace!("now this {}", "too");
        set_sink(None);
        set_max_level(Level::Warn);
        let got = lines.lock().unwrap().clone();
        assert_eq!(
            got,
            [
                (Level::Error, "one 1".to_owned()),
                (Level::Warn, "two".to_owned()),
                (Level::Info, "three".to_owned()),
                (Level::Trace, "now this too".to_owned()),
            ]
        );
    }

    /// This module's name, as a child module names it.
    const TARGET: &str = module_path!();

    mod child {
        pub(super) fn say() {
            crate::log::info!(target: super::TARGET, "filed under the parent {}", 1);
            crate::log::info!("filed under the child");
        }
    }

    #[test]
    fn a_line_with_a_target_is_filed_under_it() {
        let _guard = exclusive();
        let (lines, sink) = collector();
        set_sink(Some(sink));
        set_max_level(Level::Info);
        child::say();
        set_sink(None);
        set_max_level(Level::Warn);
        let got = lines.lock().unwrap().clone();
        assert_eq!(got, [(Level::Info, "filed under the parent 1".to_owned())]);
    }

    #[test]
    fn a_disabled_line_is_not_even_formatted() {
        struct Loud;
        impl fmt::Display for Loud {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("formatted a disabled line");
            }
        }
        let _guard = exclusive();
        set_max_level(Level::Warn);
        debug!("{}", Loud);
        trace!("{}", Loud);
    }

    #[test]
    fn a_replaced_sink_is_dropped_once_after_its_call_in_progress() {
        struct Dropped(Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let _guard = exclusive();
        let drops = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let owned = Dropped(Arc::clone(&drops));
        set_sink(Some(Box::new(move |_, message: &str, _: &str| {
            let _keep = &owned;
            if message == "hold" {
                entered_tx.send(()).unwrap();
                gate.lock().unwrap().recv().unwrap();
            }
        })));
        set_max_level(Level::Info);
        let logger = std::thread::spawn(|| info!("hold"));
        entered.recv().unwrap();
        // Replaced while a call is in progress: not dropped yet.
        set_sink(None);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        release.send(()).unwrap();
        logger.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        set_max_level(Level::Warn);
    }

    #[test]
    fn a_panicking_sink_or_a_line_from_inside_the_sink_is_contained() {
        let _guard = exclusive();
        let calls = Arc::new(AtomicUsize::new(0));
        set_sink(Some(Box::new({
            let calls = Arc::clone(&calls);
            move |_, message: &str, target: &str| {
                if target != module_path!() {
                    return;
                }
                calls.fetch_add(1, Ordering::SeqCst);
                warn!("from inside the sink: dropped");
                if message == "boom" {
                    panic!("a bug in the sink");
                }
            }
        })));
        warn!("boom");
        warn!("fine");
        set_sink(None);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn level_numbers_round_trip() {
        for n in 1..=5 {
            assert_eq!(Level::from_number(n).unwrap() as i64, n);
        }
        assert_eq!(Level::from_number(0), None);
        assert_eq!(Level::from_number(6), None);
        assert_eq!(Level::Debug.to_string(), "debug");
    }
}
