//! TLS 1.3 for the bulk transport, with the peers' libp2p identities.
//!
//! Each side presents the self-signed certificate libp2p's TLS spec defines
//! (`libp2p_tls::certificate`): its key signs the TLS handshake, and an
//! extension signed by the libp2p identity key binds it to the peer id. The
//! verifiers here accept exactly one such certificate, check both
//! signatures through `libp2p_tls::certificate::parse`, and on the client
//! side refuse any peer id but the one dialed. Unlike libp2p's own TLS
//! configuration, the cipher order is Cairn's: AES-GCM first where the CPU
//! has AES instructions (several times faster than ChaCha20 there),
//! ChaCha20-Poly1305 first where it has not.

use std::sync::Arc;

use libp2p::identity::Keypair;
use libp2p::PeerId;
use libp2p_tls::certificate;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::ring::cipher_suite::{
    TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    ServerConfig, SignatureScheme,
};

/// ALPN name of the bulk protocol; the frames are `/cairn/shards/1`'s.
pub const ALPN: &[u8] = b"cairn-bulk/1";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make the TLS certificate: {0}")]
    Certificate(String),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The peer presented a valid libp2p certificate of another peer.
#[derive(Debug, thiserror::Error)]
#[error("the peer is {got}, not the expected {expected}")]
struct WrongPeer {
    expected: PeerId,
    got: PeerId,
}

/// A node's or client's TLS identity: its libp2p certificate and key.
pub struct TlsIdentity {
    /// The certificate with its signing key. Built directly: rustls's
    /// `with_single_cert` parses the certificate with webpki, which refuses
    /// libp2p's critical extension.
    key: Arc<SingleCertAndKey>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A certificate for `keypair` (a fresh TLS key, signed by the identity).
    pub fn new(keypair: &Keypair) -> Result<Self, TlsError> {
        let (cert, key) =
            certificate::generate(keypair).map_err(|e| TlsError::Certificate(e.to_string()))?;
        let provider = Arc::new(provider());
        let signing = provider.key_provider.load_private_key(key)?;
        Ok(Self {
            key: Arc::new(SingleCertAndKey::from(CertifiedKey::new(
                vec![cert],
                signing,
            ))),
            provider,
        })
    }

    /// A client configuration that accepts only `expected` as the server.
    pub fn client_config(&self, expected: PeerId) -> Result<Arc<ClientConfig>, TlsError> {
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Libp2pVerifier {
                expected: Some(expected),
                provider: self.provider.clone(),
            }))
            .with_client_cert_resolver(self.key.clone());
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Arc::new(config))
    }

    /// A server configuration that requires a libp2p certificate of every
    /// client (any peer id: the node serves anyone, and learns who).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(Libp2pVerifier {
                expected: None,
                provider: self.provider.clone(),
            }))
            .with_cert_resolver(self.key.clone());
        config.alpn_protocols = vec![ALPN.to_vec()];
        // Both ends are Cairn's: the server's order (the CPU's best) wins.
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }
}

/// The peer id of a verified connection's other end.
pub fn peer_of(certs: Option<&[CertificateDer<'_>]>) -> Option<PeerId> {
    let cert = certs?.first()?;
    certificate::parse(cert).ok().map(|c| c.peer_id())
}

/// True where the CPU has AES and carry-less multiply instructions, so
/// AES-GCM runs in hardware.
fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// ring's provider with TLS 1.3 suites only, fastest first on this CPU.
fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = if aes_in_hardware() {
        vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ]
    } else {
        vec![
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
        ]
    };
    provider
}

/// The suite a connection agreed on, for logs and tests.
pub fn suite_name(suite: Option<rustls::SupportedCipherSuite>) -> String {
    suite.map_or_else(|| "none".into(), |s| format!("{:?}", s.suite()))
}

/// Verifies libp2p certificates: exactly one, self-signed, with a valid
/// libp2p extension; on the client side, of the expected peer.
#[derive(Debug)]
struct Libp2pVerifier {
    expected: Option<PeerId>,
    provider: Arc<CryptoProvider>,
}

impl Libp2pVerifier {
    /// The certificate's peer id, if it is a valid libp2p certificate alone.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<PeerId, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General(
                "a libp2p peer presents exactly one certificate".into(),
            ));
        }
        let cert = certificate::parse(end_entity)
            .map_err(|e| rustls::Error::InvalidCertificate(other(e)))?;
        let got = cert.peer_id();
        match self.expected {
            Some(expected) if expected != got => {
                Err(rustls::Error::InvalidCertificate(other(WrongPeer {
                    expected,
                    got,
                })))
            }
            _ => Ok(got),
        }
    }

    fn verify13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let cert =
            certificate::parse(cert).map_err(|e| rustls::Error::InvalidCertificate(other(e)))?;
        cert.verify_signature(dss.scheme, message, dss.signature())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))?;
        Ok(HandshakeSignatureValid::assertion())
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Both ends offer TLS 1.3 only, so a TLS 1.2 signature is never checked.
fn tls12_refused() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered)
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> CertificateError {
    CertificateError::Other(OtherError(Arc::new(e)))
}

impl ServerCertVerifier for Libp2pVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for Libp2pVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}
