//! `exhaust token create|list|revoke` end to end, on the default SQLite
//! file and on PostgreSQL: a token is printed once (the last line), kept
//! only as a hash, listed without its text, and revoked.

mod common;

use common::exhaust;
use exhaust_core::auth::{token_hash, token_id};
use exhaust_sources::testing::{fresh_schema, test_pg_url};

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout).into_owned()
}

fn tokens(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let mut c = exhaust(dir.path());
        c.envs(env.iter().copied()).args(args);
        c
    };
    let a = run(&[
        "token",
        "create",
        "--channel",
        "0171480710251966797",
        "--name",
        "portal",
    ])
    .assert()
    .success();
    let out = stdout(&a);
    let token = out.lines().last().expect("a last line").to_string();
    let id = token_id(&token).expect("a token").to_string();
    assert!(
        out.contains(&format!("token {id} for channel 0171480710251966797")),
        "{out}"
    );
    let a = run(&["token", "create", "--channel", "System"])
        .assert()
        .success();
    let system = stdout(&a).lines().last().expect("token").to_string();
    assert_ne!(system, token);

    // Listed by id, never with the token or its hash.
    let a = run(&["token", "list", "--json"]).assert().success();
    let out = stdout(&a);
    assert!(
        !out.contains(&token) && !out.contains(&token_hash(&token)),
        "{out}"
    );
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["channel"], "0171480710251966797");
    assert_eq!(rows[0]["name"], "portal");
    assert_eq!(rows[0]["revoked"], serde_json::Value::Null);
    let a = run(&["token", "list"]).assert().success();
    assert!(stdout(&a).contains(&id));

    run(&["token", "revoke", &id]).assert().success();
    // Once only.
    run(&["token", "revoke", &id]).assert().code(1);
    run(&["token", "revoke", "0000000000000000"])
        .assert()
        .code(1);
    let a = run(&["token", "list", "--json"]).assert().success();
    let first: serde_json::Value =
        serde_json::from_str(stdout(&a).lines().next().expect("row")).expect("json");
    assert!(first["revoked"].is_string(), "{first}");

    // A channel that is not an X-Channel-ID value is refused.
    for bad in ["", "  ", "a\tb", &"c".repeat(257)] {
        let a = run(&["token", "create", "--channel", bad]).assert().code(2);
        let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
        assert!(err.contains("channel"), "{err}");
    }
}

#[test]
fn tokens_on_sqlite() {
    tokens(&[]);
}

#[test]
fn tokens_on_postgres() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = test_pg_url();
    let schema = rt
        .block_on(fresh_schema(&url, "exhaust_tok"))
        .expect("PostgreSQL");
    let table = format!("{schema}.job_request");
    tokens(&[
        ("EXHAUST_STORE_URL", url.as_str()),
        ("EXHAUST_STORE_TABLE", table.as_str()),
    ]);
}
