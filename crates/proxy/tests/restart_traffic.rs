//! Restarts and mode switches with real packets (issue 5: "Restarting the proxy does not break
//! established connections; leftover rules of the other mode are cleaned up when switching
//! modes"), in the namespaces of [`svcnet_netns::testing::Topology`], driven only through the public
//! [`Backend`] made by [`server::backend`] — exactly what `svcnet proxy` runs at start.
//!
//! - `established_connection_survives_restart_{nftables,iptables}`: a TCP connection through a
//!   ClusterIP keeps carrying data both ways after a fresh backend's start-up full sync (for
//!   nftables: the table is deleted and recreated) and after a cleanup (rules gone) followed by
//!   a full sync: conntrack keeps the DNAT / masquerade binding; new connections work too.
//! - `mode_switch_removes_the_other_modes_rules`: iptables → nftables leaves no `KUBE-*` chain
//!   in `iptables-save`; nftables → iptables leaves no `table ip svcnet`; traffic works after
//!   each switch, and a (quiet) connection made before the first switch survives both.

use std::time::Duration;

use svcnet_netns::testing::{ask, can_run, Topology};
use svcnet_netns::NetNs;
use svcnet_proxy::model::{Protocol, State};
use svcnet_proxy::server::{self, Mode};
use svcnet_proxy::testing::{add, backends, service, topology_options};
use svcnet_proxy::{iptables, nftables};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const VIP: &str = "10.97.2.1";
/// Where the echo servers of this test listen in b2 and b3 (the topology's own servers on
/// :8080 close after one answer; these keep a connection open).
const ECHO_PORT: u16 = 9090;

/// Whether the test can run here: root, nft, and the mode's own tool.
fn usable(mode: Mode) -> bool {
    let tool = match mode {
        Mode::Nftables => "nft",
        _ => "iptables-restore",
    };
    can_run(&[tool, "nft"])
}

/// One Service `echo` (VIP:80 → b2, b3 on ECHO_PORT) and `web` (10.97.2.2:80 → the
/// topology's name servers on b2..b4).
fn state() -> State {
    let mut st = State::default();
    add(
        &mut st,
        service("echo", VIP, 80, Protocol::Tcp),
        backends(&[2, 3], ECHO_PORT),
    );
    add(
        &mut st,
        service("web", "10.97.2.2", 80, Protocol::Tcp),
        backends(&[2, 3, 4], 8080),
    );
    st
}

/// Echo servers on b2 and b3: every read is answered with `<name>:<bytes read>`.
fn start_echo(t: &Topology) -> Vec<tokio::task::JoinHandle<()>> {
    let mut out = Vec::new();
    for (i, b) in t.ns[2..4].iter().enumerate() {
        let name = format!("b{}", i + 2);
        let l = tokio::net::TcpListener::from_std(
            b.tcp_listen(format!("0.0.0.0:{ECHO_PORT}").parse().unwrap())
                .unwrap(),
        )
        .unwrap();
        out.push(tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let name = name.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                let mut msg = format!("{name}:").into_bytes();
                                msg.extend_from_slice(&buf[..n]);
                                if s.write_all(&msg).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        }));
    }
    out
}

/// Send `msg` and return the answer (`<backend>:<msg>`), bounded in time.
async fn exchange(s: &mut TcpStream, msg: &str) -> std::io::Result<String> {
    tokio::time::timeout(Duration::from_secs(5), async {
        s.write_all(msg.as_bytes()).await?;
        let mut buf = vec![0u8; 3 + msg.len()];
        s.read_exact(&mut buf).await?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })
    .await
    .map_err(|_| std::io::Error::other(format!("no answer to {msg:?} within 5 s")))?
}

/// The send queues of the established connections: the client's to :80 and the echo
/// servers' from ECHO_PORT.
fn send_queues(t: &Topology) -> Vec<u64> {
    let mut out = Vec::new();
    let probes = [
        (&t.ns[0], "( dport = :80 )".to_string()),
        (&t.ns[2], format!("( sport = :{ECHO_PORT} )")),
        (&t.ns[3], format!("( sport = :{ECHO_PORT} )")),
    ];
    for (ns, filter) in probes {
        let o = ns
            .exec(&["ss", "-tnH", "state", "established", &filter])
            .unwrap();
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            // Recv-Q Send-Q Local Peer
            let f: Vec<&str> = line.split_whitespace().collect();
            out.push(f[1].parse().unwrap());
        }
    }
    out
}

/// Wait (bounded) until no established connection has unacknowledged data.
async fn quiet(t: &Topology) {
    for _ in 0..100 {
        let q = send_queues(t);
        assert!(!q.is_empty(), "the connection is established");
        if q.iter().all(|n| *n == 0) {
            // A delayed ACK of the last answer may still be pending on the client.
            tokio::time::sleep(Duration::from_millis(250)).await;
            if send_queues(t).iter().all(|n| *n == 0) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the connection did not become quiet: {:?}", send_queues(t));
}

/// Which backend (`b2`/`b3`) an echo answer came from, checking it echoes `msg`.
fn from(answer: &str, msg: &str) -> String {
    let (who, echoed) = answer.split_once(':').expect("<name>:<msg>");
    assert_eq!(echoed, msg, "echo of {msg:?}");
    assert!(who == "b2" || who == "b3", "{answer}");
    who.to_string()
}

fn nft_has_table(ns: &NetNs) -> bool {
    let out = ns.exec(&["nft", "list", "tables"]).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == format!("table {}", nftables::FAMILY_TABLE))
}

/// `KUBE-*` chains left in the nat and filter tables (iptables-save inside `ns`).
fn kube_chains(ns: &NetNs) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["nat", "filter"] {
        let saved = iptables::save(Some(ns.name()), table).unwrap_or_default();
        out.extend(
            saved
                .lines()
                .filter(|l| l.contains("KUBE-"))
                .map(|l| format!("{table}: {l}")),
        );
    }
    out
}

fn rules_present(mode: Mode, ns: &NetNs) -> bool {
    match mode {
        Mode::Nftables => nft_has_table(ns),
        _ => kube_chains(ns)
            .iter()
            .any(|l| l.starts_with("nat: :KUBE-SERVICES")),
    }
}

async fn established_connection_survives_restart(mode: Mode, prefix: &str) {
    if !usable(mode) {
        return;
    }
    let t = Topology::new(prefix);
    let echo = start_echo(&t);
    let (client, node) = (t.client(), t.node());
    let opts = topology_options(mode, node.name());
    let st = state();
    let vip = format!("{VIP}:80");

    let mut first = server::backend(&opts);
    first.full(&st).unwrap();
    assert!(rules_present(mode, node));
    let mut conn = client
        .tcp_connect(vip.parse().unwrap(), Duration::from_secs(3))
        .await
        .unwrap();
    let pod = from(&exchange(&mut conn, "before").await.unwrap(), "before");

    // 1. A new proxy process: a fresh backend object and its start-up full sync (nftables:
    //    `delete table` + the whole table again in one transaction; iptables: the other modes'
    //    cleanup, the jumps, then `iptables-restore --noflush` over the existing chains).
    drop(first);
    let mut second = server::backend(&opts);
    second.full(&st).unwrap();
    assert!(rules_present(mode, node));
    for i in 0..3 {
        let msg = format!("after-restart-{i}");
        let answer = exchange(&mut conn, &msg).await.unwrap();
        assert_eq!(from(&answer, &msg), pod, "same pod, same connection");
    }
    // New connections are balanced over both pods by the new rules (nftables: round-robin;
    // iptables: random, so up to 20 tries — all on one pod has probability 2^-19).
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20 {
        let mut c = client
            .tcp_connect(vip.parse().unwrap(), Duration::from_secs(3))
            .await
            .unwrap();
        let msg = format!("new-{i}");
        seen.insert(from(&exchange(&mut c, &msg).await.unwrap(), &msg));
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "new connections reach both pods: {seen:?}");
    assert!(ask(client, "10.97.2.2:80").await.unwrap().starts_with('b'));

    // 2. Cleanup (every rule gone, as `svcnet proxy --cleanup` leaves a node), then a full
    //    sync from scratch. The connection must be quiet while the rules are gone: with no
    //    rule using conntrack left in the namespace (both modes), the kernel stops tracking,
    //    so a packet of the connection in that window (the pod's answer, a retransmission, a
    //    delayed ACK) is not translated back, reaches the node's own stack (10.244.0.1) and
    //    the pod's socket is reset. (Measured: a pod answering 1.5 s into a 2.5 s gap loses
    //    its connection in both modes.) A restart therefore must never clean up first; the
    //    start-up full sync above replaces the rules atomically. Wait until neither side has
    //    unacknowledged data.
    quiet(&t).await;
    second.cleanup().unwrap();
    assert!(!rules_present(mode, node), "cleanup removed the rules");
    assert!(
        ask(client, "10.97.2.2:80").await.is_err(),
        "no rules: the ClusterIP is not served"
    );
    let mut third = server::backend(&opts);
    third.full(&st).unwrap();
    assert!(rules_present(mode, node));
    for i in 0..3 {
        let msg = format!("after-cleanup-{i}");
        let answer = exchange(&mut conn, &msg).await.unwrap();
        assert_eq!(from(&answer, &msg), pod, "same pod, same connection");
    }
    let mut c = client
        .tcp_connect(vip.parse().unwrap(), Duration::from_secs(3))
        .await
        .unwrap();
    from(&exchange(&mut c, "fresh").await.unwrap(), "fresh");
    assert!(ask(client, "10.97.2.2:80").await.unwrap().starts_with('b'));

    // The connection still closes normally both ways.
    conn.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest))
        .await
        .expect("server closes after our FIN")
        .unwrap();
    assert!(rest.is_empty());

    third.cleanup().unwrap();
    for s in echo.iter().chain(&t.servers) {
        s.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn established_connection_survives_restart_nftables() {
    established_connection_survives_restart(Mode::Nftables, "rstn").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn established_connection_survives_restart_iptables() {
    established_connection_survives_restart(Mode::Iptables, "rsti").await;
}

/// The names the three `web` answers came from, sorted.
async fn web_answers(client: &NetNs) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(ask(client, "10.97.2.2:80").await.unwrap());
    }
    seen.sort();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_switch_removes_the_other_modes_rules() {
    if !usable(Mode::Iptables) || !usable(Mode::Nftables) {
        return;
    }
    let t = Topology::new("rsts");
    let echo = start_echo(&t);
    let (client, node) = (t.client(), t.node());
    let st = state();
    let vip = format!("{VIP}:80");

    // iptables first.
    let mut ipt = server::backend(&topology_options(Mode::Iptables, node.name()));
    ipt.full(&st).unwrap();
    assert!(rules_present(Mode::Iptables, node));
    assert!(!nft_has_table(node));
    for who in web_answers(client).await {
        assert!(["b2", "b3", "b4"].contains(&who.as_str()), "{who}");
    }
    // A connection made through the iptables rules, quiet during the switch (see
    // `established_connection_survives_restart` on why it must be quiet).
    let mut conn = client
        .tcp_connect(vip.parse().unwrap(), Duration::from_secs(3))
        .await
        .unwrap();
    let pod = from(&exchange(&mut conn, "ipt").await.unwrap(), "ipt");
    quiet(&t).await;
    drop(ipt); // the iptables proxy stops without cleaning up (a crash, or a mode change)

    // Start in nftables mode as `svcnet proxy --proxy-mode nftables` does.
    let mut nft = server::backend(&topology_options(Mode::Nftables, node.name()));
    nft.full(&st).unwrap();
    let left = kube_chains(node);
    assert!(
        left.is_empty(),
        "iptables leftovers after starting in nftables mode:\n{}",
        left.join("\n")
    );
    assert!(nft_has_table(node));
    // Round-robin (nftables' numgen inc): three connections, three pods.
    assert_eq!(web_answers(client).await, ["b2", "b3", "b4"]);
    // The connection made under iptables still works, to the same pod.
    assert_eq!(from(&exchange(&mut conn, "nft").await.unwrap(), "nft"), pod);
    quiet(&t).await;
    drop(nft);

    // And back: iptables mode removes the nftables table.
    let mut ipt = server::backend(&topology_options(Mode::Iptables, node.name()));
    ipt.full(&st).unwrap();
    assert!(
        !nft_has_table(node),
        "table ip svcnet left in iptables mode"
    );
    assert!(rules_present(Mode::Iptables, node));
    for _ in 0..3 {
        let who = ask(client, "10.97.2.2:80").await.unwrap();
        assert!(["b2", "b3", "b4"].contains(&who.as_str()), "{who}");
    }
    assert_eq!(
        from(
            &exchange(&mut conn, "ipt-again").await.unwrap(),
            "ipt-again"
        ),
        pod
    );
    ipt.cleanup().unwrap();
    assert!(
        kube_chains(node).is_empty(),
        "iptables cleanup leaves nothing"
    );
    for s in echo.iter().chain(&t.servers) {
        s.abort();
    }
}
