//! Progress on stderr while a run goes: the phase, its elapsed and remaining time, the achieved rate and the
//! running p50 / p99. On a terminal one status line is redrawn in place (a carriage return and an ANSI
//! erase); anywhere else (CI logs) a plain line every few seconds. Each measured phase leaves one line with
//! its final figures either way.
//!
//! The drawing runs on a thread of its own, never on the generator's runtime, so it cannot delay a request;
//! it reads the phase's recorder under the same short lock the requests take to record.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::time::Instant;

use crate::criteria::micros;
use crate::load::Recorder;

/// How often the status line is redrawn on a terminal.
const REDRAW: Duration = Duration::from_millis(250);
/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// One line redrawn in place (stderr is a terminal).
    Redraw,
    /// Plain lines now and then (a log).
    Lines,
    /// Nothing.
    Off,
}

impl Style {
    /// `Redraw` on a terminal, `Lines` elsewhere, `Off` when asked to be quiet.
    pub fn detect(quiet: bool) -> Style {
        match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => Style::Off,
            (false, true) => Style::Redraw,
            (false, false) => Style::Lines,
        }
    }
}

/// Counts of a closed-loop phase, which keeps no latencies.
#[derive(Debug, Default)]
pub struct Counts {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
}

/// Where the figures of the phase on show come from.
enum Source {
    Open(Arc<Recorder>),
    Closed(Arc<Counts>),
}

struct Watched {
    label: String,
    kept: bool,
    start: Instant,
    length: Duration,
    source: Source,
}

struct Shared {
    style: Style,
    started: Instant,
    watched: Mutex<Option<Watched>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The progress display of one invocation; the drawing thread stops when it is dropped.
pub struct Progress {
    shared: Arc<Shared>,
    drawer: Option<JoinHandle<()>>,
}

/// A phase as the load functions announce it: its label, and whether its final figures stay on screen
/// (measured phases) or vanish (warm-ups).
#[derive(Clone, Copy)]
pub struct Show<'a> {
    progress: &'a Progress,
    label: &'a str,
    kept: bool,
}

/// What one line shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub label: String,
    /// Since the invocation started.
    pub total: Duration,
    pub elapsed: Duration,
    /// `None` once the phase is over.
    pub remaining: Option<Duration>,
    pub answered: u64,
    pub errors: u64,
    /// Open loop: p50 and p99 so far (µs; `None` before the first answer). Closed loop: `None`.
    pub latencies: Option<Option<(u64, u64)>>,
}

impl Progress {
    /// A display in `style`; `Off` starts no thread.
    pub fn new(style: Style) -> Progress {
        let shared = Arc::new(Shared {
            style,
            started: Instant::now(),
            watched: Mutex::new(None),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let drawer = (style != Style::Off).then(|| {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name("loadtest-progress".into()).spawn(move || draw_loop(&shared)).ok()
        });
        Progress { shared, drawer: drawer.flatten() }
    }

    /// No display (tests, and modes whose output is the report alone).
    pub fn off() -> Progress {
        Progress::new(Style::Off)
    }

    /// A measured phase: its final figures stay as a line.
    pub fn phase<'a>(&'a self, label: &'a str) -> Show<'a> {
        Show { progress: self, label, kept: true }
    }

    /// A warm-up: shown while it runs, gone after.
    pub fn warmup<'a>(&'a self, label: &'a str) -> Show<'a> {
        Show { progress: self, label, kept: false }
    }

    /// A line of its own between phases (a `max-rate` verdict, say), above the status line.
    pub fn note(&self, text: &str) {
        if self.shared.style != Style::Off {
            print_kept(self.shared.style, text);
        }
    }
}

impl Show<'_> {
    /// An open-loop phase of `length` starts, recording into `recorder`.
    pub fn open(&self, length: Duration, recorder: &Arc<Recorder>) {
        self.begin(length, Source::Open(Arc::clone(recorder)));
    }

    /// A closed-loop phase of `length` starts, counting into `counts`.
    pub fn closed(&self, length: Duration, counts: &Arc<Counts>) {
        self.begin(length, Source::Closed(Arc::clone(counts)));
    }

    fn begin(&self, length: Duration, source: Source) {
        let shared = &self.progress.shared;
        if shared.style == Style::Off {
            return;
        }
        let label = if self.kept { self.label.to_owned() } else { format!("{} warm-up", self.label) };
        let watched = Watched { label, kept: self.kept, start: Instant::now(), length, source };
        *shared.watched.lock() = Some(watched);
        shared.wake.notify_one();
    }

    /// The phase is over: its final line, when kept. Drops the recorder handle, which the caller unwraps next.
    pub fn end(&self) {
        let shared = &self.progress.shared;
        let Some(watched) = shared.watched.lock().take() else { return };
        if watched.kept {
            let mut snapshot = snapshot(&watched, shared.started);
            snapshot.remaining = None;
            print_kept(shared.style, &format_line(&snapshot));
        } else if shared.style == Style::Redraw {
            clear_line();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_one();
        if let Some(drawer) = self.drawer.take() {
            let _ = drawer.join();
        }
        if self.shared.style == Style::Redraw {
            clear_line();
        }
    }
}

fn draw_loop(shared: &Shared) {
    let every = if shared.style == Style::Redraw { REDRAW } else { PLAIN_EVERY };
    let mut next = Instant::now() + every;
    loop {
        {
            let mut stop = shared.stop.lock();
            if !*stop {
                shared.wake.wait_for(&mut stop, next.saturating_duration_since(Instant::now()));
            }
            if *stop {
                return;
            }
        }
        // A terminal is redrawn as soon as a phase starts; a log gets a line only every few seconds.
        let now = Instant::now();
        if shared.style == Style::Lines && now < next {
            continue;
        }
        next = now + every;
        let line = shared.watched.lock().as_ref().map(|w| format_line(&snapshot(w, shared.started)));
        let Some(line) = line else { continue };
        let mut err = std::io::stderr().lock();
        let _ = match shared.style {
            Style::Redraw => write!(err, "\r\x1b[2K{line}"),
            _ => writeln!(err, "{line}"),
        };
        let _ = err.flush();
    }
}

fn snapshot(watched: &Watched, started: Instant) -> Snapshot {
    let elapsed = watched.start.elapsed();
    let (answered, errors, latencies) = match &watched.source {
        Source::Open(recorder) => {
            let glance = recorder.glance();
            (glance.answered, glance.errors, Some(glance.p50_us.zip(glance.p99_us)))
        }
        Source::Closed(counts) => (counts.ok.load(Ordering::Relaxed), counts.errors.load(Ordering::Relaxed), None),
    };
    Snapshot {
        label: watched.label.clone(),
        total: started.elapsed(),
        elapsed,
        remaining: Some(watched.length.saturating_sub(elapsed)),
        answered,
        errors,
        latencies,
    }
}

/// One progress line: `[ 1m05s] engine#1  2.0 of 5.0 s, 3.0 s left  199.8/s  p50 312 µs  p99 1.21 ms  0 err`.
pub fn format_line(s: &Snapshot) -> String {
    let mut line = format!("[{:>6}] {:<20}", clock(s.total), s.label);
    let _ = match s.remaining {
        Some(left) => write!(line, " {:>5.1} s, {:>5.1} s left", s.elapsed.as_secs_f64(), left.as_secs_f64()),
        None => write!(line, " done in {:>5.1} s      ", s.elapsed.as_secs_f64()),
    };
    let rate = if s.elapsed.is_zero() { 0.0 } else { s.answered as f64 / s.elapsed.as_secs_f64() };
    let _ = write!(line, "  {rate:>8.1}/s");
    match s.latencies {
        Some(Some((p50, p99))) => {
            let _ = write!(line, "  p50 {:>9}  p99 {:>9}", micros(p50 as f64), micros(p99 as f64));
        }
        Some(None) => line.push_str("  p50         -  p99         -"),
        None => line.push_str("  (closed loop: no latencies)"),
    }
    let _ = write!(line, "  {} err", s.errors);
    line
}

/// `12.3s` under a minute, `1m05s` above.
fn clock(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

fn print_kept(style: Style, text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = match style {
        Style::Redraw => writeln!(err, "\r\x1b[2K{text}"),
        _ => writeln!(err, "{text}"),
    };
    let _ = err.flush();
}

fn clear_line() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(remaining: Option<f64>, p50: Option<u64>) -> Snapshot {
        Snapshot {
            label: "engine#1".into(),
            total: Duration::from_secs(65),
            elapsed: Duration::from_secs(2),
            remaining: remaining.map(Duration::from_secs_f64),
            answered: 400,
            errors: 3,
            latencies: p50.map(|p| Some((p, p * 4))),
        }
    }

    #[test]
    fn a_running_phase_shows_time_left_rate_and_quantiles() {
        let line = format_line(&snapshot(Some(3.0), Some(312)));
        assert!(line.starts_with("[ 1m05s] engine#1"), "{line}");
        for part in ["2.0 s,   3.0 s left", "200.0/s", "p50    312 µs", "p99   1.25 ms", "3 err"] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
        // Short enough for an 80-column terminal not to wrap the status line on the usual figures... almost:
        // the redraw only ever erases one line, so keep it under 120.
        assert!(line.chars().count() < 120, "{} chars: {line}", line.chars().count());
    }

    #[test]
    fn a_finished_phase_and_a_closed_loop_read_differently() {
        let done = format_line(&snapshot(None, Some(312)));
        assert!(done.contains("done in   2.0 s"), "{done}");
        assert!(!done.contains("left"), "{done}");
        let closed = format_line(&snapshot(Some(1.0), None));
        assert!(closed.contains("closed loop: no latencies"), "{closed}");
        let waiting = format_line(&Snapshot { latencies: Some(None), ..snapshot(Some(1.0), None) });
        assert!(waiting.contains("p50         -  p99         -"), "{waiting}");
        assert_eq!(clock(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(clock(Duration::from_secs(3_600 + 5)), "60m05s");
    }

    #[test]
    fn an_off_display_keeps_nothing_and_starts_no_thread() {
        let progress = Progress::off();
        assert!(progress.drawer.is_none());
        let recorder = Arc::new(Recorder::default());
        let show = progress.phase("x");
        show.open(Duration::from_secs(1), &recorder);
        assert!(progress.shared.watched.lock().is_none());
        show.end();
        assert_eq!(Arc::strong_count(&recorder), 1, "no handle on the recorder is left behind");
    }

    #[test]
    fn a_log_display_lets_go_of_the_recorder_when_its_phase_ends() {
        let progress = Progress::new(Style::Lines);
        let recorder = Arc::new(Recorder::default());
        let show = progress.warmup("warm");
        show.open(Duration::from_secs(1), &recorder);
        assert_eq!(Arc::strong_count(&recorder), 2);
        show.end();
        assert_eq!(Arc::strong_count(&recorder), 1);
        drop(progress);
    }
}
