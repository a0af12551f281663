//! A source that counts how many items were pulled from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Default)]
pub(crate) struct Pulled(Arc<AtomicU64>);

impl Pulled {
    /// `0..limit`, counting each item as it is pulled.
    pub(crate) fn source(&self, limit: u64) -> impl Iterator<Item = u64> + Send + 'static {
        let pulled = self.0.clone();
        (0..limit).inspect(move |_| {
            pulled.fetch_add(1, Ordering::SeqCst);
        })
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
