//! The four-stage `orders` example stores every valid order and names the slow stage.

#[path = "../examples/orders.rs"]
#[allow(dead_code, unreachable_pub)]
mod orders;

use std::time::Duration;

use bounded_cancel::{Context, live};

#[tokio::test(start_paused = true)]
async fn the_example_stores_every_valid_order_and_finds_the_bottleneck() {
    let report = orders::run(&Context::new(), 400, Duration::from_millis(50), false)
        .await
        .unwrap();
    assert_eq!(report.stored, 360, "400 orders less the 40 test orders");
    let names: Vec<&str> = report.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["orders", "fetch", "enrich", "validate", "store"]);
    let validate = &report.stages[3];
    assert_eq!((validate.items_in, validate.items_out), (400, 360));
    assert_eq!(report.bottleneck, "enrich");
    live::assert_none_alive().await;
}
