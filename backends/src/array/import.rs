//! `.npy` files in and out of an [`ArrayStore`]: streamed imports and atomic exports.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::info::ArrayInfo;
use super::layout;
use super::npy::{self, NpyError, NpyHeader};
use super::store::ArrayStore;
use crate::lmdb::TxnError;
use crate::{Error, Result};

impl ArrayStore {
    /// Imports the `.npy` file at `path` under `key`, streaming its data in 1 MiB chunks
    /// straight into the space LMDB reserves for the value (no buffer of the whole array; LMDB
    /// itself keeps the new pages in memory until the commit). Big-endian files are converted; fortran-order
    /// files with more than one axis, and dtypes other than the [`DType`]s, are refused with
    /// [`Error::Unsupported`]; a malformed file is [`Error::Corrupt`].
    pub fn put_npy(&self, key: impl AsRef<[u8]>, path: impl AsRef<Path>) -> Result<ArrayInfo> {
        let (key, path) = (key.as_ref(), path.as_ref());
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let header = npy::read_header(&mut std::io::BufReader::new(&mut file))
            .map_err(|e| npy_error(path, "importing", e))?;
        let data_len = header.data_len().expect("checked by read_header");
        let data_start = npy_data_start(&mut file, path)?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", path, e))?
            .len();
        if file_len < data_start + data_len {
            return Err(Error::corrupt(
                path,
                None,
                format!(
                    "the .npy data is cut: {file_len} bytes, need {}",
                    data_start + data_len
                ),
            ));
        }
        self.import(key, &header, &mut |w: &mut dyn Write| {
            // A retried transaction reads the data again from its start.
            file.seek(SeekFrom::Start(data_start))?;
            copy_exact(&mut file, w, data_len, &header)
        })
        .map_err(|e| match e {
            Error::Io { source, .. } => Error::io("importing", path, source),
            e => e,
        })?;
        Ok(ArrayInfo {
            dtype: header.dtype,
            shape: header.shape,
            nbytes: data_len,
        })
    }

    /// Imports a `.npy` stream under `key`. Unlike [`ArrayStore::put_npy`] the data is read
    /// into memory first (a reader cannot be rewound if LMDB must retry the write).
    pub fn put_npy_reader(
        &self,
        key: impl AsRef<[u8]>,
        reader: &mut dyn Read,
    ) -> Result<ArrayInfo> {
        let key = key.as_ref();
        let header = npy::read_header(reader).map_err(|e| self.stream_error(key, e))?;
        let data_len = header.data_len().expect("checked by read_header");
        let len = usize::try_from(data_len).map_err(|_| Error::Unsupported {
            op: "put_npy_reader",
            path: self.path().to_path_buf(),
            reason: "array too large".into(),
        })?;
        let mut data = vec![0u8; len];
        reader
            .read_exact(&mut data)
            .map_err(|e| self.stream_error(key, e.into()))?;
        if header.big_endian {
            npy::swap_bytes(&mut data, header.dtype.size());
        }
        let plain = NpyHeader {
            big_endian: false,
            ..header.clone()
        };
        self.import(key, &plain, &mut |w: &mut dyn Write| w.write_all(&data))?;
        Ok(ArrayInfo {
            dtype: header.dtype,
            shape: header.shape,
            nbytes: data_len,
        })
    }

    /// The error for a `.npy` stream given to [`ArrayStore::put_npy_reader`]: the reader's own
    /// failure is [`Error::ValueSource`]; malformed bytes are corrupt *input*, reported on the
    /// store's path with words saying it is the stream, not the store, that is damaged.
    fn stream_error(&self, key: &[u8], e: NpyError) -> Error {
        match e {
            NpyError::Io(source) => Error::ValueSource {
                key: crate::KeyDisplay::new(key),
                source,
            },
            NpyError::Corrupt(reason) => self.corrupt(
                key,
                format!("the .npy stream given to put_npy_reader (nothing was stored): {reason}"),
            ),
            e => npy_error(self.path(), "put_npy_reader", e),
        }
    }

    fn import(
        &self,
        key: &[u8],
        header: &NpyHeader,
        write_data: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let data_len = header.data_len().expect("checked by read_header");
        let value_header = layout::encode_header(header.dtype, &header.shape, &[], data_len);
        let total = usize::try_from(data_len).map_err(|_| Error::Unsupported {
            op: "put_npy",
            path: self.path().to_path_buf(),
            reason: "array too large".into(),
        })?;
        self.inner.env.write(|wtxn| {
            self.put_value(wtxn, key, header.dtype, &value_header, total, |w| {
                write_data(w)
            })
        })
    }

    /// Writes the array under `key` to a `.npy` file at `path` (version 1.0, C order,
    /// little-endian) that `numpy.load` reads; returns `false` if the key is missing. The file
    /// appears atomically (temporary file, then rename).
    pub fn export_npy(&self, key: impl AsRef<[u8]>, path: impl AsRef<Path>) -> Result<bool> {
        let (key, path) = (key.as_ref(), path.as_ref());
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)
            .map_err(|e| Error::io("creating a temporary file in", &dir, e))?;
        let found = self.inner.env.read(|txn| -> Result<bool, TxnError> {
            let Some(value) = self.raw_value(txn, key)? else {
                return Ok(false);
            };
            let d = layout::decode(value).map_err(|e| self.layout_error(key, e))?;
            d.check_data().map_err(|e| self.layout_error(key, e))?;
            tmp.as_file_mut()
                .set_len(0)
                .and_then(|_| tmp.as_file_mut().seek(SeekFrom::Start(0)))
                .and_then(|_| {
                    let mut w = std::io::BufWriter::new(tmp.as_file_mut());
                    npy::write_npy(&mut w, d.dtype, &d.shape, d.data)?;
                    w.flush()
                })
                .map_err(|e| Error::io("writing", path, e))?;
            Ok(true)
        })?;
        if found {
            tmp.as_file()
                .sync_all()
                .map_err(|e| Error::io("syncing", path, e))?;
            tmp.persist(path)
                .map_err(|e| Error::io("renaming into", path, e.error))?;
        }
        Ok(found)
    }
}

/// Where the data starts in an `.npy` file whose header was just read through a buffered
/// reader: re-reads the fixed prefix, which says how long the header is.
fn npy_data_start(file: &mut std::fs::File, path: &Path) -> Result<u64> {
    let mut prefix = [0u8; 12];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut prefix))
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(match prefix[6] {
        1 => 10 + u16::from_le_bytes([prefix[8], prefix[9]]) as u64,
        _ => 12 + u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as u64,
    })
}

/// Copies exactly `len` bytes from `r` to `w`, byte-swapping big-endian elements.
fn copy_exact(r: &mut dyn Read, w: &mut dyn Write, len: u64, h: &NpyHeader) -> std::io::Result<()> {
    let size = h.dtype.size();
    let mut buf = vec![0u8; (1 << 20) / 8 * 8];
    let mut left = len;
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        r.read_exact(&mut buf[..n])?;
        if h.big_endian {
            npy::swap_bytes(&mut buf[..n], size);
        }
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

pub(crate) fn npy_error(path: impl Into<PathBuf>, op: &'static str, e: NpyError) -> Error {
    let path = path.into();
    match e {
        NpyError::Io(e) => Error::io(op, path, e),
        NpyError::Corrupt(reason) => Error::corrupt(path, None, reason),
        NpyError::Unsupported(reason) => Error::Unsupported { op, path, reason },
        NpyError::WrongType(reason) => Error::InvalidArgument { op, path, reason },
    }
}
