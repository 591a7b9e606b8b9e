//! The values of the columns that only the generator fills: `contentstatus`
//! drawn from a course, and certificate lists with their contents (the
//! rows themselves are `crate::rows::lines`).

use super::*;

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
