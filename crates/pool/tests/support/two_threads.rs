//! A fresh multi-thread runtime with two worker threads, for tests that build one per round (a
//! `#[tokio::test]` gives each test one runtime, and a round's abort or shutdown must not leak into
//! the next).

/// A multi-thread runtime with two worker threads and time enabled.
pub(crate) fn two_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}
