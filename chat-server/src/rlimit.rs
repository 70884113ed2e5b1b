//! Process settings made once at start: [`raise_fd_limit`], room for as many sockets as
//! the administrator allows, and [`no_huge_pages`].

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

/// Turns transparent huge pages off for this process. mimalloc asks the kernel for them
/// (`madvise`), and a 2 MiB page is then resident, and zeroed, as soon as one byte of it
/// is touched: with 10,000 idle clients that was 350 bytes of RSS each, and 45 MiB more at
/// the peak of a broadcast load, for no throughput (fanout 1 the same within 1%; see
/// docs/performance.md).
pub fn no_huge_pages() -> nix::Result<()> {
    nix::sys::prctl::set_thp_disable(true)
}
