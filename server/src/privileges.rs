//! Dropping root: `--run-as USER` switches to that account's user and group (and no supplementary groups) once
//! the listening sockets are bound, so a server started as root to bind port 21 serves as an ordinary user and
//! every file it creates belongs to that user. `--umask` sets the mode mask for created files and directories.
//!
//! This runs while the process has one thread (before the workers, verifiers and helpers start): the uid and gid
//! calls change the calling thread only, so one thread is all of the process then.

use std::fmt;

use rustix::fs::Mode;
use rustix::process::{Gid, Uid};

/// An account from the system's user database (`/etc/passwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug)]
pub struct PrivilegeError(pub String);

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Looks `name` up in `passwd` text (`name:x:uid:gid:...` lines); a number is taken as a uid with its own gid.
pub fn lookup(passwd: &str, name: &str) -> Option<Account> {
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4 && fields[0] == name {
            return Some(Account { uid: fields[2].parse().ok()?, gid: fields[3].parse().ok()? });
        }
    }
    let uid: u32 = name.parse().ok()?;
    Some(Account { uid, gid: uid })
}

/// Whether the process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Becomes `user` for good: groups first (only root may change them), then the user id.
pub fn run_as(user: &str) -> Result<Account, PrivilegeError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let account = lookup(&passwd, user).ok_or_else(|| PrivilegeError(format!("--run-as: no user {user:?}")))?;
    let fail = |what: &str, e: rustix::io::Errno| PrivilegeError(format!("--run-as {user}: {what}: {e}"));
    let (uid, gid) = (Uid::from_raw(account.uid), Gid::from_raw(account.gid));
    rustix::thread::set_thread_groups(&[gid]).map_err(|e| fail("setgroups", e))?;
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(|e| fail("setresuid", e))?;
    // No way back: if root could be regained, the drop did not happen.
    if account.uid != 0 && rustix::thread::set_thread_uid(Uid::ROOT).is_ok() {
        return Err(PrivilegeError(format!("--run-as {user}: root privileges could be regained")));
    }
    Ok(account)
}

/// Sets the mask for the modes of files and directories the server creates.
pub fn set_umask(mask: u32) {
    rustix::process::umask(Mode::from_raw_mode(mask));
}

/// Parses an octal mask such as `022` or `0o027`.
pub fn parse_umask(s: &str) -> Result<u32, String> {
    let digits = s.trim().trim_start_matches("0o");
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777).ok_or(format!("{s:?} is not an octal mask like 022"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_users_up_in_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(lookup(passwd, "nobody"), Some(Account { uid: 65534, gid: 65534 }));
        assert_eq!(lookup(passwd, "root"), Some(Account { uid: 0, gid: 0 }));
        assert_eq!(lookup(passwd, "1234"), Some(Account { uid: 1234, gid: 1234 }));
        assert_eq!(lookup(passwd, "nosuchuser"), None);
    }

    #[test]
    fn umasks_are_octal() {
        assert_eq!(parse_umask("022"), Ok(0o22));
        assert_eq!(parse_umask("0o027"), Ok(0o27));
        assert!(parse_umask("999").is_err() && parse_umask("7777").is_err());
    }
}
