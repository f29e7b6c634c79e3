//! `ftpclient`: the command-line FTP client. Everything but logging setup lives in the `ftpclient` library.

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::init();
    ftpclient::main()
}
