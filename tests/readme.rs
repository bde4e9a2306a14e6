//! Every command block of README.md and examples/ runs as written (issue 18): a newcomer
//! copies them in order into a shell, and so does this test.
//!
//! Each markdown file is one shell session, in a scratch copy of the file's directory (its
//! entries symlinked, so `examples/seeds/Service-Env.yaml` and `scripts/install-deps` are
//! where the blocks say), with `svcnet` on the PATH. A block's info string says how it runs:
//!
//! - ` ```sh ` runs to its end and must exit 0; variables it exports and the directory it
//!   ends in carry over to the next block, as in one shell;
//! - ` ```sh ready ` starts a server that keeps running (`svcnet up`): the next blocks run once
//!   it has printed a line starting with `ready`, and at the end it gets Ctrl-C (SIGINT to its
//!   process group) and must exit 0;
//! - ` ```sh ci ` is the test command: not run here (it is this suite), but it must be what
//!   `.ci/run` runs.
//!
//! What the machine differs in from a user's, and how the test stands in for it:
//! `cargo build --release -p svcnet` is the build this suite was built by (a `cargo` on the
//! PATH that takes only that command and links `target/release/svcnet` to the debug binary:
//! a release build takes 40 minutes on CI's two cores); there is no internet, so the seeds'
//! images come from archives in the `images` directory of each cluster README.md starts
//! (`svcnet images build-seeds`, its air-gapped way) or from the loopback registry
//! examples/seeds/README.md starts; `~` is a scratch home whose `.kube/config` is the
//! cluster's kubeconfig (the "real cluster" of the README's blocks against any cluster). Everything a block started is killed at the end and
//! `svcnet down` runs for every data dir, also when the test fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};
use support::SVCNET;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn readme() -> PathBuf {
    Path::new(REPO).join("README.md")
}

/// How long a `ready` block may take to say ready (`scripts/install-deps` may have packages
/// to install on a fresh machine; `.ci/run` installed them already).
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// One fenced `sh` block of a markdown file.
#[derive(Debug)]
struct Block {
    /// The info string's words after `sh`: `ready`, `ci`, or none.
    mode: String,
    text: String,
}

/// The `sh` blocks of a markdown file, in order.
fn sh_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let mut words = info.split_whitespace();
                if words.next() == Some("sh") {
                    current = Some(Block {
                        mode: words.collect::<Vec<_>>().join(" "),
                        text: String::new(),
                    });
                }
            }
            Event::Text(t) => {
                if let Some(b) = current.as_mut() {
                    b.text.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(current.take()),
            _ => {}
        }
    }
    blocks
}

/// The markdown files whose blocks run: README.md and every `.md` under examples/.
fn markdown_files() -> Vec<PathBuf> {
    let repo = Path::new(REPO);
    let mut files = vec![readme()];
    let mut dirs = vec![repo.join("examples")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                files.push(p);
            }
        }
    }
    files
}

/// One markdown file's shell session: its scratch directory, the servers its `ready` blocks
/// started and every process group a block left behind.
struct Session {
    name: String,
    dir: tempfile::TempDir,
    servers: Vec<Child>,
    groups: Vec<i32>,
}

impl Session {
    fn new(markdown: &Path) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let bin = dir.path().join("bin");
        let home = dir.path().join("home");
        for d in [&work, &bin, &home.join(".kube")] {
            std::fs::create_dir_all(d).unwrap();
        }
        // The file's directory, as the blocks see it (not a build's outputs or a cluster's
        // data: those the blocks make).
        for e in std::fs::read_dir(markdown.parent().unwrap()).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            if [".git", "target", ".svcnet"].iter().any(|n| name == *n) {
                continue;
            }
            std::os::unix::fs::symlink(e.path().canonicalize().unwrap(), work.join(&name)).unwrap();
        }
        // README.md puts the build on the PATH itself; the files after it assume it did.
        if markdown != readme() {
            std::os::unix::fs::symlink(SVCNET, bin.join("svcnet")).unwrap();
        }
        // The release build this suite stands in for (see the file's doc).
        std::fs::write(
            bin.join("cargo"),
            format!(
                "#!/bin/sh\n\
                 [ \"$*\" = 'build --release -p svcnet' ] || {{ echo \"readme test: cargo $* is not stood in for\" >&2; exit 2; }}\n\
                 mkdir -p target/release && ln -sf {SVCNET} target/release/svcnet\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            bin.join("cargo"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink(work.join(".svcnet/kubeconfig"), home.join(".kube/config"))
            .unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        std::fs::write(
            dir.path().join("env"),
            format!(
                "export PATH='{path}' HOME='{}'\nunset KUBECONFIG\n",
                home.display()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("pwd"), work.to_str().unwrap()).unwrap();
        Session {
            name: markdown
                .strip_prefix(REPO)
                .unwrap_or(markdown)
                .display()
                .to_string(),
            dir,
            servers: Vec::new(),
            groups: Vec::new(),
        }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// A bash running `block` in the session's shell state, in a process group of its own
    /// (what a block leaves running in the background is found by it), output to `log`.
    fn spawn(&mut self, block: &str, log: &Path, save_state: bool) -> Child {
        let state = self.dir.path();
        let save = if save_state {
            format!(
                "\nexport -p > '{0}/env'; pwd > '{0}/pwd'\n",
                state.display()
            )
        } else {
            String::new()
        };
        let script = format!(
            "source '{0}/env'; cd \"$(cat '{0}/pwd')\"; set -eo pipefail\n{block}{save}",
            state.display()
        );
        let out = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("bash");
        self.groups.push(child.id() as i32);
        child
    }

    fn run(&mut self, i: usize, block: &Block) {
        let log = self.dir.path().join(format!("block-{i}.log"));
        match block.mode.as_str() {
            "" => {
                let status = self.spawn(&block.text, &log, true).wait().unwrap();
                assert!(
                    status.success(),
                    "{}: block {i} failed ({status}):\n{}\n--- its output:\n{}",
                    self.name,
                    block.text,
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            "ready" => {
                let mut child = self.spawn(&block.text, &log, false);
                let deadline = Instant::now() + READY_TIMEOUT;
                loop {
                    let out = std::fs::read_to_string(&log).unwrap_or_default();
                    if out.lines().any(|l| l.starts_with("ready")) {
                        break;
                    }
                    if let Some(status) = child.try_wait().unwrap() {
                        panic!("{}: block {i} ended ({status}) before ready:\n{}\n--- its output:\n{out}", self.name, block.text);
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{}: block {i} never said ready:\n{out}",
                        self.name
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                self.servers.push(child);
            }
            "ci" => {
                let ci = std::fs::read_to_string(Path::new(REPO).join(".ci/run")).unwrap();
                assert!(
                    ci.contains(&format!("TEST_CMD='{}'", block.text.trim())),
                    "{}: block {i} is not the test command .ci/run runs:\n{}",
                    self.name,
                    block.text
                );
            }
            other => panic!("{}: block {i} has an unknown mode {other:?}", self.name),
        }
    }

    /// Ctrl-C to each server, newest first: each must exit 0 (a clean teardown).
    fn stop_servers(&mut self) {
        while let Some(mut server) = self.servers.pop() {
            let pgid = nix::unistd::Pid::from_raw(server.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(60);
            let status = loop {
                if let Some(s) = server.try_wait().unwrap() {
                    break s;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: a server did not stop on Ctrl-C",
                    self.name
                );
                std::thread::sleep(Duration::from_millis(100));
            };
            assert!(
                status.success(),
                "{}: a server exited {status} on Ctrl-C",
                self.name
            );
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(s.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = s.wait();
        }
        for &g in &self.groups {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(g),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Any cluster a block started (a data dir has its namespaces' prefix), however the
        // session ended.
        for e in std::fs::read_dir(self.work())
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.path().join("netns-prefix").exists() {
                let _ = Command::new(SVCNET)
                    .arg("down")
                    .arg("--data-dir")
                    .arg(e.path())
                    .output();
            }
        }
    }
}

fn run_file(markdown: &Path, prepare: impl FnOnce(&Session)) {
    let blocks = sh_blocks(&std::fs::read_to_string(markdown).unwrap());
    let mut session = Session::new(markdown);
    prepare(&session);
    for (i, b) in blocks.iter().enumerate() {
        session.run(i, b);
    }
    session.stop_servers();
}

#[test]
fn readme_and_examples_run_as_written() {
    if !support::cluster::can_run_images(&["kubectl", "curl", "dig", "skopeo"]) {
        return;
    }
    let files = markdown_files();
    for f in &files {
        let blocks = sh_blocks(&std::fs::read_to_string(f).unwrap());
        assert!(!blocks.is_empty(), "{} has no sh block", f.display());
    }
    for f in &files {
        run_file(f, |s| {
            if *f == readme() {
                // No internet: the seeds' images from archives, as the README's air-gapped
                // machines get them, in the data dir of each cluster it starts.
                let archives = s.dir.path().join("seeds-images");
                let out = Command::new(SVCNET)
                    .args(["images", "build-seeds", "--out"])
                    .arg(&archives)
                    .output()
                    .unwrap();
                support::assert_success(&out);
                for data in [".svcnet", "iptables-cluster"] {
                    let images = s.work().join(data).join("images");
                    std::fs::create_dir_all(&images).unwrap();
                    for a in std::fs::read_dir(&archives).unwrap().map(Result::unwrap) {
                        std::fs::hard_link(a.path(), images.join(a.file_name())).unwrap();
                    }
                }
            }
        });
    }
}

#[test]
fn blocks_are_read_with_their_mode() {
    let md = "# t\n\n```sh ready\nsvcnet up\n```\n\n- item:\n\n  ```sh\n  echo a\n  echo b\n  ```\n\n```yaml\nx: 1\n```\n";
    let b = sh_blocks(md);
    assert_eq!(b.len(), 2);
    assert_eq!(
        (b[0].mode.as_str(), b[0].text.as_str()),
        ("ready", "svcnet up\n")
    );
    assert_eq!(
        (b[1].mode.as_str(), b[1].text.as_str()),
        ("", "echo a\necho b\n")
    );
}
