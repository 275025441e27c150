//! The `cacher` command-line tool: commands, arguments and exit codes. The manual, with the
//! JSON schema and the dump format, is `src/cli/README.md`.

#[cfg(feature = "archive")]
mod archive;
mod compact;
mod doctor;
mod dump;
mod failure;
mod inspect;
mod keyarg;
mod maintain;
#[cfg(feature = "lmdb")]
mod numpy;
mod open;
mod output;
mod progress;
mod quarantine;
mod revisions;
mod units;
mod upgrade;
mod walk;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use failure::Failure;
use output::Report;

const EXIT_CODES: &str = "\
Exit codes: 0 ok; 1 problems found (damaged entries, missing key); 2 bad usage or the store \
cannot be opened.
With --json every command prints one JSON object on stdout (schema in src/cli/README.md).
Keys: UTF-8 text, or hex:6869 for arbitrary bytes (text:hex:.. for text starting with hex:).";

/// Inspect, verify, evict, export and import a cacher store (DirStore, LogStore, LmdbStore,
/// ArrayStore, NumpyLmdb). The store kind is detected from the path.
#[derive(Debug, Parser)]
#[command(name = "cacher", version, after_help = EXIT_CODES)]
struct Cli {
    /// Print one JSON object on stdout instead of a human table.
    #[arg(long, global = true)]
    json: bool,

    /// Check envelope MACs with the cache's MAC key, read from FILE (32 raw bytes, or 64 hex
    /// digits); without it a MAC is reported, not checked.
    #[arg(long, global = true, value_name = "FILE", env = "CACHER_MAC_KEY_FILE")]
    mac_key_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// The store path every store command takes first.
#[derive(Debug, Args)]
struct StoreArg {
    /// The store: a DirStore, HybridStore or LMDB directory, or a LogStore file.
    store: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Entries, bytes, per-namespace counts, expired entries, oldest/newest, store facts.
    #[command(after_help = "Example:\n  cacher stats ~/.cache/myapp")]
    Stats(StoreArg),

    /// List entries (key, size, format, created, expires).
    #[command(
        after_help = "Examples:\n  cacher ls ./cache\n  cacher ls ./cache --namespace myapp::fetch\n  cacher ls ./cache --prefix user:\n  cacher ls ./cache --revisions"
    )]
    Ls {
        #[command(flatten)]
        store: StoreArg,
        /// Only entries of this namespace (the part of a key before `@version:hash`).
        #[arg(long)]
        namespace: Option<String>,
        /// Only keys starting with this (UTF-8 text or hex:..).
        #[arg(long)]
        prefix: Option<String>,
        /// Also list the records of old revisions and their manifests (kept under reserved
        /// keys in the same store), marked; hidden otherwise.
        #[arg(long)]
        revisions: bool,
    },

    /// Show one entry's envelope header: format, created, expires, revision, size, MAC.
    #[command(after_help = "Example:\n  cacher show ./cache 'square@1:5f0c…'")]
    Show {
        #[command(flatten)]
        store: StoreArg,
        /// The key (UTF-8 text or hex:..).
        key: String,
    },

    /// Print one entry's value, decoded to JSON where its format allows.
    #[command(
        after_help = "Examples:\n  cacher get ./cache user:42\n  cacher get ./cache user:42 --json\n  cacher get ./cache hex:00ff --raw > value.bin"
    )]
    Get {
        #[command(flatten)]
        store: StoreArg,
        /// The key (UTF-8 text or hex:..).
        key: String,
        /// Write the value's bytes (after decompression) to stdout, unchanged.
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        /// Read old revision N instead of the current value (see `cacher revisions`).
        #[arg(long, value_name = "N", conflicts_with_all = ["raw", "name"])]
        revision: Option<u64>,
        /// Read the revision named NAME.
        #[arg(long, value_name = "NAME", conflicts_with = "raw")]
        name: Option<String>,
    },

    /// List a key's revisions: number, name, when written, size, where (store or archive).
    #[command(after_help = "Example:\n  cacher revisions ./cache dump")]
    Revisions {
        #[command(flatten)]
        store: StoreArg,
        /// The key (UTF-8 text or hex:..).
        key: String,
    },

    /// Move old revisions (or expired values) into a zstd archive file beside the store.
    #[cfg(feature = "archive")]
    #[command(
        after_help = "Examples:\n  cacher archive ./cache --older-than 30d\n  cacher archive ./cache --beyond-count 2 --expired"
    )]
    Archive {
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        args: archive::ArchiveArgs,
    },

    /// Remove entries.
    #[command(after_help = "Example:\n  cacher rm ./cache user:42 hex:00ff")]
    Rm {
        #[command(flatten)]
        store: StoreArg,
        /// The keys (UTF-8 text or hex:..).
        #[arg(required = true)]
        keys: Vec<String>,
    },

    /// Remove every entry of a namespace (all its versions), or of the whole store.
    #[command(
        after_help = "Examples:\n  cacher clear ./cache --namespace myapp::fetch\n  cacher clear ./cache --all"
    )]
    Clear {
        #[command(flatten)]
        store: StoreArg,
        /// The namespace to clear.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        namespace: Option<String>,
        /// Clear every entry.
        #[arg(long)]
        all: bool,
    },

    /// Check every entry (store checksums, then envelopes); exit 1 if any is damaged.
    #[command(
        after_help = "Examples:\n  cacher verify ./cache && echo healthy\n  cacher verify ./cache --quarantine   # damaged entries go to ./cache.quarantine/"
    )]
    Verify {
        #[command(flatten)]
        store: StoreArg,
        /// Move each damaged entry out of the store into `<store>.quarantine/` (its raw bytes,
        /// one file per entry, and a line in `index.jsonl`); the cache then recomputes it.
        #[arg(long)]
        quarantine: bool,
    },

    /// Rewrite an LmdbStore of value layout 1 (values without a store checksum) as layout 2,
    /// in place, in one transaction (a HybridStore: its index).
    #[command(
        after_help = "Example:\n  cacher verify ./lmdb-cache   # \"4 entries have no store checksum (layout 1)\"\n  cacher upgrade ./lmdb-cache"
    )]
    Upgrade(StoreArg),

    /// Remove expired, old or surplus entries (surplus: oldest created first).
    #[command(
        after_help = "Examples:\n  cacher evict ./cache --expired\n  cacher evict ./cache --older-than 7d\n  cacher evict ./cache --max-bytes 500MiB --max-entries 100000 --dry-run"
    )]
    Evict {
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        rules: maintain::EvictRules,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },

    /// Give back the space of overwritten and removed values (LogStore in place; LmdbStore
    /// into a new directory).
    #[command(
        after_help = "Examples:\n  cacher compact ./cache.log\n  cacher compact ./lmdb-cache --into ./lmdb-cache.new"
    )]
    Compact {
        #[command(flatten)]
        store: StoreArg,
        /// LmdbStore: write the compacted copy into this new directory.
        #[arg(long, value_name = "NEW_DIR")]
        into: Option<PathBuf>,
    },

    /// Write every entry to a dump file (format `cacher-dump` v1, see README).
    #[command(
        after_help = "Examples:\n  cacher export ./cache cache.dump\n  cacher export ./cache cache.dump.zst --compress"
    )]
    Export {
        #[command(flatten)]
        store: StoreArg,
        /// The dump file to create (refused if it exists).
        file: PathBuf,
        /// Compress the dump with zstd (`import` tells from the header).
        #[arg(long)]
        compress: bool,
    },

    /// Read a dump file, compressed or not, into a store (an existing key is overwritten).
    #[command(
        after_help = "Examples:\n  cacher import ./cache cache.dump\n  cacher import ./new.log cache.dump --create log"
    )]
    Import {
        #[command(flatten)]
        store: StoreArg,
        /// The dump file written by `cacher export`.
        file: PathBuf,
        /// Create a new store of this kind if the path does not exist.
        #[arg(long, value_enum)]
        create: Option<open::NewKind>,
    },

    /// Examine a store when something is off: kind and layout, leftover temp files, lock
    /// holders, permissions, free disk space, stale LMDB readers, damage; and what to do.
    #[command(
        after_help = "Example:\n  cacher doctor ~/.cache/myapp\nExit 0 healthy, 1 problems found (each with what to do), 2 could not run."
    )]
    Doctor(StoreArg),

    /// Print a shell completion script.
    #[command(after_help = "Example:\n  cacher completions bash > /etc/bash_completion.d/cacher")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::Stats(_) => "stats",
            Command::Ls { .. } => "ls",
            Command::Show { .. } => "show",
            Command::Get { .. } => "get",
            Command::Revisions { .. } => "revisions",
            #[cfg(feature = "archive")]
            Command::Archive { .. } => "archive",
            Command::Rm { .. } => "rm",
            Command::Clear { .. } => "clear",
            Command::Verify { .. } => "verify",
            Command::Upgrade(_) => "upgrade",
            Command::Evict { .. } => "evict",
            Command::Compact { .. } => "compact",
            Command::Export { .. } => "export",
            Command::Import { .. } => "import",
            Command::Doctor(_) => "doctor",
            Command::Completions { .. } => "completions",
        }
    }
}

/// Parses the command line, runs the command, prints its report, returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints usage errors and exits 2, help and version and exits 0.
        Err(e) => e.exit(),
    };
    let name = cli.command.name();
    let mac_key = match cli.mac_key_file.as_deref().map(keyarg::mac_key).transpose() {
        Ok(key) => key,
        Err(failure) => return failure.print(name, cli.json),
    };
    match run(cli.command, cli.json, mac_key) {
        Ok(report) => report.print(name, cli.json),
        Err(failure) => failure.print(name, cli.json),
    }
}

fn run(command: Command, json: bool, mac_key: Option<[u8; 32]>) -> Result<Report, Failure> {
    use open::Access::{ReadOnly, Write};
    let open =
        |path: &std::path::Path, access| open::open(path, access).map(|o| o.with_mac_key(mac_key));
    match command {
        Command::Stats(s) => inspect::stats(&open(&s.store, ReadOnly)?),
        Command::Ls {
            store,
            namespace,
            prefix,
            revisions,
        } => {
            let prefix = prefix.map(|p| keyarg::parse(&p)).transpose()?;
            inspect::ls(
                &open(&store.store, ReadOnly)?,
                namespace.as_deref(),
                prefix.as_deref(),
                revisions,
            )
        }
        Command::Show { store, key } => {
            let key = keyarg::parse(&key)?;
            inspect::show(&open(&store.store, ReadOnly)?, &key)
        }
        Command::Get {
            store,
            key,
            raw,
            revision,
            name,
        } => {
            let key = keyarg::parse(&key)?;
            let which = match (revision, name) {
                (Some(n), _) => revisions::Which::Number(n),
                (None, Some(name)) => revisions::Which::Name(name),
                (None, None) => {
                    return inspect::get(&open(&store.store, ReadOnly)?, &key, raw, json)
                }
            };
            let over = revisions::cache_over(open(&store.store, ReadOnly)?, mac_key, None)?;
            revisions::get(over, &key, &which, json)
        }
        Command::Revisions { store, key } => {
            let key = keyarg::parse(&key)?;
            let over = revisions::cache_over(open(&store.store, ReadOnly)?, mac_key, None)?;
            revisions::list(over, &key)
        }
        #[cfg(feature = "archive")]
        Command::Archive { store, args } => {
            let dir = args.archive_dir.clone();
            let over = revisions::cache_over(open(&store.store, Write)?, mac_key, dir)?;
            archive::archive(over, &args)
        }
        Command::Rm { store, keys } => {
            let keys = keys
                .iter()
                .map(|k| keyarg::parse(k))
                .collect::<Result<Vec<_>, _>>()?;
            maintain::rm(&open(&store.store, Write)?, &keys)
        }
        Command::Clear {
            store,
            namespace,
            all: _,
        } => maintain::clear(&open(&store.store, Write)?, namespace.as_deref()),
        Command::Verify { store, quarantine } => match open(&store.store, ReadOnly) {
            Ok(opened) if quarantine => {
                maintain::verify_and_quarantine(opened, || open(&store.store, Write))
            }
            Ok(opened) => maintain::verify(&opened),
            // A store too damaged to open is what verify looks for: exit 1, not 2.
            Err(failure) if failure.is_damage() => {
                Ok(maintain::unopenable(&store.store, &failure, quarantine))
            }
            Err(failure) => Err(failure),
        },
        Command::Upgrade(s) => {
            upgrade::check_kind(&s.store)?;
            upgrade::upgrade(&open(&s.store, Write)?)
        }
        Command::Evict {
            store,
            rules,
            dry_run,
        } => {
            let access = if dry_run { ReadOnly } else { Write };
            maintain::evict(&open(&store.store, access)?, &rules, dry_run)
        }
        Command::Compact { store, into } => {
            // A LogStore compacts under its writer lock; an LMDB copy only reads.
            let access = if into.is_some() { ReadOnly } else { Write };
            compact::compact(&open(&store.store, access)?, into.as_deref())
        }
        Command::Export {
            store,
            file,
            compress,
        } => dump::export(&open(&store.store, ReadOnly)?, &file, compress),
        Command::Import {
            store,
            file,
            create,
        } => {
            // The dump is checked before a store is created for it.
            let reader = dump::DumpReader::open(&file)?;
            let opened = match create {
                Some(kind) if !store.store.exists() => open::create(&store.store, kind)?,
                _ => open(&store.store, Write)?,
            };
            dump::import(&opened, reader)
        }
        Command::Doctor(s) => doctor::doctor(&s.store, mac_key),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "cacher", &mut std::io::stdout());
            Ok(Report::silent())
        }
    }
}
