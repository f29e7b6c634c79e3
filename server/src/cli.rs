//! Command-line arguments of `ftpserver` and their validation into a [`Config`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::server::Config;
use crate::session::SessionConfig;

/// A single-threaded FTP server for many simultaneous clients.
#[derive(Debug, Parser)]
#[command(name = "ftpserver", version, about)]
pub struct Args {
    /// Port to listen on; 0 picks any free port.
    #[arg(default_value_t = 2121)]
    pub port: u16,

    /// Address to listen on; 0.0.0.0 or :: to serve a network.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Directory served as "/" (default: the current directory).
    #[arg(long)]
    pub root: Option<PathBuf>,

    /// Bytes moved per chunk of a transfer.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16 * 1024 * 1024))]
    pub chunk_size: u32,

    /// Chunks a transfer may move per loop turn before others get their turn.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub quantum: u32,

    /// Control connections held at once; more are refused with 421.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Seconds without a command before a session gets 421 and is closed.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,

    /// Seconds a passive listener waits for the client's data connection.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub data_timeout: u64,

    /// Seconds running transfers may take to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 10)]
    pub shutdown_grace: u64,

    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Args {
    /// The validated configuration; the root must be an existing directory.
    pub fn into_config(self) -> Result<Config, String> {
        let root = match self.root {
            Some(r) => r,
            None => std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?,
        };
        let root = root.canonicalize().map_err(|e| format!("root {}: {e}", root.display()))?;
        if !root.is_dir() {
            return Err(format!("root {} is not a directory", root.display()));
        }
        Ok(Config {
            bind: self.bind,
            port: self.port,
            root,
            session: SessionConfig {
                chunk_size: self.chunk_size as usize,
                quantum: self.quantum as usize,
                idle_timeout: Duration::from_secs(self.idle_timeout),
                data_timeout: Duration::from_secs(self.data_timeout),
                anonymous: true,
            },
            max_connections: self.max_connections as usize,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            handle_signals: true,
        })
    }

    /// The log filter implied by `-v` when RUST_LOG is not set.
    pub fn log_level(&self) -> &'static str {
        match self.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The seed's `ftpserver 5106` still works: the port is positional.
    #[test]
    fn positional_port() {
        let a = Args::try_parse_from(["ftpserver", "5106"]).unwrap();
        assert_eq!(a.port, 5106);
        assert_eq!(a.bind.to_string(), "127.0.0.1");
        assert_eq!(a.chunk_size, 1024);
    }

    #[test]
    fn defaults_and_bounds() {
        let a = Args::try_parse_from(["ftpserver"]).unwrap();
        assert_eq!(a.port, 2121);
        assert!(Args::try_parse_from(["ftpserver", "--chunk-size", "0"]).is_err());
        assert!(Args::try_parse_from(["ftpserver", "70000"]).is_err());
    }

    #[test]
    fn missing_root_is_an_error() {
        let a = Args::try_parse_from(["ftpserver", "--root", "/nonexistent/dir/for/test"]).unwrap();
        assert!(a.into_config().unwrap_err().contains("/nonexistent/dir/for/test"));
    }
}
