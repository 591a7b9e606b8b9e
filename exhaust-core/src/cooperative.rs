//! A source that yields to the runtime before each read, so that a build
//! over a source that computes on the caller's thread (the snapshot reader
//! reads files synchronously) still has a point between two chunks where
//! the runner sees its stop deadline: a future that never returns `Pending`
//! cannot be abandoned by a select. Reads are per chunk of users, so the
//! cost is one yield per chunk.

use crate::runner::Clock;
use crate::source::{ReadCounter, ReadStats, Reclaim, ReportSource};

/// `source`, yielding once (through `clock`, the runtime's yield) before
/// each read.
#[derive(Debug)]
pub struct Cooperative<'a, S, C> {
    /// The source read.
    pub source: &'a S,
    /// Whose yield is used.
    pub clock: &'a C,
}

impl<S: ReadCounter, C> ReadCounter for Cooperative<'_, S, C> {
    fn read_counts(&self) -> Vec<(&'static str, ReadStats)> {
        self.source.read_counts()
    }
}

impl<S: Reclaim, C> Reclaim for Cooperative<'_, S, C> {
    fn reclaim(&self, done: Box<dyn std::any::Any + Send>) {
        self.source.reclaim(done);
    }
}

/// Yields, then reads.
macro_rules! after_yield {
    ($self:ident, $method:ident($($arg:expr),*)) => {{
        $self.clock.yield_now().await;
        $self.source.$method($($arg),*).await
    }};
}

crate::forward_report_source!(impl [S: ReportSource, C: Clock] for Cooperative<'_, S, C> => after_yield);
