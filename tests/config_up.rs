//! Pods consuming ConfigMaps and Secrets on `svcnet up`, driven with the real kubectl: a pod
//! whose ConfigMap is missing waits in `CreateContainerConfigError` with the kubelet's Event
//! and starts once `kubectl create configmap|secret` made them; its env (`valueFrom`,
//! `envFrom` with a prefix) and volumes (`configMap` with items, `secret` with a mode) hold
//! the values, and a changed ConfigMap reaches the mounted file of the running container, as
//! the kubelet's re-sync does. Once as a host process (`svcnet-process`), once from the
//! busybox image under runc. `imagePullSecrets` against a registry with htpasswd auth.

mod support;

use std::time::Duration;

use support::cluster::Cluster;
use support::{eventually, table};

/// The consumer pod; `extra` goes into its spec, `mount` is where the volumes go.
fn consumer(image: &str, runtime: &str, mount: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: consumer}}
spec:
  {runtime}
  containers:
  - name: c
    image: {image}
    command: [sleep, '3600']
    env:
    - name: MODE
      valueFrom: {{configMapKeyRef: {{name: app, key: mode}}}}
    - name: PASSWORD
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    - name: MAYBE
      valueFrom: {{configMapKeyRef: {{name: nope, key: x, optional: true}}}}
    envFrom:
    - prefix: CFG_
      configMapRef: {{name: app}}
    volumeMounts:
    - {{name: cfg, mountPath: {mount}/cfg}}
    - {{name: creds, mountPath: {mount}/creds}}
  volumes:
  - name: cfg
    configMap:
      name: app
      items: [{{key: greeting, path: greeting.txt}}]
  - name: creds
    secret: {{secretName: creds, defaultMode: 0400}}
"
    )
}

fn run_consumer(c: &Cluster, manifest: &str, mount: &str) {
    c.kubectl_stdin_ok(&["create", "-f", "-"], manifest);

    // Nothing to read yet: the kubelet's CreateContainerConfigError and its Event.
    eventually(
        Duration::from_secs(60),
        "CreateContainerConfigError",
        || {
            let t = table(&c.kubectl_ok(&["get", "pod", "consumer"]));
            (t[0]["STATUS"] == "CreateContainerConfigError").then_some(())
        },
    );
    let events = c.events_of("default", "consumer");
    assert!(
        events.contains("Failed: Error: configmap \"app\" not found"),
        "{events}"
    );

    c.kubectl_ok(&[
        "create",
        "configmap",
        "app",
        "--from-literal=mode=fast",
        "--from-literal=greeting=hello",
    ]);
    c.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cret",
    ]);
    c.wait_running("consumer");

    let sh = |script: &str| c.kubectl_ok(&["exec", "consumer", "--", "sh", "-c", script]);
    assert_eq!(
        sh("echo $MODE $PASSWORD $CFG_mode $CFG_greeting ${MAYBE-unset}").trim(),
        "fast s3cret fast hello unset"
    );
    assert_eq!(sh(&format!("cat {mount}/cfg/greeting.txt")), "hello");
    assert_eq!(sh(&format!("cat {mount}/creds/password")), "s3cret");
    // The kubelet's layout: names are links through `..data`; the mode as asked.
    assert_eq!(
        sh(&format!("readlink {mount}/cfg/greeting.txt")).trim(),
        "..data/greeting.txt"
    );
    assert_eq!(
        sh(&format!("stat -L -c %a {mount}/creds/password")).trim(),
        "400"
    );

    // An update reaches the running container's file.
    c.kubectl_ok(&[
        "patch",
        "cm",
        "app",
        "-p",
        r#"{"data":{"greeting":"bonjour"}}"#,
    ]);
    eventually(Duration::from_secs(30), "the new greeting", || {
        (sh(&format!("cat {mount}/cfg/greeting.txt")) == "bonjour").then_some(())
    });
}

#[test]
fn process_pod_consumes_config_maps_and_secrets() {
    let c = Cluster::up(1);
    // Host processes see the node's filesystem: the volumes are bound over a directory that
    // exists there, in the pod's own mount namespace only.
    let mount = tempfile::tempdir().unwrap();
    std::fs::create_dir(mount.path().join("cfg")).unwrap();
    std::fs::create_dir(mount.path().join("creds")).unwrap();
    let m = mount.path().to_str().unwrap();
    run_consumer(
        &c,
        &consumer("busybox", "runtimeClassName: svcnet-process", m),
        m,
    );
    assert!(
        !mount.path().join("cfg/greeting.txt").exists(),
        "the host's directory is untouched"
    );
}

#[test]
fn container_from_image_consumes_config_maps_and_secrets() {
    if !support::cluster::can_run_images(&["kubectl"]) {
        return;
    }
    let (_registry, c, _dir) = Cluster::up_with_registry(1, false, &[]);
    run_consumer(&c, &consumer("busybox", "", "/etc/app"), "/etc/app");
}

/// `imagePullSecrets`: a registry with htpasswd auth refuses an anonymous pull; a
/// `kubectl create secret docker-registry` Secret named by the pod authenticates it; a missing
/// one is the kubelet's `FailedToRetrieveImagePullSecret` Warning.
#[test]
fn image_pull_secrets_authenticate_the_pull() {
    if !support::cluster::can_run_images(&["kubectl"]) {
        return;
    }
    let registry =
        svcnet_images::testing::Registry::start_with_htpasswd("puller", "s3cret").unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async {
            let busybox = svcnet_images::build::seeds::busybox()?.build()?;
            registry.push(&busybox, "private/busybox", "latest").await
        })
        .unwrap();
    let c = Cluster::up(1);
    let host = registry.host();
    let pod = |name: &str, secret: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  imagePullSecrets: [{{name: {secret}}}]
  containers:
  - {{name: c, image: '{host}/private/busybox', command: [sleep, '3600']}}
"
        )
    };
    c.kubectl_stdin_ok(&["create", "-f", "-"], &pod("anonymous", "gone"));
    eventually(Duration::from_secs(60), "a refused pull", || {
        let t = table(&c.kubectl_ok(&["get", "pod", "anonymous"]));
        matches!(t[0]["STATUS"].as_str(), "ErrImagePull" | "ImagePullBackOff").then_some(())
    });
    let events = c.events_of("default", "anonymous");
    assert!(
        events.contains("FailedToRetrieveImagePullSecret: Unable to retrieve some image pull secrets (gone); attempting to pull the image may not succeed."),
        "{events}"
    );
    assert!(events.contains("401 Unauthorized"), "{events}");

    c.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={host}"),
        "--docker-username=puller",
        "--docker-password=s3cret",
    ]);
    c.kubectl_stdin_ok(&["create", "-f", "-"], &pod("authenticated", "regcred"));
    c.wait_running("authenticated");
}
