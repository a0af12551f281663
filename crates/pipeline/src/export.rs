//! Each stage's counters on the `metrics` facade (feature `metrics`), labelled `stage` with the
//! stage's name (`Stage::named`, or its kind: `source`, `map`, ...). Handles are registered when the
//! stage starts; with no recorder installed they do nothing.
//!
//! | name | kind | what |
//! | --- | --- | --- |
//! | `bounded_pipeline_items_in_total` | counter | items the stage took from its input |
//! | `bounded_pipeline_items_out_total` | counter | items it passed on |
//! | `bounded_pipeline_errors_total` | counter | errors its function returned |
//! | `bounded_pipeline_busy_workers` | gauge | workers running its function now (`StageMetrics::busy`) |

use bounded_sync::gauge::SharedGauge;
use metrics::{Counter, Unit, counter, describe_counter, describe_gauge};

pub(crate) struct Exported {
    pub(crate) items_in: Counter,
    pub(crate) items_out: Counter,
    pub(crate) errors: Counter,
    pub(crate) busy: SharedGauge,
}

impl Exported {
    pub(crate) fn new(stage: &str) -> Self {
        describe();
        let stage = stage.to_owned();
        Exported {
            items_in: counter!("bounded_pipeline_items_in_total", "stage" => stage.clone()),
            items_out: counter!("bounded_pipeline_items_out_total", "stage" => stage.clone()),
            errors: counter!("bounded_pipeline_errors_total", "stage" => stage.clone()),
            busy: SharedGauge::register("bounded_pipeline_busy_workers", "stage", stage),
        }
    }
}

/// What each metric means, for exporters that show it (Prometheus's `# HELP`). Said again at each
/// registration: a recorder installed after the first would not know it otherwise.
fn describe() {
    describe_counter!(
        "bounded_pipeline_items_in_total",
        Unit::Count,
        "Items a pipeline stage took from its input"
    );
    describe_counter!(
        "bounded_pipeline_items_out_total",
        Unit::Count,
        "Items a pipeline stage passed on"
    );
    describe_counter!(
        "bounded_pipeline_errors_total",
        Unit::Count,
        "Errors a pipeline stage's function returned"
    );
    describe_gauge!(
        "bounded_pipeline_busy_workers",
        Unit::Count,
        "Workers of a pipeline stage running its function now"
    );
}
