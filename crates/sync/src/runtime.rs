//! The tokio runtime the caller runs on, for the crates that start tasks on it, and when a task's
//! future is boxed on its own before it is wrapped.

use std::marker::PhantomData;

use tokio::runtime::Handle;

/// A future (or a closure that makes one) larger than this many bytes is boxed on its own as soon as
/// it is handed over, before a crate wraps it in its own state: 2 KiB in a build with debug
/// assertions, 16 KiB in one without, the threshold `tokio::spawn` uses for the same reason.
///
/// A debug build copies a value on the stack each time it moves it, and a task's future moves
/// through several frames and wrappers on its way into its allocation: a future of a few hundred
/// KiB, moved into a wrapper, into an enum and then into a box, can take the whole of a worker
/// thread's 2 MiB stack. Boxed first, only the box moves.
pub const BOX_FUTURE_THRESHOLD: usize = if cfg!(debug_assertions) { 2048 } else { 16384 };

/// Whether a value of type `T` is boxed on its own: [`BoxIfLarge::<T>::YES`](BoxIfLarge::YES) when
/// it is larger than [`BOX_FUTURE_THRESHOLD`].
///
/// A constant rather than a comparison made at run time, so that a branch on it compiles only the
/// arm taken for each `T`.
///
/// # Examples
///
/// ```
/// use bounded_sync::runtime::BoxIfLarge;
///
/// assert!(!BoxIfLarge::<[u8; 64]>::YES);
/// assert!(BoxIfLarge::<[u8; 1 << 20]>::YES);
/// ```
pub struct BoxIfLarge<T>(PhantomData<T>);

impl<T> std::fmt::Debug for BoxIfLarge<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxIfLarge")
    }
}

impl<T> BoxIfLarge<T> {
    /// `true` if a `T` is larger than [`BOX_FUTURE_THRESHOLD`].
    pub const YES: bool = std::mem::size_of::<T>() > BOX_FUTURE_THRESHOLD;
}

/// The runtime the caller runs on.
///
/// # Panics
///
/// Outside a tokio runtime, with a message that starts with `what` (what the caller was doing, as
/// "a pool was built") and says how to fix it. Every crate panics there as `tokio::spawn` does; this
/// says which of them, and where, in the user's words rather than tokio's.
///
/// # Examples
///
/// ```
/// let result = std::panic::catch_unwind(|| bounded_sync::runtime::current("a pool was built"));
/// assert!(result.is_err());
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let _handle = runtime.block_on(async { bounded_sync::runtime::current("a pool was built") });
/// ```
#[track_caller]
pub fn current(what: &str) -> Handle {
    match Handle::try_current() {
        Ok(handle) => handle,
        Err(_) => panic!(
            "{what} outside a tokio runtime, which it needs to start its tasks: do it from a tokio \
             task (as in `#[tokio::main]`), inside `Runtime::block_on`, or after `Runtime::enter`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::current;

    #[test]
    fn outside_a_runtime_the_message_names_what_and_how() {
        let panic = std::panic::catch_unwind(|| current("a pool was built")).unwrap_err();
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert!(
            message.starts_with("a pool was built outside a tokio runtime"),
            "{message}"
        );
        assert!(message.contains("Runtime::block_on"), "{message}");
    }

    #[test]
    fn inside_a_runtime_it_is_that_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let id = runtime.handle().id();
        assert_eq!(runtime.block_on(async { current("x").id() }), id);
        let _entered = runtime.enter();
        assert_eq!(current("x").id(), id);
    }
}
