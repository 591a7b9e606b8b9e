//! The OpenAPI document states the contract the handlers keep (checked
//! end to end by `scripts/schemathesis`): required fields and their
//! constraints, Sunbird's error envelope on every error status, and the
//! content types of the routes that do not answer JSON.

use serde_json::Value;

fn doc() -> Value {
    serde_json::to_value(exhaust_server::openapi()).expect("the document is JSON")
}

/// Follows a `$ref` to `#/components/schemas/<name>`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").expect("local ref");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is documented");
    op
}

fn parameter<'a>(op: &'a Value, name: &str, place: &str) -> &'a Value {
    op["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == name && p["in"] == place)
        .unwrap_or_else(|| panic!("{place} parameter {name} is documented"))
}

fn required(schema: &Value) -> Vec<&str> {
    schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn submit_requires_a_non_blank_tag_dataset_and_channel() {
    let doc = doc();
    let op = operation(&doc, "/dataset/v1/request/submit", "post");
    let body = resolve(
        &doc,
        &op["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(required(body), ["request"]);
    let request = resolve(&doc, &body["properties"]["request"]);
    assert_eq!(required(request), ["tag", "dataset", "datasetConfig"]);
    use exhaust_server::api::{FIELD_PATTERN, NO_NUL_PATTERN, NOT_BLANK};
    // The field pattern is the not-blank class with NUL added, and no NUL.
    let class = &NOT_BLANK[2..NOT_BLANK.len() - 1];
    assert_eq!(
        FIELD_PATTERN,
        format!("^[^\\u0000]*[^\\u0000{class}][^\\u0000]*$")
    );
    for (field, max) in [("tag", 256), ("dataset", 64)] {
        let s = &request["properties"][field];
        assert_eq!(s["type"], "string", "{field}");
        assert_eq!(s["minLength"], 1, "{field}");
        assert_eq!(s["maxLength"], max, "{field}");
        assert_eq!(s["pattern"], FIELD_PATTERN, "{field}");
    }
    for (field, max) in [("requestedBy", 256), ("encryptionKey", 1024)] {
        let s = &request["properties"][field];
        assert_eq!(s["maxLength"], max, "{field}");
        assert_eq!(s["pattern"], NO_NUL_PATTERN, "{field}");
    }
    let config = resolve(&doc, &request["properties"]["datasetConfig"]);
    assert_eq!(config["type"], "object");
    assert_eq!(config["minProperties"], 1);
    assert!(
        required(config).is_empty(),
        "no key of datasetConfig is required"
    );

    for (path, method) in [
        ("/dataset/v1/request/submit", "post"),
        ("/dataset/v1/request/read/{tag}", "get"),
        ("/dataset/v1/request/list/{tag}", "get"),
    ] {
        let channel = parameter(operation(&doc, path, method), "X-Channel-ID", "header");
        assert_eq!(channel["required"], true, "{path}");
        assert_eq!(channel["schema"]["minLength"], 1, "{path}");
        assert_eq!(
            channel["schema"]["pattern"],
            exhaust_server::api::CHANNEL_PATTERN,
            "{path}"
        );
    }
    for path in [
        "/dataset/v1/request/read/{tag}",
        "/dataset/v1/request/list/{tag}",
    ] {
        let tag = parameter(operation(&doc, path, "get"), "tag", "path");
        assert_eq!(tag["required"], true);
        assert_eq!(tag["schema"]["minLength"], 1, "{path}");
    }
    let limit = parameter(
        operation(&doc, "/dataset/v1/request/list/{tag}", "get"),
        "limit",
        "query",
    );
    assert_eq!(limit["schema"]["type"], "integer");
    assert_eq!(limit["schema"]["minimum"], 0);
    assert_eq!(
        limit["schema"]["maximum"].as_u64(),
        Some(exhaust_server::api::MAX_LIST_LIMIT)
    );
}

/// The character ranges of a `[^\uXXXX-\uXXXX\uXXXX...]` class.
fn excluded_ranges(class: &str) -> Vec<(u32, u32)> {
    let inner = class
        .strip_prefix("[^")
        .and_then(|c| c.strip_suffix(']'))
        .expect("a negated class");
    let mut ranges = Vec::new();
    for item in inner.split("\\u").filter(|s| !s.is_empty()) {
        let code = u32::from_str_radix(item.trim_end_matches('-'), 16).expect("hex");
        match ranges.last_mut() {
            Some((_, end)) if *end == u32::MAX => *end = code,
            _ => ranges.push((code, if item.ends_with('-') { u32::MAX } else { code })),
        }
    }
    ranges
}

#[test]
fn the_not_blank_pattern_excludes_exactly_what_trim_removes() {
    let ranges = excluded_ranges(exhaust_server::api::NOT_BLANK);
    assert!(!ranges.is_empty());
    for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
        let excluded = ranges
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&(c as u32)));
        assert_eq!(excluded, c.is_whitespace(), "U+{:04X}", c as u32);
    }
}

#[test]
fn every_error_status_has_sunbirds_envelope() {
    let doc = doc();
    let envelope = &doc["components"]["schemas"]["ErrorEnvelope"];
    assert_eq!(
        required(envelope),
        ["id", "ver", "ts", "params", "responseCode"]
    );
    let params = resolve(&doc, &envelope["properties"]["params"]);
    assert_eq!(required(params), ["resmsgid", "status", "err", "errmsg"]);
    let codes = resolve(&doc, &envelope["properties"]["responseCode"]);
    let codes: Vec<&str> = codes["enum"]
        .as_array()
        .expect("enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for code in [
        "CLIENT_ERROR",
        "UNAUTHORIZED",
        "FORBIDDEN",
        "RESOURCE_NOT_FOUND",
        "SERVER_ERROR",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let expected: [(&str, &str, &[&str]); 4] = [
        (
            "/dataset/v1/request/submit",
            "post",
            &["400", "401", "403", "500"],
        ),
        (
            "/dataset/v1/request/read/{tag}",
            "get",
            &["400", "401", "403", "404", "500"],
        ),
        (
            "/dataset/v1/request/list/{tag}",
            "get",
            &["400", "401", "403", "404", "500"],
        ),
        (
            "/dataset/v1/download/{token}",
            "get",
            &["400", "403", "404", "500"],
        ),
    ];
    for (path, method, statuses) in expected {
        let responses = &operation(&doc, path, method)["responses"];
        for status in statuses {
            let schema = &responses[*status]["content"]["application/json"]["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/ErrorEnvelope",
                "{method} {path} {status}"
            );
        }
    }
}

#[test]
fn non_json_routes_declare_their_content_types() {
    let doc = doc();
    let zip = &operation(&doc, "/dataset/v1/download/{token}", "get")["responses"]["200"];
    let body = resolve(&doc, &zip["content"]["application/zip"]["schema"]);
    assert_eq!(body["type"], "string");
    assert_eq!(body["format"], "binary");
    assert!(zip["headers"].get("Content-Disposition").is_some());
    let content = |path: &str, status: &str| -> Vec<String> {
        operation(&doc, path, "get")["responses"][status]["content"]
            .as_object()
            .expect("content")
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        content("/dataset/v1/download/{token}", "200"),
        ["application/zip"]
    );
    assert_eq!(content("/health", "200"), ["application/json"]);
    assert_eq!(content("/health", "503"), ["application/json"]);
    assert_eq!(
        content("/metrics", "200"),
        ["application/openmetrics-text; version=1.0.0; charset=utf-8"]
    );
    assert_eq!(content("/openapi.json", "200"), ["application/json"]);
}
