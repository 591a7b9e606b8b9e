//! Properties of whole reports over generated inputs (proptest), with the
//! public strategies and invariant checks an embedder would use.

use exhaust_core::hierarchy::{AssessmentRules, Hierarchy};
use exhaust_core::invariants::{check_identical, check_report};
use exhaust_core::layout::Layout;
use exhaust_core::memory::MemorySource;
use exhaust_core::report::{BatchPlan, ReportOptions, VecSink, build_rows, plan_batch};
use exhaust_core::strategies::{BatchData, batch_source, course, shuffled};
use exhaust_core::testing::block_on;
use exhaust_core::values::AttemptChoice;
use exhaust_core::{BatchId, OrgId};
use proptest::prelude::*;

fn build(
    src: &MemorySource,
    batch: &BatchId,
    org: Option<&OrgId>,
    opts: &ReportOptions,
) -> (BatchPlan, VecSink) {
    let plan = block_on(plan_batch(src, batch, org, opts)).expect("plans");
    let mut sink = VecSink::default();
    let summary = block_on(build_rows(src, &plan, opts, &mut sink)).expect("builds");
    assert_eq!(summary.rows, sink.rows.len());
    (plan, sink)
}

/// A batch's data and the same rows in another order.
fn data_and_shuffled() -> impl Strategy<Value = (BatchData, MemorySource)> {
    batch_source(0..25).prop_flat_map(|d| {
        let s = shuffled(&d.source);
        (Just(d), s)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The hierarchy parser finds what the generator put in the tree.
    #[test]
    fn hierarchies_parse_as_generated(c in course()) {
        let h = Hierarchy::parse(c.id.as_str(), &c.hierarchy, &AssessmentRules::default())
            .expect("a generated hierarchy parses");
        let ids = |v: &[exhaust_core::ContentId]| v.iter().map(|x| x.as_str().to_owned()).collect::<Vec<_>>();
        prop_assert_eq!(ids(&h.leaves), c.leaf_nodes.clone().unwrap_or(c.leaves.clone()));
        let units: Vec<String> = h.nested.iter().map(|n| n.id.as_str().to_owned()).collect();
        prop_assert_eq!(&units, &c.units);
        for (n, want) in h.nested.iter().zip(&c.unit_leaves) {
            prop_assert_eq!(&ids(&n.leaves), want);
        }
        prop_assert_eq!(ids(&h.assessments), c.assessments);
    }

    #[test]
    fn report_invariants(
        (data, reordered) in data_and_shuffled(),
        lern in any::<bool>(),
        latest in any::<bool>(),
        org in 0u8..3,
        chunk_size in 1usize..9,
    ) {
        let opts = ReportOptions {
            layout: if lern { Layout::Lern } else { Layout::Seed },
            attempt_choice: if latest { AttemptChoice::Latest } else { AttemptChoice::BestScore },
            chunk_size,
            ..ReportOptions::default()
        };
        // No org, the collection's channel, or another org (a filter).
        let org = match org {
            0 => None,
            1 => Some(data.channel.clone()),
            _ => Some(data.other_org.clone()),
        };
        let (plan, report) = build(&data.source, &data.batch_id, org.as_ref(), &opts);
        check_report(&report, &plan, &data.source).map_err(|v| TestCaseError::fail(v.to_string()))?;
        // Progress counts the root's leaves less the optional contents.
        prop_assert_eq!(plan.required_leaves(), data.course.required_leaves().len());

        // The same input gives the same output, whatever order rows arrive in.
        let (_, again) = build(&reordered, &data.batch_id, org.as_ref(), &opts);
        check_identical(&report, &again).map_err(|v| TestCaseError::fail(v.to_string()))?;

        // The other batch of the course has the same columns.
        let (other_plan, other) = build(&data.source, &data.other_batch_id, org.as_ref(), &opts);
        prop_assert_eq!(&other.header, &report.header);
        check_report(&other, &other_plan, &data.source).map_err(|v| TestCaseError::fail(v.to_string()))?;
    }
}
