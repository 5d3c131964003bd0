//! kubeadm's etcd PKI, generated with rcgen at test time.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A certificate and its key, written as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// kubeadm's etcd PKI: `<dir>/etcd/{ca,server,peer,healthcheck-client}.{crt,key}` and
/// `<dir>/apiserver-etcd-client.{crt,key}`.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: Pair,
    pub server: Pair,
    pub peer: Pair,
    pub healthcheck: Pair,
    pub apiserver_client: Pair,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    pub fn generate(dir: &Path) -> Pki {
        let etcd_dir = dir.join("etcd");
        fs::create_dir_all(&etcd_dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "etcd-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let ca = write_pair(&etcd_dir, "ca", &ca_cert.pem(), &ca_key.serialize_pem());

        let mut pki = Pki {
            dir: dir.to_path_buf(),
            server: ca.clone(),
            peer: ca.clone(),
            healthcheck: ca.clone(),
            apiserver_client: ca.clone(),
            ca,
            ca_cert,
            ca_key,
        };
        pki.server = pki.issue(&etcd_dir, "server", "etcd-server", true, true);
        pki.peer = pki.issue(&etcd_dir, "peer", "etcd-peer", true, true);
        pki.healthcheck = pki.issue(
            &etcd_dir,
            "healthcheck-client",
            "kube-etcd-healthcheck-client",
            false,
            true,
        );
        pki.apiserver_client = pki.issue(
            dir,
            "apiserver-etcd-client",
            "kube-apiserver-etcd-client",
            false,
            true,
        );
        pki
    }

    /// Issue a leaf signed by this CA, valid for localhost and 127.0.0.1.
    pub fn issue(&self, dir: &Path, name: &str, cn: &str, server: bool, client: bool) -> Pair {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        write_pair(dir, name, &cert.pem(), &key.serialize_pem())
    }
}

fn write_pair(dir: &Path, name: &str, cert: &str, key: &str) -> Pair {
    let pair = Pair {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    fs::write(&pair.cert, cert).unwrap();
    fs::write(&pair.key, key).unwrap();
    pair
}
