//! `ftpserver`: parse arguments, bind, print the ready line, serve. `ftpserver hash-password` prints a users-file
//! hash for a password read from stdin.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Parser;
use ftp_server::cli::{Args, Tool};
use ftp_server::Server;

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(args.log_level())).init();
    if let Some(Tool::HashPassword) = args.command {
        return hash_password();
    }
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

fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("ftpserver: reading the password: {e}");
        return ExitCode::from(2);
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("ftpserver: empty password on stdin");
        return ExitCode::from(2);
    }
    match ftp_server::access::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ftpserver: {e}");
            ExitCode::from(1)
        }
    }
}
