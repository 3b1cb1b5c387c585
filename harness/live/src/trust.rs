//! A `--cacert` file trusted the way curl trusts it.
//!
//! ## Why webpki alone is not enough
//!
//! The deployment guide makes the gateway's `ecommerce-tls-cert` with
//! `openssl req -x509 -newkey rsa:4096 ... -subj "/CN=api.c4ang.com"`: a self-signed
//! certificate that OpenSSL marks CA:TRUE, with no subjectAltName. curl, given it with
//! `--cacert`, trusts it for `api.c4ang.com`: OpenSSL accepts a certificate of the CA
//! file presented by the server as it is, and names a host by the certificate's CN when
//! it has no subjectAltName. webpki, as the Web PKI requires, refuses both (a CA
//! certificate cannot be an end entity; names come only from subjectAltName), so an
//! operator following the guide got `tls_bad_certificate` for every request while curl
//! got 200.
//!
//! ## What is relaxed, and what is not
//!
//! [`ServerTrust`] asks webpki first, with the Mozilla roots and the `--cacert`
//! certificates as roots. Only when webpki refuses does it look again, in two cases:
//!
//! 1. The server presented, byte for byte, a certificate of the `--cacert` file. It is
//!    trusted as given if it is within its validity period, not restricted to other
//!    purposes than serving TLS, and names the host (subjectAltName, or its CN when it
//!    has none) — whether it says CA:TRUE or not.
//! 2. webpki verified the chain to a trusted CA but found no name, and the certificate
//!    has no subjectAltName names at all: its CN is matched instead, as OpenSSL does.
//!
//! Everything else stays refused with its kind: an unknown CA, a wrong name, an expired
//! certificate. A self-signed certificate that is not in the file is an unknown CA
//! (`tls_unknown_ca`, curl's "self-signed certificate"), also when webpki first objects
//! to its CA:TRUE. The handshake's own signatures are checked as always. Each relaxation
//! is handed to [`Warnings`] as a [`TrustWarning`] saying what a public certificate
//! would need; the sink reports each distinct warning once, however many connections
//! see it.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use x509_parser::error::X509Error;
use x509_parser::extensions::GeneralName;

/// A `--cacert` file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacertError {
    #[error("--cacert {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("--cacert {}: no certificate in the file", path.display())]
    Empty { path: PathBuf },
    #[error("--cacert {}: certificate {number}", path.display())]
    Parse {
        path: PathBuf,
        /// 1 for the file's first certificate.
        number: usize,
        #[source]
        source: X509Error,
    },
    #[error("--cacert {}", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// The certificates of a `--cacert` file, read once.
#[derive(Debug)]
pub struct Cacert {
    path: PathBuf,
    certificates: Vec<Given>,
}

/// A certificate of the file, with what case 1 checks of it.
#[derive(Debug)]
struct Given {
    der: CertificateDer<'static>,
    facts: Facts,
}

impl Cacert {
    /// Reads the PEM certificates of `path`; a file without any is an error.
    pub fn load(path: &Path) -> Result<Cacert, CacertError> {
        let read = |source| CacertError::Read {
            path: path.to_owned(),
            source,
        };
        let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(read)?
            .collect::<Result<_, _>>()
            .map_err(read)?;
        if ders.is_empty() {
            return Err(CacertError::Empty {
                path: path.to_owned(),
            });
        }
        let certificates = ders
            .into_iter()
            .enumerate()
            .map(|(i, der)| {
                let facts = Facts::of(&der).map_err(|source| CacertError::Parse {
                    path: path.to_owned(),
                    number: i + 1,
                    source,
                })?;
                Ok(Given { der, facts })
            })
            .collect::<Result<_, CacertError>>()?;
        Ok(Cacert {
            path: path.to_owned(),
            certificates,
        })
    }

    /// Adds the file's certificates to `roots`.
    pub fn add_to(&self, roots: &mut RootCertStore) -> Result<(), CacertError> {
        for given in &self.certificates {
            roots
                .add(given.der.clone())
                .map_err(|source| CacertError::Root {
                    path: self.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    fn find(&self, presented: &CertificateDer<'_>) -> Option<&Given> {
        self.certificates
            .iter()
            .find(|given| given.der.as_ref() == presented.as_ref())
    }
}

/// What the relaxed checks need to know of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Facts {
    /// subjectAltName dNSName entries.
    dns_names: Vec<String>,
    /// subjectAltName iPAddress entries (4 or 16 bytes).
    ip_addresses: Vec<Vec<u8>>,
    /// The subject's (last) CN.
    common_name: Option<String>,
    /// basicConstraints CA:TRUE.
    ca: bool,
    /// Issuer and subject are the same name.
    self_signed: bool,
    /// Seconds since the Unix epoch (0 for earlier times).
    not_before: u64,
    not_after: u64,
    /// No extendedKeyUsage, or one that allows serverAuth.
    serves_tls: bool,
}

/// How a certificate names a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    BySubjectAltName,
    ByCommonName,
}

impl Facts {
    fn of(der: &[u8]) -> Result<Facts, X509Error> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| match e {
            x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
            x509_parser::nom::Err::Incomplete(_) => X509Error::InvalidCertificate,
        })?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Some(san) = cert.subject_alternative_name()? {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(ip) => ip_addresses.push(ip.to_vec()),
                    _ => {}
                }
            }
        }
        let common_name = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .last()
            .map(str::to_owned);
        let ca = cert.basic_constraints()?.is_some_and(|bc| bc.value.ca);
        let serves_tls = cert
            .extended_key_usage()?
            .is_none_or(|eku| eku.value.server_auth || eku.value.any);
        let seconds = |t: i64| u64::try_from(t).unwrap_or(0);
        Ok(Facts {
            dns_names,
            ip_addresses,
            common_name,
            ca,
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
            not_before: seconds(cert.validity().not_before.timestamp()),
            not_after: seconds(cert.validity().not_after.timestamp()),
            serves_tls,
        })
    }

    /// Whether `name` is named: by subjectAltName when the certificate has names
    /// there, else (DNS names only) by its CN — OpenSSL's rule, which curl follows.
    fn naming(&self, name: &ServerName<'_>) -> Option<Naming> {
        let by_san = !self.dns_names.is_empty() || !self.ip_addresses.is_empty();
        match name {
            ServerName::DnsName(dns) => {
                let host = dns.as_ref();
                if by_san {
                    self.dns_names
                        .iter()
                        .any(|pattern| dns_matches(pattern, host))
                        .then_some(Naming::BySubjectAltName)
                } else {
                    self.common_name
                        .as_deref()
                        .is_some_and(|cn| dns_matches(cn, host))
                        .then_some(Naming::ByCommonName)
                }
            }
            ServerName::IpAddress(ip) => {
                let octets = match std::net::IpAddr::from(*ip) {
                    std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                    std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
                };
                self.ip_addresses
                    .contains(&octets)
                    .then_some(Naming::BySubjectAltName)
            }
            _ => None,
        }
    }

    /// Case 1: a certificate of the `--cacert` file, presented as the server's.
    fn trust_as_given(
        &self,
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<Naming, CertificateError> {
        let at = |seconds| UnixTime::since_unix_epoch(Duration::from_secs(seconds));
        if now.as_secs() < self.not_before {
            return Err(CertificateError::NotValidYetContext {
                time: now,
                not_before: at(self.not_before),
            });
        }
        if now.as_secs() > self.not_after {
            return Err(CertificateError::ExpiredContext {
                time: now,
                not_after: at(self.not_after),
            });
        }
        if !self.serves_tls {
            return Err(CertificateError::InvalidPurpose);
        }
        self.naming(name).ok_or(CertificateError::NotValidForName)
    }
}

/// `host` against a certificate's name: equal but for case and a final dot, or a
/// wildcard standing for the whole leftmost label (`*.c4ang.com`).
fn dns_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    let host = host.strip_suffix('.').unwrap_or(host);
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(parent)),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Trust given that webpki refused, as curl gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrustWarning {
    /// The name the certificate was verified for.
    pub host: String,
    pub relaxed: Relaxation,
}

/// Which rule of curl's trusted a certificate webpki refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Relaxation {
    /// The server presented a certificate of the `--cacert` file, trusted as given.
    AsGiven {
        cacert: PathBuf,
        self_signed: bool,
        /// It says CA:TRUE.
        ca: bool,
        /// It has no subjectAltName; its CN names the host.
        by_common_name: bool,
    },
    /// A certificate verified up to a trusted CA but without subjectAltName: its CN
    /// names the host.
    ByCommonName,
}

impl std::fmt::Display for TrustWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = &self.host;
        match &self.relaxed {
            Relaxation::AsGiven {
                cacert,
                self_signed,
                ca,
                by_common_name,
            } => {
                let kind = if *self_signed { "self-signed " } else { "" };
                write!(
                    f,
                    "trusting {host}'s {kind}certificate from --cacert {}",
                    cacert.display()
                )?;
                let details: Vec<&str> = [
                    ca.then_some("CA:TRUE"),
                    by_common_name.then_some("no subjectAltName: matched its CN"),
                ]
                .into_iter()
                .flatten()
                .collect();
                if !details.is_empty() {
                    write!(f, " ({})", details.join(", "))?;
                }
                let san = if *by_common_name {
                    "a subjectAltName DNS entry and "
                } else {
                    ""
                };
                write!(f, "; a public certificate needs {san}a CA chain")
            }
            Relaxation::ByCommonName => write!(
                f,
                "trusting {host}'s certificate by its CN (no subjectAltName); a public \
                 certificate needs a subjectAltName DNS entry"
            ),
        }
    }
}

/// Where trust warnings go. Each distinct warning is reported once per sink (clones
/// share it), so a run that opens a thousand connections warns once.
#[derive(Clone)]
pub struct Warnings {
    sink: Arc<Sink>,
}

struct Sink {
    seen: Mutex<Vec<TrustWarning>>,
    report: Box<dyn Fn(&TrustWarning) + Send + Sync>,
}

impl Warnings {
    /// Warnings handed to `report`, each distinct one once.
    pub fn new(report: impl Fn(&TrustWarning) + Send + Sync + 'static) -> Warnings {
        Warnings {
            sink: Arc::new(Sink {
                seen: Mutex::new(Vec::new()),
                report: Box::new(report),
            }),
        }
    }

    /// `warning: ...` lines on standard error: the default, which the CLI's commands
    /// rely on.
    pub fn stderr() -> Warnings {
        Warnings::new(|warning| eprintln!("warning: {warning}"))
    }

    fn report(&self, warning: TrustWarning) {
        {
            let mut seen = self
                .sink
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.contains(&warning) {
                return;
            }
            seen.push(warning.clone());
        }
        (self.sink.report)(&warning);
    }
}

impl Default for Warnings {
    fn default() -> Warnings {
        Warnings::stderr()
    }
}

impl std::fmt::Debug for Warnings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Warnings")
    }
}

/// Settings compare by how they reach an endpoint; where warnings go is not part of it.
impl PartialEq for Warnings {
    fn eq(&self, _: &Warnings) -> bool {
        true
    }
}

impl Eq for Warnings {}

/// The client's certificate verifier: webpki's verdict relaxed as curl relaxes it (see
/// the module's documentation), or `--insecure`'s.
#[derive(Debug)]
pub struct ServerTrust {
    provider: Arc<CryptoProvider>,
    policy: Policy,
}

#[derive(Debug)]
enum Policy {
    /// `--insecure`: every certificate is accepted; the handshake's signatures are
    /// still checked, so the session is TLS as usual, only unauthenticated.
    Any,
    AsCurl {
        strict: Arc<WebPkiServerVerifier>,
        cacert: Option<Cacert>,
        warnings: Warnings,
    },
}

impl ServerTrust {
    /// Trust in `roots` (which hold `cacert`'s certificates), as curl gives it.
    pub fn as_curl(
        provider: Arc<CryptoProvider>,
        roots: RootCertStore,
        cacert: Option<Cacert>,
        warnings: Warnings,
    ) -> Result<ServerTrust, VerifierBuilderError> {
        let strict =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()?;
        Ok(ServerTrust {
            provider,
            policy: Policy::AsCurl {
                strict,
                cacert,
                warnings,
            },
        })
    }

    /// `--insecure`: any certificate.
    pub fn any(provider: Arc<CryptoProvider>) -> ServerTrust {
        ServerTrust {
            provider,
            policy: Policy::Any,
        }
    }
}

/// A second look at what webpki refused for `reason`: the relaxation that trusts it,
/// or the refusal that stands. A certificate of the `--cacert` file gets its own
/// verdict; a self-signed one not in the file is refused as unknown, whatever else
/// webpki found wrong with it (a CA certificate presented as a server's).
fn second_look(
    cacert: Option<&Cacert>,
    reason: &CertificateError,
    end_entity: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<Relaxation, CertificateError> {
    if let Some(cacert) = cacert {
        if let Some(given) = cacert.find(end_entity) {
            let naming = given.facts.trust_as_given(server_name, now)?;
            return Ok(Relaxation::AsGiven {
                cacert: cacert.path.clone(),
                self_signed: given.facts.self_signed,
                ca: given.facts.ca,
                by_common_name: naming == Naming::ByCommonName,
            });
        }
    }
    let refused = || Err(reason.clone());
    let Ok(facts) = Facts::of(end_entity) else {
        return refused();
    };
    match reason {
        // webpki checks the name last: the chain, validity and purpose have passed.
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            if facts.naming(server_name) == Some(Naming::ByCommonName) {
                Ok(Relaxation::ByCommonName)
            } else {
                refused()
            }
        }
        CertificateError::UnknownIssuer
        | CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => refused(),
        _ if facts.self_signed => Err(CertificateError::UnknownIssuer),
        _ => refused(),
    }
}

impl ServerCertVerifier for ServerTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Policy::AsCurl {
            strict,
            cacert,
            warnings,
        } = &self.policy
        else {
            return Ok(ServerCertVerified::assertion());
        };
        let refusal = match strict.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(refusal) => refusal,
        };
        let rustls::Error::InvalidCertificate(reason) = &refusal else {
            return Err(refusal);
        };
        let relaxed = second_look(cacert.as_ref(), reason, end_entity, server_name, now)
            .map_err(rustls::Error::InvalidCertificate)?;
        warnings.report(TrustWarning {
            host: server_name.to_str().into_owned(),
            relaxed,
        });
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        crypto::verify_tls13_signature(message, cert, dss, algorithms)
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

    fn dns(name: &str) -> ServerName<'static> {
        ServerName::try_from(name.to_owned()).expect("a DNS name")
    }

    fn facts(dns_names: &[&str], common_name: Option<&str>) -> Facts {
        Facts {
            dns_names: dns_names.iter().map(|n| (*n).to_owned()).collect(),
            ip_addresses: Vec::new(),
            common_name: common_name.map(str::to_owned),
            ca: true,
            self_signed: true,
            not_before: 1_000,
            not_after: 2_000,
            serves_tls: true,
        }
    }

    #[test]
    fn names_come_from_the_subject_alt_name_and_the_cn_only_without_one() {
        let guide = facts(&[], Some("api.c4ang.com"));
        assert_eq!(
            guide.naming(&dns("api.c4ang.com")),
            Some(Naming::ByCommonName)
        );
        assert_eq!(
            guide.naming(&dns("API.c4ang.com.")),
            Some(Naming::ByCommonName)
        );
        assert_eq!(guide.naming(&dns("shop.c4ang.com")), None);
        let with_san = facts(&["*.c4ang.com"], Some("api.c4ang.com"));
        assert_eq!(
            with_san.naming(&dns("shop.c4ang.com")),
            Some(Naming::BySubjectAltName)
        );
        assert_eq!(with_san.naming(&dns("c4ang.com")), None);
        assert_eq!(with_san.naming(&dns("a.b.c4ang.com")), None);
        // A subjectAltName without the host wins over a CN that names it.
        let other = facts(&["shop.c4ang.com"], Some("api.c4ang.com"));
        assert_eq!(other.naming(&dns("api.c4ang.com")), None);
        let ip = ServerName::IpAddress(
            "127.0.0.1"
                .parse::<std::net::IpAddr>()
                .expect("an address")
                .into(),
        );
        assert_eq!(guide.naming(&ip), None);
        let by_ip = Facts {
            ip_addresses: vec![vec![127, 0, 0, 1]],
            ..guide.clone()
        };
        assert_eq!(by_ip.naming(&ip), Some(Naming::BySubjectAltName));
    }

    #[test]
    fn a_given_certificate_keeps_its_validity_and_purpose() {
        let guide = facts(&[], Some("api.c4ang.com"));
        let at = |s| UnixTime::since_unix_epoch(Duration::from_secs(s));
        let name = dns("api.c4ang.com");
        assert_eq!(
            guide.trust_as_given(&name, at(1_500)),
            Ok(Naming::ByCommonName)
        );
        assert!(matches!(
            guide.trust_as_given(&name, at(2_001)),
            Err(CertificateError::ExpiredContext { .. })
        ));
        assert!(matches!(
            guide.trust_as_given(&name, at(999)),
            Err(CertificateError::NotValidYetContext { .. })
        ));
        assert_eq!(
            guide.trust_as_given(&dns("shop.c4ang.com"), at(1_500)),
            Err(CertificateError::NotValidForName)
        );
        let client_only = Facts {
            serves_tls: false,
            ..guide
        };
        assert_eq!(
            client_only.trust_as_given(&name, at(1_500)),
            Err(CertificateError::InvalidPurpose)
        );
    }

    #[test]
    fn a_warning_says_what_a_public_certificate_needs() {
        let warning = TrustWarning {
            host: "api.c4ang.com".into(),
            relaxed: Relaxation::AsGiven {
                cacert: "tls.crt".into(),
                self_signed: true,
                ca: true,
                by_common_name: true,
            },
        };
        assert_eq!(
            warning.to_string(),
            "trusting api.c4ang.com's self-signed certificate from --cacert tls.crt \
             (CA:TRUE, no subjectAltName: matched its CN); a public certificate needs a \
             subjectAltName DNS entry and a CA chain"
        );
        let with_san = TrustWarning {
            relaxed: Relaxation::AsGiven {
                cacert: "tls.crt".into(),
                self_signed: true,
                ca: true,
                by_common_name: false,
            },
            ..warning.clone()
        };
        assert_eq!(
            with_san.to_string(),
            "trusting api.c4ang.com's self-signed certificate from --cacert tls.crt \
             (CA:TRUE); a public certificate needs a CA chain"
        );
        let by_cn = TrustWarning {
            relaxed: Relaxation::ByCommonName,
            ..warning.clone()
        };
        assert_eq!(
            by_cn.to_string(),
            "trusting api.c4ang.com's certificate by its CN (no subjectAltName); a public \
             certificate needs a subjectAltName DNS entry"
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&seen);
        let warnings = Warnings::new(move |w| into.lock().expect("lock").push(w.to_string()));
        for _ in 0..3 {
            warnings.clone().report(warning.clone());
        }
        warnings.report(by_cn);
        assert_eq!(seen.lock().expect("lock").len(), 2);
    }
}
