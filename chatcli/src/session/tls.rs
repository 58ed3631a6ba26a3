//! TLS to the server (`--tls`): chatd's TLS listener is the TLS-terminating
//! proxy in front of it (docs/security.md). The server's certificate must
//! chain to the system's roots, or to the CAs of `--ca-file` instead, and
//! name the host of `--addr`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};

/// How to speak TLS to one server.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
    /// What the certificate must name: the host of `--addr`.
    name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// TLS to `addr` (`HOST:PORT`), trusting the certificates of the PEM
    /// `ca_file`, or the system's roots without one.
    pub(crate) fn new(addr: &str, ca_file: Option<&Path>) -> anyhow::Result<Tls> {
        let roots = match ca_file {
            Some(file) => roots_from(file)?,
            None => system_roots()?,
        };
        let config =
            ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let host = host_of(addr);
        let name = ServerName::try_from(host.to_owned())
            .with_context(|| format!("{host:?} (from --addr) is not a host name for TLS"))?;
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// The TLS handshake over `stream`.
    pub(crate) async fn handshake(
        &self,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), stream).await
    }
}

/// The host part of `HOST:PORT` (`[::1]:6000` gives `::1`).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn roots_from(file: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(file)
        .with_context(|| format!("cannot read --ca-file {}", file.display()))?
    {
        let certificate = certificate
            .with_context(|| format!("--ca-file {} is not valid PEM", file.display()))?;
        roots
            .add(certificate)
            .with_context(|| format!("a certificate of --ca-file {}", file.display()))?;
    }
    if roots.is_empty() {
        bail!("--ca-file {} holds no certificate", file.display());
    }
    Ok(roots)
}

fn system_roots() -> anyhow::Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "a system root certificate could not be loaded");
    }
    let mut roots = RootCertStore::empty();
    let (_, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "system root certificates that could not be parsed");
    }
    if roots.is_empty() {
        bail!(
            "no trusted root certificates found on this system: name the server's CA with --ca-file"
        );
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_to_verify_is_the_host_of_the_address() {
        assert_eq!(host_of("chat.example.org:8443"), "chat.example.org");
        assert_eq!(host_of("127.0.0.1:8443"), "127.0.0.1");
        assert_eq!(host_of("[::1]:8443"), "::1");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("empty.pem");
        std::fs::write(&file, "not a certificate\n").expect("write");
        let error = Tls::new("localhost:8443", Some(&file)).expect_err("no certificate");
        assert!(
            format!("{error:#}").contains("holds no certificate"),
            "{error:#}"
        );
        let missing =
            Tls::new("localhost:8443", Some(&dir.path().join("none.pem"))).expect_err("no file");
        assert!(
            format!("{missing:#}").contains("cannot read --ca-file"),
            "{missing:#}"
        );
    }
}
