//! `exhaust gen-snapshot`: write a generated snapshot folder.

use crate::args::GenArgs;
use anyhow::Context;
use exhaust_sources::generate::{GenParams, generate};
use std::time::Instant;

/// Runs `exhaust gen-snapshot`; always `Ok(true)` when it returns `Ok`.
pub fn run(args: GenArgs) -> anyhow::Result<bool> {
    let params = GenParams {
        batches: args.batches,
        enrolments_per_batch: args.enrolments_per_batch,
        users: args.users,
        units: args.units,
        leaves_per_unit: args.leaves_per_unit,
        assessments: args.assessments,
        attempts: args.attempts,
        seed: args.seed,
    };
    let started = Instant::now();
    let summary = generate(&args.out, &params)
        .with_context(|| format!("generating {}", args.out.display()))?;
    println!(
        "wrote {} in {:.1}s: {} batches ({}), {} courses",
        args.out.display(),
        started.elapsed().as_secs_f64(),
        summary.batch_ids.len(),
        summary.batch_ids.join(", "),
        summary.course_ids.len()
    );
    for (file, rows) in &summary.rows_per_file {
        println!("  {file}: {rows} rows");
    }
    Ok(true)
}
