//! A real DNS server for the RFC 3263 tests: Debian's dnsmasq, started by the test on a
//! loopback port of its own with only the records the test gives (no upstream, no
//! /etc/hosts, no config file), answering NXDOMAIN for any other name under `.test`, and
//! stopped by PID when dropped. `sip-dig` (sofia-sip) can be pointed at it through a
//! resolv.conf of its own ([`Dnsmasq::sres_conf`]).

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The dnsmasq executable, or why there is none.
pub fn installed() -> Result<PathBuf, String> {
    find("dnsmasq").ok_or_else(|| {
        "dnsmasq is not installed: apt-get install dnsmasq-base (.ci/run does)".to_string()
    })
}

/// `name` in PATH or the sbin directories (dnsmasq lives in /usr/sbin).
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether the test may go on: the program is there, or the test is skipped with a clear
/// message outside CI. In CI (`CI` set, as .ci/run's callers set it) a missing program
/// fails the test instead: .ci/run installs it.
pub fn present(found: Result<PathBuf, String>) -> Option<PathBuf> {
    match found {
        Ok(p) => Some(p),
        Err(why) if std::env::var_os("CI").is_some() => panic!("{why}"),
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// A running dnsmasq.
pub struct Dnsmasq {
    child: Child,
    binary: PathBuf,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Dnsmasq {
    /// Starts dnsmasq with `records` (its own options: `--naptr-record=...`,
    /// `--srv-host=...`, `--host-record=...`) and `ttl` seconds on every local record.
    pub fn start(binary: PathBuf, records: &[String], ttl: u32) -> Dnsmasq {
        // A port free for UDP now; dnsmasq binds UDP and TCP on it.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let dir = std::env::temp_dir().join(format!("impp-dnsmasq-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = spawn(&binary, addr, records, ttl);
        let d = Dnsmasq {
            child,
            binary,
            addr,
            dir,
        };
        d.wait_listening();
        d
    }

    /// Stops it and starts it again on the same port with other records (a zone changed).
    pub fn restart(&mut self, records: &[String], ttl: u32) {
        self.stop();
        self.child = spawn(&self.binary, self.addr, records, ttl);
        self.wait_listening();
    }

    fn stop(&mut self) {
        // By PID: Child::kill signals exactly the process started here.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until its TCP socket takes connections (it binds UDP first).
    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dnsmasq did not start on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A resolv.conf for sofia-sip's resolver (SRESOLV_CONF): this server, its port (the
    /// `port` directive is sofia's), one-second timeouts.
    pub fn sres_conf(&self) -> PathBuf {
        let path = self.dir.join("sres.conf");
        std::fs::write(
            &path,
            format!(
                "nameserver {}\nport {}\noptions timeout:1 attempts:1\n",
                self.addr.ip(),
                self.addr.port()
            ),
        )
        .unwrap();
        path
    }
}

fn spawn(binary: &PathBuf, addr: SocketAddr, records: &[String], ttl: u32) -> Child {
    Command::new(binary)
        .args([
            "--no-daemon".to_string(),
            format!("--port={}", addr.port()),
            format!("--listen-address={}", addr.ip()),
            "--bind-interfaces".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--conf-file=/dev/null".into(),
            // Authoritative for .test: NXDOMAIN for unknown names rather than REFUSED.
            "--local=/test/".into(),
            format!("--local-ttl={ttl}"),
            "--log-facility=-".into(),
        ])
        .args(records)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq")
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
