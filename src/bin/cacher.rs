//! `cacher`: look inside a cache store, check it, clean it, move it. See `src/cli/README.md`.

// The tool is a private module of the binary, so the library stays free of clap and of
// terminal code; `#[path]` keeps its files in `src/cli/` beside the library they drive.
#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
