//! `ftpserver`: parse arguments, bind, print the ready line, serve. `ftpserver hash-password` prints a users-file
//! hash for a password read from stdin; `ftpserver gen-cert` writes a self-signed certificate and key.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use std::sync::Arc;

use ftp_server::cli::{Args, ConfigError, GenCert, Tool};
use ftp_server::server::Reloader;
use ftp_server::{Config, Server};

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = match Args::parse_with_config(&argv) {
        Ok(a) => a,
        Err(ConfigError::Usage(e)) => e.exit(),
        Err(ConfigError::File(e)) => {
            eprintln!("ftpserver: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(args.log_level()))
        .format(|out, record| {
            // Each line names the thread it came from: worker-N for the event loops.
            let thread = std::thread::current();
            writeln!(
                out,
                "[{} {:<5} {}] {}",
                out.timestamp_millis(),
                record.level(),
                thread.name().unwrap_or("main"),
                record.args()
            )
        })
        .init();
    match &args.command {
        Some(Tool::HashPassword) => return hash_password(),
        Some(Tool::GenCert(g)) => return gen_cert(g),
        None => {}
    }
    let config = match args.into_config() {
        // SIGHUP builds the configuration again from the same command line and the config file as it is then.
        Ok(c) => Config {
            reload: Some(Reloader(Arc::new(move || {
                Args::parse_with_config(&argv).map_err(|e| e.to_string())?.into_config()
            }))),
            ..c
        },
        Err(e) => {
            eprintln!("ftpserver: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ftpserver: {e}");
            return ExitCode::from(1);
        }
    };
    // Scripts and tests read the port from this line; with --implicit-tls-port a second line follows.
    println!(
        "ftpserver listening on {}, root {}, anonymous: {}",
        server.local_addr(),
        server.root_path().display(),
        server.anonymous()
    );
    if let Some(addr) = server.implicit_tls_addr() {
        println!("ftpserver implicit TLS on {addr}");
    }
    if let Some(addr) = server.metrics_addr() {
        println!("ftpserver metrics on http://{addr}/metrics");
    }
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

fn gen_cert(g: &GenCert) -> ExitCode {
    let written = g.paths().and_then(|(cert, key)| {
        ftp_server::tls::write_self_signed(&cert, &key, &g.names)?;
        Ok((cert, key))
    });
    match written {
        Ok((cert, key)) => {
            println!(
                "certificate {}
key {}",
                cert.display(),
                key.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ftpserver: gen-cert: {e}");
            ExitCode::from(1)
        }
    }
}
