//! A throwaway CA and a server certificate for localhost / 127.0.0.1, made at run time.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEMs: (CA certificate, server certificate, server private key), and the CA to sign
/// client certificates with.
pub(crate) struct TestPki {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    /// A client certificate (PEM certificate, PEM key) signed by this CA, with these URI
    /// SANs, DNS SANs and common name.
    pub(crate) fn client_cert(&self, uris: &[&str], dns: &[&str], cn: &str) -> (String, String) {
        let key = KeyPair::generate().expect("client key");
        let mut params =
            CertificateParams::new(dns.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>())
                .expect("client params");
        for uri in uris {
            params.subject_alt_names.push(rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from(*uri).expect("URI SAN"),
            ));
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        (cert.pem(), key.serialize_pem())
    }
}

pub(crate) fn test_pki() -> TestPki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "grpc-auth test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    TestPki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        issuer,
    }
}

/// A TLS channel to `https://127.0.0.1:port` trusting only `ca_pem`.
pub(crate) async fn channel(port: u16, ca_pem: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("endpoint")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem)),
        )
        .expect("tls config")
        .connect()
        .await
        .expect("connect")
}

/// A TLS channel to `https://127.0.0.1:port` trusting only `ca_pem`, presenting a client
/// certificate.
pub(crate) async fn mtls_channel(
    port: u16,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("endpoint")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
                .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem)),
        )
        .expect("tls config")
        .connect()
        .await
        .expect("connect")
}
