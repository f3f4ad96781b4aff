//! Who is at the other end of a TLS connection: the certificate a peer presented and the
//! checks made on it (RFC 5922 §7: a domain is named by a subjectAltName of type DNS).

use std::fmt;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName};

/// The end-entity certificate a TLS peer presented, already verified against the trust
/// anchors during the handshake. Shared by every message of its connection.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerCertificate(Arc<CertificateDer<'static>>);

impl PeerCertificate {
    /// Wraps a verified end-entity certificate.
    #[allow(dead_code)] // made by the TLS connections, which come next
    pub(crate) fn new(der: CertificateDer<'static>) -> PeerCertificate {
        PeerCertificate(Arc::new(der))
    }

    /// Whether the certificate names `domain` (RFC 5922 §7.2: a DNS subjectAltName equal to
    /// it, or a wildcard the usual rules accept; the common name is never used).
    pub fn names_domain(&self, domain: &str) -> bool {
        let Ok(cert) = webpki::EndEntityCert::try_from(&*self.0) else {
            return false;
        };
        let Ok(name) = ServerName::try_from(domain) else {
            return false;
        };
        cert.verify_is_valid_for_subject_name(&name).is_ok()
    }

    /// The certificate in DER.
    pub fn der(&self) -> &[u8] {
        self.0.as_ref()
    }
}

impl fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerCertificate({} bytes)", self.0.len())
    }
}
