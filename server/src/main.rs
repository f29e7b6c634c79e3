//! `ftpserver`: parse arguments, bind, print the ready line, serve.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use ftp_server::cli::Args;
use ftp_server::Server;

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(args.log_level())).init();
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ftpserver: {e}");
            return ExitCode::from(2);
        }
    };
    let mut server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ftpserver: {e}");
            return ExitCode::from(1);
        }
    };
    // Scripts and tests read the port from this one line.
    println!("ftpserver listening on {}, root {}", server.local_addr(), server.root_path().display());
    let _ = std::io::stdout().flush();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ftpserver: {e}");
            ExitCode::from(1)
        }
    }
}
