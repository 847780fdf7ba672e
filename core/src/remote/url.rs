//! Remote URLs: parsed and checked when they are set, and never shown with their
//! password (every message about a URL uses [`RemoteUrl::shown`] or [`redact`]).

use crate::error::{Error, Result};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

/// Where the remote tier lives: one server, or the seed nodes of a Redis Cluster.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Single(ConnectionInfo),
    Cluster(Vec<ConnectionInfo>),
}

/// A checked remote URL.
#[derive(Clone)]
pub struct RemoteUrl {
    shown: String,
    pub(crate) target: Target,
}

impl std::fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

const SCHEMES: &str =
    "redis://, rediss:// (TLS), redis+unix://, redis+cluster:// or rediss+cluster:// (TLS cluster)";

impl RemoteUrl {
    /// Parses and checks `text`. A malformed URL or an unknown scheme is
    /// INVALID_ARGUMENT; the message shows the URL with its password masked.
    pub fn parse(text: &str) -> Result<RemoteUrl> {
        let shown = redact(text);
        let secrets = secrets_of(text);
        let bad = |why: &str| {
            Error::invalid(scrub(
                &format!("malformed remote URL \"{shown}\": {why}"),
                &secrets,
            ))
        };
        if text
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("it contains spaces or control characters"));
        }
        let Some((written, rest)) = text.split_once("://") else {
            return Err(bad(&format!(
                "expected scheme://..., with scheme one of {SCHEMES}"
            )));
        };
        // Schemes are case-insensitive (RFC 3986, 3.1), as for the client crate.
        let scheme = written.to_ascii_lowercase();
        let target = match scheme.as_str() {
            "redis" | "rediss" => {
                let parsed = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
                if parsed.host_str().map_or(true, str::is_empty) {
                    return Err(bad("no host"));
                }
                if parsed.query().is_some() {
                    return Err(bad("query parameters are not supported"));
                }
                if parsed.fragment().is_some() {
                    return Err(bad("a fragment (#...) has no meaning here"));
                }
                let path = parsed.path().trim_start_matches('/');
                if !path.is_empty() && path.parse::<u16>().is_err() {
                    return Err(bad("the path must be a database number"));
                }
                Target::Single(one(text).map_err(|e| bad(&e))?)
            }
            "redis+unix" => {
                if !rest.starts_with('/') || rest.len() < 2 {
                    return Err(bad("expected redis+unix:///absolute/path/to.sock"));
                }
                // The client would drop what follows a '#', or read what follows a '?'
                // as options, ignoring those it does not know, and connect to another
                // path. Its options db, user and pass are the only way to give a socket
                // a database or a password, so those are kept.
                if rest.contains('#') {
                    return Err(bad("a '#' in a socket path is written %23"));
                }
                let parsed = url::Url::parse(text).map_err(|e| bad(&e.to_string()))?;
                if parsed
                    .query_pairs()
                    .any(|(k, _)| !matches!(&*k, "db" | "user" | "pass"))
                {
                    return Err(bad(
                        "the query may set only db, user and pass (a '?' in a socket path is written %3F)",
                    ));
                }
                // The same databases as redis://.../db (a negative one, or one past
                // 65535, is no database).
                if parsed
                    .query_pairs()
                    .any(|(k, v)| k == "db" && v.parse::<u16>().is_err())
                {
                    return Err(bad("db must be a database number"));
                }
                Target::Single(one(text).map_err(|e| bad(&e))?)
            }
            "redis+cluster" | "rediss+cluster" => {
                let single = scheme.trim_end_matches("+cluster");
                let (auth, hosts) = match rest.rsplit_once('@') {
                    Some((auth, hosts)) => (format!("{auth}@"), hosts),
                    None => (String::new(), rest),
                };
                let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
                if hosts.contains(['/', '?', '#']) {
                    return Err(bad("a cluster URL takes no database, path or query"));
                }
                let mut nodes = Vec::new();
                for host in hosts.split(',') {
                    if host.is_empty() {
                        return Err(bad("an empty host in the node list"));
                    }
                    let node = format!("{single}://{auth}{host}");
                    let parsed = url::Url::parse(&node).map_err(|e| bad(&e.to_string()))?;
                    if parsed.host_str().map_or(true, str::is_empty) {
                        return Err(bad("no host"));
                    }
                    nodes.push(one(&node).map_err(|e| bad(&e))?);
                }
                Target::Cluster(nodes)
            }
            "" => return Err(bad("no scheme")),
            _ => {
                let other = scrub(written, &secrets);
                return Err(Error::invalid(format!(
                    "unknown remote URL scheme \"{other}\" in \"{shown}\": use {SCHEMES}"
                )));
            }
        };
        Ok(RemoteUrl { shown, target })
    }

    /// The URL with its password masked.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// What tells the keys this URL reaches from another's, however the URL spells
    /// them: the server and the database. Not the URL as written: `redis://h:6379`,
    /// `redis://h`, `redis://h:6379/`, `redis://h:6379/0`, `REDIS://h:6379` and
    /// `redis://user:pass@h:6379` reach one server's database 0 (another password holds
    /// the same keys), and a debt kept under one spelling was not seen by a handle
    /// using another, which read the value its neighbour had deleted back from the
    /// remote. A cluster is its seed nodes in any order. A host name is not looked up
    /// (its addresses may change), but for `localhost`, which is 127.0.0.1 or ::1.
    pub(crate) fn keyspace(&self) -> String {
        match &self.target {
            Target::Single(info) => format!("{} db {}", server(info), info.redis.db),
            Target::Cluster(nodes) => {
                let mut seeds: Vec<String> = nodes.iter().map(server).collect();
                seeds.sort();
                seeds.dedup();
                format!("cluster {}", seeds.join(","))
            }
        }
    }
}

/// The server `info` names: `host:port` (the host lowercased, without brackets or a
/// trailing dot, the loopback names as one), or a socket's path.
fn server(info: &ConnectionInfo) -> String {
    match &info.addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let host = match host.as_str() {
                "127.0.0.1" | "::1" => "localhost",
                other => other,
            };
            format!("{host}:{port}")
        }
        ConnectionAddr::Unix(path) => format!("unix {}", path.display()),
    }
}

fn one(text: &str) -> std::result::Result<ConnectionInfo, String> {
    let info = text.into_connection_info().map_err(|e| e.to_string())?;
    if let ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } = &info.addr
    {
        if host.is_empty() {
            return Err("no host".into());
        }
        // No server listens on port 0: every round trip would fail, unexplained.
        if *port == 0 {
            return Err("port 0 cannot be connected to".into());
        }
    }
    Ok(info)
}

/// The authority's user-info part, if any: `user:password` in `scheme://user:password@host`.
/// It runs to the last '@', so that a password written with a bare '/', '?' or '#'
/// (a URL needs them percent-encoded; such a URL is refused) is masked whole. A
/// socket path (`redis+unix:///...`) has none.
fn userinfo(text: &str) -> Option<(usize, &str)> {
    let start = text.find("://")? + 3;
    let rest = &text[start..];
    if rest.starts_with('/') {
        return None;
    }
    let at = rest.rfind('@')?;
    Some((start, &rest[..at]))
}

/// `text` with the password of its user-info, and any query, replaced by `***`: the
/// client crate reads a password from a query (`?pass=...`, the only way to give one to
/// a Unix socket), and a URL with a query is refused with its text in the message.
/// When a '?' comes before the user-info's end, which of the two holds the password
/// cannot be told: everything from the first of them on is masked.
pub fn redact(text: &str) -> String {
    if let Some((from, to)) = without_slashes(text) {
        return format!("{}***{}", &text[..from], &text[to..]);
    }
    let query = text.find('?');
    // The masked part of the user-info: after the user name, or all of it when it has
    // no ':' (a lone user-info is a password for redis://, "redis://secret@host").
    let secret = userinfo(text).and_then(|(start, info)| match info.split_once(':') {
        Some((user, _)) => Some((start + user.len() + 1, start + info.len())),
        None if !info.is_empty() => Some((start, start + info.len())),
        None => None,
    });
    match (secret, query) {
        (Some((from, to)), Some(q)) if q < to => format!("{}***", &text[..from.min(q)]),
        (Some((from, to)), _) => {
            let after = &text[to..];
            match after.split_once('?') {
                Some((before, _)) => format!("{}***{before}?***", &text[..from]),
                None => format!("{}***{after}", &text[..from]),
            }
        }
        (None, Some(q)) => mask_bare_ports(&format!("{}?***", &text[..q])),
        (None, None) => mask_bare_ports(text),
    }
}

/// The ports that are not numbers in the authority of `text`, a URL without user-info:
/// ranges of `text`. Such a "port" is most likely a password written without the
/// `@host` after it (`redis://:secret`, `redis://user:secret`), which the message
/// refusing the URL showed whole.
fn bare_ports(text: &str) -> Vec<(usize, usize)> {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return Vec::new();
    };
    let rest = &text[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if rest[..end].contains('@') {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut at = start;
    for host in rest[..end].split(',') {
        // After an IPv6 address's ']', if any: its own colons are no port.
        let tail = host.rfind(']').map_or(0, |i| i + 1);
        if let Some(colon) = host[tail..].rfind(':').map(|i| tail + i) {
            let port = &host[colon + 1..];
            if !port.is_empty() && !port.bytes().all(|b| b.is_ascii_digit()) {
                out.push((at + colon + 1, at + host.len()));
            }
        }
        at += host.len() + 1;
    }
    out
}

/// In a URL without `://` (`redis:secret@host`, `redis//u:secret@host`), which is
/// refused, where a password may be cannot be told: the range from after its first ':'
/// up to its last '@' (or its end).
fn without_slashes(text: &str) -> Option<(usize, usize)> {
    if text.contains("://") {
        return None;
    }
    let from = text.find(':')? + 1;
    let to = text
        .rfind('@')
        .filter(|&at| at >= from)
        .unwrap_or(text.len());
    (to > from).then_some((from, to))
}

/// `text` with its `bare_ports` replaced by `***`.
fn mask_bare_ports(text: &str) -> String {
    let mut out = text.to_string();
    for (from, to) in bare_ports(text).into_iter().rev() {
        out.replace_range(from..to, "***");
    }
    out
}

/// The password as written and as decoded, to mask wherever it might appear.
fn secrets_of(text: &str) -> Vec<String> {
    let Some((_, info)) = userinfo(text) else {
        let hidden = bare_ports(text).into_iter().chain(without_slashes(text));
        return hidden
            .map(|(from, to)| text[from..to].to_string())
            .collect();
    };
    let raw = info.split_once(':').map_or(info, |(_, p)| p);
    let mut out = vec![raw.to_string()];
    if let Ok(decoded) = url::Url::parse(&format!("x://u:{raw}@h")) {
        if let Some(p) = decoded.password() {
            if let Ok(p) = percent_decode(p) {
                out.push(p);
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn percent_decode(s: &str) -> std::result::Result<String, ()> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

fn scrub(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    for s in secrets {
        out = out.replace(s.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(redact("redis://u:s3cret@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(redact("redis://s3cret@h"), "redis://***@h");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert_eq!(redact("redis://h:1/0?pass=s3cret"), "redis://h:1/0?***");
        for refused in [
            "redis://h:1?pass=s3cret",
            "redis+unix:///tmp/r.sock?pass=s3cret&x=1",
            "redis+unix:///tmp/r.sock?db=x&pass=s3cret",
            "redis+unix:///tmp/r.sock?db=1&password=s3cret#x",
        ] {
            let e = RemoteUrl::parse(refused).unwrap_err();
            assert!(!e.message().contains("s3cret"), "{}", e.message());
        }
        let url = RemoteUrl::parse("redis+unix:///tmp/r.sock?pass=s3cret").unwrap();
        assert_eq!(url.shown(), "redis+unix:///tmp/r.sock?***");
        let e = RemoteUrl::parse("redis://u:s3cret@h:notaport").unwrap_err();
        assert!(!e.message().contains("s3cret"), "{}", e.message());
        let e = RemoteUrl::parse("redis+cluster://u:s3cret@h:1,,h:2").unwrap_err();
        assert!(!e.message().contains("s3cret"), "{}", e.message());
        let e = RemoteUrl::parse("memcached://u:s3cret@h:1").unwrap_err();
        assert!(e.message().contains("unknown remote URL scheme"));
        assert!(!e.message().contains("s3cret"));
        // Reserved characters left bare in a password make the URL malformed; the
        // message still shows none of it.
        for (refused, secret) in [
            ("redis://u:s3/cret@h:1", "cret"),
            ("redis://:s3?cret@h:1", "cret"),
            ("redis://:s3#cret@h:1/0", "cret"),
            ("rediss+cluster://u:s3/cret@h:1,h:2", "cret"),
            ("REDIS://u:s3/cret@h:x", "cret"),
        ] {
            let e = RemoteUrl::parse(refused).unwrap_err();
            assert!(!e.message().contains(secret), "{}", e.message());
        }
        // A password written without the `@host` after it reads as a port that is not
        // a number: masked, as it showed whole before.
        for (refused, shown) in [
            ("redis://:s3cret", "redis://:***"),
            ("redis://u:s3cret", "redis://u:***"),
            ("redis://u:s3cret/0", "redis://u:***/0"),
            ("rediss://u:s3cret?x=1", "rediss://u:***?***"),
            ("redis+cluster://h:1,u:s3cret", "redis+cluster://h:1,u:***"),
        ] {
            let e = RemoteUrl::parse(refused).unwrap_err();
            assert!(!e.message().contains("s3cret"), "{}", e.message());
            assert!(e.message().contains(shown), "{}", e.message());
        }
        for (refused, shown) in [
            ("redis:s3cret@h", "\"redis:***@h\""),
            ("redis//u:s3cret@h", "\"redis//u:***@h\""),
            ("redis:u:s3cret", "\"redis:***\""),
        ] {
            let e = RemoteUrl::parse(refused).unwrap_err();
            assert!(!e.message().contains("s3cret"), "{}", e.message());
            assert!(e.message().contains(shown), "{}", e.message());
        }
        assert_eq!(redact("redis://[::1]:6379/0"), "redis://[::1]:6379/0");
        assert_eq!(redact("redis://[::1]"), "redis://[::1]");
        assert_eq!(
            redact("redis+cluster://h:1,[::1]:2"),
            "redis+cluster://h:1,[::1]:2"
        );
        // A socket path may hold an '@': it is no user-info.
        let url = RemoteUrl::parse("redis+unix:///run/a@b.sock").unwrap();
        assert_eq!(url.shown(), "redis+unix:///run/a@b.sock");
        // A '?' before the last '@': the password may be in either part.
        assert_eq!(redact("redis://:s3?cret@h:1"), "redis://:***");
        assert_eq!(redact("redis://h:1/0?pass=s3@cret"), "redis://h:***");
        assert_eq!(redact("redis://u:p@h:1/0?pass=s3@cret"), "redis://u:***");
    }

    #[test]
    fn spellings_of_one_server_and_database_are_one_keyspace() {
        let keyspace = |u: &str| RemoteUrl::parse(u).unwrap().keyspace();
        let one = keyspace("redis://127.0.0.1:6379");
        for same in [
            "redis://127.0.0.1",
            "redis://127.0.0.1:6379/",
            "redis://127.0.0.1:6379/0",
            "REDIS://127.0.0.1:6379",
            "redis://user:pass@127.0.0.1:6379",
            "redis://:pass@127.0.0.1:6379/0",
            "redis://localhost:6379",
            "redis://LOCALHOST.:6379",
            "redis://[::1]:6379",
            "rediss://127.0.0.1:6379",
        ] {
            assert_eq!(keyspace(same), one, "{same}");
        }
        for other in [
            "redis://127.0.0.1:6380",
            "redis://127.0.0.1:6379/1",
            "redis://127.0.0.2:6379",
            "redis://example.com:6379",
            "redis+unix:///tmp/r.sock",
            "redis+cluster://127.0.0.1:6379",
        ] {
            assert_ne!(keyspace(other), one, "{other}");
        }
        assert_eq!(
            keyspace("redis+unix:///tmp/r.sock"),
            keyspace("redis+unix:///tmp/r.sock?db=0&pass=x")
        );
        assert_ne!(
            keyspace("redis+unix:///tmp/r.sock"),
            keyspace("redis+unix:///tmp/r.sock?db=1")
        );
        assert_eq!(
            keyspace("redis+cluster://a:1,b:2"),
            keyspace("Redis+Cluster://u:p@B:2,a:1/")
        );
    }

    #[test]
    fn each_form_parses() {
        for ok in [
            "redis://127.0.0.1:6379",
            "redis://h",
            "redis://:pw@h:1/3",
            "rediss://h:6380",
            "redis+unix:///tmp/r.sock",
            "redis+unix:///tmp/r.sock?db=2&pass=pw",
            "redis+cluster://a:1,b:2,c:3",
            "rediss+cluster://u:p@a:1,b:2",
            "REDIS://h:1",
            "Rediss://h",
            "REDIS+UNIX:///tmp/r.sock",
            "Redis+Cluster://a:1,b:2",
        ] {
            RemoteUrl::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "redis",
            "redis://",
            "redis://h:99999",
            "redis://h/x",
            "redis://h /0",
            "redis+cluster://",
            "redis+cluster://a:1,",
            "redis+unix://relative",
            "redis+unix:///tmp/a?b.sock",
            "redis+unix:///tmp/r.sock?db=x",
            "redis+unix:///tmp/r.sock?db=-1",
            "redis+unix:///tmp/r.sock?db=65536",
            "redis+unix:///tmp/r.sock?protocol=resp3",
            "http://h",
        ] {
            assert!(RemoteUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
