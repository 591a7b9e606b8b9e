//! The reader threads: a rayon pool started on first use and kept for the
//! `Snapshot`'s life, the parts of a read spread over it and joined in
//! order, and reads run off the caller's thread.

use super::*;

impl Inner {
    /// The reader threads (`threads` of them), started on first use.
    pub(super) fn pool(&self) -> SourceResult<&rayon::ThreadPool> {
        self.pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.opts.threads.max(1))
                    .thread_name(|i| format!("exhaust-snapshot-{i}"))
                    // A panicking read drops its result: the waiting
                    // caller gets an error instead of the process aborting.
                    .panic_handler(|_| tracing::error!("a snapshot reader thread panicked"))
                    .build()
                    .map_err(|e| {
                        SourceError::unavailable(
                            SOURCE,
                            format!("cannot start the reader threads: {e}"),
                        )
                    })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Runs `f` over parts of `users` on up to `threads` threads and joins
    /// the results in order. Worth it only for chunks of some size.
    pub(super) fn parallel<T: Send>(
        &self,
        users: &[UserId],
        f: impl Fn(&[UserId]) -> SourceResult<Vec<T>> + Sync,
    ) -> SourceResult<Vec<T>> {
        let threads = self.opts.threads.max(1);
        if threads == 1 || users.len() < 256 {
            return f(users);
        }
        // A few parts per thread, so a thread that finishes early takes
        // over the work of one that is slow.
        let part = users.len().div_ceil(threads * 4).max(128);
        let pool = self.pool()?;
        // On the pool: called from one of its threads (a chunk's read), the
        // parts are shared with the other threads by work stealing.
        let results: Vec<SourceResult<Vec<T>>> =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.install(|| users.par_chunks(part).map(&f).collect())
            }))
            .map_err(|_| reader_panicked())?;
        let results = results.into_iter().collect::<SourceResult<Vec<_>>>()?;
        let mut out = Vec::with_capacity(results.iter().map(Vec::len).sum());
        for r in results {
            out.extend(r);
        }
        Ok(out)
    }
}

impl Snapshot {
    /// Runs `f` on the reader pool and waits for it without holding the
    /// caller's thread: the report builds one chunk's rows while the next
    /// chunk's lines are read (`build_rows` polls the reads first). The
    /// pool shares the tables and indexes; if the caller stops waiting,
    /// the read still finishes and its result is dropped.
    pub(super) fn off_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> SourceResult<T> + Send + 'static,
    ) -> impl Future<Output = SourceResult<T>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let started = self.inner.pool().map(|pool| {
            pool.spawn(move || {
                // The receiver is gone only when the caller stopped waiting.
                let _ = tx.send(f(&inner));
            });
        });
        async move {
            started?;
            rx.await.unwrap_or_else(|_| Err(reader_panicked()))
        }
    }
}
