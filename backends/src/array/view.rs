//! What a typed read returns: [`ArrayView`] (one array, lent or copied) and [`Rows`] (many
//! vectors stacked into a matrix).

use std::borrow::Cow;
use std::path::Path;

use super::dtype::Element;
use crate::{Error, Result};

/// A typed array read from an [`ArrayStore`](super::ArrayStore): the elements (lent from the map when aligned,
/// see [`ArrayView::is_zero_copy`]), the shape, and the raw per-key metadata.
#[derive(Debug, Clone)]
pub struct ArrayView<'t, T: Element> {
    pub(super) data: Cow<'t, [T]>,
    pub(super) shape: Vec<u64>,
    pub(super) metadata: &'t [u8],
    /// The store's directory, for errors about the metadata.
    pub(super) path: &'t Path,
}

impl<'t, T: Element> ArrayView<'t, T> {
    /// The elements in C order.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The shape (empty for a 0-d array, which holds one element).
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// True when the elements are borrowed from LMDB's map rather than copied.
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.data, Cow::Borrowed(_))
    }

    /// The per-key JSON metadata, if any was stored.
    pub fn metadata(&self) -> Result<Option<serde_json::Value>> {
        parse_json(self.metadata, self.path, "array metadata")
    }

    /// The elements as an owned `Vec` and the shape.
    pub fn into_owned(self) -> (Vec<T>, Vec<u64>) {
        (self.data.into_owned(), self.shape)
    }
}

impl<T: Element> std::ops::Deref for ArrayView<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.data
    }
}

/// Rows gathered by [`ArrayStore::get_rows`](super::ArrayStore::get_rows): one 1-D vector per requested key, stacked into a
/// contiguous row-major matrix.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Rows<T> {
    /// `rows * cols` elements, row `i` for the `i`-th requested key.
    pub data: Vec<T>,
    /// Number of rows (= keys requested).
    pub rows: usize,
    /// Length of every vector.
    pub cols: usize,
    /// Indexes of keys that were missing; their rows are zeros.
    pub missing: Vec<usize>,
}

/// Stored JSON metadata (`what`: "array metadata", "store metadata") of the store at `path`;
/// empty bytes are no metadata.
pub(super) fn parse_json(
    bytes: &[u8],
    path: &Path,
    what: &str,
) -> Result<Option<serde_json::Value>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| Error::corrupt(path, None, format!("{what} is not JSON: {e}")))
}
