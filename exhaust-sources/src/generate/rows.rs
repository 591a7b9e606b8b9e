//! Row shapes, one struct per file, fields in a fixed order.

use super::*;

#[derive(Serialize)]
pub(super) struct SettingRow<'a> {
    pub(super) id: &'a str,
    pub(super) field: &'a str,
    pub(super) value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ContentRow<'a> {
    pub(super) identifier: &'a str,
    pub(super) name: &'a str,
    pub(super) channel: &'a str,
    pub(super) status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) user_consent: Option<&'a str>,
    pub(super) object_type: &'a str,
    pub(super) primary_category: &'a str,
    pub(super) content_type: &'a str,
    pub(super) mime_type: &'a str,
    pub(super) visibility: &'a str,
    pub(super) last_published_on: String,
}

#[derive(Serialize)]
pub(super) struct HierarchyRow<'a> {
    pub(super) identifier: &'a str,
    pub(super) hierarchy: &'a str,
}

#[derive(Serialize)]
pub(super) struct SetRow<'a> {
    pub(super) key: String,
    pub(super) value: Vec<&'a str>,
}

#[derive(Serialize)]
pub(super) struct BatchRow<'a> {
    pub(super) courseid: &'a str,
    pub(super) batchid: &'a str,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) status: u8,
    pub(super) enrollmenttype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) startdate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) start_date: Option<String>,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    pub(super) enddate: Cell<String>,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    pub(super) end_date: Cell<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) enrollmentenddate: Option<String>,
    pub(super) createdby: &'a str,
    pub(super) createddate: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) cert_templates: Option<BTreeMap<String, BTreeMap<&'a str, String>>>,
}

#[derive(Serialize)]
pub(super) struct UserRow<'a> {
    pub(super) key: String,
    pub(super) value: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
pub(super) struct EnrolmentRow<'a> {
    pub(super) userid: &'a str,
    pub(super) courseid: &'a str,
    pub(super) batchid: &'a str,
    pub(super) active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) enrolleddate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) enrolled_date: Option<String>,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    pub(super) completedon: Cell<String>,
    pub(super) status: u8,
    pub(super) progress: u32,
    pub(super) completionpercentage: u32,
    #[serde(skip_serializing_if = "Cell::is_absent")]
    pub(super) contentstatus: Cell<ContentStatus<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) lastreadcontentid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) certificates: Option<Vec<OldCertificate>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) issued_certificates: Option<Vec<IssuedCertificate<'a>>>,
}

/// `contentstatus` as Cassandra returns it: keys sorted, untouched leaves
/// left out, plus the removed content for some learners.
pub(super) struct ContentStatus<'a> {
    pub(super) course: &'a Course,
    pub(super) status: &'a [u8],
    pub(super) with_removed: bool,
}

impl Serialize for ContentStatus<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let mut removed = self.with_removed.then_some(self.course.removed_id.as_str());
        for &i in &self.course.by_id {
            let id = self.course.leaves[i].id.as_str();
            if let Some(r) = removed.filter(|r| *r < id) {
                m.serialize_entry(r, &2u8)?;
                removed = None;
            }
            if self.status[i] != 0 {
                m.serialize_entry(id, &self.status[i])?;
            }
        }
        if let Some(r) = removed {
            m.serialize_entry(r, &2u8)?;
        }
        m.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IssuedCertificate<'a> {
    pub(super) name: &'a str,
    pub(super) id: String,
    pub(super) token: String,
    pub(super) last_issued_on: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OldCertificate {
    pub(super) name: String,
    pub(super) id: String,
    pub(super) token: String,
    pub(super) url: String,
    pub(super) last_issued_on: String,
}

#[derive(Serialize)]
pub(super) struct AttemptRow<'a> {
    pub(super) course_id: &'a str,
    pub(super) batch_id: &'a str,
    pub(super) user_id: &'a str,
    pub(super) content_id: &'a str,
    pub(super) attempt_id: String,
    pub(super) grand_total: String,
    pub(super) total_max_score: f64,
    pub(super) total_score: f64,
    pub(super) last_attempted_on: String,
    pub(super) updated_on: String,
}

#[derive(Serialize)]
pub(super) struct ActivityRow<'a, A: Serialize, G: Serialize> {
    pub(super) activity_type: &'a str,
    pub(super) activity_id: &'a str,
    pub(super) user_id: &'a str,
    pub(super) context_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) agg: Option<Entry<'a, u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) aggregates: Option<A>,
    pub(super) agg_last_updated: G,
}
