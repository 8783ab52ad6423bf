//! The one door from a runtime thread into Python, closed at interpreter exit.
//!
//! Runtime threads call into Python to complete asyncio calls and to report a lost
//! lock. A thread that takes the GIL while the interpreter finalizes is torn down by
//! CPython from inside Rust frames, which aborts the process ("PyGILState_Release:
//! thread state must be current"). So every such call goes through [`with_python`],
//! and an `atexit` hook (run while the interpreter is still whole) closes the door and
//! waits for the calls already inside to leave. After that the runtime keeps running
//! (lease renewals may still be in flight) but never touches Python again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// High bit: closed. Low bits: runtime threads inside Python right now.
static DOOR: AtomicUsize = AtomicUsize::new(0);
const CLOSED: usize = 1 << (usize::BITS - 1);
/// How long exit waits for callbacks already running (a callback that blocks for
/// longer is abandoned rather than hanging the exit).
const DRAIN: Duration = Duration::from_secs(5);

/// Runs `f` with the GIL unless the interpreter is exiting (then `None`).
pub fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    let mut seen = DOOR.load(Ordering::SeqCst);
    loop {
        if seen & CLOSED != 0 {
            return None;
        }
        match DOOR.compare_exchange_weak(seen, seen + 1, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break,
            Err(now) => seen = now,
        }
    }
    let r = Python::try_attach(f);
    DOOR.fetch_sub(1, Ordering::SeqCst);
    r
}

/// `kahuna._native._shutdown()`, registered with `atexit` when the module loads.
#[pyfunction]
pub fn _shutdown(py: Python<'_>) {
    DOOR.fetch_or(CLOSED, Ordering::SeqCst);
    // The GIL is released while waiting: the calls inside need it to finish.
    py.detach(|| {
        let start = Instant::now();
        while DOOR.load(Ordering::SeqCst) & !CLOSED != 0 && start.elapsed() < DRAIN {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Registers [`_shutdown`] with Python's `atexit` (handlers run before finalization).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let f = wrap_pyfunction!(_shutdown, m)?;
    m.add_function(f.clone())?;
    m.py().import("atexit")?.call_method1("register", (f,))?;
    Ok(())
}
