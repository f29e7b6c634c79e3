#!/usr/bin/env python3
"""Writes the committed seed corpora of every fuzz target (fuzz/README.md says how they are used).

Each seed is what a real peer sends or receives: command sequences as curl, lftp, Python's ftplib and rclone send
them to our server, replies as real servers (ours, vsftpd, ProFTPD, Pure-FTPd) send them, and the examples of the
RFCs. Run it from anywhere after changing it; it replaces the seed directories it writes.
"""
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(target_dir, seeds):
    path = os.path.join(ROOT, target_dir)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    for name, data in seeds.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


def crlf(*lines):
    """Lines (text or bytes) each ended by CRLF."""
    return b"".join((l if isinstance(l, bytes) else l.encode()) + b"\r\n" for l in lines)


# ---- line_command: one control byte (where the stream is split), then the client's bytes -------------------------

CLIENT_SESSIONS = {
    # curl ftp://host/dir/file.txt (CWD per segment, EPSV, binary, SIZE before RETR).
    "curl-download": crlf("USER anonymous", "PASS ftp@example.com", "PWD", "CWD dir", "EPSV", "TYPE I",
                          "SIZE file.txt", "RETR file.txt", "QUIT"),
    # curl -T upload, then curl -l (NLST) and curl ftp://host/ (LIST in ASCII).
    "curl-upload-list": crlf("USER anonymous", "PASS ftp@example.com", "PWD", "EPSV", "TYPE I", "STOR up.bin",
                             "EPSV", "TYPE A", "NLST", "EPSV", "LIST", "QUIT"),
    # curl -C - (resume) and -R (remote time), active mode with -P - (EPRT, then PORT when refused).
    "curl-resume-active": crlf("USER u", "PASS p", "PWD", "EPRT |1|127.0.0.1|40001|", "PORT 127,0,0,1,156,65",
                               "TYPE I", "SIZE big.iso", "MDTM big.iso", "REST 1048576", "RETR big.iso", "QUIT"),
    # curl --ssl-reqd: AUTH SSL first, then AUTH TLS, PBSZ, PROT.
    "curl-ftps": crlf("AUTH SSL", "AUTH TLS", "USER u", "PASS p", "PBSZ 0", "PROT P", "PWD", "EPSV", "TYPE I",
                      "RETR a", "QUIT"),
    # curl -Q commands and --ftp-create-dirs.
    "curl-quote-create": crlf("USER u", "PASS p", "PWD", "CWD a", "MKD a", "CWD a", "CWD b", "MKD b", "CWD b",
                              "RNFR old", "RNTO new", "DELE gone", "RMD empty", "EPSV", "TYPE I", "APPE log.txt",
                              "QUIT"),
    # lftp: FEAT before login, UTF8, MLST facts, MLSD listing, mirror-style MDTM/SIZE/RETR and MFMT after put.
    "lftp-mirror": crlf("FEAT", "AUTH TLS", "OPTS UTF8 ON", "USER u", "PASS p", "PWD",
                        "OPTS MLST type;size;modify;UNIX.mode;UNIX.uid;UNIX.gid;", "CWD /pub", "EPSV", "MLSD",
                        "CWD /pub/sub", "EPSV", "MLSD", "TYPE I", "SIZE a.txt", "MDTM a.txt", "EPSV", "REST 0",
                        "RETR a.txt", "ALLO 5", "EPSV", "STOR b.txt", "MFMT 20240102030405 b.txt", "QUIT"),
    # lftp with the old commands: PASV, LIST -a, STAT, CDUP, SITE-less chmod attempts, NOOP keep-alive.
    "lftp-pasv": crlf("USER u", "PASS p", "SYST", "PWD", "PASV", "LIST -a", "NOOP", "STAT", "CDUP", "XPWD",
                      "XCWD /", "XMKD n", "XRMD n", "XCUP", "QUIT"),
    # Python ftplib: login, PASV (ftplib connects right after 227), RETR, storlines in ASCII, nlst, abort.
    "ftplib-basic": crlf("USER anonymous", "PASS anonymous@", "TYPE I", "PASV", "RETR f", "TYPE A", "PASV",
                         "STOR lines.txt", "TYPE A", "PASV", "NLST", "PASV", "LIST", "SIZE f", "MKD d", "RMD d",
                         "RNFR a", "RNTO b", "DELE b", "PWD", "CWD /", "QUIT"),
    # ftplib abort: Telnet IP and Synch before ABOR (RFC 959 4.1.3), as several clients send it.
    "ftplib-abort": b"USER u\r\nPASS p\r\nTYPE I\r\nEPSV\r\nRETR big\r\n\xff\xf4\xff\xf2ABOR\r\nNOOP\r\nQUIT\r\n",
    # ftplib with IPv6 (EPSV, EPRT |2|).
    "ftplib-ipv6": crlf("USER u", "PASS p", "EPSV", "NLST", "EPRT |2|::1|40002|", "RETR x", "QUIT"),
    # rclone (jlaffaye/ftp): FEAT, UTF8, MLSD with paths, MLST, MFMT, REST with STOR, HASH when offered.
    "rclone-sync": crlf("USER u", "PASS p", "FEAT", "TYPE I", "OPTS UTF8 ON", "EPSV", "MLSD /remote/dir",
                        "MLST /remote/dir/a", "SIZE /remote/dir/a", "MDTM /remote/dir/a", "EPSV", "RETR /remote/dir/a",
                        "MKD /remote/dir/new", "EPSV", "STOR /remote/dir/new/b", "MFMT 20240229235960 /remote/dir/new/b",
                        "OPTS HASH SHA-256", "HASH /remote/dir/new/b", "RNFR /remote/dir/new/b",
                        "RNTO /remote/dir/new/c", "DELE /remote/dir/new/c", "RMD /remote/dir/new", "NOOP", "QUIT"),
    # RFC 959 section 7 scenario, RFC 2428 examples, RFC 3659 and the MFMT and HASH drafts.
    "rfc959": crlf("USER doe", "PASS mumble", "ACCT x", "MODE S", "STRU F", "TYPE A N", "TYPE L 8", "TYPE E",
                   "MKD Doe", "PORT 192,168,1,2,19,137", "STOR Doe/file", "STOU", "STOU name", "HELP", "HELP RETR",
                   "ALLO 1000", "REIN", "QUIT"),
    "rfc2428": crlf("EPRT |1|132.235.1.2|6275|", "EPRT |2|1080::8:800:200C:417A|5282|", "EPSV", "EPSV 1",
                    "EPSV 2", "EPSV ALL", "EPRT !1!10.0.0.1!21!", "EPRT |3|x|1|", "EPRT |1|::1|21|"),
    "rfc3659": crlf("MDTM file", "SIZE file", "REST 100", "MLST", "MLST dir/file", "MLSD dir",
                    "OPTS MLST type;size;", "OPTS MLST", "MFMT 20020717210715 file", "MFMT 2002071721071 file",
                    "MFMT 20021317210715 file", "MFMT 20020717210715.123 file", "HASH file", "OPTS HASH MD5",
                    "OPTS HASH CRC32", "OPTS UTF8 OFF"),
    # Hostile shapes: traversal, NUL, invalid UTF-8, huge offsets, lower case, leading spaces, bare LF, blanks.
    "hostile": b"user u\nPASS p\n   PWD\r\nCWD ../../../etc\r\nRETR /../etc/passwd\r\nRETR a\x00b\r\n"
               b"STOR \xff\xfe\r\nREST 18446744073709551616\r\nREST -1\r\nPORT 127,0,0,1,0,21\r\n"
               b"PORT 256,0,0,1,0,1\r\nEPRT |2|::ffff:10.0.0.1|1|\r\n\r\n \r\nXYZZY\r\nABOR extra\r\nTYPE\r\n"
               b"RNTO x\r\nCWD //a/./b/..\r\nLIST -la /dev\r\nSIZE \r\n",
    # Telnet negotiation inside and between lines (RFC 854).
    "telnet": b"N\xff\xfd\x01OOP\r\n\xff\xfa\x18\x01\xff\xf0PWD\r\nUSER \xff\xffname\r\n\xff\xfb\x03SYST\r\n",
}


def line_limit_seeds():
    # The real limit, MAX_LINE = 4096 bytes without the line end: exactly at it, one over, far over, and a
    # CR that only counts once its next byte arrives.
    at = b"RETR " + b"a" * (4096 - 5)
    return {
        "limit-exact": at + b"\r\nNOOP\r\n",
        "limit-over": at + b"b\r\nDELE x\r\nNOOP\r\n",
        "limit-cr": at + b"\r\r\nNOOP\r\n",
        "limit-far-over": b"STOR " + b"x" * 8000 + b"\r\nPWD\r\n",
    }


# ---- reply_parser: one control byte (size cap and split), then the server's bytes ---------------------------------

SERVER_TRANSCRIPTS = {
    "ours-login": crlf("220 FTP server ready.", "331 Password required for u.", "230 User u logged in.",
                       "257 \"/\" is the current directory.", "229 Entering Extended Passive Mode (|||40000|)",
                       "200 Type set to I.", "213 1024", "150 Opening BINARY mode data connection for /a.", "226 Transfer complete.",
                       "221 Goodbye."),
    "ours-feat": crlf("211-Features:", " EPRT", " EPSV", " MDTM", " MLST type*;size*;modify*;perm;unique;", " REST STREAM",
                      " SIZE", " UTF8", " MFMT", " HASH SHA-256*;SHA-1;MD5", " AUTH TLS", " PBSZ", " PROT", "211 End"),
    "vsftpd": crlf("220 (vsFTPd 3.0.5)", "331 Please specify the password.", "230 Login successful.",
                   "227 Entering Passive Mode (127,0,0,1,156,64).", "150 Here comes the directory listing.",
                   "226 Directory send OK.", "550 Failed to open file.", "500 OOPS: vsf_sysutil_recv_peek: no data",
                   "421 Timeout."),
    "proftpd": crlf("220 ProFTPD Server (Debian) [::ffff:127.0.0.1]", "331 Password required for u",
                    "230 User u logged in", "211-Features:", " LANG en-US*", " MDTM", " MFMT", " TVFS", " UTF8",
                    " MFF modify;UNIX.group;UNIX.mode;", " MLST modify*;perm*;size*;type*;unique*;UNIX.group*;UNIX.mode*;UNIX.owner*;",
                    " REST STREAM", " SIZE", "211 End", "213 20240102030405", "229 Entering Extended Passive Mode (|||31746|)"),
    "pureftpd": crlf("220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------",
                     "220-You are user number 1 of 50 allowed.", "220-Local time is now 03:04. Server port: 21.",
                     "220 You will be disconnected after 15 minutes of inactivity.", "230 OK. Current directory is /",
                     "257 \"/a \"\"b\"\" c\" created", "213 20240229235960.123"),
    # RFC 959 4.2: an inner line starting with digits, and a reply that ends only at "ddd ".
    "rfc959-multiline": crlf("123-First line", "Second line", "  234 A line beginning with numbers",
                             "123 The last line", "211-status", "211-still status", "211 end"),
    "hash-mlst": crlf("213 SHA-256 0-1023 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 /a.txt",
                      "250-Listing /a.txt", " type=file;size=1024;modify=20240102030405;perm=adfrw; /a.txt", "250 End",
                      "125 Data connection already open; transfer starting."),
    "malformed": b"220 ok\r\nhello\r\n2x0 no\r\n600 too big\r\n099 too small\r\n220\r\n211-open\r\n\xff\xff\xfe\r\n"
                 b"212 other code\r\n211-again\r\n211 done\r\n221\n",
}


def reply_limit_seeds():
    # The parser's own line limit is 8 KiB; the size cap is chosen by the control byte.
    return {
        "line-over-limit": b"\x07" + b"213 " + b"9" * 8200 + b"\r\n220 ok\r\n",
        "line-at-limit": b"\x07" + b"213 " + b"9" * (8192 - 4) + b"\r\n220 ok\r\n",
        "multi-over-cap": b"\x00" + crlf("211-long", *[" line %d of a long STAT reply" % i for i in range(10)], "211 end"),
    }


# ---- transfer_ascii: four control bytes (mode, chunk, quantum, socket), then the file or the wire bytes ---------

TEXTS = {
    "crlf": b"line one\r\nline two\r\n\r\nlast without end",
    "lf": b"line one\nline two\n\nlast\n",
    "lone-cr": b"a\rb\r\rc\r\n\r",
    "cr-runs": b"\r\r\r\n\n\n\r\n\r\r\n\n\r",
    "binary": bytes(range(256)),
    "long": b"".join(b"%04d: the quick brown fox\r\n" % i for i in range(120)),
}


def transfer_seeds():
    seeds = {}
    for name, text in TEXTS.items():
        # Uploads and downloads in ASCII (modes 3 and 2), an ASCII and a binary upload resuming at byte 5 (REST,
        # mode 4 | 5 << 3), and one binary each; a largest share of 1 byte puts a CR at every edge.
        for mode, max_share, shares in [(3, 0, 0), (3, 7, 2), (2, 0, 1), (2, 63, 7), (1, 15, 3), (0, 255, 0),
                                        (7 | 5 << 3, 3, 9), (5 | 5 << 3, 31, 4)]:
            seeds["%s-m%d-s%d-%d" % (name, mode, max_share + 1, shares)] = bytes([mode, max_share, shares, 37]) + text
    return seeds


# ---- client_replies: one control byte (trust PASV host, peer), then the server's bytes ----------------------------

MALICIOUS = {
    # PASV bounce: another host, 0.0.0.0, port 0, more numbers than an address, a broadcast address.
    "pasv-bounce": crlf("227 Entering Passive Mode (10,0,0,9,0,22).", "227 Entering Passive Mode (0,0,0,0,4,1)",
                        "227 =192,168,1,1,0,0", "227 1,2,3,4,5,6,7,8", "227 (255,255,255,255,255,255)",
                        "227 Entering Passive Mode 127,0,0,1,4,1"),
    "epsv-shapes": crlf("229 Entering Extended Passive Mode (|||6446|)", "229 (!!!80!)", "229 (|||0|)",
                        "229 (|||65536|)", "229 (||1|80|)", "229 (|2|::1|80|)", "229 ((((1(()", "229 no parens |||80|"),
    "quoted-paths": crlf('257 "/" is the current directory', '257 "/a ""b"" c" created', '257 """"',
                         '257 "../../etc" created', '257 "/unterminated', '257 MKD ok "/x y"', '257 "" empty'),
    "feat-lists": crlf("211-Features:", " MLST type*;size*;modify*;perm;unique;;;*;", " HASH SHA-256*;SHA-1;MD5;;",
                       " HASH", " REST STREAM", " UTF8", "211 End", "211-Extensions supported", "211 End",
                       "211 no features"),
    "hash-mdtm": crlf("213 SHA-256 0-1023 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08 a b",
                      "213 MD5 0-18446744073709551616 00 x", "213 SHA-1 5-2 abc x", "213 20240229235960",
                      "213 99991231235960.999999999999", "213 00000101000000", "213 20241302030405",
                      "213 2024010203040"),
    "mlsd-traversal": crlf("type=file;size=1; ../../etc/passwd", "type=file;size=1; /etc/passwd",
                           "type=dir; ..", "type=cdir; /", "type=pdir; ..", "type=file; .", "type=file; a/../../b",
                           "type=file;modify=20240102030405;size=18446744073709551615; huge",
                           "type=OS.unix=slink:/etc; link", "size=; x", "=x; y", "type=file;  leading space",
                           "type=file; name; with; semicolons", " no-facts"),
    "nlst-names": crlf("../secret", "/abs/path", "dir/", ".", "..", "~", "a\\b", "-rf", "./x", "x/.."),
    "mlst-reply": crlf("250-Listing x", " type=file;size=3;modify=20240102030405; /pub/../../x", "250 End"),
}


# ---- session: one settings byte, then LF-separated steps: command lines, outcomes (0x01), clock steps (0x02),
# an overlong line (0x03), shutdown (0x04) ------------------------------------------------------------------------

ANON_WRITE, USERS, TLS = 0x02, 0x20, 0x08
LOGIN = [b"USER anonymous", b"PASS guest@"]


def outcome(kind, param=b""):
    """0 an unasked-for PassiveReady, 1 passive listeners fail to bind from now on (parameter odd) or not,
    2 DataConnected, 3 ActiveFailed, 4 run the transfer (an upload receives
    the parameter), 5 TransferDone, 6 and 7 TransferFailed (network, disk full), 8 run the HASH job, 9 HashFailed,
    10 Verified (parameter odd: the password matched), 11 VerifierBusy."""
    return b"\x01" + bytes([kind]) + param


def clock(how):
    """0 1 ms, 1 1 s, 2 data timeout, 3 failure delay, 4 login timeout, 5 idle timeout, 6 10 s, 7 1 h, 8 exactly
    the offered deadline, 9 just before it, 10 just after it, 11 no time but a spurious handle_timeout."""
    return b"\x02" + bytes([how])


SESSIONS = {
    "download": (ANON_WRITE, LOGIN + [b"TYPE I", b"EPSV", outcome(0), b"SIZE pub/a.txt", b"RETR pub/a.txt",
                                      outcome(2), outcome(4), b"PASV", outcome(0), b"MLSD pub", outcome(2),
                                      outcome(4), b"QUIT"]),
    "upload-ascii": (ANON_WRITE, LOGIN + [b"TYPE A", b"PASV", outcome(0), outcome(2), b"STOR up.txt",
                                          outcome(4, b"one\r\ntwo\r"), b"SIZE up.txt", b"MDTM up.txt",
                                          b"MFMT 20240102030405 up.txt", b"RNFR up.txt", b"RNTO down.txt",
                                          b"EPSV", outcome(0), b"APPE down.txt", outcome(2), outcome(4, b"more"),
                                          b"EPSV", outcome(1, b"\x01"), b"STOU", outcome(1, b"\x00"), b"EPSV", b"STOU", outcome(2), outcome(4, b"u"),
                                          b"DELE down.txt", b"MKD d", b"RMD d", b"QUIT"]),
    "escape": (ANON_WRITE, LOGIN + [b"CWD escape", b"CWD /escape/sub", b"SIZE escape/secret",
                                    b"SIZE pub/secret-link", b"MDTM pub/secret-link", b"HASH pub/secret-link",
                                    outcome(8), b"STAT escape", b"STAT pub/secret-link", b"EPSV", outcome(0),
                                    b"LIST escape", outcome(2), outcome(4), b"EPSV", outcome(0),
                                    b"RETR pub/secret-link", outcome(2), outcome(4), b"EPSV", outcome(0),
                                    b"STOR escape/new", outcome(2), outcome(4, b"x"), b"MKD escape/x",
                                    b"RNFR pub/a.txt", b"RNTO escape/a", b"DELE escape/secret", b"RMD escape/sub",
                                    b"CWD ../../..", b"RETR ../../../etc/passwd", b"MLST escape",
                                    b"MFMT 20240102030405 escape/secret", b"APPE pub/secret-link"]),
    "active": (ANON_WRITE, LOGIN + [b"PORT 127,0,0,1,4,1", b"RETR pub/a.txt", outcome(3),
                                    b"EPRT |1|10.0.0.1|2000|", b"PORT 127,0,0,1,0,21", b"EPRT |2|::1|2000|",
                                    b"EPRT |1|127.0.0.1|1023|", b"EPRT |1|127.0.0.1|1024|", b"NLST",
                                    outcome(2), outcome(4), b"EPSV ALL", b"PORT 127,0,0,1,4,1", b"EPSV",
                                    outcome(1)]),
    "users": (USERS | ANON_WRITE, [b"USER alice", b"PASS secret", b"NOOP", b"STAT", outcome(10, b"\x01"),
                                   b"PWD", b"CWD up", b"CWD ..", b"EPSV", outcome(0), b"LIST -la", outcome(2),
                                   outcome(4), b"HASH notes", outcome(8), b"REIN", b"QUIT"]),
    "login-failures": (USERS, [b"USER bob", b"PASS x", outcome(10, b"\x00"), clock(8), b"USER bob", b"PASS y",
                               outcome(11), b"USER alice", b"PASS z", outcome(10, b"\x00"), clock(9), clock(10),
                               b"USER alice", b"PASS w", clock(4), outcome(10, b"\x01"), clock(8)]),
    "timers": (ANON_WRITE, LOGIN + [b"PASV", outcome(0), clock(9), clock(8), b"EPSV", outcome(0),
                                    b"RETR pub/a.txt", clock(2), b"PASV", clock(2), outcome(0), outcome(2),
                                    clock(8), clock(11), clock(5), b"NOOP", clock(7), clock(6), clock(8)]),
    "pipelined": (ANON_WRITE, LOGIN + [b"EPSV", outcome(0), b"RETR pub/a.txt", b"NOOP", b"STAT", b"PWD",
                                       b"SIZE pub/a.txt", b"CWD pub", b"DELE a.txt", outcome(2), b"ABOR",
                                       b"EPSV", outcome(0), outcome(2), b"RETR a.txt", outcome(6), b"PWD",
                                       b"EPSV", outcome(0), outcome(2), b"STOR full", outcome(7), b"HASH a.txt",
                                       b"ABOR", b"HASH a.txt", outcome(9)]
                  + [b"NOOP"] * 20),
    "tls": (TLS | 0x10 | ANON_WRITE, [b"FEAT", b"USER anonymous", b"AUTH SSL", b"AUTH TLS", b"PBSZ 0",
                                      b"PROT C", b"PROT P", b"USER anonymous", b"PASS x", b"EPSV", outcome(0),
                                      b"LIST", outcome(2), outcome(4), b"CCC"]),
    "shutdown": (ANON_WRITE, LOGIN + [b"EPSV", outcome(0), outcome(2), b"RETR pub/a.txt", b"\x04", b"PWD",
                                      outcome(4), b"NOOP", b"\x04\x01", clock(6), clock(8)]),
    "hostile": (0x07, [b"USER anonymous", b"PASS x", b"\x03", b"RETR a\x00b", b"STOR \xff\xfe",
                       b"REST 18446744073709551615", b"RETR pub/a.txt", b"OPTS MLST size;bogus;", b"OPTS UTF8 ON",
                       b"OPTS HASH CRC", b"SITE CHMOD 777 x", b"TYPE E", b"MODE B", b"STRU R", b"ALLO 99999999999",
                       b"RNTO x", b"RNFR pub", b"RNFR pub", b"RNTO pub/sub/x", b"CDUP", b"CDUP", b"XPWD"]),
}


# ---- proxy_header: the first bytes of a connection from a balancer (HAProxy's doc/proxy-protocol.txt) -----------

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(command, family, addresses, tlvs=b""):
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + len(body).to_bytes(2, "big") + body


def tlv(kind, value):
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


def proxy_seeds():
    v4 = bytes([192, 0, 2, 7, 127, 0, 0, 1]) + (40000).to_bytes(2, "big") + (2121).to_bytes(2, "big")
    v6 = (bytes.fromhex("20010db8000000000000000000000007") + bytes(15) + b"\x01"
          + (40000).to_bytes(2, "big") + (2121).to_bytes(2, "big"))
    unix = b"/tmp/src".ljust(108, b"\x00") + b"/tmp/dst".ljust(108, b"\x00")
    ssl = tlv(0x20, b"\x07" + (0).to_bytes(4, "big") + tlv(0x21, b"TLSv1.3") + tlv(0x22, b"client"))
    return {
        # Version 1: the spec's examples, the longest possible line, UNKNOWN, and broken ones.
        "v1-tcp4": b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nUSER x\r\n",
        "v1-tcp6": b"PROXY TCP6 2001:db8::7 ::1 40000 2121\r\n",
        "v1-longest": b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                      b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
        "v1-unknown": b"PROXY UNKNOWN\r\n",
        "v1-truncated": b"PROXY TCP4 192.168.0.1 192.168",
        "v1-bad": b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 99999\r\nPROXY TCP5 a b c d\r\n",
        "v1-no-crlf": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + b" " * 200,
        # Version 2: PROXY over IPv4 and IPv6, LOCAL, UNIX and UNSPEC families, TLVs, truncated and oversized.
        "v2-ipv4": v2(1, 0x11, v4) + b"USER x\r\n",
        "v2-ipv6": v2(1, 0x21, v6),
        "v2-local": v2(0, 0x00, b""),
        "v2-unix": v2(1, 0x31, unix),
        "v2-udp": v2(1, 0x12, v4),
        "v2-tlvs": v2(1, 0x11, v4, tlv(0x01, b"ftp") + tlv(0x02, b"ftp.example.com") + tlv(0x03, bytes(4))
                      + tlv(0x04, b"abc") + tlv(0x05, b"id-1") + ssl + tlv(0x30, b"netns")),
        "v2-truncated": v2(1, 0x11, v4)[:20],
        "v2-short-addresses": v2(1, 0x21, v4),
        "v2-oversized": v2(1, 0x11, v4, tlv(0x04, bytes(1100))),
        "v2-bad-version": V2_SIGNATURE + b"\x31\x11\x00\x0c" + v4,
        # Address blocks after a NUL: --proxy-from values.
        "cidr": b"PROXY UNKNOWN\r\n\x0010.0.0.0/8",
        "cidr6": v2(0, 0x00, b"") + b"\x00::ffff:127.0.0.1/128",
    }


def main():
    seeds = {}
    for i, (name, data) in enumerate(CLIENT_SESSIONS.items()):
        seeds[name] = bytes([(i * 37) % 256]) + data
    for name, data in line_limit_seeds().items():
        seeds[name] = b"\x80" + data
    write("common/fuzz/seeds/line_command", seeds)

    seeds = {}
    for i, (name, data) in enumerate(SERVER_TRANSCRIPTS.items()):
        # Cap 8 KiB (low bits 7), split points spread over the stream.
        seeds[name] = bytes([((i * 5) % 32) << 3 | 7]) + data
    seeds.update(reply_limit_seeds())
    write("common/fuzz/seeds/reply_parser", seeds)

    write("server/fuzz/seeds/transfer_ascii", transfer_seeds())

    seeds = {}
    for i, (name, data) in enumerate(list(SERVER_TRANSCRIPTS.items()) + list(MALICIOUS.items())):
        # Trust off and on, over the four peers.
        seeds[name] = bytes([i % 8]) + data
    write("client/fuzz/seeds/client_replies", seeds)

    seeds = {name: bytes([settings]) + b"\n".join(steps) + b"\n" for name, (settings, steps) in SESSIONS.items()}
    for name, data in CLIENT_SESSIONS.items():
        # Real clients' command sequences, with the data connection never answered.
        seeds["client-" + name] = bytes([ANON_WRITE]) + data.replace(b"\r\n", b"\n")
    write("server/fuzz/seeds/session", seeds)

    write("server/fuzz/seeds/proxy_header", proxy_seeds())


if __name__ == "__main__":
    main()
