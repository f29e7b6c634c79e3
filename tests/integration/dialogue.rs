//! Scripted control-connection dialogues over raw sockets, asserting exact reply codes: what works before login and
//! what needs it, unknown and unimplemented verbs, malformed arguments (missing, NUL, invalid UTF-8), over-long
//! lines, pipelined commands, the two orders in which a passive data connection may arrive, PASV replacing PASV, a
//! data connection that never comes or comes from a stranger, transfers the client breaks off (reset, early close,
//! ABOR, QUIT, a lost control connection), concurrent uploads to one name, the connection limit and the idle
//! timeout.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};

use crate::util::{
    closed_without_data, connect_from, content, data_connect, data_connect_small_window, dir_names, read_to_end, reset,
    sha256, wait_until, write_and_close, Ctl, TestServer, IO_TIMEOUT,
};

#[test]
fn before_login_only_session_commands_work() {
    let server = TestServer::start(&[]);
    server.put_file("f.txt", b"hello");
    let mut c = server.ctl();

    for line in ["LIST", "NLST", "RETR f.txt", "STOR x", "CWD /", "PWD", "PASV", "EPSV", "SIZE f.txt", "DELE f.txt"] {
        c.expect(line, 530);
    }
    // A verb that needs login and is malformed is still told to log in first.
    c.expect("RETR", 530);

    let feat = c.expect("FEAT", 211);
    assert!(feat.lines().any(|l| l.trim() == "UTF8"), "FEAT does not list UTF8:\n{feat}");
    assert!(feat.lines().any(|l| l.trim() == "EPSV"), "FEAT does not list EPSV:\n{feat}");
    c.expect("SYST", 215);
    c.expect("NOOP", 200);
    c.expect("HELP", 214);
    c.expect("OPTS UTF8 ON", 200);
    c.expect("OPTS UTF8", 200);
    c.expect("STAT", 211);

    // USER is 331 whatever the name, so replies never tell which accounts exist.
    c.expect("USER root", 331);
    c.expect("PASS secret", 530);
    c.expect("USER nosuchuser", 331);
    c.expect("PASS", 530);
    c.expect("PASS again", 503);
    c.expect("USER ftp", 331);
    c.expect("PASS any@where", 230);
    c.expect("PWD", 257);
    c.expect("USER anonymous", 503);
    assert!(server.root().join("f.txt").exists(), "DELE before login removed the file");
    c.expect("QUIT", 221);
    assert!(c.expect_closed().is_empty());
}

#[test]
fn unknown_unimplemented_and_malformed_commands() {
    let server = TestServer::start(&[]);
    server.put_file("here.txt", b"here");
    let mut c = server.ctl();
    // Security commands are a later feature: known verbs, not implemented, before and after login.
    c.expect("AUTH TLS", 502);
    c.login();
    c.expect("AUTH TLS", 502);
    c.expect("PBSZ 0", 502);
    c.expect("PROT P", 502);
    c.expect("XYZZY", 500);
    c.expect("SITE CHMOD 777 here.txt", 500);
    c.expect("", 500);
    c.expect("R3TR x", 500);

    c.expect("RETR", 501);
    c.expect("CWD", 501);
    c.expect("MKD", 501);
    c.expect("PWD extra", 501);
    c.expect("TYPE X", 504);
    c.expect("MODE B", 504);
    c.expect("STRU R", 504);
    c.expect("MODE S", 200);
    c.expect("STRU F", 200);
    c.expect("ACCT x", 202);
    c.expect("ALLO 100", 202);
    c.expect("SIZE missing", 550);
    c.expect("SIZE here.txt", 213);
    c.expect("CWD missing", 550);
    c.expect("DELE missing", 550);

    let addr = c.pasv();
    c.expect("RETR missing.bin", 550);
    // The listener opened by PASV is still there for the next command.
    let mut data = data_connect(addr);
    c.expect("RETR here.txt", 150);
    assert_eq!(read_to_end(&mut data), b"here");
    assert_eq!(c.reply().0, 226);
    c.expect("NOOP", 200);
}

#[test]
fn transfer_without_passive_is_425_at_once() {
    let server = TestServer::start(&[]);
    server.put_file("f.txt", b"data");
    let mut c = server.login();
    c.expect("RETR f.txt", 425);
    c.expect("STOR g.txt", 425);
    c.expect("LIST", 425);
    c.expect("NLST", 425);
    c.expect("NOOP", 200);
    assert!(!server.root().join("g.txt").exists());
    assert!(dir_names(server.root()).iter().all(|n| !n.ends_with(".part")));
}

#[test]
fn nul_byte_and_invalid_utf8_arguments_are_501() {
    let server = TestServer::start(&[]);
    server.put_file("a", b"a");
    let mut c = server.login();

    c.send_bytes(b"CWD a\0b\r\n");
    assert_eq!(c.reply().0, 501, "NUL byte in an argument");
    c.expect("NOOP", 200);
    c.send_bytes(b"DELE a\0\r\n");
    assert_eq!(c.reply().0, 501, "trailing NUL byte in an argument");
    assert!(server.root().join("a").exists(), "DELE with a NUL removed the file");

    c.send_bytes(b"MKD \xff\xfe\xfd\r\n");
    assert_eq!(c.reply().0, 501, "invalid UTF-8 in an argument");
    c.send_bytes(b"CWD caf\xc3\r\n");
    assert_eq!(c.reply().0, 501, "truncated UTF-8 sequence in an argument");
    c.expect("NOOP", 200);
    assert_eq!(c.expect("PWD", 257), "\"/\" is the current directory.");
    assert_eq!(dir_names(server.root()), vec!["a".to_string()], "a malformed MKD created something");
}

#[test]
fn line_of_exactly_the_limit_is_accepted() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    // 4096 bytes before the line end: accepted and parsed (the path does not exist, hence 550).
    let path: String = (0..20).map(|i| format!("/{}", char::from(b'a' + i as u8).to_string().repeat(251))).collect();
    let line = format!("CWD {}", &path[..4096 - 4]);
    assert_eq!(line.len(), 4096);
    c.expect(&line, 550);
    // One byte more is too long.
    let line = format!("CWD {}", &path[..4096 - 3]);
    assert_eq!(line.len(), 4097);
    c.expect(&line, 500);
    c.expect("NOOP", 200);
}

#[test]
fn overlong_line_is_refused_and_its_tail_never_runs() {
    let server = TestServer::start(&[]);
    server.put_file("victim", b"still here");
    let mut long = server.login();
    let mut other = server.login();

    // "NOOP " plus filler makes exactly 4096 bytes; everything after the limit, including a command smuggled behind
    // a bare CR, belongs to the same too-long line because no LF has come yet.
    let mut line = b"NOOP ".to_vec();
    line.resize(4096, b'x');
    line.extend_from_slice(b"\rDELE victim\r");
    line.resize(10 * 1024, b'y');
    long.send_bytes(&line);
    let (code, text) = long.reply();
    assert_eq!(code, 500, "a 10 KiB line without a newline: {text}");

    // While that line is still unfinished, other sessions are served.
    other.expect("NOOP", 200);
    other.expect("PWD", 257);

    // More of the same line, another smuggled command, then at last the line end.
    long.send_bytes(b"\rDELE victim\rDELE victim");
    long.send_bytes(&vec![b'z'; 8 * 1024]);
    // The line end and the next command arrive together: the command after the newline runs, and its reply is
    // the very next one, so nothing in the discarded line was executed.
    long.send_bytes(b"\rDELE victim\r\nNOOP\r\n");
    assert_eq!(long.reply().0, 200, "the command after the too-long line");
    long.expect("PWD", 257);
    assert_eq!(fs::read(server.root().join("victim")).expect("victim"), b"still here");
    long.expect("DELE victim", 250);
    assert!(!server.root().join("victim").exists());
    other.expect("NOOP", 200);
}

#[test]
fn passive_data_connection_before_or_after_the_command() {
    let server = TestServer::start(&[]);
    let payload = content(3, 100_000);
    server.put_file("f.bin", &payload);
    let mut c = server.login();
    c.expect("TYPE I", 200);

    // Connect first, as Python's ftplib does.
    let addr = c.pasv();
    let mut data = data_connect(addr);
    c.expect("SIZE f.bin", 213);
    c.expect("RETR f.bin", 150);
    assert_eq!(sha256(&read_to_end(&mut data)), sha256(&payload));
    assert_eq!(c.reply().0, 226);

    // Command first: the server waits for the connection, then sends 150.
    let addr = c.pasv();
    c.send("RETR f.bin");
    let mut data = data_connect(addr);
    assert_eq!(c.reply().0, 150);
    assert_eq!(sha256(&read_to_end(&mut data)), sha256(&payload));
    assert_eq!(c.reply().0, 226);

    // The same with EPSV, in both orders.
    let addr = c.epsv();
    let mut data = data_connect(addr);
    c.expect("RETR f.bin", 150);
    assert_eq!(sha256(&read_to_end(&mut data)), sha256(&payload));
    assert_eq!(c.reply().0, 226);
    let addr = c.epsv();
    c.send("RETR f.bin");
    let mut data = data_connect(addr);
    assert_eq!(c.reply().0, 150);
    assert_eq!(sha256(&read_to_end(&mut data)), sha256(&payload));
    assert_eq!(c.reply().0, 226);

    // An upload with the connection made first, and a listing with the command first.
    let addr = c.pasv();
    let data = data_connect(addr);
    c.expect("STOR up.bin", 150);
    write_and_close(data, &payload);
    assert_eq!(c.reply().0, 226);
    assert_eq!(sha256(&fs::read(server.root().join("up.bin")).expect("up.bin")), sha256(&payload));
    let addr = c.pasv();
    c.send("NLST");
    let mut data = data_connect(addr);
    assert_eq!(c.reply().0, 150);
    let names = String::from_utf8(read_to_end(&mut data)).expect("UTF-8 names");
    assert!(names.ends_with("\r\n"), "NLST lines end with CRLF: {names:?}");
    let mut names: Vec<&str> = names.split_terminator("\r\n").collect();
    names.sort_unstable();
    assert_eq!(names, ["f.bin", "up.bin"]);
    assert_eq!(c.reply().0, 226);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = TestServer::start(&[]);
    server.put_file("big.bin", &content(4, 4 << 20));
    let mut c = server.login();
    c.send_bytes(b"NOOP\r\nPWD\r\nCWD missing\r\nSYST\r\nTYPE I\r\n");
    let codes: Vec<u16> = (0..5).map(|_| c.reply().0).collect();
    assert_eq!(codes, [200, 257, 550, 215, 200]);

    // Commands sent during a transfer wait for it; only then do they run, in order.
    let addr = c.pasv();
    let mut data = data_connect_small_window(addr);
    c.expect("RETR big.bin", 150);
    c.send_bytes(b"MKD made\r\nPWD\r\nDELE big.bin\r\n");
    let mut first = vec![0u8; 64 * 1024];
    data.read_exact(&mut first).expect("the first 64 KiB");
    assert!(!server.root().join("made").exists(), "MKD ran while the transfer was still running");
    let rest = read_to_end(&mut data);
    assert_eq!(first.len() + rest.len(), 4 << 20);
    let codes: Vec<u16> = (0..4).map(|_| c.reply().0).collect();
    assert_eq!(codes, [226, 257, 257, 250]);
    assert!(server.root().join("made").is_dir());
    assert!(!server.root().join("big.bin").exists());
}

#[test]
fn data_connection_not_made_in_time_is_425() {
    let server = TestServer::start(&["--data-timeout", "1"]);
    server.put_file("f.txt", b"never sent");
    let mut c = server.login();
    let addr = c.pasv();
    c.send("RETR f.txt");
    let (code, text) = c.reply();
    assert_eq!(code, 425, "RETR whose data connection never came: {text}");
    c.expect("NOOP", 200);
    // The listener is gone with it.
    match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "connecting after the timeout: {e}"),
        Ok(mut late) => {
            late.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
            closed_without_data(&mut late).unwrap_or_else(|e| panic!("a late data connection was used: {e}"));
        }
    }
    // An upload that never gets its connection leaves nothing behind.
    c.pasv();
    c.send("STOR never.bin");
    assert_eq!(c.reply().0, 425);
    assert_eq!(dir_names(server.root()), ["f.txt"]);
}

#[test]
fn directories_and_files_are_told_apart() {
    let server = TestServer::start(&[]);
    server.put_file("dir/inner.txt", b"inner");
    server.put_file("file.txt", b"old content");
    let mut c = server.login();
    c.pasv();
    c.expect("RETR dir", 550);
    c.expect("STOR dir", 550);
    c.expect("SIZE dir", 550);
    c.expect("DELE dir", 550);
    c.expect("RMD dir", 550);
    c.expect("MKD dir", 550);
    c.expect("CWD file.txt", 550);
    c.expect("RMD file.txt", 550);
    assert_eq!(fs::read(server.root().join("dir/inner.txt")).expect("inner"), b"inner");

    // STOR replaces an existing file as a whole.
    let data = data_connect(c.pasv());
    c.expect("STOR file.txt", 150);
    write_and_close(data, b"new");
    assert_eq!(c.reply().0, 226);
    assert_eq!(fs::read(server.root().join("file.txt")).expect("file.txt"), b"new");
    c.expect("DELE dir/inner.txt", 250);
    c.expect("RMD dir", 250);
    assert_eq!(dir_names(server.root()), ["file.txt"]);
}

#[test]
fn second_pasv_replaces_the_first() {
    let server = TestServer::start(&[]);
    server.put_file("f.txt", b"payload");
    let mut c = server.login();
    let first = c.pasv();
    let second = c.pasv();
    assert_ne!(first.port(), second.port(), "the second PASV reused the first port");

    // The first listener is gone: the connection is refused, or accepted by the dying socket and ended at once.
    match TcpStream::connect_timeout(&first, IO_TIMEOUT) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "connecting to the old port: {e}"),
        Ok(mut old) => {
            old.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
            closed_without_data(&mut old).unwrap_or_else(|e| panic!("the old passive port stayed usable: {e}"));
        }
    }
    c.send("RETR f.txt");
    let mut data = data_connect(second);
    assert_eq!(c.reply().0, 150);
    assert_eq!(read_to_end(&mut data), b"payload");
    assert_eq!(c.reply().0, 226);
    c.expect("NOOP", 200);
}

#[test]
fn data_connection_from_another_address_is_refused() {
    let server = TestServer::start(&[]);
    server.put_file("secret.txt", b"for the session's owner only");
    let mut c = server.login();
    let addr = c.pasv();
    c.send("RETR secret.txt");

    // A stranger (another loopback address) connects first: the server must drop it and send it nothing.
    let mut stranger = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr)
        .unwrap_or_else(|e| panic!("connecting from 127.0.0.2 to {addr}: {e}"));
    closed_without_data(&mut stranger).unwrap_or_else(|e| panic!("the stranger's data connection was used: {e}"));
    // The transfer has not started: the next reply answers NOOP, no 150 came before it.
    c.expect("NOOP", 200);

    // The owner's connection still works on the same listener.
    let mut data = data_connect(addr);
    assert_eq!(c.reply().0, 150);
    assert_eq!(read_to_end(&mut data), b"for the session's owner only");
    assert_eq!(c.reply().0, 226);
}

#[test]
fn upload_reset_by_the_client_leaves_nothing() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    let addr = c.pasv();
    let mut data = data_connect(addr);
    c.expect("STOR broken.bin", 150);
    std::io::Write::write_all(&mut data, &content(5, 256 * 1024)).expect("sending part of the upload");
    reset(data);
    let (code, text) = c.reply();
    assert_eq!(code, 426, "upload reset mid-way: {text}");
    let clean = wait_until(IO_TIMEOUT, || dir_names(server.root()).is_empty());
    assert!(clean, "files left after a reset upload: {:?}", dir_names(server.root()));
    c.expect("NOOP", 200);
}

#[test]
fn download_closed_early_by_the_client_is_426() {
    let server = TestServer::start(&[]);
    server.put_file("big.bin", &content(6, 8 << 20));
    let mut c = server.login();
    let addr = c.pasv();
    let mut data = data_connect_small_window(addr);
    c.expect("RETR big.bin", 150);
    let mut buf = vec![0u8; 64 * 1024];
    data.read_exact(&mut buf).expect("the first 64 KiB");
    // Unread data is waiting, so the close is a reset and the server's next write fails.
    drop(data);
    let (code, text) = c.reply();
    assert_eq!(code, 426, "download closed early: {text}");
    c.expect("NOOP", 200);
    // The session is still usable for a transfer.
    let addr = c.pasv();
    let mut data = data_connect(addr);
    c.expect("LIST", 150);
    let listing = String::from_utf8(read_to_end(&mut data)).expect("UTF-8 listing");
    assert!(listing.contains("big.bin"), "{listing}");
    assert_eq!(c.reply().0, 226);
}

#[test]
fn abor_during_transfers() {
    let server = TestServer::start(&[]);
    server.put_file("big.bin", &content(8, 8 << 20));
    let mut c = server.login();
    c.expect("ABOR", 225);

    // Download: 426 for the transfer, then 226 for the ABOR.
    let addr = c.pasv();
    let mut data = data_connect_small_window(addr);
    c.expect("RETR big.bin", 150);
    let mut buf = vec![0u8; 32 * 1024];
    data.read_exact(&mut buf).expect("the first 32 KiB");
    let (code, text) = c.cmd_full("ABOR");
    assert_eq!(code, 426, "ABOR during RETR, first reply: {text}");
    assert_eq!(c.reply().0, 226, "ABOR during RETR, second reply");
    drop(data);
    c.expect("NOOP", 200);

    // Upload: the same replies, and neither the target nor a temporary file remains.
    let addr = c.pasv();
    let mut data = data_connect(addr);
    c.expect("STOR aborted.bin", 150);
    std::io::Write::write_all(&mut data, &content(9, 100_000)).expect("sending part of the upload");
    let (code, text) = c.cmd_full("ABOR");
    assert_eq!(code, 426, "ABOR during STOR, first reply: {text}");
    assert_eq!(c.reply().0, 226, "ABOR during STOR, second reply");
    drop(data);
    let clean = wait_until(IO_TIMEOUT, || dir_names(server.root()) == ["big.bin"]);
    assert!(clean, "files after an aborted upload: {:?}", dir_names(server.root()));

    // ABOR with a passive listener but no transfer: 225, and the session goes on.
    c.pasv();
    c.expect("ABOR", 225);
    c.expect("ABOR", 225);
    c.expect("NOOP", 200);
}

#[test]
fn abor_after_telnet_interrupt_and_synch() {
    // Clients that follow RFC 959 to the letter send Telnet IP and Synch (IAC IP IAC DM) before ABOR.
    let server = TestServer::start(&[]);
    server.put_file("big.bin", &content(11, 8 << 20));
    let mut c = server.login();
    let mut data = data_connect_small_window(c.pasv());
    c.expect("RETR big.bin", 150);
    let mut buf = vec![0u8; 32 * 1024];
    data.read_exact(&mut buf).expect("the first 32 KiB");
    c.send_bytes(b"\xff\xf4\xff\xf2ABOR\r\n");
    let codes: Vec<u16> = (0..2).map(|_| c.reply().0).collect();
    assert_eq!(codes, [426, 226]);
    drop(data);
    c.expect("NOOP", 200);
}

#[test]
fn quit_during_a_transfer_waits_for_it() {
    let server = TestServer::start(&[]);
    let payload = content(12, 4 << 20);
    server.put_file("big.bin", &payload);
    let mut c = server.login();
    let mut data = data_connect_small_window(c.pasv());
    c.expect("RETR big.bin", 150);
    c.send("QUIT");
    let received = read_to_end(&mut data);
    assert_eq!(sha256(&received), sha256(&payload), "download interrupted by QUIT");
    let replies = c.expect_closed();
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [226, 221], "{replies:?}");
}

#[test]
fn control_connection_lost_during_upload_leaves_nothing() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    let mut data = data_connect(c.pasv());
    c.expect("STOR orphan.bin", 150);
    std::io::Write::write_all(&mut data, &content(13, 200_000)).expect("sending part of the upload");
    assert!(
        wait_until(IO_TIMEOUT, || dir_names(server.root()).iter().any(|n| n.ends_with(".part"))),
        "no temporary file while the upload runs: {:?}",
        dir_names(server.root())
    );
    drop(c);
    let clean = wait_until(IO_TIMEOUT, || dir_names(server.root()).is_empty());
    assert!(clean, "files left after the control connection was lost: {:?}", dir_names(server.root()));
    // The server closes the orphaned data connection too.
    let mut rest = Vec::new();
    match data.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "the orphaned data connection: {e}"),
    }
    let mut other = server.login();
    other.expect("NOOP", 200);
}

#[test]
fn uploads_to_the_same_name_at_once_both_complete() {
    let server = TestServer::start(&[]);
    let (a_bytes, b_bytes) = (content(14, 300_000), content(15, 300_001));
    let mut a = server.login();
    let mut b = server.login();
    let a_data = data_connect(a.pasv());
    let b_data = data_connect(b.pasv());
    a.expect("STOR same.bin", 150);
    b.expect("STOR same.bin", 150);
    write_and_close(a_data, &a_bytes);
    write_and_close(b_data, &b_bytes);
    assert_eq!(a.reply().0, 226);
    assert_eq!(b.reply().0, 226);
    let stored = sha256(&fs::read(server.root().join("same.bin")).expect("same.bin"));
    assert!(stored == sha256(&a_bytes) || stored == sha256(&b_bytes), "same.bin is a mix of both uploads");
    assert_eq!(dir_names(server.root()), ["same.bin"]);

    // An upload into a folder that does not exist is refused before anything is created.
    a.pasv();
    a.expect("STOR no/such/dir/x.bin", 550);
    assert_eq!(dir_names(server.root()), ["same.bin"]);
}

#[test]
fn connection_limit_refuses_with_421() {
    let server = TestServer::start(&["--max-connections", "2"]);
    let mut first = server.ctl();
    let mut second = server.login();
    let mut third = Ctl::connect_no_greeting(server.addr());
    let (code, text) = third.reply();
    assert_eq!(code, 421, "third connection over a limit of two: {text}");
    assert!(third.expect_closed().is_empty());
    first.expect("NOOP", 200);
    second.expect("PWD", 257);

    // Once one leaves, a newcomer is served.
    first.expect("QUIT", 221);
    assert!(first.expect_closed().is_empty());
    let mut fourth = server.ctl();
    fourth.expect("NOOP", 200);
}

#[test]
fn idle_sessions_time_out_but_running_transfers_do_not() {
    let server = TestServer::start(&["--idle-timeout", "1"]);
    let payload = content(10, 16 << 20);
    server.put_file("big.bin", &payload);

    // A starts a download and then stops reading: its session is busy, not idle.
    let mut busy = server.login();
    let addr = busy.pasv();
    let mut data = data_connect_small_window(addr);
    busy.expect("RETR big.bin", 150);

    // B logs in after A's last command and then does nothing; C never logs in.
    let mut idle = server.login();
    let mut anonymous = server.ctl();
    let replies = idle.expect_closed();
    assert_eq!(replies.first().map(|r| r.0), Some(421), "idle session: {replies:?}");
    assert_eq!(replies.len(), 1, "idle session: {replies:?}");
    let replies = anonymous.expect_closed();
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [421], "session never logged in: {replies:?}");

    // B's timeout has passed, so A's would have too: A is still there and its transfer still running.
    let (code, status) = busy.cmd_full("STAT");
    assert_eq!(code, 211, "STAT during the transfer: {status}");
    assert!(status.contains("Transfer in progress"), "A's transfer is no longer running:\n{status}");
    let received = read_to_end(&mut data);
    assert_eq!(received.len(), payload.len());
    assert_eq!(sha256(&received), sha256(&payload));
    assert_eq!(busy.reply().0, 226);
    // Now idle, A times out too.
    let replies = busy.expect_closed();
    assert_eq!(replies.iter().map(|r| r.0).collect::<Vec<_>>(), [421], "A after its transfer: {replies:?}");
}

// A data connection accepted in the same loop turn as the next EPSV: the session learns of the connection before
// it reads the EPSV, so the old connection is dropped and the new listener stays open. (Had the two arrived the
// other way round, the stale connection would have closed the new listener and the client's connect to the
// advertised port would be refused.) Repeated, because it takes both to land in one turn.
#[test]
fn a_data_connection_and_the_next_epsv_in_one_turn_keep_the_new_listener() {
    let server = TestServer::start(&[]);
    let mut c = server.login();
    for round in 0..200 {
        let addr = c.epsv();
        let _first = crate::util::data_connect(addr);
        c.send("EPSV");
        let (code, text) = c.reply();
        assert_eq!(code, 229, "round {round}: {text}");
        let port: u16 = text
            .split("|||")
            .nth(1)
            .and_then(|t| t.split('|').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("round {round}: no port in {text:?}"));
        let second = TcpStream::connect(("127.0.0.1", port));
        assert!(second.is_ok(), "round {round}: the advertised port {port} refused: {second:?}");
    }
    assert_eq!(c.cmd("NOOP"), 200);
}
