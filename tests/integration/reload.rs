//! SIGHUP: the config file and the users file are read again. New accounts and changed settings apply to new
//! logins at once, nothing running is dropped, a broken file is refused with one log line while the old settings
//! stay, and SIGHUP never ends the server.

use std::fs;
use std::io::Read;
use std::process::Command;
use std::time::Duration;

use crate::util::{content, data_connect_small_window, password_hash, read_to_end, sha256, wait_until, TestServer};

fn user(name: &str, hash: &str) -> String {
    format!("[[user]]\nname = \"{name}\"\npassword = \"{hash}\"\npermissions = [\"read\", \"write\"]\n")
}

fn sighup(server: &TestServer) {
    let status = Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().expect("kill -HUP");
    assert!(status.success());
}

#[test]
fn sighup_reloads_accounts_and_settings_and_keeps_transfers() {
    let dir = tempfile::tempdir().expect("dir");
    let users = dir.path().join("users.toml");
    let (alice, bob) = (password_hash("wonderland"), password_hash("builder"));
    fs::write(&users, user("alice", &alice)).expect("users");
    let config = dir.path().join("ftpserver.toml");
    fs::write(&config, format!("users = {:?}\nmax-per-ip = 20\n", users.to_str().expect("UTF-8"))).expect("config");
    let server = TestServer::start(&["--config", config.to_str().expect("UTF-8"), "--workers", "2"]);
    let payload = content(8, 8 << 20);
    server.put_file("big.bin", &payload);

    // A download in progress across the reload.
    let mut busy = server.ctl();
    assert_eq!(busy.cmd("USER alice"), 331);
    assert_eq!(busy.cmd("PASS wonderland"), 230);
    let addr = busy.pasv();
    let mut data = data_connect_small_window(addr);
    busy.expect("RETR big.bin", 150);
    let mut got = vec![0u8; 64 * 1024];
    data.read_exact(&mut got).expect("the first 64 KiB");

    // bob does not exist yet.
    let mut c = server.ctl();
    assert_eq!(c.cmd("USER bob"), 331);
    assert_eq!(c.cmd("PASS builder"), 530);

    // A new account and a new limit.
    fs::write(&users, user("alice", &alice) + &user("bob", &bob)).expect("users");
    fs::write(&config, format!("users = {:?}\nmax-per-ip = 4\n", users.to_str().expect("UTF-8"))).expect("config");
    sighup(&server);
    // Both workers take it up (a new session may land on either).
    let adopted = || server.log().matches("configuration 2 in force").count() == 2;
    assert!(wait_until(Duration::from_secs(10), adopted), "{}", server.log());
    let mut b = server.ctl();
    assert_eq!(b.cmd("USER bob"), 331);
    assert_eq!(b.cmd("PASS builder"), 230, "the new account after SIGHUP");
    // The new limit too: with busy, c and b held, max-per-ip 4 (it was 20) admits one more and refuses the next.
    let mut more = Vec::new();
    let refused = (0..6).find(|_| {
        let mut s = crate::util::Ctl::connect_no_greeting(server.addr());
        let code = s.reply().0;
        more.push(s);
        code == 421
    });
    assert_eq!(refused, Some(1), "sessions admitted before the reloaded max-per-ip refused one");
    drop(more);
    // From here on, clients from another address (127.0.0.1's places free up only as the server sees the closes).
    let other = || {
        let addr = server.addr();
        let mut c = crate::util::Ctl::from_stream(
            crate::util::connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), addr).expect("connect"),
        );
        assert_eq!(c.reply().0, 220);
        c
    };

    // The transfer that ran across the reload completes byte-exact.
    got.extend_from_slice(&read_to_end(&mut data));
    assert_eq!(sha256(&got), sha256(&payload));
    assert_eq!(busy.reply().0, 226);

    // A broken config file is refused with a log line; the running configuration stays; the server lives.
    fs::write(&config, "max-per-ip = [\n").expect("config");
    sighup(&server);
    assert!(
        wait_until(Duration::from_secs(10), || server.log().contains("new configuration refused")),
        "{}",
        server.log()
    );
    let mut again = other();
    assert_eq!(again.cmd("USER bob"), 331);
    assert_eq!(again.cmd("PASS builder"), 230, "still served after a broken reload");
    // A broken users file too.
    fs::write(&config, format!("users = {:?}\n", users.to_str().expect("UTF-8"))).expect("config");
    fs::write(&users, "[[user]]\nname = \"carol\"\n").expect("users");
    sighup(&server);
    assert!(wait_until(Duration::from_secs(10), || server.log().matches("new configuration refused").count() == 2));
    assert_eq!(other().cmd("NOOP"), 200);
}
