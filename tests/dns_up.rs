//! Cluster DNS on `svcnet up`, as the seeds use it: `dig @10.96.0.10` for a headless Service
//! (the pods' addresses) and an ExternalName Service (the CNAME) from a node, `nslookup nginx`
//! and `cat /etc/resolv.conf` from a pod, and the kube-dns Service balancing over the nodes'
//! DNS servers.

mod support;

use std::collections::BTreeSet;

use support::cluster::Cluster;
use support::table;

#[test]
fn seeds_dns_walkthrough() {
    let c = Cluster::up_with(2, &[]);
    c.apply_seeds(&[
        "Service-Env.yaml",
        "Service-Headliness.yaml",
        "Service-Externalname.yaml",
        "busybox.yaml",
    ]);
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: nginx}\nspec:\n  selector: {app: service-env}\n  ports: [{port: 80}]\n");
    let pods = c.ready_pods("app=service-env", 3);
    let ips: BTreeSet<String> = pods.iter().map(|p| p["IP"].clone()).collect();

    // kube-dns is a Service like any other, at the seeds' address, served by every node.
    let svc = table(&c.kubectl_ok(&["get", "svc", "-n", "kube-system", "kube-dns"]));
    assert_eq!(svc[0]["CLUSTER-IP"], "10.96.0.10");

    // `dig @10.96.0.10 service-headliness.default.svc.cluster.local +short` → the 3 pod IPs.
    c.wait_dig_short(
        "node-1",
        "service-headliness.default.svc.cluster.local",
        &ips,
    );
    assert_eq!(ips.len(), 3);

    // The ExternalName Service answers with its CNAME (the address behind it needs a resolver
    // outside the cluster, which `svcnet up` does not reach).
    c.assert_cname(
        "node-2",
        "service-externalname.default.svc.cluster.local",
        "www.baidu.com.",
        &["+tcp"],
    );

    // From a pod: its resolv.conf as the seeds show, and `nslookup nginx` → the ClusterIP.
    c.wait_running("busybox");
    c.assert_cluster_resolv_conf("busybox");
    let cluster_ip = c.jsonpath("svc", "nginx", "{.spec.clusterIP}");
    let looked_up = c.kubectl_ok(&["exec", "busybox", "--", "nslookup", "nginx"]);
    assert!(
        looked_up.contains("nginx.default.svc.cluster.local"),
        "{looked_up}"
    );
    assert!(looked_up.contains(&cluster_ip), "{looked_up}");
    assert!(looked_up.contains("10.96.0.10"), "{looked_up}");
}
