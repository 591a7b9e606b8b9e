//! The report's invariants as checks a test can run on any built report:
//! ours, and an embedder's (with the strategies of the `proptest` feature
//! or with its own data).
//!
//! A report is checked as text, the way it leaves the library: the header
//! and rows a [`RowSink`](crate::report::RowSink) received (a
//! [`VecSink`]), or CSV bytes read back with [`read_csv`]. Checks that
//! depend on the hierarchy take the [`BatchPlan`]; checks of which rows
//! there are take the input rows (enrolments and user cache). Each returns
//! a [`Violation`] that names the check, the row (0 = the first data row)
//! and the column.
//!
//! ```
//! use exhaust_core::invariants::{check_report, read_csv};
//! use exhaust_core::memory::MemorySource;
//! use exhaust_core::model::*;
//! use exhaust_core::report::{ReportOptions, VecSink, build_report, plan_batch};
//! use exhaust_core::{BatchId, ContentId, OrgId, UserId};
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let mut f = std::pin::pin!(f);
//! #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//!
//! let mut src = MemorySource::default();
//! src.hierarchies.insert(ContentId::new("do_C"), r#"{"identifier":"do_C","children":[
//!   {"identifier":"do_U1","index":1,"mimeType":"application/vnd.ekstep.content-collection",
//!    "children":[{"identifier":"do_r1","mimeType":"application/pdf"}]}]}"#.into());
//! src.collections.push(CollectionMeta {
//!     identifier: ContentId::new("do_C"), name: "Course".into(),
//!     channel: OrgId::new("org1"), status: "Live".into(), user_consent: "No".into() });
//! src.batches.insert(BatchId::new("b1"), CourseBatch {
//!     batch_id: BatchId::new("b1"), course_id: ContentId::new("do_C"), name: "B".into(),
//!     status: Some(1), start_date: None, end_date: None, cert_template_ids: vec![] });
//! src.enrolments.push(EnrolmentRecord {
//!     user_id: UserId::new("u1"), course_id: ContentId::new("do_C"),
//!     batch_id: BatchId::new("b1"), active: Some(true),
//!     enrolled_date: Some("2021-01-01T00:00:00Z".parse().unwrap()),
//!     content_status: [("do_r1", 2)].into(), ..EnrolmentRecord::default() });
//!
//! let opts = ReportOptions::default();
//! let plan = block_on(plan_batch(&src, &BatchId::new("b1"), None, &opts)).unwrap();
//! let mut report = VecSink::default();
//! block_on(exhaust_core::report::build_rows(&src, &plan, &opts, &mut report)).unwrap();
//! check_report(&report, &plan, &src).unwrap();
//!
//! // CSV bytes read back are checked the same way; a broken one is named.
//! let mut csv = report.header.join(",") + "\r\n";
//! csv += &report.rows[0].join(",").replace(",100,", ",101,");
//! let broken = read_csv(csv.as_bytes()).unwrap();
//! let err = check_report(&broken, &plan, &src).unwrap_err();
//! assert_eq!(err.to_string(), "progress: row 0 (user u1), column \"Progress\": 101 is above 100");
//! ```

use crate::ids::UserId;
use crate::layout::{Column, ColumnKey};
use crate::memory::MemorySource;
use crate::model::{EnrolmentRecord, UserEntry};
use crate::report::{BatchPlan, VecSink};
use crate::values::user_order;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// A broken invariant: which check, where, and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The check (`shape`, `columns`, `order`, `rows`, `progress`,
    /// `unit progress`, `scores`, `identical`).
    pub check: &'static str,
    /// The data row (0 = the first after the header), when one is at fault.
    pub row: Option<usize>,
    /// That row's user, when the report has a User UUID column.
    pub user: Option<String>,
    /// The column's header, when one is at fault.
    pub column: Option<String>,
    /// What is wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.check)?;
        if let Some(row) = self.row {
            write!(f, " row {row}")?;
            if let Some(user) = &self.user {
                write!(f, " (user {user})")?;
            }
            f.write_str(",")?;
        }
        if let Some(column) = &self.column {
            write!(f, " column {column:?}:")?;
        }
        write!(f, " {}", self.detail)
    }
}

impl std::error::Error for Violation {}

/// What a check returns.
pub type CheckResult = Result<(), Violation>;

fn violation(check: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        check,
        row: None,
        user: None,
        column: None,
        detail: detail.into(),
    }
}

/// Locates cells for messages.
struct At<'a> {
    report: &'a VecSink,
    user_col: Option<usize>,
}

impl<'a> At<'a> {
    fn new(report: &'a VecSink) -> Self {
        let user_col = column_of(report, ColumnKey::UserId);
        Self { report, user_col }
    }

    fn cell(&self, check: &'static str, row: usize, col: usize, detail: String) -> Violation {
        Violation {
            check,
            row: Some(row),
            user: self
                .user_col
                .and_then(|c| self.report.rows[row].get(c))
                .cloned(),
            column: self.report.header.get(col).cloned(),
            detail,
        }
    }
}

fn column_of(report: &VecSink, key: ColumnKey) -> Option<usize> {
    report.header.iter().position(|h| h == key.header())
}

/// Reads CSV bytes as the library writes them (RFC 4180: fields quoted
/// when needed, `""` inside quotes, CRLF or LF line ends) into a header
/// and rows, so a report file can be checked as the sink's rows are.
pub fn read_csv(bytes: &[u8]) -> Result<VecSink, Violation> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| violation("csv", format!("the report is not UTF-8: {e}")))?;
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                any = false;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(violation(
            "csv",
            format!("record {} ends inside a quoted field", records.len()),
        ));
    }
    if any {
        record.push(field);
        records.push(record);
    }
    let mut records = records.into_iter();
    let header = records
        .next()
        .ok_or_else(|| violation("csv", "the report has no header"))?;
    Ok(VecSink {
        header,
        rows: records.collect(),
    })
}

/// The header is the plan's, and every row has as many fields as the header.
pub fn check_shape(report: &VecSink, plan: &BatchPlan) -> CheckResult {
    if report.header != plan.columns.header {
        return Err(violation(
            "shape",
            format!(
                "the header {:?} is not the plan's {:?}",
                report.header, plan.columns.header
            ),
        ));
    }
    let at = At::new(report);
    for (i, row) in report.rows.iter().enumerate() {
        if row.len() != report.header.len() {
            return Err(at.cell(
                "shape",
                i,
                usize::MAX,
                format!(
                    "{} fields for a header of {}",
                    row.len(),
                    report.header.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The columns follow the hierarchy: static columns (known keys, each
/// once), then one `<id> - Progress` per nested collection of the root in
/// course order, then one `<id> - Score` per assessment in tree order, and
/// nothing else, whatever the rows hold.
pub fn check_columns(report: &VecSink, plan: &BatchPlan) -> CheckResult {
    let h = &plan.hierarchy;
    let dynamic: Vec<String> = h
        .nested
        .iter()
        .map(|n| format!("{} - Progress", n.id))
        .chain(h.assessments.iter().map(|a| format!("{a} - Score")))
        .collect();
    let statics = report
        .header
        .len()
        .checked_sub(dynamic.len())
        .ok_or_else(|| {
            violation(
                "columns",
                format!(
                    "{} columns cannot hold the hierarchy's {} dynamic ones",
                    report.header.len(),
                    dynamic.len()
                ),
            )
        })?;
    let mut seen = HashSet::new();
    for (i, name) in report.header[..statics].iter().enumerate() {
        let known = ColumnKey::ALL.iter().any(|k| k.header() == name);
        if !known || !seen.insert(name) {
            return Err(Violation {
                column: Some(name.clone()),
                ..violation(
                    "columns",
                    format!("static column {i} is not a known column, or repeats"),
                )
            });
        }
    }
    for (name, want) in report.header[statics..].iter().zip(&dynamic) {
        if name != want {
            return Err(Violation {
                column: Some(name.clone()),
                ..violation("columns", format!("the hierarchy gives {want:?} here"))
            });
        }
    }
    Ok(())
}

/// Rows are sorted by User UUID, by bytes, each user once.
pub fn check_sorted_unique(report: &VecSink) -> CheckResult {
    let Some(col) = column_of(report, ColumnKey::UserId) else {
        return Ok(()); // A column list without User UUID: nothing to order by.
    };
    let at = At::new(report);
    for i in 1..report.rows.len() {
        let (a, b) = (&report.rows[i - 1][col], &report.rows[i][col]);
        if user_order(a, b) != std::cmp::Ordering::Less {
            return Err(at.cell(
                "order",
                i,
                col,
                format!("{b:?} comes after {a:?}: rows must be sorted and unique"),
            ));
        }
    }
    Ok(())
}

/// The users a report must have, in order: one per user with an active
/// enrolment in the batch that has an enrolment date; when the plan filters
/// by org, only those whose cache entry has that root org.
pub fn expected_users(
    plan: &BatchPlan,
    enrolments: &[EnrolmentRecord],
    users: &HashMap<UserId, UserEntry>,
) -> Vec<UserId> {
    let mut out: Vec<UserId> = enrolments
        .iter()
        .filter(|e| e.batch_id == plan.batch.batch_id)
        .filter(|e| e.active == Some(true) && e.enrolled_on().is_some())
        .filter(|e| match &plan.org_filter {
            None => true,
            Some(org) => matches!(users.get(&e.user_id),
                Some(UserEntry::Profile(p)) if p.rootorgid.as_deref() == Some(org.as_str())),
        })
        .map(|e| e.user_id.clone())
        .collect();
    out.sort_by(|a, b| user_order(a.as_str(), b.as_str()));
    out.dedup();
    out
}

/// One row per active, dated enrolment of the batch (of the requesting
/// org's users when the plan filters by org), and no other row.
pub fn check_rows(
    report: &VecSink,
    plan: &BatchPlan,
    enrolments: &[EnrolmentRecord],
    users: &HashMap<UserId, UserEntry>,
) -> CheckResult {
    let want = expected_users(plan, enrolments, users);
    let Some(col) = column_of(report, ColumnKey::UserId) else {
        if report.rows.len() != want.len() {
            return Err(violation(
                "rows",
                format!("{} rows for {} learners", report.rows.len(), want.len()),
            ));
        }
        return Ok(());
    };
    let got: Vec<&str> = report.rows.iter().map(|r| r[col].as_str()).collect();
    let want: Vec<&str> = want.iter().map(UserId::as_str).collect();
    if got != want {
        let extra: Vec<&&str> = got.iter().filter(|u| !want.contains(u)).collect();
        let missing: Vec<&&str> = want.iter().filter(|u| !got.contains(u)).collect();
        return Err(violation(
            "rows",
            format!(
                "{} rows for {} learners; users without a learner: {extra:?}; learners without a row: {missing:?}",
                got.len(),
                want.len()
            ),
        ));
    }
    Ok(())
}

fn whole(cell: &str) -> Option<u64> {
    (!cell.is_empty() && cell.bytes().all(|b| b.is_ascii_digit()))
        .then(|| cell.parse().ok())
        .flatten()
}

/// Progress is a whole number from 0 to 100, and 100 whenever the learner
/// completed (a Completion Date shown, or, in `enrolments`, a `completedon`
/// on the learner's first active enrolment in the batch); unit progress is
/// blank or a whole number up to 100; scores are blank or non-negative
/// numbers (seed) or whole percentages (`70%`, lern).
pub fn check_values(
    report: &VecSink,
    plan: &BatchPlan,
    enrolments: &[EnrolmentRecord],
) -> CheckResult {
    let at = At::new(report);
    let progress = column_of(report, ColumnKey::Progress);
    let completion = column_of(report, ColumnKey::CompletedOn);
    let mut completed: HashMap<&str, bool> = HashMap::new();
    for e in enrolments.iter().filter(|e| {
        e.batch_id == plan.batch.batch_id && e.active == Some(true) && e.enrolled_on().is_some()
    }) {
        completed
            .entry(e.user_id.as_str())
            .or_insert(e.completed_on.is_some());
    }
    let kinds: Vec<Option<Column>> = report
        .header
        .iter()
        .enumerate()
        .map(|(i, _)| plan.columns.columns.get(i).copied())
        .collect();
    for (r, row) in report.rows.iter().enumerate() {
        if let Some(c) = progress {
            let cell = &row[c];
            let p = whole(cell).ok_or_else(|| {
                at.cell("progress", r, c, format!("{cell:?} is not a whole number"))
            })?;
            if p > 100 {
                return Err(at.cell("progress", r, c, format!("{p} is above 100")));
            }
            let user = at.user_col.map(|u| row[u].as_str());
            let done = completion.is_some_and(|d| !row[d].is_empty())
                || user.is_some_and(|u| completed.get(u) == Some(&true));
            if done && p != 100 {
                return Err(at.cell(
                    "progress",
                    r,
                    c,
                    format!("{p} for a learner who completed (must be 100)"),
                ));
            }
        }
        for (c, cell) in row.iter().enumerate() {
            match kinds.get(c).copied().flatten() {
                Some(Column::NestedProgress(_)) if !cell.is_empty() => {
                    let p = whole(cell).ok_or_else(|| {
                        at.cell(
                            "unit progress",
                            r,
                            c,
                            format!("{cell:?} is not a whole number"),
                        )
                    })?;
                    if p > 100 {
                        return Err(at.cell("unit progress", r, c, format!("{p} is above 100")));
                    }
                }
                Some(Column::AssessmentScore(_) | Column::Static(ColumnKey::TotalScore))
                    if !cell.is_empty() =>
                {
                    let ok = match cell.strip_suffix('%') {
                        Some(p) => whole(p).is_some(),
                        None => cell.parse::<f64>().is_ok_and(|x| x.is_finite() && x >= 0.0),
                    };
                    if !ok {
                        return Err(at.cell(
                            "scores",
                            r,
                            c,
                            format!("{cell:?} is not a non-negative score"),
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Two reports of the same input are identical (the same input delivered
/// in another order, by another source, in other chunks); the first
/// difference is named.
pub fn check_identical(expected: &VecSink, actual: &VecSink) -> CheckResult {
    if expected.header != actual.header {
        return Err(violation(
            "identical",
            format!(
                "header {:?} instead of {:?}",
                actual.header, expected.header
            ),
        ));
    }
    let at = At::new(actual);
    for (r, (want, got)) in expected.rows.iter().zip(&actual.rows).enumerate() {
        if let Some(c) = (0..want.len().max(got.len())).find(|&c| want.get(c) != got.get(c)) {
            return Err(at.cell(
                "identical",
                r,
                c,
                format!("{:?} instead of {:?}", got.get(c), want.get(c)),
            ));
        }
    }
    if expected.rows.len() != actual.rows.len() {
        return Err(violation(
            "identical",
            format!(
                "{} rows instead of {}",
                actual.rows.len(),
                expected.rows.len()
            ),
        ));
    }
    Ok(())
}

/// Every check of one report against the rows it was built from (a
/// [`MemorySource`], as the strategies make): shape, columns, order, rows
/// and values. Row-order independence needs a second build: see
/// [`check_identical`].
pub fn check_report(report: &VecSink, plan: &BatchPlan, input: &MemorySource) -> CheckResult {
    check_shape(report, plan)?;
    check_columns(report, plan)?;
    check_sorted_unique(report)?;
    check_values(report, plan, &input.enrolments)?;
    check_rows(report, plan, &input.enrolments, &input.users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reads_quotes_line_breaks_and_crlf() {
        let t = read_csv(b"a,b\r\n\"x, \"\"y\"\"\",\"line\r\nbreak\"\r\n,\r\n").expect("reads");
        assert_eq!(t.header, ["a", "b"]);
        assert_eq!(
            t.rows,
            [
                vec!["x, \"y\"".to_owned(), "line\r\nbreak".to_owned()],
                vec![String::new(), String::new()]
            ]
        );
        assert!(read_csv(b"a\r\n\"open").is_err());
        assert!(read_csv(b"").is_err());
    }

    #[test]
    fn identical_names_the_first_difference() {
        let a = VecSink {
            header: vec!["User UUID".into(), "Progress".into()],
            rows: vec![vec!["u1".into(), "5".into()]],
        };
        let mut b = a.clone();
        b.rows[0][1] = "6".into();
        assert_eq!(
            check_identical(&a, &b).unwrap_err().to_string(),
            "identical: row 0 (user u1), column \"Progress\": Some(\"6\") instead of Some(\"5\")"
        );
        b.rows[0][1] = "5".into();
        b.rows.push(vec!["u2".into(), "0".into()]);
        assert_eq!(
            check_identical(&a, &b).unwrap_err().to_string(),
            "identical: 2 rows instead of 1"
        );
        assert!(check_identical(&a, &a).is_ok());
    }

    fn plan() -> BatchPlan {
        use crate::ids::{BatchId, ContentId, OrgId};
        use crate::model::{CollectionMeta, CourseBatch};
        let json = r#"{"identifier":"do_C","children":[
            {"identifier":"do_U1","index":1,"mimeType":"application/vnd.ekstep.content-collection",
             "children":[{"identifier":"do_a","contentType":"SelfAssess"}]}]}"#;
        BatchPlan::new(
            CourseBatch {
                batch_id: BatchId::new("b1"),
                course_id: ContentId::new("do_C"),
                name: "B".into(),
                status: None,
                start_date: None,
                end_date: None,
                cert_template_ids: vec![],
            },
            CollectionMeta {
                identifier: ContentId::new("do_C"),
                name: "C".into(),
                channel: OrgId::new("org1"),
                status: "Live".into(),
                user_consent: "No".into(),
            },
            json,
            &HashSet::new(),
            None,
            &crate::report::ReportOptions::default(),
        )
        .expect("plans")
    }

    fn enrolment(user: &str, completed: bool) -> EnrolmentRecord {
        use crate::ids::{BatchId, ContentId};
        EnrolmentRecord {
            user_id: UserId::new(user),
            course_id: ContentId::new("do_C"),
            batch_id: BatchId::new("b1"),
            active: Some(true),
            enrolled_date: Some(chrono::DateTime::UNIX_EPOCH),
            completed_on: completed.then_some(chrono::DateTime::UNIX_EPOCH),
            ..EnrolmentRecord::default()
        }
    }

    /// A report of the plan's columns: user, progress, unit, score per row.
    fn report(rows: &[[&str; 4]]) -> VecSink {
        let plan = plan();
        let header = plan.columns.header.clone();
        let col = |name: &str| header.iter().position(|h| h == name).expect("column");
        let at = [
            col("User UUID"),
            col("Progress"),
            col("do_U1 - Progress"),
            col("do_a - Score"),
        ];
        let rows = rows
            .iter()
            .map(|cells| {
                let mut row = vec![String::new(); header.len()];
                for (i, c) in at.iter().zip(cells) {
                    row[*i] = (*c).to_owned();
                }
                row
            })
            .collect();
        VecSink { header, rows }
    }

    #[test]
    fn broken_values_and_rows_are_named() {
        let plan = plan();
        let input = [enrolment("u1", false), enrolment("u2", true)];
        let users = HashMap::new();
        let good = report(&[["u1", "0", "", "3.5"], ["u2", "100", "100", "0"]]);
        assert!(check_shape(&good, &plan).is_ok());
        assert!(check_columns(&good, &plan).is_ok());
        assert!(check_values(&good, &plan, &input).is_ok());
        assert!(check_rows(&good, &plan, &input, &users).is_ok());

        let msg = |r: &VecSink| check_values(r, &plan, &input).unwrap_err().to_string();
        assert_eq!(
            msg(&report(&[["u1", "0", "", ""], ["u2", "50", "", ""]])),
            "progress: row 1 (user u2), column \"Progress\": 50 for a learner who completed (must be 100)"
        );
        assert_eq!(
            msg(&report(&[["u1", "0", "101", ""]])),
            "unit progress: row 0 (user u1), column \"do_U1 - Progress\": 101 is above 100"
        );
        assert_eq!(
            msg(&report(&[["u1", "0", "", "-1"]])),
            "scores: row 0 (user u1), column \"do_a - Score\": \"-1\" is not a non-negative score"
        );
        assert!(check_values(&report(&[["u1", "0", "", "7.5%"]]), &plan, &input).is_err());

        let missing = report(&[["u1", "0", "", ""]]);
        assert_eq!(
            check_rows(&missing, &plan, &input, &users)
                .unwrap_err()
                .to_string(),
            "rows: 1 rows for 2 learners; users without a learner: []; learners without a row: [\"u2\"]"
        );

        let mut renamed = good.clone();
        renamed.header.swap(13, 14);
        assert!(check_shape(&renamed, &plan).is_err());
        assert_eq!(
            check_columns(&renamed, &plan).unwrap_err().to_string(),
            "columns: column \"do_a - Score\": the hierarchy gives \"do_U1 - Progress\" here"
        );
        let mut short = good;
        short.rows[1].pop();
        assert_eq!(
            check_shape(&short, &plan).unwrap_err().to_string(),
            "shape: row 1 (user u2), 14 fields for a header of 15"
        );
    }

    #[test]
    fn unsorted_and_repeated_users_are_named() {
        let mut t = VecSink {
            header: vec!["User UUID".into()],
            rows: vec![vec!["b".into()], vec!["a".into()]],
        };
        assert_eq!(
            check_sorted_unique(&t).unwrap_err().to_string(),
            "order: row 1 (user a), column \"User UUID\": \"a\" comes after \"b\": rows must be sorted and unique"
        );
        t.rows[1][0] = "b".into();
        assert!(check_sorted_unique(&t).is_err());
        t.rows[1][0] = "c".into();
        assert!(check_sorted_unique(&t).is_ok());
    }
}
