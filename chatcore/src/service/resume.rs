//! Resume tokens: a credential a native client gets at login and presents
//! instead of its password when it reconnects, so that the users of a dead
//! node can all come back at once without an argon2 login storm.
//!
//! A token is `r1.<user>.<epoch>.<expires>.<mac>`: the user id, the user's
//! token epoch when it was issued, its expiry (Unix seconds) and an
//! HMAC-SHA256 over the rest under the cluster's resume key. Checking one
//! costs a MAC and one read of the user's row (which the login needs
//! anyway); it is valid until it expires or the user's epoch moves on, which
//! logout and password change do ([`Store::revoke_tokens`]). Nodes accept
//! each other's tokens when they share the key.
//!
//! [`Store::revoke_tokens`]: crate::store::Store::revoke_tokens

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::model::UserId;
use crate::protocol::ResumeToken;

const VERSION: &str = "r1";
/// Bytes of a generated key; a configured secret must be at least this long.
pub(crate) const KEY_BYTES: usize = 32;

/// Why a configured secret cannot be a [`ResumeKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResumeKeyError {
    /// The secret is too short to sign with: configure one of at least
    /// `min` bytes (32 random bytes, base64-encoded, will do).
    #[error("a resume key must be at least {min} bytes, got {len}")]
    TooShort { len: usize, min: usize },
}

/// The secret that signs resume tokens. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ResumeKey(Arc<[u8]>);

impl ResumeKey {
    /// A fresh random key: tokens are then valid on this process only.
    pub fn random() -> ResumeKey {
        let mut key = [0u8; KEY_BYTES];
        // The OS random source failing leaves no safe way to sign anything.
        getrandom::fill(&mut key).expect("the operating system's random source failed");
        ResumeKey(Arc::from(key.as_slice()))
    }

    /// A key from a configured secret shared by the nodes of a cluster; it
    /// must be at least 32 bytes long.
    pub fn from_secret(secret: &[u8]) -> Result<ResumeKey, ResumeKeyError> {
        if secret.len() < KEY_BYTES {
            return Err(ResumeKeyError::TooShort {
                len: secret.len(),
                min: KEY_BYTES,
            });
        }
        Ok(ResumeKey(Arc::from(secret)))
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(payload.as_bytes());
        mac
    }
}

impl fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeKey(..)")
    }
}

/// How resume tokens are signed and how long they last.
#[derive(Debug, Clone)]
pub struct ResumeConfig {
    pub key: ResumeKey,
    pub ttl: Duration,
}

impl Default for ResumeConfig {
    /// A random key and a one-day lifetime.
    fn default() -> Self {
        ResumeConfig {
            key: ResumeKey::random(),
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// What a valid signature vouches for; the caller still checks the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claims {
    pub(crate) user: UserId,
    pub(crate) epoch: u64,
}

/// Why a token was refused (for the log; the client hears one reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("expired token")]
    Expired,
}

impl ResumeConfig {
    /// Issues a token for `user` at token epoch `epoch`, `now` in Unix seconds.
    pub fn issue(&self, user: UserId, epoch: u64, now: i64) -> ResumeToken {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let expires = now.saturating_add(ttl);
        let payload = format!("{VERSION}.{user}.{epoch}.{expires}");
        let tag = self.key.mac(&payload).finalize().into_bytes();
        ResumeToken {
            token: format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag)),
            expires,
        }
    }

    /// Checks the signature and expiry of `token` at `now` (Unix seconds).
    pub(crate) fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let (payload, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        // Constant-time comparison: no timing oracle on the tag.
        self.key
            .mac(payload)
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let mut fields = payload.split('.');
        let (Some(VERSION), Some(user), Some(epoch), Some(expires), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let parse = |s: &str| s.parse::<i64>().map_err(|_| TokenError::Malformed);
        let user = UserId(parse(user)?);
        let epoch = epoch.parse::<u64>().map_err(|_| TokenError::Malformed)?;
        if parse(expires)? <= now {
            return Err(TokenError::Expired);
        }
        Ok(Claims { user, epoch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &[u8]) -> ResumeConfig {
        ResumeConfig {
            key: ResumeKey::from_secret(secret).expect("long enough"),
            ttl: Duration::from_secs(60),
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_verifies_until_it_expires() {
        let c = config(SECRET);
        let t = c.issue(UserId(7), 3, 1_000);
        assert_eq!(t.expires, 1_060);
        assert_eq!(
            c.verify(&t.token, 1_059),
            Ok(Claims {
                user: UserId(7),
                epoch: 3
            })
        );
        assert_eq!(c.verify(&t.token, 1_060), Err(TokenError::Expired));
    }

    #[test]
    fn another_key_or_any_edit_breaks_the_signature() {
        let c = config(SECRET);
        let t = c.issue(UserId(7), 3, 1_000).token;
        let other = config(b"another secret of at least 32 bytes!");
        assert_eq!(other.verify(&t, 1_000), Err(TokenError::BadSignature));
        // Claiming another user or a later epoch with the same tag fails.
        for forged in [t.replacen(".7.", ".8.", 1), t.replacen(".3.", ".4.", 1)] {
            assert_eq!(c.verify(&forged, 1_000), Err(TokenError::BadSignature));
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let c = config(SECRET);
        for junk in [
            "",
            ".",
            "r1",
            "r1.x.y.z.!!!",
            "r1.1.2.3",
            "....",
            "r1.1.2.3.é",
        ] {
            assert!(c.verify(junk, 0).is_err(), "{junk:?} was accepted");
        }
        let signed_junk = {
            let payload = "r1.1.2";
            let tag = c.key.mac(payload).finalize().into_bytes();
            format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
        };
        assert_eq!(c.verify(&signed_junk, 0), Err(TokenError::Malformed));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(ResumeKey::from_secret(b"short").is_err());
        assert_eq!(
            ResumeKey::from_secret(b"short").map(|_| ()),
            Err(ResumeKeyError::TooShort { len: 5, min: 32 })
        );
        assert!(format!("{:?}", ResumeKey::random()).contains(".."));
    }
}
