//! Integration tests: the real `ftpserver` binary on a free port, driven over real sockets by raw scripted
//! dialogues, by our `FtpClient` library and `ftpclient` binary, and by peer clients (curl, Python's ftplib).
//! One test binary; its modules live in `tests/integration/`.

#[path = "integration/util.rs"]
mod util;

#[path = "integration/transfers.rs"]
mod transfers;

#[path = "integration/dialogue.rs"]
mod dialogue;

#[path = "integration/confinement.rs"]
mod confinement;

#[path = "integration/peers.rs"]
mod peers;

#[path = "integration/concurrency.rs"]
mod concurrency;

#[path = "integration/interop.rs"]
mod interop;

#[path = "integration/lifecycle.rs"]
mod lifecycle;

#[path = "integration/limits.rs"]
mod limits;

#[path = "integration/chaos.rs"]
mod chaos;

#[path = "integration/tls.rs"]
mod tls;

#[path = "integration/hostile.rs"]
mod hostile;

#[path = "integration/workers.rs"]
mod workers;

#[path = "integration/cluster.rs"]
mod cluster;

#[path = "integration/bans.rs"]
mod bans;

#[path = "integration/reload.rs"]
mod reload;

#[path = "integration/privileges.rs"]
mod privileges;

#[path = "integration/hooks.rs"]
mod hooks;

#[path = "integration/rates.rs"]
mod rates;

#[path = "integration/garage.rs"]
mod garage;

#[path = "integration/s3_ftp.rs"]
mod s3_ftp;
