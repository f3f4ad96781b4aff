//! curl, the HTTP client the XCAP tests use: its own digest authentication (RFC 7616) and
//! TLS, not ours. The final answer of an exchange is read back (with digest, curl's first
//! request is answered `401` and its second is the one).

use std::path::Path;
use std::process::Command;

/// One HTTP exchange as curl reports it: the final answer's status, header block and body.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    pub fn etag(&self) -> String {
        self.header("ETag")
            .unwrap_or_else(|| panic!("no ETag in {}", self.head))
    }
}

/// Runs curl with `args` (plus `--digest -u USER:PW` when `user` is given) and reads the last
/// answer (with digest, curl's first request is answered 401 and the second is the one).
pub fn curl(dir: &Path, user: Option<(&str, &str)>, args: &[&str]) -> Answer {
    let head = dir.join("head");
    let body = dir.join("body");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "10", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body);
    if let Some((name, pw)) = user {
        cmd.args(["--digest", "-u", &format!("{name}:{pw}")]);
    }
    let out = cmd
        .args(args)
        .output()
        .expect("curl runs (Debian package curl)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = std::fs::read_to_string(&head).unwrap();
    let last = all.rfind("HTTP/1.1 ").expect("an HTTP answer");
    let head = all[last..].to_owned();
    let status = head[9..12].parse().unwrap();
    let body = std::fs::read_to_string(&body).unwrap_or_default();
    Answer { status, head, body }
}
