//! exec and port-forward over WebSocket, as clients other than kubectl speak them, through the
//! real API server to the node agent's kubelet API (`svcnet_node::kubelet_api`), with the
//! commands and the forwarded server inside a test network namespace:
//!
//! - kube-rs' `AttachedProcess` (`v5.channel.k8s.io`, stdin closed with the v5 close signal);
//! - what the Python client does (`kubernetes.stream.stream`): stdin as *text* frames on
//!   channel 0, the close signal for channel 0, the exit code from the error channel's `Status`;
//! - the base64 variants (`base64.channel.k8s.io`, `v5.base64.channel.k8s.io`: text frames,
//!   channel digit and base64 data) with a terminal resized on channel 4;
//! - kube-rs' `Api::portforward` (`?ports=`, channel pairs per port, each channel's first frame
//!   the port), to an HTTP server in the namespace, and its error channel when nothing listens.
//!
//! Needs root (skipped otherwise); uses only loopback and that namespace.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use support::ApiServer;
use svcnet_netns::testing::{can_run, ScratchNetns};
use svcnet_node::kubelet_api::portforward::PodSandbox;
use svcnet_node::kubelet_api::{serve, Authenticator, ContainerHandle, PodRuntime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(30);

/// One pod `default/<pod>` with one container `app`, in a test namespace.
struct FakeRuntime {
    pod: String,
    handle: ContainerHandle,
}

impl PodRuntime for FakeRuntime {
    fn container(&self, namespace: &str, pod: &str, container: &str) -> Option<ContainerHandle> {
        ((namespace, pod, container) == ("default", self.pod.as_str(), "app"))
            .then(|| self.handle.clone())
    }

    fn sandbox(&self, namespace: &str, pod: &str) -> Option<PodSandbox> {
        ((namespace, pod) == ("default", self.pod.as_str())).then(|| PodSandbox {
            netns: self.handle.netns.clone(),
            running: true,
        })
    }
}

/// The Node and Pod made through the API, and the HTTP server in the namespace: gone however
/// the test ends.
struct Cleanup<'a> {
    api: &'a ApiServer,
    node: String,
    pod: String,
    server: Option<Child>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = self.api.kubectl(&[
            "delete",
            "pod",
            &self.pod,
            "--grace-period=0",
            "--force",
            "--ignore-not-found",
        ]);
        let _ = self
            .api
            .kubectl(&["delete", "node", &self.node, "--ignore-not-found"]);
    }
}

fn query(command: &[&str], extra: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for c in command {
        q.append_pair("command", c);
    }
    format!("{}{extra}", q.finish())
}

type Ws = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// A WebSocket upgrade request for `path` offering `protocols`.
fn upgrade_request(path: &str, protocols: &str) -> http::Request<kube::client::Body> {
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    http::Request::get(path)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, key)
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, protocols)
        .body(kube::client::Body::empty())
        .unwrap()
}

/// A WebSocket to `pods/<pod>/exec?<query>` offering `protocols`; the one selected with it.
async fn open(client: &kube::Client, pod: &str, query: &str, protocols: &str) -> (String, Ws) {
    let path = format!("/api/v1/namespaces/default/pods/{pod}/exec?{query}");
    let req = upgrade_request(&path, protocols);
    let resp = client.send(req).await.expect("the upgrade request");
    assert_eq!(resp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    let selected = resp
        .headers()
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let upgraded = hyper::upgrade::on(resp).await.expect("upgraded");
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        hyper_util::rt::TokioIo::new(upgraded),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    (selected, ws)
}

/// What a session said, per channel, until the server closed it.
#[derive(Default, Debug)]
struct Said {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    error: Vec<u8>,
    /// Whether frames came as text (base64) rather than binary.
    text_frames: bool,
}

/// One frame's channel and data (`base64`: decoded from a text frame).
fn decode(base64: bool, msg: Message) -> Option<(u8, Vec<u8>)> {
    let data: Vec<u8> = match msg {
        Message::Binary(b) => b.to_vec(),
        Message::Text(t) => t.as_bytes().to_vec(),
        _ => return None,
    };
    let (&ch, rest) = data.split_first()?;
    if base64 {
        let d = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .expect("base64 data");
        Some((ch - b'0', d))
    } else {
        Some((ch, rest.to_vec()))
    }
}

/// Read `ws` until `until` holds of what it said (or it closes).
async fn read_until(ws: &mut Ws, base64: bool, said: &mut Said, until: impl Fn(&Said) -> bool) {
    while !until(said) {
        let Some(Ok(msg)) = tokio::time::timeout(T, ws.next())
            .await
            .expect("output in time")
        else {
            return;
        };
        said.text_frames |= msg.is_text();
        match decode(base64, msg) {
            Some((1, d)) => said.stdout.extend(d),
            Some((2, d)) => said.stderr.extend(d),
            Some((3, d)) => said.error.extend(d),
            _ => {}
        }
    }
}

fn status_of(said: &Said) -> serde_json::Value {
    serde_json::from_slice(&said.error).unwrap_or_else(|_| {
        panic!(
            "a Status on the error channel: {:?}",
            String::from_utf8_lossy(&said.error)
        )
    })
}

fn frame(channel: u8, data: &str) -> Message {
    Message::text(format!("{}{data}", char::from(channel)))
}

#[test]
fn exec_and_port_forward_over_websocket() {
    if !can_run(&[]) {
        return;
    }
    let ns = ScratchNetns::new("wsexec").expect("creating the test namespace");
    let ns_name = ns.name().to_string();
    let pid = std::process::id();
    let api = ApiServer::start();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("hello.txt"),
        "hello through a websocket\n",
    )
    .unwrap();

    let auth = Authenticator::from_token_file(Some(&api.data_dir().join("kubelet-client.token")))
        .expect("the apiserver's kubelet client token");
    let pod = format!("ws-{pid}");
    let node = format!("t-ws-{pid}");
    let runtime = Arc::new(FakeRuntime {
        pod: pod.clone(),
        handle: ContainerHandle {
            log_path: files.path().join("0.log"),
            netns: ns_name.clone(),
            env: vec![(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )],
            workdir: Some(PathBuf::from("/")),
            running: true,
            ..Default::default()
        },
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(serve(listener, auth, runtime));

    let mut cleanup = Cleanup {
        api: &api,
        node: node.clone(),
        pod: pod.clone(),
        server: None,
    };
    let out = api.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {node}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  namespace: default\n\
             spec:\n  nodeName: {node}\n  containers:\n  - name: app\n    image: busybox\n"
        ),
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        api.log()
    );
    api.kubectl_ok(&[
        "patch",
        "node",
        &node,
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(
            r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"127.0.0.1"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{port}}}}}}}}}"#
        ),
    ]);
    // An HTTP server on the pod's loopback, for port-forward.
    let status = Command::new("ip")
        .args(["netns", "exec", &ns_name, "ip", "link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(status.success());
    cleanup.server = Some(
        Command::new("ip")
            .args(["netns", "exec", &ns_name, "python3", "-m", "http.server"])
            .args(["8080", "--bind", "127.0.0.1", "--directory"])
            .arg(files.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3's http.server"),
    );

    rt.block_on(async {
        let client = api.client().await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

        // kube-rs: stdin written, closed (v5's close signal), the output and a Success status.
        let ap = AttachParams::default().stdin(true).stderr(false);
        let mut p = pods.exec(&pod, ["cat"], &ap).await.expect("kube-rs exec");
        let mut stdin = p.stdin().unwrap();
        let mut stdout = p.stdout().unwrap();
        let st = p.take_status().unwrap();
        stdin.write_all(b"from kube-rs\n").await.unwrap();
        stdin.shutdown().await.unwrap();
        drop(stdin);
        let mut out = String::new();
        tokio::time::timeout(T, stdout.read_to_string(&mut out))
            .await
            .expect("cat's output in time")
            .unwrap();
        assert_eq!(out, "from kube-rs\n");
        let st = tokio::time::timeout(T, st)
            .await
            .unwrap()
            .expect("a status");
        assert_eq!(st.status.as_deref(), Some("Success"), "{st:?}");
        drop(stdout);
        tokio::time::timeout(T, p.join()).await.unwrap().unwrap();

        // The Python client's test_pod_apis: `/bin/sh` fed lines as text frames, read back on
        // channel 1; `exit 3` ends it with the exit code in a NonZeroExitCode Status.
        let protocols = "v5.channel.k8s.io,v4.channel.k8s.io";
        let q = query(
            &["/bin/sh"],
            "&stdin=true&stdout=true&stderr=true&tty=false",
        );
        let (selected, mut ws) = open(&client, &pod, &q, protocols).await;
        assert_eq!(selected, "v5.channel.k8s.io");
        let mut said = Said::default();
        ws.send(frame(0, "echo test string 1\n")).await.unwrap();
        read_until(&mut ws, false, &mut said, |s| s.stdout.ends_with(b"\n")).await;
        assert_eq!(String::from_utf8_lossy(&said.stdout), "test string 1\n");
        ws.send(frame(0, "echo test string 2 >&2\n")).await.unwrap();
        ws.send(frame(0, "exit 3\n")).await.unwrap();
        read_until(&mut ws, false, &mut said, |s| !s.error.is_empty()).await;
        assert_eq!(String::from_utf8_lossy(&said.stderr), "test string 2\n");
        let st = status_of(&said);
        assert_eq!(st["status"], "Failure", "{st}");
        assert_eq!(st["reason"], "NonZeroExitCode", "{st}");
        assert_eq!(st["details"]["causes"][0]["reason"], "ExitCode", "{st}");
        assert_eq!(st["details"]["causes"][0]["message"], "3", "{st}");

        // test_pod_exec_close_channel: `cat` fed, then stdin closed with 255 0.
        let q = query(&["cat"], "&stdin=true&stdout=true&stderr=true");
        let (_, mut ws) = open(&client, &pod, &q, protocols).await;
        let mut said = Said::default();
        ws.send(frame(0, "test-close\n")).await.unwrap();
        ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
        read_until(&mut ws, false, &mut said, |s| !s.error.is_empty()).await;
        assert_eq!(String::from_utf8_lossy(&said.stdout), "test-close\n");
        assert_eq!(status_of(&said)["status"], "Success");

        // base64.channel.k8s.io (v1): text frames both ways; `head -n1` ends on its own.
        let q = query(&["head", "-n1"], "&stdin=true&stdout=true");
        let (selected, mut ws) = open(&client, &pod, &q, "base64.channel.k8s.io").await;
        assert_eq!(selected, "base64.channel.k8s.io");
        let mut said = Said::default();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        ws.send(frame(b'0', &b64("in base64\nnot read\n")))
            .await
            .unwrap();
        read_until(&mut ws, true, &mut said, |_| false).await;
        assert!(said.text_frames);
        assert_eq!(String::from_utf8_lossy(&said.stdout), "in base64\n");
        // Before v4 a success says nothing on the error channel.
        assert!(said.error.is_empty(), "{:?}", said.error);

        // v5.base64 with a terminal, resized on channel 4.
        let q = query(
            &[
                "sh",
                "-c",
                "for i in $(seq 50); do [ \"$(stty size)\" = \"0 0\" ] || break; sleep 0.1; \
                 done; stty size",
            ],
            "&stdin=true&stdout=true&tty=true",
        );
        let (selected, mut ws) = open(&client, &pod, &q, "v5.base64.channel.k8s.io").await;
        assert_eq!(selected, "v5.base64.channel.k8s.io");
        ws.send(frame(b'4', &b64(r#"{"Width":100,"Height":30}"#)))
            .await
            .unwrap();
        let mut said = Said::default();
        read_until(&mut ws, true, &mut said, |s| !s.error.is_empty()).await;
        assert_eq!(String::from_utf8_lossy(&said.stdout), "30 100\r\n");
        assert_eq!(status_of(&said)["status"], "Success");

        // An unknown subprotocol is refused.
        let path = format!("/api/v1/namespaces/default/pods/{pod}/exec?command=true&stdout=1");
        let resp = client
            .send(upgrade_request(&path, "v9.channel.k8s.io"))
            .await
            .unwrap();
        assert_eq!(resp.status(), http::StatusCode::BAD_REQUEST);

        // Port-forward with kube-rs (WebSocket): an HTTP request to the server in the pod,
        // retried while it starts.
        let mut answer = String::new();
        for _ in 0..100 {
            let mut pf = pods.portforward(&pod, &[8080]).await.expect("portforward");
            let mut s = pf.take_stream(8080).unwrap();
            let err = pf.take_error(8080).unwrap();
            s.write_all(b"GET /hello.txt HTTP/1.0\r\nHost: pod\r\n\r\n")
                .await
                .unwrap();
            answer.clear();
            let _ = tokio::time::timeout(T, s.read_to_string(&mut answer)).await;
            drop(s);
            let err = tokio::time::timeout(T, err).await.ok().flatten();
            let _ = tokio::time::timeout(T, pf.join()).await;
            if answer.starts_with("HTTP/1.0 200") {
                assert_eq!(err, None);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        assert!(
            answer.ends_with("\r\n\r\nhello through a websocket\n"),
            "{answer}"
        );

        // Two ports, one with nothing listening: its error channel says why (containerd's
        // words), the other still works.
        let mut pf = pods.portforward(&pod, &[8080, 9]).await.unwrap();
        let mut refused = pf.take_stream(9).unwrap();
        let err = pf.take_error(9).unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(T, refused.read_to_end(&mut buf)).await;
        let err = tokio::time::timeout(T, err)
            .await
            .unwrap()
            .expect("an error");
        assert!(
            err.starts_with("error forwarding port 9 to pod ")
                && err.contains("failed to connect to localhost:9 inside namespace")
                && err.contains("dial tcp4 127.0.0.1:9: connect: connection refused"),
            "{err}"
        );
        let mut s = pf.take_stream(8080).unwrap();
        s.write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(T, s.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        drop((s, refused));
        let _ = tokio::time::timeout(T, pf.join()).await;

        // Without ports: the kubelet's 400.
        let path = format!("/api/v1/namespaces/default/pods/{pod}/portforward");
        let resp = client
            .send(upgrade_request(&path, "v4.channel.k8s.io"))
            .await
            .unwrap();
        assert_eq!(resp.status(), http::StatusCode::BAD_REQUEST);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains(r#"query parameter "port" is required"#),
            "{body}"
        );
    });
    drop(cleanup);
    drop(ns);
}
