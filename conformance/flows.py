"""Basic flows of kr8s and lightkube against svcnet (issue 19's "kr8s and lightkube basic flows").

Each step is create / get / list / watch / patch / apply / delete of a ConfigMap, a Service
or a Pod through the client's public API, the way its README shows it. A step that raises is
a failure, printed with the client's exception (what the server answered). Usage (KUBECONFIG
set): python3 flows.py kr8s|lightkube. Ends with "N passed, N failed".
"""

import os
import sys
import threading
import traceback
import uuid

RESULTS = []


def step(name, fn):
    try:
        fn()
        RESULTS.append((name, None))
        print(f"PASS {name}", flush=True)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, not raised
        detail = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:400]
        RESULTS.append((name, detail))
        print(f"FAIL {name}: {detail}", flush=True)
        if os.environ.get("FLOWS_TRACE"):
            traceback.print_exc()


def watch_sees(start_watch, trigger, want_type, timeout=20.0):
    """Starts a watch in a thread, runs `trigger`, and waits for an event of `want_type`."""
    seen = threading.Event()
    err = []

    def run():
        try:
            for ev_type in start_watch():
                if ev_type == want_type:
                    seen.set()
                    return
        except Exception as exc:  # noqa: BLE001
            err.append(exc)
            seen.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    import time

    time.sleep(1.0)
    trigger()
    if not seen.wait(timeout):
        raise AssertionError(f"no {want_type} event within {timeout}s")
    if err:
        raise err[0]


def pod_body(name, ns):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
    }


def svc_body(name, ns):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def cm_body(name, ns, data):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def run_kr8s():
    import kr8s
    from kr8s.objects import ConfigMap, Namespace, Pod, Service

    api = kr8s.api()
    ns = "kr8s-" + uuid.uuid4().hex[:6]
    step("kr8s: version", lambda: api.version()["gitVersion"])
    step("kr8s: create namespace", lambda: Namespace({"metadata": {"name": ns}}).create())

    cm = ConfigMap(cm_body("cm1", ns, {"a": "1"}))
    step("kr8s: create configmap", cm.create)

    def get_cm():
        got = ConfigMap.get("cm1", namespace=ns)
        assert got.raw["data"] == {"a": "1"}, got.raw

    step("kr8s: get configmap", get_cm)

    def list_cm():
        names = [o.name for o in api.get("configmaps", namespace=ns)]
        assert "cm1" in names, names

    step("kr8s: list configmaps", list_cm)

    def patch_cm():
        cm.patch({"data": {"b": "2"}})
        cm.refresh()
        assert cm.raw["data"] == {"a": "1", "b": "2"}, cm.raw

    step("kr8s: patch configmap (merge)", patch_cm)

    def watch_cm():
        watch_sees(
            lambda: (e for e, _ in api.watch("configmaps", namespace=ns)),
            lambda: ConfigMap(cm_body("cm2", ns, {"x": "y"})).create(),
            "ADDED",
        )

    step("kr8s: watch configmaps", watch_cm)

    svc = Service(svc_body("svc1", ns))
    step("kr8s: create service", svc.create)

    def get_svc():
        got = Service.get("svc1", namespace=ns)
        assert got.spec["clusterIP"], got.raw

    step("kr8s: get service (clusterIP allocated)", get_svc)

    pod = Pod(pod_body("pod1", ns))
    step("kr8s: create pod", pod.create)
    step("kr8s: wait pod Ready", lambda: pod.wait("condition=Ready", timeout=90))
    step("kr8s: pod exec", lambda: pod.exec(["echo", "hi"]))

    def list_pods_selector():
        names = [p.name for p in api.get("pods", namespace=ns, label_selector={"app": "pod1"})]
        assert names == ["pod1"], names

    step("kr8s: list pods by label", list_pods_selector)
    step("kr8s: delete pod", pod.delete)
    step("kr8s: delete service", svc.delete)
    step("kr8s: delete configmap", cm.delete)
    step("kr8s: delete namespace", lambda: Namespace.get(ns).delete())


def run_lightkube():
    from lightkube import Client
    from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Service
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.codecs import load_all_yaml

    client = Client()
    ns = "lk-" + uuid.uuid4().hex[:6]
    step("lightkube: create namespace", lambda: client.create(Namespace(metadata=ObjectMeta(name=ns))))

    step(
        "lightkube: create configmap",
        lambda: client.create(ConfigMap(metadata=ObjectMeta(name="cm1"), data={"a": "1"}), namespace=ns),
    )

    def get_cm():
        got = client.get(ConfigMap, "cm1", namespace=ns)
        assert got.data == {"a": "1"}, got

    step("lightkube: get configmap", get_cm)

    def list_cm():
        names = [o.metadata.name for o in client.list(ConfigMap, namespace=ns)]
        assert "cm1" in names, names

    step("lightkube: list configmaps", list_cm)

    def patch_cm():
        got = client.patch(ConfigMap, "cm1", {"data": {"b": "2"}}, namespace=ns)
        assert got.data == {"a": "1", "b": "2"}, got

    step("lightkube: patch configmap (strategic)", patch_cm)

    def watch_cm():
        watch_sees(
            lambda: (e for e, _ in client.watch(ConfigMap, namespace=ns)),
            lambda: client.create(ConfigMap(metadata=ObjectMeta(name="cm2"), data={"x": "y"}), namespace=ns),
            "ADDED",
        )

    step("lightkube: watch configmaps", watch_cm)

    def apply_cm():
        obj = ConfigMap(metadata=ObjectMeta(name="cm3", namespace=ns), data={"k": "v1"})
        client.apply(obj, field_manager="flows")
        obj.data = {"k": "v2"}
        got = client.apply(obj, field_manager="flows")
        assert got.data == {"k": "v2"}, got
        assert any(m.manager == "flows" for m in got.metadata.managedFields or []), got.metadata

    step("lightkube: apply configmap twice (server-side)", apply_cm)

    def apply_yaml():
        text = f"""
apiVersion: v1
kind: Service
metadata:
  name: svc1
  namespace: {ns}
spec:
  selector: {{app: pod1}}
  ports: [{{port: 80, targetPort: 8080}}]
"""
        for obj in load_all_yaml(text):
            client.apply(obj, field_manager="flows")
        got = client.get(Service, "svc1", namespace=ns)
        assert got.spec.clusterIP, got

    step("lightkube: apply service from YAML", apply_yaml)

    def pod_flow():
        client.create(Pod.from_dict(pod_body("pod1", ns)))
        for _, p in client.watch(Pod, namespace=ns, fields={"metadata.name": "pod1"}, server_timeout=90):
            if p.status and p.status.phase == "Running":
                return
        raise AssertionError("pod1 never Running within the watch")

    step("lightkube: create pod and watch it Running", pod_flow)
    step("lightkube: delete pod", lambda: client.delete(Pod, "pod1", namespace=ns))
    step("lightkube: delete service", lambda: client.delete(Service, "svc1", namespace=ns))
    step("lightkube: delete configmap", lambda: client.delete(ConfigMap, "cm1", namespace=ns))
    step("lightkube: delete namespace", lambda: client.delete(Namespace, ns))


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which in ("kr8s", "all"):
        run_kr8s()
    if which in ("lightkube", "all"):
        run_lightkube()
    failed = [r for r in RESULTS if r[1]]
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
