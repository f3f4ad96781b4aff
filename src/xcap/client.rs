//! An XCAP client (RFC 4825) for one thing: a device reading its own `pres-rules` document
//! (RFC 5025) at its server, so that it can authorize its watchers by the rules the server
//! keeps (issue 19, presence at the edge; see [`crate::engine::served`]).
//!
//! One blocking HTTP/1.1 `GET` per fetch, over a new connection (`Connection: close`): a
//! device fetches once per registration refresh, so nothing is gained by keeping
//! connections. `http://` and `https://` roots (rustls, with the trust anchors of the SIP
//! server's TLS configuration). Digest authentication answers a `401` once, with the SIP
//! client's own code ([`DigestClient`]: the same credentials, the same RFC 7616 rules).
//! `If-None-Match` carries the entity tag of the document fetched last, so an unchanged
//! document costs a `304`. The response is read with `httparse`, bounded by
//! [`super::MAX_BODY`] and a timeout per read.
//!
//! Blocking: call it from a thread of its own, never from the SIP transport's I/O thread or
//! the node's timer thread (the accounts role runs each fetch on a short-lived thread).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::sip::digest_client::{DigestClient, Retry};
use crate::uri::Uri;

/// How long a connect, a read or a write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest response header section read.
const MAX_HEAD: usize = 16 * 1024;

/// An XCAP root: `http://host[:port][/path]` or `https://...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XcapRoot {
    /// Whether it is `https`.
    pub secure: bool,
    /// The host (a name or an address; an IPv6 address without brackets).
    pub host: String,
    /// The port (80 or 443 unless given).
    pub port: u16,
    /// The path of the root, without a trailing `/` (empty for the server's root).
    pub path: String,
}

impl XcapRoot {
    /// Reads an XCAP root URL. Errors: [`Error::InvalidArgument`] naming what is wrong.
    pub fn parse(url: &str) -> Result<XcapRoot> {
        let bad = |why: &str| Error::InvalidArgument(format!("XCAP root '{url}': {why}"));
        let (secure, rest) = if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else {
            return Err(bad("not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#', ' ']) {
            return Err(bad("a query, fragment or space in the path"));
        }
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("a bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("junk after the address")),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad("a bad port"))?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() || host.contains('@') {
            return Err(bad("no host (or user information, which is not taken)"));
        }
        Ok(XcapRoot {
            secure,
            host,
            port,
            path: path.trim_end_matches('/').to_owned(),
        })
    }

    /// The request target of `aor`'s pres-rules document below this root.
    pub fn pres_rules_target(&self, aor: &Uri) -> String {
        let mut target = self.path.clone();
        target.push_str("/pres-rules/users/");
        // The XUI is the user's URI, its reserved characters percent-encoded (RFC 4825 §6.3).
        for b in aor.to_string().bytes() {
            match b {
                b'A'..=b'Z'
                | b'a'..=b'z'
                | b'0'..=b'9'
                | b'-'
                | b'.'
                | b'_'
                | b'~'
                | b':'
                | b'@'
                | b'+'
                | b'='
                | b';' => target.push(b as char),
                other => target.push_str(&format!("%{other:02X}")),
            }
        }
        target.push_str("/index");
        target
    }
}

/// What a fetch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The document, with its entity tag.
    Document { body: Vec<u8>, etag: Option<String> },
    /// `304`: the document is still the one of the entity tag given.
    NotModified,
    /// `404`: the user has no document (no rules at the server).
    Missing,
}

/// Fetches documents of one user at one XCAP root.
pub struct XcapClient {
    root: XcapRoot,
    digest: DigestClient,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for XcapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XcapClient")
            .field("root", &self.root)
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// One HTTP response, as read.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl XcapClient {
    /// A client of `root` with `digest`'s credentials; `tls` is needed for an `https` root
    /// (the trust anchors the server's certificate is checked against).
    pub fn new(
        root: XcapRoot,
        digest: DigestClient,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> XcapClient {
        XcapClient { root, digest, tls }
    }

    /// GETs `aor`'s pres-rules document, with `If-None-Match: etag` when given. A `401` is
    /// answered once with the credentials. Errors: [`Error::Network`] (no connection, a
    /// timeout, a malformed or oversized answer, TLS failures), [`Error::Forbidden`] (the
    /// credentials refused, `403`), [`Error::Internal`] for any other status.
    pub fn fetch_pres_rules(&mut self, aor: &Uri, etag: Option<&str>) -> Result<Fetched> {
        let target = self.root.pres_rules_target(aor);
        let mut answered = false;
        loop {
            let authorization = self.digest.authorize("GET", &target);
            let sent_credentials = authorization.is_some();
            let response = self.get(&target, etag, authorization)?;
            match response.status {
                200 => {
                    return Ok(Fetched::Document {
                        etag: response.header("ETag").map(str::to_owned),
                        body: response.body,
                    })
                }
                304 => return Ok(Fetched::NotModified),
                404 => return Ok(Fetched::Missing),
                401 if !answered => {
                    answered = true;
                    let challenges = response
                        .headers
                        .iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case("WWW-Authenticate"))
                        .map(|(_, v)| v.as_str());
                    if let Retry::GiveUp(why) =
                        self.digest.on_challenge(401, challenges, sent_credentials)
                    {
                        return Err(Error::Forbidden(format!("XCAP {target}: {why}")));
                    }
                }
                401 | 403 => {
                    // A nonce the server forgot is retried once more from scratch next time.
                    self.digest.reset();
                    return Err(Error::Forbidden(format!(
                        "XCAP {target}: answered {} (credentials refused)",
                        response.status
                    )));
                }
                other => {
                    return Err(Error::Internal(format!("XCAP {target}: answered {other}")));
                }
            }
        }
    }

    /// One GET over a new connection.
    fn get(
        &self,
        target: &str,
        etag: Option<&str>,
        authorization: Option<(&'static str, String)>,
    ) -> Result<Response> {
        let net = |what: &str, e: &dyn std::fmt::Display| {
            Error::Network(format!(
                "XCAP {}:{}: {what}: {e}",
                self.root.host, self.root.port
            ))
        };
        let addr = (self.root.host.as_str(), self.root.port)
            .to_socket_addrs()
            .map_err(|e| net("cannot resolve", &e))?
            .next()
            .ok_or_else(|| net("cannot resolve", &"no address"))?;
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| net("connect", &e))?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| net("socket", &e))?;
        let host_header = if self.root.host.contains(':') {
            format!("[{}]:{}", self.root.host, self.root.port)
        } else {
            format!("{}:{}", self.root.host, self.root.port)
        };
        let mut request = format!(
            "GET {target} HTTP/1.1\r\nHost: {host_header}\r\nAccept: {}\r\nConnection: close\r\nUser-Agent: libimpp/{}\r\n",
            crate::doc::pres_rules::PresRules::CONTENT_TYPE,
            env!("CARGO_PKG_VERSION"),
        );
        if let Some(etag) = etag {
            request.push_str(&format!("If-None-Match: {etag}\r\n"));
        }
        if let Some((name, value)) = authorization {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        if self.root.secure {
            let config = self.tls.clone().ok_or_else(|| {
                Error::InvalidArgument(
                    "an https:// XCAP root needs a TLS configuration (trust anchors)".into(),
                )
            })?;
            let name = rustls_pki_types::ServerName::try_from(self.root.host.clone())
                .map_err(|e| net("TLS server name", &e))?;
            let conn = rustls::ClientConnection::new(config, name).map_err(|e| net("TLS", &e))?;
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            stream
                .write_all(request.as_bytes())
                .map_err(|e| net("write", &e))?;
            read_response(&mut stream).map_err(|e| net("read", &e))
        } else {
            let mut stream = tcp;
            stream
                .write_all(request.as_bytes())
                .map_err(|e| net("write", &e))?;
            read_response(&mut stream).map_err(|e| net("read", &e))
        }
    }
}

/// Reads one response: its head with `httparse`, then `Content-Length` bytes (or up to the
/// close, for an answer without one), at most [`super::MAX_BODY`].
fn read_response(stream: &mut impl Read) -> std::result::Result<Response, String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let (status, headers, head_len) = loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            // A TLS peer that closes without close_notify: what came is what there is.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e.to_string()),
        };
        if n == 0 {
            return Err("the connection closed before a complete answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut fields);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = parsed.code.ok_or("no status code")?;
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).trim().to_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (status, headers, len);
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err("the answer's head is too large".into())
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("not an HTTP answer: {e}")),
        }
    };
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .map(|(_, v)| v.parse::<usize>().map_err(|_| "a bad Content-Length"))
        .transpose()?;
    if headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("Transfer-Encoding"))
    {
        return Err("chunked answers are not read (the XCAP server sends Content-Length)".into());
    }
    let mut body = buf.split_off(head_len);
    let wanted = match (status, length) {
        (304 | 204, _) => 0,
        (_, Some(n)) => n,
        (_, None) => usize::MAX,
    };
    if wanted != usize::MAX && wanted > super::MAX_BODY {
        return Err(format!("a body of {wanted} bytes is too large"));
    }
    while body.len() < wanted {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e.to_string()),
        };
        if n == 0 {
            if wanted == usize::MAX {
                break;
            }
            return Err("the connection closed inside the body".into());
        }
        body.extend_from_slice(&chunk[..n]);
        if body.len() > super::MAX_BODY {
            return Err("the body is too large".into());
        }
    }
    body.truncate(wanted.min(body.len()));
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_read_and_documents_named() {
        let root = XcapRoot::parse("http://127.0.0.1:8080/xcap-root/").unwrap();
        assert_eq!(
            root,
            XcapRoot {
                secure: false,
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/xcap-root".into()
            }
        );
        let aor: Uri = "sip:alice@b.test".parse().unwrap();
        assert_eq!(
            root.pres_rules_target(&aor),
            "/xcap-root/pres-rules/users/sip:alice@b.test/index"
        );
        let secure = XcapRoot::parse("https://[::1]/").unwrap();
        assert!(secure.secure);
        assert_eq!((secure.host.as_str(), secure.port), ("::1", 443));
        assert_eq!(secure.path, "");
        for bad in [
            "ftp://x",
            "http://",
            "http://h:port/",
            "http://u@h/",
            "http://h/x?y",
        ] {
            assert!(XcapRoot::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_are_read_by_length_and_bounded() {
        let text = b"HTTP/1.1 200 OK\r\nETag: \"a\"\r\nContent-Length: 3\r\n\r\nabcdef";
        let r = read_response(&mut &text[..]).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        assert_eq!(r.header("etag"), Some("\"a\""));
        let r = read_response(&mut &b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"[..]).unwrap();
        assert_eq!(r.status, 304);
        assert!(
            read_response(&mut &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab"[..]).is_err()
        );
        assert!(read_response(&mut &b"garbage\r\n\r\n"[..]).is_err());
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            super::super::MAX_BODY + 1
        );
        assert!(read_response(&mut huge.as_bytes()).is_err());
    }
}
