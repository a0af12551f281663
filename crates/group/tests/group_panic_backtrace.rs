//! A caught panic keeps where it happened, when backtraces are enabled and captured.
//!
//! This file holds one test on purpose: it enables backtraces for the whole process.

use bounded_group::{Failure, Group};

#[inline(never)]
fn explode_in_a_named_function(n: u32) -> u32 {
    assert!(n != 3, "exploded on {n}");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_panic_carries_the_backtrace_of_where_it_happened() {
    // SAFETY: set before any thread of this test binary reads the environment's backtrace setting.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "1") };
    bounded_cancel::capture_panic_backtraces();
    let group = Group::<String>::new();
    for n in 0..5 {
        group
            .spawn(move |_ctx| async move {
                tokio::task::yield_now().await; // runs on a worker thread, not the spawner
                explode_in_a_named_function(n);
                Ok(())
            })
            .await
            .unwrap();
    }
    let Err(Failure::Panicked(panic)) = group.wait_and_recover().await else {
        panic!("the panic was lost");
    };
    assert_eq!(panic.message(), "exploded on 3");
    let backtrace = panic
        .backtrace()
        .expect("a backtrace was captured")
        .to_string();
    assert!(
        backtrace.contains("explode_in_a_named_function"),
        "the backtrace names where it happened:\n{backtrace}"
    );
}
