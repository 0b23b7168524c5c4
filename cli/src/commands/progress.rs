//! A progress line on stderr for long runs, shown only when stderr is a terminal. It reads a
//! counter the replay bumps per batch; nothing it does reaches a result.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Progress {
    pub counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the display for `total` events (a no-op counter when stderr is not a terminal).
    pub fn start(what: &'static str, total: u64) -> Progress {
        let counter = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let (counter, stop) = (counter.clone(), stop.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let n = counter.load(Ordering::Relaxed);
                    let pct = if total > 0 {
                        n as f64 * 100.0 / total as f64
                    } else {
                        0.0
                    };
                    let rate = n as f64 / t0.elapsed().as_secs_f64().max(1e-9);
                    let width = 30;
                    let filled = ((pct / 100.0) * width as f64).round().min(width as f64) as usize;
                    eprint!(
                        "\r{what} [{}{}] {n}/{total} events {pct:5.1}% {:.2}M ev/s ",
                        "#".repeat(filled),
                        " ".repeat(width - filled),
                        rate / 1e6
                    );
                    let _ = std::io::stderr().flush();
                }
                eprint!("\r\x1b[2K");
            })
        });
        Progress {
            counter,
            stop,
            thread,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
