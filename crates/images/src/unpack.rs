//! Applying one layer tarball to an empty directory, as containerd's overlay snapshotter sees
//! its result: a tree that is one `lowerdir` of an overlayfs mount.
//!
//! Upstream: containerd `archive/tar.go` (`applyNaive`) with `archive/tar_opts_linux.go`'s
//! `OverlayConvertWhiteout`: `.wh.<name>` becomes a 0/0 character device `<name>`,
//! `.wh..wh..opq` becomes `trusted.overlay.opaque=y` on its directory; `compression.
//! DecompressStream` sniffs gzip and zstd by their magic bytes. Device nodes are created when
//! the process may (root), skipped otherwise; owners are kept when running as root; modes,
//! mtimes (directories' last, after their contents) and PAX xattrs are kept. Both the
//! compressed stream's digest and the uncompressed one's (the diff ID) are computed while
//! unpacking, so a layer is read once.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use sha2::{Digest, Sha256};
use tar::EntryType;

/// The AUFS whiteout prefix the OCI image spec uses.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The opaque-directory marker.
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
/// The overlayfs xattr that makes a directory opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What unpacking a layer measured.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// `sha256:` of the bytes as read (the blob's digest).
    pub digest: String,
    /// `sha256:` of the uncompressed tar (the diff ID).
    pub diff_id: String,
    /// Bytes read (the blob's size).
    pub size: u64,
    /// Bytes of uncompressed tar.
    pub uncompressed_size: u64,
}

/// Reads through, hashing and counting, optionally copying what it reads to `tee`.
pub(crate) struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    tee: Option<File>,
}

impl<R: Read> Hashing<R> {
    pub(crate) fn new(inner: R, tee: Option<File>) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
            tee,
        }
    }

    /// Reads to the end, then returns (`sha256:<hex>`, bytes read, the tee file).
    pub(crate) fn finish(mut self) -> io::Result<(String, u64, Option<File>)> {
        io::copy(&mut self, &mut io::sink())?;
        if let Some(f) = &mut self.tee {
            f.flush()?;
        }
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
            self.tee,
        ))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if let Some(f) = &mut self.tee {
            f.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A decompressing reader chosen by the stream's magic bytes.
pub(crate) fn decompress<'a, R: BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Ok(Box::new(r))
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Unpacking failed; `digest` is the blob's digest when the source could still be read to its
/// end (so a corrupt blob is reported as a digest mismatch rather than a tar error).
#[derive(Debug)]
pub struct UnpackError {
    pub error: io::Error,
    pub digest: Option<String>,
}

/// Unpacks the (possibly compressed) layer `src` into the empty directory `dst`; the bytes
/// read are copied to `blob` when given.
pub fn unpack_layer<R: Read>(
    src: R,
    dst: &Path,
    blob: Option<File>,
) -> Result<Unpacked, UnpackError> {
    let mut compressed = Hashing::new(src, blob);
    let unpacked = (|| -> io::Result<(String, u64)> {
        let buffered = BufReader::with_capacity(256 * 1024, &mut compressed);
        let tar_stream = Hashing::new(decompress(buffered)?, None);
        let mut archive = tar::Archive::new(tar_stream);
        apply(&mut archive, dst)?;
        let (diff_id, n, _) = archive.into_inner().finish()?;
        Ok((diff_id, n))
    })();
    match (unpacked, compressed.finish()) {
        (Ok((diff_id, uncompressed_size)), Ok((digest, size, _))) => Ok(Unpacked {
            digest,
            diff_id,
            size,
            uncompressed_size,
        }),
        (Err(error), Ok((digest, _, _))) => Err(UnpackError {
            error,
            digest: Some(digest),
        }),
        (_, Err(error)) => Err(UnpackError {
            error,
            digest: None,
        }),
    }
}

/// Applies the entries of `archive` under `dst`.
fn apply<R: Read>(archive: &mut tar::Archive<R>, dst: &Path) -> io::Result<()> {
    let root = is_root();
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_preserve_ownerships(root);
    archive.set_overwrite(true);
    std::fs::create_dir_all(dst)?;
    let mut dir_times: Vec<(PathBuf, FileTime)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let rel = clean_path(&entry.path()?)?;
        let Some(name) = rel.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue; // the layer's root ("./")
        };
        let header = entry.header().clone();
        if name == WHITEOUT_OPAQUE {
            let parent = real_parent(dst, &rel)?;
            xattr::set(&parent, OVERLAY_OPAQUE_XATTR, b"y")?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let path = real_parent(dst, &rel)?.join(hidden);
            remove_any(&path)?;
            mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))?;
            if root {
                let (uid, gid) = (header.uid()? as u32, header.gid()? as u32);
                std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
            }
            continue;
        }
        let path = dst.join(&rel);
        match header.entry_type() {
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let path = real_parent(dst, &rel)?.join(&name);
                make_special(&header, &path, root)?;
            }
            EntryType::Directory => {
                entry.unpack_in(dst)?;
                if let Ok(mtime) = header.mtime() {
                    dir_times.push((path, FileTime::from_unix_time(mtime as i64, 0)));
                }
            }
            _ => {
                entry.unpack_in(dst)?;
            }
        }
    }
    // Contents first, then the directories' own times (deepest first is not needed: setting
    // a directory's times does not touch its parent's).
    for (path, mtime) in dir_times {
        filetime::set_symlink_file_times(&path, mtime, mtime)?;
    }
    Ok(())
}

/// A device node or FIFO; a device without the right to make one is skipped, as containerd
/// does in a user namespace.
fn make_special(header: &tar::Header, path: &Path, root: bool) -> io::Result<()> {
    let kind = match header.entry_type() {
        EntryType::Char => SFlag::S_IFCHR,
        EntryType::Block => SFlag::S_IFBLK,
        _ => SFlag::S_IFIFO,
    };
    let mode = Mode::from_bits_truncate(header.mode()? & 0o7777);
    // GNU tar leaves the device fields of a FIFO blank.
    let dev = makedev(
        header.device_major().ok().flatten().unwrap_or(0) as u64,
        header.device_minor().ok().flatten().unwrap_or(0) as u64,
    );
    remove_any(path)?;
    match mknod(path, kind, mode, dev) {
        Ok(()) => {}
        Err(nix::errno::Errno::EPERM) if kind != SFlag::S_IFIFO => {
            tracing::debug!(path = %path.display(), "device node skipped: not permitted");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    }
    if root {
        std::os::unix::fs::lchown(path, Some(header.uid()? as u32), Some(header.gid()? as u32))?;
    }
    std::fs::set_permissions(
        path,
        std::os::unix::fs::PermissionsExt::from_mode(header.mode()? & 0o7777),
    )?;
    if let Ok(mtime) = header.mtime() {
        let t = FileTime::from_unix_time(mtime as i64, 0);
        filetime::set_symlink_file_times(path, t, t)?;
    }
    Ok(())
}

/// Removes whatever is at `path` (a file, a link or a whole directory), if anything.
fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The directory `rel` is in, under `dst`, created as needed; a symlink on the way is refused,
/// so a whiteout or a device node can never land outside the layer (the tar crate checks the
/// same for what it unpacks).
fn real_parent(dst: &Path, rel: &Path) -> io::Result<PathBuf> {
    let mut dir = dst.to_path_buf();
    for c in rel.parent().into_iter().flat_map(|p| p.components()) {
        dir.push(c);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a directory inside the layer", rel.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir(&dir)?,
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

/// An entry's path relative to the layer root; `..` is refused.
fn clean_path(p: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("path {} escapes the layer", p.display()),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1);
            if kind.is_symlink() {
                b.append_link(&mut h, path, link).unwrap();
            } else {
                b.append_data(&mut h, path, io::empty()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_never_follow_a_symlink_out_of_the_layer() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), b"keep").unwrap();
        let target = outside.path().to_str().unwrap();
        for entry in [".wh.victim", ".wh..wh..opq"] {
            let layer = tar_of(&[
                ("x", tar::EntryType::Symlink, target),
                (&format!("x/{entry}"), tar::EntryType::Regular, ""),
            ]);
            let dst = tempfile::tempdir().unwrap();
            let err = unpack_layer(&layer[..], &dst.path().join("fs"), None).unwrap_err();
            assert!(
                err.error
                    .to_string()
                    .contains("not a directory inside the layer"),
                "{err:?}"
            );
            assert_eq!(
                std::fs::read(outside.path().join("victim")).unwrap(),
                b"keep"
            );
        }
        assert!(xattr::get(outside.path(), OVERLAY_OPAQUE_XATTR)
            .unwrap()
            .is_none());
    }

    #[test]
    fn digests_of_a_plain_tar_and_a_fifo() {
        let layer = tar_of(&[
            ("p", tar::EntryType::Fifo, ""),
            ("d/", tar::EntryType::Directory, ""),
        ]);
        let dst = tempfile::tempdir().unwrap();
        let u = unpack_layer(&layer[..], &dst.path().join("fs"), None).unwrap();
        assert_eq!(u.digest, sha256_digest(&layer));
        assert_eq!(u.diff_id, u.digest, "uncompressed: the blob is the tar");
        let m = std::fs::symlink_metadata(dst.path().join("fs/p")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()));
        assert!(dst.path().join("fs/d").is_dir());
    }
}
