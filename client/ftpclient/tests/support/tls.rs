//! FTPS peers for the client's tests: a self-signed certificate made with rcgen (for `localhost` and 127.0.0.1,
//! no openssl needed), and pyftpdlib's `TLS_FTPHandler` serving with it, explicit (AUTH TLS) or implicit (TLS from
//! the first byte). pyftpdlib's TLS needs the pyOpenSSL module; without it (or pyftpdlib) a test prints a skip
//! line, except under CI=true, where it fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{missing_tool, wait_bounded, PeerServer, PROCESS_LIMIT};

/// The certificate's file name in the directory [`write_cert`] fills.
pub const CERT_FILE: &str = "cert.pem";
/// The private key's file name.
pub const KEY_FILE: &str = "key.pem";

/// Writes a fresh self-signed certificate for `localhost` and 127.0.0.1 and its key (PKCS#8) as PEM files into
/// `dir`; returns their paths.
pub fn write_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let generated = rcgen::generate_simple_self_signed(names).expect("generating a certificate");
    let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    fs::write(&cert, generated.cert.pem()).expect("writing the certificate");
    fs::write(&key, generated.key_pair.serialize_pem()).expect("writing the key");
    (cert, key)
}

/// pyftpdlib with TLS required on the control and the data connections (`argv[5]` `explicit`), or implicit TLS
/// (`implicit`: the handshake comes before the greeting); an anonymous user and `bob` (password `s3cret`) who may
/// do everything, rooted in `argv[2]`, with the certificate and key in `argv[3]` and `argv[4]`.
const TLS_SERVER_SCRIPT: &str = r#"
import logging, sys, warnings
warnings.simplefilter("ignore")
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer
host, root, cert, key, mode = sys.argv[1:6]
logging.basicConfig(level=logging.ERROR)
authorizer = DummyAuthorizer()
authorizer.add_anonymous(root, perm="elradfmwMT")
authorizer.add_user("bob", "s3cret", root, perm="elradfmwMT")

class Explicit(TLS_FTPHandler):
    tls_control_required = True
    tls_data_required = True

class Implicit(Explicit):
    def handle(self):
        self.secure_connection(self.ssl_context)

    def handle_ssl_established(self):
        TLS_FTPHandler.handle(self)

    def ftp_AUTH(self, line):
        self.respond("503 Already using TLS.")

handler = Implicit if mode == "implicit" else Explicit
handler.certfile = cert
handler.keyfile = key
handler.authorizer = authorizer
server = FTPServer((host, 0), handler)
print(server.address[1], flush=True)
server.serve_forever()
"#;

/// Whether python3 can run pyftpdlib's TLS handler; prints a skip line (or fails under CI=true) when not.
pub fn pyftpdlib_tls_installed() -> bool {
    let child = Command::new("python3")
        .args(["-c", "import pyftpdlib, OpenSSL"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let installed = child.map(|c| wait_bounded(c, PROCESS_LIMIT).status.success()).unwrap_or(false);
    installed || missing_tool("python3 with pyftpdlib and pyOpenSSL", "pip install pyftpdlib pyopenssl")
}

/// A pyftpdlib server on 127.0.0.1 that requires explicit TLS, or `None` when it cannot run here.
pub fn explicit_server() -> Option<PeerServer> {
    tls_server("explicit")
}

/// A pyftpdlib server on 127.0.0.1 with implicit TLS, or `None` when it cannot run here.
pub fn implicit_server() -> Option<PeerServer> {
    tls_server("implicit")
}

fn tls_server(mode: &str) -> Option<PeerServer> {
    if !pyftpdlib_tls_installed() {
        return None;
    }
    let server = PeerServer::start_with_cert(TLS_SERVER_SCRIPT, "127.0.0.1", mode);
    Some(server.unwrap_or_else(|msg| panic!("pyftpdlib with {mode} TLS: {msg}")))
}
