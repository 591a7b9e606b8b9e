//! `Hierarchy::parse` (SPEC §2) of any text, with the default rules and
//! with rules that take every node type as an assessment.
#![no_main]
use exhaust_core::hierarchy::{AssessmentRules, Hierarchy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Hierarchy::parse("do_fuzz", text, &AssessmentRules::default());
    let wide = AssessmentRules {
        content_types: vec!["Resource".into(), "SelfAssess".into(), String::new()],
        object_types: vec!["Content".into(), "QuestionSet".into()],
        primary_categories: vec!["Course Assessment".into(), "Practice Question Set".into()],
    };
    let _ = Hierarchy::parse("do_fuzz", text, &wide);
});
