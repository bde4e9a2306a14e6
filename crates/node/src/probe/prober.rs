//! One probe attempt (the kubelet's `prober.go` `runProbe`): the handler the probe names,
//! within its `timeoutSeconds`; and the TCP and exec handlers (`pkg/probe/tcp`,
//! `pkg/probe/exec`; the HTTP one is [`super::http`]).

use std::io;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Probe, TCPSocketAction};

use super::context::{ProbeContext, ProbeResult};
use super::dial::{dial_error, join_host_port, resolve};
use super::http::http_probe;

/// `timeoutSeconds` (default 1, at least 1).
fn probe_timeout(probe: &Probe) -> Duration {
    Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64)
}

/// Runs `probe` once, within its `timeoutSeconds`.
pub async fn run_once(probe: &Probe, ctx: &ProbeContext) -> ProbeResult {
    let timeout = probe_timeout(probe);
    if let Some(exec) = &probe.exec {
        exec_probe(exec.command.clone().unwrap_or_default(), ctx, timeout).await
    } else if let Some(http) = &probe.http_get {
        http_probe(http, ctx, timeout).await
    } else if let Some(tcp) = &probe.tcp_socket {
        tcp_probe(tcp, ctx, timeout).await
    } else if probe.grpc.is_some() {
        ProbeResult::Unknown("grpc probes are not supported".into())
    } else {
        ProbeResult::Unknown("missing probe handler".into())
    }
}

async fn tcp_probe(action: &TCPSocketAction, ctx: &ProbeContext, timeout: Duration) -> ProbeResult {
    let (host, port) = match ctx.target(action.host.as_deref(), &action.port) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let attempt = async {
        let addr = resolve(&host, port).await.map_err(ProbeResult::Failure)?;
        match ctx.connector.connect(addr).await {
            Ok(_stream) => Ok(()),
            Err(e) => Err(ProbeResult::Failure(format!(
                "dial tcp {addr}: {}",
                dial_error(&e)
            ))),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => ProbeResult::Success,
        Ok(Err(r)) => r,
        Err(_) => ProbeResult::Failure(format!(
            "dial tcp {}: i/o timeout",
            join_host_port(&host, port)
        )),
    }
}

async fn exec_probe(argv: Vec<String>, ctx: &ProbeContext, timeout: Duration) -> ProbeResult {
    if argv.is_empty() {
        return ProbeResult::Unknown("exec probe has no command".into());
    }
    let line = argv.join(" ");
    // The runner enforces the timeout; the outer one only guards against a runner that does not.
    let run = ctx.exec.run(argv, timeout);
    match tokio::time::timeout(timeout + Duration::from_secs(5), run).await {
        Ok(Ok((0, _))) => ProbeResult::Success,
        Ok(Ok((code, out))) => {
            let out = String::from_utf8_lossy(&out).into_owned();
            if out.trim().is_empty() {
                ProbeResult::Failure(format!("command {line:?} exited with {code}"))
            } else {
                ProbeResult::Failure(out)
            }
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
            ProbeResult::Failure(format!("command {line:?} timed out"))
        }
        Err(_) => ProbeResult::Failure(format!("command {line:?} timed out")),
        Ok(Err(e)) => ProbeResult::Unknown(format!("failed to exec {line:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Instant;

    use futures::future::BoxFuture;
    use k8s_openapi::api::core::v1::GRPCAction;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::probe::dial::Connector;
    use crate::probe::testing::{closed_port, ctx, exec_spec, tcp_probe_spec, LOCALHOST};

    /// Never connects.
    struct Blackhole;
    impl Connector for Blackhole {
        fn connect(&self, _: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> {
            Box::pin(futures::future::pending())
        }
    }

    #[tokio::test]
    async fn tcp() {
        let c = ctx(vec![]);
        let l = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            run_once(&tcp_probe_spec(port.into()), &c).await,
            ProbeResult::Success
        );
        drop(l);
        let port = closed_port().await;
        assert_eq!(
            run_once(&tcp_probe_spec(port.into()), &c).await,
            ProbeResult::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
        let hole = ProbeContext {
            connector: Arc::new(Blackhole),
            pod_ip: "10.244.1.5".parse().unwrap(),
            ..c
        };
        assert_eq!(
            run_once(&tcp_probe_spec(80), &hole).await,
            ProbeResult::Failure("dial tcp 10.244.1.5:80: i/o timeout".into())
        );
    }

    #[tokio::test]
    async fn exec() {
        let c = ctx(vec![]);
        assert_eq!(
            run_once(&exec_spec(&["true"], 1), &c).await,
            ProbeResult::Success
        );
        assert_eq!(
            run_once(&exec_spec(&["sh", "-c", "exit 3"], 1), &c).await,
            ProbeResult::Failure("command \"sh -c exit 3\" exited with 3".into())
        );
        assert_eq!(
            run_once(
                &exec_spec(&["sh", "-c", "echo out; echo err >&2; exit 1"], 1),
                &c
            )
            .await,
            ProbeResult::Failure("out\nerr\n".into())
        );
        let start = Instant::now();
        assert_eq!(
            run_once(&exec_spec(&["sleep", "5"], 1), &c).await,
            ProbeResult::Failure("command \"sleep 5\" timed out".into())
        );
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(matches!(
            run_once(&exec_spec(&["/nonexistent/svcnet-probe"], 1), &c).await,
            ProbeResult::Unknown(_)
        ));
        assert!(matches!(
            run_once(&exec_spec(&[], 1), &c).await,
            ProbeResult::Unknown(_)
        ));
    }

    #[tokio::test]
    async fn grpc_and_missing_handler() {
        let c = ctx(vec![]);
        let p = Probe {
            grpc: Some(GRPCAction {
                port: 9000,
                service: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            run_once(&p, &c).await,
            ProbeResult::Unknown("grpc probes are not supported".into())
        );
        assert!(matches!(
            run_once(&Probe::default(), &c).await,
            ProbeResult::Unknown(_)
        ));
    }
}
