//! The run.

use super::*;

pub(super) struct Batch {
    pub(super) id: String,
    pub(super) course: usize,
    pub(super) certified: bool,
    pub(super) template_name: String,
    pub(super) start: i64,
}

/// The per-learner files, written together as each enrolment is drawn, and
/// a scratch buffer for one learner's leaf statuses.
pub(super) struct LearnerFiles {
    pub(super) enrolments: Jsonl,
    pub(super) attempts: Jsonl,
    pub(super) activity: Jsonl,
    pub(super) status: Vec<u8>,
}

/// How far one learner got.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    NotStarted,
    Partial,
    Complete,
}

pub(super) struct Generator<'a> {
    pub(super) dir: &'a Path,
    pub(super) p: &'a GenParams,
    pub(super) summary: GenSummary,
    pub(super) courses: Vec<Course>,
    pub(super) batches: Vec<Batch>,
    /// The cached users' ids, in generation order.
    pub(super) pool: Vec<String>,
    pub(super) attempt_counter: u64,
}

impl<'a> Generator<'a> {
    pub(super) fn new(dir: &'a Path, p: &'a GenParams) -> Generator<'a> {
        Generator {
            dir,
            p,
            summary: GenSummary {
                batch_ids: Vec::new(),
                course_ids: Vec::new(),
                retired_course_ids: Vec::new(),
                channel_ids: Vec::new(),
                custodian_org_id: String::new(),
                rows_per_file: Vec::new(),
                enrolled_not_cached: 0,
                inactive_enrolments: 0,
                completed_enrolments: 0,
                certified_enrolments: 0,
            },
            courses: Vec::new(),
            batches: Vec::new(),
            pool: Vec::new(),
            attempt_counter: 0,
        }
    }

    pub(super) fn run(mut self) -> io::Result<GenSummary> {
        self.structure()?;
        self.write_batches()?;
        self.write_users()?;
        self.write_enrolments()?;
        Ok(self.summary)
    }

    /// Orgs, courses, hierarchies, optional contents, search metadata.
    pub(super) fn structure(&mut self) -> io::Result<()> {
        let p = self.p;
        let mut rng = stream(p.seed, STREAM_STRUCTURE);
        let mut mint = IdMint {
            seen: BTreeSet::new(),
        };
        let custodian = mint.numeric(&mut rng);
        let channels = vec![mint.numeric(&mut rng), mint.numeric(&mut rng)];

        let mut settings = Jsonl::create(self.dir, "system_settings.jsonl")?;
        settings.row(&SettingLine {
            id: "custodianOrgId",
            field: "custodianOrgId",
            value: &custodian,
        })?;
        settings.finish(&mut self.summary)?;

        let mut content = Jsonl::create(self.dir, "content.jsonl")?;
        let mut hierarchy = Jsonl::create(self.dir, "content_hierarchy.jsonl")?;
        let mut relation = Jsonl::create(self.dir, "relation_cache.jsonl")?;
        let n_courses = p.batches.div_ceil(2);
        for c in 0..n_courses {
            let (root, course) = build_course(&mut rng, &mut mint, p, c, n_courses, &channels);
            let text = serde_json::to_string(&root)?;
            hierarchy.row(&HierarchyLine {
                identifier: &course.id,
                hierarchy: &text,
            })?;
            let published = midnight_ms(2019, 6, 1)
                + below(&mut rng, 200) as i64 * DAY_MS
                + below(&mut rng, DAY_MS as u64) as i64;
            let consent = match below(&mut rng, 10) {
                0..=5 => Some("Yes"),
                6..=8 => Some("No"),
                // The search API leaves the field out when it was never set.
                _ => None,
            };
            content.row(&ContentLine {
                identifier: &course.id,
                name: &course.name,
                channel: &course.channel,
                status: if course.retired { "Retired" } else { "Live" },
                user_consent: consent,
                more: Some(ContentMore {
                    object_type: "Collection",
                    primary_category: "Course",
                    content_type: "Course",
                    mime_type: COLLECTION_MIME,
                    visibility: "Default",
                    last_published_on: iso(published),
                }),
            })?;
            let optional: Vec<&str> = course
                .leaves
                .iter()
                .filter(|l| l.optional)
                .map(|l| l.id.as_str())
                .collect();
            // A Redis set cannot be empty: no optional content, no key.
            if !optional.is_empty() {
                relation.row(&CacheLine {
                    key: &format!("{0}:{0}:optionalnodes", course.id),
                    value: optional,
                })?;
            }
            self.summary.course_ids.push(course.id.clone());
            if course.retired {
                self.summary.retired_course_ids.push(course.id.clone());
            }
            self.courses.push(course);
        }
        content.finish(&mut self.summary)?;
        hierarchy.finish(&mut self.summary)?;
        relation.finish(&mut self.summary)?;
        self.summary.custodian_org_id = custodian;
        self.summary.channel_ids = channels;
        Ok(())
    }

    pub(super) fn write_batches(&mut self) -> io::Result<()> {
        let p = self.p;
        let mut rng = stream(p.seed, STREAM_BATCHES);
        let mut mint = IdMint {
            seen: BTreeSet::new(),
        };
        let mut out = Jsonl::create(self.dir, "course_batch.jsonl")?;
        let base = midnight_ms(2020, 1, 1);
        for b in 0..p.batches {
            let course = &self.courses[b / 2];
            let id = mint.numeric(&mut rng);
            let topic = course.name.split_once(": ").map_or("", |(_, t)| t);
            let start = base + below(&mut rng, 1100) as i64 * DAY_MS;
            let end = start + (30 + below(&mut rng, 150) as i64) * DAY_MS;
            let created = start - (1 + below(&mut rng, 30) as i64) * DAY_MS
                + below(&mut rng, DAY_MS as u64) as i64;
            // The first batch has certificate templates and the second has
            // none; the rest about half and half.
            let certified = b == 0 || (b != 1 && chance(&mut rng, 50));
            let template_name = format!("{topic} completion certificate");
            let cert_templates = if certified {
                let tid = format!("template_{:02}_{}", b + 1, below(&mut rng, 10_000));
                let mut t = BTreeMap::new();
                t.insert("identifier", tid.clone());
                t.insert("name", template_name.clone());
                t.insert("criteria", r#"{"enrollment":{"status":2}}"#.to_string());
                t.insert(
                    "issuer",
                    r#"{"name":"Sample Issuer","url":"https://example.invalid/issuer"}"#
                        .to_string(),
                );
                t.insert(
                    "signatoryList",
                    r#"[{"name":"Director","id":"Director/Director","designation":"Director","image":"https://example.invalid/sign.png"}]"#
                        .to_string(),
                );
                t.insert(
                    "previewUrl",
                    format!("https://example.invalid/certs/{tid}.svg"),
                );
                Some(BTreeMap::from([(tid, t)]))
            } else if chance(&mut rng, 50) {
                // An emptied template map, as left when templates are removed.
                Some(BTreeMap::new())
            } else {
                None
            };
            // Old batches have only the text dates, new ones only the
            // timestamps, most both.
            let form = below(&mut rng, 10);
            let (old, new) = (form != 0, form != 1 && form != 2);
            let open_ended = chance(&mut rng, 15);
            let batch_status = if end < midnight_ms(2022, 6, 1) { 2 } else { 1 };
            out.row(&BatchLine {
                courseid: &course.id,
                batchid: &id,
                name: &format!("{topic} - Batch {}", b % 2 + 1),
                description: Some(&format!("Batch {} of {}", b % 2 + 1, course.name)),
                status: Some(batch_status),
                enrollmenttype: Some("open"),
                startdate: old.then(|| date_text(start)),
                start_date: new.then(|| iso(start)),
                enddate: match (open_ended, old) {
                    (_, false) => Cell::Absent,
                    (true, true) => Cell::Null,
                    (false, true) => Cell::Value(date_text(end)),
                },
                end_date: match (open_ended, new) {
                    (_, false) => Cell::Absent,
                    (true, true) => Cell::Null,
                    (false, true) => Cell::Value(iso(end)),
                },
                enrollmentenddate: (!open_ended).then(|| date_text(end - 7 * DAY_MS)),
                createdby: Some("5a587cc1-e018-4859-a0a8-e842650b9d64"),
                createddate: Some(sunbird_text(created)),
                cert_templates,
            })?;
            self.summary.batch_ids.push(id.clone());
            self.batches.push(Batch {
                id,
                course: b / 2,
                certified,
                template_name,
                start,
            });
        }
        out.finish(&mut self.summary)
    }

    pub(super) fn write_users(&mut self) -> io::Result<()> {
        let p = self.p;
        let mut rng = stream(p.seed, STREAM_USERS);
        let mut out = Jsonl::create(self.dir, "user_cache.jsonl")?;
        let main_org = self.summary.channel_ids[0].clone();
        let other_org = self.summary.channel_ids[1].clone();
        let custodian = self.summary.custodian_org_id.clone();
        self.pool.reserve_exact(p.users);
        for _ in 0..p.users {
            let id = uuid(&mut rng);
            let mut v: BTreeMap<&str, String> = BTreeMap::new();
            v.insert("userid", id.clone());
            v.insert("firstname", pick(&mut rng, FIRST_NAMES).to_string());
            // Many Sunbird profiles have no last name.
            let last = if chance(&mut rng, 12) {
                ""
            } else {
                pick(&mut rng, LAST_NAMES)
            };
            v.insert("lastname", last.to_string());
            let (state, districts) = *pick(&mut rng, PLACES);
            let district = *pick(&mut rng, districts);
            v.insert("state", state.to_string());
            v.insert("district", district.to_string());
            let (org, orgname) = match below(&mut rng, 20) {
                0..=14 => (main_org.as_str(), "Ministry of Education"),
                15..=17 => (custodian.as_str(), "Sunbird"),
                _ => (
                    other_org.as_str(),
                    "State Council of Educational Research and Training, Kerala",
                ),
            };
            v.insert("rootorgid", org.to_string());
            v.insert("orgname", orgname.to_string());
            v.insert(
                "usersignintype",
                if org == custodian {
                    "Self-Signed-In"
                } else {
                    "Validated"
                }
                .to_string(),
            );
            let (usertype, subtypes): (&str, &[&str]) = match below(&mut rng, 20) {
                0..=11 => ("teacher", &["", "", "hm"]),
                12..=13 => ("administrator", &["deo", "beo", "crp", "hm,crp"]),
                14..=18 => ("student", &[""]),
                _ => ("parent", &[""]),
            };
            v.insert("usertype", usertype.to_string());
            v.insert("usersubtype", pick(&mut rng, subtypes).to_string());
            // The cache writer removes location fields a profile no longer
            // has: about one user in ten has none below district.
            if !chance(&mut rng, 10) {
                v.insert(
                    "block",
                    format!("{district} {}", pick(&mut rng, BLOCK_SUFFIXES)),
                );
                v.insert("cluster", format!("Cluster {}", 1 + below(&mut rng, 40)));
                // Commas and quotes in school names exercise CSV quoting.
                let school = match below(&mut rng, 6) {
                    0 => format!("Govt. Higher Primary School, {district}"),
                    1 => format!("Kendriya Vidyalaya No. {}", 1 + below(&mut rng, 5)),
                    2 => format!("Zilla Parishad School {}", 1 + below(&mut rng, 90)),
                    3 => "St. Mary's High School".to_string(),
                    4 => "Govt. \"Model\" School".to_string(),
                    _ => format!("Adarsh Vidyalaya, {state}"),
                };
                v.insert("schoolname", school);
                let mut code = String::with_capacity(11);
                code.push_str("29");
                push_digits(&mut rng, &mut code, 9);
                v.insert("schooludisecode", code);
            }
            // board: JSON list text from one writer, plain text from the
            // other, sometimes empty or missing.
            let board = *pick(&mut rng, BOARDS);
            match below(&mut rng, 20) {
                0..=12 => {
                    v.insert("board", format!("[\"{board}\"]"));
                }
                13 => {
                    v.insert("board", format!("[\"{board}\",\"ICSE\"]"));
                }
                14..=17 => {
                    v.insert("board", board.to_string());
                }
                18 => {
                    v.insert("board", String::new());
                }
                _ => {}
            }
            v.insert("language", "[\"English\"]".to_string());
            v.insert("email", String::new());
            v.insert("phone", String::new());
            out.row(&CacheLine {
                key: &format!("user:{id}"),
                value: v,
            })?;
            self.pool.push(id);
        }
        out.finish(&mut self.summary)
    }

    pub(super) fn write_enrolments(&mut self) -> io::Result<()> {
        let p = self.p;
        let mut rng = stream(p.seed, STREAM_ENROLMENTS);
        let mut out = LearnerFiles {
            enrolments: Jsonl::create(self.dir, "user_enrolments.jsonl")?,
            attempts: Jsonl::create(self.dir, "assessment_aggregator.jsonl")?,
            activity: Jsonl::create(self.dir, "user_activity_agg.jsonl")?,
            status: Vec::new(),
        };
        // A permutation of the pool, partially shuffled per batch: the first
        // k entries after k Fisher-Yates steps are a uniform k-subset, and the
        // permutation need not be reset between batches.
        let mut order: Vec<u32> = (0..p.users as u32).collect();

        for b in 0..self.batches.len() {
            let k = p.enrolments_per_batch;
            let mut not_cached = Quota::new(k, 3, 10);
            let mut inactive = Quota::new(k, 4, 10);
            let mut drawn = 0usize;
            let mut completed_here = 0u64;
            for _ in 0..k {
                let user = if not_cached.take(&mut rng) {
                    self.summary.enrolled_not_cached += 1;
                    uuid(&mut rng)
                } else {
                    let j = drawn + index(&mut rng, order.len() - drawn);
                    order.swap(drawn, j);
                    drawn += 1;
                    self.pool[order[drawn - 1] as usize].clone()
                };
                let active = !inactive.take(&mut rng);
                if !active {
                    self.summary.inactive_enrolments += 1;
                }
                self.enrolment(&mut rng, &mut out, b, &user, active, &mut completed_here)?;
            }
        }
        out.enrolments.finish(&mut self.summary)?;
        out.attempts.finish(&mut self.summary)?;
        out.activity.finish(&mut self.summary)
    }

    /// One enrolment row, with its attempts and activity aggregates.
    pub(super) fn enrolment(
        &mut self,
        rng: &mut ChaCha8Rng,
        out: &mut LearnerFiles,
        b: usize,
        user: &str,
        active: bool,
        completed_here: &mut u64,
    ) -> io::Result<()> {
        let LearnerFiles {
            enrolments,
            attempts,
            activity,
            status,
        } = out;
        let batch = &self.batches[b];
        let course = &self.courses[batch.course];
        let n = course.leaves.len();
        let enrolled =
            batch.start + below(rng, 60) as i64 * DAY_MS + below(rng, DAY_MS as u64) as i64;

        let reach = if n == 0 {
            Reach::NotStarted
        } else {
            match below(rng, 100) {
                0..=24 => Reach::NotStarted,
                25..=69 => Reach::Partial,
                _ => Reach::Complete,
            }
        };
        fill_status(rng, course, reach, status);
        let done_all = status.iter().filter(|&&s| s == 2).count();
        let done_required = course
            .leaves
            .iter()
            .zip(status.iter())
            .filter(|(l, s)| !l.optional && **s == 2)
            .count();
        // Learners finish within three months of enrolling.
        let last_activity = enrolled + (1 + below(rng, 90) as i64) * DAY_MS;
        let with_removed = reach != Reach::NotStarted && chance(rng, 3);

        // Certificates: in a batch with templates most who completed have
        // one (the first always, the second never, so both cases show up in
        // small samples); elsewhere none.
        let mut certificates = None;
        let mut issued = None;
        if reach == Reach::Complete {
            *completed_here += 1;
            self.summary.completed_enrolments += 1;
            if batch.certified {
                let roll = match *completed_here {
                    1 => 0,
                    2 => 99,
                    _ => below(rng, 100),
                };
                let issued_on = iso(last_activity + below(rng, 2 * DAY_MS as u64) as i64);
                match roll {
                    0..=79 => {
                        issued = Some(vec![IssuedCertificate {
                            name: &batch.template_name,
                            id: uuid(rng),
                            token: token(rng),
                            last_issued_on: issued_on,
                        }]);
                    }
                    80..=84 => {
                        let id = uuid(rng);
                        certificates = Some(vec![OldCertificate {
                            name: batch.template_name.clone(),
                            url: format!("https://example.invalid/certs/{id}.pdf"),
                            id,
                            token: token(rng),
                            last_issued_on: issued_on,
                        }]);
                    }
                    // An empty list is no certificate.
                    85..=92 => issued = Some(Vec::new()),
                    _ => {}
                }
                if issued.as_ref().is_some_and(|v| !v.is_empty()) || certificates.is_some() {
                    self.summary.certified_enrolments += 1;
                }
            }
        }

        // Assessment attempts, for the assessments the learner reached.
        // Remember each one's best attempt for the course aggregate row.
        let mut best: Vec<(usize, f64, f64, u32)> = Vec::new();
        for &a in &course.assessments {
            if status[a] == 0 {
                continue;
            }
            let max = course.leaves[a].max_score.unwrap_or(10);
            let tries = 1 + index(rng, self.p.attempts);
            // Attempts fall between enrolment and the learner's last activity.
            let span = (last_activity - enrolled) as u64;
            let step = span / (2 * tries as u64) + 1;
            let mut t = enrolled + below(rng, span / 2 + 1) as i64;
            let mut top = (f64::MIN, 0.0);
            for _ in 0..tries {
                let score = draw_score(rng, max, status[a] == 2);
                let max_f = f64::from(max);
                self.attempt_counter += 1;
                // Almost always "a/b"; a few plain numbers, as some clients
                // sent (the second attempt of every run is one).
                let plain = self.attempt_counter == 2 || chance(rng, 3);
                let grand_total = if plain {
                    num_text(score)
                } else {
                    format!("{}/{}", num_text(score), max)
                };
                attempts.row(&AttemptLine {
                    course_id: &course.id,
                    batch_id: &batch.id,
                    user_id: user,
                    content_id: &course.leaves[a].id,
                    attempt_id: &attempt_id(rng, self.attempt_counter),
                    grand_total: Some(&grand_total),
                    total_max_score: Some(Double(max_f)),
                    total_score: Some(Double(score)),
                    last_attempted_on: Some(iso(t)),
                    updated_on: Some(iso(t + below(rng, 10 * MINUTE_MS as u64) as i64)),
                })?;
                if score >= top.0 {
                    top = (score, max_f);
                }
                // Strictly later, so "latest attempt" is never a tie.
                t += MINUTE_MS + below(rng, step) as i64;
            }
            best.push((a, top.0, top.1, tries as u32));
        }

        // Activity aggregates: a course row and one per collection touched,
        // unless the aggregator never ran for this learner (a few).
        if reach != Reach::NotStarted && !chance(rng, 4) {
            let context = format!("cb:{}", batch.id);
            let updated = iso(last_activity);
            let legacy = chance(rng, 15);
            let mut aggregates: BTreeMap<String, f64> = BTreeMap::new();
            for &(a, score, max, tries) in &best {
                let id = &course.leaves[a].id;
                aggregates.insert(format!("score:{id}"), score);
                aggregates.insert(format!("max_score:{id}"), max);
                aggregates.insert(format!("attempts_count:{id}"), f64::from(tries));
            }
            let count = skew(rng, done_required);
            if !legacy {
                aggregates.insert(COMPLETED_COUNT.to_string(), count as f64);
            }
            activity.row(&ActivityLine {
                activity_type: "Course",
                activity_id: &course.id,
                user_id: user,
                context_id: &context,
                agg: legacy.then_some(Entry(COMPLETED_COUNT, i64::from(count as u32))),
                aggregates: (!aggregates.is_empty()).then_some(&aggregates),
                agg_last_updated: Some(Entry(COMPLETED_COUNT, &updated)),
            })?;
            for coll in &course.collections {
                if coll.leaves.iter().all(|&i| status[i] == 0) {
                    continue;
                }
                let done = coll
                    .leaves
                    .iter()
                    .filter(|&&i| !course.leaves[i].optional && status[i] == 2)
                    .count();
                let count = skew(rng, done) as u32;
                let legacy = chance(rng, 15);
                activity.row(&ActivityLine {
                    activity_type: "Course",
                    activity_id: &coll.id,
                    user_id: user,
                    context_id: &context,
                    agg: legacy.then_some(Entry(COMPLETED_COUNT, i64::from(count))),
                    aggregates: (!legacy).then_some(Entry(COMPLETED_COUNT, f64::from(count))),
                    agg_last_updated: Some(Entry(COMPLETED_COUNT, &updated)),
                })?;
            }
        }

        // Enrolment dates: most rows have the timestamp only, some only the
        // older text column, some both, and a very few neither (the report
        // skips those).
        let (text, stamp) = match below(rng, 1000) {
            0..=2 => (false, false),
            3..=122 => (true, false),
            123..=202 => (true, true),
            _ => (false, true),
        };
        // What the course service stores: completed leaves (optional ones
        // too) over all leaves, rounded; 100 once completed.
        let percentage = match reach {
            Reach::Complete => 100,
            _ => (done_all * 100 + n / 2)
                .checked_div(n)
                .map_or(0, |x| x.min(100)) as u32,
        };
        let contentstatus = match reach {
            Reach::NotStarted => match below(rng, 10) {
                0..=5 => Cell::Absent,
                6..=8 => Cell::Value(ContentStatus {
                    course,
                    status,
                    with_removed: false,
                }),
                _ => Cell::Null,
            },
            _ => Cell::Value(ContentStatus {
                course,
                status,
                with_removed,
            }),
        };
        let lastread = course
            .leaves
            .iter()
            .zip(status.iter())
            .rev()
            .find(|(_, s)| **s != 0)
            .map(|(l, _)| l.id.as_str());
        let row = EnrolmentLine {
            userid: user,
            courseid: &course.id,
            batchid: &batch.id,
            active: Some(active),
            enrolleddate: text.then(|| sunbird_text(enrolled)),
            enrolled_date: stamp.then(|| iso(enrolled)),
            completedon: match reach {
                Reach::Complete => Cell::Value(iso(last_activity)),
                _ if chance(rng, 30) => Cell::Null,
                _ => Cell::Absent,
            },
            status: Some(match reach {
                Reach::NotStarted => 0,
                Reach::Partial => 1,
                Reach::Complete => 2,
            }),
            progress: Some(done_all as u32),
            completionpercentage: Some(percentage),
            contentstatus,
            lastreadcontentid: lastread,
            certificates,
            issued_certificates: issued,
        };
        enrolments.row(&row)
    }
}

/// Fills `status` (one entry per leaf in tree order; 0 = not in
/// `contentstatus`) for a learner who got as far as `reach`.
pub(super) fn fill_status(
    rng: &mut ChaCha8Rng,
    course: &Course,
    reach: Reach,
    status: &mut Vec<u8>,
) {
    let n = course.leaves.len();
    status.clear();
    status.resize(n, 0);
    match reach {
        Reach::NotStarted => {}
        Reach::Partial => {
            // Learners mostly go in course order, skipping a few, and leave
            // some contents half done.
            let touched = 1 + index(rng, n);
            for s in status.iter_mut().take(touched) {
                *s = match below(rng, 100) {
                    0..=7 => 0,
                    8..=22 => 1,
                    _ => 2,
                };
            }
            if status[0] == 0 {
                status[0] = 1;
            }
            // Partial means some required content is still not completed.
            let undone = course
                .leaves
                .iter()
                .zip(status.iter())
                .any(|(l, s)| !l.optional && *s != 2);
            if !undone && let Some(i) = (0..n).rev().find(|&i| !course.leaves[i].optional) {
                status[i] = 1;
            }
        }
        Reach::Complete => {
            for (s, leaf) in status.iter_mut().zip(&course.leaves) {
                *s = if !leaf.optional || chance(rng, 60) {
                    2
                } else {
                    0
                };
            }
        }
    }
}

/// The stored `completedCount`: the true count for most rows, one off for a
/// few (the aggregator lags or double counts), which the report takes as
/// stored.
pub(super) fn skew(rng: &mut ChaCha8Rng, count: usize) -> usize {
    match below(rng, 100) {
        0..=1 => count.saturating_sub(1),
        2..=3 => count + 1,
        _ => count,
    }
}

/// A score out of `max`, sometimes with a half point; learners who
/// completed the assessment tend to score higher.
pub(super) fn draw_score(rng: &mut ChaCha8Rng, max: u32, completed: bool) -> f64 {
    let halves = u64::from(max) * 2;
    let draw = |rng: &mut ChaCha8Rng| {
        if chance(rng, 25) {
            below(rng, halves + 1) as f64 / 2.0
        } else {
            below(rng, u64::from(max) + 1) as f64
        }
    };
    let first = draw(rng);
    if completed {
        first.max(draw(rng))
    } else {
        first
    }
}

/// A 32-hex-digit attempt id like the MD5 hashes Sunbird uses. Its low half
/// is the run's attempt counter through the SplitMix64 finaliser, a
/// bijection, so ids look random and are still unique.
pub(super) fn attempt_id(rng: &mut ChaCha8Rng, counter: u64) -> String {
    let mut z = counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    format!("{:016x}{z:016x}", rng.next_u64())
}

/// A certificate verification token: six upper-case letters and digits.
pub(super) fn token(rng: &mut ChaCha8Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..6)
        .map(|_| char::from(ALPHABET[index(rng, ALPHABET.len())]))
        .collect()
}
