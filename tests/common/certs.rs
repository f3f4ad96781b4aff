//! Certificates for the TLS tests, made when the tests run (no key material is committed): a
//! test CA, and certificates it signs for domains, with 127.0.0.1 as an IP subjectAltName
//! too (a phone connecting to an address checks that).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

/// A certificate authority that signs test certificates.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
    /// The CA certificate in PEM (the trust anchor).
    pub pem: String,
}

/// A certificate and its key, in PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            cert,
            key,
        }
    }

    /// Writes the CA certificate to `dir/NAME.crt`; returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A rustls client configuration that trusts this CA alone and presents no certificate:
    /// what a phone checking its server's certificate uses.
    pub fn client_config(&self) -> std::sync::Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        // ring, as the library itself uses (see src/sip/tls.rs).
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        std::sync::Arc::new(config)
    }

    /// A certificate naming `domains` (DNS subjectAltNames) and 127.0.0.1 and ::1.
    pub fn issue(&self, domains: &[&str]) -> Issued {
        self.issue_with(domains, |_| {})
    }

    /// As [`TestCa::issue`], with the parameters changed by `tweak` first (an expired
    /// validity, say).
    pub fn issue_with(
        &self,
        domains: &[&str],
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> Issued {
        let names: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if let Some(first) = domains.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .subject_alt_names
            .push(SanType::IpAddress("::1".parse().unwrap()));
        tweak(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Issued {
    /// Writes `NAME.crt` and `NAME.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    /// A TLS configuration presenting this certificate and trusting `ca`.
    pub fn config(&self, ca: &TestCa) -> impp::sip::tls::TlsConfig {
        impp::sip::tls::TlsConfig::from_pem(
            self.cert_pem.as_bytes(),
            self.key_pem.as_bytes(),
            impp::sip::tls::TrustAnchors::Pem(ca.pem.as_bytes()),
        )
        .unwrap()
    }
}
