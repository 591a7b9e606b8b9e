//! The generator's tests: determinism, shapes, references and coverage of
//! the report rules.

use super::*;
use serde_json::Value;
use std::collections::HashSet;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const FILES: [&str; 9] = [
    "course_batch.jsonl",
    "user_enrolments.jsonl",
    "assessment_aggregator.jsonl",
    "user_activity_agg.jsonl",
    "content_hierarchy.jsonl",
    "system_settings.jsonl",
    "user_cache.jsonl",
    "relation_cache.jsonl",
    "content.jsonl",
];

fn small(seed: u64) -> GenParams {
    GenParams {
        batches: 8,
        enrolments_per_batch: 30,
        users: 100,
        units: 3,
        leaves_per_unit: 3,
        assessments: 3,
        attempts: 2,
        seed,
    }
}

fn rows(dir: &Path, name: &str) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(dir.join(name))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("{name} line {}: {e}: {line}", i + 1))?;
        assert!(v.is_object(), "{name} line {} is not an object", i + 1);
        out.push(v);
    }
    Ok(out)
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

#[test]
fn same_params_give_identical_bytes() -> TestResult {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let sa = generate(a.path(), &small(7))?;
    let sb = generate(b.path(), &small(7))?;
    assert_eq!(sa, sb);
    for f in FILES {
        let (x, y) = (
            std::fs::read(a.path().join(f))?,
            std::fs::read(b.path().join(f))?,
        );
        assert!(!x.is_empty() || f == "relation_cache.jsonl", "{f} is empty");
        assert!(x == y, "{f} differs between two runs");
    }
    Ok(())
}

#[test]
fn another_seed_gives_other_data() -> TestResult {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    generate(a.path(), &small(1))?;
    generate(b.path(), &small(2))?;
    for f in [
        "user_enrolments.jsonl",
        "user_cache.jsonl",
        "content_hierarchy.jsonl",
    ] {
        let (x, y) = (
            std::fs::read(a.path().join(f))?,
            std::fs::read(b.path().join(f))?,
        );
        assert!(x != y, "{f} is the same for two seeds");
    }
    Ok(())
}

#[test]
fn every_file_is_json_lines_with_the_expected_counts() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = small(3);
    let summary = generate(dir.path(), &p)?;
    for f in FILES {
        let n = rows(dir.path(), f)?.len() as u64;
        let reported = summary.rows_per_file.iter().find(|(name, _)| name == f);
        assert_eq!(reported.map(|r| r.1), Some(n), "{f}");
    }
    assert_eq!(rows(dir.path(), "user_cache.jsonl")?.len(), p.users);
    assert_eq!(
        rows(dir.path(), "user_enrolments.jsonl")?.len(),
        p.batches * p.enrolments_per_batch
    );
    assert_eq!(rows(dir.path(), "course_batch.jsonl")?.len(), p.batches);
    assert_eq!(
        rows(dir.path(), "content.jsonl")?.len(),
        p.batches.div_ceil(2)
    );
    assert_eq!(summary.batch_ids.len(), p.batches);
    let settings = rows(dir.path(), "system_settings.jsonl")?;
    assert_eq!(s(&settings[0], "id"), "custodianOrgId");
    assert_eq!(s(&settings[0], "value"), summary.custodian_org_id);
    Ok(())
}

#[test]
fn the_default_sample_is_consistent() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = GenParams::default();
    let summary = generate(dir.path(), &p)?;
    assert_eq!(summary.course_ids.len(), 2);
    assert_eq!(rows(dir.path(), "user_enrolments.jsonl")?.len(), 120);
    assert!(summary.enrolled_not_cached > 0 && summary.inactive_enrolments > 0);
    assert!(summary.completed_enrolments > summary.certified_enrolments);
    assert!(summary.certified_enrolments > 0);
    Ok(())
}

/// The bundled sample is exactly what the defaults generate: the
/// generator's output does not drift (a change to it must regenerate the
/// sample and its expected reports on purpose).
#[test]
fn the_bundled_sample_is_the_default_output() -> TestResult {
    let dir = tempfile::tempdir()?;
    generate(dir.path(), &GenParams::default())?;
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-snapshot");
    for name in FILES {
        let made = std::fs::read(dir.path().join(name))?;
        let kept = std::fs::read(bundled.join(name))?;
        assert!(made == kept, "{name} differs from the bundled sample");
    }
    Ok(())
}

#[test]
fn references_between_files_hold() -> TestResult {
    let dir = tempfile::tempdir()?;
    let summary = generate(dir.path(), &small(11))?;
    let batches: BTreeMap<String, String> = rows(dir.path(), "course_batch.jsonl")?
        .iter()
        .map(|b| (s(b, "batchid"), s(b, "courseid")))
        .collect();
    let hierarchies: BTreeMap<String, Value> = rows(dir.path(), "content_hierarchy.jsonl")?
        .iter()
        .map(|h| -> Result<(String, Value), serde_json::Error> {
            Ok((
                s(h, "identifier"),
                serde_json::from_str(h["hierarchy"].as_str().unwrap_or(""))?,
            ))
        })
        .collect::<Result<_, _>>()?;
    let contents: HashSet<String> = rows(dir.path(), "content.jsonl")?
        .iter()
        .map(|c| s(c, "identifier"))
        .collect();
    let enrolments = rows(dir.path(), "user_enrolments.jsonl")?;
    for e in &enrolments {
        let course = batches
            .get(&s(e, "batchid"))
            .ok_or("enrolment in unknown batch")?;
        assert_eq!(course, &s(e, "courseid"));
        assert!(
            hierarchies.contains_key(course),
            "no hierarchy for {course}"
        );
        assert!(contents.contains(course), "no content row for {course}");
    }
    // Attempt ids are unique and attempts belong to enrolled users.
    let enrolled: HashSet<(String, String)> = enrolments
        .iter()
        .map(|e| (s(e, "userid"), s(e, "batchid")))
        .collect();
    let mut ids = HashSet::new();
    for a in rows(dir.path(), "assessment_aggregator.jsonl")? {
        assert!(ids.insert(s(&a, "attempt_id")), "duplicate attempt id");
        assert!(enrolled.contains(&(s(&a, "user_id"), s(&a, "batch_id"))));
        let (score, max) = (a["total_score"].as_f64(), a["total_max_score"].as_f64());
        assert!(matches!((score, max), (Some(x), Some(m)) if x >= 0.0 && x <= m));
    }
    // Every content id in the hierarchies is a Sunbird-like id.
    for (id, h) in &hierarchies {
        assert_eq!(&s(h, "identifier"), id);
        let digits = &id[3..];
        assert!(id.starts_with("do_") && (19..=22).contains(&digits.len()));
        assert!(digits.bytes().all(|b| b.is_ascii_digit()));
    }
    assert_eq!(summary.course_ids.len(), hierarchies.len());
    Ok(())
}

/// The leaves of a hierarchy node as SPEC section 2 defines them.
fn leaves(node: &Value, out: &mut Vec<String>) {
    match node["children"].as_array() {
        Some(children) if !children.is_empty() && node["objectType"] != "QuestionSet" => {
            for c in children {
                leaves(c, out);
            }
        }
        _ => {
            if node["mimeType"] != COLLECTION_MIME && node["objectType"] != "Question" {
                out.push(s(node, "identifier"));
            }
        }
    }
}

#[test]
fn hierarchies_have_the_sunbird_shape() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = small(5);
    generate(dir.path(), &p)?;
    let mut without_leaf_nodes = 0;
    let mut legacy = 0;
    for row in rows(dir.path(), "content_hierarchy.jsonl")? {
        let root: Value = serde_json::from_str(row["hierarchy"].as_str().unwrap_or(""))?;
        assert_eq!(root["mimeType"], COLLECTION_MIME);
        assert_eq!(root["contentType"], "Course");
        let units = root["children"].as_array().ok_or("no children")?;
        assert_eq!(units.len(), p.units);
        for (i, u) in units.iter().enumerate() {
            assert_eq!(u["index"].as_u64(), Some(i as u64 + 1));
            let nested = i == p.units - 1;
            assert_eq!(
                u["contentType"],
                if nested { "Course" } else { "CourseUnit" }
            );
            assert_eq!(u["visibility"], if nested { "Default" } else { "Parent" });
            legacy += usize::from(u["objectType"] == "Content");
        }
        let mut computed = Vec::new();
        leaves(&root, &mut computed);
        assert_eq!(computed.len(), p.units * p.leaves_per_unit + p.assessments);
        match root["leafNodes"].as_array() {
            Some(ids) => {
                let ids: Vec<String> = ids
                    .iter()
                    .map(|v| v.as_str().unwrap_or("").to_string())
                    .collect();
                assert_eq!(ids, computed);
                assert_eq!(root["leafNodesCount"].as_u64(), Some(computed.len() as u64));
            }
            None => without_leaf_nodes += 1,
        }
    }
    assert!(without_leaf_nodes >= 1);
    assert!(legacy >= 1);
    Ok(())
}

#[test]
fn data_covers_the_report_rules() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = small(9);
    let summary = generate(dir.path(), &p)?;

    let cached: HashSet<String> = rows(dir.path(), "user_cache.jsonl")?
        .iter()
        .map(|u| s(u, "key").trim_start_matches("user:").to_string())
        .collect();
    let certified: HashSet<String> = rows(dir.path(), "course_batch.jsonl")?
        .iter()
        .filter(|b| {
            b["cert_templates"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        })
        .map(|b| s(b, "batchid"))
        .collect();
    let (mut missing, mut inactive, mut text_only) = (0, 0, 0);
    let (mut done_with, mut done_without) = (0, 0);
    for e in rows(dir.path(), "user_enrolments.jsonl")? {
        missing += usize::from(!cached.contains(&s(&e, "userid")));
        inactive += usize::from(e["active"] == false);
        text_only += usize::from(e["enrolled_date"].is_null() && e["enrolleddate"].is_string());
        if e["completedon"].is_string() && certified.contains(&s(&e, "batchid")) {
            let has = |k: &str| e[k].as_array().is_some_and(|l| !l.is_empty());
            if has("issued_certificates") || has("certificates") {
                done_with += 1;
            } else {
                done_without += 1;
            }
        }
    }
    assert!(missing > 0 && missing as u64 == summary.enrolled_not_cached);
    assert!(inactive > 0 && inactive as u64 == summary.inactive_enrolments);
    assert!(text_only > 0);
    assert!(done_with > 0 && done_without > 0);

    assert!(!summary.retired_course_ids.is_empty());
    let retired = rows(dir.path(), "content.jsonl")?
        .iter()
        .filter(|c| c["status"] == "Retired")
        .count();
    assert_eq!(retired, summary.retired_course_ids.len());

    let attempts = rows(dir.path(), "assessment_aggregator.jsonl")?;
    assert!(attempts.iter().any(|a| s(a, "grand_total").contains('/')));
    assert!(attempts.iter().any(|a| !s(a, "grand_total").contains('/')));
    assert!(
        attempts
            .iter()
            .any(|a| a["total_score"].as_f64().is_some_and(|x| x.fract() != 0.0))
    );

    let activity = rows(dir.path(), "user_activity_agg.jsonl")?;
    assert!(
        activity
            .iter()
            .all(|a| s(a, "context_id").starts_with("cb:"))
    );
    assert!(
        activity
            .iter()
            .any(|a| a["aggregates"]["completedCount"].is_number())
    );
    assert!(
        activity
            .iter()
            .any(|a| a["agg"]["completedCount"].is_number())
    );

    let optional = rows(dir.path(), "relation_cache.jsonl")?;
    assert!(!optional.is_empty() && optional.len() < summary.course_ids.len());
    for o in optional {
        assert!(s(&o, "key").ends_with(":optionalnodes"));
    }
    Ok(())
}

#[test]
fn impossible_params_are_invalid_input() -> TestResult {
    let dir = tempfile::tempdir()?;
    let base = GenParams::default();
    for bad in [
        GenParams {
            enrolments_per_batch: 121,
            ..base
        },
        GenParams { units: 0, ..base },
        GenParams {
            units: 0,
            leaves_per_unit: 0,
            ..base
        },
        GenParams {
            attempts: 0,
            ..base
        },
        GenParams { batches: 0, ..base },
    ] {
        let err = generate(&dir.path().join("x"), &bad)
            .err()
            .ok_or("accepted")?;
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        assert!(!err.to_string().is_empty());
    }
    // Nothing was written for refused parameters.
    assert!(!dir.path().join("x").exists());
    // No leaves at all is possible: a course nobody can progress in.
    let empty = GenParams {
        units: 0,
        leaves_per_unit: 0,
        assessments: 0,
        ..base
    };
    generate(dir.path(), &empty)?;
    Ok(())
}

#[test]
fn dates_format_like_sunbird() {
    let t = midnight_ms(2019, 11, 13) + 5 * 3_600_000 + 41 * 60_000 + 50_382;
    assert_eq!(iso(t), "2019-11-13T05:41:50.382Z");
    assert_eq!(sunbird_text(t), "2019-11-13 05:41:50:382+0000");
    assert_eq!(date_text(t), "2019-11-13");
    assert_eq!(date_text(midnight_ms(2024, 2, 29)), "2024-02-29");
    assert_eq!(num_text(7.0), "7");
    assert_eq!(num_text(7.5), "7.5");
}
