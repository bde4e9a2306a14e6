//! Running the binaries the tests drive (`svcnet`, `kubectl`, `curl`, `ip`) and reading what
//! they print: the seed manifests, kubectl's tables, commands that must succeed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const SVCNET: &str = env!("CARGO_BIN_EXE_svcnet");

/// The seed manifests (examples/seeds).
pub fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/seeds")
        .join(name)
}

/// The seeds' manifests of the default namespace, each with what `kubectl create -f` says.
pub const SERVICE_SEEDS: [(&str, &str); 5] = [
    ("Service-Env.yaml", "deployment.apps/service-env created"),
    (
        "Service-Clusterip.yaml",
        "service/service-clusterip created",
    ),
    (
        "Service-Headliness.yaml",
        "service/service-headliness created",
    ),
    ("Service-Nodeport.yaml", "service/service-nodeport created"),
    (
        "Service-Externalname.yaml",
        "service/service-externalname created",
    ),
];

/// Runs `cmd` with `input` on its stdin, to its end.
pub fn output_with_input(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The stdout of a kubectl run that must have succeeded; otherwise a panic with its output and
/// the log of what it talked to (`log_name`: whose).
pub fn kubectl_stdout(
    args: &[&str],
    out: Output,
    log_name: &str,
    log: impl FnOnce() -> String,
) -> String {
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\nstdout: {}\nstderr: {}\n{log_name}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The stdout of `cmd` (run to its end), as text.
pub fn stdout(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A row of a `kubectl get` table: column name → cell.
pub type Row = std::collections::BTreeMap<String, String>;

/// The rows of a `kubectl get` table: header line split into columns, rows as maps.
pub fn table(out: &str) -> Vec<Row> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return vec![];
    };
    // kubectl pads columns with at least 3 spaces; header words inside a column ("NOMINATED
    // NODE") are separated by one.
    let bytes = header.as_bytes();
    let starts: Vec<usize> = (0..bytes.len())
        .filter(|&i| {
            bytes[i] != b' ' && (i == 0 || (i >= 2 && bytes[i - 1] == b' ' && bytes[i - 2] == b' '))
        })
        .collect();
    let names: Vec<String> = starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let e = starts.get(k + 1).copied().unwrap_or(header.len());
            header[s..e].trim().to_string()
        })
        .collect();
    lines
        .map(|l| {
            names
                .iter()
                .enumerate()
                .map(|(k, n)| {
                    let s = starts[k].min(l.len());
                    let e = starts.get(k + 1).copied().unwrap_or(l.len()).min(l.len());
                    (n.clone(), l[s..e].trim().to_string())
                })
                .collect()
        })
        .collect()
}

/// A command that must have succeeded; its stderr says why not.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The cells of `row` (a row of [`table`]) under `columns`, in that order.
pub fn cells<'a>(row: &'a Row, columns: &[&str]) -> Vec<&'a str> {
    columns.iter().map(|c| row[*c].as_str()).collect()
}

/// A process's CPU time so far (user + system), from /proc.
pub fn cpu_time(pid: u32) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat(5): 12 and 13 after the command's ")".
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as u64;
    std::time::Duration::from_millis(ticks * 1000 / hz)
}

/// A command running `program`, with its limit of open files (soft and hard) set to `nofile`
/// when given: by the shell's `ulimit -n` before it execs the program, so no `unsafe`
/// pre-exec hook (`unsafe` stays in crates/netns). The exec keeps the pid.
pub fn with_open_file_limit(program: &str, nofile: Option<u64>) -> Command {
    match nofile {
        Some(n) => {
            let mut c = Command::new("sh");
            c.args([
                "-c",
                r#"ulimit -n "$0" && exec "$@""#,
                &n.to_string(),
                program,
            ]);
            c
        }
        None => Command::new(program),
    }
}
