//! The binary's cluster commands as a newcomer meets them: `svcnet exec` finds the cluster from
//! another directory ($KUBECONFIG, or the only running cluster), runs on a node as if logged
//! in to it (its hostname, `KUBECONFIG`, `svcnet` on PATH, node names resolving) and names a
//! program it cannot find; `svcnet up` names the programs it lacks before creating anything,
//! writes plain logs to a file and stops quietly on Ctrl-C.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use support::cluster::Cluster;
use support::{eventually, SVCNET};

/// `svcnet exec <args>` without --data-dir, run in `cwd` with `KUBECONFIG` as given (unset
/// when `None`).
fn exec_from(cwd: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(SVCNET);
    cmd.arg("exec").args(args).current_dir(cwd);
    match kubeconfig {
        Some(k) => cmd.env("KUBECONFIG", k),
        None => cmd.env_remove("KUBECONFIG"),
    };
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

#[test]
fn exec_finds_the_cluster_from_anywhere_and_runs_as_on_the_node() {
    let c = Cluster::up(2);
    let elsewhere = tempfile::tempdir().unwrap();
    let on_node_1 = [
        "--node", "node-1", "--", "ip", "-4", "-o", "addr", "show", "eth0",
    ];
    let is_node_1 = |out: &Output| text(&out.stdout).contains(" 172.28.0.11/24 ");

    // From another directory, with KUBECONFIG pointing at the cluster: its data dir.
    let out = exec_from(
        elsewhere.path(),
        Some(&c.data().join("kubeconfig")),
        &on_node_1,
    );
    assert!(is_node_1(&out), "{out:?}");

    // With nothing set: the only running cluster; when other clusters run on this machine (other
    // tests), a clear refusal naming each, this one too.
    let out = exec_from(elsewhere.path(), None, &on_node_1);
    if out.status.success() {
        assert!(is_node_1(&out), "{out:?}");
    } else {
        let err = text(&out.stderr);
        let data = c.data().canonicalize().unwrap();
        assert!(
            err.contains("clusters are running (")
                && err.contains(&*data.to_string_lossy())
                && err.contains("say which with --data-dir"),
            "{err}"
        );
    }

    // ./.svcnet, when a cluster runs there, whatever else runs.
    std::os::unix::fs::symlink(c.data(), elsewhere.path().join(".svcnet")).unwrap();
    let out = exec_from(elsewhere.path(), None, &on_node_1);
    assert!(is_node_1(&out), "{out:?}");

    // A node's login: its hostname, KUBECONFIG for the API server as the nodes reach it (also
    // when the caller's names this cluster from the host), and this svcnet first on PATH.
    let out = exec_from(
        elsewhere.path(),
        Some(&c.data().join("kubeconfig")),
        &[
            "--node",
            "node-2",
            "--",
            "sh",
            "-c",
            "hostname; echo $KUBECONFIG; command -v svcnet",
        ],
    );
    let svcnet_dir = Path::new(SVCNET).parent().unwrap();
    assert_eq!(
        text(&out.stdout).lines().collect::<Vec<_>>(),
        [
            "node-2",
            &*c.data()
                .canonicalize()
                .unwrap()
                .join("kubeconfig-internal")
                .to_string_lossy(),
            &*svcnet_dir.join("svcnet").to_string_lossy()
        ],
        "{out:?}"
    );
    let nodes = c.exec_stdout(
        &["--node", "node-2"],
        &["kubectl", "get", "nodes", "-o", "name"],
    );
    assert_eq!(nodes, "node/node-1\nnode/node-2");

    // A program that is not there is named, with a shell's exit code.
    let out = c.exec(&["--node", "node-1"], &["ipvsadm-not-installed", "-Ln"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert_eq!(
        text(&out.stderr),
        "svcnet exec: \"ipvsadm-not-installed\": executable file not found in $PATH"
    );
}

#[test]
fn node_names_resolve_on_the_nodes_and_the_outside_client() {
    let c = Cluster::up(2);
    c.apply_seeds(&["Service-Env.yaml", "Service-Nodeport.yaml"]);
    c.ready_pods("app=service-env", 3);

    let hosts = c.exec_stdout(&["--node", "node-2"], &["getent", "hosts", "node-1"]);
    assert_eq!(
        hosts.split_whitespace().collect::<Vec<_>>(),
        ["172.28.0.11", "node-1"]
    );
    let cp = c.exec_stdout(&["--outside"], &["getent", "hosts", "control-plane"]);
    assert!(cp.starts_with("172.28.0.2 "), "{cp}");
    // The seeds curl a node's NodePort by name, from outside.
    eventually(
        Duration::from_secs(20),
        "NodePort 30002 by node name",
        || {
            c.exec_ok(
                &["--outside"],
                &["curl", "-s", "-m", "3", "http://node-1:30002/"],
            )
            .filter(|body| body.starts_with("10.244."))
        },
    );
    if svcnet_netns::which("ping").is_some() {
        assert!(c
            .exec_ok(&["--node", "node-2"], &["ping", "-c1", "-W2", "node-1"])
            .is_some());
    }
    // The host's own /etc/hosts is untouched.
    let host = std::fs::read_to_string("/etc/hosts").unwrap();
    assert!(
        !host.contains("node-1") && !host.contains("172.28.0."),
        "{host}"
    );
}

/// A directory holding links to every program `svcnet up` runs but `left_out`: a PATH without it.
fn path_without(dir: &Path, left_out: &str) -> String {
    for p in [
        "ip",
        "nft",
        "conntrack",
        "arping",
        "iptables",
        "iptables-restore",
    ] {
        if p != left_out {
            let real = svcnet_netns::which(p).unwrap_or_else(|| panic!("{p} is installed"));
            std::os::unix::fs::symlink(real, dir.join(p)).unwrap();
        }
    }
    dir.to_string_lossy().into_owned()
}

#[test]
fn up_names_each_missing_program_before_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let data = dir.path().join("data");
    let out = Command::new(SVCNET)
        .args(["up", "--apiserver-port", "0", "--data-dir"])
        .arg(&data)
        .env("PATH", path_without(&bin, "conntrack"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "svcnet up needs programs not found in system path: conntrack (apt install conntrack)"
        ),
        "{err}"
    );
    assert!(!data.exists(), "nothing created");
}

#[test]
fn up_logs_plain_text_to_a_file_and_stops_quietly_on_ctrl_c() {
    let mut c = Cluster::up_logging(tempfile::tempdir().unwrap(), 2, &[], "info");
    c.apply_seeds(&["Service-Env.yaml", "Service-Nodeport.yaml"]);
    c.ready_pods("app=service-env", 3);
    let signalled = jiff::Timestamp::now();
    let status = c.stop_with(nix::sys::signal::Signal::SIGINT);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let log = c.log();
    assert!(!log.contains('\x1b'), "colour codes in a file:\n{log}");
    assert!(log.contains(" INFO "), "{log}");
    // Every line after the signal (tracing's lines start with their UTC time).
    let after: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.split(' ')
                .next()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| t >= signalled)
        })
        .collect();
    let loud: Vec<&&str> = after
        .iter()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    assert!(loud.is_empty(), "after Ctrl-C:\n{}", after.join("\n"));
    assert!(
        log.contains("stopping: removing namespaces and processes"),
        "{log}"
    );
}
