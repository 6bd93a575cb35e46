//! The `postern` binary: parses argv, then hands over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any file or thread exists: whatever Postern creates is its user's alone.
    postern::datadir::restrict_umask();
    return_large_allocations();
    // One crypto provider for the whole process (design §7): rustls, reqwest and
    // tokio-rustls all pick this default up.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("no other rustls crypto provider is installed before main");
    postern::cli::main()
}

/// Makes glibc's malloc serve every allocation of 1 MiB or more with its own mapping, given
/// back to the system when freed. By default glibc raises that threshold to the largest
/// block freed so far (up to 32 MiB), after which the buffers of large messages come from
/// per-thread heaps that keep the memory: six 25 MB messages handled two at a time left
/// the process at +192 MB instead of +86 MB (`CLIENTS=6 BUDGET_MB=64
/// bench/big_message.sh 18`). Fixing the threshold turns that adjustment off.
fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
