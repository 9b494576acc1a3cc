//! A counting global allocator: the fuzz harness arms it around one input and reads the peak
//! of bytes that input held at once, so an input that makes a parser allocate without bound
//! is a finding, not an out-of-memory kill.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests above this many bytes while armed are refused (the process aborts after a message
/// naming the input): they would exhaust the machine before the input ends.
pub const HARD_LIMIT: usize = 1 << 30;

/// The iteration being run, named in the message of a refused allocation.
pub static ITERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting the bytes the current thread holds while armed. Install it
/// with `#[global_allocator]` in the fuzz binary and the fuzz tests.
pub struct CountingAlloc;

/// Starts counting on this thread from zero.
pub fn arm() {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ARMED.with(|a| a.set(true));
}

/// Stops counting and returns the peak number of bytes held at once since [`arm`].
pub fn disarm() -> usize {
    ARMED.with(|a| a.set(false));
    PEAK.with(Cell::get)
}

fn grow(bytes: usize) -> bool {
    if !ARMED.with(Cell::get) {
        return true;
    }
    if bytes > HARD_LIMIT {
        ARMED.with(|a| a.set(false));
        let mut msg = [0u8; 128];
        let mut cursor = &mut msg[..];
        let iteration = ITERATION.load(Ordering::Relaxed);
        let _ = writeln!(
            cursor,
            "cascade-fuzz: iteration {iteration} makes one allocation of {bytes} bytes"
        );
        let used = 128 - cursor.len();
        let _ = std::io::stderr().write_all(&msg[..used]);
        return false;
    }
    let live = LIVE.with(|l| {
        let v = l.get().saturating_add(bytes);
        l.set(v);
        v
    });
    PEAK.with(|p| p.set(p.get().max(live)));
    true
}

fn shrink(bytes: usize) {
    if ARMED.with(Cell::get) {
        LIVE.with(|l| l.set(l.get().saturating_sub(bytes)));
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping touches only
// const-initialised thread-locals, which do not allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            if !grow(new_size - layout.size()) {
                return std::ptr::null_mut();
            }
        } else {
            shrink(layout.size() - new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
