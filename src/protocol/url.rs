//! Meteor's URL rules for a raw WebSocket DDP endpoint.

use std::fmt;

/// Why a URL cannot name a DDP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    pub url: String,
    pub reason: &'static str,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid DDP URL \"{}\": {}", self.url, self.reason)
    }
}

impl std::error::Error for UrlError {}

/// Turns what a user gives into the WebSocket URL to open, as Meteor does:
/// `http` → `ws`, `https` → `wss`, a bare host gets `ws://`, and
/// `/websocket` is appended to the path unless the path already ends with it.
/// The query string is kept.
///
/// ```
/// use ddp_live::websocket_url;
/// assert_eq!(websocket_url("https://chat.example.com").unwrap(), "wss://chat.example.com/websocket");
/// assert_eq!(websocket_url("localhost:3000/app/").unwrap(), "ws://localhost:3000/app/websocket");
/// assert_eq!(websocket_url("ws://h/websocket").unwrap(), "ws://h/websocket");
/// assert!(websocket_url("ftp://h").is_err());
/// ```
pub fn websocket_url(input: &str) -> Result<String, UrlError> {
    let err = |reason| UrlError { url: input.to_owned(), reason };
    let url = input.trim();
    if url.is_empty() {
        return Err(err("the URL is empty"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("the URL contains white space or control characters"));
    }
    // A byte search: a `str` pattern would bring core's two-way searcher
    // (1.5 KB of wasm) for this one use.
    let (scheme, rest) = match url.as_bytes().windows(3).position(|w| w == b"://") {
        Some(i) => {
            let scheme = url[..i].to_ascii_lowercase();
            let mapped = match scheme.as_str() {
                "http" | "ws" => "ws",
                "https" | "wss" => "wss",
                _ => return Err(err("the scheme must be http, https, ws or wss")),
            };
            (mapped, &url[i + 3..])
        }
        None => ("ws", url),
    };
    if rest.contains('#') {
        return Err(err("a WebSocket URL cannot have a fragment"));
    }
    let (authority, path_and_query) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    validate_authority(authority).map_err(err)?;
    let (path, query) = match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    };
    let path = if path.trim_end_matches('/').ends_with("/websocket") {
        path.to_owned()
    } else {
        format!("{}/websocket", path.trim_end_matches('/'))
    };
    Ok(format!("{scheme}://{authority}{path}{query}"))
}

fn validate_authority(authority: &str) -> Result<(), &'static str> {
    let host_port = match authority.rfind('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    if host_port.is_empty() {
        return Err("the URL has no host");
    }
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed [ in an IPv6 host")?;
        let host = &rest[..end];
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err("invalid IPv6 host");
        }
        let after = &rest[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err("junk after an IPv6 host"),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host");
    }
    if !host_port.starts_with('[') && !host.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '%' | '~')) {
        return Err("the host contains characters a host name cannot have");
    }
    if let Some(p) = port {
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) && !p.starts_with('+') => {}
            _ => return Err("the port must be a number from 1 to 65535"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meteor_rules() {
        let ok = [
            ("http://h", "ws://h/websocket"),
            ("https://h", "wss://h/websocket"),
            ("HTTPS://h:8443/", "wss://h:8443/websocket"),
            ("h", "ws://h/websocket"),
            ("127.0.0.1:3000", "ws://127.0.0.1:3000/websocket"),
            ("ws://h/app", "ws://h/app/websocket"),
            ("ws://h/app/websocket", "ws://h/app/websocket"),
            ("wss://h/websocket/", "wss://h/websocket/"),
            ("http://h/p?token=a", "ws://h/p/websocket?token=a"),
            ("http://h?x=1", "ws://h/websocket?x=1"),
            ("ws://[::1]:3000", "ws://[::1]:3000/websocket"),
            ("ws://user:pw@h", "ws://user:pw@h/websocket"),
        ];
        for (input, want) in ok {
            assert_eq!(websocket_url(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn bad_urls_are_typed_errors() {
        for bad in [
            "",
            "   ",
            "ftp://h",
            "ws://",
            "ws://:80",
            "ws://h:0",
            "ws://h:99999",
            "ws://h:x",
            "ws://h h",
            "ws://h#frag",
            "ws://[::1",
            "ws://a<b",
            "javascript:alert(1)",
        ] {
            let e = websocket_url(bad).expect_err(bad);
            assert_eq!(e.url, bad);
        }
    }
}
