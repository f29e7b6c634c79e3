//! `get` and `upload`: moving a file, resuming it, and checking that both sides ended up with the same bytes.
//!
//! A plain `get` writes to a temporary file beside the target and moves it into place only once the server has
//! confirmed the transfer and the copy is verified. `get -c` continues a local file instead: it is written in place,
//! from its current size on (REST, then RETR), so an interrupted `get -c` leaves everything received so far for the
//! next one to continue; without a local file it starts one. `upload -c` asks the server how much it has (SIZE) and
//! sends the rest (REST and STOR, or APPE when the server refuses that with a 50x code).
//!
//! Verification (`--verify`): when the server offers HASH with a digest the client computes (CRC32, which costs
//! next to nothing, or SHA-256; see [`Verify`]) the local digest, computed while the bytes pass, is compared with
//! the server's (selecting the algorithm with OPTS HASH if needed); otherwise the sizes are compared. The summary
//! line ends with what was checked; a mismatch is an error, and a plain `get` then keeps nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use log::debug;

use crate::connect::Login;
use crate::digest::{Algorithm, LocalDigest};
use crate::hash_ahead::{HashAhead, HASH_AHEAD_MIN};
use crate::local::{check_target, download_target, open_upload, partial_path, transfer_summary, upload_name, PartFile};
use crate::progress::{Meter, Metered};
use ftp_client::{FtpClient, FtpError};

/// How a transfer is verified (`--verify`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Verify {
    /// The cheapest digest the server offers for HASH (CRC32, then SHA-256), else the size.
    #[default]
    Auto,
    /// SHA-256 when the server offers it, else the size.
    Sha256,
    /// CRC32 when the server offers it, else the size.
    Crc32,
    /// The size only (SIZE), no digest.
    Size,
}

impl Verify {
    /// The digests it accepts, preferred first.
    fn digests(self) -> &'static [Algorithm] {
        match self {
            Verify::Auto => &[Algorithm::Crc32, Algorithm::Sha256],
            Verify::Sha256 => &[Algorithm::Sha256],
            Verify::Crc32 => &[Algorithm::Crc32],
            Verify::Size => &[],
        }
    }
}

/// What a transfer command was asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Replace an existing local file (`get`).
    pub force: bool,
    /// Continue from what is already there.
    pub resume: bool,
    /// Show a progress bar for long transfers.
    pub progress: bool,
    /// Most bytes per second (`--limit-rate`).
    pub limit_rate: Option<u64>,
    /// With `resume`, for a retried download that replaces a local file: continue `LOCAL.part` (what the failed
    /// attempt kept), not `LOCAL`, and replace `LOCAL` once complete.
    pub continue_part: bool,
    /// How the copy is checked.
    pub verify: Verify,
}

impl Options {
    /// A meter for one transfer, hashing with `hash` if given, paced to the rate limit.
    fn meter(&self, hash: Option<Algorithm>) -> Meter {
        Meter::new(hash).with_limit(self.limit_rate)
    }
}

/// Downloads `remote`; returns the summary line. A download cut short (Ctrl-C, a broken connection) after some
/// bytes arrived keeps them as `LOCAL.part`, which `get -c` continues. With `beside` (how to open a second session),
/// a large file's digest is asked for on a second session while it downloads ([`HashAhead`]).
pub fn get(
    client: &mut FtpClient,
    remote: &str,
    local: Option<&str>,
    opts: Options,
    beside: Option<&Login>,
) -> Result<String, String> {
    let target = download_target(remote, local)?;
    if opts.resume {
        return get_continue(client, remote, &target, opts, beside);
    }
    check_target(&target, opts.force)?;
    let hash = choose_digest(client, opts.verify)?;
    let beside = beside.filter(|_| hash.is_some());
    let total = if opts.progress || beside.is_some() { client.size(remote).ok() } else { None };
    let ahead = match (beside, total, hash) {
        (Some(login), Some(size), Some(algorithm)) if size >= HASH_AHEAD_MIN => {
            start_hash_ahead(client, login, remote, algorithm)
        }
        _ => None,
    };
    let mut part = PartFile::create(&target)
        .map_err(|e| format!("cannot create a temporary file beside {}: {e}", target.display()))?;
    let mut meter = opts.meter(hash);
    if opts.progress {
        meter = meter.with_bar(remote, 0, total);
    }
    let start = Instant::now();
    let result = client.retr(remote, &mut Metered { inner: part.file(), meter: &mut meter });
    let digest = meter.finish();
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(e) if meter.bytes() > 0 => {
            return Err(keep_partial(part, &target, remote, meter.bytes(), &why(&e, "RETR")))
        }
        // Nothing arrived: dropping `part` removes the temporary file.
        Err(e) => return Err(why(&e, "RETR")),
    };
    let elapsed = start.elapsed();
    let check = match verify_with(client, remote, bytes, digest, ahead) {
        Ok(check) => check,
        // The connection broke before the copy could be checked: what arrived may be all of it.
        Err(msg) if client.is_closed() && bytes > 0 => return Err(keep_partial(part, &target, remote, bytes, &msg)),
        Err(msg) => return Err(format!("{msg}; the download was discarded")),
    };
    part.persist(&target, opts.force).map_err(|e| format!("saving {}: {e}", target.display()))?;
    let to = target.display().to_string();
    Ok(format!("{}, {check}", transfer_summary("get", remote, &to, bytes, elapsed)))
}

/// Keeps the `bytes` a failed download received as `TARGET.part`, for `get -c` to continue; returns the error
/// message, `why` followed by where the bytes are.
fn keep_partial(part: PartFile, target: &Path, remote: &str, bytes: u64, why: &str) -> String {
    let kept = partial_path(target);
    match part.keep_as(&kept) {
        Ok(()) => {
            format!("{why}; the {bytes} bytes received are kept in {} (get -c {remote} continues)", kept.display())
        }
        Err(e) => format!("{why}; keeping the bytes received as {} failed: {e}", kept.display()),
    }
}

/// Downloads `remote` into `out` (standard output for `get REMOTE -` and `cat`); returns the summary line.
pub fn get_to(client: &mut FtpClient, remote: &str, out: &mut dyn Write, opts: Options) -> Result<String, String> {
    let hash = choose_digest(client, opts.verify)?;
    let mut meter = opts.meter(hash);
    let start = Instant::now();
    let result = client.retr(remote, &mut Metered { inner: out, meter: &mut meter });
    let digest = meter.finish();
    let bytes = result.map_err(|e| why(&e, "RETR"))?;
    let elapsed = start.elapsed();
    let check = verify(client, remote, bytes, digest)?;
    Ok(format!("{}, {check}", transfer_summary("get", remote, "-", bytes, elapsed)))
}

/// `get -c`: continues the local file in place, or else (or with `continue_part`) the `LOCAL.part` an interrupted
/// `get` kept (or a new one), which becomes `LOCAL` once complete and verified.
/// With `beside`, a large file's digest is asked for on a second session meanwhile, as in [`get`].
fn get_continue(
    client: &mut FtpClient,
    remote: &str,
    target: &Path,
    opts: Options,
    beside: Option<&Login>,
) -> Result<String, String> {
    let local_err = |e: std::io::Error| format!("local file {}: {e}", target.display());
    let exists = match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => return Err(format!("local path {} is a directory", target.display())),
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(local_err(e)),
    };
    let path = if exists && !opts.continue_part { target.to_path_buf() } else { partial_path(target) };
    let shown = path.display().to_string();
    let local_err = |e: std::io::Error| format!("local file {shown}: {e}");
    let hash = choose_digest(client, opts.verify)?;
    let remote_size = match client.size(remote) {
        Ok(size) => Some(size),
        // Without SIZE the server's answer to REST and RETR decides.
        Err(e) if refused(&e, 500..=502) => None,
        Err(e) => return Err(why(&e, "SIZE")),
    };
    let created = !path.exists();
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(local_err)?;
    let offset = file.metadata().map_err(local_err)?.len();
    if let Some(size) = remote_size.filter(|size| offset > *size) {
        return Err(format!(
            "local file {shown} ({offset} bytes) is larger than {remote} ({size} bytes); cannot continue"
        ));
    }
    // The server hashes while the part already here is hashed and the rest arrives.
    let ahead = match (beside, remote_size, hash) {
        (Some(login), Some(size), Some(algorithm)) if size >= HASH_AHEAD_MIN => {
            start_hash_ahead(client, login, remote, algorithm)
        }
        _ => None,
    };
    // The part already here counts towards the digest; writing continues after it.
    let mut meter = opts.meter(hash);
    meter.hash_prefix(&mut file, offset).map_err(local_err)?;
    file.seek(SeekFrom::Start(offset)).map_err(local_err)?;
    let start = Instant::now();
    let bytes = if remote_size == Some(offset) && offset > 0 {
        0
    } else {
        if opts.progress {
            meter = meter.with_bar(remote, offset, remote_size);
        }
        let result = client.retr_from(remote, offset, &mut Metered { inner: &mut file, meter: &mut meter });
        if let Err(e) = result {
            drop(file);
            if created && meter.bytes() == 0 {
                // Nothing was received: do not leave an empty file behind.
                let _ = fs::remove_file(&path);
            }
            return Err(why(&e, "RETR"));
        }
        meter.bytes()
    };
    let elapsed = start.elapsed();
    let digest = meter.finish();
    let check = verify_with(client, remote, offset + bytes, digest, ahead).map_err(|msg| {
        format!("{msg}; {shown} is kept as it is (get -f {remote} downloads it again from the start)")
    })?;
    if path != target {
        drop(file);
        fs::rename(&path, target).map_err(|e| format!("saving {}: {e}", target.display()))?;
    }
    let to = target.display().to_string();
    Ok(resumed_summary("get", remote, &to, bytes, elapsed, offset, &check))
}

/// Uploads `local`; returns the summary line.
/// A REMOTE ending in `/` is a directory: the file keeps its name there.
pub fn upload(client: &mut FtpClient, local: &str, remote: Option<&str>, opts: Options) -> Result<String, String> {
    let remote = match remote {
        Some(dir) if dir.ends_with('/') => format!("{dir}{}", upload_name(local)?),
        Some(remote) => remote.to_string(),
        None => upload_name(local)?,
    };
    let mut file = open_upload(local)?;
    let len = file.metadata().map_err(|e| format!("local file {local}: {e}"))?.len();
    let hash = choose_digest(client, opts.verify)?;
    let offset = if opts.resume { remote_size_for_resume(client, &remote)? } else { 0 };
    if offset > len {
        return Err(format!(
            "{remote} ({offset} bytes) is larger than local file {local} ({len} bytes); cannot continue"
        ));
    }
    // The part the server has counts towards the digest; sending starts after it.
    let mut meter = opts.meter(hash);
    let local_err = |e: std::io::Error| format!("local file {local}: {e}");
    meter.hash_prefix(&mut file, offset).map_err(local_err)?;
    file.seek(SeekFrom::Start(offset)).map_err(local_err)?;
    if opts.progress {
        meter = meter.with_bar(local, offset, Some(len));
    }
    let start = Instant::now();
    let result = if offset == len && opts.resume {
        Ok(0)
    } else {
        send(client, &remote, offset, &mut Metered { inner: &mut file, meter: &mut meter })
    };
    let digest = meter.finish();
    let bytes = result?;
    let elapsed = start.elapsed();
    let check = verify(client, &remote, len, digest)?;
    if opts.resume {
        Ok(resumed_summary("upload", local, &remote, bytes, elapsed, offset, &check))
    } else {
        Ok(format!("{}, {check}", transfer_summary("upload", local, &remote, bytes, elapsed)))
    }
}

/// Uploads what `input` yields (standard input for `put - REMOTE`) to `remote`; returns the summary line.
pub fn upload_from(
    client: &mut FtpClient,
    input: &mut dyn Read,
    remote: &str,
    opts: Options,
) -> Result<String, String> {
    let hash = choose_digest(client, opts.verify)?;
    let mut meter = opts.meter(hash);
    let start = Instant::now();
    let result = client.stor(remote, &mut Metered { inner: input, meter: &mut meter });
    let digest = meter.finish();
    let bytes = result.map_err(|e| why(&e, "STOR"))?;
    let elapsed = start.elapsed();
    let check = verify(client, remote, bytes, digest)?;
    Ok(format!("{}, {check}", transfer_summary("upload", "-", remote, bytes, elapsed)))
}

/// How much of `remote` the server already has: its size, or 0 when it does not exist.
fn remote_size_for_resume(client: &mut FtpClient, remote: &str) -> Result<u64, String> {
    match client.size(remote) {
        Ok(size) => Ok(size),
        Err(e) if refused(&e, 550..=550) => Ok(0),
        Err(e) => Err(format!("cannot continue: the server does not tell the size of {remote}: {}", why(&e, "SIZE"))),
    }
}

/// Sends the file from `offset` on: STOR, or REST and STOR, or APPE when the server refuses REST or STOR with
/// 500-504.
fn send(client: &mut FtpClient, remote: &str, offset: u64, input: &mut Metered<&mut File>) -> Result<u64, String> {
    if offset == 0 {
        return client.stor(remote, input).map_err(|e| why(&e, "STOR"));
    }
    match client.stor_from(remote, offset, input) {
        Ok(bytes) => Ok(bytes),
        Err(e) if refused(&e, 500..=504) => {
            debug!("resuming with REST and STOR refused ({e}); appending instead");
            if matches!(&e, FtpError::Unexpected { command, .. } if command.starts_with("STOR")) {
                // REST was accepted; make sure the pending offset does not apply to APPE.
                client.raw("REST 0").map_err(|e| e.to_string())?;
            }
            client.append(remote, input).map_err(|e| why(&e, "APPE"))
        }
        Err(e) => Err(why(&e, "STOR")),
    }
}

/// The digest to verify with: the first of those `verify` accepts that the server offers for HASH, if any.
fn choose_digest(client: &mut FtpClient, verify: Verify) -> Result<Option<Algorithm>, String> {
    if verify == Verify::Size {
        return Ok(None);
    }
    let offered = client.hash_algorithms().map_err(|e| e.to_string())?;
    let offers = |a: &Algorithm| offered.iter().any(|(name, _)| name.eq_ignore_ascii_case(a.name()));
    Ok(verify.digests().iter().copied().find(offers))
}

/// Starts asking for `remote`'s digest on a second session, from the first session's directory when `remote` is
/// relative; `None` when that directory is unknown.
fn start_hash_ahead(client: &mut FtpClient, login: &Login, remote: &str, algorithm: Algorithm) -> Option<HashAhead> {
    let cwd = if remote.starts_with('/') {
        None
    } else {
        match client.pwd() {
            Ok(cwd) => Some(cwd),
            Err(e) => {
                debug!("PWD ({e}): the digest is asked for after the download");
                return None;
            }
        }
    };
    Some(HashAhead::start(login, cwd, remote, algorithm.name()))
}

/// Compares the local copy (`len` bytes, with its `digest` when hashing) with the server's; returns what was
/// checked (`CRC32 verified`, `size verified`), or why the copies differ.
fn verify(client: &mut FtpClient, remote: &str, len: u64, digest: Option<LocalDigest>) -> Result<String, String> {
    verify_with(client, remote, len, digest, None)
}

/// [`verify`], taking the server's digest from `ahead` (asked for during the download) when it has one; otherwise,
/// or when the second session failed, asking on `client` now.
fn verify_with(
    client: &mut FtpClient,
    remote: &str,
    len: u64,
    digest: Option<LocalDigest>,
    ahead: Option<HashAhead>,
) -> Result<String, String> {
    if let Some(LocalDigest { algorithm, hex: local }) = digest {
        let name = algorithm.name();
        let early = ahead.and_then(|ahead| match ahead.wait() {
            Ok(theirs) if theirs.algorithm.eq_ignore_ascii_case(name) => Some(theirs),
            Ok(theirs) => {
                debug!("HASH on the second session answered with {}; asking again here", theirs.algorithm);
                None
            }
            Err(e) => {
                debug!("HASH on the second session: {e}; asking again here");
                None
            }
        });
        let theirs = match early {
            Some(theirs) => Ok(theirs),
            None => client.select_hash(name).and_then(|()| client.hash(remote)),
        };
        match theirs {
            Ok(theirs) if theirs.algorithm.eq_ignore_ascii_case(name) => {
                return if theirs.hex.eq_ignore_ascii_case(&local) {
                    Ok(format!("{name} verified"))
                } else {
                    Err(format!("{name} mismatch: local {local}, server {}", theirs.hex))
                };
            }
            Ok(theirs) => debug!("HASH answered with {}; comparing sizes instead", theirs.algorithm),
            Err(e @ FtpError::Unexpected { .. }) => debug!("HASH refused ({e}); comparing sizes instead"),
            Err(e) => return Err(format!("cannot verify: {e}")),
        }
    }
    match client.size(remote) {
        Ok(size) if size == len => Ok("size verified".to_string()),
        Ok(size) => Err(format!("size mismatch: local {len} bytes, server {size} bytes")),
        Err(e) if refused(&e, 500..=502) => Ok("not verified (the server has neither HASH nor SIZE)".to_string()),
        Err(e) => Err(format!("cannot verify: {e}")),
    }
}

/// The summary of a resumed transfer: `get a -> a: 10 bytes in 0.01 s (1.0 KiB/s), resumed at byte 90, size
/// verified`, or `get a -> a: already complete (100 bytes), SHA-256 verified`.
fn resumed_summary(
    verb: &str,
    from: &str,
    to: &str,
    bytes: u64,
    elapsed: Duration,
    offset: u64,
    check: &str,
) -> String {
    if bytes == 0 && offset > 0 {
        return format!("{verb} {from} -> {to}: already complete ({offset} bytes), {check}");
    }
    let summary = transfer_summary(verb, from, to, bytes, elapsed);
    if offset > 0 {
        format!("{summary}, resumed at byte {offset}, {check}")
    } else {
        format!("{summary}, {check}")
    }
}

/// True when `err` is a reply with a code in `codes`.
fn refused(err: &FtpError, codes: std::ops::RangeInclusive<u16>) -> bool {
    err.reply().is_some_and(|r| codes.contains(&r.code))
}

/// The error message for a command that maps onto the FTP verb `verb`: a refusal of that verb is told as
/// `server replied ...`; any other failure names the FTP command it happened in.
pub fn why(err: &FtpError, verb: &str) -> String {
    match err {
        FtpError::Unexpected { command, .. }
            if command.split(' ').next().is_some_and(|c| c.eq_ignore_ascii_case(verb)) =>
        {
            err.reason()
        }
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftp_common::Reply;

    #[test]
    fn resumed_summaries() {
        let t = Duration::from_secs(1);
        assert_eq!(
            resumed_summary("get", "a", "b", 10, t, 90, "size verified"),
            "get a -> b: 10 bytes in 1.00 s (10.0 B/s), resumed at byte 90, size verified"
        );
        assert_eq!(
            resumed_summary("upload", "a", "b", 0, t, 5, "SHA-256 verified"),
            "upload a -> b: already complete (5 bytes), SHA-256 verified"
        );
        assert_eq!(
            resumed_summary("get", "a", "b", 3, t, 0, "size verified"),
            "get a -> b: 3 bytes in 1.00 s (3.0 B/s), size verified"
        );
    }

    #[test]
    fn refusals_by_code() {
        let err =
            FtpError::Unexpected { command: "REST 5".into(), reply: Reply { code: 502, lines: vec!["no".into()] } };
        assert!(refused(&err, 500..=504));
        assert!(!refused(&err, 550..=550));
        assert!(!refused(&FtpError::Closed, 500..=504));
        assert_eq!(why(&err, "REST"), "server replied 502 no");
        assert_eq!(why(&err, "RETR"), "REST 5: server replied 502 no");
    }
}
