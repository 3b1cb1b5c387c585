//! The TLS client configuration: which authorities are trusted, which protocols are
//! offered, and what a handshake failure means.
//!
//! Trust starts from the Mozilla roots (`webpki-roots`, so a gateway with a public
//! certificate such as ACM's or Let's Encrypt's is verified on any machine) plus the
//! certificates of `--cacert` (a self-signed `ecommerce-tls-cert`, or `c4mesh up`'s
//! CA), and is relaxed only where curl would trust what webpki refuses (see
//! [`super::trust`]). `--insecure` accepts any certificate but still speaks TLS
//! properly. ALPN offers h2 and http/1.1, or one of them when the protocol is fixed.

use super::trust::{Cacert, CacertError, ServerTrust};
use super::{ErrorKind, Protocol, Settings};
use rustls::client::VerifierBuilderError;
use rustls::crypto;
use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use std::sync::Arc;

/// Why no TLS client configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("TLS: the protocol versions")]
    Versions(#[source] rustls::Error),
    #[error(transparent)]
    Cacert(#[from] CacertError),
    #[error("TLS: the certificate verifier")]
    Verifier(#[source] VerifierBuilderError),
}

/// A client configuration for `settings`.
pub fn client_config(settings: &Settings) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Versions)?;
    let trust = if settings.insecure {
        ServerTrust::any(provider)
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let cacert = settings.cacert.as_deref().map(Cacert::load).transpose()?;
        if let Some(cacert) = &cacert {
            cacert.add_to(&mut roots)?;
        }
        ServerTrust::as_curl(provider, roots, cacert, settings.warnings.clone())
            .map_err(TlsConfigError::Verifier)?
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(trust))
        .with_no_client_auth();
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
        assert!(
            matches!(error, TlsConfigError::Cacert(CacertError::Read { .. })),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with("--cacert /nonexistent/ca.pem"),
            "{error}"
        );
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
