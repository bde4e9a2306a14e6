//! A container's held stdio through its shim's attach socket, with process containers in a
//! scratch network namespace (root): stdin with and without `stdinOnce`, a terminal and its
//! resizes, output only.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::shim::wire::{self, AttachRequest};
use crate::shim::{read_exit, run, ShimSpec};

/// A shim running `script` (`sh -c`) on a thread, in a scratch network namespace; `None`
/// where that cannot run (not root).
struct Shim {
    spec: ShimSpec,
    thread: Option<std::thread::JoinHandle<i32>>,
    _pod: svcnet_netns::testing::ScratchNetns,
    _dir: tempfile::TempDir,
}

impl Shim {
    fn start(tag: &str, script: &str, stdin: bool, stdin_once: bool, tty: bool) -> Option<Shim> {
        if !svcnet_netns::testing::can_run(&[]) {
            return None;
        }
        let pod = svcnet_netns::testing::ScratchNetns::new(tag).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spec = ShimSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            netns: pod.name().to_string(),
            log: dir.path().join("logs/0.log"),
            dir: dir.path().join("c"),
            stdin,
            stdin_once,
            tty,
            ..Default::default()
        };
        let s = spec.clone();
        let thread = Some(std::thread::spawn(move || run(&s).unwrap()));
        Some(Shim {
            spec,
            thread,
            _pod: pod,
            _dir: dir,
        })
    }

    /// The container's exit code, once it ended.
    fn exit_code(&mut self) -> i32 {
        self.thread.take().expect("once").join().unwrap()
    }
}

/// A session on the shim's attach socket (waiting for the shim to listen).
fn attach(spec: &ShimSpec, req: AttachRequest) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match wire::connect(&spec.dir) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("attach socket: {e}"),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut line = serde_json::to_vec(&req).unwrap();
    line.push(b'\n');
    conn.write_all(&line).unwrap();
    conn
}

/// Output frames until the shim closes the session (or `until` is seen), as (stdout, stderr).
fn read_output(conn: &mut UnixStream, until: Option<&str>) -> (String, String) {
    let (mut out, mut err) = (String::new(), String::new());
    while let Some((ch, data)) = wire::read_frame(conn).expect("a frame in time") {
        let s = String::from_utf8_lossy(&data);
        match ch {
            wire::STDOUT => out.push_str(&s),
            wire::STDERR => err.push_str(&s),
            _ => panic!("channel {ch} from the shim"),
        }
        if until.is_some_and(|u| out.contains(u)) {
            break;
        }
    }
    (out, err)
}

const ALL: AttachRequest = AttachRequest {
    stdin: true,
    stdout: true,
    stderr: true,
};

#[test]
fn stdin_once_closes_the_containers_stdin_after_the_first_session() {
    let script = "cat; echo stdin closed; echo on stderr >&2";
    let Some(mut shim) = Shim::start("attach1", script, true, true, false) else {
        return;
    };
    let spec = shim.spec.clone();
    let mut conn = attach(&spec, ALL);
    // As every file of the agent's: the owner's only.
    let mode = std::fs::metadata(wire::socket_file(&spec.dir))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    conn.write_all(&wire::encode(wire::STDIN, b"hello\n"))
        .unwrap();
    let (out, _) = read_output(&mut conn, Some("hello\n"));
    assert_eq!(out, "hello\n");
    // The session's stdin ends: the container reads EOF; the session sees the rest.
    conn.write_all(&wire::encode(wire::CLOSE, &[])).unwrap();
    let (out, err) = read_output(&mut conn, None);
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("stdin closed\n", "on stderr\n")
    );
    assert_eq!(shim.exit_code(), 0);
    let log = std::fs::read_to_string(&spec.log).unwrap();
    assert!(log.contains(" stdout F hello\n"), "{log}");
    assert!(log.contains(" stderr F on stderr\n"), "{log}");
    assert!(read_exit(&spec.dir).is_some());
    assert!(!wire::socket_file(&spec.dir).exists());
}

#[test]
fn without_stdin_once_a_session_ends_with_its_stdin_and_the_next_one_writes_on() {
    let script = "while read l; do echo got:$l; [ \"$l\" = quit ] && exit 3; done";
    let Some(mut shim) = Shim::start("attach2", script, true, false, false) else {
        return;
    };
    let spec = shim.spec.clone();
    let mut first = attach(&spec, ALL);
    first
        .write_all(&wire::encode(wire::STDIN, b"one\n"))
        .unwrap();
    assert_eq!(read_output(&mut first, Some("got:one\n")).0, "got:one\n");
    first.write_all(&wire::encode(wire::CLOSE, &[])).unwrap();
    // The shim ends this session; the container keeps its stdin.
    assert_eq!(read_output(&mut first, None).0, "");

    // Output only: sees what the next session makes the container write.
    let mut watcher = attach(
        &spec,
        AttachRequest {
            stdin: false,
            stdout: true,
            stderr: true,
        },
    );
    let mut second = attach(&spec, ALL);
    // The watcher's session is registered on the shim's own thread: write until it sees it.
    watcher
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut seen = String::new();
    for _ in 0..100 {
        second
            .write_all(&wire::encode(wire::STDIN, b"ping\n"))
            .unwrap();
        assert_eq!(read_output(&mut second, Some("got:ping\n")).0, "got:ping\n");
        if let Ok(Some((wire::STDOUT, data))) = wire::read_frame(&mut watcher) {
            seen.push_str(&String::from_utf8_lossy(&data));
            break;
        }
    }
    assert_eq!(seen, "got:ping\n");
    watcher
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    second
        .write_all(&wire::encode(wire::STDIN, b"quit\n"))
        .unwrap();
    assert_eq!(read_output(&mut second, None).0, "got:quit\n");
    let rest = read_output(&mut watcher, None).0;
    assert_eq!(
        rest.trim_start_matches("got:ping\n"),
        "got:quit\n",
        "{rest}"
    );
    assert_eq!(shim.exit_code(), 3);
}

#[test]
fn a_terminal_takes_input_and_resizes() {
    let script = "read a; stty size; echo got:$a; echo on stderr >&2";
    let Some(mut shim) = Shim::start("attach3", script, true, true, true) else {
        return;
    };
    let spec = shim.spec.clone();
    let mut conn = attach(&spec, ALL);
    conn.write_all(&wire::encode(wire::RESIZE, &wire::resize_payload(100, 30)))
        .unwrap();
    conn.write_all(&wire::encode(wire::STDIN, b"hi\n")).unwrap();
    let (out, err) = read_output(&mut conn, None);
    // The terminal echoes the input and turns newlines into CR LF; stderr is the terminal too.
    assert_eq!(out, "hi\r\n30 100\r\ngot:hi\r\non stderr\r\n");
    assert_eq!(err, "");
    assert_eq!(shim.exit_code(), 0);
    let log = BufReader::new(std::fs::File::open(&spec.log).unwrap())
        .lines()
        .map(Result::unwrap)
        .filter(|l| l.contains(" stdout F got:hi"))
        .count();
    assert_eq!(log, 1);
}
