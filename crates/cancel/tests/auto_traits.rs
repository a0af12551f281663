//! Every public future and handle is `Send`, and `Sync` or `Unpin` where users rely on it.

use bounded_cancel::live::{StillAlive, Tracked};
use bounded_cancel::{Cancelled, Cause, Context, Run, Shutdown, ShutdownReport};

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn unpin<T: Unpin>() {}

#[test]
fn public_types_have_the_expected_auto_traits() {
    send::<Context>();
    sync::<Context>();
    unpin::<Context>();
    send::<Cause>();
    sync::<Cause>();
    send::<Cancelled<'static>>();
    sync::<Cancelled<'static>>();
    unpin::<Cancelled<'static>>();
    send::<Run<'static, std::future::Ready<()>>>();
    send::<Shutdown>();
    sync::<Shutdown>();
    send::<ShutdownReport>();
    send::<StillAlive>();
    send::<Tracked<std::future::Ready<()>>>();
    unpin::<Tracked<std::future::Ready<()>>>();
}

#[cfg(feature = "tower")]
#[test]
fn a_grpc_response_body_is_send_and_sync_like_the_body_it_wraps() {
    use bounded_cancel::tower::ContextBody;
    send::<ContextBody<String>>();
    sync::<ContextBody<String>>();
    unpin::<ContextBody<String>>();
}
