//! Several servers behind HAProxy, the standard way FTP is scaled out: two nodes on 127.0.0.2 and 127.0.0.3 over
//! one shared root, each trusting the balancer's PROXY headers (`--proxy-from 127.0.0.1`), advertising the
//! balancer's address (`--pasv-address 127.0.0.1`) and a passive port range of its own, and HAProxy on 127.0.0.1
//! in front with one control frontend and one passive frontend per node (`send-proxy-v2` everywhere). Clients
//! connect from 127.0.0.5, so every check can see that the nodes know the client's own address.
//!
//! Passive ports cannot be port 0 here: the balancer must know each node's range in advance. The test draws two
//! free blocks of ten ports from 42000-48999 at run time.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    content, curl_ok, path_str, python_ok, run_bounded, sha256, sha256_file, tool_available, wait_until, TestServer,
};

pub(crate) const CLIENT: &str = "127.0.0.5";
pub(crate) const PASV_SPAN: u16 = 10;

/// Two disjoint blocks of `PASV_SPAN` ports, free on every address the test uses.
fn pasv_blocks() -> [u16; 2] {
    pasv_blocks_in(42000, 49000, &["127.0.0.1", "127.0.0.2", "127.0.0.3"])
}

/// Two disjoint blocks of `PASV_SPAN` ports in `base..end`, free on each of `ips` (tests running at the same
/// time draw from ranges of their own).
pub(crate) fn pasv_blocks_in(base: u16, end: u16, ips: &[&str]) -> [u16; 2] {
    let seed = std::process::id() as u16;
    let mut found = Vec::new();
    let mut lo = base + (seed % ((end - base) / 20)) * 10;
    while found.len() < 2 && lo < end {
        let free = (lo..lo + PASV_SPAN).all(|p| ips.iter().all(|ip| TcpListener::bind((*ip, p)).is_ok()));
        if free {
            found.push(lo);
        }
        lo += PASV_SPAN;
    }
    [found[0], found[1]]
}

/// Whether HAProxy is installed (it has no --version: -v). Missing in CI fails the test; elsewhere it skips.
pub(crate) fn haproxy_available() -> bool {
    let found = Command::new("haproxy").arg("-v").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if found.is_ok_and(|s| s.success()) {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("two_nodes_behind_haproxy: haproxy is required in CI but was not found on PATH");
    }
    eprintln!("SKIP two_nodes_behind_haproxy: haproxy not found on PATH");
    false
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// An HAProxy process, stopped by its PID when dropped. What it printed (servers going down and up, say) is
/// shown when a test fails.
pub(crate) struct Balancer {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let said = fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default();
            eprintln!("haproxy printed:\n{said}");
        }
    }
}

/// Waits (bounded) until the balancer on `control` answers with a node's greeting.
pub(crate) fn wait_for_greeting(control: u16) {
    assert!(
        wait_until(Duration::from_secs(10), || {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", control)) else { return false };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut g = [0u8; 3];
            s.read_exact(&mut g).is_ok() && &g == b"220"
        }),
        "the balancer never greeted"
    );
}

pub(crate) fn haproxy(config: &str) -> Balancer {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("haproxy.cfg");
    fs::write(&path, config).expect("config");
    let check = run_bounded(Command::new("haproxy").args(["-c", "-f", path_str(&path)]), Duration::from_secs(20));
    assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
    let said = fs::File::create(dir.path().join("haproxy.log")).expect("haproxy log");
    let child = Command::new("haproxy")
        .args(["-db", "-f", path_str(&path)])
        .stdin(Stdio::null())
        .stdout(said.try_clone().expect("haproxy log"))
        .stderr(said)
        .spawn()
        .expect("haproxy");
    Balancer { child, dir }
}

/// A GET on the metrics endpoint: (status code, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("metrics connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// The sum of a metric's rows whose labels contain every one of `labels`.
fn metric(body: &str, name: &str, labels: &[&str]) -> u64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

struct Node {
    server: TestServer,
    metrics: SocketAddr,
}

fn node(ip: &str, root: &Path, pasv: u16) -> Node {
    let range = format!("{pasv}-{}", pasv + PASV_SPAN - 1);
    let metrics = format!("{ip}:0");
    let args = [
        "--bind",
        ip,
        "--proxy-from",
        "127.0.0.1",
        "--pasv-address",
        "127.0.0.1",
        "--pasv-ports",
        &range,
        "--metrics",
        &metrics,
        "--anonymous",
        "write",
    ];
    let (server, lines) = TestServer::start_lines(root, &args, 2);
    let metrics = crate::util::metrics_addr(&lines);
    Node { server, metrics }
}

/// The balancer's configuration. Health checks run every 300 ms (a node that stops listening is out within about
/// 600 ms) and a node has 2 s to greet one: HAProxy marks a server that has not yet passed a check down at its first
/// failure, so with a 300 ms allowance one stall of a loaded machine right after start took both nodes out.
pub(crate) fn config(control: u16, nodes: &[(&str, u16, u16)]) -> String {
    let mut c = String::from(
        "global\n    maxconn 2000\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    \
         timeout server 60s\n    timeout check 2s\n    retries 3\n    option redispatch\n\n",
    );
    c += &format!("frontend ftp_control\n    bind 127.0.0.1:{control}\n    default_backend ftp_nodes\n\n");
    c += "backend ftp_nodes\n    balance roundrobin\n    option tcp-check\n    tcp-check expect string 220\n";
    for (i, (ip, port, _)) in nodes.iter().enumerate() {
        c += &format!(
            "    server node{i} {ip}:{port} source 127.0.0.1 send-proxy-v2 check check-send-proxy inter 300 fall 2 \
             rise 2\n"
        );
    }
    for (i, (ip, _, pasv)) in nodes.iter().enumerate() {
        c += &format!(
            "\nfrontend pasv_node{i}\n    bind 127.0.0.1:{pasv}-{}\n    default_backend pasv_node{i}\n\nbackend \
             pasv_node{i}\n    server node{i} {ip} source 127.0.0.1 send-proxy-v2\n",
            pasv + PASV_SPAN - 1
        );
    }
    c
}

pub(crate) const FTPLIB: &str = r#"
import ftplib, sys
port, client, up, name = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ftp = ftplib.FTP(source_address=(client, 0), timeout=30)
ftp.connect("127.0.0.1", port)
ftp.login()
with open(up, "rb") as f:
    ftp.storbinary("STOR " + name, f)
chunks = []
ftp.retrbinary("RETR " + name, chunks.append)
sys.stdout.write(str(len(b"".join(chunks))))
ftp.quit()
"#;

#[test]
fn two_nodes_behind_haproxy() {
    if !haproxy_available() || !tool_available("lftp", "two_nodes_behind_haproxy") {
        return;
    }
    let shared = tempfile::tempdir().expect("shared root");
    let [pasv_a, pasv_b] = pasv_blocks();
    let a = node("127.0.0.2", shared.path(), pasv_a);
    let b = node("127.0.0.3", shared.path(), pasv_b);
    let control = free_port();
    let _lb =
        haproxy(&config(control, &[("127.0.0.2", a.server.port(), pasv_a), ("127.0.0.3", b.server.port(), pasv_b)]));
    wait_for_greeting(control);
    let work = tempfile::tempdir().expect("work");
    let url = format!("ftp://127.0.0.1:{control}");

    // curl, from the client's own address: upload, then download through the next session (the other node).
    let data = content(1, (3 << 20) + 11);
    let up = work.path().join("up.bin");
    fs::write(&up, &data).expect("write");
    curl_ok(&["--interface", CLIENT, "-T", path_str(&up), &format!("{url}/curl.bin")]);
    let down = work.path().join("curl-back.bin");
    curl_ok(&["--interface", CLIENT, "-o", path_str(&down), &format!("{url}/curl.bin")]);
    assert_eq!(sha256_file(&down), sha256(&data), "curl through the balancer");

    // Python's ftplib, passive mode through the passive frontends.
    let ftplib_data = content(2, 777_777);
    let up2 = work.path().join("up2.bin");
    fs::write(&up2, &ftplib_data).expect("write");
    let got = python_ok(FTPLIB, &[&control.to_string(), CLIENT, path_str(&up2), "ftplib.bin"]);
    assert_eq!(got.trim(), ftplib_data.len().to_string());
    assert_eq!(sha256_file(&shared.path().join("ftplib.bin")), sha256(&ftplib_data));

    // lftp: put and get in one session.
    let lftp_data = content(3, 1 << 20);
    let up3 = work.path().join("up3.bin");
    fs::write(&up3, &lftp_data).expect("write");
    let script = format!(
        "set net:socket-bind-ipv4 {CLIENT}; set ftp:prefer-epsv no; set net:max-retries 1; open -p {control} \
         127.0.0.1; user anonymous x; put {} -o lftp.bin; get lftp.bin -o {}; bye",
        path_str(&up3),
        path_str(&work.path().join("lftp-back.bin"))
    );
    let out = run_bounded(Command::new("lftp").args(["-c", &script]), Duration::from_secs(60));
    assert!(out.status.success(), "lftp: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sha256_file(&work.path().join("lftp-back.bin")), sha256(&lftp_data));

    // Both nodes served, and each knows the client by its own address, in its log and in the data checks.
    for (name, n) in [("node A", &a), ("node B", &b)] {
        let log = n.server.log();
        assert!(log.contains(&format!("{CLIENT} logged in")), "{name} log:\n{log}");
        assert!(!log.contains("127.0.0.1 logged in"), "{name} saw the balancer as a client:\n{log}");
        let (code, body) = http_get(n.metrics, "/metrics");
        assert_eq!(code, 200);
        assert!(metric(&body, "ftpserver_logins_total", &["result=\"ok\""]) >= 1, "{name}:\n{body}");
    }
    let bodies: Vec<String> = [&a, &b].iter().map(|n| http_get(n.metrics, "/metrics").1).collect();
    let total = |name: &str, labels: &[&str]| bodies.iter().map(|b| metric(b, name, labels)).sum::<u64>();
    assert_eq!(total("ftpserver_transfers_total", &["direction=\"upload\"", "result=\"ok\""]), 3);
    assert_eq!(total("ftpserver_transfers_total", &["direction=\"download\"", "result=\"ok\""]), 3);
    let moved = (data.len() + ftplib_data.len() + lftp_data.len()) as u64;
    assert_eq!(total("ftpserver_bytes_total", &["direction=\"upload\""]), moved);

    // Draining: a slow download runs on one node when it gets SIGTERM. Its /healthz says 503 at once, the
    // transfer finishes byte-exact, and every new session meanwhile is served by the other node.
    let big = content(4, 24 << 20);
    fs::write(shared.path().join("big.bin"), &big).expect("write");
    let client_ip: Ipv4Addr = CLIENT.parse().expect("ip");
    let logins = |n: &Node| n.server.log().matches(&format!("{CLIENT} logged in")).count();
    let before = (logins(&a), logins(&b));
    let mut ctl = crate::util::Ctl::from_stream(
        crate::util::connect_from(client_ip, SocketAddr::from(([127, 0, 0, 1], control))).expect("connect"),
    );
    assert_eq!(ctl.reply().0, 220);
    ctl.login();
    let pasv = ctl.pasv();
    ctl.send("RETR big.bin");
    let slow = crate::util::data_connect_small_window_from(Some(client_ip), pasv);
    assert_eq!(ctl.reply().0, 150);
    // The node whose log gained the login holds the download.
    assert!(wait_until(Duration::from_secs(5), || (logins(&a), logins(&b)) != before));
    let (busy, idle) = if logins(&a) > before.0 { (&a, &b) } else { (&b, &a) };
    busy.server.terminate();
    assert!(
        wait_until(Duration::from_secs(5), || http_get(busy.metrics, "/healthz").0 == 503),
        "the draining node's /healthz"
    );
    assert_eq!(http_get(idle.metrics, "/healthz").0, 200);
    let started = Instant::now();
    for i in 0..6 {
        let name = format!("during-{i}.bin");
        let body = content(10 + i, 10_000);
        let f = work.path().join(&name);
        fs::write(&f, &body).expect("write");
        curl_ok(&["--interface", CLIENT, "-T", path_str(&f), &format!("{url}/{name}")]);
        assert_eq!(sha256_file(&shared.path().join(&name)), sha256(&body), "upload during the drain");
    }
    let mut slow = slow;
    let mut got = Vec::new();
    slow.read_to_end(&mut got).expect("the draining download");
    assert_eq!(sha256(&got), sha256(&big), "download across the drain");
    assert_eq!(ctl.reply().0, 226);
    eprintln!("6 sessions served by the other node during the drain in {:?}", started.elapsed());
}

// Two nodes uploading into one shared directory at once: temporaries never collide, every STOU gets a name of
// its own across nodes, and every file is published whole.
#[test]
fn shared_root_uploads_from_two_nodes_never_collide() {
    let shared = tempfile::tempdir().expect("shared root");
    let nodes: Vec<TestServer> = ["127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|ip| TestServer::start_in(shared.path(), &["--bind", ip, "--anonymous", "write"]))
        .collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(TestServer::addr).collect();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let addr = addrs[t as usize % 2];
            std::thread::spawn(move || {
                let mut c = crate::util::Ctl::connect(addr);
                c.login();
                let mut sent = Vec::new();
                for i in 0..10 {
                    let body = content(t * 100 + i, 5_000 + (t * 100 + i) as usize);
                    for verb in ["STOR same.bin", "STOU unique.bin"] {
                        let data = c.pasv();
                        c.send(verb);
                        let d = crate::util::data_connect(data);
                        let (code, text) = c.reply();
                        assert_eq!(code, 150, "{verb}: {text}");
                        crate::util::write_and_close(d, &body);
                        let (code, done) = c.reply();
                        assert_eq!(code, 226, "{verb}: {done}");
                        // The 150 names the file meant; the 226 the one made, should another session or node
                        // have taken that name during the upload.
                        if text.starts_with("FILE: ") {
                            let name = done.split("unique file name: ").nth(1).expect("a name in the 226");
                            sent.push((name.trim_end_matches('.').to_string(), sha256(&body)));
                        }
                    }
                }
                sent
            })
        })
        .collect();
    let sent: Vec<(String, String)> = threads.into_iter().flat_map(|t| t.join().expect("uploader")).collect();
    let names: std::collections::BTreeSet<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), sent.len(), "STOU gave one name twice: {sent:?}");
    for (name, hash) in &sent {
        assert_eq!(&sha256_file(&shared.path().join(name.trim_start_matches('/'))), hash, "{name}");
    }
    // The last STOR onto one name left one whole file, and no temporary is left anywhere.
    let same = fs::read(shared.path().join("same.bin")).expect("same.bin");
    assert!(same.len() >= 5_000);
    let leftovers: Vec<String> = fs::read_dir(shared.path())
        .expect("root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ftpupload"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
