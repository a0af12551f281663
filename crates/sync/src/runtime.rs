//! The tokio runtime the caller runs on, for the crates that start tasks on it.

use tokio::runtime::Handle;

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
