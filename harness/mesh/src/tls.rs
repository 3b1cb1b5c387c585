//! Certificates for the gateway's HTTPS listener, made at start.
//!
//! The operator's Gateway serves port 443 with the TLS secret `ecommerce-tls-cert`, a
//! certificate for `api.c4ang.com` (self-signed in their tests). The local mesh does
//! the same so that clients meet what they will meet through the NLB: SNI, a
//! certificate chain to verify, ALPN choosing `h2` or `http/1.1`.
//!
//! ## Why a CA and a leaf, not one self-signed certificate
//!
//! A client is told to trust the CA (`--cacert ca.pem`, `openssl -CAfile`) and then
//! checks the leaf the way it checks a real one: signature, validity, and the name.
//! The leaf names `api.c4ang.com` only (no `localhost`, no `127.0.0.1`), so a client
//! that reaches the listener by address without naming the host, or names another
//! one, sees the name mismatch it would see in production instead of a pass.
//!
//! A fresh CA is made each time: nothing is installed in a trust store, and its key is
//! never written, so nothing outlives the run that a stranger could sign with.

/// Why the certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("creating {}", .0.display())]
    Dir(PathBuf, #[source] std::io::Error),
    #[error("{what}")]
    Certificate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("writing {}", .0.display())]
    Write(PathBuf, #[source] std::io::Error),
}

type Result<T, E = TlsError> = std::result::Result<T, E>;

/// The error of one step of making a certificate.
fn step(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> TlsError {
    let what = what.into();
    move |source| TlsError::Certificate { what, source }
}
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The CA's name, as clients show it.
pub const CA_NAME: &str = "c4mesh local CA";

/// How long the certificates are valid from now (they were valid a day earlier too,
/// for a clock a little behind).
const VALID_FOR: Duration = Duration::from_secs(365 * 24 * 3600);
const SKEW: Duration = Duration::from_secs(24 * 3600);

/// The files of a listener's certificate: PEM, in `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificates {
    pub dir: PathBuf,
    /// The CA certificate clients trust.
    pub ca: PathBuf,
    /// The leaf certificate for the host, signed by the CA.
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8).
    pub key: PathBuf,
}

/// Makes a CA and a certificate for `host` signed by it, and writes `ca.pem`,
/// `cert.pem` and `key.pem` into `dir` (created if missing).
pub fn generate(dir: &Path, host: &str) -> Result<Certificates> {
    std::fs::create_dir_all(dir).map_err(|e| TlsError::Dir(dir.to_path_buf(), e))?;

    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, CA_NAME);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    valid_from_now(&mut ca);
    let ca_key = KeyPair::generate().map_err(step("generating the CA key"))?;
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(step("signing the CA certificate"))?;
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(vec![host.to_owned()])
        .map_err(step(format!("a certificate for {host:?}")))?;
    leaf.distinguished_name.push(DnType::CommonName, host);
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    valid_from_now(&mut leaf);
    let leaf_key = KeyPair::generate().map_err(step("generating the certificate key"))?;
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .map_err(step(format!("signing the certificate for {host}")))?;

    let certificates = Certificates {
        dir: dir.to_path_buf(),
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    for (path, pem) in [
        (&certificates.ca, ca_cert.pem()),
        (&certificates.cert, leaf_cert.pem()),
        (&certificates.key, leaf_key.serialize_pem()),
    ] {
        std::fs::write(path, pem).map_err(|e| TlsError::Write(path.clone(), e))?;
    }
    Ok(certificates)
}

impl Certificates {
    /// The listener that serves these certificates.
    pub fn listener(&self) -> crate::envoy::TlsListener {
        crate::envoy::TlsListener {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// Valid from a day ago to a year from now.
fn valid_from_now(params: &mut CertificateParams) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now.saturating_sub(SKEW);
    params.not_after = epoch + now + VALID_FOR;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

    /// A directory of its own for one test, removed at the end.
    fn scratch(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("c4mesh-tls-{name}-"))
            .tempdir()
            .expect("a temporary directory")
    }

    fn verify(certificates: &Certificates, name: &str) -> Result<(), webpki::Error> {
        let ca = CertificateDer::from_pem_file(&certificates.ca).expect("ca.pem is a certificate");
        let leaf =
            CertificateDer::from_pem_file(&certificates.cert).expect("cert.pem is a certificate");
        let anchor = webpki::anchor_from_trusted_cert(&ca)?;
        let leaf = webpki::EndEntityCert::try_from(&leaf)?;
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )?;
        let name = ServerName::try_from(name).expect("a server name");
        leaf.verify_is_valid_for_subject_name(&name)
    }

    #[test]
    fn the_files_are_pem_and_the_leaf_chains_to_the_ca_for_the_host_only() {
        let scratch = scratch("names");
        let certificates = generate(scratch.path(), "api.c4ang.com").expect("certificates");
        assert_eq!(certificates.ca, scratch.path().join("ca.pem"));
        PrivateKeyDer::from_pem_file(&certificates.key).expect("key.pem is a private key");
        assert_eq!(verify(&certificates, "api.c4ang.com"), Ok(()));
        for other in ["localhost", "127.0.0.1", "www.c4ang.com"] {
            assert!(
                verify(&certificates, other).is_err(),
                "the certificate must not name {other}"
            );
        }
    }

    #[test]
    fn each_start_makes_a_new_ca() {
        let (one, two) = (scratch("one"), scratch("two"));
        let first = generate(one.path(), "api.c4ang.com").expect("certificates");
        let second = generate(two.path(), "api.c4ang.com").expect("certificates");
        let read = |path: &Path| std::fs::read(path).expect("readable");
        assert_ne!(read(&first.ca), read(&second.ca));
        // A leaf does not chain to another start's CA.
        let crossed = Certificates {
            ca: second.ca.clone(),
            ..first.clone()
        };
        assert!(verify(&crossed, "api.c4ang.com").is_err());
    }
}
