//! Kamailio started by a test: one of the configurations in `deploy/kamailio/`, on a free
//! 127.0.0.1 port (UDP and TCP), with its own runtime directory, PID file, control socket and
//! log in a temporary directory. It is ready once it answers OPTIONS, and it is stopped by PID
//! when dropped.
//!
//! Kamailio comes from the Debian packages `kamailio` and `kamailio-presence-modules` (and
//! `kamailio-tls-modules` for SIP over TLS), which `.ci/run` installs. A test that needs it fails with that hint when it is missing: a skipped
//! interop test would look like a passing one.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The SIP domain every configuration serves unless told otherwise.
pub const DOMAIN: &str = "example.test";

const INSTALL_HINT: &str = "install the Debian packages kamailio, \
     kamailio-presence-modules and, for SIP over TLS, kamailio-tls-modules (.ci/run does)";

/// A port free on 127.0.0.1 for both UDP and TCP (probed, then released).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1");
}

/// A scratch directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "impp-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Kept when asked, to read Kamailio's log and config after a failure.
        if std::env::var_os("IMPP_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The repository's Kamailio configurations.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kamailio")
}

/// A running Kamailio, stopped by PID when dropped.
pub struct Kamailio {
    child: Child,
    port: u16,
    ctl: String,
    dir: TempDir,
}

impl Kamailio {
    /// Starts `deploy/kamailio/<config>` on a free port. `defines` are extra `-A NAME=value`
    /// pre-processor defines (a string value needs its own double quotes); the harness sets
    /// `SIP_IP`, `SIP_PORT`, `SERVER_URI` and `CTL_SOCK` itself, unless `defines` has them.
    pub fn start(config: &str, defines: &[(&str, &str)]) -> Kamailio {
        Kamailio::start_on(config, free_port(), defines)
    }

    pub fn start_on(config: &str, port: u16, defines: &[(&str, &str)]) -> Kamailio {
        let dir = TempDir::new("kamailio");
        // The configuration runs from the temporary directory, so what ran stays next to its
        // log (kept with IMPP_TEST_KEEP=1).
        let source = deploy_dir().join(config);
        let cfg = dir.path().join(config);
        std::fs::copy(&source, &cfg)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
        let ctl = format!("unix:{}", dir.path().join("ctl").display());
        let mut all: Vec<(String, String)> = vec![
            ("SIP_IP".into(), "127.0.0.1".into()),
            ("SIP_PORT".into(), port.to_string()),
            ("SERVER_URI".into(), format!("\"sip:127.0.0.1:{port}\"")),
            ("CTL_SOCK".into(), format!("\"{ctl}\"")),
        ];
        // A define the caller gives replaces the harness's (SERVER_URI over TLS, say).
        all.retain(|(name, _)| !defines.iter().any(|(k, _)| k == name));
        all.extend(defines.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f").arg(&cfg);
        for (name, value) in &all {
            cmd.arg("-A").arg(format!("{name}={value}"));
        }
        // -DD: no fork into the background, so the child is the main process and its PID is
        // the one to stop; -E: log to stderr (the log file); -Y: runtime directory of its own;
        // -m/-M: small memory pools, enough for functional tests.
        cmd.args(["-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => panic!("cannot run kamailio ({e}): {INSTALL_HINT}"),
        };
        let mut k = Kamailio {
            child,
            port,
            ctl,
            dir,
        };
        k.wait_ready();
        k
    }

    /// Polls with OPTIONS until Kamailio answers 200.
    fn wait_ready(&mut self) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let me = sock.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "kamailio exited with {status} before it was ready \
                     (if a module is missing: {INSTALL_HINT}); log:\n{}",
                    self.log()
                );
            }
            n += 1;
            let options = format!(
                "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {me};branch=z9hG4bK-ready-{n};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:probe@127.0.0.1>;tag=ready{n}\r\n\
                 To: <sip:127.0.0.1:{port}>\r\n\
                 Call-ID: ready-{n}@127.0.0.1\r\n\
                 CSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                port = self.port
            );
            let _ = sock.send_to(options.as_bytes(), self.addr());
            let mut buf = [0u8; 4096];
            if let Ok(len) = sock.recv(&mut buf) {
                if buf[..len].starts_with(b"SIP/2.0 200") {
                    return;
                }
            }
        }
        panic!(
            "kamailio did not answer OPTIONS within 20 s; log:\n{}",
            self.log()
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory holding the configuration, log, PID file and control socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What Kamailio has logged so far (lossy: at debug level its tls module dumps raw
    /// records).
    pub fn log(&self) -> String {
        let bytes = std::fs::read(self.dir.path().join("kamailio.log")).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// One RPC through kamcmd (`kamcmd -s <ctl> <args>`); panics when it fails.
    pub fn rpc(&self, args: &[&str]) -> String {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(&self.ctl)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run kamcmd ({e}): {INSTALL_HINT}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && !text.starts_with("error:"),
            "kamcmd {args:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    /// One numeric field of an RPC answer printed as `name: value` lines.
    pub fn rpc_field(&self, args: &[&str], field: &str) -> u64 {
        let text = self.rpc(args);
        text.lines()
            .filter_map(|l| l.trim().split_once(':'))
            .find(|(k, _)| k.trim() == field)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no numeric {field} in kamcmd {args:?}: {text}"))
    }

    /// Stops Kamailio: SIGTERM to the main process (it stops its workers), SIGKILL to whatever
    /// of the process tree is left after 10 s.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let workers = children_of(self.child.id());
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Workers outlive a main process that died without stopping them. They were listed
        // before it went; the name check keeps a PID reused since then safe.
        for pid in workers {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if is_alive(pid) && comm.trim() == "kamailio" {
                signal(pid, "KILL");
            }
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A process that exists and is not a zombie.
fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

/// The PIDs whose parent is `parent` (from /proc).
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let (_, rest) = s.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}
