//! The root package's library: what every package's tests share to start this workspace's programs
//! ([`launcher`]). The root package otherwise only carries the integration tests in this folder.

pub mod launcher;
