//! The service proxy end to end on `svcnet up`, in every mode the kernel has, with real traffic: the seeds'
//! ClusterIP 10.97.1.1 round-robin across 3 pods (from a pod and from a node), NodePort 30002 on
//! each node from the outside client, the shield NodePort 31112 → 8080, a Service without
//! endpoints refused at once, session affinity, a pod reaching its own Service (hairpin), and
//! `svcnet proxy --list` on a node with no flags.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::{eventually, stdout, table};

fn curl(c: &Cluster, target: &[&str], url: &str) -> String {
    c.exec_stdout(target, &["curl", "-s", "-m", "3", url])
}

fn walkthrough(mode: &str) {
    let c = Cluster::up_with(2, &["--proxy-mode", mode]);
    c.kubectl_ok(&["create", "namespace", "shield"]);
    c.apply_seeds(&[
        "Service-Env.yaml",
        "Service-Clusterip.yaml",
        "Service-Nodeport.yaml",
        "shield-app.yml",
    ]);
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: empty}\nspec:\n  clusterIP: 10.97.1.2\n  selector: {app: nobody}\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: sticky}\nspec:\n  selector: {app: service-env}\n  sessionAffinity: ClientIP\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec:\n  type: LoadBalancer\n  externalIPs: [192.0.2.10]\n  selector: {app: service-env}\n  ports: [{port: 80}]\n");
    let pods = c.ready_pods("app=service-env", 3);
    let ips: BTreeSet<String> = pods.iter().map(|p| p["IP"].clone()).collect();
    let a = pods[0]["NAME"].clone();

    // ClusterIP round-robin, as the seeds show `curl 10.97.1.1` cycling: from a pod and a node.
    let from_pod: BTreeSet<String> =
        eventually(Duration::from_secs(20), "the ClusterIP answering", || {
            let got: Vec<String> = (0..6)
                .map(|_| curl(&c, &[&a], "http://10.97.1.1/"))
                .collect();
            got.iter()
                .all(|g| ips.contains(g))
                .then(|| got.into_iter().collect())
        });
    if mode != "iptables" {
        assert_eq!(from_pod, ips, "6 connections cycle through all 3 pods");
    } else {
        assert!(from_pod.len() >= 2, "random spreads: {from_pod:?}");
    }
    let from_node: BTreeSet<String> = (0..9)
        .map(|_| curl(&c, &["--node", "node-2"], "http://10.97.1.1/"))
        .collect();
    assert!(
        from_node.is_subset(&ips) && from_node.len() >= 2,
        "{from_node:?}"
    );
    // Hairpin: every pod reaches its own Service (and sometimes itself through it).
    assert!(ips.contains(&curl(&c, &[&a], "http://10.97.1.1/")));

    // NodePort 30002 on each node, from outside the cluster.
    for node_ip in ["172.28.0.11", "172.28.0.12"] {
        let got = curl(&c, &["--outside"], &format!("http://{node_ip}:30002/"));
        assert!(ips.contains(&got), "{node_ip}:30002 → {got:?}");
    }
    // The shield walkthrough: NodePort 31112 → the triskelion pod's 8080.
    let tris = eventually(Duration::from_secs(60), "the triskelion pod", || {
        let t = table(&c.kubectl_ok(&["get", "pods", "-n", "shield", "-o", "wide"]));
        (t.len() == 1 && t[0]["READY"] == "1/1").then(|| t[0]["IP"].clone())
    });
    assert_eq!(curl(&c, &["--outside"], "http://172.28.0.12:31112/"), tris);
    if mode == "nftables" {
        // The seeds' `iptables -t nat -L -n -v | grep shield`, in nftables: kube-proxy's
        // comments name the Service on its ClusterIP, NodePort and endpoint elements.
        let ruleset = stdout(Command::new("ip").args([
            "netns",
            "exec",
            &c.node_ns(2),
            "nft",
            "list",
            "ruleset",
        ]));
        let shield: Vec<&str> = ruleset.lines().filter(|l| l.contains("shield")).collect();
        let cluster_ip = c.kubectl_ok(&[
            "get",
            "svc",
            "the-bus",
            "-n",
            "shield",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ]);
        for want in [
            format!("{cluster_ip} . tcp . 8080 comment \"shield/the-bus\" : goto cluster-1"),
            "tcp . 31112 comment \"shield/the-bus\" : goto external-1".to_string(),
            format!("comment \"shield/the-bus\" : {tris} . 8080"),
        ] {
            assert!(
                shield.iter().any(|l| l.contains(&want)),
                "{want:?} in {shield:#?}"
            );
        }
    }

    // No endpoints: refused at once, not a hang.
    let started = Instant::now();
    let out = c.exec(&[&a], &["curl", "-s", "-m", "5", "http://10.97.1.2/"]);
    assert_eq!(out.status.code(), Some(7), "curl: connection refused");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Session affinity: one client, one pod.
    let svc_ip = c.jsonpath("svc", "sticky", "{.spec.clusterIP}");
    let stuck: BTreeSet<String> = (0..6)
        .map(|_| curl(&c, &[&a], &format!("http://{svc_ip}/")))
        .collect();
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert!(ips.is_superset(&stuck));

    list_on_a_node(&c, mode, &ips);
}

/// `svcnet proxy --list` on node-1 with no flags, as `svcnet exec --node node-1` runs it: in
/// the node's namespace, hostname `node-1`, `KUBECONFIG` the cluster's (its server the API
/// server's address on the node network). Every kind of virtual server, as `ipvsadm -Ln` lists
/// them for kube-proxy's ipvs mode (the seeds' view), and a connection held open through
/// NodePort 30002 counted in ActiveConn (from conntrack: DNAT modes only, userspace proxies
/// the connection itself).
fn list_on_a_node(c: &Cluster, mode: &str, ips: &BTreeSet<String>) {
    let kubeconfig = c.dir.path().join("node-kubeconfig");
    let admin = std::fs::read_to_string(c.data().join("kubeconfig")).unwrap();
    let on_node: String = admin
        .lines()
        .map(|l| match l.split_once("server:") {
            Some((indent, _)) => format!("{indent}server: https://172.28.0.2:6443\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&kubeconfig, on_node).unwrap();
    let lb_ip = eventually(Duration::from_secs(30), "the LoadBalancer address", || {
        let ip = c.jsonpath("svc", "lb", "{.status.loadBalancer.ingress[0].ip}");
        (!ip.is_empty()).then_some(ip)
    });
    let lb_port = c.jsonpath("svc", "lb", "{.spec.ports[0].nodePort}");
    // A connection from outside held open on node-1's NodePort 30002.
    let outside = c.node_ns(1).replace("node-1", "outside");
    let mut held = Child(
        Command::new("ip")
            .args(["netns", "exec", &outside, "bash", "-c"])
            .arg("exec 3<>/dev/tcp/172.28.0.11/30002 && echo open && exec sleep 120")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(held.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "open");

    let list = || {
        stdout(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &c.node_ns(1),
                    "unshare",
                    "--uts",
                    "sh",
                    "-c",
                ])
                .arg("hostname node-1 && exec \"$0\" proxy --list")
                .arg(support::SVCNET)
                .env("KUBECONFIG", &kubeconfig),
        )
    };
    let listing = list();
    assert!(
        listing.starts_with("IP Virtual Server version"),
        "{listing}"
    );
    let block = |vs: &str| -> Vec<String> {
        listing
            .lines()
            .skip_while(|l| *l != vs)
            .skip(1)
            .take_while(|l| l.starts_with("  ->"))
            .map(str::to_string)
            .collect()
    };
    // ClusterIP, NodePort on the node's address, external IP, load-balancer IP: all 3 pods.
    for vs in [
        "TCP  10.97.1.1:80 rr".to_string(),
        "TCP  172.28.0.11:30002 rr".into(),
        "TCP  192.0.2.10:80 rr".into(),
        format!("TCP  {lb_ip}:80 rr"),
        format!("TCP  172.28.0.11:{lb_port} rr"),
    ] {
        let rs = block(&vs);
        assert_eq!(rs.len(), 3, "{vs} in {listing}");
        for ip in ips {
            assert!(
                rs.iter().any(|l| l.contains(&format!("{ip}:80"))),
                "{ip} under {vs} in {listing}"
            );
        }
    }
    assert!(listing.contains("TCP  172.28.0.11:31112 rr"), "{listing}");
    // Node-2's address is no address of node-1.
    assert!(
        !listing.lines().any(|l| l.starts_with("TCP  172.28.0.12:")),
        "{listing}"
    );
    if mode != "userspace" {
        // ActiveConn: the held connection, on one of the pods.
        let active: u32 = block("TCP  172.28.0.11:30002 rr")
            .iter()
            .map(|l| l.split_whitespace().nth(4).unwrap().parse::<u32>().unwrap())
            .sum();
        assert_eq!(active, 1, "{listing}");
    }
}

/// A child process killed when the test is done with it, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn seeds_walkthrough_with_nftables() {
    walkthrough("nftables");
}

#[test]
fn seeds_walkthrough_with_iptables() {
    walkthrough("iptables");
}

#[test]
fn seeds_walkthrough_with_userspace() {
    walkthrough("userspace");
}

/// `--proxy-mode ipvs` is refused as kube-proxy refuses it on a kernel without IPVS ("can't use
/// the IPVS proxier: ipvs not supported by the kernel"), saying which modes run; the help of
/// `svcnet up` and `svcnet proxy` names the same modes.
#[test]
fn ipvs_mode_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let no_ipvs = !std::path::Path::new("/proc/net/ip_vs").exists()
        && !std::path::Path::new("/sys/module/ip_vs").exists();
    for args in [
        vec!["proxy", "--proxy-mode", "ipvs"],
        vec![
            "up",
            "--proxy-mode",
            "ipvs",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    ] {
        let out = Command::new(support::SVCNET).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("can't use the IPVS proxier: "),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("svcnet runs nftables (the default), iptables or userspace"),
            "{err}"
        );
        assert!(err.contains("`svcnet proxy --list`"), "{err}");
        if no_ipvs {
            assert!(
                err.contains(
                    "ipvs not supported by the kernel (this kernel has no IPVS (ip_vs): \
                     /proc/net/ip_vs is missing and kernel "
                ),
                "{err}"
            );
        }
    }
    for sub in ["up", "proxy"] {
        let help = stdout(Command::new(support::SVCNET).args([sub, "--help"]));
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("iptables or userspace. (ipvs is refused"),
            "{help}"
        );
    }
}
