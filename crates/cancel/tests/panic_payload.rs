//! A caught panic's payload is `Send + Sync`, reads as its message, and gives back the value the
//! code panicked with.

use std::panic::{AssertUnwindSafe, catch_unwind};

use bounded_cancel::PanicPayload;

fn caught(f: impl FnOnce()) -> PanicPayload {
    PanicPayload::new(catch_unwind(AssertUnwindSafe(f)).unwrap_err())
}

fn send_sync<T: Send + Sync>() {}

#[test]
fn every_kind_of_payload_keeps_its_message_and_its_value() {
    send_sync::<PanicPayload>();
    let literal = caught(|| panic!("no account"));
    assert_eq!(literal.message(), "no account");
    assert_eq!(format!("{literal:?}"), "PanicPayload(\"no account\")");
    assert_eq!(
        *literal.into_inner().downcast::<&str>().unwrap(),
        "no account"
    );

    let row = std::hint::black_box(7);
    let formatted = caught(|| panic!("row {row} is bad"));
    assert_eq!(formatted.to_string(), "row 7 is bad");
    assert_eq!(
        *formatted.into_inner().downcast::<String>().unwrap(),
        "row 7 is bad"
    );

    // Any other value: not shared, only given back.
    let other = caught(|| std::panic::panic_any(vec![1u8, 2]));
    assert_eq!(other.message(), "panic payload is not a string");
    assert_eq!(*other.into_inner().downcast::<Vec<u8>>().unwrap(), [1, 2]);
}

#[test]
fn resume_re_raises_with_the_same_value() {
    let payload = caught(|| std::panic::panic_any(41u32));
    let again = catch_unwind(AssertUnwindSafe(|| payload.resume())).unwrap_err();
    assert_eq!(again.downcast_ref::<u32>(), Some(&41));
    let payload = caught(|| panic!("once"));
    let again = catch_unwind(AssertUnwindSafe(|| payload.resume())).unwrap_err();
    assert_eq!(again.downcast_ref::<&str>(), Some(&"once"));
}
