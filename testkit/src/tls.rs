//! Throwaway certificates for TLS tests, made with the `openssl` command:
//! a CA of the test's own and a certificate it signed for `localhost` and
//! 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A test CA and a server certificate it signed, as files in one folder.
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA's certificate, PEM (what a client is told to trust).
    pub ca_pem: PathBuf,
    /// The CA's certificate, DER.
    pub ca_der: Vec<u8>,
    /// The server's certificate (PEM), valid for `localhost` and 127.0.0.1.
    pub certificate: PathBuf,
    /// The server certificate's private key (PEM).
    pub key: PathBuf,
}

impl Certificates {
    /// Makes a new CA named `name` and a server certificate in `dir`
    /// (which must exist). Panics when `openssl` fails.
    pub fn make(dir: &Path, name: &str) -> Certificates {
        let file = |file: &str| dir.join(file).display().to_string();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let (ca_key, ca_crt, ca_der) = (file("ca.key"), file("ca.crt"), file("ca.der"));
        let (key, csr, crt, ext) = (
            file("chat.key"),
            file("chat.csr"),
            file("chat.crt"),
            file("chat.ext"),
        );
        let subject = format!("/CN={name}");
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-days", "1", "-subj", &subject, "-keyout", &ca_key, "-out", &ca_crt,
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req", "-new"][..],
                &ec,
                &["-subj", "/CN=localhost", "-keyout", &key, "-out", &csr],
            ]
            .concat(),
        );
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("extensions file");
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
        openssl(&["x509", "-in", &ca_crt, "-outform", "DER", "-out", &ca_der]);
        Certificates {
            ca_pem: dir.join("ca.crt"),
            ca_der: std::fs::read(&ca_der).expect("the CA in DER form"),
            certificate: dir.join("chat.crt"),
            key: dir.join("chat.key"),
        }
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
