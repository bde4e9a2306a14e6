#!/usr/bin/env python3
"""Writes src/definitions.json: the `definitions` of Kubernetes' published OpenAPI v2 spec
(kubernetes/kubernetes api/openapi-spec/swagger.json, unchanged), one definition per line so a
regeneration diffs by type.

    python3 crates/openapi/gen/gen_definitions.py swagger.json > crates/openapi/src/definitions.json

The checked-in file comes from release-1.32 (the API level `/version` reports), as shipped by
kubernetes-client/python (kubernetes/swagger.json.unprocessed at 5342870c0, `release-1.32`).
Only `definitions` is kept: the apiserver writes `paths` itself from its resource table.
"""
import json
import sys


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    defs = spec["definitions"]
    out = sys.stdout
    out.write("{\n")
    names = sorted(defs)
    for i, name in enumerate(names):
        sep = "," if i + 1 < len(names) else ""
        body = json.dumps(defs[name], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        out.write(f"{json.dumps(name)}:{body}{sep}\n")
    out.write("}\n")


if __name__ == "__main__":
    main()
