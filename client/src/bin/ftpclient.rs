//! `ftpclient [HOST] PORT`: the command-line FTP client. Everything but logging setup lives in `ftp_client::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::init();
    ftp_client::cli::main()
}
