//! Sunbird's Cassandra tables with their real CQL types, and a loader that
//! turns a snapshot folder's rows into CQL inserts.
//!
//! The DDL follows Sunbird's (sunbird-course-service, data-products'
//! `data.cql`, relation-cache-updater's `test.cql`), except that
//! `assessment_aggregator.question` (a list of a user-defined type) is left
//! out: the report never reads it and kassandra has no user-defined types.

use crate::CassandraConfig;
use exhaust_core::time::parse_sunbird_timestamp;
use futures_util::stream::{FuturesUnordered, StreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// A column's CQL type, as far as the loader needs to know it.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Text,
    Int,
    Double,
    Bool,
    Timestamp,
    MapTextInt,
    MapTextDouble,
    MapTextTimestamp,
    /// `map<text, frozen<map<text, text>>>`
    MapTextMapText,
    /// `list<frozen<map<text, text>>>`
    ListMapText,
    ListText,
}

impl Ty {
    fn cql(self) -> &'static str {
        match self {
            Ty::Text => "text",
            Ty::Int => "int",
            Ty::Double => "double",
            Ty::Bool => "boolean",
            Ty::Timestamp => "timestamp",
            Ty::MapTextInt => "map<text, int>",
            Ty::MapTextDouble => "map<text, double>",
            Ty::MapTextTimestamp => "map<text, timestamp>",
            Ty::MapTextMapText => "map<text, frozen<map<text, text>>>",
            Ty::ListMapText => "list<frozen<map<text, text>>>",
            Ty::ListText => "list<text>",
        }
    }
}

struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Ty)],
    primary_key: &'static str,
}

const COURSE_BATCH: Table = Table {
    name: "course_batch",
    columns: &[
        ("courseid", Ty::Text),
        ("batchid", Ty::Text),
        ("cert_templates", Ty::MapTextMapText),
        ("createdby", Ty::Text),
        ("createddate", Ty::Text),
        ("description", Ty::Text),
        ("end_date", Ty::Timestamp),
        ("enddate", Ty::Text),
        ("enrollment_enddate", Ty::Timestamp),
        ("enrollmentenddate", Ty::Text),
        ("enrollmenttype", Ty::Text),
        ("name", Ty::Text),
        ("start_date", Ty::Timestamp),
        ("startdate", Ty::Text),
        ("status", Ty::Int),
    ],
    primary_key: "(courseid, batchid)",
};

const ENROLMENT_COLUMNS: &[(&str, Ty)] = &[
    ("userid", Ty::Text),
    ("courseid", Ty::Text),
    ("batchid", Ty::Text),
    ("active", Ty::Bool),
    ("addedby", Ty::Text),
    ("certificates", Ty::ListMapText),
    ("certstatus", Ty::Int),
    ("completedon", Ty::Timestamp),
    ("completionpercentage", Ty::Int),
    ("contentstatus", Ty::MapTextInt),
    ("datetime", Ty::Timestamp),
    ("enrolled_date", Ty::Timestamp),
    ("enrolleddate", Ty::Text),
    ("issued_certificates", Ty::ListMapText),
    ("lastreadcontentid", Ty::Text),
    ("lastreadcontentstatus", Ty::Int),
    ("progress", Ty::Int),
    ("status", Ty::Int),
];

const USER_ENROLMENTS: Table = Table {
    name: "user_enrolments",
    columns: ENROLMENT_COLUMNS,
    primary_key: "(userid, courseid, batchid)",
};

/// The batch-keyed copy (data-products' `report_user_enrolments`).
const REPORT_USER_ENROLMENTS: Table = Table {
    name: "report_user_enrolments",
    columns: ENROLMENT_COLUMNS,
    primary_key: "(batchid, courseid, userid)",
};

const ASSESSMENT_AGGREGATOR: Table = Table {
    name: "assessment_aggregator",
    columns: &[
        ("user_id", Ty::Text),
        ("course_id", Ty::Text),
        ("batch_id", Ty::Text),
        ("content_id", Ty::Text),
        ("attempt_id", Ty::Text),
        ("created_on", Ty::Timestamp),
        ("grand_total", Ty::Text),
        ("last_attempted_on", Ty::Timestamp),
        ("total_max_score", Ty::Double),
        ("total_score", Ty::Double),
        ("updated_on", Ty::Timestamp),
    ],
    primary_key: "((user_id, course_id), batch_id, content_id, attempt_id)",
};

const USER_ACTIVITY_AGG: Table = Table {
    name: "user_activity_agg",
    columns: &[
        ("activity_type", Ty::Text),
        ("activity_id", Ty::Text),
        ("user_id", Ty::Text),
        ("context_id", Ty::Text),
        ("agg", Ty::MapTextInt),
        ("aggregates", Ty::MapTextDouble),
        ("agg_last_updated", Ty::MapTextTimestamp),
        ("agg_details", Ty::ListText),
    ],
    primary_key: "((activity_type, activity_id, user_id), context_id)",
};

const CONTENT_HIERARCHY: Table = Table {
    name: "content_hierarchy",
    columns: &[
        ("identifier", Ty::Text),
        ("hierarchy", Ty::Text),
        ("relational_metadata", Ty::Text),
    ],
    primary_key: "(identifier)",
};

const SYSTEM_SETTINGS: Table = Table {
    name: "system_settings",
    columns: &[("id", Ty::Text), ("field", Ty::Text), ("value", Ty::Text)],
    primary_key: "(id)",
};

/// Each snapshot file and the tables (keyspace, table) its rows go to.
fn targets(cfg: &CassandraConfig) -> Vec<(&'static str, String, &'static Table)> {
    let c = cfg.courses_keyspace.clone();
    vec![
        ("course_batch", c.clone(), &COURSE_BATCH),
        ("user_enrolments", c.clone(), &USER_ENROLMENTS),
        ("user_enrolments", c.clone(), &REPORT_USER_ENROLMENTS),
        ("assessment_aggregator", c.clone(), &ASSESSMENT_AGGREGATOR),
        ("user_activity_agg", c, &USER_ACTIVITY_AGG),
        (
            "content_hierarchy",
            cfg.hierarchy_keyspace.clone(),
            &CONTENT_HIERARCHY,
        ),
        (
            "system_settings",
            cfg.sunbird_keyspace.clone(),
            &SYSTEM_SETTINGS,
        ),
    ]
}

/// CREATE KEYSPACE and CREATE TABLE statements for the configured keyspaces.
pub fn ddl(cfg: &CassandraConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut keyspaces = vec![
        cfg.courses_keyspace.clone(),
        cfg.hierarchy_keyspace.clone(),
        cfg.sunbird_keyspace.clone(),
    ];
    keyspaces.dedup();
    for ks in keyspaces {
        out.push(format!(
            "CREATE KEYSPACE IF NOT EXISTS {ks} WITH REPLICATION = \
             {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ));
    }
    for (_, ks, t) in targets(cfg) {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|(n, ty)| format!("{n} {}", ty.cql()))
            .collect();
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {ks}.{} ({}, PRIMARY KEY {})",
            t.name,
            cols.join(", "),
            t.primary_key
        ));
    }
    out
}

/// A driver session for loading (not the adapter's).
pub async fn session(contact_point: &str) -> Session {
    SessionBuilder::new()
        .known_node(contact_point)
        .fetch_schema_metadata(false)
        .build()
        .await
        .expect("the loader connects")
}

/// Creates the keyspaces and tables.
pub async fn create(session: &Session, cfg: &CassandraConfig) {
    for stmt in ddl(cfg) {
        session
            .query_unpaged(stmt.as_str(), &())
            .await
            .unwrap_or_else(|e| panic!("DDL {stmt} failed: {e}"));
    }
}

/// Rows read from a snapshot table file; an absent file is an empty table.
pub fn snapshot_rows(dir: &Path, table: &str) -> Vec<Map<String, Value>> {
    let path = dir.join(format!("{table}.jsonl"));
    assert!(
        !dir.join(format!("{table}.jsonl.gz")).exists(),
        "the loader reads plain JSON Lines only"
    );
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// Inserts every Cassandra row of the snapshot folder; the number inserted.
pub async fn load(session: &Session, cfg: &CassandraConfig, dir: &Path) -> usize {
    load_tables(session, cfg, dir, 16, |_| true).await
}

/// Inserts the Cassandra rows of the snapshot folder into the tables
/// `keep` accepts (by table name), `in_flight` inserts at a time; the
/// number inserted. Files are read line by line, so a large snapshot is
/// never held in memory.
pub async fn load_tables(
    session: &Session,
    cfg: &CassandraConfig,
    dir: &Path,
    in_flight: usize,
    keep: impl Fn(&str) -> bool,
) -> usize {
    let mut prepared: HashMap<String, PreparedStatement> = HashMap::new();
    let mut running = FuturesUnordered::new();
    let mut n = 0;
    for (file, ks, table) in targets(cfg) {
        if !keep(table.name) {
            continue;
        }
        for row in snapshot_lines(dir, file) {
            let mut names = Vec::new();
            let mut values = Vec::new();
            for (name, ty) in table.columns {
                match row.get(*name) {
                    None | Some(Value::Null) => {}
                    Some(v) => {
                        names.push(*name);
                        values.push(to_cql(*ty, v, name));
                    }
                }
            }
            let markers = vec!["?"; names.len()].join(", ");
            let cql = format!(
                "INSERT INTO {ks}.{} ({}) VALUES ({markers})",
                table.name,
                names.join(", ")
            );
            let statement = match prepared.get(&cql) {
                Some(p) => p.clone(),
                None => {
                    let p = session
                        .prepare(cql.as_str())
                        .await
                        .unwrap_or_else(|e| panic!("prepare {cql}: {e}"));
                    prepared.insert(cql.clone(), p.clone());
                    p
                }
            };
            running.push(async move {
                session
                    .execute_unpaged(&statement, values)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{cql}: {e}"))
            });
            n += 1;
            if running.len() >= in_flight.max(1)
                && let Some(done) = running.next().await
            {
                done.expect("inserts succeed");
            }
        }
    }
    while let Some(done) = running.next().await {
        done.expect("inserts succeed");
    }
    n
}

/// The rows of a snapshot table file, parsed one line at a time; an absent
/// file is an empty table.
pub fn snapshot_lines(dir: &Path, table: &str) -> impl Iterator<Item = Map<String, Value>> {
    let path = dir.join(format!("{table}.jsonl"));
    assert!(
        !dir.join(format!("{table}.jsonl.gz")).exists(),
        "the loader reads plain JSON Lines only"
    );
    let lines = std::fs::File::open(&path)
        .ok()
        .map(|f| std::io::BufRead::lines(std::io::BufReader::new(f)));
    lines.into_iter().flatten().filter_map(move |line| {
        let line = line.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if line.trim().is_empty() {
            return None;
        }
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn timestamp(v: &Value, name: &str) -> CqlValue {
    let t = parse_sunbird_timestamp(&text(v))
        .unwrap_or_else(|| panic!("{name}: {v} is not a timestamp"));
    CqlValue::Timestamp(CqlTimestamp(t.timestamp_millis()))
}

fn number(v: &Value, name: &str) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or_else(|| panic!("{name}: {n}")),
        Value::String(s) => s.trim().parse().unwrap_or_else(|_| panic!("{name}: {s}")),
        other => panic!("{name}: {other} is not a number"),
    }
}

fn object<'a>(v: &'a Value, name: &str) -> &'a Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{name}: {v} is not an object"))
}

fn text_map(v: &Value, name: &str) -> CqlValue {
    CqlValue::Map(
        object(v, name)
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (CqlValue::Text(k.clone()), CqlValue::Text(text(v))))
            .collect(),
    )
}

/// A snapshot value (dsbulk's JSON) as the CQL value of the column's type.
fn to_cql(ty: Ty, v: &Value, name: &str) -> CqlValue {
    let map_of = |f: &dyn Fn(&Value) -> CqlValue| {
        CqlValue::Map(
            object(v, name)
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (CqlValue::Text(k.clone()), f(v)))
                .collect(),
        )
    };
    match ty {
        Ty::Text => CqlValue::Text(match v {
            // A hierarchy may be stored as an object in a hand-made snapshot.
            Value::Object(_) => v.to_string(),
            other => text(other),
        }),
        Ty::Int => CqlValue::Int(number(v, name) as i32),
        Ty::Double => CqlValue::Double(number(v, name)),
        Ty::Bool => CqlValue::Boolean(match v {
            Value::Bool(b) => *b,
            Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
            other => panic!("{name}: {other} is not a boolean"),
        }),
        Ty::Timestamp => timestamp(v, name),
        Ty::MapTextInt => map_of(&|v| CqlValue::Int(number(v, name) as i32)),
        Ty::MapTextDouble => map_of(&|v| CqlValue::Double(number(v, name))),
        Ty::MapTextTimestamp => map_of(&|v| timestamp(v, name)),
        Ty::MapTextMapText => map_of(&|v| text_map(v, name)),
        Ty::ListMapText => CqlValue::List(
            v.as_array()
                .unwrap_or_else(|| panic!("{name}: {v} is not a list"))
                .iter()
                .map(|m| text_map(m, name))
                .collect(),
        ),
        Ty::ListText => CqlValue::List(
            v.as_array()
                .unwrap_or_else(|| panic!("{name}: {v} is not a list"))
                .iter()
                .map(|s| CqlValue::Text(text(s)))
                .collect(),
        ),
    }
}
