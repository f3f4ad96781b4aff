//! Static files on a WebSocket listener (`--web-root DIR`): an HTTP request on a `ws` or
//! `wss` listener that does not ask for a WebSocket gets a file of one directory, so a web
//! page and the SIP WebSocket it opens share one origin (no `--ws-origin` needed) and one
//! port.
//!
//! Deliberately small: `GET` and `HEAD` only, one answer per connection (`Connection:
//! close`), no ranges, no directory listings, no caching headers beyond `no-cache`. Paths
//! are decoded, then every segment must be a plain name (no `..`, `.`, hidden names,
//! backslashes or NULs) and the resolved file must lie inside the root (a symbolic link out
//! of it is refused). Files are read on the I/O thread, which is why they are bounded
//! ([`MAX_FILE`]): a page and its scripts, not downloads.
#![forbid(unsafe_code)]

use std::io;
use std::path::{Path, PathBuf};

/// The largest file served; a larger one is answered `404` (and logged).
pub const MAX_FILE: u64 = 1 << 20;

/// A directory whose files are served.
#[derive(Debug, Clone)]
pub struct WebRoot {
    /// Canonical (symbolic links resolved), so containment is a prefix test.
    dir: PathBuf,
}

impl WebRoot {
    /// Serves the files of `dir`, which must be a directory.
    pub fn new(dir: &Path) -> io::Result<WebRoot> {
        let canonical = dir
            .canonicalize()
            .map_err(|e| io::Error::new(e.kind(), format!("web root {}: {e}", dir.display())))?;
        if !canonical.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("web root {} is not a directory", dir.display()),
            ));
        }
        Ok(WebRoot { dir: canonical })
    }

    /// The answer to the plain HTTP request at the start of `buf`, if it is one: `None`
    /// while the request is incomplete, when it is not HTTP, or when it asks for a
    /// WebSocket (those are the handshake's to answer or refuse).
    pub fn answer(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return None,
        }
        let upgrade = request
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("Upgrade"));
        if upgrade {
            return None;
        }
        let method = request.method?;
        let head = match method {
            "GET" => false,
            "HEAD" => true,
            _ => return Some(response(405, "Method Not Allowed", None, b"", false)),
        };
        let Some(file) = request.path.and_then(|p| self.resolve(p)) else {
            return Some(response(404, "Not Found", None, b"not found\n", head));
        };
        match read_bounded(&file) {
            Ok(body) => Some(response(200, "OK", Some(content_type(&file)), &body, head)),
            Err(e) => {
                crate::log::info!("web root: {}: {e}", file.display());
                Some(response(404, "Not Found", None, b"not found\n", head))
            }
        }
    }

    /// The file a request target names, if it is a plain path inside the root: `/` and
    /// paths ending in `/` name that directory's `index.html`.
    fn resolve(&self, target: &str) -> Option<PathBuf> {
        let path = target.split(['?', '#']).next()?;
        let path = crate::uri::percent_decode(path.strip_prefix('/')?)?;
        let mut file = self.dir.clone();
        for segment in path.split('/') {
            if segment.is_empty() {
                continue;
            }
            if segment.starts_with('.') || segment.contains(['\\', '\0']) {
                return None;
            }
            file.push(segment);
        }
        if path.is_empty() || path.ends_with('/') {
            file.push("index.html");
        }
        // Symbolic links are followed only within the root.
        let file = file.canonicalize().ok()?;
        (file.starts_with(&self.dir) && file.is_file()).then_some(file)
    }
}

/// The file's bytes, if it is at most [`MAX_FILE`] long.
fn read_bounded(file: &Path) -> io::Result<Vec<u8>> {
    let size = std::fs::metadata(file)?.len();
    if size > MAX_FILE {
        return Err(io::Error::other(format!(
            "{size} bytes, more than the {MAX_FILE} served"
        )));
    }
    std::fs::read(file)
}

/// The `Content-Type` of a file by its extension.
fn content_type(file: &Path) -> &'static str {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// An HTTP/1.1 response that closes the connection; `head`: without the body.
fn response(
    status: u16,
    reason: &str,
    content_type: Option<&str>,
    body: &[u8],
    head: bool,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    out.push_str(&format!(
        "Content-Type: {}\r\n",
        content_type.unwrap_or("text/plain; charset=utf-8")
    ));
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n\
         Connection: close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    if !head {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A web root with an index, a script, a hidden file, a too-large file and a link out;
    /// and a file beside it that must never be served.
    fn root() -> (PathBuf, WebRoot) {
        let base = std::env::temp_dir().join(format!(
            "impp-web-root-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("www");
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(dir.join("lib/app.js"), "export {};").unwrap();
        std::fs::write(dir.join("lib/a b.css"), "p{}").unwrap();
        std::fs::write(dir.join(".secret"), "no").unwrap();
        std::fs::write(dir.join("big.png"), vec![0u8; MAX_FILE as usize + 1]).unwrap();
        std::fs::write(base.join("outside.txt"), "no").unwrap();
        std::os::unix::fs::symlink(base.join("outside.txt"), dir.join("link.txt")).unwrap();
        let web = WebRoot::new(&dir).unwrap();
        (base, web)
    }

    fn get(web: &WebRoot, method: &str, target: &str) -> String {
        let request = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
        String::from_utf8_lossy(&web.answer(request.as_bytes()).expect("answered")).into_owned()
    }

    fn status(answer: &str) -> &str {
        &answer[9..12]
    }

    #[test]
    fn serves_files_with_their_content_type() {
        let (base, web) = root();
        let page = get(&web, "GET", "/");
        assert_eq!(status(&page), "200", "{page}");
        assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(page.contains("Content-Length: 9\r\n"));
        assert!(page.contains("Connection: close\r\n"));
        assert!(page.ends_with("\r\n\r\n<p>hi</p>"));
        let script = get(&web, "GET", "/lib/app.js?v=1");
        assert!(script.contains("Content-Type: text/javascript"), "{script}");
        let css = get(&web, "GET", "/lib/a%20b.css");
        assert!(css.contains("Content-Type: text/css"), "{css}");
        let head = get(&web, "HEAD", "/index.html");
        assert_eq!(status(&head), "200");
        assert!(head.contains("Content-Length: 9\r\n"));
        assert!(head.ends_with("\r\n\r\n"), "no body: {head}");
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn refuses_paths_out_of_the_root_hidden_and_large_files() {
        let (base, web) = root();
        for target in [
            "/../outside.txt",
            "/lib/../../outside.txt",
            "/%2e%2e/outside.txt",
            "/lib/%2E%2E%2F..%2Foutside.txt",
            "/..%5coutside.txt",
            "/link.txt",
            "/.secret",
            "/big.png",
            "/missing.html",
            "/lib",
            "/lib/",
            "/%zz",
            "/%00",
            "/%ff",
            "*",
            "http://evil.test/",
        ] {
            let answer = get(&web, "GET", target);
            assert_eq!(status(&answer), "404", "{target}: {answer}");
            assert!(
                !answer.contains("no\n") && !answer.ends_with("no"),
                "{target}"
            );
        }
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn other_methods_are_refused_and_websocket_requests_left_alone() {
        let (base, web) = root();
        let post = get(&web, "POST", "/index.html");
        assert_eq!(status(&post), "405");
        assert!(post.contains("Allow: GET, HEAD\r\n"));
        let upgrade =
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert!(web.answer(upgrade.as_bytes()).is_none(), "the handshake's");
        assert!(
            web.answer(b"GET / HTTP/1.1\r\nHost: x\r\n").is_none(),
            "incomplete"
        );
        assert!(
            web.answer(b"REGISTER sip:x SIP/2.0\r\n\r\n").is_none(),
            "not HTTP"
        );
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn the_root_must_be_a_directory() {
        let (base, _) = root();
        assert!(WebRoot::new(&base.join("www/index.html")).is_err());
        assert!(WebRoot::new(&base.join("nowhere")).is_err());
        std::fs::remove_dir_all(base).unwrap();
    }
}
