"""A read-only registry (Distribution API v2, pull only) serving oci-archives on loopback.

The suites run pods with `image: busybox` / `nginx` (tag latest, so imagePullPolicy Always):
on a machine without a registry every such pod stays in ImagePullBackOff, as it would on
Kubernetes. run.sh serves the seeds' archives (`svcnet images build-seeds`) with this and
points `svcnet up --private-registry` at it as docker.io's mirror.
Usage: python3 registry.py PORT ARCHIVE.tar...
"""

import http.server
import json
import re
import sys
import tarfile

BLOBS = {}  # "sha256:<hex>" -> bytes
MEDIA = {}  # "sha256:<hex>" -> media type of a manifest or index
TAGS = {}  # ("library/busybox", "latest") -> digest


def load(path):
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if member.name.startswith("blobs/sha256/") and member.isfile():
                BLOBS["sha256:" + member.name.rsplit("/", 1)[1]] = tar.extractfile(member).read()
        index = json.load(tar.extractfile("index.json"))
    for desc in index["manifests"]:
        MEDIA[desc["digest"]] = desc["mediaType"]
        ref = desc.get("annotations", {}).get("io.containerd.image.name", "")
        m = re.match(r"^(?:[^/]+\.[^/]+/)?(.+):([^:/]+)$", ref)
        if m:
            TAGS[(m.group(1), m.group(2))] = desc["digest"]


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, body, media, digest=None, head=False):
        self.send_response(200)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def handle_get(self, head):
        path = self.path.split("?", 1)[0]
        if path in ("/v2", "/v2/"):
            return self.reply(b"{}", "application/json", head=head)
        m = re.match(r"^/v2/(.+)/(manifests|blobs)/([^/]+)$", path)
        if m:
            name, what, ref = m.groups()
            digest = ref if ref.startswith("sha256:") else TAGS.get((name, ref))
            if digest is None and not ref.startswith("sha256:"):
                # Another tag of a seed (kube-rs's tests pull busybox:stable): the seed's latest.
                digest = TAGS.get((name, "latest"))
            if digest in BLOBS:
                media = MEDIA.get(digest, "application/octet-stream")
                if what == "manifests" and digest not in MEDIA:
                    media = json.loads(BLOBS[digest]).get("mediaType", media)
                return self.reply(BLOBS[digest], media, digest, head)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # noqa: N802 - http.server's name
        self.handle_get(False)

    def do_HEAD(self):  # noqa: N802
        self.handle_get(True)

    def log_message(self, fmt, *args):
        sys.stderr.write("registry: " + fmt % args + "\n")


def main():
    port = int(sys.argv[1])
    for path in sys.argv[2:]:
        load(path)
    print("serving", sorted(TAGS), flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
