//! The source traits over a snapshot: batches, enrolments, users, optional
//! nodes, attempts, aggregates, hierarchies, collections and the custodian
//! org, each a read of the catalogue through the lookups.

use super::*;

// The snapshot's reads are local file scans; the live sources are the ones
// whose reads are worth counting.
impl ReadCounter for Snapshot {}

/// A chunk's data is dropped on the reader threads, which wait for the
/// next chunk while the report writes rows: off the report's thread (see
/// [`Reclaim`]). Without a pool (it could not start) it is dropped here.
impl Reclaim for Snapshot {
    fn reclaim(&self, done: Box<dyn std::any::Any + Send>) {
        match self.inner.pool() {
            Ok(pool) => pool.spawn(move || drop(done)),
            Err(_) => drop(done),
        }
    }
}

impl BatchSource for Snapshot {
    async fn course_batch(&self, id: &BatchId) -> SourceResult<Option<CourseBatch>> {
        Ok(self.inner.batches()?.get(id.as_str()).cloned())
    }
}

impl CollectionBatchSource for Snapshot {
    async fn batches_of(&self, collections: &[ContentId]) -> SourceResult<Vec<CourseBatch>> {
        let wanted: HashSet<&str> = collections.iter().map(ContentId::as_str).collect();
        Ok(self
            .inner
            .batches()?
            .values()
            .filter(|b| wanted.contains(b.course_id.as_str()))
            .cloned()
            .collect())
    }
}

impl EnrolmentSource for Snapshot {
    async fn enrolments<F>(&self, batch: &CourseBatch, mut on_chunk: F) -> SourceResult<()>
    where
        F: FnMut(Vec<EnrolmentRecord>) + Send,
    {
        let inner = &*self.inner;
        let Some(t) = inner.table(ENROLMENTS.table)? else {
            return Ok(());
        };
        let chunk_size = inner.opts.enrolment_chunk.max(1);
        let mut chunk = Vec::with_capacity(chunk_size);
        let _ = inner.first_batch.set(batch.batch_id.clone());
        // The report reads profiles, attempts and aggregates right after the
        // enrolments: index those tables meanwhile, each on a thread of its
        // own (a first run that digests them parses every line: a thread
        // each keeps every core busy until the last is done). Errors are
        // kept in the cells and reported by the lookups.
        std::thread::scope(|s| {
            if inner.opts.threads > 1 {
                s.spawn(|| inner.view::<Users>(&inner.users, USERS).map(drop));
                s.spawn(|| inner.view::<Attempts>(&inner.attempts, ATTEMPTS).map(drop));
                s.spawn(|| {
                    inner
                        .view::<Activities>(&inner.activity, ACTIVITY)
                        .map(drop)
                });
            }
            inner.digest_of::<Enrolments>(&inner.enrolments, ENROLMENTS)?;
            let mut bufs = Bufs::default();
            // Lines whose batch id could not be read: one that mentions this
            // batch's id is parsed, and fails the batch naming its line (a
            // bad line of another batch does not fail this one).
            let needle = serde_json::to_string(batch.batch_id.as_str())
                .map_err(|e| SourceError::bad_data(SOURCE, e.to_string()))?;
            // A row of this batch as a record; `None` for another batch's.
            let record = |line_at: &dyn Fn() -> usize, row: EnrolmentRow| {
                if row.batchid.as_deref() != Some(batch.batch_id.as_str()) {
                    return Ok(None);
                }
                row.into_record()
                    .map(Some)
                    .map_err(|e| row_error(t, line_at(), &e))
            };
            inner.each_item::<Enrolments, _>(
                &inner.enrolments,
                ENROLMENTS,
                t,
                UNREADABLE,
                &mut bufs,
                &mut |line_at, item| {
                    if let Item::Line(line) = item
                        && !line.contains(needle.as_str())
                    {
                        return Ok(());
                    }
                    let row = row_of::<Enrolments>(t, line_at, item)?;
                    chunk.extend(record(line_at, row)?);
                    Ok(())
                },
            )?;
            // The batch's own lines, parsed on `threads` threads and handed
            // on in file order (the report keeps the first row of a user).
            let view = inner.view::<Enrolments>(&inner.enrolments, ENROLMENTS)?;
            let runs: Vec<(u64, u32)> = match view {
                View::Lines(index) => index.runs(batch.batch_id.as_str()).collect(),
                View::Digest(d) => d.digest.runs(batch.batch_id.as_str()).collect(),
            };
            inner.runs_in_order(
                &runs,
                |bufs, run, out| {
                    let read = inner.run_items::<Enrolments, _>(
                        view,
                        t,
                        run,
                        bufs,
                        &mut |line_at, item| {
                            let row = row_of::<Enrolments>(t, line_at, item)?;
                            out.extend(record(line_at, row)?);
                            Ok(())
                        },
                    )?;
                    // Runs before this one may be handed on already: the
                    // read fails rather than give a batch twice or in part.
                    match (read, view) {
                        (Err(damaged), View::Digest(d)) => Err(inner.found_damaged(d, damaged)),
                        _ => Ok(()),
                    }
                },
                |records| {
                    for record in records {
                        chunk.push(record);
                        if chunk.len() >= chunk_size {
                            on_chunk(std::mem::replace(
                                &mut chunk,
                                Vec::with_capacity(chunk_size),
                            ));
                        }
                    }
                },
            )
        })?;
        if !chunk.is_empty() {
            on_chunk(chunk);
        }
        Ok(())
    }
}

impl Inner {
    /// The user id a user cache key names: the rest of `user:<id>`.
    pub(super) fn user_id_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.opts.user_key_prefix.as_str())
    }
}

impl UserSource for Snapshot {
    async fn users(&self, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        let ids = ids.to_vec();
        self.off_thread(move |inner| inner.users(&ids)).await
    }
}

impl Inner {
    pub(super) fn users(&self, ids: &[UserId]) -> SourceResult<Vec<Option<UserEntry>>> {
        // Found or built once, before the lookups are split across threads.
        self.view::<Users>(&self.users, USERS)?;
        let Some(t) = self.table(USERS.table)? else {
            return Ok(vec![None; ids.len()]);
        };
        self.parallel(ids, |ids| {
            self.part_items::<Users, _, _>(
                &self.users,
                USERS,
                t,
                ids,
                || vec![None; ids.len()],
                |found, i, at, item| {
                    let row = row_of::<Users>(t, at, item)?;
                    // Runs are found by hash: only this user's lines count,
                    // the last one found winning.
                    if row.key.as_deref().and_then(|k| self.user_id_of(k)) == Some(ids[i].as_str())
                    {
                        found[i] = Some(row.value.0);
                    }
                    Ok(())
                },
            )
        })
    }
}

impl OptionalNodeSource for Snapshot {
    async fn optional_nodes(&self, collection: &ContentId) -> SourceResult<HashSet<String>> {
        let key = format!(
            "{c}:{c}:{}",
            self.inner.opts.optional_nodes_suffix,
            c = collection.as_str()
        );
        Ok(self
            .inner
            .relations()?
            .get(&key)
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default())
    }
}

impl AttemptSource for Snapshot {
    async fn attempts(
        &self,
        collection: &ContentId,
        users: &[UserId],
    ) -> SourceResult<Vec<AssessmentAttempt>> {
        let (collection, users) = (collection.clone(), users.to_vec());
        self.off_thread(move |inner| inner.attempts(&collection, &users))
            .await
    }
}

impl ActivitySource for Snapshot {
    async fn activity(
        &self,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> SourceResult<Vec<ActivityAggregate>> {
        let (batch, activities, users) = (batch.clone(), activities.to_vec(), users.to_vec());
        self.off_thread(move |inner| inner.activity(&batch, &activities, &users))
            .await
    }
}

impl Inner {
    pub(super) fn attempts(
        &self,
        collection: &ContentId,
        users: &[UserId],
    ) -> SourceResult<Vec<AssessmentAttempt>> {
        // Found or built once, before the lookups are split across threads.
        self.view::<Attempts>(&self.attempts, ATTEMPTS)?;
        let Some(t) = self.table(ATTEMPTS.table)? else {
            return Ok(Vec::new());
        };
        self.parallel(users, |users| {
            let found = self.part_items::<Attempts, _, _>(
                &self.attempts,
                ATTEMPTS,
                t,
                users,
                || Found::with_capacity(users.len() * 8),
                |found, i, at, item| {
                    let row = row_of::<Attempts>(t, at, item)?;
                    // Runs are found by hash: only this user's lines count.
                    if row.user_id.as_deref() != Some(users[i].as_str()) {
                        return Ok(());
                    }
                    let a = row.into_attempt().map_err(|e| {
                        SourceError::bad_data(SOURCE, format!("assessment_aggregator: {e}"))
                    })?;
                    if &a.course_id == collection {
                        found.push(i, a);
                    }
                    Ok(())
                },
            )?;
            Ok(found.in_key_order())
        })
    }
}

impl Inner {
    pub(super) fn activity(
        &self,
        batch: &BatchId,
        activities: &[ContentId],
        users: &[UserId],
    ) -> SourceResult<Vec<ActivityAggregate>> {
        // Found or built once, before the lookups are split across threads.
        self.view::<Activities>(&self.activity, ACTIVITY)?;
        let Some(t) = self.table(ACTIVITY.table)? else {
            return Ok(Vec::new());
        };
        let wanted: rustc_hash::FxHashSet<&str> =
            activities.iter().map(ContentId::as_str).collect();
        let context = format!("cb:{batch}");
        self.parallel(users, |users| {
            let found = self.part_items::<Activities, _, _>(
                &self.activity,
                ACTIVITY,
                t,
                users,
                || Found::with_capacity(users.len() * 8),
                |found, i, at, item| {
                    let row = row_of::<Activities>(t, at, item)?;
                    let relevant = row.activity_type.as_deref() == Some("Course")
                        && row.context_id.as_deref() == Some(context.as_str())
                        && row
                            .activity_id
                            .as_deref()
                            .is_some_and(|a| wanted.contains(a));
                    if relevant {
                        let agg = row.into_aggregate().map_err(|e| {
                            SourceError::bad_data(SOURCE, format!("user_activity_agg: {e}"))
                        })?;
                        if agg.user_id == users[i] {
                            found.push(i, agg);
                        }
                    }
                    Ok(())
                },
            )?;
            Ok(found.in_key_order())
        })
    }
}

impl HierarchySource for Snapshot {
    async fn hierarchy(&self, collection: &ContentId) -> SourceResult<Option<String>> {
        let index = self.inner.index(&self.inner.hierarchies, HIERARCHIES)?;
        let Some(t) = self.inner.table(HIERARCHIES.table)? else {
            return Ok(None);
        };
        let mut found = None;
        let mut buf = Vec::new();
        for (offset, len) in index.runs(collection.as_str()) {
            read_run(t, offset, len, &mut buf, &mut |line_at, line| {
                let row: HierarchyRow = serde_json::from_str(line)
                    .map_err(|e| row_error(t, line_at(), &e.to_string()))?;
                if row.identifier.as_deref() == Some(collection.as_str()) {
                    found = match row.hierarchy {
                        Some(serde_json::Value::String(s)) => Some(s),
                        // A hierarchy stored as an object rather than its text.
                        Some(v @ serde_json::Value::Object(_)) => Some(v.to_string()),
                        _ => None,
                    };
                }
                Ok(())
            })?;
        }
        Ok(found)
    }
}

impl CollectionSource for Snapshot {
    async fn collections(&self, ids: &[ContentId]) -> SourceResult<Vec<CollectionMeta>> {
        let wanted: HashSet<&str> = ids.iter().map(ContentId::as_str).collect();
        Ok(self
            .inner
            .contents()?
            .iter()
            .filter(|(m, _)| wanted.contains(m.identifier.as_str()))
            .map(|(m, _)| m.clone())
            .collect())
    }

    async fn search(&self, body: &serde_json::Value) -> SourceResult<Vec<CollectionMeta>> {
        let filters = body
            .pointer("/request/filters")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| {
                SourceError::bad_data(SOURCE, "a search filter needs request.filters")
            })?;
        let mut out = Vec::new();
        for (meta, raw) in self.inner.contents()? {
            if matches_filters(raw, filters)? {
                out.push(meta.clone());
            }
        }
        Ok(out)
    }
}

impl CustodianOrgSource for Snapshot {
    async fn custodian_org(&self) -> SourceResult<Option<OrgId>> {
        self.inner
            .custodian
            .get_or_init(|| {
                #[derive(Deserialize)]
                struct Row {
                    id: Option<String>,
                    value: Option<String>,
                }
                let mut found = None;
                if let Some(t) = self.inner.table("system_settings")? {
                    read_all(t, |line, n| {
                        let row: Row = parse(t, n, line)?;
                        if row.id.as_deref() == Some("custodianOrgId") {
                            found = row.value.map(OrgId::new);
                        }
                        Ok(())
                    })?;
                }
                Ok(found)
            })
            .clone()
    }
}
