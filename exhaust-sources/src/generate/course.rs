//! Course structures: small, built first and kept in memory.

use super::*;

pub(super) const COLLECTION_MIME: &str = "application/vnd.ekstep.content-collection";

/// A hierarchy node, with fields in the order the hierarchy store has them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Node {
    pub(super) identifier: String,
    pub(super) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) index: Option<usize>,
    pub(super) depth: usize,
    pub(super) mime_type: &'static str,
    pub(super) visibility: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) content_type: Option<&'static str>,
    pub(super) primary_category: &'static str,
    pub(super) object_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) channel: Option<String>,
    pub(super) status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) max_score: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) relational_metadata: Option<RelationalMetadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) leaf_nodes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) leaf_nodes_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) children: Option<Vec<Node>>,
}

#[derive(Serialize)]
pub(super) struct RelationalMetadata {
    pub(super) optional: bool,
}

impl Node {
    pub(super) fn new(identifier: String, name: String, depth: usize) -> Node {
        Node {
            identifier,
            name,
            parent: None,
            index: None,
            depth,
            mime_type: COLLECTION_MIME,
            visibility: "Default",
            content_type: None,
            primary_category: "",
            object_type: "Content",
            channel: None,
            status: "Live",
            max_score: None,
            relational_metadata: None,
            leaf_nodes: None,
            leaf_nodes_count: None,
            children: None,
        }
    }

    /// Appends `child`, giving it its 1-based `index` and its parent.
    pub(super) fn adopt(&mut self, mut child: Node) {
        let children = self.children.get_or_insert_with(Vec::new);
        child.index = Some(children.len() + 1);
        child.parent = Some(self.identifier.clone());
        children.push(child);
    }
}

/// A leaf of a course: what enrolment generation needs to know about it.
pub(super) struct Leaf {
    pub(super) id: String,
    pub(super) optional: bool,
    /// The assessment's maximum score, for assessments.
    pub(super) max_score: Option<u32>,
}

/// A collection below the root (unit, nested course, sub-unit) and the
/// indices (into `Course::leaves`) of the leaves under it.
pub(super) struct Collection {
    pub(super) id: String,
    pub(super) leaves: Vec<usize>,
}

pub(super) struct Course {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) channel: String,
    pub(super) retired: bool,
    /// Leaves in tree order.
    pub(super) leaves: Vec<Leaf>,
    /// Leaf indices sorted by id: Cassandra returns map keys sorted.
    pub(super) by_id: Vec<usize>,
    pub(super) collections: Vec<Collection>,
    /// Leaf indices of the assessments, in tree order.
    pub(super) assessments: Vec<usize>,
    /// A content id that was once in the course and was removed: some
    /// learners still have it in `contentstatus`, which must not count.
    pub(super) removed_id: String,
}

/// Hands out unique Sunbird-like content ids (`do_11` + digits, 19 to 22
/// digits in all).
pub(super) struct IdMint {
    pub(super) seen: BTreeSet<String>,
}

impl IdMint {
    pub(super) fn content(&mut self, rng: &mut ChaCha8Rng) -> String {
        loop {
            let mut id = String::with_capacity(25);
            id.push_str("do_11");
            let n = 17 + index(rng, 4);
            push_digits(rng, &mut id, n);
            if self.seen.insert(id.clone()) {
                return id;
            }
        }
    }

    /// An org or batch id: `01` + 17 digits.
    pub(super) fn numeric(&mut self, rng: &mut ChaCha8Rng) -> String {
        loop {
            let mut id = String::with_capacity(19);
            id.push_str("01");
            push_digits(rng, &mut id, 17);
            if self.seen.insert(id.clone()) {
                return id;
            }
        }
    }
}

/// Builds course `c` of `n_courses`: its hierarchy node and its model.
pub(super) fn build_course(
    rng: &mut ChaCha8Rng,
    mint: &mut IdMint,
    p: &GenParams,
    c: usize,
    n_courses: usize,
    channels: &[String],
) -> (Node, Course) {
    let id = mint.content(rng);
    let topic = TOPICS[c % TOPICS.len()];
    let name = format!("Course {}: {}", c + 1, topic);
    // Most courses belong to the main tenant, about one in five to the other.
    let channel = if c % 5 == 4 {
        channels[1].clone()
    } else {
        channels[0].clone()
    };
    // The last course is retired once there are four, so a benchmark-sized
    // run always has one; otherwise about one in ten, never the first.
    let retired = (n_courses >= 4 && c == n_courses - 1) || (c != 0 && chance(rng, 8));
    // Older hierarchies typed collections as Content: the report must go by
    // mimeType. The third course, and some others, are in that form.
    let legacy_types = c == 2 || (c > 2 && chance(rng, 15));
    // The second course has no leafNodes on its root (the report must then
    // compute the leaves); some others too.
    let with_leaf_nodes = !(c == 1 || (c > 1 && chance(rng, 10)));
    // The first course of two or more has no optional content; most others
    // have one.
    let with_optional = !(n_courses >= 2 && c == 0) && (c == 1 || chance(rng, 85));

    let collection_type = if legacy_types {
        "Content"
    } else {
        "Collection"
    };
    let mut root = Node::new(id.clone(), name.clone(), 0);
    root.content_type = Some("Course");
    root.primary_category = "Course";
    root.object_type = "Collection";
    root.channel = Some(channel.clone());

    let mut leaves: Vec<Leaf> = Vec::new();
    let mut collections: Vec<Collection> = Vec::new();
    let mut assessments: Vec<usize> = Vec::new();
    // Resource leaves (not assessments), a candidate for the optional one.
    let mut resources: Vec<usize> = Vec::new();

    for u in 0..p.units {
        let nested = p.units >= 2 && u == p.units - 1;
        let unit_id = mint.content(rng);
        let mut unit = if nested {
            let mut n = Node::new(unit_id.clone(), format!("{topic}: Advanced Module"), 1);
            n.content_type = Some("Course");
            n.primary_category = "Course";
            n
        } else {
            let mut n = Node::new(unit_id.clone(), format!("Unit {}: {}", u + 1, topic), 1);
            n.visibility = "Parent";
            n.content_type = Some("CourseUnit");
            n.primary_category = "Course Unit";
            n
        };
        unit.object_type = collection_type;
        unit.children = Some(Vec::new());
        let unit_slot = collections.len();
        collections.push(Collection {
            id: unit_id.clone(),
            leaves: Vec::new(),
        });

        // Occasionally the last leaves of a unit sit one level deeper, in a
        // sub-unit (always in the first unit of the first course).
        let deeper = if p.leaves_per_unit >= 2 && ((c == 0 && u == 0) || chance(rng, 25)) {
            1 + index(rng, p.leaves_per_unit.min(3) - 1)
        } else {
            0
        };
        let mut sub = None;
        for l in 0..p.leaves_per_unit {
            let in_sub = l >= p.leaves_per_unit - deeper;
            if in_sub && sub.is_none() {
                let sub_id = mint.content(rng);
                let mut s = Node::new(sub_id.clone(), format!("Unit {}.1: Practice", u + 1), 2);
                s.visibility = "Parent";
                s.content_type = Some("CourseUnit");
                s.primary_category = "Course Unit";
                s.object_type = collection_type;
                s.children = Some(Vec::new());
                collections.push(Collection {
                    id: sub_id,
                    leaves: Vec::new(),
                });
                sub = Some((s, collections.len() - 1));
            }
            let leaf_id = mint.content(rng);
            let (mime, category, kind) = *pick(
                rng,
                &[
                    ("application/pdf", "Learning Resource", "Reading"),
                    ("video/mp4", "Explanation Content", "Video"),
                    (
                        "application/vnd.ekstep.ecml-archive",
                        "Learning Resource",
                        "Activity",
                    ),
                ],
            );
            let depth = if in_sub { 3 } else { 2 };
            let mut node = Node::new(
                leaf_id.clone(),
                format!("{kind} {}.{}", u + 1, l + 1),
                depth,
            );
            node.mime_type = mime;
            node.content_type = Some("Resource");
            node.primary_category = category;
            let li = leaves.len();
            leaves.push(Leaf {
                id: leaf_id,
                optional: false,
                max_score: None,
            });
            resources.push(li);
            collections[unit_slot].leaves.push(li);
            match sub.as_mut() {
                Some((s, slot)) if in_sub => {
                    collections[*slot].leaves.push(li);
                    s.adopt(node);
                }
                _ => unit.adopt(node),
            }
        }
        if let Some((s, _)) = sub {
            unit.adopt(s);
        }

        // Assessments a = u, u + units, ... go to this unit, alternating
        // SelfAssess contents (even a) and question sets (odd a).
        let mut a = u;
        while a < p.assessments {
            let aid = mint.content(rng);
            let max = *pick(rng, &[5u32, 10, 10, 20]);
            let mut node;
            if a % 2 == 0 {
                node = Node::new(aid.clone(), format!("Self Assessment {}", a + 1), 2);
                node.mime_type = "application/vnd.ekstep.ecml-archive";
                node.content_type = Some("SelfAssess");
                node.primary_category = "Course Assessment";
            } else {
                node = Node::new(aid.clone(), format!("Practice Set {}", a + 1), 2);
                node.mime_type = "application/vnd.sunbird.questionset";
                node.primary_category = "Practice Question Set";
                node.object_type = "QuestionSet";
                // Its questions are children but not leaves of the course.
                for q in 0..2 + index(rng, 2) {
                    let mut question =
                        Node::new(mint.content(rng), format!("Question {}", q + 1), 3);
                    question.mime_type = "application/vnd.sunbird.question";
                    question.visibility = "Parent";
                    question.primary_category = "Multiple Choice Question";
                    question.object_type = "Question";
                    node.adopt(question);
                }
            }
            node.max_score = Some(max);
            let li = leaves.len();
            leaves.push(Leaf {
                id: aid,
                optional: false,
                max_score: Some(max),
            });
            assessments.push(li);
            collections[unit_slot].leaves.push(li);
            unit.adopt(node);
            a += p.units;
        }

        if nested {
            // Nested courses are published collections of their own and
            // carry their own leafNodes, which the report must not confuse
            // with the root's.
            let ids: Vec<String> = collections[unit_slot]
                .leaves
                .iter()
                .map(|&i| leaves[i].id.clone())
                .collect();
            unit.leaf_nodes_count = Some(ids.len());
            unit.leaf_nodes = Some(ids);
        }
        root.adopt(unit);
    }

    if with_optional && !resources.is_empty() {
        let li = *pick(rng, &resources);
        leaves[li].optional = true;
        mark_optional(&mut root, &leaves[li].id);
    }
    if with_leaf_nodes {
        root.leaf_nodes_count = Some(leaves.len());
        root.leaf_nodes = Some(leaves.iter().map(|l| l.id.clone()).collect());
    }
    // Children of a collection stay in a list even when empty.
    root.children.get_or_insert_with(Vec::new);

    let mut by_id: Vec<usize> = (0..leaves.len()).collect();
    by_id.sort_by(|&a, &b| leaves[a].id.cmp(&leaves[b].id));
    let removed_id = mint.content(rng);
    let course = Course {
        id,
        name,
        channel,
        retired,
        leaves,
        by_id,
        collections,
        assessments,
        removed_id,
    };
    (root, course)
}

pub(super) fn mark_optional(node: &mut Node, id: &str) -> bool {
    if node.identifier == id {
        node.relational_metadata = Some(RelationalMetadata { optional: true });
        return true;
    }
    node.children
        .iter_mut()
        .flatten()
        .any(|child| mark_optional(child, id))
}
