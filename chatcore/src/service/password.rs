//! Password hashing with argon2id on a bounded pool of blocking threads, so
//! that a login storm queues for hashing instead of starving the runtime.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use super::ServiceError;
use crate::protocol::ErrorCode;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism.
    pub parallelism: u32,
}

impl Default for HashParams {
    /// OWASP's recommendation for argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        HashParams {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

impl HashParams {
    /// The cheapest parameters argon2 accepts: for tests only.
    pub fn insecure_fast() -> HashParams {
        HashParams {
            memory_kib: Params::MIN_M_COST,
            iterations: 1,
            parallelism: 1,
        }
    }

    /// Whether these cost less than OWASP's weakest argon2id setting. Its
    /// settings trade memory for passes at about the same cost (47 MiB x
    /// 1, 19 MiB x 2, 12 MiB x 3, 9 MiB x 4, 7 MiB x 5): memory times
    /// passes below the least of them, 7,168 KiB x 5, is weaker than all.
    pub fn below_owasp_minimum(&self) -> bool {
        u64::from(self.memory_kib) * u64::from(self.iterations) < 7168 * 5
    }
}

/// Why [`Passwords::new`] could not make a hasher; either way, choose
/// other [`HashParams`].
#[derive(Debug, thiserror::Error)]
pub enum PasswordsError {
    /// argon2 refuses these parameters (for instance a memory cost below
    /// 8 KiB per lane, no passes, or no lanes).
    #[error("argon2 refuses these parameters")]
    InvalidParams(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The parameters are valid but a trial hash with them failed: not
    /// enough memory for the memory cost, or the operating system's random
    /// source failed.
    #[error("argon2 could not hash with these parameters")]
    TrialHashFailed(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A hash asked for through [`Passwords::hash_password`] failed (the
    /// random source, or the hashing thread). Says nothing of the password.
    #[error("hashing a password failed: {0}")]
    HashFailed(String),
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    argon: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that an unknown id
    /// costs as much time as a wrong password.
    dummy: Arc<str>,
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passwords")
            .field("available_permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// A hasher with `params`, running at most `concurrency` hashes at once.
    /// It hashes one password to try them, so a memory cost the host
    /// cannot afford fails here rather than at the first login.
    pub fn new(params: HashParams, concurrency: usize) -> Result<Passwords, PasswordsError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| PasswordsError::InvalidParams(Box::new(e)))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = argon
            .hash_password(b"not a password anybody has")
            .map_err(|e| PasswordsError::TrialHashFailed(Box::new(e)))?
            .to_string();
        Ok(Passwords {
            argon: Arc::new(argon),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: dummy.into(),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ServiceError::new(ErrorCode::Unavailable))?;
        let argon = Arc::clone(&self.argon);
        tokio::task::spawn_blocking(move || work(&argon))
            .await
            .map_err(|e| ServiceError::internal(format!("hashing task failed: {e}")))
    }

    /// A PHC string for `password` with a fresh random salt.
    pub(crate) async fn hash(&self, password: &str) -> Result<String, ServiceError> {
        let password = password.to_owned();
        self.blocking(move |argon| {
            argon
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| ServiceError::internal(format!("hashing failed: {e}")))
        })
        .await?
    }

    /// A PHC string for `password`, made as registration makes it, on the
    /// same bounded pool; for programs that bring users in from elsewhere
    /// (`chatd import-seed`).
    pub async fn hash_password(&self, password: &str) -> Result<String, PasswordsError> {
        self.hash(password)
            .await
            .map_err(|e| PasswordsError::HashFailed(e.detail))
    }

    /// Whether `stored` was made otherwise than this hasher would make it
    /// now (another algorithm, version or cost): worth making again at the
    /// next login, while the password is at hand. An unreadable one is
    /// left alone (it never matches anyway).
    pub(crate) fn outdated(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let now = self.argon.params();
        let same = parsed.algorithm.as_str() == Algorithm::Argon2id.as_str()
            && parsed.version == Some(Version::V0x13 as u32)
            && Params::try_from(&parsed).is_ok_and(|then| {
                then.m_cost() == now.m_cost()
                    && then.t_cost() == now.t_cost()
                    && then.p_cost() == now.p_cost()
            });
        !same
    }

    /// Whether `password` matches `stored`; `None` (no such user) never
    /// matches but takes as long as a real check.
    pub(crate) async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<bool, ServiceError> {
        let known = stored.is_some();
        let phc = stored.map_or_else(|| Arc::clone(&self.dummy), Arc::from);
        let password = password.to_owned();
        let matches = self
            .blocking(move |argon| match PasswordHash::new(&phc) {
                Ok(parsed) => argon.verify_password(password.as_bytes(), &parsed).is_ok(),
                Err(e) => {
                    tracing::error!(error = %e, "stored password hash is not a PHC string");
                    false
                }
            })
            .await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owasp_minimum_is_memory_times_passes() {
        assert!(!HashParams::default().below_owasp_minimum());
        assert!(HashParams::insecure_fast().below_owasp_minimum());
        let with = |memory_kib, iterations| HashParams {
            memory_kib,
            iterations,
            parallelism: 1,
        };
        assert!(!with(47_104, 1).below_owasp_minimum());
        assert!(!with(7_168, 5).below_owasp_minimum());
        assert!(with(19_456, 1).below_owasp_minimum());
        assert!(with(8_192, 4).below_owasp_minimum());
    }

    #[tokio::test]
    async fn hashes_made_with_other_costs_are_outdated() {
        let fast = Passwords::new(HashParams::insecure_fast(), 1).expect("params");
        let dearer = Passwords::new(
            HashParams {
                memory_kib: HashParams::insecure_fast().memory_kib * 2,
                ..HashParams::insecure_fast()
            },
            1,
        )
        .expect("params");
        let hash = fast.hash("pw").await.expect("hash");
        assert!(!fast.outdated(&hash), "its own hashes are current");
        assert!(dearer.outdated(&hash), "a cheaper hash is outdated");
        assert!(
            !dearer.outdated("not a PHC string"),
            "unreadable: left alone"
        );
    }

    #[tokio::test]
    async fn hash_verifies_only_the_same_password() {
        let pw = Passwords::new(HashParams::insecure_fast(), 2).expect("params");
        let hash = pw.hash("s3cret ✓").await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("s3cret"));
        assert!(pw.verify("s3cret ✓", Some(&hash)).await.expect("verify"));
        assert!(!pw.verify("s3cret", Some(&hash)).await.expect("verify"));
        assert!(!pw.verify("s3cret ✓", None).await.expect("verify"));
    }

    #[test]
    fn parameters_argon2_refuses_are_an_invalid_params_error() {
        let no_passes = HashParams {
            iterations: 0,
            ..HashParams::insecure_fast()
        };
        assert!(matches!(
            Passwords::new(no_passes, 1),
            Err(PasswordsError::InvalidParams(_))
        ));
    }
}
