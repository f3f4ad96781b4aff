//! A SIP user agent's end of one TLS connection, for the tests at the wire: it trusts a test
//! CA, may present a client certificate (a peer domain's server), and reads whole messages
//! back (framed by Content-Length).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use impp::sip::{SipLimits, SipMessage, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::certs::{Issued, TestCa};

/// A client configuration trusting `ca` and presenting `cert`, if any.
pub fn client_config(ca: &TestCa, cert: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    // ring, as the library itself uses (see src/sip/tls.rs).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match cert {
        None => builder.with_no_client_auth(),
        Some(cert) => {
            let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    })
}

/// One TLS connection to a SIP server at an IP address (its certificate must name it).
pub struct TlsConn {
    pub stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl TlsConn {
    pub fn connect(server: SocketAddr, ca: &TestCa, cert: Option<&Issued>) -> TlsConn {
        let tcp = TcpStream::connect(server).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = ServerName::IpAddress(server.ip().into());
        let conn = rustls::ClientConnection::new(client_config(ca, cert), name).unwrap();
        TlsConn {
            stream: rustls::StreamOwned::new(conn, tcp),
            buf: Vec::new(),
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.stream.sock.local_addr().unwrap()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// The next whole message on the connection.
    pub fn next(&mut self) -> SipMessage {
        loop {
            if let Some(n) = framed_len(&self.buf) {
                let bytes: Vec<u8> = self.buf.drain(..n).collect();
                return SipMessage::parse(&bytes, &SipLimits::DEFAULT, Transport::Stream).unwrap();
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("a message over TLS");
            assert!(n > 0, "the server closed the TLS connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends `request` (with Call-ID `call_id`) and returns its final answer, skipping what
    /// comes before it.
    pub fn transact(&mut self, call_id: &str, request: &[u8]) -> SipMessage {
        self.send(request);
        loop {
            let m = self.next();
            if !m.is_request() && m.call_id().unwrap() == call_id && m.status().unwrap() >= 200 {
                return m;
            }
        }
    }
}

/// The length of the first whole message in `buf` (its header block and the body its
/// Content-Length announces), if it is all there.
pub fn framed_len(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    (buf.len() >= end + 4 + len).then_some(end + 4 + len)
}
