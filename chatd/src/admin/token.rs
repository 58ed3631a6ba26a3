//! The admin API's bearer token: read once from a file at start, kept
//! only as its SHA-256 digest, and compared in constant time, so that
//! neither the time an answer takes nor its length tells a guesser how
//! close it came.

use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest token accepted.
const MIN_LEN: usize = 16;

/// The configured token, as its digest. `Debug` shows nothing of it.
pub(crate) struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// The token in the file at `path`. Refused: a file other users may
    /// read (whoever reads it administers the server), an empty one, or
    /// a token shorter than 16 characters or with characters an HTTP
    /// header cannot carry. A trailing newline is not part of the token.
    pub(crate) fn read(path: &Path) -> anyhow::Result<AdminToken> {
        refuse_shared(path)?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the admin token file {}", path.display()))?;
        AdminToken::from_secret(text.trim_end_matches(['\n', '\r']))
            .with_context(|| format!("the admin token file {}", path.display()))
    }

    /// The token `secret`, checked as [`AdminToken::read`] checks a file's.
    pub(crate) fn from_secret(secret: &str) -> anyhow::Result<AdminToken> {
        if secret.is_empty() {
            bail!("the admin token is empty");
        }
        if secret.len() < MIN_LEN {
            bail!(
                "the admin token is {} characters long; use at least {MIN_LEN} \
                 (e.g. `head -c 32 /dev/urandom | base64`)",
                secret.len()
            );
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the admin token may hold only printable ASCII without blanks");
        }
        Ok(AdminToken {
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Refuses a token file that every user may read, and warns about one
/// its group may read.
#[cfg(unix)]
fn refuse_shared(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading the admin token file {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o004 != 0 {
        bail!(
            "the admin token file {} is readable by every user; `chmod 600` it",
            path.display()
        );
    }
    if mode & 0o040 != 0 {
        tracing::warn!(file = %path.display(), "the admin token file is readable by its group");
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_shared(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_matches() {
        let token = AdminToken::from_secret("s3cret-token-0123").expect("a good token");
        assert!(token.matches("s3cret-token-0123"));
        for wrong in [
            "",
            "s3cret-token-012",
            "s3cret-token-01234",
            "S3cret-token-0123",
        ] {
            assert!(!token.matches(wrong), "{wrong:?} matched");
        }
        assert_eq!(format!("{token:?}"), "AdminToken(..)");
    }

    #[test]
    fn empty_short_or_unprintable_tokens_are_refused() {
        for bad in ["", "short", "has a blank in it!", "tab\tinside-0123456"] {
            assert!(
                AdminToken::from_secret(bad).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn a_file_loses_its_newline_and_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token-0123\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let token = AdminToken::read(&path).expect("a private file");
        assert!(token.matches("s3cret-token-0123"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = AdminToken::read(&path)
            .map(|_| ())
            .expect_err("a world-readable file is refused");
        assert!(
            format!("{refused:#}").contains("readable by every user"),
            "{refused:#}"
        );

        std::fs::write(&path, "\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let empty = AdminToken::read(&path)
            .map(|_| ())
            .expect_err("an empty token is refused");
        assert!(format!("{empty:#}").contains("empty"), "{empty:#}");
    }
}
