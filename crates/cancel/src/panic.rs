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

/// A caught panic's payload, as the pool's and the pipeline's errors carry it: `Send + Sync`, so those
/// errors go into `Box<dyn Error + Send + Sync>` (tower's `BoxError`) and `anyhow::Error` with `?`, as
/// tokio's `JoinError` does.
///
/// A panic's payload is a `Box<dyn Any + Send>`, which cannot be shared between threads. The payloads
/// `panic!` makes (a `&'static str` or a `String`) are kept as they are; any other is kept where only
/// its owner can reach it. [`message`](PanicPayload::message) reads the text, and
/// [`into_inner`](PanicPayload::into_inner) gives back a payload of the type the code panicked with,
/// for `downcast` or [`std::panic::resume_unwind`].
///
/// # Examples
///
/// ```
/// use bounded_cancel::PanicPayload;
///
/// let index = 7;
/// let caught = std::panic::catch_unwind(|| panic!("index {index} out of range")).unwrap_err();
/// let payload = PanicPayload::new(caught);
/// assert_eq!(payload.message(), "index 7 out of range");
/// assert_eq!(*payload.into_inner().downcast::<String>().unwrap(), "index 7 out of range");
/// ```
pub struct PanicPayload(Payload);

enum Payload {
    Static(&'static str),
    Text(String),
    /// Reached only through `&mut` or by value, which is what makes it `Sync`.
    Other(sync_wrapper::SyncWrapper<Box<dyn Any + Send>>),
}

impl PanicPayload {
    /// Keeps a payload caught by `catch_unwind` (or a `JoinError`'s `into_panic`).
    pub fn new(payload: Box<dyn Any + Send>) -> Self {
        let payload = match payload.downcast::<&'static str>() {
            Ok(text) => Payload::Static(*text),
            Err(payload) => match payload.downcast::<String>() {
                Ok(text) => Payload::Text(*text),
                Err(payload) => Payload::Other(sync_wrapper::SyncWrapper::new(payload)),
            },
        };
        PanicPayload(payload)
    }

    /// The panic message, as [`panic_message`] reads it: `"panic payload is not a string"` for a
    /// payload that is neither a `&str` nor a `String`.
    pub fn message(&self) -> &str {
        match &self.0 {
            Payload::Static(text) => text,
            Payload::Text(text) => text,
            Payload::Other(_) => "panic payload is not a string",
        }
    }

    /// The payload, as a value of the type the code panicked with (`&'static str` for
    /// `panic!("literal")`, `String` for a formatted message, the value itself for `panic_any`).
    pub fn into_inner(self) -> Box<dyn Any + Send> {
        match self.0 {
            Payload::Static(text) => Box::new(text),
            Payload::Text(text) => Box::new(text),
            Payload::Other(payload) => payload.into_inner(),
        }
    }

    /// Re-raises the panic on the current thread with its payload
    /// ([`std::panic::resume_unwind`]).
    pub fn resume(self) -> ! {
        std::panic::resume_unwind(self.into_inner())
    }
}

impl From<Box<dyn Any + Send>> for PanicPayload {
    fn from(payload: Box<dyn Any + Send>) -> Self {
        PanicPayload::new(payload)
    }
}

impl std::fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PanicPayload")
            .field(&self.message())
            .finish()
    }
}

impl std::fmt::Display for PanicPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
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
