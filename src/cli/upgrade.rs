//! `cacher upgrade`: an LmdbStore of value layout 1 (values without a store checksum)
//! rewritten in place as layout 2, through `LmdbStore::upgrade_layout`; a HybridStore's
//! index is such an LmdbStore.

use std::path::Path;

use super::failure::Failure;
use super::open::{self, Kind, Opened};
use super::output::Report;

/// Refuses a store kind without value layouts before anything opens it for writing (a
/// LogStore writer's open would cut a torn tail).
pub fn check_kind(path: &Path) -> Result<(), Failure> {
    match open::detect(path)? {
        Kind::Lmdb | Kind::Hybrid if cfg!(feature = "lmdb") => Ok(()),
        kind => Err(refused(path, kind)),
    }
}

fn refused(path: &Path, kind: Kind) -> Failure {
    Failure::unusable(
        path,
        format!(
            "{} is a {}: only an LmdbStore (or a HybridStore's index) has a value layout to \
             upgrade",
            path.display(),
            kind.name()
        ),
    )
}

/// `cacher upgrade STORE`: exit 0 whether entries were rewritten or the store was already at
/// layout 2; exit 2 for a store kind without value layouts.
#[cfg(feature = "lmdb")]
pub fn upgrade(opened: &Opened) -> Result<Report, Failure> {
    let Some(lmdb) = opened
        .lmdb()
        .or(opened.hybrid().map(cacher::store::HybridStore::index))
    else {
        return Err(refused(&opened.path, opened.kind));
    };
    let from = lmdb.layout_version();
    let rewritten = lmdb
        .upgrade_layout()
        .map_err(|e| Failure::store(&opened.path, "cannot upgrade", &e).damaged(e.is_corrupt()))?;
    let to = lmdb.layout_version();
    let human = if rewritten == 0 && from == to {
        format!(
            "{} is at value layout {to} already: nothing to do\n",
            opened.path.display()
        )
    } else {
        format!(
            "upgraded {} from value layout {from} to {to}: {} rewritten with a checksum\n",
            opened.path.display(),
            super::units::entries(rewritten)
        )
    };
    Ok(Report::new(opened, 0)
        .field("from_layout", from.into())
        .field("layout", to.into())
        .field("rewritten", rewritten.into())
        .human(human))
}

/// Without the `lmdb` feature no store kind has a value layout to upgrade.
#[cfg(not(feature = "lmdb"))]
pub fn upgrade(opened: &Opened) -> Result<Report, Failure> {
    Err(refused(&opened.path, opened.kind))
}
