//! LoadBalancer Services end to end on `svcnet up --nodes 3` (issue 8): the controller assigns
//! an address from the default pool (172.28.0.200-249), exactly one node announces it (a /32 on
//! its eth0 + unsolicited ARP), and the outside client reaches the pods through it (and the
//! host through 127.28.0.x); loadBalancerSourceRanges filter it; an exhausted pool leaves a
//! Service `<pending>` with a Warning Event until a deletion frees an address; when the
//! announcing node's network goes down another node takes the address over, and when it comes
//! back the node's agent restores the routes the kernel dropped with the link.

mod support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use support::cluster::Cluster;
use support::{eventually, stdout, table};

const APP: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: netexec
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        command: [svcnet, agnhost, netexec, --http-port=8080]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
";

/// `curl` from the outside client: the body, or None when it failed.
fn curl_outside(c: &Cluster, url: &str, timeout_s: u32) -> Option<String> {
    c.exec_ok(
        &["--outside"],
        &["curl", "-s", "-m", &timeout_s.to_string(), url],
    )
}

fn external_ip(c: &Cluster, svc: &str) -> String {
    let t = table(&c.kubectl_ok(&["get", "svc", svc]));
    t.first()
        .map(|r| r["EXTERNAL-IP"].clone())
        .unwrap_or_default()
}

/// The nodes (1..=3) whose eth0 carries `ip`/32.
fn announcers(c: &Cluster, ip: &str) -> Vec<usize> {
    (1..=3)
        .filter(|i| {
            let out = c.ip(*i, &["-o", "-4", "addr", "show", "dev", "eth0"]);
            String::from_utf8_lossy(&out.stdout).contains(&format!(" {ip}/32 "))
        })
        .collect()
}

fn in_pool(ip: &str) -> bool {
    ip.parse::<Ipv4Addr>()
        .is_ok_and(|a| a.octets()[..3] == [172, 28, 0] && (200..=249).contains(&a.octets()[3]))
}

#[test]
fn loadbalancer_nftables() {
    walkthrough("nftables");
}

#[test]
fn loadbalancer_iptables() {
    walkthrough("iptables");
}

#[test]
fn loadbalancer_userspace() {
    walkthrough("userspace");
}

fn walkthrough(mode: &str) {
    let c = Cluster::up_with(3, &["--proxy-mode", mode, "--host-ports=true"]);
    c.apply(APP);
    let pods: BTreeSet<String> = c
        .ready_pods("app=web", 3)
        .iter()
        .map(|r| r["NAME"].clone())
        .collect();

    // An address from the pool, shown by kubectl; announced by exactly one node.
    let ip = eventually(Duration::from_secs(30), "an EXTERNAL-IP", || {
        let ip = external_ip(&c, "web");
        in_pool(&ip).then_some(ip)
    });
    let owner = eventually(Duration::from_secs(15), "one node announcing", || {
        let a = announcers(&c, &ip);
        (a.len() == 1).then(|| a[0])
    });
    println!("{mode}: web: {ip}, announced by node-{owner}");
    // Each node's speaker holds a Lease of its own (coordination.k8s.io, as kubectl shows it;
    // beside them, the controller manager's and the scheduler's).
    let leases = table(&c.kubectl_ok(&["get", "leases", "-n", "kube-system"]));
    let held: BTreeSet<(String, String)> = leases
        .iter()
        .filter(|r| r["NAME"].starts_with("svcnet-speaker-"))
        .map(|r| (r["NAME"].clone(), r["HOLDER"].clone()))
        .collect();
    let want: BTreeSet<(String, String)> = (1..=3)
        .map(|i| (format!("svcnet-speaker-node-{i}"), format!("node-{i}")))
        .collect();
    assert_eq!(held, want, "{leases:?}");

    // The outside client reaches the pods through it (spread over them: Cluster policy; twelve
    // requests, as iptables mode picks at random: all on one of three pods is 3 in 3^12).
    let url = format!("http://{ip}/hostname");
    let seen: BTreeSet<String> = eventually(Duration::from_secs(20), "traffic to the LB", || {
        let got: Vec<Option<String>> = (0..12).map(|_| curl_outside(&c, &url, 3)).collect();
        got.iter()
            .all(|g| g.as_ref().is_some_and(|g| pods.contains(g)))
            .then(|| got.into_iter().flatten().collect())
    });
    assert!(seen.len() >= 2, "spread over the pods: {seen:?}");

    // And the host, through 127.<b>.<c>.<d> on loopback (one mode only: the tests run in
    // parallel and the host's loopback is shared).
    if mode == "nftables" {
        let [_, b, cc, d] = ip.parse::<Ipv4Addr>().unwrap().octets();
        let host_url = format!("http://127.{b}.{cc}.{d}/hostname");
        eventually(
            Duration::from_secs(10),
            "the host's loopback forwarder",
            || {
                let body = stdout(Command::new("curl").args(["-s", "-m", "3", &host_url]));
                pods.contains(body.trim()).then_some(())
            },
        );
    }

    // An address removed behind the speaker's back is put back (checked every 5 s).
    let del = c.ip(owner, &["addr", "del", &format!("{ip}/32"), "dev", "eth0"]);
    assert!(del.status.success());
    eventually(Duration::from_secs(15), "the address restored", || {
        (announcers(&c, &ip) == [owner]).then_some(())
    });

    // loadBalancerSourceRanges, in every mode.
    {
        // loadBalancerSourceRanges: a range without 172.28.0.254 shuts the outside client out ...
        c.kubectl_ok(&[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"loadBalancerSourceRanges":["10.0.0.0/8"]}}"#,
        ]);
        eventually(
            Duration::from_secs(10),
            "the outside client blocked",
            || {
                (0..3)
                    .all(|_| curl_outside(&c, &url, 1).is_none())
                    .then_some(())
            },
        );
        // ... one with it lets it in again.
        c.kubectl_ok(&[
            "patch",
            "svc",
            "web",
            "-p",
            r#"{"spec":{"loadBalancerSourceRanges":["10.0.0.0/8","172.28.0.254/32"]}}"#,
        ]);
        eventually(
            Duration::from_secs(10),
            "the outside client allowed",
            || {
                (0..3)
                    .all(|_| curl_outside(&c, &url, 2).is_some_and(|g| pods.contains(&g)))
                    .then_some(())
            },
        );
        c.kubectl_ok(&[
            "patch",
            "svc",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/loadBalancerSourceRanges"}]"#,
        ]);
    }

    // externalTrafficPolicy: Local — only the node with the endpoint announces, and the
    // client's address is kept (no masquerade).
    c.apply(
        &APP.replace("name: web", "name: solo")
            .replace("app: web", "app: solo")
            .replace("replicas: 3", "replicas: 1")
            .replace(
                "  type: LoadBalancer\n",
                "  type: LoadBalancer\n  externalTrafficPolicy: Local\n",
            ),
    );
    let solo_node = c.ready_pods("app=solo", 1)[0]["NODE"].clone();
    let solo_ip = eventually(Duration::from_secs(30), "solo's EXTERNAL-IP", || {
        let ip = external_ip(&c, "solo");
        in_pool(&ip).then_some(ip)
    });
    eventually(
        Duration::from_secs(15),
        "solo announced by its pod's node",
        || {
            (announcers(&c, &solo_ip)
                == [solo_node
                    .trim_start_matches("node-")
                    .parse::<usize>()
                    .unwrap()])
            .then_some(())
        },
    );
    let client_ip = eventually(Duration::from_secs(20), "traffic to solo", || {
        curl_outside(&c, &format!("http://{solo_ip}/clientip"), 3)
    });
    if mode != "userspace" {
        // (The userspace proxy opens its own connection to the pod.)
        assert!(client_ip.starts_with("172.28.0.254:"), "{client_ip}");
    }
    println!("{mode}: solo (Local): {solo_ip} on {solo_node}, client seen as {client_ip}");
    c.kubectl_ok(&["delete", "svc", "solo"]);
    c.kubectl_ok(&["delete", "deployment", "solo"]);
    eventually(Duration::from_secs(15), "solo's address withdrawn", || {
        announcers(&c, &solo_ip).is_empty().then_some(())
    });

    // Exhaust the pool (50 addresses: web + 49 more), then one more stays <pending>, with a
    // Warning Event.
    let fill: String = (0..49)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: fill-{i}}}\nspec:\n  type: LoadBalancer\n  ports: [{{port: 80}}]\n---\n"
            )
        })
        .collect();
    c.apply(&fill);
    eventually(Duration::from_secs(60), "the pool handed out", || {
        let t = table(&c.kubectl_ok(&["get", "svc"]));
        let assigned = t
            .iter()
            .filter(|r| r["TYPE"] == "LoadBalancer" && in_pool(&r["EXTERNAL-IP"]))
            .count();
        (assigned == 50).then_some(())
    });
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: extra}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n");
    let message = eventually(Duration::from_secs(20), "a Warning Event for extra", || {
        let ev: serde_json::Value =
            serde_json::from_str(&c.kubectl_ok(&["get", "events", "-o", "json"])).unwrap();
        ev["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["involvedObject"]["name"] == "extra" && e["type"] == "Warning")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
    });
    println!("extra: Warning Event: {message}");
    assert_eq!(external_ip(&c, "extra"), "<pending>");

    // Deleting a Service frees its address: the pending one gets it.
    let freed = external_ip(&c, "fill-7");
    c.kubectl_ok(&["delete", "svc", "fill-7"]);
    eventually(
        Duration::from_secs(20),
        "extra given the freed address",
        || (external_ip(&c, "extra") == freed).then_some(()),
    );

    // The announcing node's network goes down: another node takes the address over.
    let owner = announcers(&c, &ip)[0];
    let link = |state: &str| {
        let out = c.ip(owner, &["link", "set", "eth0", state]);
        assert!(out.status.success(), "link {state}");
    };
    link("down");
    let started = Instant::now();
    eventually(
        Duration::from_secs(30),
        "traffic through another node",
        || {
            curl_outside(&c, &url, 1)
                .is_some_and(|g| pods.contains(&g))
                .then_some(())
        },
    );
    let took = started.elapsed();
    let now = announcers(&c, &ip);
    println!(
        "{mode}: failover: node-{owner} down, {ip} answered again after {took:.2?} via node(s) {now:?}"
    );
    assert!(took < Duration::from_secs(30));
    assert_eq!(now.len(), 1, "one announcer: {now:?}");
    assert_ne!(now[0], owner, "the address moved");

    // The link comes back. The kernel dropped every route through it; the node's agent puts
    // them back: from that node, each pod (on every node) answers by its IP again, and the
    // Service by its ClusterIP.
    link("up");
    let wide = table(&c.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "wide"]));
    let cluster_ip = table(&c.kubectl_ok(&["get", "svc", "web"]))[0]["CLUSTER-IP"].clone();
    let node = format!("node-{owner}");
    assert!(
        wide.iter().any(|p| p["NODE"] != node),
        "a pod on another node (routes to other nodes' pods): {wide:?}"
    );
    let curl_node = |url: &str| -> Option<String> {
        c.exec_ok(&["--node", &node], &["curl", "-s", "-m", "2", url])
    };
    let started = Instant::now();
    eventually(
        Duration::from_secs(30),
        "pods and the ClusterIP reachable from the node after its link came back",
        || {
            let pods_answer = wide.iter().all(|p| {
                curl_node(&format!("http://{}:8080/hostname", p["IP"])).as_deref()
                    == Some(p["NAME"].as_str())
            });
            let service = curl_node(&format!("http://{cluster_ip}/hostname"))
                .is_some_and(|g| pods.contains(&g));
            (pods_answer && service).then_some(())
        },
    );
    println!(
        "{mode}: node-{owner}'s link back up; its routes were restored within {:.2?}",
        started.elapsed()
    );
    // And the address is announced by one node still (the speakers agree again).
    let back = eventually(
        Duration::from_secs(20),
        "one announcer after the link came back",
        || {
            let a = announcers(&c, &ip);
            (a.len() == 1).then_some(a)
        },
    );
    println!("{mode}: {ip} announced by node(s) {back:?} after the link came back");
}
