#!/usr/bin/env python3
"""Re-captures the kubectl fixtures in this folder: NAME.pb and NAME.json for each command.

Runs a TLS listener on 127.0.0.1 that records request bodies and answers 201, points a
throwaway kubeconfig at it, and for each `kubectl create ...` below saves the protobuf body
kubectl sent (NAME.pb) and what `--dry-run=client -o json` prints for the same command
(NAME.json). Needs kubectl and openssl on PATH. Usage: python3 capture.py
"""

import http.server
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading

COMMANDS = {
    "namespace": "create namespace foo",
    "service-clusterip": "create service clusterip web --tcp=80:8080 --tcp=9090:metrics",
    "service-nodeport": "create service nodeport np --tcp=80:8080 --node-port=30080",
    "service-headless": "create service clusterip headless --clusterip=None",
    "service-externalname": "create service externalname ext --external-name=example.com",
    "service-loadbalancer": "create service loadbalancer lb --tcp=443:8443",
    "deployment": "create deployment web --image=nginx:1.27 --replicas=0 --port=80",
    "deployment-command": "create deployment sleeper --image=busybox -- sleep 3600",
    "deployment-multi": "create deployment multi --image=busybox --image=nginx",
    "configmap": "create configmap cfg --from-literal=a=1 --from-literal=b=two",
    "secret": "create secret generic creds --from-literal=token=s3cret",
    "serviceaccount": "create serviceaccount robot",
}

HERE = os.path.dirname(os.path.abspath(__file__))
bodies = []


class Recorder(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Type") == "application/vnd.kubernetes.protobuf":
            bodies.append(body)
        self.reply(201)

    def do_GET(self):
        self.reply(404)

    def reply(self, code):
        out = b'{"kind":"Status","apiVersion":"v1","status":"Success"}'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def main():
    tmp = tempfile.mkdtemp()
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = os.path.join(tmp, "kubeconfig")
    with open(kubeconfig, "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{server.server_port}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: x}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u, namespace: default}}}}]
current-context: c
""")
    env = dict(os.environ, KUBECONFIG=kubeconfig, KUBECACHEDIR=os.path.join(tmp, "cache"))
    for name, command in COMMANDS.items():
        args, _, tail = command.partition(" -- ")
        args = ["kubectl"] + args.split()
        tail = ["--"] + tail.split() if tail else []
        bodies.clear()
        subprocess.run(args + tail, env=env, check=True, capture_output=True, timeout=60)
        if len(bodies) != 1:
            sys.exit(f"{name}: expected one protobuf body, got {len(bodies)}")
        printed = subprocess.run(args + ["--dry-run=client", "-o", "json"] + tail, env=env, check=True,
                                 capture_output=True, timeout=60).stdout
        with open(os.path.join(HERE, name + ".pb"), "wb") as f:
            f.write(bodies[0])
        with open(os.path.join(HERE, name + ".json"), "wb") as f:
            f.write(printed)
        print(f"{name}: {len(bodies[0])} bytes")
    server.shutdown()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
