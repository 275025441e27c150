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
    /// files with more than one axis, and dtypes other than the [`DType`](super::DType)s, are refused with
    /// [`Error::Unsupported`]; a malformed file is [`Error::Corrupt`].
    pub fn put_npy(&self, key: impl AsRef<[u8]>, path: impl AsRef<Path>) -> Result<ArrayInfo> {
        let (key, path) = (key.as_ref(), path.as_ref());
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let mut buffered = std::io::BufReader::new(&mut file);
        let header =
            npy::read_header(&mut buffered).map_err(|e| npy_error(path, "importing", e))?;
        // Where the data starts: what the header parser consumed, buffering accounted for.
        let data_start = buffered
            .stream_position()
            .map_err(|e| Error::io("reading", path, e))?;
        drop(buffered);
        let data_len = self.check_claim("put_npy", key, &header)?;
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
    /// into memory first (a reader cannot be rewound if LMDB must retry the write). The size
    /// the header claims is checked against [`MAX_ARRAY_BYTES`](super::MAX_ARRAY_BYTES) before
    /// any data is read, and the buffer grows only as the reader delivers bytes, so a hostile
    /// header costs nothing: a stream that ends early is [`Error::Corrupt`], a failing reader
    /// [`Error::ValueSource`].
    pub fn put_npy_reader(
        &self,
        key: impl AsRef<[u8]>,
        reader: &mut dyn Read,
    ) -> Result<ArrayInfo> {
        let key = key.as_ref();
        let header = npy::read_header(reader).map_err(|e| self.stream_error(key, e))?;
        let data_len = self.check_claim("put_npy_reader", key, &header)?;
        // Fits: check_claim bounded it by MAX_ARRAY_BYTES.
        let len = data_len as usize;
        let mut data: Vec<u8> =
            npy::read_elements(reader, len).map_err(|e| self.stream_error(key, e))?;
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

    /// The data length a `.npy` header claims, refused when the value it makes would exceed
    /// [`MAX_ARRAY_BYTES`](super::MAX_ARRAY_BYTES), before anything is read or reserved.
    fn check_claim(&self, op: &'static str, key: &[u8], header: &NpyHeader) -> Result<u64> {
        let data_len = header.data_len().unwrap_or(u64::MAX);
        let header_len = layout::data_offset(header.shape.len(), 0) as u64;
        self.check_value_size(op, key, header_len.saturating_add(data_len))?;
        Ok(data_len)
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
        let data_len = self.check_claim("import", key, header)?;
        let value_header = layout::encode_header(header.dtype, &header.shape, &[], data_len);
        self.inner.env.write(|wtxn| {
            self.put_value(
                wtxn,
                key,
                header.dtype,
                &value_header,
                data_len as usize,
                |w| write_data(w),
            )
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
            let d = layout::decode(value, key).map_err(|e| self.layout_error(key, e))?;
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
