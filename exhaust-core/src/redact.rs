//! Secrets out of what is shown: a URL with its password, query values
//! and fragment masked, for messages, logs and `Debug` output. Pure text
//! handling, used by every crate that holds a URL with credentials.

/// What `Debug` output shows in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// A URL with its password (if any), the values of its query and its
/// fragment replaced, for messages, logs and `Debug` output: a query may
/// carry a password or a signed token too (`?password=`, `?sig=`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = format!("{scheme}://");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            out.push_str(&format!("{user}:***@{host}"));
        }
        None => out.push_str(authority),
    }
    let (tail, fragment) = match tail.split_once('#') {
        Some((before, _)) => (before, true),
        None => (tail, false),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    out.push_str(path);
    if let Some(query) = query {
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}=***"),
                // A bare item may be a token itself.
                None => "***".to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&masked.join("&"));
    }
    if fragment {
        out.push_str("#***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("redis://:secret@cache:6379/12"),
            "redis://:***@cache:6379/12"
        );
        assert_eq!(
            redact_url("redis://app:secret@cache:6379"),
            "redis://app:***@cache:6379"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        // A query and a fragment may carry a password or a token too.
        assert_eq!(
            redact_url("postgres://app@db/x?sslmode=require&password=secret"),
            "postgres://app:***@db/x?sslmode=***&password=***"
        );
        assert_eq!(
            redact_url("http://host:9000/read?secret#frag"),
            "http://host:9000/read?***#***"
        );
        assert_eq!(
            redact_url("redis://:secret@cache?db=1"),
            "redis://:***@cache?db=***"
        );
        // A path (an SQLite file) is no URL.
        assert_eq!(redact_url("/var/lib/exhaust.db"), "/var/lib/exhaust.db");
    }
}
