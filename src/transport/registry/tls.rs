//! TLS for one registry host, as docker and podman set it up: the system's
//! roots plus the CAs in the host's certs.d directories (and `--cert-dir`),
//! a client certificate from there, and exact-certificate pinning for a
//! self-signed server certificate put there.
//!
//! The pinning is what docker accepts and rustls' verifier does not: a
//! certificate made as Docker's documentation shows (`openssl req -x509
//! -addext subjectAltName=...`) says CA:TRUE, and webpki refuses a CA as the
//! server's own certificate (`CaUsedAsEndEntity`). Go's verifier takes a
//! leaf that is itself a trusted root; so does this, only when the server
//! sent exactly that certificate, and with its validity period, its name and
//! the handshake signature still checked.

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// What a host's certificate directories hold.
#[derive(Default)]
pub struct Trust {
    /// `*.crt`: CAs to trust, and certificates to pin.
    roots: Vec<CertificateDer<'static>>,
    /// `*.cert` with its `*.key`: the client's identity.
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl Trust {
    /// Adds what `dir` holds (a missing directory holds nothing).
    pub fn add_dir(&mut self, dir: &Path) -> Result<()> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        let mut names: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for path in &names {
            let read =
                |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    let certs = CertificateDer::pem_slice_iter(&read(path)?)
                        .collect::<Result<Vec<_>, _>>()
                        .with_context(|| format!("{} is not PEM", path.display()))?;
                    if certs.is_empty() {
                        bail!("{} holds no PEM certificate", path.display());
                    }
                    self.roots.extend(certs);
                }
                Some("cert") => {
                    let key = path.with_extension("key");
                    let chain = CertificateDer::pem_slice_iter(&read(path)?)
                        .collect::<Result<Vec<_>, _>>()
                        .with_context(|| format!("client certificate {}", path.display()))?;
                    let key_pem = read(&key).with_context(|| {
                        format!(
                            "client certificate {} has no {}",
                            path.display(),
                            key.display()
                        )
                    })?;
                    let key = PrivateKeyDer::from_pem_slice(&key_pem)
                        .with_context(|| format!("client key {}", key.display()))?;
                    self.identity = Some((chain, key));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The rustls configuration for reqwest: verified against the system's
    /// roots and ours (with pinning), or not at all (`--tls-verify=false`).
    pub fn client_config(self, verify: bool) -> Result<rustls::ClientConfig> {
        let provider = CryptoProvider::get_default()
            .cloned()
            .context("no TLS crypto provider is installed")?;
        let algorithms = provider.signature_verification_algorithms;
        let system = if !verify {
            None
        } else if self.roots.is_empty() {
            Some(rustls_platform_verifier::Verifier::new(provider.clone()))
        } else {
            Some(rustls_platform_verifier::Verifier::new_with_extra_roots(
                self.roots.iter().cloned(),
                provider.clone(),
            ))
        };
        let verifier = Arc::new(HostVerifier {
            system: system
                .transpose()
                .context("cannot load the system's TLS roots")?,
            pinned: self.roots,
            algorithms,
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .context("the client certificate and key do not go together")?,
            None => builder.with_no_client_auth(),
        };
        // reqwest is built without HTTP/2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The system's verifier with the host's roots, and pinning on top.
#[derive(Debug)]
struct HostVerifier {
    /// None with `--tls-verify=false`: any certificate is taken (the
    /// handshake signatures are still checked, which keeps it to one key).
    system: Option<rustls_platform_verifier::Verifier>,
    /// The certificates of the host's trust directories.
    pinned: Vec<CertificateDer<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl HostVerifier {
    /// A certificate the user trusts for this host, sent as it is: valid
    /// now and for this name. webpki checks the validity period before the
    /// basic constraints, so with the certificate as its own trust anchor,
    /// `CaUsedAsEndEntity` means everything before that held.
    fn pinned_holds(
        &self,
        cert: &CertificateDer<'_>,
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> bool {
        if !self.pinned.iter().any(|p| p == cert) {
            return false;
        }
        let (Ok(leaf), Ok(anchor)) = (
            webpki::EndEntityCert::try_from(cert),
            webpki::anchor_from_trusted_cert(cert),
        ) else {
            return false;
        };
        let anchors = [anchor];
        let chain = leaf.verify_for_usage(
            self.algorithms.all,
            &anchors,
            &[],
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        );
        matches!(chain, Ok(_) | Err(webpki::Error::CaUsedAsEndEntity))
            && leaf.verify_is_valid_for_subject_name(name).is_ok()
    }
}

impl ServerCertVerifier for HostVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(system) = &self.system else {
            return Ok(ServerCertVerified::assertion());
        };
        match system.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(_) if self.pinned_holds(end_entity, name, now) => {
                Ok(ServerCertVerified::assertion())
            }
            result => result,
        }
    }

    // The handshake signatures prove the server holds the certificate's key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
