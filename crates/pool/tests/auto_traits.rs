//! The pool, its handles and its errors are `Send` (the pool and its handles `Sync` too), so they cross tasks freely.

use bounded_pool::{JobError, JobHandle, Metrics, Pool, PoolReport, SubmitError, TrySubmitError};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn unpin<T: Unpin>() {}

#[test]
fn public_types_have_the_expected_auto_traits() {
    send_sync::<Pool>();
    send_sync::<JobHandle<u8, String>>();
    unpin::<JobHandle<u8, String>>();
    send::<JobError<String>>();
    send_sync::<SubmitError<fn()>>();
    send_sync::<TrySubmitError<fn()>>();
    send_sync::<Metrics>();
    send_sync::<PoolReport>();
}
