//! Who may log in and what they may do: anonymous access (off, read, write), accounts from a TOML users file with
//! argon2id password hashes, per-account home directories (each a confined root of its own) and permissions.
//!
//! Password checks are slow on purpose (argon2id), so they never run on the event loop: [`verify`] is called on
//! the verifier thread (see `server::Verifier`). An unknown user is checked against a dummy hash so that a wrong
//! password and an unknown name cost the same time and get the same reply.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, Block, Params, Version};
use serde::Deserialize;

use crate::fs::Root;
use crate::limits::{parse_rate, LimitSettings, Limits, UserLimits};
use crate::storage::remote::Backend;
use crate::storage::Home;

/// What anonymous users (`anonymous` or `ftp`, any password) may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    Off,
    Read,
    Write,
}

impl fmt::Display for Anonymous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Anonymous::Off => "off",
            Anonymous::Read => "read",
            Anonymous::Write => "write",
        })
    }
}

impl std::str::FromStr for Anonymous {
    type Err = String;
    fn from_str(s: &str) -> Result<Anonymous, String> {
        match s {
            "off" => Ok(Anonymous::Off),
            "read" => Ok(Anonymous::Read),
            "write" => Ok(Anonymous::Write),
            _ => Err(format!("expected off, read or write, not {s:?}")),
        }
    }
}

/// One permission a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    Read,
    Write,
    Delete,
    Mkdir,
    Rename,
}

/// The permissions of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
    pub mkdir: bool,
    pub rename: bool,
}

impl Perms {
    pub const ALL: Perms = Perms { read: true, write: true, delete: true, mkdir: true, rename: true };
    pub const READ: Perms = Perms { read: true, write: false, delete: false, mkdir: false, rename: false };

    pub fn allows(self, p: Perm) -> bool {
        match p {
            Perm::Read => self.read,
            Perm::Write => self.write,
            Perm::Delete => self.delete,
            Perm::Mkdir => self.mkdir,
            Perm::Rename => self.rename,
        }
    }

    /// `--read-only` takes every change away.
    fn read_only(self) -> Perms {
        Perms { read: self.read, ..Perms::default() }
    }

    /// Any change at all (MLSD's `perm` fact shows write permissions only then).
    pub fn writable(self) -> bool {
        self.write || self.delete || self.mkdir || self.rename
    }
}

/// Checked for unknown users: the default argon2id parameters, like every hash `hash_password` makes, so the
/// check takes as long as a real one. No password is known to match it, and the result is ignored anyway.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$DKGy2eHkD3W7MWAbKTIjsQ$nfwZnf0Rb8YAOB8Dj4H5NFpTsfRRYCsSZwCA+LIzMfg";

/// A logged-in identity: its name, its root, what it may do there, and its limits (shared with the user's
/// other sessions on every worker).
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub root: Rc<Root>,
    /// Where its files are: `root`, or its home on the storage back-end.
    pub home: Home,
    pub perms: Perms,
    pub limits: Arc<UserLimits>,
}

struct User {
    hash: String,
    root: Rc<Root>,
    /// The home as the users file names it, for a storage back-end.
    home: Option<PathBuf>,
    perms: Perms,
    limits: LimitSettings,
}

/// The login rules of a server.
pub struct Access {
    root: Rc<Root>,
    anonymous: Option<(Rc<Root>, Perms)>,
    users: HashMap<String, User>,
    /// Checked for unknown users, so their failure takes as long as a wrong password.
    dummy_hash: String,
    /// The `[anonymous]` table's limits.
    anonymous_limits: LimitSettings,
    /// Where every user's rates and session counts live (the server's, shared by its workers).
    limits: Arc<Limits>,
    /// The storage back-end files live on instead of the local disk (`--storage`).
    remote: Option<Arc<dyn Backend>>,
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Access {{ anonymous: {:?}, users: {} }}", self.anonymous.as_ref().map(|a| a.1), self.users.len())
    }
}

/// Why a users file was refused; the message names the file and the problem.
#[derive(Debug)]
pub struct AccessError(pub String);

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default, rename = "user")]
    users: Vec<UserEntry>,
    /// Limits for anonymous users (whatever `--anonymous` lets them do).
    #[serde(default)]
    anonymous: Option<LimitEntry>,
}

/// Limits, in a `[[user]]` entry or the `[anonymous]` table. Rates are bytes per second, a number or a string
/// with K, M or G (`"20M"`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitEntry {
    #[serde(default)]
    download_rate: Option<toml::Value>,
    #[serde(default)]
    upload_rate: Option<toml::Value>,
    #[serde(default)]
    max_sessions: Option<usize>,
    /// Bytes the home may hold (a number, or a string with K, M or G).
    #[serde(default)]
    quota_bytes: Option<toml::Value>,
    #[serde(default)]
    quota_files: Option<u64>,
}

impl LimitEntry {
    fn settings(&self) -> Result<LimitSettings, String> {
        let rate = |v: &Option<toml::Value>, key: &str| -> Result<u64, String> {
            match v {
                None => Ok(0),
                Some(toml::Value::Integer(n)) if *n >= 0 => Ok(*n as u64),
                Some(toml::Value::String(s)) => parse_rate(s).map_err(|e| format!("{key}: {e}")),
                Some(other) => Err(format!("{key}: {other} is not a rate")),
            }
        };
        Ok(LimitSettings {
            download_rate: rate(&self.download_rate, "download_rate")?,
            upload_rate: rate(&self.upload_rate, "upload_rate")?,
            max_sessions: self.max_sessions.unwrap_or(0),
            quota_bytes: rate(&self.quota_bytes, "quota_bytes")?,
            quota_files: self.quota_files.unwrap_or(0),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    /// An argon2id PHC string as `ftpserver hash-password` prints it.
    password: String,
    /// Relative to the server's root (default: the root itself).
    #[serde(default)]
    home: Option<PathBuf>,
    #[serde(default = "default_permissions")]
    permissions: Vec<String>,
    #[serde(flatten)]
    limits: LimitEntry,
}

fn default_permissions() -> Vec<String> {
    vec!["read".to_string()]
}

impl Access {
    /// Anonymous access only (no users file).
    pub fn anonymous_only(root: Rc<Root>, anonymous: Anonymous, read_only: bool) -> Access {
        Access::build(root, anonymous, read_only, HashMap::new())
    }

    /// Loads a users file; every home must be a directory inside `root_path`.
    pub fn load(
        root_path: &Path,
        root: Rc<Root>,
        anonymous: Anonymous,
        read_only: bool,
        users_file: &Path,
        remote: bool,
    ) -> Result<Access, AccessError> {
        let err = |why: String| AccessError(format!("users file {}: {why}", users_file.display()));
        let text = std::fs::read_to_string(users_file).map_err(|e| err(e.to_string()))?;
        let parsed: UsersFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut users = HashMap::new();
        for entry in parsed.users {
            let who = &entry.name;
            if entry.name.is_empty() || is_anonymous_name(&entry.name) {
                return Err(err(format!("user name {who:?} is not allowed")));
            }
            PasswordHash::new(&entry.password).map_err(|e| err(format!("user {who}: password hash: {e}")))?;
            let mut perms = Perms::default();
            for p in &entry.permissions {
                match p.as_str() {
                    "read" => perms.read = true,
                    "write" => perms.write = true,
                    "delete" => perms.delete = true,
                    "mkdir" => perms.mkdir = true,
                    "rename" => perms.rename = true,
                    other => return Err(err(format!("user {who}: unknown permission {other:?}"))),
                }
            }
            let user_root = match &entry.home {
                // On a storage back-end, a home is a place on it (checked at login, where it may be created).
                None | Some(_) if remote => root.clone(),
                None => root.clone(),
                Some(home) => {
                    // Homes are named relative to the server root and must stay inside it.
                    let rel = home.strip_prefix("/").unwrap_or(home);
                    let full = root_path.join(rel).canonicalize().map_err(|e| err(format!("user {who}: home: {e}")))?;
                    if !full.starts_with(root_path) {
                        return Err(err(format!("user {who}: home {} is outside the root", home.display())));
                    }
                    Rc::new(Root::open(&full).map_err(|e| err(format!("user {who}: home: {e}")))?)
                }
            };
            let limits = entry.limits.settings().map_err(|e| err(format!("user {who}: {e}")))?;
            let user = User { hash: entry.password, root: user_root, home: entry.home.clone(), perms, limits };
            if users.insert(entry.name.clone(), user).is_some() {
                return Err(err(format!("user {who} is listed twice")));
            }
        }
        let anonymous_limits = match &parsed.anonymous {
            Some(a) => a.settings().map_err(|e| err(format!("anonymous: {e}")))?,
            None => LimitSettings::default(),
        };
        Ok(Access { anonymous_limits, ..Access::build(root, anonymous, read_only, users) })
    }

    /// Uses the server's shared limits (rates and session counts across workers) instead of private ones.
    pub fn with_limits(self, limits: Arc<Limits>) -> Access {
        Access { limits, ..self }
    }

    /// Keeps files on a storage back-end: every home is a place on it (the users file's `home`, below its root).
    pub fn with_backend(self, backend: Arc<dyn Backend>) -> Access {
        Access { remote: Some(backend), ..self }
    }

    /// The home of a login: on the back-end if there is one, else its root on the disk.
    fn home_of(&self, root: &Rc<Root>, home: Option<&Path>) -> Home {
        match (&self.remote, home) {
            (None, _) => Home::disk(root.clone()),
            (Some(b), None) => Home::remote(b.clone()),
            (Some(b), Some(h)) => match b.below(&h.to_string_lossy()) {
                Ok(b) => Home::remote(b),
                Err(e) => {
                    // Checked when the users file was loaded; a home that cannot be named gets the base.
                    log::error!("home {}: {e}", h.display());
                    Home::remote(b.clone())
                }
            },
        }
    }

    fn build(root: Rc<Root>, anonymous: Anonymous, read_only: bool, mut users: HashMap<String, User>) -> Access {
        let restrict = |p: Perms| if read_only { p.read_only() } else { p };
        for u in users.values_mut() {
            u.perms = restrict(u.perms);
        }
        let anonymous = match anonymous {
            Anonymous::Off => None,
            Anonymous::Read => Some((root.clone(), Perms::READ)),
            Anonymous::Write => Some((root.clone(), restrict(Perms::ALL))),
        };
        Access {
            root,
            anonymous,
            users,
            dummy_hash: DUMMY_HASH.to_string(),
            anonymous_limits: LimitSettings::default(),
            limits: Arc::new(Limits::new(0, 0)),
            remote: None,
        }
    }

    /// The server's root, for sessions that have not logged in yet.
    pub fn base_root(&self) -> Rc<Root> {
        self.root.clone()
    }

    /// Where sessions that have not logged in yet are.
    pub fn base_home(&self) -> Home {
        self.home_of(&self.root, None)
    }

    /// What PASS does for `user`: log in at once (anonymous), or check a password off the loop.
    pub fn login(&self, user: &str) -> LoginPlan {
        if is_anonymous_name(user) {
            if let Some((root, perms)) = &self.anonymous {
                let home = self.home_of(root, None);
                let limits = self.limits.user("anonymous", self.anonymous_limits, usage_of(&home, root));
                let account = Account { name: user.to_string(), root: root.clone(), home, perms: *perms, limits };
                return LoginPlan::Accept(account);
            }
        }
        match self.users.get(user) {
            Some(u) => {
                let home = self.home_of(&u.root, u.home.as_deref());
                let limits = self.limits.user(user, u.limits, usage_of(&home, &u.root));
                LoginPlan::Verify {
                    hash: u.hash.clone(),
                    account: Some(Account {
                        name: user.to_string(),
                        root: u.root.clone(),
                        home,
                        perms: u.perms,
                        limits,
                    }),
                }
            }
            None => LoginPlan::Verify { hash: self.dummy_hash.clone(), account: None },
        }
    }
}

/// How a home's usage is measured for its quota: the tree on disk, or the objects below its prefix.
fn usage_of(home: &Home, root: &Rc<Root>) -> crate::limits::Usage {
    match home.backend() {
        None => crate::limits::disk_usage(root.host_path()),
        Some(b) => {
            let b = b.clone();
            Box::new(move || match b.usage() {
                Ok(u) => u,
                Err(e) => {
                    log::warn!("quota: cannot measure {}: {e}", b.locate(&crate::fs::VPath::root()).display());
                    (0, 0)
                }
            })
        }
    }
}

/// How a login proceeds once the password is in.
pub enum LoginPlan {
    Accept(Account),
    /// Check the password against `hash`; on success log in as `account` (`None`: the user does not exist, so
    /// the check runs only to take the same time, and fails).
    Verify {
        hash: String,
        account: Option<Account>,
    },
}

pub fn is_anonymous_name(user: &str) -> bool {
    user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp")
}

/// An argon2id PHC string for `password` with a fresh random salt (`ftpserver hash-password`).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `hash`. Slow by design: call it off the event loop.
pub fn verify(hash: &str, password: &str) -> bool {
    verify_with(hash, password, &mut Vec::new())
}

/// [`verify`] with the argon2 working memory supplied by the caller, who keeps it for the next check: the
/// verifier thread reuses one block array instead of asking the allocator for megabytes per login (which the C
/// allocator would then keep for good, a little more after every burst of logins).
pub fn verify_with(hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let mut check = || -> Option<bool> {
        let parsed = PasswordHash::new(hash).ok()?;
        let params = Params::try_from(&parsed).ok()?;
        let algorithm = argon2::Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let expected = parsed.hash?;
        let mut salt_buf = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
        let blocks = params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        let mut out = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
            .ok()?;
        // Output's equality is constant-time.
        Some(Output::new(&out).ok()? == expected)
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(dir: &Path) -> Rc<Root> {
        Rc::new(Root::open(dir).unwrap())
    }

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify(&h, "s3cret"));
        assert!(!verify(&h, "s3cret "));
        assert!(!verify("not a hash", "x"));
        // The reused memory gives the same answers, whatever it held before.
        let mut memory = Vec::new();
        assert!(verify_with(&h, "s3cret", &mut memory));
        assert!(!verify_with(&h, "wrong", &mut memory));
        assert!(verify_with(&h, "s3cret", &mut memory));
        assert!(!verify_with(DUMMY_HASH, "s3cret", &mut memory));
        // Hashes with other parameters (argon2i, other costs) verify too.
        let params = Params::new(4096, 3, 1, None).unwrap();
        let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
        let other = Argon2::new(argon2::Algorithm::Argon2i, Version::V0x13, params)
            .hash_password(b"password", &salt)
            .unwrap()
            .to_string();
        assert!(verify_with(&other, "password", &mut memory));
        assert!(!verify_with(&other, "Password", &mut memory));
    }

    #[test]
    fn anonymous_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let a = Access::anonymous_only(root(tmp.path()), Anonymous::Write, false);
        assert!(matches!(a.login("FTP"), LoginPlan::Accept(acc) if acc.perms == Perms::ALL));
        let a = Access::anonymous_only(root(tmp.path()), Anonymous::Write, true);
        assert!(matches!(a.login("anonymous"), LoginPlan::Accept(acc) if acc.perms == Perms::READ));
        let a = Access::anonymous_only(root(tmp.path()), Anonymous::Read, false);
        assert!(matches!(a.login("anonymous"), LoginPlan::Accept(acc) if !acc.perms.write));
        let a = Access::anonymous_only(root(tmp.path()), Anonymous::Off, false);
        assert!(matches!(a.login("anonymous"), LoginPlan::Verify { account: None, .. }));
    }

    #[test]
    fn users_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("alice")).unwrap();
        let hash = hash_password("pw").unwrap();
        let file = tmp.path().join("users.toml");
        std::fs::write(
            &file,
            format!(
                "[[user]]\nname = \"alice\"\npassword = \"{hash}\"\nhome = \"alice\"\npermissions = [\"read\", \"write\"]\n\n\
                 [[user]]\nname = \"bob\"\npassword = \"{hash}\"\n"
            ),
        )
        .unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let a = Access::load(&base, root(&base), Anonymous::Off, false, &file, false).unwrap();
        match a.login("alice") {
            LoginPlan::Verify { account: Some(acc), hash: h } => {
                assert_eq!(acc.perms, Perms { read: true, write: true, ..Perms::default() });
                assert!(acc.root.host_path().ends_with("alice"));
                assert!(verify(&h, "pw"));
            }
            _ => panic!("alice should need a password check"),
        }
        assert!(matches!(a.login("bob"), LoginPlan::Verify { account: Some(acc), .. } if acc.perms == Perms::READ));
        assert!(matches!(a.login("mallory"), LoginPlan::Verify { account: None, .. }));
    }

    #[test]
    fn bad_users_files() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let hash = hash_password("pw").unwrap();
        for (text, why) in [
            ("[[user]]\nname = \"a\"\npassword = \"plain\"\n".to_string(), "password hash"),
            (format!("[[user]]\nname = \"a\"\npassword = \"{hash}\"\nhome = \"../..\"\n"), "outside the root"),
            (format!("[[user]]\nname = \"a\"\npassword = \"{hash}\"\npermissions = [\"fly\"]\n"), "unknown permission"),
            (format!("[[user]]\nname = \"ftp\"\npassword = \"{hash}\"\n"), "not allowed"),
            (format!("[[user]]\nname = \"a\"\npassword = \"{hash}\"\nshell = 1\n"), "unknown field"),
        ] {
            let file = base.join("u.toml");
            std::fs::write(&file, text).unwrap();
            let e = Access::load(&base, root(&base), Anonymous::Off, false, &file, false).unwrap_err();
            assert!(e.0.contains(why), "{e}");
        }
    }
}
