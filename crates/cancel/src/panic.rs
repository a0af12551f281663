use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::RefCell;
use std::sync::Once;

/// The message of a caught panic payload, or `"panic payload is not a string"` for other payloads.
///
/// `panic!("...")` payloads are a `&'static str` or a `String`; every crate of `bounded` reports panics
/// through this one function so that the text is the same everywhere.
///
/// # Examples
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("index {} out of range", 7)).unwrap_err();
/// assert_eq!(bounded_cancel::panic_message(&*payload), "index 7 out of range");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "panic payload is not a string"
    }
}

thread_local! {
    /// The backtrace of the last panic on this thread, kept by the hook `capture_panic_backtraces`
    /// installs until the code that caught the panic takes it.
    static LAST: RefCell<Option<Backtrace>> = const { RefCell::new(None) };
}

/// Makes the `bounded` crates keep where each panic they catch happened: installs (once) a panic hook
/// that records a backtrace, then calls the hook that was there before. Call it at the start of the
/// program; a hook installed after it replaces it.
///
/// A backtrace is recorded only when backtraces are enabled (`RUST_BACKTRACE` or `RUST_LIB_BACKTRACE`,
/// as [`Backtrace::capture`] decides), so it costs nothing otherwise. A group's caught panic then
/// carries it (`bounded_group::Panic::backtrace`).
///
/// # Examples
///
/// ```
/// bounded_cancel::capture_panic_backtraces();
/// let caught = std::panic::catch_unwind(|| panic!("lost")).unwrap_err();
/// // Some(backtrace) when backtraces are enabled for this process; None otherwise.
/// let _where = bounded_cancel::take_panic_backtrace();
/// # let _ = caught;
/// ```
pub fn capture_panic_backtraces() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let backtrace = Backtrace::capture();
            if backtrace.status() == BacktraceStatus::Captured {
                // A thread being torn down has no slot left; the backtrace is then simply not kept.
                let _ = LAST.try_with(|last| *last.borrow_mut() = Some(backtrace));
            }
            previous(info);
        }));
    });
}

/// Takes the backtrace of the last panic on this thread, if
/// [`capture_panic_backtraces`] recorded one and nobody took it yet. Code that catches a panic calls it
/// right after the catch, on the same thread.
///
/// # Examples
///
/// ```
/// assert!(bounded_cancel::take_panic_backtrace().is_none(), "nothing has panicked here");
/// ```
pub fn take_panic_backtrace() -> Option<Backtrace> {
    LAST.try_with(|last| last.borrow_mut().take())
        .ok()
        .flatten()
}
