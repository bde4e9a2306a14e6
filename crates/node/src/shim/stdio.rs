//! The container's stdio as its shim holds it, for `kubectl attach` — what containerd's CRI
//! `ContainerIO` (`internal/cri/io/container_io.go`) and its shim's console do:
//!
//! - a container with `stdin: true` gets a pipe (or, with `tty: true`, a terminal) as its
//!   stdin, whose writing end the shim keeps, so that a later attach can write to it; without
//!   `stdin` it reads /dev/null (containerd leaves its stdin unset);
//! - its output goes, besides the CRI log, to every attached session that asked for that
//!   stream ([`HeldStdio::broadcast`], containerd's `stdoutGroup`/`stderrGroup`): live output,
//!   nothing from before the session;
//! - when a session's stdin ends: with `stdinOnce` and no terminal the container's stdin is
//!   closed (it reads EOF) and the session goes on until the container's output ends; otherwise
//!   the session ends there (a container without `stdin` takes no session's stdin: such a
//!   session lasts until the output ends) (containerd's `Attach`: "when (opts.StdinOnce && opts.Tty) we have
//!   to close container stdin and keep stdout and stderr open until container stops" is its
//!   comment, its code closes stdin only for `StdinOnce && !Tty`, as here);
//! - resizes go to the terminal ([`HeldStdio`] keeps the pty master).
//!
//! Deviation: a session whose socket does not take output for [`WRITE_TIMEOUT`] is dropped;
//! containerd's writer group blocks the container's output on a stuck client.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wire::{self, AttachRequest};

/// How long a write of output to one session may block before the session is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a new session may take to say what it wants.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The held stdio of one container.
pub struct HeldStdio {
    /// The writing end of the container's stdin (a pipe, or a copy of the pty master); `None`
    /// without `stdin` or once closed (`stdinOnce`).
    stdin: Mutex<Option<File>>,
    /// Whether the container has `stdin` at all.
    has_stdin: bool,
    /// The terminal's master, for resizes.
    pty: Option<OwnedFd>,
    stdin_once: bool,
    sessions: Mutex<Sessions>,
    socket: Mutex<Option<PathBuf>>,
}

#[derive(Default)]
struct Sessions {
    next_id: u64,
    list: Vec<Session>,
    /// The container's output has ended: no more sessions.
    ended: bool,
}

struct Session {
    id: u64,
    stream: UnixStream,
    stdout: bool,
    stderr: bool,
}

impl HeldStdio {
    pub fn new(stdin: Option<File>, pty: Option<OwnedFd>, stdin_once: bool) -> Arc<HeldStdio> {
        Arc::new(HeldStdio {
            has_stdin: stdin.is_some(),
            stdin: Mutex::new(stdin),
            pty,
            stdin_once,
            sessions: Mutex::default(),
            socket: Mutex::default(),
        })
    }

    fn tty(&self) -> bool {
        self.pty.is_some()
    }

    /// The container's output on `channel` ([`wire::STDOUT`] or [`wire::STDERR`]) to every
    /// session that wants it; a session that cannot take it is dropped.
    pub fn broadcast(&self, channel: u8, data: &[u8]) {
        let mut s = self.sessions.lock().expect("sessions lock");
        if s.list.is_empty() {
            return;
        }
        let frame = wire::encode(channel, data);
        s.list.retain_mut(|c| {
            let wanted = if channel == wire::STDOUT {
                c.stdout
            } else {
                c.stderr
            };
            !wanted || c.stream.write_all(&frame).is_ok() || {
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
                false
            }
        });
    }

    /// Bind the attach socket of the container whose directory is `dir` — before the
    /// container starts, so that a session can begin with its first output (connections wait
    /// in the backlog until [`HeldStdio::serve_on`]).
    pub fn bind(dir: &Path) -> io::Result<UnixListener> {
        let _ = std::fs::remove_file(wire::socket_file(dir));
        let (_dir, short) = wire::short_path(dir, "attach.sock")?;
        let listener = UnixListener::bind(&short)?;
        // As every file the agent writes (`layout`): the owner's only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600))?;
        Ok(listener)
    }

    /// Serve the attach socket `listener` of the container whose directory is `dir` (on a
    /// thread of its own) until [`HeldStdio::end`].
    pub fn serve_on(self: &Arc<Self>, listener: UnixListener, dir: &Path) {
        *self.socket.lock().expect("socket lock") = Some(wire::socket_file(dir));
        let me = self.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if me.sessions.lock().expect("sessions lock").ended {
                    break;
                }
                let me = me.clone();
                std::thread::spawn(move || me.serve(conn));
            }
        });
    }

    /// One attach session: register its output, then take its input until its stdin ends.
    fn serve(&self, conn: UnixStream) {
        let _ = conn.set_read_timeout(Some(REQUEST_TIMEOUT));
        let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
        let Ok(writer) = conn.try_clone() else { return };
        let mut reader = BufReader::new(conn);
        let mut line = Vec::new();
        let req = match reader.read_until(b'\n', &mut line) {
            Ok(n) if n > 0 => match serde_json::from_slice::<AttachRequest>(&line) {
                Ok(r) => r,
                Err(_) => return,
            },
            _ => return,
        };
        let _ = reader.get_ref().set_read_timeout(None);
        let id = {
            let mut s = self.sessions.lock().expect("sessions lock");
            if s.ended {
                return;
            }
            s.next_id += 1;
            let id = s.next_id;
            s.list.push(Session {
                id,
                stream: writer,
                stdout: req.stdout,
                // A terminal has one output stream.
                stderr: req.stderr && !self.tty(),
            });
            id
        };
        // containerd copies a session's stdin only when the container has one; without, the
        // session lasts until the output ends (or the agent goes away).
        let takes_stdin = req.stdin && self.has_stdin;
        loop {
            match wire::read_frame(&mut reader) {
                Ok(Some((wire::STDIN, data))) if takes_stdin => self.write_stdin(&data),
                Ok(Some((wire::RESIZE, p))) => {
                    if let (Some(pty), Some((w, h))) = (&self.pty, wire::parse_resize(&p)) {
                        let _ = svcnet_netns::set_window_size(pty.as_fd(), w, h);
                    }
                }
                Ok(Some((wire::CLOSE, _))) if takes_stdin => break,
                Ok(None) | Err(_) => break,
                Ok(Some(_)) => {}
            }
        }
        // The session's stdin ended (or the session went away).
        if takes_stdin && self.stdin_once && !self.tty() {
            // The container's stdin is closed; the session keeps the output until the end.
            self.stdin.lock().expect("stdin lock").take();
        } else {
            let mut s = self.sessions.lock().expect("sessions lock");
            s.list.retain(|c| {
                c.id != id || {
                    let _ = c.stream.shutdown(std::net::Shutdown::Both);
                    false
                }
            });
        }
    }

    fn write_stdin(&self, data: &[u8]) {
        let mut stdin = self.stdin.lock().expect("stdin lock");
        if let Some(f) = stdin.as_mut() {
            if f.write_all(data).and_then(|_| f.flush()).is_err() {
                // The container closed its stdin.
                *stdin = None;
            }
        }
    }

    /// The container's output has ended: every session is closed and no new one is taken.
    pub fn end(&self) {
        let mut s = self.sessions.lock().expect("sessions lock");
        s.ended = true;
        for c in s.list.drain(..) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
        if let Some(p) = self.socket.lock().expect("socket lock").take() {
            let _ = std::fs::remove_file(p);
        }
        self.stdin.lock().expect("stdin lock").take();
    }
}

#[cfg(test)]
mod tests;
