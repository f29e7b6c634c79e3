#!/usr/bin/env python3
"""pyftpdlib as a benchmark peer: `pyftpd.py PORT ROOT [CERT KEY]` serves ROOT on 127.0.0.1:PORT to anonymous users
who may read and write everything, with the connection limits raised for the idle tests, and prints one line when
ready. With CERT and KEY (PEM files) it also offers explicit FTPS (AUTH TLS, PROT P; pyftpdlib's TLS_FTPHandler,
which needs pyOpenSSL), not required.

RETR goes through sendfile() (pyftpdlib's default on Linux; not over TLS). Logging is reduced to warnings, as a
production deployment would, so that the per-command log lines do not dominate the figures.
"""

import logging
import resource
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.log import config_logging
from pyftpdlib.servers import FTPServer

# Connections held at once: the 10,000-session idle test, its probe, and room to spare.
MAX_CONNECTIONS = 20000
# Pending connections the kernel may queue while the single thread is busy.
BACKLOG = 4096


def main(argv):
    if len(argv) not in (3, 5):
        sys.stderr.write("usage: pyftpd.py PORT ROOT [CERT KEY]\n")
        return 2
    port, root = int(argv[1]), argv[2]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    config_logging(level=logging.WARNING)
    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(root, perm="elradfmwMT")
    handler = FTPHandler
    if len(argv) == 5:
        # Defined only when pyOpenSSL is importable.
        from pyftpdlib.handlers import TLS_FTPHandler

        handler = TLS_FTPHandler
        handler.certfile, handler.keyfile = argv[3], argv[4]
    handler.authorizer = authorizer
    server = FTPServer(("127.0.0.1", port), handler, backlog=BACKLOG)
    server.max_cons = MAX_CONNECTIONS
    server.max_cons_per_ip = 0
    print(f"pyftpdlib listening on 127.0.0.1:{port}, root {root}, sendfile {handler.use_sendfile}", flush=True)
    server.serve_forever(handle_exit=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
