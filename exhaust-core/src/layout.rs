//! Report layouts and the column transposition (SPEC section 4): the static
//! columns, then one progress column per nested collection, then one score
//! column per assessment, all known from the hierarchy before any row.

use crate::hierarchy::Hierarchy;
use std::fmt;
use std::str::FromStr;

/// How values are formatted, and the default column list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The default: raw batch id, user name, Sunbird timestamps, numeric scores,
    /// `Failed` certificates.
    #[default]
    Seed,
    /// Sunbird-Lern's job: `BatchId_` prefix, `dd/MM/yyyy` dates, percentage scores.
    Lern,
}

impl FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "seed" => Ok(Self::Seed),
            "lern" => Ok(Self::Lern),
            other => Err(format!("unknown layout {other:?}: use seed or lern")),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Seed => "seed",
            Self::Lern => "lern",
        })
    }
}

macro_rules! column_keys {
    ($($variant:ident => $key:literal, $header:literal;)*) => {
        /// A static column, named by Sunbird's `csvColumns` key.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ColumnKey {
            $(
                #[doc = concat!("`", $key, "`: ", $header, ".")]
                $variant,
            )*
        }

        impl ColumnKey {
            /// Every key, in the order of the table in SPEC section 4.
            pub const ALL: &'static [ColumnKey] = &[$(ColumnKey::$variant),*];

            /// Sunbird's `csvColumns` key.
            pub fn key(self) -> &'static str {
                match self { $(Self::$variant => $key,)* }
            }

            /// The header text.
            pub fn header(self) -> &'static str {
                match self { $(Self::$variant => $header,)* }
            }
        }
    };
}

column_keys! {
    CourseId => "courseid", "Collection Id";
    CollectionName => "collectionName", "Collection Name";
    BatchId => "batchid", "Batch Id";
    BatchName => "batchName", "Batch Name";
    UserId => "userid", "User UUID";
    UserName => "username", "User Name";
    State => "state", "State";
    District => "district", "District";
    OrgName => "orgname", "Org Name";
    SchoolId => "schooludisecode", "School Id";
    SchoolName => "schoolname", "School Name";
    Block => "block", "Block Name";
    Cluster => "cluster", "Cluster Name";
    UserType => "usertype", "User Type";
    UserSubType => "usersubtype", "User Sub Type";
    Board => "board", "Declared Board";
    EnrolledDate => "enrolleddate", "Enrolment Date";
    CompletedOn => "completedon", "Completion Date";
    Progress => "completionPercentage", "Progress";
    CertificateStatus => "certificatestatus", "Certificate Status";
    TotalScore => "total_sum_score", "Total Score";
}

impl FromStr for ColumnKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Self::ALL
            .iter()
            .copied()
            .find(|k| k.key().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let keys: Vec<_> = Self::ALL.iter().map(|k| k.key()).collect();
                format!("unknown column key {s:?}; known keys: {}", keys.join(", "))
            })
    }
}

/// Parses a comma-separated list of column keys (`courseid,userid,...`).
pub fn parse_column_keys(list: &str) -> Result<Vec<ColumnKey>, String> {
    let keys = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err("the column list is empty".into());
    }
    Ok(keys)
}

impl Layout {
    /// The static columns of the layout, in order.
    pub fn default_columns(self) -> &'static [ColumnKey] {
        use ColumnKey::*;
        match self {
            Self::Seed => &[
                CourseId,
                CollectionName,
                BatchId,
                BatchName,
                UserId,
                UserName,
                State,
                District,
                EnrolledDate,
                CompletedOn,
                Progress,
                CertificateStatus,
                TotalScore,
            ],
            Self::Lern => &[
                CourseId,
                CollectionName,
                BatchId,
                BatchName,
                UserId,
                State,
                District,
                OrgName,
                SchoolId,
                SchoolName,
                Block,
                Cluster,
                UserType,
                UserSubType,
                Board,
                EnrolledDate,
                CompletedOn,
                CertificateStatus,
                Progress,
                TotalScore,
            ],
        }
    }
}

/// One column of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// A static column.
    Static(ColumnKey),
    /// `<id> - Progress` of the nested collection at this index of
    /// [`Hierarchy::nested`].
    NestedProgress(usize),
    /// `<id> - Score` of the assessment at this index of
    /// [`Hierarchy::assessments`].
    AssessmentScore(usize),
}

/// The columns of one collection's report, with their header texts.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportColumns {
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The header row.
    pub header: Vec<String>,
}

impl ReportColumns {
    /// The columns for a collection: the static columns (the layout's, or the
    /// given keys), then its nested collections' progress, then its
    /// assessments' scores. Depends on the hierarchy only, never on the rows.
    pub fn new(layout: Layout, keys: Option<&[ColumnKey]>, hierarchy: &Hierarchy) -> Self {
        let keys = keys.unwrap_or(layout.default_columns());
        let mut columns: Vec<Column> = keys.iter().copied().map(Column::Static).collect();
        columns.extend((0..hierarchy.nested.len()).map(Column::NestedProgress));
        columns.extend((0..hierarchy.assessments.len()).map(Column::AssessmentScore));
        let header = columns
            .iter()
            .map(|c| match *c {
                Column::Static(k) => k.header().to_owned(),
                Column::NestedProgress(i) => format!("{} - Progress", hierarchy.nested[i].id),
                Column::AssessmentScore(i) => format!("{} - Score", hierarchy.assessments[i]),
            })
            .collect();
        Self { columns, header }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::AssessmentRules;

    #[test]
    fn keys_round_trip_and_errors_name_the_keys() {
        for k in ColumnKey::ALL {
            assert_eq!(k.key().parse::<ColumnKey>(), Ok(*k));
        }
        let err = "nope".parse::<ColumnKey>().unwrap_err();
        assert!(
            err.contains("courseid") && err.contains("total_sum_score"),
            "{err}"
        );
        assert_eq!(
            parse_column_keys("userid, completionPercentage,"),
            Ok(vec![ColumnKey::UserId, ColumnKey::Progress])
        );
        assert!(parse_column_keys(" , ").is_err());
    }

    #[test]
    fn dynamic_columns_follow_the_hierarchy() {
        let json = r#"{"identifier":"do_C","children":[
            {"identifier":"do_U1","index":1,"mimeType":"application/vnd.ekstep.content-collection","children":[
              {"identifier":"do_a","contentType":"SelfAssess"}]}]}"#;
        let h = Hierarchy::parse("do_C", json, &AssessmentRules::default()).expect("parses");
        let cols = ReportColumns::new(Layout::Seed, Some(&[ColumnKey::UserId]), &h);
        assert_eq!(
            cols.header,
            ["User UUID", "do_U1 - Progress", "do_a - Score"]
        );
        let lern = ReportColumns::new(Layout::Lern, None, &h);
        assert_eq!(lern.header.len(), 20 + 2);
        assert_eq!(lern.header[17], "Certificate Status");
        assert_eq!(lern.header[18], "Progress");
    }
}
