//! The batch summary over generated batches (proptest): counted while the
//! rows are written, it holds the numbers the written rows hold, and the
//! same rows in another order give the same summary.

use exhaust_core::layout::Layout;
use exhaust_core::memory::MemorySource;
use exhaust_core::report::{ReportOptions, VecSink, build_rows, plan_batch};
use exhaust_core::strategies::{BatchData, batch_source, shuffled};
use exhaust_core::summary::{BatchSummary, SummarySink};
use exhaust_core::testing::block_on;
use proptest::prelude::*;

fn build(src: &MemorySource, data: &BatchData, opts: &ReportOptions) -> (VecSink, BatchSummary) {
    let plan = block_on(plan_batch(src, &data.batch_id, None, opts)).expect("plans");
    let mut sink = SummarySink::new(VecSink::default());
    block_on(build_rows(src, &plan, opts, &mut sink)).expect("builds");
    let (rows, summary) = sink.into_parts();
    (rows, summary.expect("a summary"))
}

fn column(sink: &VecSink, name: &str) -> Vec<String> {
    let i = sink.header.iter().position(|h| h == name).expect("column");
    sink.rows.iter().map(|r| r[i].clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_summary_holds_the_rows_numbers(
        (data, reordered) in batch_source(0..25).prop_flat_map(|d| {
            let s = shuffled(&d.source);
            (Just(d), s)
        }),
        lern in any::<bool>(),
    ) {
        let opts = ReportOptions {
            layout: if lern { Layout::Lern } else { Layout::Seed },
            ..ReportOptions::default()
        };
        let (sink, summary) = build(&data.source, &data, &opts);
        prop_assert_eq!(summary.learners, sink.rows.len() as u64);
        let progress: Vec<u64> = column(&sink, "Progress")
            .iter()
            .map(|p| p.parse().expect("a number"))
            .collect();
        for b in summary.progress.as_ref().expect("bands") {
            let n = progress
                .iter()
                .filter(|p| (u64::from(b.min)..=u64::from(b.max)).contains(p))
                .count() as u64;
            prop_assert_eq!(b.learners, n, "{}", &b.label);
        }
        for u in &summary.units {
            let cells = column(&sink, &format!("{} - Progress", u.content_id));
            let count = |f: &dyn Fn(&str) -> bool| cells.iter().filter(|c| f(c)).count() as u64;
            prop_assert_eq!(u.completed, count(&|c| c == "100"));
            prop_assert_eq!(u.not_started, count(&|c| c == "0"));
            prop_assert_eq!(u.blank, count(&|c| c.is_empty()));
            prop_assert_eq!(u.in_progress, sink.rows.len() as u64 - u.completed - u.not_started - u.blank);
        }
        for a in &summary.assessments {
            let cells = column(&sink, &format!("{} - Score", a.content_id));
            let scored = cells.iter().filter(|c| !c.is_empty()).count() as u64;
            prop_assert_eq!(a.attempted, scored);
            prop_assert_eq!(a.bins.iter().map(|b| b.learners).sum::<u64>(), scored);
        }
        let statuses = column(&sink, "Certificate Status");
        for s in summary.certificates.as_ref().expect("certificates") {
            prop_assert_eq!(s.learners, statuses.iter().filter(|v| **v == s.status).count() as u64);
        }
        let t = summary.timeline.as_ref().expect("timeline");
        let enrolled: u64 = t.periods.iter().map(|p| p.enrolled).sum();
        prop_assert_eq!(enrolled + t.enrolled_undated, summary.learners);
        let completed: u64 = t.periods.iter().map(|p| p.completed).sum();
        let with_date = column(&sink, "Completion Date").iter().filter(|c| !c.is_empty()).count() as u64;
        prop_assert_eq!(completed, with_date);

        // Another order of the same rows, the same summary.
        let (_, again) = build(&reordered, &data, &opts);
        prop_assert_eq!(again, summary);
    }
}
