//! `exhaust schema`: the SQL a DBA applies, the shipped files for the
//! default table and the configured table's otherwise.

mod common;
use common::command as exhaust;

#[test]
fn schema_prints_the_shipped_sql_for_the_table() {
    let out = exhaust().arg("schema").output().expect("runs");
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).expect("utf-8");
    let dir = exhaust_sources::testing::workspace_dir().join("deploy/sql");
    let shipped = format!(
        "{}\n{}",
        std::fs::read_to_string(dir.join("job_request.sql")).expect("request"),
        std::fs::read_to_string(dir.join("exhaust_api_token.sql")).expect("token")
    );
    assert_eq!(printed, shipped);

    let out = exhaust()
        .args(["schema", "--table", "analytics.dev_job_request"])
        .output()
        .expect("runs");
    let printed = String::from_utf8(out.stdout).expect("utf-8");
    for named in [
        "CREATE TABLE IF NOT EXISTS \"analytics\".\"dev_job_request\"",
        "\"dev_job_request_pending_idx\" ON \"analytics\".\"dev_job_request\"",
        "CREATE TABLE IF NOT EXISTS \"analytics\".\"exhaust_api_token\"",
    ] {
        assert!(printed.contains(named), "{named} not in {printed}");
    }
    let out = exhaust()
        .args(["schema", "--table", "x; DROP TABLE y"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "no SQL for a bad name: {out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not a plain identifier"), "{said}");
}
