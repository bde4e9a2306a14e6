//! What the agent and a container's shim say to each other on the shim's attach socket
//! (`<container dir>/attach.sock`) — the part containerd's CRI plugin and its shim share
//! through the container's stdio FIFOs and the shim's `ResizePty`/`CloseIO` calls, here one
//! Unix stream per attach session:
//!
//! - the agent first sends one JSON line, [`AttachRequest`] (which streams it wants);
//! - then both sides send frames: one channel byte, the payload's length (u32, big endian),
//!   the payload. Agent → shim: [`STDIN`] data, [`RESIZE`] (width and height, two u16 big
//!   endian), [`CLOSE`] (end of the session's stdin; also what the end of the stream means).
//!   Shim → agent: [`STDOUT`] and [`STDERR`] data (with a terminal, everything is stdout).
//! - the shim closes the stream when the container's output has ended (it exited), or when
//!   the session's stdin ended and the session is over (see [`super::stdio`]).
//!
//! The channel numbers are the Kubernetes stream protocols' (`v5.channel.k8s.io`).
//!
//! The socket is reached through `/proc/self/fd/<dir fd>/attach.sock`: a container directory
//! can be longer than the 107 bytes a socket address holds.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// The largest payload a frame carries (what the shim reads from the container at once).
pub const MAX_FRAME: usize = 32 * 1024;

/// The streams an attach session wants (the kubelet's `remotecommand` options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// The attach socket of the container whose directory is `dir`.
pub fn socket_file(dir: &Path) -> PathBuf {
    dir.join("attach.sock")
}

/// `dir` opened as a path (no read access needed), and the short name of `name` inside it by
/// way of the open descriptor — bind or connect there while the `File` is alive.
pub fn short_path(dir: &Path, name: &str) -> io::Result<(File, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_DIRECTORY)
        .open(dir)?;
    let p = PathBuf::from(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()));
    Ok((d, p))
}

/// Connect to the attach socket of the container whose directory is `dir`.
pub fn connect(dir: &Path) -> io::Result<std::os::unix::net::UnixStream> {
    let (_dir, path) = short_path(dir, "attach.sock")?;
    std::os::unix::net::UnixStream::connect(path)
}

/// One frame as bytes.
pub fn encode(channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 5);
    v.push(channel);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn write_frame(w: &mut impl Write, channel: u8, payload: &[u8]) -> io::Result<()> {
    w.write_all(&encode(channel, payload))
}

/// The next frame; `None` at the end of the stream. A frame longer than [`MAX_FRAME`] is an
/// error.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

/// A [`RESIZE`] payload.
pub fn resize_payload(width: u16, height: u16) -> [u8; 4] {
    let (w, h) = (width.to_be_bytes(), height.to_be_bytes());
    [w[0], w[1], h[0], h[1]]
}

/// Width and height of a [`RESIZE`] payload.
pub fn parse_resize(p: &[u8]) -> Option<(u16, u16)> {
    match p {
        [a, b, c, d] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = encode(STDIN, b"hello");
        buf.extend(encode(RESIZE, &resize_payload(80, 24)));
        buf.extend(encode(CLOSE, &[]));
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((STDIN, b"hello".to_vec()))
        );
        let (ch, p) = read_frame(&mut r).unwrap().unwrap();
        assert_eq!((ch, parse_resize(&p)), (RESIZE, Some((80, 24))));
        assert_eq!(read_frame(&mut r).unwrap(), Some((CLOSE, vec![])));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        let huge = [STDIN, 0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut &huge[..]).is_err());
    }

    #[test]
    fn a_long_directory_is_reached_through_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let long = dir.path().join("d".repeat(120));
        std::fs::create_dir(&long).unwrap();
        let (_d, path) = short_path(&long, "attach.sock").unwrap();
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(socket_file(&long).exists());
        let _client = connect(&long).unwrap();
        listener.accept().unwrap();
    }
}
