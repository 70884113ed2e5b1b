//! [`raise_fd_limit`]: room for as many sockets as the administrator allows.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises this process's open-file soft limit to its hard limit. Each client is a file
/// descriptor, and the usual soft limit of 1024 would cap a server (or a benchmark's
/// load side) far below what the machine allows.
pub fn raise_fd_limit() -> nix::Result<()> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(())
}
