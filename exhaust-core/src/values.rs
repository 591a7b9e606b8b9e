//! The value rules of SPEC section 5, as small pure functions.

use crate::model::AssessmentAttempt;
use std::cmp::Ordering;
use std::fmt::Write;

/// Collection progress: `round(completed × 100 / required)`, half up, capped
/// at 100; 100 whenever the enrolment has a completion date; 0 when the
/// collection has no required leaves and is not completed.
pub fn progress(completed: usize, required: usize, completed_on_set: bool) -> u8 {
    if completed_on_set {
        return 100;
    }
    if required == 0 {
        return 0;
    }
    // Integer arithmetic: half up without floating-point surprises.
    let pct = (completed.min(required) * 200 + required) / (2 * required);
    pct.min(100) as u8
}

/// Nested collection progress: `floor(completedCount × 100 / required)`,
/// capped at 100; `None` (blank) when the collection has no required leaves.
pub fn nested_progress(completed_count: f64, required: usize) -> Option<u8> {
    if required == 0 {
        return None;
    }
    let c = if completed_count.is_finite() {
        completed_count.max(0.0)
    } else {
        0.0
    };
    // A small tolerance so that e.g. 0.29 × 100 / 1 = 28.999… floors to 29.
    let pct = (c * 100.0 / required as f64 + 1e-9).floor();
    Some(pct.clamp(0.0, 100.0) as u8)
}

/// How the attempt that counts is chosen among a user's attempts at an
/// assessment (Sunbird's `assessment.metrics.bestscore.report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttemptChoice {
    /// The highest `total_score`; ties go to the latest `last_attempted_on`.
    #[default]
    BestScore,
    /// The latest `last_attempted_on`; ties go to the highest `total_score`.
    Latest,
}

impl std::str::FromStr for AttemptChoice {
    type Err = String;

    /// `best` or `latest`, as the CLI and the configuration spell them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "best" => Ok(Self::BestScore),
            "latest" => Ok(Self::Latest),
            other => Err(format!(
                "unknown attempt choice {other:?}: use best or latest"
            )),
        }
    }
}

/// A score that is a real number; negative scores are data errors and count as 0.
fn clean(x: Option<f64>) -> Option<f64> {
    x.filter(|v| v.is_finite()).map(|v| v.max(0.0))
}

/// Picks the attempt that counts. Remaining ties go to the greatest
/// `attempt_id`, so the choice never depends on row order.
pub fn choose_attempt<'a>(
    attempts: impl IntoIterator<Item = &'a AssessmentAttempt>,
    choice: AttemptChoice,
) -> Option<&'a AssessmentAttempt> {
    let score = |a: &AssessmentAttempt| clean(a.total_score).unwrap_or(-1.0);
    attempts.into_iter().max_by(|a, b| {
        let by_score = score(a).total_cmp(&score(b));
        let by_time = a.last_attempted_on.cmp(&b.last_attempted_on);
        let primary = match choice {
            AttemptChoice::BestScore => by_score.then(by_time),
            AttemptChoice::Latest => by_time.then(by_score),
        };
        primary.then_with(|| a.attempt_id.cmp(&b.attempt_id))
    })
}

/// Writes a number as Sunbird's seed report does: no trailing `.0` (`7`,
/// `7.5`), rounded to 6 decimals so sums print as people expect.
pub fn write_number(x: f64, out: &mut String) {
    let _ = write!(out, "{}", round_number(x));
}

/// A score as the report holds it: rounded to 6 decimals, never `-0`.
/// [`write_number`] prints exactly this value.
pub fn round_number(x: f64) -> f64 {
    let r = (x * 1e6).round() / 1e6;
    // `-0` would print as "-0".
    if r == 0.0 { 0.0 } else { r }
}

/// The seed layout score of an attempt: its `total_score`, when it has one.
pub fn seed_score(a: &AssessmentAttempt) -> Option<f64> {
    clean(a.total_score)
}

/// `ceil(a × 100 / b)` with a tolerance for floating-point noise (so 7 × 100
/// / 10 is 70, not 71); `None` when `b` is not positive.
pub fn ceil_percent(a: f64, b: f64) -> Option<u64> {
    if b.is_nan() || b <= 0.0 || !a.is_finite() || !b.is_finite() {
        return None;
    }
    let x = a.max(0.0) * 100.0 / b;
    Some((x - 1e-9).ceil().max(0.0) as u64)
}

/// Parses `grand_total` of the form `a/b`.
pub fn parse_grand_total(text: &str) -> Option<(f64, f64)> {
    let (a, b) = text.split_once('/')?;
    let a: f64 = a.trim().parse().ok()?;
    let b: f64 = b.trim().parse().ok()?;
    Some((a, b))
}

/// The lern layout score of an attempt, a whole percentage: from
/// `grand_total` `a/b`, else from `total_score / total_max_score`; `None`
/// (blank) when the maximum is 0 or unknown.
pub fn lern_score(a: &AssessmentAttempt) -> Option<u64> {
    if let Some((num, den)) = a.grand_total.as_deref().and_then(parse_grand_total) {
        return ceil_percent(num, den);
    }
    ceil_percent(clean(a.total_score)?, clean(a.total_max_score)?)
}

/// Writes a percentage as the lern layout shows it: `70%`.
pub fn write_percent(p: u64, out: &mut String) {
    let _ = write!(out, "{p}%");
}

/// Certificate status values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    /// A certificate is recorded.
    Issued,
    /// Completed, the batch issues certificates, and none is recorded (seed only).
    Failed,
    /// Neither.
    Blank,
}

impl CertificateStatus {
    /// The text in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "Issued",
            Self::Failed => "Failed",
            Self::Blank => "",
        }
    }
}

/// The certificate status rule: `Issued` when any certificate is recorded;
/// `Failed` when `report_failed` (the seed layout), the user completed, the
/// batch has templates and none is recorded; blank otherwise.
pub fn certificate_status(
    has_certificate: bool,
    completed: bool,
    batch_has_templates: bool,
    report_failed: bool,
) -> CertificateStatus {
    if has_certificate {
        CertificateStatus::Issued
    } else if report_failed && completed && batch_has_templates {
        CertificateStatus::Failed
    } else {
        CertificateStatus::Blank
    }
}

/// The declared board: the first element when the text is a JSON list
/// (`["CBSE"]`), else the text as it is.
pub fn board(text: &str) -> String {
    let t = text.trim();
    if t.starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(t)
    {
        return match list.first() {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
    }
    text.to_owned()
}

/// `firstname lastname`, trimmed.
pub fn user_name(first: Option<&str>, last: Option<&str>, out: &mut String) {
    let first = first.unwrap_or("").trim();
    let last = last.unwrap_or("").trim();
    out.push_str(first);
    if !first.is_empty() && !last.is_empty() {
        out.push(' ');
    }
    out.push_str(last);
}

/// Orders user ids as the report does: by their bytes, so the order never
/// depends on a locale.
pub fn user_order(a: &str, b: &str) -> Ordering {
    a.as_bytes().cmp(b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_choices_parse_by_their_names() {
        assert_eq!("best".parse(), Ok(AttemptChoice::BestScore));
        assert_eq!("latest".parse(), Ok(AttemptChoice::Latest));
        assert_eq!(
            "first".parse::<AttemptChoice>(),
            Err("unknown attempt choice \"first\": use best or latest".to_string())
        );
    }
    use crate::ids::{BatchId, ContentId, UserId};
    use chrono::{DateTime, Utc};

    fn attempt(
        id: &str,
        score: Option<f64>,
        max: Option<f64>,
        gt: Option<&str>,
        at: Option<&str>,
    ) -> AssessmentAttempt {
        AssessmentAttempt {
            user_id: UserId::new("u"),
            course_id: ContentId::new("c"),
            batch_id: BatchId::new("b"),
            content_id: ContentId::new("a"),
            attempt_id: id.into(),
            total_score: score,
            total_max_score: max,
            grand_total: gt.map(Into::into),
            last_attempted_on: at.map(|s| s.parse::<DateTime<Utc>>().expect("time")),
        }
    }

    #[test]
    fn progress_rounds_half_up_and_caps() {
        assert_eq!(progress(0, 3, false), 0);
        assert_eq!(progress(1, 3, false), 33);
        assert_eq!(progress(2, 3, false), 67);
        assert_eq!(progress(1, 8, false), 13); // 12.5 rounds up
        assert_eq!(progress(3, 8, false), 38); // 37.5 rounds up
        assert_eq!(progress(1, 200, false), 1); // 0.5 rounds up
        assert_eq!(progress(5, 3, false), 100);
        assert_eq!(progress(0, 3, true), 100);
        assert_eq!(progress(0, 0, false), 0);
        assert_eq!(progress(0, 0, true), 100);
    }

    #[test]
    fn nested_progress_floors_and_blanks() {
        assert_eq!(nested_progress(1.0, 3), Some(33));
        assert_eq!(nested_progress(2.0, 3), Some(66));
        assert_eq!(nested_progress(3.0, 3), Some(100));
        assert_eq!(nested_progress(7.0, 3), Some(100));
        assert_eq!(nested_progress(0.0, 3), Some(0));
        assert_eq!(nested_progress(-1.0, 3), Some(0));
        assert_eq!(nested_progress(f64::NAN, 3), Some(0));
        assert_eq!(nested_progress(1.0, 0), None);
    }

    #[test]
    fn best_score_then_latest() {
        let a = attempt(
            "a1",
            Some(5.0),
            Some(10.0),
            None,
            Some("2021-01-01T00:00:00Z"),
        );
        let b = attempt(
            "a2",
            Some(8.0),
            Some(10.0),
            None,
            Some("2020-01-01T00:00:00Z"),
        );
        let c = attempt(
            "a3",
            Some(8.0),
            Some(10.0),
            None,
            Some("2022-01-01T00:00:00Z"),
        );
        let all = [a.clone(), b.clone(), c.clone()];
        assert_eq!(
            choose_attempt(&all, AttemptChoice::BestScore).map(|x| x.attempt_id.as_str()),
            Some("a3")
        );
        assert_eq!(
            choose_attempt(&all, AttemptChoice::Latest).map(|x| x.attempt_id.as_str()),
            Some("a3")
        );
        let two = [a, b];
        assert_eq!(
            choose_attempt(&two, AttemptChoice::BestScore).map(|x| x.attempt_id.as_str()),
            Some("a2")
        );
        assert_eq!(
            choose_attempt(&two, AttemptChoice::Latest).map(|x| x.attempt_id.as_str()),
            Some("a1")
        );
        assert!(choose_attempt(&[], AttemptChoice::BestScore).is_none());
        // Order does not matter.
        let rev = [c, two[1].clone()];
        assert_eq!(
            choose_attempt(&rev, AttemptChoice::BestScore).map(|x| x.attempt_id.as_str()),
            Some("a3")
        );
    }

    proptest::proptest! {
        /// Choosing as the attempts arrive, the one kept so far against the
        /// next (what the report does per user and assessment), keeps the
        /// very attempt `choose_attempt` picks from all of them: full ties
        /// included (the later one), which differ only in what is not
        /// compared (their maximum scores here).
        #[test]
        fn choosing_as_attempts_arrive_picks_what_choosing_from_all_picks(
            parts in proptest::collection::vec(
                (0u8..3, proptest::option::of(0u8..3), 1u8..20, proptest::option::of(0u8..3)),
                1..12,
            ),
            latest in proptest::bool::ANY,
        ) {
            let choice = if latest { AttemptChoice::Latest } else { AttemptChoice::BestScore };
            let all: Vec<AssessmentAttempt> = parts
                .iter()
                .map(|&(id, score, max, day)| {
                    let at = day.map(|d| format!("2022-01-0{}T00:00:00Z", d + 1));
                    attempt(
                        &format!("a{id}"),
                        score.map(f64::from),
                        Some(f64::from(max)),
                        None,
                        at.as_deref(),
                    )
                })
                .collect();
            let mut kept = &all[0];
            for a in &all[1..] {
                kept = choose_attempt([kept, a], choice).unwrap_or(a);
            }
            let from_all = choose_attempt(&all, choice).expect("one at least");
            proptest::prop_assert!(std::ptr::eq(kept, from_all), "{kept:?} vs {from_all:?}");
        }
    }

    #[test]
    fn numbers_print_without_trailing_zero() {
        let fmt = |x: f64| {
            let mut s = String::new();
            write_number(x, &mut s);
            s
        };
        assert_eq!(fmt(7.0), "7");
        assert_eq!(fmt(7.5), "7.5");
        assert_eq!(fmt(0.1 + 0.2), "0.3");
        assert_eq!(fmt(0.0), "0");
        assert_eq!(fmt(-0.0), "0");
        assert_eq!(fmt(120.25), "120.25");
    }

    #[test]
    fn lern_scores() {
        assert_eq!(
            lern_score(&attempt("x", Some(7.0), Some(10.0), Some("7/10"), None)),
            Some(70)
        );
        assert_eq!(
            lern_score(&attempt("x", Some(2.0), Some(3.0), Some("2/3"), None)),
            Some(67)
        );
        assert_eq!(
            lern_score(&attempt("x", Some(1.0), Some(3.0), Some("1/3"), None)),
            Some(34)
        );
        // grand_total without a slash: from total_score / total_max_score.
        assert_eq!(
            lern_score(&attempt("x", Some(20.0), Some(20.0), Some("20"), None)),
            Some(100)
        );
        assert_eq!(
            lern_score(&attempt("x", Some(3.0), Some(4.0), None, None)),
            Some(75)
        );
        // A zero maximum is blank, never a division by zero.
        assert_eq!(
            lern_score(&attempt("x", Some(3.0), Some(0.0), Some("3/0"), None)),
            None
        );
        assert_eq!(
            lern_score(&attempt("x", Some(3.0), Some(0.0), None, None)),
            None
        );
        assert_eq!(ceil_percent(29.0, 100.0), Some(29));
        assert_eq!(ceil_percent(0.0, 5.0), Some(0));
        let mut s = String::new();
        write_percent(70, &mut s);
        assert_eq!(s, "70%");
    }

    #[test]
    fn certificate_rules() {
        use CertificateStatus::*;
        assert_eq!(certificate_status(true, false, false, true), Issued);
        assert_eq!(certificate_status(false, true, true, true), Failed);
        assert_eq!(certificate_status(false, true, true, false), Blank);
        assert_eq!(certificate_status(false, true, false, true), Blank);
        assert_eq!(certificate_status(false, false, true, true), Blank);
        assert_eq!(Failed.as_str(), "Failed");
    }

    #[test]
    fn board_and_name() {
        assert_eq!(board(r#"["CBSE","ICSE"]"#), "CBSE");
        assert_eq!(board("[]"), "");
        assert_eq!(board("State (Kerala)"), "State (Kerala)");
        assert_eq!(board("[not json"), "[not json");
        let mut s = String::new();
        user_name(Some(" Asha "), Some("Rao"), &mut s);
        assert_eq!(s, "Asha Rao");
        s.clear();
        user_name(Some("Asha"), None, &mut s);
        assert_eq!(s, "Asha");
        s.clear();
        user_name(None, Some("Rao"), &mut s);
        assert_eq!(s, "Rao");
    }
}
