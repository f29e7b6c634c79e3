//! The extensions to RFC 959 this client speaks: FEAT and OPTS (RFC 2389), MDTM and MLSD/MLST (RFC 3659), MFMT
//! (draft-somers-ftp-mfxx) and HASH (draft-bryan-ftpext-hash).
//!
//! FEAT is asked once per login and cached; the OPTS this client sends (choosing a hash algorithm or MLST facts)
//! update the cached lines, so they always say what the server currently has selected.

use std::time::SystemTime;

use log::debug;

use super::FtpClient;
use crate::entry::{parse_mlsd, Entry};
use crate::features::{feature_params, parse_choice_list, parse_feat_lines, parse_hash_reply, FileHash};
use crate::timestamp::{format_ftp_time, parse_ftp_time};
use crate::FtpError;

impl FtpClient {
    /// The features the server offers (FEAT, 211), one per line without the leading space: `MDTM`,
    /// `MLST type*;size*;modify*;`, `REST STREAM` ... Asked once per login and cached. A server that refuses FEAT
    /// (500 or 502 when it does not know it) offers nothing.
    pub fn feat(&mut self) -> Result<Vec<String>, FtpError> {
        if let Some(features) = &self.features {
            return Ok(features.clone());
        }
        self.send("FEAT")?;
        let reply = self.read_reply_for("FEAT")?;
        let features = match reply.code {
            211 => parse_feat_lines(&reply.lines),
            // RFC 2389 §3.2 names 500 and 502; any refusal means there is nothing to rely on.
            500..=599 => Vec::new(),
            _ => return Err(FtpError::Unexpected { command: "FEAT".into(), reply }),
        };
        self.features = Some(features.clone());
        Ok(features)
    }

    /// The parameters of a feature (`Some("")` when it has none), or `None` when the server does not offer it.
    pub fn feature(&mut self, name: &str) -> Result<Option<String>, FtpError> {
        Ok(feature_params(&self.feat()?, name).map(str::to_string))
    }

    /// The modification time of a remote file (MDTM, 213 `YYYYMMDDHHMMSS[.fff]`, UTC).
    pub fn mdtm(&mut self, path: &str) -> Result<SystemTime, FtpError> {
        let line = format!("MDTM {path}");
        let reply = self.command(&line, &[213])?;
        let text = reply.lines[0].trim();
        parse_ftp_time(text.split(' ').next().unwrap_or_default())
            .ok_or_else(|| FtpError::Protocol(format!("{line}: not a time: {reply}")))
    }

    /// Sets the modification time of a remote file (MFMT `YYYYMMDDHHMMSS` PATH, 213), to the whole second.
    pub fn set_mtime(&mut self, path: &str, time: SystemTime) -> Result<(), FtpError> {
        self.command(&format!("MFMT {} {path}", format_ftp_time(time)), &[213]).map(drop)
    }

    /// The hash algorithms the server offers for HASH, each with whether it is the selected one; empty when the
    /// server has no HASH command.
    pub fn hash_algorithms(&mut self) -> Result<Vec<(String, bool)>, FtpError> {
        Ok(self.feature("HASH")?.map(|params| parse_choice_list(&params)).unwrap_or_default())
    }

    /// Makes `algorithm` the one HASH uses (OPTS HASH, 200), unless it already is.
    pub fn select_hash(&mut self, algorithm: &str) -> Result<(), FtpError> {
        let offered = self.hash_algorithms()?;
        if offered.iter().any(|(name, selected)| *selected && name.eq_ignore_ascii_case(algorithm)) {
            return Ok(());
        }
        // The server's own spelling, when it lists the algorithm.
        let name = offered.iter().find(|(name, _)| name.eq_ignore_ascii_case(algorithm)).map_or(algorithm, |(n, _)| n);
        self.command(&format!("OPTS HASH {name}"), &[200])?;
        let list: Vec<String> = offered
            .iter()
            .map(|(name, _)| if name.eq_ignore_ascii_case(algorithm) { format!("{name}*") } else { name.clone() })
            .collect();
        self.replace_feature("HASH", &list.join(";"));
        Ok(())
    }

    /// The digest of a whole remote file with the selected algorithm (HASH, 213 `ALGO START-END HEX PATH`).
    pub fn hash(&mut self, path: &str) -> Result<FileHash, FtpError> {
        let line = format!("HASH {path}");
        let reply = self.command(&line, &[213])?;
        parse_hash_reply(&reply.lines[0]).ok_or_else(|| FtpError::Protocol(format!("{line}: not a hash: {reply}")))
    }

    /// The entries of a remote directory (or of the current one), machine-readable (MLSD).
    pub fn mlsd(&mut self, path: Option<&str>) -> Result<Vec<Entry>, FtpError> {
        let line = match path {
            Some(path) => format!("MLSD {path}"),
            None => "MLSD".to_string(),
        };
        let mut out = Vec::new();
        self.download(&line, 0, &mut out)?;
        parse_mlsd(&String::from_utf8_lossy(&out)).map_err(|e| FtpError::Protocol(format!("{line}: {e}")))
    }

    /// The facts of one remote file or directory (or of the current directory), sent on the control connection
    /// (MLST, 250); the entry's name is the path the server reports.
    pub fn mlst(&mut self, path: Option<&str>) -> Result<Entry, FtpError> {
        let line = match path {
            Some(path) => format!("MLST {path}"),
            None => "MLST".to_string(),
        };
        let reply = self.command(&line, &[250])?;
        let inner = reply.lines.get(1..reply.lines.len().saturating_sub(1)).unwrap_or_default();
        inner
            .iter()
            .find_map(|l| l.strip_prefix(' ').and_then(Entry::parse))
            .ok_or_else(|| FtpError::Protocol(format!("{line}: no entry in {reply}")))
    }

    /// Makes sure MLSD and MLST report the `wanted` facts that the server offers (OPTS MLST, 200), keeping the
    /// ones already selected. Nothing is sent when they are all selected or the server has no MLST.
    pub fn select_mlst_facts(&mut self, wanted: &[&str]) -> Result<(), FtpError> {
        let Some(params) = self.feature("MLST")? else {
            return Ok(());
        };
        let facts = parse_choice_list(&params);
        let want = |name: &str| wanted.iter().any(|w| w.eq_ignore_ascii_case(name));
        if !facts.iter().any(|(name, selected)| !selected && want(name)) {
            return Ok(());
        }
        let chosen: Vec<&str> =
            facts.iter().filter(|(name, selected)| *selected || want(name)).map(|(name, _)| name.as_str()).collect();
        let line = format!("OPTS MLST {};", chosen.join(";"));
        let reply = self.command(&line, &[200])?;
        debug!("MLST facts now {reply}");
        let list: String = facts
            .iter()
            .map(|(name, _)| if chosen.contains(&name.as_str()) { format!("{name}*;") } else { format!("{name};") })
            .collect();
        self.replace_feature("MLST", &list);
        Ok(())
    }

    /// Replaces the parameters of a cached feature line.
    fn replace_feature(&mut self, name: &str, params: &str) {
        if let Some(features) = &mut self.features {
            for line in features.iter_mut() {
                let first = line.split(' ').next().unwrap_or_default();
                if first.eq_ignore_ascii_case(name) {
                    *line = format!("{first} {params}");
                }
            }
        }
    }
}
