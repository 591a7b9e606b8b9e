//! How the rows of the large tables are kept in a snapshot's digest
//! (`digest.rs`): each row's fields as the JSON reader decoded them, before
//! any conversion, so the conversions (and their errors) run on a row read
//! from the digest exactly as on one parsed from its line.

use super::{Codec, Damaged, Decoder, Encoder};
use crate::rows::{ActivityRow, AttemptRow, EnrolmentRow, UserCacheRow, UserHash};
use exhaust_core::model::{ContentStatus, UserEntry, UserProfile};
use std::borrow::Cow;

/// `user_enrolments` lines.
pub(crate) struct Enrolments;

/// `user_cache` lines.
pub(crate) struct Users;

/// `assessment_aggregator` lines.
pub(crate) struct Attempts;

/// `user_activity_agg` lines.
pub(crate) struct Activities;

fn owned(d: &mut Decoder<'_>) -> Result<Option<String>, Damaged> {
    Ok(d.opt_str()?.map(str::to_owned))
}

fn cow<'a>(d: &mut Decoder<'a>) -> Result<Option<Cow<'a, str>>, Damaged> {
    Ok(d.opt_str()?.map(Cow::Borrowed))
}

impl Codec for Enrolments {
    type Row<'a> = EnrolmentRow;

    fn encode(r: &EnrolmentRow, e: &mut Encoder<'_>) {
        e.opt_str(r.userid.as_deref());
        e.opt_str(r.courseid.as_deref());
        e.opt_str(r.batchid.as_deref());
        e.opt_bool(r.active);
        e.opt_str(r.enrolleddate.as_deref());
        e.opt_str(r.enrolled_date.as_deref());
        e.opt_str(r.completedon.as_deref());
        e.opt_i32(r.status);
        e.varint(r.contentstatus.len() as u64);
        for (id, status) in r.contentstatus.iter() {
            e.str(id);
            e.i32(status);
        }
        e.varint(r.certificates as u64);
        e.varint(r.issued_certificates as u64);
    }

    fn decode<'a>(d: &mut Decoder<'a>) -> Result<EnrolmentRow, Damaged> {
        let userid = owned(d)?;
        let courseid = owned(d)?;
        let batchid = owned(d)?;
        let active = d.opt_bool()?;
        let enrolleddate = owned(d)?;
        let enrolled_date = owned(d)?;
        let completedon = owned(d)?;
        let status = d.opt_i32()?;
        // The ids lie end to end in the text area (nothing else is read
        // from it between them): their lengths and statuses first, kept as
        // where each id ends (the list's own form, so it is built once),
        // then the text of all of them in one copy.
        let n = d.count()?;
        let mut entries = Vec::with_capacity(n);
        let mut joined = 0u32;
        for _ in 0..n {
            let len = u32::try_from(d.len()?).map_err(|_| Damaged("a length is too large"))?;
            joined = joined
                .checked_add(len)
                .ok_or(Damaged("a string runs past the text area"))?;
            entries.push((joined, d.i32()?));
        }
        let contentstatus = ContentStatus::from_ends(d.text(joined as usize)?, entries)
            .ok_or(Damaged("a content id is cut inside a character"))?;
        let size = |d: &mut Decoder<'a>| {
            usize::try_from(d.varint()?).map_err(|_| Damaged("a bad list length"))
        };
        Ok(EnrolmentRow {
            userid,
            courseid,
            batchid,
            active,
            enrolleddate,
            enrolled_date,
            completedon,
            status,
            contentstatus,
            certificates: size(d)?,
            issued_certificates: size(d)?,
        })
    }
}

impl Codec for Users {
    type Row<'a> = UserCacheRow<'a>;

    fn encode(r: &UserCacheRow<'_>, e: &mut Encoder<'_>) {
        e.opt_str(r.key.as_deref());
        match &r.value.0 {
            UserEntry::Malformed(why) => {
                e.u8(0);
                e.str(why);
            }
            UserEntry::Profile(p) => {
                e.u8(1);
                for field in profile_fields(p) {
                    e.opt_str(field.as_deref());
                }
            }
        }
    }

    fn decode<'a>(d: &mut Decoder<'a>) -> Result<UserCacheRow<'a>, Damaged> {
        let key = cow(d)?;
        let entry = match d.u8()? {
            0 => UserEntry::Malformed(d.str()?.to_owned()),
            1 => {
                let mut p = UserProfile::default();
                for field in UserProfile::FIELDS {
                    if let Some(v) = d.opt_str()? {
                        p.set(field, v.to_owned());
                    }
                }
                UserEntry::Profile(p)
            }
            _ => return Err(Damaged("a bad user entry tag")),
        };
        Ok(UserCacheRow {
            key,
            value: UserHash(entry),
        })
    }
}

/// A profile's fields in the order of [`UserProfile::FIELDS`].
fn profile_fields(p: &UserProfile) -> [&Option<String>; 13] {
    [
        &p.firstname,
        &p.lastname,
        &p.state,
        &p.district,
        &p.orgname,
        &p.schooludisecode,
        &p.schoolname,
        &p.block,
        &p.cluster,
        &p.board,
        &p.usertype,
        &p.usersubtype,
        &p.rootorgid,
    ]
}

impl Codec for Attempts {
    type Row<'a> = AttemptRow<'a>;

    fn encode(r: &AttemptRow<'_>, e: &mut Encoder<'_>) {
        e.opt_str(r.user_id.as_deref());
        e.opt_str(r.course_id.as_deref());
        e.opt_str(r.batch_id.as_deref());
        e.opt_str(r.content_id.as_deref());
        e.opt_str(r.attempt_id.as_deref());
        e.opt_f64(r.total_score);
        e.opt_f64(r.total_max_score);
        match &r.grand_total {
            None => e.u8(0),
            Some(serde_json::Value::Null) => e.u8(1),
            Some(serde_json::Value::String(s)) => {
                e.u8(2);
                e.str(s);
            }
            // A number or another value: its JSON, read back as the value.
            Some(other) => {
                e.u8(3);
                e.str(&other.to_string());
            }
        }
        e.opt_str(r.last_attempted_on.as_deref());
    }

    fn decode<'a>(d: &mut Decoder<'a>) -> Result<AttemptRow<'a>, Damaged> {
        Ok(AttemptRow {
            user_id: cow(d)?,
            course_id: cow(d)?,
            batch_id: cow(d)?,
            content_id: cow(d)?,
            attempt_id: cow(d)?,
            total_score: d.opt_f64()?,
            total_max_score: d.opt_f64()?,
            grand_total: match d.u8()? {
                0 => None,
                1 => Some(serde_json::Value::Null),
                2 => Some(serde_json::Value::String(d.str()?.to_owned())),
                3 => {
                    Some(serde_json::from_str(d.str()?).map_err(|_| Damaged("a bad grand_total"))?)
                }
                _ => return Err(Damaged("a bad grand_total tag")),
            },
            last_attempted_on: cow(d)?,
        })
    }
}

impl Codec for Activities {
    type Row<'a> = ActivityRow<'a>;

    fn encode(r: &ActivityRow<'_>, e: &mut Encoder<'_>) {
        e.opt_str(r.activity_type.as_deref());
        e.opt_str(r.activity_id.as_deref());
        e.opt_str(r.user_id.as_deref());
        e.opt_str(r.context_id.as_deref());
        e.opt_f64(r.agg);
        e.opt_f64(r.aggregates);
    }

    fn decode<'a>(d: &mut Decoder<'a>) -> Result<ActivityRow<'a>, Damaged> {
        Ok(ActivityRow {
            activity_type: cow(d)?,
            activity_id: cow(d)?,
            user_id: cow(d)?,
            context_id: cow(d)?,
            agg: d.opt_f64()?,
            aggregates: d.opt_f64()?,
        })
    }
}
