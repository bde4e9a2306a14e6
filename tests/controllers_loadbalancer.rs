//! The LoadBalancer address controller against a running API server, driven by kubectl: pools,
//! `<pending>` with an Event when they run out, addresses freed by deletion and by a type change,
//! requested addresses honoured or refused with a condition, other classes left alone.

mod support;

use std::time::Duration;

use support::{eventually, table, ApiServer};

const T: Duration = Duration::from_secs(30);

fn lb(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: LoadBalancer\n{extra}  selector:\n    app: web\n  ports:\n  - port: 80\n"
    )
}

fn apply(s: &ApiServer, yaml: &str) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kubectl get svc NAME`'s EXTERNAL-IP column.
fn external_ip(s: &ApiServer, name: &str) -> String {
    let rows = table(&s.kubectl_ok(&["get", "svc", name]));
    rows[0]["EXTERNAL-IP"].clone()
}

fn wait_ip(s: &ApiServer, name: &str, want: &str) {
    eventually(T, &format!("{name} EXTERNAL-IP {want}"), || {
        (external_ip(s, name) == want).then_some(())
    });
}

#[test]
fn pools_pending_release_requested_and_foreign_classes() {
    let mut s = ApiServer::start();
    s.start_controllers(&["--loadbalancer-ip-range", "172.28.0.200-172.28.0.201"]);

    apply(&s, &lb("a", ""));
    wait_ip(&s, "a", "172.28.0.200");
    apply(&s, &lb("b", ""));
    wait_ip(&s, "b", "172.28.0.201");
    // NodePorts are allocated as Kubernetes does, unless allocateLoadBalancerNodePorts is false.
    let ports = s.kubectl_ok(&[
        "get",
        "svc",
        "a",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    assert!(ports.parse::<u16>().is_ok_and(|p| p >= 30000), "{ports}");

    // The pool is exhausted: <pending>, a Warning Event and a condition saying why.
    apply(&s, &lb("c", ""));
    let ev = eventually(T, "AllocationFailed event", || {
        let out = s.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=c"]);
        out.contains("AllocationFailed").then_some(out)
    });
    assert!(ev.contains("no available IPs"), "{ev}");
    assert_eq!(external_ip(&s, "c"), "<pending>");
    let reason = s.kubectl_ok(&[
        "get",
        "svc",
        "c",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"LoadBalancerIPAllocated\")].reason}",
    ]);
    assert_eq!(reason, "PoolExhausted");
    let described = s.kubectl_ok(&["describe", "svc", "a"]);
    assert!(described.contains("IPAllocated"), "{described}");

    // Deleting a frees its address for c.
    s.kubectl_ok(&["delete", "svc", "a"]);
    wait_ip(&s, "c", "172.28.0.200");

    // A type change releases the address: b becomes ClusterIP, d gets its address.
    s.kubectl_ok(&[
        "patch",
        "svc",
        "b",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"ClusterIP","externalTrafficPolicy":null}}"#,
    ]);
    eventually(T, "b's status cleared", || {
        let ip = s.kubectl_ok(&[
            "get",
            "svc",
            "b",
            "-o",
            "jsonpath={.status.loadBalancer.ingress}",
        ]);
        ip.is_empty().then_some(())
    });
    apply(&s, &lb("d", ""));
    wait_ip(&s, "d", "172.28.0.201");

    // A requested address outside the pools is refused, with an Event and the condition.
    apply(&s, &lb("e", "  loadBalancerIP: 192.0.2.7\n"));
    let ev = eventually(T, "refusal event", || {
        let out = s.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=e"]);
        out.contains("not allowed in config").then_some(out)
    });
    assert!(ev.contains("AllocationFailed"), "{ev}");
    assert_eq!(external_ip(&s, "e"), "<pending>");
    // Freed, a requested address in the pool is given to the Service that asked for it.
    s.kubectl_ok(&["delete", "svc", "d"]);
    apply(&s, &lb("f", "  loadBalancerIP: 172.28.0.201\n"));
    wait_ip(&s, "f", "172.28.0.201");

    // Another implementation's class is left alone.
    apply(&s, &lb("g", "  loadBalancerClass: example.com/lb\n"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(external_ip(&s, "g"), "<pending>");
    let ev = s.kubectl_ok(&["get", "events", "--field-selector", "involvedObject.name=g"]);
    assert!(
        !ev.contains("IPAllocated") && !ev.contains("AllocationFailed"),
        "{ev}"
    );
}
