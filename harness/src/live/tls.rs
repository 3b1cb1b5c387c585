//! The TLS client configuration: which authorities are trusted, which protocols are
//! offered, and what a handshake failure means.
//!
//! Trust starts from the Mozilla roots (`webpki-roots`, so a gateway with a public
//! certificate such as ACM's or Let's Encrypt's is verified on any machine) plus the
//! certificates of `--cacert` (a self-signed `ecommerce-tls-cert`, or `c4mesh up`'s).
//! `--insecure` accepts any certificate but still speaks TLS properly. ALPN offers h2
//! and http/1.1, or one of them when the protocol is fixed.

use super::{ErrorKind, Protocol, Settings};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::sync::Arc;

/// A client configuration for `settings`.
pub fn client_config(settings: &Settings) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let mut config = if settings.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(file) = &settings.cacert {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
                .map_err(|e| format!("--cacert {}: {e}", file.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--cacert {}: {e}", file.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "--cacert {}: no certificate in the file",
                    file.display()
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("--cacert {}: {e}", file.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = match settings.protocol {
        Protocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Protocol::Http1 => vec![b"http/1.1".to_vec()],
        Protocol::Http2 => vec![b"h2".to_vec()],
    };
    Ok(Arc::new(config))
}

/// The server name TLS sends and verifies.
pub fn server_name(name: &str) -> Result<ServerName<'static>, ErrorKind> {
    ServerName::try_from(name.to_owned()).map_err(|_| ErrorKind::BadRequest)
}

/// What a failed handshake means, from the error rustls gave.
pub fn classify(error: &std::io::Error) -> ErrorKind {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match error.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                ErrorKind::TlsHandshake
            }
            std::io::ErrorKind::TimedOut => ErrorKind::ConnectTimeout,
            _ => ErrorKind::TlsHandshake,
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        | rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
            ErrorKind::TlsUnknownCa
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => ErrorKind::TlsNameMismatch,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => ErrorKind::TlsExpired,
        rustls::Error::InvalidCertificate(_) => ErrorKind::TlsBadCertificate,
        _ => ErrorKind::TlsHandshake,
    }
}

/// `--insecure`: every certificate is accepted; signatures are still checked, so the
/// session is TLS as usual, only unauthenticated.
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_follows_the_protocol_and_a_bad_cacert_is_named() {
        let mut settings = Settings::default();
        let config = client_config(&settings).expect("config");
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        settings.protocol = Protocol::Http1;
        assert_eq!(
            client_config(&settings).expect("config").alpn_protocols,
            [b"http/1.1".to_vec()]
        );
        settings.cacert = Some("/nonexistent/ca.pem".into());
        let error = client_config(&settings).expect_err("missing file");
        assert!(error.starts_with("--cacert /nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn handshake_errors_have_kinds() {
        let wrap = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert_eq!(
            classify(&wrap(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))),
            ErrorKind::TlsUnknownCa
        );
        assert_eq!(
            classify(&wrap(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName
            ))),
            ErrorKind::TlsNameMismatch
        );
        assert_eq!(
            classify(&wrap(rustls::Error::InvalidCertificate(
                CertificateError::Expired
            ))),
            ErrorKind::TlsExpired
        );
        assert_eq!(
            classify(&wrap(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            ))),
            ErrorKind::TlsHandshake
        );
    }
}
