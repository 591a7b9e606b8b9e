//! The collection hierarchy (SPEC section 2): leaves, nested collections and
//! assessments, read from the hierarchy JSON as it is stored.

use crate::ids::ContentId;
use serde::Deserialize;
use std::collections::HashSet;

/// The mime type that marks a node as a collection.
pub const COLLECTION_MIME_TYPE: &str = "application/vnd.ekstep.content-collection";

/// Which nodes are assessments (Sunbird's `assessment.metrics.supported.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssessmentRules {
    /// `contentType`s that are assessments (default `SelfAssess`).
    pub content_types: Vec<String>,
    /// `objectType`s of question sets (default `QuestionSet`).
    pub object_types: Vec<String>,
    /// `primaryCategory`s of question sets that are assessments (default
    /// `Practice Question Set`).
    pub primary_categories: Vec<String>,
}

impl Default for AssessmentRules {
    fn default() -> Self {
        Self {
            content_types: vec!["SelfAssess".into()],
            object_types: vec!["QuestionSet".into()],
            primary_categories: vec!["Practice Question Set".into()],
        }
    }
}

/// Why a hierarchy could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HierarchyError {
    /// The text is not JSON, or a field has the wrong type.
    #[error("hierarchy of {id} does not parse: {detail}")]
    Parse {
        /// The collection whose hierarchy it is.
        id: String,
        /// The JSON error.
        detail: String,
    },
    /// A node has no `identifier`.
    #[error("hierarchy of {id} has a node without an identifier at {path}")]
    MissingIdentifier {
        /// The collection whose hierarchy it is.
        id: String,
        /// Where the node is, as child indexes from the root (`root/2/0`).
        path: String,
    },
}

/// A node of the hierarchy JSON; unknown fields are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNode {
    identifier: Option<String>,
    #[serde(default)]
    children: Option<Vec<RawNode>>,
    mime_type: Option<String>,
    content_type: Option<String>,
    primary_category: Option<String>,
    object_type: Option<String>,
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient_index")]
    index: Option<f64>,
    leaf_nodes: Option<Vec<String>>,
}

/// `index` is a number in published hierarchies, but text in some old ones.
fn lenient_index<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A collection directly under the root: a course unit or a nested course.
#[derive(Debug, Clone, PartialEq)]
pub struct NestedCollection {
    /// Its id.
    pub id: ContentId,
    /// Its name in the hierarchy, when given.
    pub name: Option<String>,
    /// Its leaves (distinct, in tree order).
    pub leaves: Vec<ContentId>,
}

/// What the report needs of a collection's structure.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchy {
    /// The root's identifier.
    pub root_id: ContentId,
    /// The root's leaves: its `leafNodes` when present, else computed.
    pub leaves: Vec<ContentId>,
    /// The root's children that are collections, in `index` order.
    pub nested: Vec<NestedCollection>,
    /// Assessment nodes at any depth, in tree order.
    pub assessments: Vec<ContentId>,
    /// The assessments' names in the hierarchy, when given (same order and
    /// length as `assessments`).
    pub assessment_names: Vec<Option<String>>,
}

impl Hierarchy {
    /// Reads the hierarchy JSON of collection `id`.
    pub fn parse(id: &str, json: &str, rules: &AssessmentRules) -> Result<Self, HierarchyError> {
        let root: RawNode = serde_json::from_str(json).map_err(|e| HierarchyError::Parse {
            id: id.to_owned(),
            detail: e.to_string(),
        })?;
        check_identifiers(id, &root, &mut String::from("root"))?;
        let root_id = root.identifier.clone().unwrap_or_default();

        let leaves = match &root.leaf_nodes {
            Some(ids) => distinct(ids.iter().cloned()),
            None => {
                let mut out = Vec::new();
                collect_leaves(&root, &mut out);
                distinct(out.into_iter())
            }
        };

        let mut seen = HashSet::new();
        let nested = ordered_children(&root)
            .into_iter()
            .filter(|c| is_collection(c) && seen.insert(c.identifier.clone()))
            .map(|c| {
                let mut out = Vec::new();
                collect_leaves(c, &mut out);
                NestedCollection {
                    id: ContentId::new(c.identifier.clone().unwrap_or_default()),
                    name: c.name.clone(),
                    leaves: distinct(out.into_iter()),
                }
            })
            .collect();

        let mut found = Vec::new();
        collect_assessments(&root, rules, &mut found);
        let mut seen = HashSet::new();
        let (assessments, assessment_names): (Vec<ContentId>, Vec<Option<String>>) = found
            .into_iter()
            .filter(|(id, _)| seen.insert(id.clone()))
            .map(|(id, name)| (ContentId::new(id), name))
            .unzip();

        Ok(Self {
            root_id: ContentId::new(root_id),
            leaves,
            nested,
            assessments,
            assessment_names,
        })
    }
}

fn check_identifiers(id: &str, node: &RawNode, path: &mut String) -> Result<(), HierarchyError> {
    if node
        .identifier
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(HierarchyError::MissingIdentifier {
            id: id.to_owned(),
            path: path.clone(),
        });
    }
    for (i, child) in node.children.iter().flatten().enumerate() {
        let len = path.len();
        path.push_str(&format!("/{i}"));
        check_identifiers(id, child, path)?;
        path.truncate(len);
    }
    Ok(())
}

/// A node's children in course order: by `index`, the 1-based position
/// publishing assigns; a child without one keeps its array position, and a
/// stable sort keeps array order among equal indexes. Every walk of the tree
/// uses this order, so columns follow the course as learners see it.
fn ordered_children(node: &RawNode) -> Vec<&RawNode> {
    let mut children: Vec<(f64, &RawNode)> = node
        .children
        .iter()
        .flatten()
        .enumerate()
        .map(|(pos, c)| (c.index.unwrap_or((pos + 1) as f64), c))
        .collect();
    children.sort_by(|a, b| a.0.total_cmp(&b.0));
    children.into_iter().map(|(_, c)| c).collect()
}

fn is_collection(n: &RawNode) -> bool {
    n.mime_type.as_deref() == Some(COLLECTION_MIME_TYPE)
}

fn has(list: &[String], value: Option<&str>) -> bool {
    value.is_some_and(|v| list.iter().any(|x| x == v))
}

/// Leaves of a subtree: nodes without children that are neither collections
/// nor questions; a question set is one leaf and its questions are not.
fn collect_leaves(node: &RawNode, out: &mut Vec<String>) {
    for child in ordered_children(node) {
        let object_type = child.object_type.as_deref();
        let kids = child.children.as_ref().is_some_and(|c| !c.is_empty());
        if object_type == Some("QuestionSet") {
            out.extend(child.identifier.clone());
        } else if kids {
            collect_leaves(child, out);
        } else if !is_collection(child) && object_type != Some("Question") {
            out.extend(child.identifier.clone());
        }
    }
}

fn collect_assessments(
    node: &RawNode,
    rules: &AssessmentRules,
    out: &mut Vec<(String, Option<String>)>,
) {
    for child in ordered_children(node) {
        let by_content_type = has(&rules.content_types, child.content_type.as_deref());
        let by_question_set = has(&rules.object_types, child.object_type.as_deref())
            && has(&rules.primary_categories, child.primary_category.as_deref());
        if (by_content_type || by_question_set)
            && let Some(id) = &child.identifier
        {
            out.push((id.clone(), child.name.clone()));
        }
        collect_assessments(child, rules, out);
    }
}

fn distinct(ids: impl Iterator<Item = String>) -> Vec<ContentId> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(id.clone()))
        .map(ContentId::new)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[ContentId]) -> Vec<&str> {
        v.iter().map(|c| c.as_str()).collect()
    }

    const COURSE: &str = r#"{"identifier":"do_C","mimeType":"application/vnd.ekstep.content-collection",
      "objectType":"Collection","contentType":"Course",
      "children":[
        {"identifier":"do_U2","index":2,"mimeType":"application/vnd.ekstep.content-collection","children":[
           {"identifier":"do_r3","mimeType":"video/mp4","objectType":"Content"},
           {"identifier":"do_sa","mimeType":"application/vnd.ekstep.ecml-archive","contentType":"SelfAssess","objectType":"Content"}]},
        {"identifier":"do_U1","index":1,"mimeType":"application/vnd.ekstep.content-collection","children":[
           {"identifier":"do_r1","mimeType":"application/pdf","objectType":"Content"},
           {"identifier":"do_q1","mimeType":"application/vnd.sunbird.questionset","objectType":"QuestionSet",
            "primaryCategory":"Practice Question Set","children":[
              {"identifier":"do_qq1","objectType":"Question"},{"identifier":"do_qq2","objectType":"Question"}]},
           {"identifier":"do_empty","mimeType":"application/vnd.ekstep.content-collection","children":[]}]},
        {"identifier":"do_r1","mimeType":"application/pdf","objectType":"Content"},
        {"identifier":"do_lone_q","objectType":"Question"}]}"#;

    #[test]
    fn computes_leaves_units_and_assessments() {
        let h = Hierarchy::parse("do_C", COURSE, &AssessmentRules::default()).expect("parses");
        assert_eq!(h.root_id.as_str(), "do_C");
        // Tree order (children by `index`), distinct; the question set is one
        // leaf; empty units and lone questions are not leaves.
        assert_eq!(ids(&h.leaves), ["do_r1", "do_q1", "do_r3", "do_sa"]);
        // Units in `index` order, not array order.
        let units: Vec<_> = h.nested.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(units, ["do_U1", "do_U2"]);
        assert_eq!(ids(&h.nested[0].leaves), ["do_r1", "do_q1"]);
        assert_eq!(ids(&h.nested[1].leaves), ["do_r3", "do_sa"]);
        assert_eq!(ids(&h.assessments), ["do_q1", "do_sa"]);
    }

    #[test]
    fn root_leaf_nodes_win_when_present() {
        let json = r#"{"identifier":"do_C","leafNodes":["do_x","do_y","do_x"],"children":[
            {"identifier":"do_r1","mimeType":"application/pdf"}]}"#;
        let h = Hierarchy::parse("do_C", json, &AssessmentRules::default()).expect("parses");
        assert_eq!(ids(&h.leaves), ["do_x", "do_y"]);
    }

    #[test]
    fn question_set_needs_the_category_too() {
        let json = r#"{"identifier":"do_C","children":[
            {"identifier":"do_qs","objectType":"QuestionSet","primaryCategory":"Exam Question Set"}]}"#;
        let h = Hierarchy::parse("do_C", json, &AssessmentRules::default()).expect("parses");
        assert!(h.assessments.is_empty());
        let rules = AssessmentRules {
            primary_categories: vec!["Exam Question Set".into()],
            ..AssessmentRules::default()
        };
        let h = Hierarchy::parse("do_C", json, &rules).expect("parses");
        assert_eq!(ids(&h.assessments), ["do_qs"]);
    }

    #[test]
    fn bad_json_and_missing_ids_are_errors() {
        let e = Hierarchy::parse("do_C", "{not json", &AssessmentRules::default()).unwrap_err();
        assert!(matches!(e, HierarchyError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("do_C"));
        let e = Hierarchy::parse(
            "do_C",
            r#"{"identifier":"do_C","children":[{"name":"x"}]}"#,
            &AssessmentRules::default(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "hierarchy of do_C has a node without an identifier at root/0"
        );
        let e = Hierarchy::parse(
            "do_C",
            r#"{"identifier":"do_C","children":"oops"}"#,
            &AssessmentRules::default(),
        )
        .unwrap_err();
        assert!(matches!(e, HierarchyError::Parse { .. }));
    }

    #[test]
    fn index_may_be_text_and_missing_index_keeps_position() {
        let json = r#"{"identifier":"do_C","children":[
            {"identifier":"do_B","index":"2","mimeType":"application/vnd.ekstep.content-collection"},
            {"identifier":"do_A","mimeType":"application/vnd.ekstep.content-collection"}]}"#;
        let h = Hierarchy::parse("do_C", json, &AssessmentRules::default()).expect("parses");
        // do_A has no index: it stays at its position (2), after do_B (2) by stability.
        let units: Vec<_> = h.nested.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(units, ["do_B", "do_A"]);
    }
}
