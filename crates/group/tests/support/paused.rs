//! A runtime on tokio's paused clock, for tests that build one per case (proptest bodies are not async).

/// A current-thread runtime with time enabled and the clock paused.
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}
