//! TLS settings for SIP (RFC 3261 §26, RFC 5922): one certificate and key that the server
//! presents to whoever connects and, as a client certificate, to the peers it connects to
//! (mutual TLS between domains); the trust anchors that peers' certificates must chain to.
//!
//! * **Incoming:** the certificate is presented; peers are asked for a certificate but need
//!   not give one (phones have none). A certificate they do give must chain to the trust
//!   anchors, or the handshake fails; a verified one travels with every message of the
//!   connection ([`super::transport::PeerCertificate`]) for the trust checks between domains.
//! * **Outgoing:** the peer's certificate must chain to the trust anchors and name the domain
//!   the request is for (RFC 5922 §7.2: a DNS subjectAltName; see
//!   [`super::transport::Outbound::server_name`]).
//!
//! TLS 1.2 and 1.3 with rustls's default cipher suites (ring). The trust anchors are the
//! system's (`/etc/ssl/certs` and friends, through rustls-native-certs) unless a CA file is
//! given.
#![forbid(unsafe_code)]

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};
use crate::log;
use crate::sip::live::Live;

/// A server's TLS identity and trust anchors, ready for the transport. Cheap to clone;
/// clones share one identity, which [`TlsConfig::renew_identity`] replaces for all of them.
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) client: Arc<ClientConfig>,
    identity: Arc<Identity>,
}

/// The certificate chain and key presented, as server and as client: one cell both rustls
/// configurations ask at each handshake, so a renewed certificate is shown from the next
/// handshake on while connections already open keep theirs.
#[derive(Debug)]
struct Identity(Live<Arc<CertifiedKey>>);

impl ResolvesServerCert for Identity {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some((*self.0.get()).clone())
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some((*self.0.get()).clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

/// Where the trust anchors come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustAnchors<'a> {
    /// The system's certificate store.
    System,
    /// These PEM certificates (one or more `CERTIFICATE` blocks).
    Pem(&'a [u8]),
}

impl TlsConfig {
    /// From PEM files: the certificate chain (the server's certificate first), its private
    /// key (PKCS#8, PKCS#1 or SEC1), and the trust anchors (`None`: the system's).
    pub fn from_pem_files(
        certificate_chain: &Path,
        private_key: &Path,
        trust_anchors: Option<&Path>,
    ) -> Result<TlsConfig> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| Error::InvalidArgument(format!("TLS {what} {}: {e}", path.display())))
        };
        let chain = read("certificate", certificate_chain)?;
        let key = read("key", private_key)?;
        let ca = trust_anchors.map(|p| read("CA file", p)).transpose()?;
        TlsConfig::from_pem(
            &chain,
            &key,
            match &ca {
                Some(ca) => TrustAnchors::Pem(ca),
                None => TrustAnchors::System,
            },
        )
    }

    /// From PEM text in memory (see [`TlsConfig::from_pem_files`]).
    pub fn from_pem(
        certificate_chain: &[u8],
        private_key: &[u8],
        trust_anchors: TrustAnchors<'_>,
    ) -> Result<TlsConfig> {
        let bad = |why: String| Error::InvalidArgument(format!("TLS: {why}"));
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(certificate_chain)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(format!("the certificate file is not PEM: {e:?}")))?;
        if chain.is_empty() {
            return Err(bad("the certificate file holds no CERTIFICATE".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(private_key)
            .map_err(|e| bad(format!("the key file holds no private key: {e:?}")))?;
        let roots = Arc::new(load_roots(trust_anchors)?);
        // ring: builds with a C compiler alone (see Cargo.toml); its lack of post-quantum key
        // exchange is what the deprecation note is about.
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        // X25519 first: ring's default order offers P-384 first, and a rustls server follows
        // the client's order, so every connection imppd opens to a peer would pay a P-384
        // exchange (about five times the CPU on both sides; benches/network).
        {
            use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
            provider.kx_groups = vec![X25519, SECP256R1, SECP384R1];
        }
        let provider = Arc::new(provider);

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| bad(format!("cannot verify peers with these trust anchors: {e}")))?;
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| bad(format!("the key does not fit the certificate: {e}")))?;
        let identity = Arc::new(Identity(Live::new(Arc::new(certified))));
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(identity.clone());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(identity.clone());
        Ok(TlsConfig {
            server: Arc::new(server),
            client: Arc::new(client),
            identity,
        })
    }

    /// The server side (this certificate presented; a client certificate asked for, not
    /// required), for the process's other TLS listeners (imppd's HTTPS).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// Presents `renewed`'s certificate chain and key from the next handshake on, in every
    /// clone of this configuration (a running server's too): a certificate renewed without a
    /// restart. Connections already open keep the certificate they were made with; the trust
    /// anchors stay this configuration's.
    pub fn renew_identity(&self, renewed: &TlsConfig) {
        self.identity.0.set((*renewed.identity.0.get()).clone());
    }

    /// The SHA-256 fingerprint of the certificate presented now (its DER form), in hex.
    pub fn certificate_sha256(&self) -> String {
        let cert = self.identity.0.get();
        use sha2::Digest as _;
        sha2::Sha256::digest(cert.cert[0].as_ref())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn load_roots(anchors: TrustAnchors<'_>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match anchors {
        TrustAnchors::Pem(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    Error::InvalidArgument(format!("TLS: the CA file is not PEM: {e:?}"))
                })?;
                roots.add(cert).map_err(|e| {
                    Error::InvalidArgument(format!("TLS: a CA certificate is unusable: {e}"))
                })?;
            }
            if roots.is_empty() {
                return Err(Error::InvalidArgument(
                    "TLS: the CA file holds no CERTIFICATE".into(),
                ));
            }
        }
        TrustAnchors::System => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                log::warn!("TLS: reading the system's trust anchors: {e}");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            log::info!("TLS: {added} trust anchors from the system ({ignored} unusable)");
            if roots.is_empty() {
                return Err(Error::InvalidArgument(
                    "TLS: the system has no trust anchors; give a CA file".into(),
                ));
            }
        }
    }
    Ok(roots)
}
