//! Stages whose functions fail with different error types: each converts into the pipeline's error
//! with `?`, and the pipeline's error type flows from the stage functions, with no turbofish.

use bounded_cancel::Context;
use bounded_pipeline::{Pipeline, PipelineError};

#[derive(Debug, PartialEq)]
enum ImportError {
    Parse(std::num::ParseIntError),
    Io(String),
}

impl From<std::num::ParseIntError> for ImportError {
    fn from(err: std::num::ParseIntError) -> Self {
        ImportError::Parse(err)
    }
}

fn store(n: i64) -> Result<i64, std::io::Error> {
    if n < 0 {
        Err(std::io::Error::other("negative balance"))
    } else {
        Ok(n)
    }
}

#[tokio::test]
async fn each_stage_converts_its_own_error_into_the_pipelines() {
    let rows = vec!["1", "2", "x", "4"];
    let output = Pipeline::new(&Context::new())
        .source(rows)
        .map(2, |_ctx, row: &str| async move { Ok(row.parse::<i64>()?) })
        .map(2, |_ctx, n| async move {
            store(n).map_err(|e| ImportError::Io(e.to_string()))
        })
        .output();
    match output.try_collect().await {
        Err(PipelineError::Failed {
            error: ImportError::Parse(_),
            stage,
            index,
        }) => {
            assert_eq!((stage.as_str(), index), ("map", 2));
        }
        other => panic!("expected the parse error of row 2, got {other:?}"),
    }

    let output = Pipeline::new(&Context::new())
        .source(vec!["1", "-2"])
        .map(1, |_ctx, row: &str| async move { Ok(row.parse::<i64>()?) })
        .map(1, |_ctx, n| async move {
            store(n).map_err(|e| ImportError::Io(e.to_string()))
        })
        .output();
    assert!(matches!(
        output.try_collect().await,
        Err(PipelineError::Failed {
            error: ImportError::Io(_),
            ..
        })
    ));
}
