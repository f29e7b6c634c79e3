//! The S3 client (`ftp_server::s3`) against a live three-node Garage cluster on 127.0.0.2-4, started by
//! `tests/garage/cluster.sh`.
//!
//! The tests share one cluster: the first to need it starts it, the last to finish stops it (so it may start more
//! than once if the tests run one at a time); if the test process is killed first, the script's watchdog stops it. Each test works under its own key prefix. Garage must be
//! installed: these tests never skip, they fail with the command that installs it (the install step of
//! `.ci/run`). Every wait is bounded: the script polls with deadlines and runs under `run_bounded`.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ftp_server::s3::{Client, ClientConfig, Credentials, Error, Location, Part, MIN_PART_SIZE};
use tempfile::TempDir;

use crate::util::{content, run_bounded, sha256, ContentReader, HashWriter};

/// Where `.ci/run` installs Garage, relative to the home directory.
const GARAGE_CACHE_BIN: &str = ".cache/ftp-ci/garage/bin/garage";

/// How long starting the cluster may take in all (the script bounds each of its own waits too).
const START_LIMIT: Duration = Duration::from_secs(240);

/// How long stopping or restarting a node may take.
const NODE_LIMIT: Duration = Duration::from_secs(120);

// ---- the shared cluster ----------------------------------------------------------------------------------------

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/garage/cluster.sh")
}

/// The garage binary: `$GARAGE_BIN`, the CI cache, or PATH. Missing, the test fails saying how to install it.
fn garage_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("GARAGE_BIN") {
        return PathBuf::from(bin);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let cached = Path::new(&home).join(GARAGE_CACHE_BIN);
        if cached.exists() {
            return cached;
        }
    }
    let on_path = Command::new("garage").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        on_path,
        "the S3 tests need Garage and it is not installed: run the install step of .ci/run \
         (cargo install garage --version 2.5.0 --locked --root ~/.cache/ftp-ci/garage), or set GARAGE_BIN"
    );
    PathBuf::from("garage")
}

/// The first port base (S3 API on it, RPC on it + 1) free on all three node addresses.
fn free_port_base() -> u16 {
    if let Some(base) = std::env::var("GARAGE_PORT_BASE").ok().and_then(|v| v.parse().ok()) {
        return base;
    }
    let start = std::process::id() as usize;
    for k in 0..1200 {
        let base = 20_000 + 10 * ((start + k) % 1200) as u16;
        let free = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            .iter()
            .all(|ip| (0..2).all(|d| TcpListener::bind((*ip, base + d)).is_ok()));
        if free {
            return base;
        }
    }
    panic!("no free port base for the Garage cluster between 20000 and 32000");
}

pub(crate) struct Cluster {
    garage: PathBuf,
    dir: TempDir,
    port_base: u16,
    env: HashMap<String, String>,
}

impl Cluster {
    fn start() -> Cluster {
        // Before anything exists to clean up: without Garage the test fails here, saying how to install it.
        let garage = garage_bin();
        let dir = tempfile::Builder::new().prefix("ftp-s3-garage-").tempdir().expect("temp dir for the cluster");
        let port_base = free_port_base();
        let mut cluster = Cluster { garage, dir, port_base, env: HashMap::new() };
        // If the start fails or panics, dropping `cluster` stops whatever nodes did start.
        let started = Instant::now();
        let out = cluster.run(&["start"], START_LIMIT);
        assert!(
            out.status.success(),
            "cluster.sh start failed ({}):\n{}\nnode logs in {}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            cluster.dir.path().display()
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line.split_once('=') {
                cluster.env.insert(k.to_string(), v.to_string());
            }
        }
        eprintln!("garage cluster up in {:?} on port base {port_base}", started.elapsed());
        cluster
    }

    fn run(&self, args: &[&str], limit: Duration) -> std::process::Output {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).arg(args[0]).arg(self.dir.path()).args(&args[1..]);
        cmd.env("GARAGE_BIN", &self.garage).env("GARAGE_PORT_BASE", self.port_base.to_string());
        // Should this process die before it stops the cluster, the script's watchdog stops it.
        cmd.env("GARAGE_OWNER_PID", std::process::id().to_string());
        run_bounded(&mut cmd, limit)
    }

    pub(crate) fn var(&self, name: &str) -> &str {
        self.env.get(name).unwrap_or_else(|| panic!("cluster.sh printed no {name}"))
    }

    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.var("GARAGE_S3_ENDPOINTS").split_whitespace().map(str::to_string).collect()
    }

    pub(crate) fn credentials(&self) -> Credentials {
        Credentials::new(self.var("AWS_ACCESS_KEY_ID"), self.var("AWS_SECRET_ACCESS_KEY"))
    }

    fn location(&self, endpoint: &str, prefix: &str) -> Location {
        let url = format!(
            "s3://{}/{prefix}?endpoint={endpoint}&region={}",
            self.var("GARAGE_BUCKET"),
            self.var("GARAGE_S3_REGION")
        );
        url.parse().unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    pub(crate) fn stop_node(&self, n: u8) {
        let out = self.run(&["stop-node", &n.to_string()], NODE_LIMIT);
        assert!(out.status.success(), "stop-node {n}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub(crate) fn start_node(&self, n: u8) {
        let out = self.run(&["start-node", &n.to_string()], NODE_LIMIT);
        assert!(out.status.success(), "start-node {n}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Cluster {
    /// Never panics (it may run while a failed test unwinds): the script's stop is bounded on its own, each node
    /// getting SIGTERM, then SIGKILL after its deadline.
    fn drop(&mut self) {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).arg("stop").arg(self.dir.path()).stdin(std::process::Stdio::null());
        match cmd.output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("cluster.sh stop: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => eprintln!("cluster.sh stop: {e}"),
        }
    }
}

#[derive(Default)]
struct Shared {
    cluster: Option<Arc<Cluster>>,
    users: usize,
}

static SHARED: Mutex<Shared> = Mutex::new(Shared { cluster: None, users: 0 });

/// A test's hold on the shared cluster: the last one dropped stops it.
pub(crate) struct Lease {
    cluster: Arc<Cluster>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        shared.users -= 1;
        if shared.users == 0 {
            shared.cluster = None;
        }
    }
}

impl std::ops::Deref for Lease {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

/// Held by each test while it runs: the S3 tests take turns, so that the store's load on the machine stays that of
/// one test (other tests in this binary measure latencies and rates), and no two tests ever stop a node at once.
static TURN: Mutex<()> = Mutex::new(());

/// The cluster, for a test that holds the turn. The lease comes first: a test waiting for its turn keeps the
/// cluster up for it, so the cluster is not stopped and started again between tests.
pub(crate) fn cluster() -> (Lease, std::sync::MutexGuard<'static, ()>) {
    let lease = lease();
    (lease, TURN.lock().unwrap_or_else(|e| e.into_inner()))
}

fn lease() -> Lease {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = match &shared.cluster {
        Some(c) => c.clone(),
        None => {
            let c = Arc::new(Cluster::start());
            shared.cluster = Some(c.clone());
            c
        }
    };
    shared.users += 1;
    Lease { cluster }
}

/// A prefix no other test (or earlier run) uses.
pub(crate) fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{test}-{}-{nanos}", std::process::id())
}

/// A client of node `node` (1-3) under the test's prefix.
pub(crate) fn client_at(cluster: &Cluster, node: usize, prefix: &str) -> Client {
    let endpoint = &cluster.endpoints()[node - 1];
    Client::new(&cluster.location(endpoint, prefix), &cluster.credentials(), ClientConfig::default()).expect("client")
}

fn client(cluster: &Cluster, test: &str) -> Client {
    client_at(cluster, 1, &unique_prefix(test))
}

/// Uploads `len` bytes of `content(seed, ..)` as a multipart upload in parts of `part` bytes from one reused
/// buffer (memory bounded by the part size).
fn upload_multipart(client: &Client, key: &str, seed: u64, len: u64, part: usize) {
    let upload = client.create_multipart(key).expect("create multipart upload");
    let mut source = ContentReader::new(seed, len);
    let mut buf = vec![0u8; part];
    let mut parts: Vec<Part> = Vec::new();
    loop {
        let n = fill(&mut source, &mut buf);
        if n == 0 {
            break;
        }
        let number = u16::try_from(parts.len() + 1).expect("part number");
        parts.push(client.upload_part(&upload, number, &buf[..n]).expect("upload part"));
    }
    client.complete(&upload, &parts).expect("complete multipart upload");
}

fn fill(source: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the source: {e}"),
        }
    }
    filled
}

/// SHA-256 and length of the object from `offset` on, streamed.
fn digest_of(client: &Client, key: &str, offset: u64) -> (String, u64) {
    let mut reader = client.get(key, offset).unwrap_or_else(|e| panic!("GET {key} at {offset}: {e}"));
    let mut hash = HashWriter::default();
    io::copy(&mut reader, &mut hash).unwrap_or_else(|e| panic!("reading {key} at {offset}: {e}"));
    let bytes = hash.bytes;
    (hash.hex(), bytes)
}

/// SHA-256 and length of `content(seed, len)` from `offset` on, generated as it is hashed.
fn expected_digest(seed: u64, len: u64, offset: u64) -> (String, u64) {
    let mut source = ContentReader::new(seed, len);
    io::copy(&mut (&mut source).take(offset), &mut io::sink()).expect("skipping");
    let mut hash = HashWriter::default();
    io::copy(&mut source, &mut hash).expect("hashing");
    let bytes = hash.bytes;
    (hash.hex(), bytes)
}

fn all_keys(client: &Client, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut next = None;
    loop {
        let page = client.list(prefix, None, next.as_deref()).expect("list");
        keys.extend(page.files.into_iter().map(|e| e.key));
        match page.next {
            Some(token) => next = Some(token),
            None => return keys,
        }
    }
}

// ---- the tests -------------------------------------------------------------------------------------------------

#[test]
fn garage_multipart_upload_is_byte_exact_and_reads_from_an_offset() {
    let (cluster, _turn) = cluster();
    let c = client(&cluster, "multipart");
    // Four full parts and an odd tail: 21 MiB and 12,345 bytes.
    let len = 21 * 1024 * 1024 + 12_345;
    let started = Instant::now();
    upload_multipart(&c, "big.bin", 7, len, MIN_PART_SIZE);
    eprintln!("multipart upload of {len} bytes in {:?}", started.elapsed());

    let meta = c.head("big.bin").expect("head").expect("the object exists once completed");
    assert_eq!(meta.size, len);
    let age = SystemTime::now().duration_since(meta.modified).unwrap_or_default();
    assert!(age < Duration::from_secs(300), "modified {age:?} ago");

    assert_eq!(digest_of(&c, "big.bin", 0), expected_digest(7, len, 0), "whole object");
    let offset = 7 * 1024 * 1024 + 3;
    assert_eq!(digest_of(&c, "big.bin", offset), expected_digest(7, len, offset), "from {offset}");
    assert_eq!(digest_of(&c, "big.bin", len - 1), expected_digest(7, len, len - 1), "the last byte");

    // At the end: nothing to read. Past it: the offset is refused.
    assert_eq!(digest_of(&c, "big.bin", len).1, 0);
    match c.get("big.bin", len + 1) {
        Err(Error::InvalidRange { offset, size }) => assert_eq!((offset, size), (len + 1, len)),
        other => panic!("GET past the end: {other:?}"),
    }
}

#[test]
fn garage_small_objects_round_trip_including_empty_ones() {
    let (cluster, _turn) = cluster();
    let c = client(&cluster, "small");
    for (i, len) in [0usize, 1, 1023, 1024, 1025, 65_537].into_iter().enumerate() {
        let key = format!("f{len}");
        let data = content(i as u64, len);
        c.put(&key, &data).expect("put");
        assert_eq!(c.head(&key).expect("head").map(|m| m.size), Some(len as u64));
        let mut got = Vec::new();
        c.get(&key, 0).expect("get").read_to_end(&mut got).expect("read");
        assert_eq!(sha256(&got), sha256(&data), "{key}");
        if len > 0 {
            let mut tail = Vec::new();
            c.get(&key, 1).expect("ranged get").read_to_end(&mut tail).expect("read");
            assert_eq!(tail, data[1..], "{key} from 1");
        }
    }
    // Awkward characters travel intact, in requests and in listings.
    let odd = "sp ace/é+&=?#%~.txt";
    c.put(odd, b"odd").expect("put an awkward key");
    assert_eq!(c.head(odd).expect("head").map(|m| m.size), Some(3));
    assert!(all_keys(&c, "sp ace/").contains(&odd.to_string()));
}

#[test]
fn garage_an_aborted_upload_leaves_no_object() {
    let (cluster, _turn) = cluster();
    let c = client(&cluster, "abort");
    let upload = c.create_multipart("partial.bin").expect("create");
    let part = content(3, MIN_PART_SIZE);
    c.upload_part(&upload, 1, &part).expect("part 1");
    c.upload_part(&upload, 2, &part[..1000]).expect("part 2");
    // Not yet completed: nothing to see.
    assert_eq!(c.head("partial.bin").expect("head"), None);
    c.abort(&upload).expect("abort");

    assert_eq!(c.head("partial.bin").expect("head"), None);
    assert!(all_keys(&c, "").is_empty(), "the listing shows the aborted upload");
    assert!(matches!(c.get("partial.bin", 0), Err(Error::NotFound)));
    // The upload is gone: aborting again succeeds, a part or a completion finds nothing.
    c.abort(&upload).expect("abort again");
    assert!(matches!(c.upload_part(&upload, 3, b"late"), Err(Error::NotFound)), "part after abort");
}

#[test]
fn garage_listing_pages_through_ten_thousand_objects() {
    const OBJECTS: usize = 10_000;
    const THREADS: usize = 8;
    let (cluster, _turn) = cluster();
    let c = client(&cluster, "many");
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= OBJECTS {
                    return;
                }
                c.put(&format!("d/{i:05}"), i.to_string().as_bytes()).expect("put");
            });
        }
    });
    eprintln!("{OBJECTS} objects created with {THREADS} threads in {:?}", started.elapsed());

    let started = Instant::now();
    let mut keys = Vec::new();
    let mut pages = 0;
    let mut next = None;
    loop {
        let page = c.list("d/", Some("/"), next.as_deref()).expect("list");
        pages += 1;
        assert!(page.dirs.is_empty(), "no subdirectories: {:?}", &page.dirs[..page.dirs.len().min(3)]);
        assert!(page.files.len() <= 1000, "a page holds at most 1,000 keys");
        for e in &page.files {
            assert_eq!(e.size, e.key["d/".len()..].trim_start_matches('0').len().max(1) as u64, "{}", e.key);
        }
        keys.extend(page.files.into_iter().map(|e| e.key));
        match page.next {
            Some(token) => next = Some(token),
            None => break,
        }
        assert!(pages <= OBJECTS, "the listing does not end");
    }
    eprintln!("listed {} keys in {pages} pages in {:?}", keys.len(), started.elapsed());
    let expected: Vec<String> = (0..OBJECTS).map(|i| format!("d/{i:05}")).collect();
    assert_eq!(keys.len(), OBJECTS);
    assert!(keys == expected, "keys out of order, missing or repeated");
    assert!(pages >= OBJECTS / 1000, "{pages} pages for {OBJECTS} keys");

    // One level up with a delimiter, the 10,000 roll up into one directory.
    let top = c.list("", Some("/"), None).expect("list the top");
    assert_eq!((top.files.len(), top.dirs.clone(), top.next), (0, vec!["d/".to_string()], None));
}

#[test]
fn garage_directory_markers_and_delimiter_listing() {
    let (cluster, _turn) = cluster();
    let c = client(&cluster, "dirs");
    c.put("docs/", b"").expect("marker docs/");
    c.put("empty/", b"").expect("marker empty/");
    c.put("docs/a.txt", b"a").expect("put");
    c.put("docs/sub/b.txt", b"bb").expect("put");
    c.put("top.txt", b"top").expect("put");

    let names = |page: &ftp_server::s3::Page| page.files.iter().map(|e| e.key.clone()).collect::<Vec<_>>();
    let root = c.list("", Some("/"), None).expect("list /");
    assert_eq!(names(&root), ["top.txt"]);
    assert_eq!(root.dirs, ["docs/", "empty/"]);

    let docs = c.list("docs/", Some("/"), None).expect("list docs/");
    assert_eq!(names(&docs), ["docs/", "docs/a.txt"], "the marker, then the file");
    assert_eq!(docs.dirs, ["docs/sub/"]);
    assert_eq!(docs.files[0].size, 0);

    // An empty directory is its marker alone.
    let empty = c.list("empty/", Some("/"), None).expect("list empty/");
    assert_eq!((names(&empty), empty.dirs.len()), (vec!["empty/".to_string()], 0));
    let marker = c.head("empty/").expect("head").expect("the marker exists");
    assert_eq!(marker.size, 0);

    // Without a delimiter: everything, flat.
    assert_eq!(all_keys(&c, ""), ["docs/", "docs/a.txt", "docs/sub/b.txt", "empty/", "top.txt"]);
    // One key is enough to tell a directory is not empty; the rest is on the next pages.
    let first = c.list_up_to("docs/", Some("/"), None, 1).expect("list one");
    assert_eq!(first.files.len() + first.dirs.len(), 1);
    let rest = c.list_up_to("docs/", Some("/"), first.next.as_deref(), 1000).expect("list the rest");
    assert_eq!(first.files.len() + first.dirs.len() + rest.files.len() + rest.dirs.len(), 3);
    assert!(first.next.is_some() && rest.next.is_none());
    // A directory that does not exist lists as nothing.
    let none = c.list("nowhere/", Some("/"), None).expect("list nowhere/");
    assert!(none.files.is_empty() && none.dirs.is_empty() && none.next.is_none());

    // A narrower client (a per-user home) sees only its part; what it writes lands under the parent's key.
    let home = c.under("docs/sub").expect("under");
    assert_eq!(all_keys(&home, ""), ["b.txt"]);
    home.put("c.txt", b"c").expect("put in the home");
    assert_eq!(c.head("docs/sub/c.txt").expect("head").map(|m| m.size), Some(1));
}

#[test]
fn garage_delete_and_copy() {
    let (cluster, _turn) = cluster();
    let c = client(&cluster, "copy");
    let data = content(11, 300_000);
    c.put("a.bin", &data).expect("put");
    c.copy("a.bin", "dir/b.bin").expect("copy");
    assert_eq!(digest_of(&c, "dir/b.bin", 0), (sha256(&data), data.len() as u64));

    // A copy replaces what is there.
    c.put("c.bin", b"old").expect("put");
    c.copy("a.bin", "c.bin").expect("copy over");
    assert_eq!(c.head("c.bin").expect("head").map(|m| m.size), Some(data.len() as u64));

    c.delete("a.bin").expect("delete");
    assert_eq!(c.head("a.bin").expect("head"), None);
    assert!(c.head("dir/b.bin").expect("head").is_some(), "the copy outlives the original");
    // Deleting what is not there succeeds, as in S3.
    c.delete("a.bin").expect("delete again");
    assert!(matches!(c.copy("a.bin", "d.bin"), Err(Error::NotFound)), "copy of a deleted object");
    assert_eq!(c.head("d.bin").expect("head"), None);
}

#[test]
fn garage_missing_things_are_not_found_and_bad_keys_are_denied() {
    let (cluster, _turn) = cluster();
    let c = client(&cluster, "missing");
    assert_eq!(c.head("nothing").expect("head"), None);
    assert!(matches!(c.get("nothing", 0), Err(Error::NotFound)));
    assert!(matches!(c.get("nothing", 10), Err(Error::NotFound)));
    assert!(matches!(c.copy("nothing", "x"), Err(Error::NotFound)));

    // An upload id the store never gave.
    let upload = c.create_multipart("real").expect("create");
    let bogus = c.create_multipart("real").expect("create another");
    c.abort(&bogus).expect("abort");
    assert!(matches!(c.upload_part(&bogus, 1, b"x"), Err(Error::NotFound)));
    assert!(matches!(c.complete(&bogus, &[]), Err(Error::Other(_))), "no parts is refused before asking");
    c.abort(&upload).expect("abort");

    // Wrong secret: denied, not retried into a timeout.
    let wrong = Credentials::new(cluster.var("AWS_ACCESS_KEY_ID"), "0".repeat(64));
    let endpoint = &cluster.endpoints()[0];
    let denied = Client::new(&cluster.location(endpoint, "x"), &wrong, ClientConfig::default()).expect("client");
    assert!(matches!(denied.head("k"), Err(Error::Denied(_))), "{:?}", denied.head("k"));
    assert!(matches!(denied.put("k", b"x"), Err(Error::Denied(_))));

    // A region the store does not answer to: refused at once, not retried as if the store were down.
    let url = format!("s3://{}/x?endpoint={endpoint}&region=elsewhere", cluster.var("GARAGE_BUCKET"));
    let astray = Client::new(&url.parse().expect("url"), &cluster.credentials(), ClientConfig::default()).expect("c");
    let got = astray.head("k");
    assert!(matches!(got, Err(Error::Denied(_)) | Err(Error::Other(_))), "{got:?}");

    // A bucket that does not exist is a configuration error, not a missing file.
    let url = format!("s3://no-such-bucket?endpoint={endpoint}&region={}", cluster.var("GARAGE_S3_REGION"));
    let lost = Client::new(&url.parse().expect("url"), &cluster.credentials(), ClientConfig::default()).expect("c");
    let got = lost.list("", None, None);
    assert!(matches!(got, Err(Error::Other(_)) | Err(Error::Denied(_))), "{got:?}");
}

#[test]
fn garage_one_node_down_reads_and_writes_still_succeed() {
    let (cluster, _turn) = cluster();
    let prefix = unique_prefix("node-down");
    let c = client_at(&cluster, 1, &prefix);
    let len = 3 * MIN_PART_SIZE as u64 + 777;
    upload_multipart(&c, "before.bin", 21, len, MIN_PART_SIZE);

    // Mid-run: a download half read and a multipart upload with one part in when node 3 stops.
    let mut reading = c.get("before.bin", 0).expect("get");
    let mut hash = HashWriter::default();
    io::copy(&mut (&mut reading).take(len / 2), &mut hash).expect("first half");
    let upload = c.create_multipart("during.bin").expect("create");
    let part = content(22, MIN_PART_SIZE);
    let mut parts = vec![c.upload_part(&upload, 1, &part).expect("part 1")];

    let stopped = Instant::now();
    cluster.stop_node(3);
    eprintln!("node 3 stopped in {:?}", stopped.elapsed());

    io::copy(&mut reading, &mut hash).expect("second half with node 3 down");
    let bytes = hash.bytes;
    assert_eq!((hash.hex(), bytes), expected_digest(21, len, 0), "download across the stop");
    parts.push(c.upload_part(&upload, 2, &part[..4096]).expect("part 2 with node 3 down"));
    c.complete(&upload, &parts).expect("complete with node 3 down");

    // Node 3 itself refuses connections: a transient failure, given up on after the bounded retries.
    let c3_down = client_at(&cluster, 3, &prefix);
    let tried = Instant::now();
    assert!(matches!(c3_down.head("before.bin"), Err(Error::Transient(_))), "{:?}", c3_down.head("before.bin"));
    assert!(tried.elapsed() < Duration::from_secs(30), "retries took {:?}", tried.elapsed());

    // With node 3 down: reads and writes through node 1 and node 2.
    let c2 = client_at(&cluster, 2, &prefix);
    let mut joined = part.clone();
    joined.extend_from_slice(&part[..4096]);
    assert_eq!(digest_of(&c2, "during.bin", 0), (sha256(&joined), joined.len() as u64), "via node 2");
    assert_eq!(digest_of(&c, "before.bin", 12_345), expected_digest(21, len, 12_345), "ranged, node 3 down");
    c.put("down.txt", b"written while node 3 was down").expect("put with node 3 down");
    upload_multipart(&c2, "down.bin", 23, MIN_PART_SIZE as u64 + 5, MIN_PART_SIZE);
    c.copy("down.txt", "down-copy.txt").expect("copy with node 3 down");
    c.delete("down-copy.txt").expect("delete with node 3 down");
    let keys = all_keys(&c2, "");
    assert_eq!(keys, ["before.bin", "down.bin", "down.txt", "during.bin"]);

    let restarted = Instant::now();
    cluster.start_node(3);
    eprintln!("node 3 back in {:?}", restarted.elapsed());

    // Node 3 serves what was written while it was away (its reads take a quorum).
    let c3 = client_at(&cluster, 3, &prefix);
    let mut got = Vec::new();
    c3.get("down.txt", 0).expect("get via node 3").read_to_end(&mut got).expect("read");
    assert_eq!(got, b"written while node 3 was down");
    assert_eq!(digest_of(&c3, "down.bin", 0), expected_digest(23, MIN_PART_SIZE as u64 + 5, 0), "via node 3");
    assert_eq!(all_keys(&c3, ""), keys);
}
