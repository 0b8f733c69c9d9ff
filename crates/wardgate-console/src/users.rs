//! Console accounts: `data_dir/console/users.json` (mode 0600), argon2id
//! password hashes as PHC strings. Written by `wardgate user` and by the
//! console's account actions, each under an exclusive lock on
//! `users.lock` and replaced atomically; the console re-reads the file when
//! its modification time changes, so a change from the command line is seen
//! at the next request.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The accounts file in the console's directory.
pub const USERS_FILE: &str = "users.json";
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
/// Longest password accepted (argon2 would take more; a bound on work per login).
pub const MAX_PASSWORD: usize = 1024;
/// Most accounts a site may have.
pub const MAX_ACCOUNTS: usize = 1000;

/// What an account may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every view.
    Viewer,
    /// Re-drives, switches monitor/enforce, reloads.
    Operator,
    /// Devices, certificates and accounts.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a role's name.
    pub fn parse(s: &str) -> Result<Role, UserError> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(UserError::Invalid(format!(
                "role {other:?}: viewer, operator or admin"
            ))),
        }
    }
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its name (1-64 of `a-z 0-9 . _ -`).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The argon2id hash of its password (PHC string).
    pub password: String,
    /// A disabled account cannot log in, and its sessions end.
    #[serde(default)]
    pub disabled: bool,
    /// May be shown patient identifiers (each view is recorded).
    #[serde(default)]
    pub patient_data: bool,
    /// Bumped by every password change and disable: sessions opened before
    /// it end.
    #[serde(default)]
    pub generation: u64,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Bad input: a name, role or password that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// No such account.
    #[error("no account {0:?}")]
    NoSuchAccount(String),
    /// The accounts file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The accounts file is not what wardgate writes.
    #[error("{path}: not an accounts file: {why}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Hashing failed (out of memory).
    #[error("hashing the password: {0}")]
    Hash(String),
}

/// The accounts file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Users {
    /// Every account, in the order added.
    pub accounts: Vec<Account>,
}

/// Checks an account name: 1-64 of `a-z 0-9 . _ -`, not starting with a dot
/// or dash (it appears in URLs and records).
pub fn check_name(name: &str) -> Result<(), UserError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(UserError::Invalid(format!(
            "account name {name:?}: 1-64 of a-z, 0-9, '.', '_' and '-', not starting with '.' or '-'"
        )))
    }
}

/// Checks a new password's length.
pub fn check_password(password: &str) -> Result<(), UserError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(UserError::Invalid(format!(
            "the password has {n} characters; at least {MIN_PASSWORD} are needed"
        )));
    }
    if password.len() > MAX_PASSWORD {
        return Err(UserError::Invalid(format!(
            "the password is longer than {MAX_PASSWORD} bytes"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id (19 MiB, 2 passes, 1 lane: OWASP's minimum)
/// and a random salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// True when `password` matches the PHC string `hash`. A hash that does not
/// parse matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    password.len() <= MAX_PASSWORD
        && Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
}

/// A hash of no password anyone knows, verified for unknown accounts so that
/// an unknown name takes as long to refuse as a wrong password.
pub(crate) fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut pw = [0u8; 32];
        let _ = getrandom::getrandom(&mut pw);
        hash_password(&hex::encode(pw)).unwrap_or_default()
    })
}

/// The accounts of a console directory.
#[derive(Debug, Clone)]
pub struct UserStore {
    dir: PathBuf,
}

impl UserStore {
    /// The store in `dir` (`data_dir/console`).
    pub fn new(dir: &Path) -> Self {
        UserStore {
            dir: dir.to_owned(),
        }
    }

    /// The accounts file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(USERS_FILE)
    }

    /// Reads the accounts (none when the file does not exist yet).
    pub fn load(&self) -> Result<Users, UserError> {
        let path = self.path();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(source) => {
                return Err(UserError::Io {
                    what: format!("reading {}", path.display()),
                    source,
                })
            }
        };
        serde_json::from_slice(&text).map_err(|e| UserError::Corrupt {
            path: path.display().to_string(),
            why: e.to_string(),
        })
    }

    /// Changes the accounts under the lock: reads them, lets `change` edit
    /// them, writes them back (mode 0600, atomically). Returns what `change` did.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut Users) -> Result<T, UserError>,
    ) -> Result<T, UserError> {
        let io = |what: String| move |source| UserError::Io { what, source };
        wardgate_audit::fsx::create_dir(&self.dir).map_err(|e| UserError::Io {
            what: format!("creating {}", self.dir.display()),
            source: std::io::Error::other(e.to_string()),
        })?;
        let lock_path = self.dir.join("users.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(format!("opening {}", lock_path.display())))?;
        lock.lock()
            .map_err(io(format!("locking {}", lock_path.display())))?;
        let mut users = self.load()?;
        let out = change(&mut users)?;
        if users.accounts.len() > MAX_ACCOUNTS {
            return Err(UserError::Invalid(format!(
                "a site has at most {MAX_ACCOUNTS} accounts"
            )));
        }
        let mut text = serde_json::to_vec_pretty(&users).map_err(|e| UserError::Corrupt {
            path: self.path().display().to_string(),
            why: e.to_string(),
        })?;
        text.push(b'\n');
        let path = self.path();
        let tmp = self.dir.join("users.json.tmp");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(format!("writing {}", tmp.display())))?;
            f.write_all(&text)
                .and_then(|()| f.sync_all())
                .map_err(io(format!("writing {}", tmp.display())))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(format!("replacing {}", path.display())))?;
        Ok(out)
    }

    /// Adds an account.
    pub fn add(
        &self,
        name: &str,
        role: Role,
        password: &str,
        patient_data: bool,
    ) -> Result<(), UserError> {
        check_name(name)?;
        check_password(password)?;
        let hash = hash_password(password)?;
        self.update(|u| {
            if u.accounts.iter().any(|a| a.name == name) {
                return Err(UserError::Invalid(format!(
                    "account {name:?} exists (`wardgate user passwd` changes its password)"
                )));
            }
            u.accounts.push(Account {
                name: name.to_owned(),
                role,
                password: hash,
                disabled: false,
                patient_data,
                generation: 0,
            });
            Ok(())
        })
    }

    /// Sets an account's password (and ends its sessions).
    pub fn passwd(&self, name: &str, password: &str) -> Result<(), UserError> {
        check_password(password)?;
        let hash = hash_password(password)?;
        self.update(|u| {
            let a = find(u, name)?;
            a.password = hash;
            a.generation += 1;
            Ok(())
        })
    }

    /// Disables or enables an account (disabling ends its sessions).
    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), UserError> {
        self.update(|u| {
            let a = find(u, name)?;
            a.disabled = disabled;
            a.generation += 1;
            Ok(())
        })
    }
}

fn find<'a>(u: &'a mut Users, name: &str) -> Result<&'a mut Account, UserError> {
    u.accounts
        .iter_mut()
        .find(|a| a.name == name)
        .ok_or_else(|| UserError::NoSuchAccount(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["alice", "a", "clin.eng_2", "x-y"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(65);
        for bad in ["", "Alice", ".a", "-a", "a b", "a/b", "ä", long.as_str()] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        assert!(check_password("short").is_err());
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a phc string"));
        // Two hashes of one password differ (random salt).
        assert_ne!(h, hash_password("correct horse battery").expect("hash"));
    }

    #[test]
    fn the_store_adds_changes_and_disables_accounts_in_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let s = UserStore::new(&dir.path().join("console"));
        assert!(s.load().expect("empty").accounts.is_empty());
        s.add("alice", Role::Admin, "a long password 1", true)
            .expect("add");
        assert!(s
            .add("alice", Role::Viewer, "a long password 2", false)
            .is_err());
        s.passwd("alice", "another long one").expect("passwd");
        s.set_disabled("alice", true).expect("disable");
        assert!(matches!(
            s.passwd("bob", "another long one"),
            Err(UserError::NoSuchAccount(_))
        ));
        let u = s.load().expect("load");
        let a = &u.accounts[0];
        assert_eq!(a.role, Role::Admin);
        assert!(a.disabled && a.patient_data);
        assert_eq!(a.generation, 2);
        assert!(verify_password("another long one", &a.password));
        let mode = std::fs::metadata(s.path())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_site() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = UserStore::new(dir.path());
        std::fs::write(s.path(), b"{not json").expect("write");
        assert!(matches!(s.load(), Err(UserError::Corrupt { .. })));
        assert!(s
            .add("bob", Role::Viewer, "a long password 1", false)
            .is_err());
    }
}
