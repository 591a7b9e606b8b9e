//! A deterministic generator of realistic snapshot folders (see
//! `shared/SNAPSHOT.md`), for benchmarks and for the bundled sample.
//!
//! Everything is drawn from ChaCha8 streams seeded by [`GenParams::seed`], and
//! every number is drawn with our own integer helpers rather than `rand`'s
//! distributions, so the same parameters give byte-identical files on every
//! platform and with every future version of the `rand` family. Each concern
//! (structure, users, batches, enrolments) has its own stream, so changing the
//! number of users does not change the course ids, and so on.
//!
//! The data is shaped to exercise every rule of the report: nested courses and
//! course units (some hierarchies in the older `objectType: Content` form,
//! some without `leafNodes`), leaves at depth 3, SelfAssess contents and
//! question sets, optional contents, retired collections, users missing from
//! the cache, inactive enrolments, both enrolment date columns, stale
//! `contentstatus` ids, `completedCount` in `aggregates` or only in the older
//! `agg`, `grand_total` with and without `/`, and completed learners with and
//! without certificates, in batches with and without certificate templates.
//!
//! Rows are streamed through buffered writers: memory is O(users) for the pool
//! of user ids, plus the (small) course structures, whatever the number of
//! enrolments.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use exhaust_sources::generate::{generate, GenParams};
//! let summary = generate(std::path::Path::new("sample"), &GenParams::default())?;
//! println!("{} batches", summary.batch_ids.len());
//! # Ok(())
//! # }
//! ```

mod columns;
mod course;
mod generator;
mod jsonl;
mod names;
mod random;
#[cfg(test)]
mod tests;
mod time;

use columns::*;
use course::*;
use generator::*;
use jsonl::*;
use names::*;
use random::*;
use time::*;

use crate::rows::lines::*;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// What to generate. Every field is a count except `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenParams {
    /// Number of course batches. Two batches share one course, so there are
    /// `ceil(batches / 2)` courses.
    pub batches: usize,
    /// Enrolments written for every batch (about 3% of them are users missing
    /// from the user cache).
    pub enrolments_per_batch: usize,
    /// Users in the user cache (the pool enrolments are drawn from).
    pub users: usize,
    /// Children of each course root: course units, the last one a nested
    /// course when there are at least two.
    pub units: usize,
    /// Learning resources in each unit.
    pub leaves_per_unit: usize,
    /// Assessments per course, spread over its units, alternating SelfAssess
    /// contents and question sets.
    pub assessments: usize,
    /// Most attempts one learner makes at one assessment (each learner makes
    /// 1 to `attempts`).
    pub attempts: usize,
    /// Seed of every random choice: the same parameters give the same bytes.
    pub seed: u64,
}

impl Default for GenParams {
    /// A small realistic sample: 3 batches of 40 enrolments over 120 users,
    /// 4 units of 3 leaves, 3 assessments, up to 2 attempts, seed 42.
    fn default() -> Self {
        GenParams {
            batches: 3,
            enrolments_per_batch: 40,
            users: 120,
            units: 4,
            leaves_per_unit: 3,
            assessments: 3,
            attempts: 2,
            seed: 42,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenSummary {
    /// Every batch id, in the order written to `course_batch.jsonl`.
    pub batch_ids: Vec<String>,
    /// Every course id, in the order written to `content.jsonl`.
    pub course_ids: Vec<String>,
    /// The courses whose search status is `Retired`.
    pub retired_course_ids: Vec<String>,
    /// The org ids that own courses (course `channel`s); the first owns most.
    pub channel_ids: Vec<String>,
    /// The custodian org id written to `system_settings.jsonl`.
    pub custodian_org_id: String,
    /// Each file written, with its number of lines, in the order written.
    pub rows_per_file: Vec<(String, u64)>,
    /// Enrolments whose user is not in the user cache.
    pub enrolled_not_cached: u64,
    /// Enrolments with `active: false`.
    pub inactive_enrolments: u64,
    /// Enrolments with `completedon` set.
    pub completed_enrolments: u64,
    /// Completed enrolments with a non-empty `issued_certificates` or
    /// `certificates` list.
    pub certified_enrolments: u64,
}

/// Writes a snapshot folder for `params` into `dir` (created if missing;
/// files of the same names are replaced) and says what it wrote.
///
/// Fails with [`io::ErrorKind::InvalidInput`] for parameters that cannot be
/// met (more enrolments per batch than users, leaves or assessments without
/// units, assessments without attempts, no batch), before touching `dir`, and
/// with the underlying error when a file cannot be written.
pub fn generate(dir: &Path, params: &GenParams) -> io::Result<GenSummary> {
    validate(params)?;
    std::fs::create_dir_all(dir)?;
    Generator::new(dir, params).run()
}

fn validate(p: &GenParams) -> io::Result<()> {
    let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    if p.batches == 0 {
        return invalid("batches must be at least 1".into());
    }
    if p.enrolments_per_batch > p.users {
        return invalid(format!(
            "enrolments_per_batch ({}) cannot exceed users ({}): a batch enrols distinct users",
            p.enrolments_per_batch, p.users
        ));
    }
    if p.users > u32::MAX as usize {
        return invalid(format!("users ({}) must be at most {}", p.users, u32::MAX));
    }
    if p.units == 0 && (p.leaves_per_unit > 0 || p.assessments > 0) {
        return invalid(format!(
            "units is 0 but leaves_per_unit is {} and assessments is {}: leaves need a unit to live in",
            p.leaves_per_unit, p.assessments
        ));
    }
    if p.assessments > 0 && p.attempts == 0 {
        return invalid("attempts must be at least 1 when there are assessments".into());
    }
    Ok(())
}
