//! A private CA for TLS tests (rcgen): its root as PEM, and server certificates it issues,
//! written to files a Postern config can name (`[smtp] tls_cert`, `extra_ca_file`) or as a
//! rustls server config.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct TestCa {
    root: Certificate,
    key: KeyPair,
}

/// A certificate's and its key's files.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Postern test CA");
        let key = KeyPair::generate().unwrap();
        let root = params.self_signed(&key).unwrap();
        TestCa { root, key }
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// Writes the root to `dir/ca.pem`; its path.
    pub fn write_root(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.root_pem()).unwrap();
        path
    }

    /// A server certificate for `names` (host names or IP addresses), written to
    /// `dir/{stem}.pem` and `dir/{stem}.key`.
    pub fn issue(&self, names: &[&str], dir: &Path, stem: &str) -> CertFiles {
        let (cert, key) = self.leaf(names);
        let files = CertFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    /// A rustls server config with a certificate for `names`.
    pub fn server_config(&self, names: &[&str]) -> rustls::ServerConfig {
        let (cert, key) = self.leaf(names);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap()
    }

    fn leaf(&self, names: &[&str]) -> (Certificate, KeyPair) {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.root, &self.key)
            .unwrap();
        (cert, key)
    }
}
