use std::any::Any;

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
