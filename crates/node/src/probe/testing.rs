//! What the probe tests share: a context probing from 127.0.0.1, a small HTTP server with
//! one path per behaviour, and probe specs.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerPort, ExecAction, HTTPGetAction, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{DirectConnector, LocalExec, ProbeContext};

pub const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

pub fn ctx(ports: Vec<ContainerPort>) -> ProbeContext {
    ProbeContext {
        pod_ip: LOCALHOST,
        ports,
        connector: Arc::new(DirectConnector),
        exec: Arc::new(LocalExec),
    }
}

/// A tiny HTTP server on 127.0.0.1: `/ok` 200, `/fail` 503, `/status` the code in `status`,
/// `/redirect` 302 to `/ok`, `/redirect-fail` 302 to `/fail`, `/loop` 302 to itself,
/// `/away` 302 to another host, `/big` a 1 MiB body, `/hang` no answer, `/headers` 200 when
/// the probe's headers are as expected, `/slow-body` headers then a stalled body.
pub async fn server(status: Arc<AtomicU16>) -> u16 {
    let l = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let status = status.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&buf).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let lower = req.to_lowercase();
                let (code, extra, body): (u16, String, Vec<u8>) = match path.as_str() {
                    "/ok" => (200, String::new(), b"ok".to_vec()),
                    "/fail" => (503, String::new(), b"down".to_vec()),
                    "/status" => (status.load(Ordering::SeqCst), String::new(), vec![]),
                    "/redirect" => (302, "Location: /ok\r\n".into(), vec![]),
                    "/redirect-fail" => (302, "Location: /fail\r\n".into(), vec![]),
                    "/loop" => (302, "Location: /loop\r\n".into(), vec![]),
                    "/away" => (
                        302,
                        "Location: http://elsewhere.invalid/x\r\n".into(),
                        vec![],
                    ),
                    "/big" => (200, String::new(), vec![b'x'; 1 << 20]),
                    "/hang" => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    "/slow-body" => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
                            .await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    "/headers" => {
                        let good = lower.contains("\r\nuser-agent: kube-probe/1.32\r\n")
                            && lower.contains("\r\naccept: */*\r\n")
                            && lower.contains("\r\nx-test: yes\r\n")
                            && lower.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n"));
                        (if good { 200 } else { 400 }, String::new(), vec![])
                    }
                    "/custom-headers" => {
                        let good = lower.contains("\r\nuser-agent: mine\r\n")
                            && !lower.contains("\r\naccept:")
                            && lower.contains("\r\nhost: example.test\r\n");
                        (if good { 200 } else { 400 }, String::new(), vec![])
                    }
                    _ => (404, String::new(), vec![]),
                };
                let head = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

pub fn http_probe_spec(port: IntOrString, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port,
            path: Some(path.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A port nothing listens on.
pub async fn closed_port() -> u16 {
    let l = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    l.local_addr().unwrap().port()
}

pub fn tcp_probe_spec(port: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            host: None,
        }),
        ..Default::default()
    }
}

pub fn exec_spec(argv: &[&str], timeout: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(argv.iter().map(|s| s.to_string()).collect()),
        }),
        timeout_seconds: Some(timeout),
        ..Default::default()
    }
}
