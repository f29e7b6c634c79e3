//! `--hook`: the command runs after each finished event with the event in its environment, off the loop; an
//! upload's hook finds the file published; a hook that hangs is killed; a full queue drops events with a log line.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::util::{content, wait_until, TestServer};

/// A hook script writing its FTP_* environment (and, for an upload, the published file's size) to a file of its
/// own in `out` (hooks run several at once). The record appears whole (written aside, then renamed), so a test
/// that sees it knows the hook is done with the file.
fn recorder(dir: &Path, out: &Path) -> String {
    fs::create_dir_all(out).expect("events folder");
    let script = dir.join("hook.sh");
    let text = format!(
        "#!/bin/sh\nf=$(mktemp -p {})\n{{ env | grep '^FTP_' | sort; if [ \"$FTP_EVENT\" = upload ]; then echo \
         \"SIZE=$(stat -c %s \"$FTP_FILE\")\"; fi; }} > \"$f.part\"\nmv \"$f.part\" \"$f\"\necho hook says hello\n",
        out.display()
    );
    fs::write(&script, text).expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    script.to_str().expect("UTF-8").to_string()
}

/// The recorded events: each a list of KEY=VALUE lines.
fn events(out: &Path) -> Vec<Vec<String>> {
    fs::read_dir(out)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".part"))
                .map(|e| fs::read_to_string(e.path()).unwrap_or_default().lines().map(str::to_string).collect())
                .filter(|e: &Vec<String>| !e.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn find<'a>(events: &'a [Vec<String>], kind: &str) -> &'a Vec<String> {
    events
        .iter()
        .find(|e| e.contains(&format!("FTP_EVENT={kind}")))
        .unwrap_or_else(|| panic!("no {kind} event in {events:?}"))
}

#[test]
fn hooks_see_every_event_in_their_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("events");
    let hook = recorder(dir.path(), &out);
    let server = TestServer::start(&["--hook", &hook]);
    let mut c = server.login();
    let port = c.stream().local_addr().expect("addr").port();
    let mut client = server.client();
    let data = content(3, 123_457);
    client.stor("up.bin", &mut &data[..]).expect("STOR");
    // The hook runs off the loop, later; the file is not touched again until it has run.
    let uploaded = || events(&out).iter().any(|e| e.contains(&"FTP_EVENT=upload".to_string()));
    assert!(wait_until(Duration::from_secs(10), uploaded));
    let mut back = Vec::new();
    client.retr("up.bin", &mut back).expect("RETR");
    for (cmd, code) in
        [("MKD d", 257), ("RNFR up.bin", 350), ("RNTO d/moved.bin", 250), ("DELE d/moved.bin", 250), ("RMD d", 250)]
    {
        assert_eq!(c.cmd(cmd), code, "{cmd}");
    }
    assert_eq!(c.cmd("QUIT"), 221);
    drop(client);
    let kinds = ["login", "upload", "download", "mkdir", "rename", "delete", "rmdir", "logout"];
    let all_there = || {
        let e = events(&out);
        kinds.iter().all(|k| e.iter().any(|ev| ev.contains(&format!("FTP_EVENT={k}"))))
            && e.iter().filter(|ev| ev.contains(&"FTP_EVENT=logout".to_string())).count() == 2
    };
    assert!(wait_until(Duration::from_secs(10), all_there), "{:?}", events(&out));
    let e = events(&out);
    let root = server.root().canonicalize().expect("root");
    let up = find(&e, "upload");
    for want in [
        "FTP_USER=anonymous".to_string(),
        "FTP_PATH=/up.bin".to_string(),
        format!("FTP_FILE={}", root.join("up.bin").display()),
        format!("FTP_BYTES={}", data.len()),
        "FTP_RESULT=ok".to_string(),
        // The upload's hook ran after the file was published, whole.
        format!("SIZE={}", data.len()),
    ] {
        assert!(up.contains(&want), "{want} not in {up:?}");
    }
    assert!(up.iter().any(|l| l.starts_with("FTP_PEER=127.0.0.1:")), "{up:?}");
    let rename = find(&e, "rename");
    assert!(
        rename.contains(&"FTP_PATH=/up.bin".to_string()) && rename.contains(&"FTP_TARGET=/d/moved.bin".to_string())
    );
    assert!(find(&e, "delete").contains(&"FTP_PATH=/d/moved.bin".to_string()));
    assert!(find(&e, "mkdir").contains(&"FTP_PATH=/d".to_string()));
    assert!(e
        .iter()
        .any(|ev| ev.contains(&format!("FTP_PEER=127.0.0.1:{port}")) && ev.contains(&"FTP_EVENT=logout".to_string())));
    // What the hook printed is in the log.
    assert!(wait_until(Duration::from_secs(5), || server.log().contains("hook says hello")), "{}", server.log());
}

#[test]
fn slow_hooks_never_hold_the_loop_and_are_killed_at_their_timeout() {
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("slow.sh");
    fs::write(&script, "#!/bin/sh\nsleep 30\n").expect("script");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    let server =
        TestServer::start(&["--hook", script.to_str().expect("UTF-8"), "--hook-jobs", "1", "--hook-timeout", "0.5"]);
    let mut c = server.login();
    // 100 events for one slow hook thread: the queue (64) overflows; the session is answered at once all along.
    for i in 0..100 {
        assert_eq!(c.cmd(&format!("MKD d{i}")), 257);
    }
    assert_eq!(c.cmd("NOOP"), 200);
    assert!(wait_until(Duration::from_secs(10), || server.log().contains("killed after 500ms")), "{}", server.log());
    assert!(server.log().contains("hook queue full"), "{}", server.log());
}

// --xferlog: one wu-ftpd style line per finished transfer, written off the loop.
#[test]
fn xferlog_lines_for_uploads_and_downloads() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("xferlog");
    let server = TestServer::start(&["--xferlog", log.to_str().expect("UTF-8")]);
    let mut client = server.client();
    let data = content(6, 54_321);
    client.stor("x y.bin", &mut &data[..]).expect("STOR");
    let mut back = Vec::new();
    client.retr("x y.bin", &mut back).expect("RETR");
    let two = || fs::read_to_string(&log).unwrap_or_default().lines().count() == 2;
    assert!(wait_until(Duration::from_secs(5), two), "{:?}", fs::read_to_string(&log));
    let text = fs::read_to_string(&log).expect("xferlog");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    let root = server.root().canonicalize().expect("root");
    for (fields, direction) in lines.iter().zip(["i", "o"]) {
        assert_eq!(fields.len(), 18, "{fields:?}");
        assert_eq!(fields[6], "127.0.0.1");
        assert_eq!(fields[7], data.len().to_string());
        assert_eq!(fields[8], format!("{}/x_y.bin", root.display()));
        assert_eq!((fields[9], fields[11], fields[12], fields[13]), ("b", direction, "a", "anonymous"));
        assert_eq!(fields[17], "c");
    }
}
