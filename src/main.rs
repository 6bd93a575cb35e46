//! The `postern` binary: parses argv, then hands over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any file or thread exists: whatever Postern creates is its user's alone.
    postern::datadir::restrict_umask();
    // One crypto provider for the whole process (design §7): rustls, reqwest and
    // tokio-rustls all pick this default up.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("no other rustls crypto provider is installed before main");
    postern::cli::main()
}
