//! Starting this workspace's programs from tests, once for every package's tests (the integration tests in
//! tests/, and those of client/ftpclient and client/ftpload): finding a binary of the workspace, and starting a
//! server process and waiting, bounded, for the lines it prints when ready.
//!
//! Cargo gives a package's tests only that package's own binaries (`CARGO_BIN_EXE_*`), and `cargo test -p X` does
//! not rebuild other packages' binaries, so a stale `ftpserver` would be tested. Under cargo, a binary is therefore
//! built by the cargo running the tests, into the same target directory and profile, once per test process (a
//! no-op when it is up to date); a test binary run directly builds it only when it is missing. Nothing here knows
//! a server's flags or output format beyond the ready line's address: the callers own their servers.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::Duration;

/// The directory holding this build's binaries: `target/<profile>`, the parent of the `deps` folder the running
/// test binary is in.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary lives in a folder");
    let dir =
        if deps.file_name().is_some_and(|n| n == "deps") { deps.parent().expect("deps has a parent") } else { deps };
    dir.to_path_buf()
}

/// The path of binary `bin` of the workspace package `package`, built first as the module documentation says.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    // Held while building, so that tests starting together build once.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(bin) {
        return path.clone();
    }
    let path = profile_dir().join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    if std::env::var_os("CARGO").is_some() || !path.exists() {
        build(package, bin);
    }
    assert!(path.exists(), "{} is missing after building it", path.display());
    built.insert(bin.to_string(), path.clone());
    path
}

/// The `ftpserver` binary.
pub fn ftpserver_binary() -> PathBuf {
    workspace_binary("ftp-server", "ftpserver")
}

/// Whether `key` is one of the variables cargo sets for the crate being run (not cargo's own configuration).
fn describes_the_running_crate(key: &str) -> bool {
    const PREFIXES: [&str; 3] = ["CARGO_PKG_", "CARGO_BIN_EXE_", "CARGO_MANIFEST_"];
    const NAMES: [&str; 6] = [
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "OUT_DIR",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    PREFIXES.iter().any(|p| key.starts_with(p)) || NAMES.contains(&key)
}

/// Builds `bin` of `package` with the cargo running these tests, in the same target directory and profile.
fn build(package: &str, bin: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin, "--manifest-path"]).arg(manifest);
    // Cargo describes the running test crate in the environment (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, ...). Passed
    // on, the nested cargo sees build scripts' watched variables changed (ring's watches CARGO_PKG_NAME) and
    // rebuilds ring and rustls in every test process; and the outer cargo's next build rebuilds them back.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(describes_the_running_crate) {
            cmd.env_remove(&key);
        }
    }
    let dir = profile_dir();
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        if let Some(target) = dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
    }
    let status = cmd.stdin(Stdio::null()).status().unwrap_or_else(|e| panic!("cannot run cargo to build {bin}: {e}"));
    assert!(status.success(), "building {bin} failed: {status}");
}

/// Starts `command` with its standard output piped (and standard input from nowhere) and waits up to `limit` for
/// each of its first `count` lines; the rest of its output is read and dropped, so it never blocks on a full
/// pipe. Returns the child and the lines, or why not, after stopping the child by its PID.
pub fn start_reading_lines(
    mut command: Command,
    count: usize,
    limit: Duration,
) -> Result<(Child, Vec<String>), String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
    let Some(stdout) = child.stdout.take() else {
        stop(&mut child);
        return Err("no standard output to read".to_string());
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        for _ in 0..count {
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
        }
        let _ = io::copy(&mut reader, &mut io::sink());
    });
    let mut lines = Vec::with_capacity(count);
    for _ in 0..count {
        let why = match rx.recv_timeout(limit) {
            Ok(Ok(line)) => {
                lines.push(line);
                continue;
            }
            Ok(Err(e)) => format!("reading the ready line: {e}"),
            Err(_) => format!("no ready line within {limit:?}"),
        };
        stop(&mut child);
        return Err(why);
    }
    Ok((child, lines))
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The address in ftpserver's ready line, `ftpserver listening on ADDR:PORT, root DIR, anonymous: MODE`.
pub fn ready_address(line: &str) -> Option<SocketAddr> {
    let rest = line.trim_end().strip_prefix("ftpserver listening on ")?;
    let (addr, _) = rest.split_once(", root ")?;
    addr.parse().ok()
}
