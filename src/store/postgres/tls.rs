//! TLS to the PostgreSQL server with rustls and the ring provider the rest of the daemon uses.
//! `verify-full` checks the server's certificate against `sslrootcert` (a PEM file) or, without
//! one, the system's trusted roots, and its name against the host; `require` encrypts without
//! checking whose certificate it is, as libpq's `require` does.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;
use crate::config::PgTarget;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(super) fn connector(target: &PgTarget, verify: bool) -> Result<MakeRustlsConnect, StoreError> {
    let fail = |what: String| StoreError::Other(format!("database {target}: {what}"));
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(format!("TLS: {e}")))?;
    let config = if verify {
        let mut roots = RootCertStore::empty();
        match &target.root_cert {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        fail(format!(
                            "cannot read the CA certificates in sslrootcert={} ({e}): name a \
                             PEM file the daemon's user can read",
                            path.display()
                        ))
                    })?;
                roots.add_parsable_certificates(certs);
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            return Err(fail(
                "no trusted CA certificate found for sslmode=verify-full: install the system's \
                 CA certificates (ca-certificates) or name the server's CA with \
                 sslrootcert=/path/to/ca.pem in the URL"
                    .to_string(),
            ));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider())))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `sslmode=require`: any certificate is accepted, but the handshake's signatures are still
/// checked, so the session is encrypted to whoever holds the certificate's key.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
