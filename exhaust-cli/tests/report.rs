//! `exhaust report` end to end: output paths, file contents, errors and exit codes.

use chrono::Utc;
use exhaust_core::time::{ReportTz, file_date_stamp};
use expect_test::expect;
use std::path::{Path, PathBuf};

use exhaust_sources::testing::conformance_snapshot as conformance;

mod common;
use common::command as exhaust;

/// The stamp a run started now uses (retried around midnight in India).
fn stamps() -> Vec<String> {
    let now = Utc::now();
    vec![
        file_date_stamp(now, ReportTz::ist()),
        file_date_stamp(now + chrono::Duration::minutes(5), ReportTz::ist()),
    ]
}

fn output_file(out: &Path, batch: &str) -> PathBuf {
    let dir = out.join("progress-exhaust");
    stamps()
        .into_iter()
        .map(|s| dir.join(format!("{batch}_progress_{s}.csv")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no report for {batch} in {}: {:?}",
                dir.display(),
                files(&dir)
            )
        })
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `exhaust report --snapshot SNAPSHOT --out OUT ARGS...`, asserted on.
fn report(snapshot: &Path, out: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
    exhaust()
        .arg("report")
        .args(args)
        .arg("--snapshot")
        .arg(snapshot)
        .arg("--out")
        .arg(out)
        .assert()
}

fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
    }
}

#[test]
fn builds_the_conformance_batch_in_the_lern_layout() {
    let out = tempfile::tempdir().expect("tempdir");
    let assert = report(
        &conformance(),
        out.path(),
        &["--layout", "lern", "--batch-id", "batch-001"],
    )
    .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(stdout.contains("batch batch-001: 4 rows"), "{stdout}");
    assert!(
        stdout.contains("1 of 1 batches built, 0 failed"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(output_file(out.path(), "batch-001")).expect("report");
    // RFC 4180: CRLF line ends, a field with a comma quoted.
    assert!(csv.ends_with("\r\n") && csv.matches("\r\n").count() == 5);
    expect![[r#"
        Collection Id,Collection Name,Batch Id,Batch Name,User UUID,State,District,Org Name,School Id,School Name,Block Name,Cluster Name,User Type,User Sub Type,Declared Board,Enrolment Date,Completion Date,Certificate Status,Progress,Total Score,do_1130928636168192001667 - Progress
        do_1130928636168192001667,24 aug course,BatchId_batch-001,Basic Java,user-001,Karnataka,bengaluru,Root Org2,3183211,"DPS, MATHURA",BLOCK1,CLUSTER1,administrator,deo,IGOT-Health,16/11/2019,,,0,,
        do_1130928636168192001667,24 aug course,BatchId_batch-001,Basic Java,user-002,Andhra Pradesh,bengaluru,,,,,,,,,15/11/2019,,,0,,
        do_1130928636168192001667,24 aug course,BatchId_batch-001,Basic Java,user-003,Karnataka,bengaluru,,,,,anagha,administrator,deo,,15/11/2019,,,0,,
        do_1130928636168192001667,24 aug course,BatchId_batch-001,Basic Java,user-004,Delhi,babarpur,,,,,,,,,15/11/2019,,,0,,
    "#]]
    .assert_eq(&csv.replace("\r\n", "\n"));
}

#[test]
fn a_failing_batch_names_its_cause_and_the_others_are_still_built() {
    let out = tempfile::tempdir().expect("tempdir");
    let assert = report(
        &conformance(),
        out.path(),
        &[
            "--batch-id",
            "nope",
            "--batch-id",
            "batch-001",
            "--batch-id",
            "batch-004",
        ],
    )
    .code(1);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("error: batch nope: unknown batch nope"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: batch batch-004: collection do_112835334818643968148 of batch batch-004 was not found by the content search"),
        "{stderr}"
    );
    output_file(out.path(), "batch-001");
    // Only the batch that built has a file; nothing partial is left behind.
    let names = files(&out.path().join("progress-exhaust"));
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn a_hierarchy_that_does_not_parse_leaves_no_file() {
    let snap = tempfile::tempdir().expect("tempdir");
    copy_dir(&conformance(), snap.path());
    let path = snap.path().join("content_hierarchy.jsonl");
    let text = std::fs::read_to_string(&path).expect("read");
    let broken = text.replacen("\"hierarchy\": \"{", "\"hierarchy\": \"{{", 1);
    assert_ne!(broken, text);
    std::fs::write(&path, broken).expect("write");
    let out = tempfile::tempdir().expect("tempdir");
    let assert = report(snap.path(), out.path(), &["--batch-id", "batch-001"]).code(1);
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains(
            "error: batch batch-001: hierarchy of do_1130928636168192001667 does not parse"
        ),
        "{stderr}"
    );
    assert_eq!(
        files(&out.path().join("progress-exhaust")),
        Vec::<String>::new()
    );
}

#[test]
fn a_search_filter_builds_every_batch_of_the_matched_collections() {
    let out = tempfile::tempdir().expect("tempdir");
    report(&conformance(), out.path(), &["--search-filter",
            r#"{"request":{"filters":{"identifier":["do_1130928636168192001667"],"status":["Live"]}}}"#])
        .success();
    output_file(out.path(), "batch-001");
    output_file(out.path(), "batch-006");
}

/// `--search-filter` resolves batches by the request flow's rule: batches
/// of retired collections are dropped, and a filter that leaves nothing
/// says why.
#[test]
fn a_search_filter_drops_retired_collections_as_requests_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("snap");
    // Eight batches over four courses, one of them retired.
    exhaust()
        .args([
            "gen-snapshot",
            "--batches",
            "8",
            "--enrolments-per-batch",
            "5",
        ])
        .args(["--users", "50", "--out"])
        .arg(&snap)
        .assert()
        .success();
    let content = std::fs::read_to_string(snap.join("content.jsonl")).expect("content");
    assert!(
        content.contains(r#""status":"Retired""#),
        "the generator makes one retired course"
    );

    let out = dir.path().join("all");
    let all = report(
        &snap,
        &out,
        &["--search-filter", r#"{"request":{"filters":{}}}"#],
    )
    .success();
    let stdout = String::from_utf8_lossy(&all.get_output().stdout).into_owned();
    let built = files(&out.join("progress-exhaust")).len();
    assert!(built > 0 && built < 8, "{built} batches built: {stdout}");
    assert!(
        stdout.contains(&format!("{built} of {built} batches built")),
        "{stdout}"
    );

    for (filter, message) in [
        (
            r#"{"request":{"filters":{"status":["Retired"]}}}"#,
            "the search filter matched only batches of retired collections",
        ),
        (
            r#"{"request":{"filters":{"identifier":["do_none"]}}}"#,
            "the search filter matched no batch",
        ),
    ] {
        let out = dir.path().join("none");
        let failed = report(&snap, &out, &["--search-filter", filter]).failure();
        let stderr = stderr_of(&failed);
        assert!(stderr.contains(message), "{filter}: {stderr}");
    }
}

#[test]
fn the_file_date_follows_the_file_time_zone() {
    let out = tempfile::tempdir().expect("tempdir");
    report(
        &conformance(),
        out.path(),
        &["--batch-id", "batch-001", "--file-timezone", "UTC"],
    )
    .success();
    let names = files(&out.path().join("progress-exhaust"));
    let now = Utc::now();
    let expected: Vec<String> = [now - chrono::Duration::minutes(5), now]
        .iter()
        .map(|t| {
            format!(
                "batch-001_progress_{}.csv",
                file_date_stamp(*t, ReportTz::utc())
            )
        })
        .collect();
    assert!(
        expected.contains(&names[0]),
        "{names:?} not in {expected:?}"
    );
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    for (args, message) in [
        (
            vec!["report", "--batch-id", "b", "--layout", "wide"],
            "invalid value 'wide' for '--layout <LAYOUT>'\n  [possible values: seed, lern]",
        ),
        (
            vec!["report", "--batch-id", "b", "--columns", "userid,nope"],
            "unknown column key \"nope\"",
        ),
        (
            vec!["report", "--batch-id", "b", "--timezone", "Mars/Base"],
            "unknown time zone \"Mars/Base\"",
        ),
        (
            vec!["report"],
            "name at least one batch with --batch-id, or give --search-filter",
        ),
        (
            vec!["report", "--batch-id", "b", "--snapshot", "/no/such/folder"],
            "snapshot folder /no/such/folder not found",
        ),
        (
            vec!["report", "--search-filter", "{oops"],
            "--search-filter is not JSON",
        ),
    ] {
        let assert = exhaust().args(&args).assert().code(2);
        let stderr = stderr_of(&assert);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn a_batch_id_cannot_escape_the_output_folder() {
    let out = tempfile::tempdir().expect("tempdir");
    let assert = report(&conformance(), out.path(), &["--batch-id", "../../etc/x"]).code(1);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("cannot be used in a file name"), "{stderr}");
}

const SAMPLE_BATCH: &str = "0135742803756164562";

/// The bundled sample snapshot's first batch, in both layouts. The expected
/// files were cross-checked row by row against an independent
/// implementation of SPEC §2–5 before they were committed.
#[test]
fn the_sample_snapshot_is_the_default_and_its_reports_are_stable() {
    for layout in ["seed", "lern"] {
        let out = tempfile::tempdir().expect("tempdir");
        // No --snapshot: the bundled sample is the default.
        let assert = exhaust()
            .args([
                "report",
                "--batch-id",
                SAMPLE_BATCH,
                "--layout",
                layout,
                "--out",
            ])
            .arg(out.path())
            .assert()
            .success();
        let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
        assert!(
            stdout.contains(&format!("batch {SAMPLE_BATCH}: 38 rows")),
            "{stdout}"
        );
        assert!(
            stdout.contains("1 users missing from the user cache"),
            "{stdout}"
        );
        let csv = std::fs::read_to_string(output_file(out.path(), SAMPLE_BATCH)).expect("report");
        expect_test::expect_file![format!("expected/sample-{SAMPLE_BATCH}-{layout}.csv")]
            .assert_eq(&csv.replace("\r\n", "\n"));
    }
}

/// The binary carries the sample: a copy of it alone, run from an empty
/// folder on a machine without the repository (no snapshot configured,
/// a fresh home), builds the sample report from `--batch-id` alone.
#[test]
fn a_copied_binary_builds_the_sample_with_only_a_batch_id() {
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let bin = elsewhere.path().join("bin/exhaust");
    std::fs::create_dir_all(bin.parent().expect("bin")).expect("mkdir");
    std::fs::copy(common::exhaust_bin(), &bin).expect("copy the binary");
    let home = elsewhere.path().join("home");
    let work = elsewhere.path().join("work");
    for dir in [&home, &work] {
        std::fs::create_dir(dir).expect("mkdir");
    }
    for run in 0..2 {
        let mut cmd = assert_cmd::Command::new(&bin);
        cmd.current_dir(&work).env_clear().env("HOME", &home).args([
            "report",
            "--batch-id",
            SAMPLE_BATCH,
        ]);
        let assert = cmd.assert().success();
        let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
        assert!(
            stdout.contains(&format!("batch {SAMPLE_BATCH}: 38 rows")),
            "run {run}: {stdout}"
        );
        let csv = std::fs::read_to_string(output_file(&work, SAMPLE_BATCH)).expect("report");
        expect_test::expect_file![format!("expected/sample-{SAMPLE_BATCH}-seed.csv")]
            .assert_eq(&csv.replace("\r\n", "\n"));
        std::fs::remove_dir_all(work.join("progress-exhaust")).expect("clean");
    }
    // The tables went to the user's cache, nowhere near the build machine's tree.
    let cache: Vec<String> = std::fs::read_dir(home.join(".cache/exhaust"))
        .expect("the sample in the user's cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(cache.iter().any(|n| n.starts_with("sample-")), "{cache:?}");
}

/// `--version` names the commit and what the build writes; `--help` lists
/// the closed choices; completions come for each shell.
#[test]
fn version_help_and_completions() {
    let out = exhaust().arg("--version").output().expect("runs");
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(version, format!("exhaust {}\n", exhaust_server::version()));
    let info = exhaust_server::build_info();
    assert!(
        version.starts_with(&format!("exhaust {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(info.features.split(',').any(|f| f == "csv"), "{info:?}");
    // In a git checkout, the commit is the one checked out (the build
    // script runs `git rev-parse`); elsewhere `unknown` or $EXHAUST_GIT_HASH.
    if let Ok(git) = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        && git.status.success()
        && std::env::var("EXHAUST_GIT_HASH").is_err()
    {
        let head = String::from_utf8_lossy(&git.stdout).trim().to_string();
        assert_eq!(info.git_hash, head);
    }

    let help = exhaust().args(["report", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for listed in [
        "seed", "lern", "best", "latest", "csv", "parquet", "arrow", "xlsx",
    ] {
        assert!(help.contains(listed), "{listed} not in {help}");
    }
    let help = exhaust().args(["status", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(
        help.contains("SUBMITTED") && help.contains("FAILED"),
        "{help}"
    );

    for (shell, mark) in [
        ("bash", "_exhaust()"),
        ("zsh", "#compdef exhaust"),
        ("fish", "complete -c exhaust"),
    ] {
        let out = exhaust()
            .args(["completions", shell])
            .output()
            .expect("runs");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(script.contains(mark), "{shell}: {script}");
        assert!(script.contains("gen-snapshot"), "{shell}");
    }
    let out = exhaust()
        .args(["completions", "bash"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("seed lern"));
    exhaust().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn gen_snapshot_is_deterministic_and_checks_its_parameters() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    for dir in [&a, &b] {
        exhaust()
            .args([
                "gen-snapshot",
                "--batches",
                "2",
                "--enrolments-per-batch",
                "15",
                "--users",
                "30",
                "--seed",
                "9",
                "--out",
            ])
            .arg(dir.path())
            .assert()
            .success();
    }
    let names = files(a.path());
    assert!(
        names.contains(&"user_enrolments.jsonl".to_string()),
        "{names:?}"
    );
    for name in &names {
        assert_eq!(
            std::fs::read(a.path().join(name)).expect("a"),
            std::fs::read(b.path().join(name)).expect("b"),
            "{name} differs between two runs with the same seed"
        );
    }
    // A generated snapshot builds.
    let first = std::fs::read_to_string(a.path().join("course_batch.jsonl")).expect("batches");
    let batch: serde_json::Value =
        serde_json::from_str(first.lines().next().expect("a batch")).expect("json");
    let out = tempfile::tempdir().expect("tempdir");
    report(
        a.path(),
        out.path(),
        &["--batch-id", batch["batchid"].as_str().expect("id")],
    )
    .success();

    let assert = exhaust()
        .args([
            "gen-snapshot",
            "--enrolments-per-batch",
            "50",
            "--users",
            "10",
            "--out",
        ])
        .arg(a.path())
        .assert()
        .code(2);
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("error: generating"), "{stderr}");
}

/// `--summary` prints the batch at a glance after the batch's line, its
/// numbers those of the report just written.
#[test]
fn summary_prints_the_batch_at_a_glance() {
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/sample-snapshot");
    let out = tempfile::tempdir().expect("tempdir");
    let batch = "0135742803756164562";
    let assert = report(&sample, out.path(), &["--batch-id", batch, "--summary"]).success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let csv = std::fs::read_to_string(output_file(out.path(), batch)).expect("report");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).expect("column");
    // The sample's fields hold no commas.
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let completed = rows.iter().filter(|r| r[at("Progress")] == "100").count();
    let issued = rows
        .iter()
        .filter(|r| r[at("Certificate Status")] == "Issued")
        .count();
    for title in [
        "Learners by progress",
        "Completion of each unit",
        "Scores in ",
        "Enrolments and completions over time",
        "Certificate status",
    ] {
        assert!(stdout.contains(title), "{title} missing:\n{stdout}");
    }
    let pct = |n: usize| (n as f64 * 100.0 / rows.len() as f64).round();
    assert!(
        stdout.contains(&format!(
            "{} learners in the batch: {completed} ({}%) completed the course",
            rows.len(),
            pct(completed)
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Issued                    {issued:>2}")),
        "{stdout}"
    );
    // Without the flag, no summary.
    let again = tempfile::tempdir().expect("tempdir");
    let plain = report(&sample, again.path(), &["--batch-id", batch]).success();
    let stdout = String::from_utf8_lossy(&plain.get_output().stdout).into_owned();
    assert!(!stdout.contains("Learners by progress"), "{stdout}");
}
