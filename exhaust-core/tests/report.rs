//! Whole reports of a hand-checked fixture, both layouts.

use exhaust_core::layout::{ColumnKey, Layout};
use exhaust_core::report::{BuildError, ReportOptions};
use exhaust_core::testing::*;
use expect_test::expect;

#[test]
fn seed_layout_report() {
    let (sink, summary) = run(&fixture(), "b1", None, &ReportOptions::default()).expect("builds");
    // u1: completed, certificate issued; unit progress from aggregates (old
    //     `agg` for U1, `aggregates` for U2); best attempt 5 on q1.
    // u2: not in the user cache (blank profile); text enrolment date; 1 of 5
    //     required leaves = 20; status 2 without a certificate = Failed;
    //     U1 from contentstatus 1/3 = 33.
    // u3: 2 of 5 required leaves = 40 (optional r4 and foreign ids ignored);
    //     best of two q1 attempts = 4; sa1 7.5; total 11.5; U1 aggregate 2/3 = 66.
    // u6: 3 of 5 = 60; U1 from contentstatus 3/3 = 100; no attempts = blank.
    expect![[r#"
        Collection Id,Collection Name,Batch Id,Batch Name,User UUID,User Name,State,District,Enrolment Date,Completion Date,Progress,Certificate Status,Total Score,do_U1 - Progress,do_U2 - Progress,do_q1 - Score,do_sa1 - Score
        do_C,Data Basics,b1,Morning,u1,Asha Rao,Kerala,Thrissur,2020-08-01 08:00:00:000+0000,2020-09-01 10:00:00:000+0000,100,Issued,5,100,100,5,
        do_C,Data Basics,b1,Morning,u2,,,,2020-08-20 09:00:00:000+0000,,20,Failed,,33,0,,
        do_C,Data Basics,b1,Morning,u3,Ravi,Karnataka,Mysuru,2020-08-25 13:45:54:150+0000,,40,,11.5,66,0,4,7.5
        do_C,Data Basics,b1,Morning,u6,Meena Iyer,Tamil Nadu,Chennai,2020-08-26 00:00:00:000+0000,,60,,,100,0,,
    "#]]
    .assert_eq(&render(&sink));
    assert_eq!(summary.rows, 4);
    assert_eq!(summary.missing_users, 1);
    assert_eq!(summary.skipped_inactive, 1);
    assert_eq!(summary.skipped_without_date, 1);
    assert_eq!(summary.enrolments_read, 6);
}

#[test]
fn lern_layout_report() {
    let opts = ReportOptions {
        layout: Layout::Lern,
        ..ReportOptions::default()
    };
    let (sink, _) = run(&fixture(), "b1", None, &opts).expect("builds");
    // Percent scores: q1 4/5 = 80%, sa1 7.5/10 = 75%; total ceil(11.5 × 100 /
    // 15) = 77%. No `Failed` in this layout. Board: first element of a list.
    expect![[r#"
        Collection Id,Collection Name,Batch Id,Batch Name,User UUID,State,District,Org Name,School Id,School Name,Block Name,Cluster Name,User Type,User Sub Type,Declared Board,Enrolment Date,Completion Date,Certificate Status,Progress,Total Score,do_U1 - Progress,do_U2 - Progress,do_q1 - Score,do_sa1 - Score
        do_C,Data Basics,BatchId_b1,Morning,u1,Kerala,Thrissur,Org One,123,GHS,B1,C1,student,,State (Kerala),01/08/2020,01/09/2020,Issued,100,100%,100,100,100%,
        do_C,Data Basics,BatchId_b1,Morning,u2,,,,,,,,,,,20/08/2020,,,20,,33,0,,
        do_C,Data Basics,BatchId_b1,Morning,u3,Karnataka,Mysuru,,,,,,,,CBSE,25/08/2020,,,40,77%,66,0,80%,75%
        do_C,Data Basics,BatchId_b1,Morning,u6,Tamil Nadu,Chennai,,,,,,,,CBSE,26/08/2020,,,60,,100,0,,
    "#]]
    .assert_eq(&render(&sink));
}

#[test]
fn another_org_sees_only_its_users() {
    let (sink, summary) =
        run(&fixture(), "b1", Some("org2"), &ReportOptions::default()).expect("builds");
    let users: Vec<&str> = sink.rows.iter().map(|r| r[4].as_str()).collect();
    assert_eq!(users, ["u6"]);
    // u1 and u3 belong to org1; u2's org is unknown (not in the cache).
    assert_eq!(summary.filtered_by_org, 3);
    // The collection's own channel, or System, sees everyone.
    for org in ["org1", "System"] {
        let (sink, _) =
            run(&fixture(), "b1", Some(org), &ReportOptions::default()).expect("builds");
        assert_eq!(sink.rows.len(), 4, "requested by {org}");
    }
}

#[test]
fn columns_by_key_and_time_zone() {
    let opts = ReportOptions {
        columns: Some(vec![
            ColumnKey::UserId,
            ColumnKey::EnrolledDate,
            ColumnKey::Board,
        ]),
        timezone: "+05:30".parse().expect("zone"),
        ..ReportOptions::default()
    };
    let (sink, _) = run(&fixture(), "b1", None, &opts).expect("builds");
    expect![[r#"
        User UUID,Enrolment Date,Declared Board,do_U1 - Progress,do_U2 - Progress,do_q1 - Score,do_sa1 - Score
        u1,2020-08-01 13:30:00:000+0530,State (Kerala),100,100,5,
        u2,2020-08-20 14:30:00:000+0530,,33,0,,
        u3,2020-08-25 19:15:54:150+0530,CBSE,66,0,4,7.5
        u6,2020-08-26 05:30:00:000+0530,CBSE,100,0,,
    "#]]
    .assert_eq(&render(&sink));
}

#[test]
fn every_batch_of_a_collection_has_the_same_columns() {
    let (b1, _) = run(&fixture(), "b1", None, &ReportOptions::default()).expect("builds");
    let (b2, _) = run(&fixture(), "b2", None, &ReportOptions::default()).expect("builds");
    assert_eq!(b1.header, b2.header);
    // b2's only learner touched nothing: its dynamic columns are still there.
    assert_eq!(b2.rows.len(), 1);
    assert_eq!(&b2.rows[0][13..], ["0", "0", "", ""]);
}

#[test]
fn latest_attempt_choice() {
    let mut src = fixture();
    // A later but lower attempt: counts only when the latest attempt is chosen.
    src.add_attempt(attempt(
        "u3",
        "b1",
        "do_q1",
        "a9",
        1.0,
        5.0,
        Some("1/5"),
        "2022-01-01T00:00:00Z",
    ));
    let best = run(&src, "b1", None, &ReportOptions::default())
        .expect("builds")
        .0;
    let opts = ReportOptions {
        attempt_choice: exhaust_core::values::AttemptChoice::Latest,
        ..ReportOptions::default()
    };
    let latest = run(&src, "b1", None, &opts).expect("builds").0;
    assert_eq!(best.rows[2][15], "4");
    assert_eq!(latest.rows[2][15], "1");
    assert_eq!(latest.rows[2][12], "8.5");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let src = fixture();
    let e = run(&src, "nope", None, &ReportOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "unknown batch nope");
    assert!(!e.is_retryable());

    let mut no_meta = fixture();
    no_meta.collections.clear();
    let e = run(&no_meta, "b1", None, &ReportOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "collection do_C of batch b1 was not found by the content search"
    );

    let mut retired = fixture();
    retired.collections[0].status = "Retired".into();
    let e = run(&retired, "b1", None, &ReportOptions::default()).unwrap_err();
    assert!(matches!(e, BuildError::RetiredCollection { .. }), "{e}");

    let mut broken = fixture();
    broken.hierarchies.insert(
        "do_C".into(),
        "{\"identifier\": \"do_C\", \"children\": [".into(),
    );
    let e = run(&broken, "b1", None, &ReportOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("hierarchy of do_C does not parse"),
        "{e}"
    );

    let mut missing = fixture();
    missing.hierarchies.clear();
    let e = run(&missing, "b1", None, &ReportOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "no hierarchy is stored for collection do_C");
}

#[test]
fn malformed_cache_entries_keep_their_row() {
    let mut src = fixture();
    src.users.insert(
        "u3".into(),
        exhaust_core::model::UserEntry::Malformed("field board is not a string".into()),
    );
    let (sink, summary) = run(&src, "b1", None, &ReportOptions::default()).expect("builds");
    assert_eq!(sink.rows.len(), 4);
    assert_eq!(sink.rows[2][4], "u3");
    assert_eq!(sink.rows[2][5], "");
    assert_eq!(summary.malformed_users, 1);
    assert_eq!(summary.malformed_examples[0].0.as_str(), "u3");
}
