#!/usr/bin/env python3
"""Generate crates/protobuf/src/schema_generated.rs.

See crates/protobuf/gen/README.md for why and how. Python 3 standard library only.
"""

import argparse
import glob
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)

# The objects a client may send as a request body, as (apiVersion, kind, proto message).
# An apiVersion of "*" matches any (DeleteOptions is registered in every group version).
ROOTS = [
    ("v1", "Namespace", "io.k8s.api.core.v1.Namespace"),
    ("v1", "Service", "io.k8s.api.core.v1.Service"),
    ("v1", "Pod", "io.k8s.api.core.v1.Pod"),
    ("v1", "Endpoints", "io.k8s.api.core.v1.Endpoints"),
    ("v1", "Node", "io.k8s.api.core.v1.Node"),
    ("v1", "Event", "io.k8s.api.core.v1.Event"),
    ("v1", "Binding", "io.k8s.api.core.v1.Binding"),
    ("v1", "ConfigMap", "io.k8s.api.core.v1.ConfigMap"),
    ("v1", "Secret", "io.k8s.api.core.v1.Secret"),
    ("v1", "ServiceAccount", "io.k8s.api.core.v1.ServiceAccount"),
    ("apps/v1", "Deployment", "io.k8s.api.apps.v1.Deployment"),
    ("apps/v1", "ReplicaSet", "io.k8s.api.apps.v1.ReplicaSet"),
    ("apps/v1", "DaemonSet", "io.k8s.api.apps.v1.DaemonSet"),
    ("batch/v1", "Job", "io.k8s.api.batch.v1.Job"),
    ("v1", "ReplicationController", "io.k8s.api.core.v1.ReplicationController"),
    ("discovery.k8s.io/v1", "EndpointSlice", "io.k8s.api.discovery.v1.EndpointSlice"),
    ("autoscaling/v1", "Scale", "io.k8s.api.autoscaling.v1.Scale"),
    ("policy/v1", "Eviction", "io.k8s.api.policy.v1.Eviction"),
    ("policy/v1", "PodDisruptionBudget", "io.k8s.api.policy.v1.PodDisruptionBudget"),
    ("events.k8s.io/v1", "Event", "io.k8s.api.events.v1.Event"),
    ("coordination.k8s.io/v1", "Lease", "io.k8s.api.coordination.v1.Lease"),
    ("rbac.authorization.k8s.io/v1", "Role", "io.k8s.api.rbac.v1.Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "io.k8s.api.rbac.v1.ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "io.k8s.api.rbac.v1.RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "io.k8s.api.rbac.v1.ClusterRoleBinding"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest", "io.k8s.api.certificates.v1.CertificateSigningRequest"),
    ("*", "DeleteOptions", "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
]

# Fields left out of the table, so a protobuf body's value for them is skipped: the server
# sets them itself (a CSR's `spec.extra` comes from the authenticated user), and their Go
# JSON form (`map[string][]string` over the ExtraValue wrapper message) has no schema here.
SKIPPED = {("io.k8s.api.certificates.v1.CertificateSigningRequestSpec", "extra")}

# Messages with their own JSON encoding (k8s.io/apimachinery MarshalJSON methods).
SPECIAL = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": "FieldsV1",
    "io.k8s.apimachinery.pkg.runtime.RawExtension": "RawExtension",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "Quantity",
}

# k8s-openapi versions whose JSON names are consulted, first match wins. v1_33 is the
# version svcnet builds against; later ones only name fields k8s-pb has that v1_33 lacks.
OPENAPI_VERSIONS = ["v1_33", "v1_34", "v1_35", "v1_36", "v1_37"]


def registry_dir(crate):
    hits = sorted(glob.glob(os.path.expanduser(f"~/.cargo/registry/src/*/{crate}")))
    if not hits:
        sys.exit(f"{crate} not found in ~/.cargo/registry/src: see gen/README.md")
    return hits[-1]


def squash(name):
    """A name compared without case and underscores: cluster_ip, clusterIP -> clusterip."""
    return name.replace("r#", "").rstrip("_").replace("_", "").lower()


# ---------------------------------------------------------------- k8s-pb (field numbers)

PROST_ATTR = re.compile(r"#\[prost\((.*)\)\]")


def parse_pb(root):
    """{proto full name: [field dict]} from k8s-pb's prost-generated modules."""
    messages = {}
    for path in sorted(glob.glob(os.path.join(root, "src", "**", "mod.rs"), recursive=True)):
        module = os.path.relpath(os.path.dirname(path), os.path.join(root, "src")).split(os.sep)
        lines = open(path, encoding="utf-8").read().split("\n")
        i = 0
        current = None
        while i < len(lines):
            line = lines[i]
            m = re.match(r"pub struct (\w+) \{", line)
            if m:
                current = "io.k8s." + ".".join(module) + "." + m.group(1)
                messages[current] = []
            elif line == "}":
                current = None
            elif current and PROST_ATTR.search(line):
                attr = PROST_ATTR.search(line).group(1)
                decl = ""
                i += 1
                while True:
                    decl += lines[i].strip() + " "
                    if decl.count("<") == decl.count(">") and decl.rstrip().endswith(","):
                        break
                    i += 1
                messages[current].append(parse_field(module, attr, decl))
            i += 1
    return messages


def parse_field(module, attr, decl):
    tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
    name = re.match(r"pub (r#)?(\w+):", decl).group(2)
    ty = decl.split(":", 1)[1].strip().rstrip(",").replace(" ", "")
    first = attr.split(",")[0].strip()
    field = {"tag": tag, "rust": name}
    if first.startswith("btree_map"):
        value = re.search(r'btree_map = "string, (\w+)"', attr).group(1)
        field["label"] = "map"
        if value == "message":
            inner = re.search(r"BTreeMap<::prost::alloc::string::String,(.*?),?>$", ty).group(1)
            field["type"] = ("message", resolve(module, inner))
        else:
            field["type"] = (value,)
        return field
    field["label"] = "repeated" if "repeated" in attr else "optional"
    if first == "message":
        # Option<T>, Vec<T>, Option<Box<T>> (recursive types) -> T
        inner = ty
        for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
            if inner.startswith(wrapper):
                inner = inner[len(wrapper):-1]
        field["type"] = ("message", resolve(module, inner))
    elif first.startswith("bytes"):
        field["type"] = ("bytes",)
    else:
        field["type"] = (first,)
    return field


def resolve(module, path):
    parts = path.split("::")
    base = list(module)
    while parts[0] == "super":
        parts.pop(0)
        base.pop()
    return "io.k8s." + ".".join(base + parts)


# ------------------------------------------------------------ k8s-openapi (JSON names)

def parse_openapi(root):
    """{definition name lowercased: {"keys": {squashed rust field: (json, required)}}}."""
    defs = {}
    for version in OPENAPI_VERSIONS:
        for path in glob.glob(os.path.join(root, "src", version, "**", "*.rs"), recursive=True):
            text = open(path, encoding="utf-8").read()
            m = re.match(r"// Generated from definition (\S+)", text)
            if not m:
                continue
            entry = defs.setdefault(m.group(1).lower(), {"name": m.group(1), "keys": {}})
            optional = {f: t.startswith("Option<") for f, t in re.findall(r"^    pub (\w+): (.*),$", text, re.M)}
            for json, key in re.findall(r'^\s+"([^"]+)" => Field::Key_(\w+),$', text, re.M):
                squashed = squash(key)
                if squashed not in entry["keys"]:
                    entry["keys"][squashed] = (json, not optional.get(key, True), version)
    return defs


# ------------------------------------------------------------- Go field semantics
#
# Kubernetes' Go encoder (gogo-protobuf) writes every non-pointer scalar field, zero or
# not, while its JSON encoder leaves out zero values of fields tagged `omitempty`. So a
# scalar that k8s-openapi marks optional is emitted only when non-zero ("omit_zero") --
# unless the Go field is a pointer, whose zero is a value the client chose (replicas: 0,
# gracePeriodSeconds: 0, ready: false). These are those pointer fields, from the Go
# types in k8s.io/api and k8s.io/apimachinery (`Field *int32 `json:"field,omitempty"``),
# keyed "<group>.<version>.<Type>.<jsonName>". The generator fails on a key that names
# no reachable scalar field, so a typo cannot pass silently.
GO_POINTERS = """
meta.v1.DeleteOptions: gracePeriodSeconds orphanDependents propagationPolicy
    ignoreStoreReadErrorWithClusterBreakingPotential
meta.v1.Preconditions: uid resourceVersion
policy.v1.PodDisruptionBudgetSpec: unhealthyPodEvictionPolicy
meta.v1.ObjectMeta: deletionGracePeriodSeconds
meta.v1.OwnerReference: controller blockOwnerDeletion
core.v1.ServiceAccount: automountServiceAccountToken
core.v1.ConfigMap: immutable
core.v1.Secret: immutable
core.v1.ServiceSpec: allocateLoadBalancerNodePorts ipFamilyPolicy loadBalancerClass
    internalTrafficPolicy trafficDistribution
core.v1.ServicePort: appProtocol
core.v1.ClientIPConfig: timeoutSeconds
core.v1.LoadBalancerIngress: ipMode
core.v1.PortStatus: error
core.v1.PodSpec: terminationGracePeriodSeconds activeDeadlineSeconds
    automountServiceAccountToken shareProcessNamespace priority enableServiceLinks
    setHostnameAsFQDN hostUsers runtimeClassName preemptionPolicy hostnameOverride
core.v1.Container: restartPolicy
core.v1.EphemeralContainerCommon: restartPolicy
core.v1.PodSecurityContext: runAsUser runAsGroup runAsNonRoot fsGroup
    supplementalGroupsPolicy fsGroupChangePolicy seLinuxChangePolicy
core.v1.SecurityContext: privileged runAsUser runAsGroup runAsNonRoot
    readOnlyRootFilesystem allowPrivilegeEscalation procMount
core.v1.WindowsSecurityContextOptions: hostProcess gmsaCredentialSpecName
    gmsaCredentialSpec runAsUserName
core.v1.SeccompProfile: localhostProfile
core.v1.AppArmorProfile: localhostProfile
core.v1.Toleration: tolerationSeconds
core.v1.TopologySpreadConstraint: minDomains nodeAffinityPolicy nodeTaintsPolicy
core.v1.PodResourceClaim: resourceClaimName resourceClaimTemplateName
core.v1.PodResourceClaimStatus: resourceClaimName
core.v1.ContainerStatus: started stopSignal
core.v1.Lifecycle: stopSignal
core.v1.Probe: terminationGracePeriodSeconds
core.v1.GRPCAction: service
core.v1.VolumeMount: mountPropagation recursiveReadOnly
core.v1.VolumeMountStatus: recursiveReadOnly
core.v1.PodDNSConfigOption: value
core.v1.EndpointAddress: nodeName
core.v1.EndpointPort: appProtocol
core.v1.NodeSwapStatus: capacity
core.v1.NodeRuntimeHandlerFeatures: recursiveReadOnlyMounts userNamespaces
core.v1.NodeFeatures: supplementalGroupsPolicy
core.v1.HostPathVolumeSource: type
core.v1.SecretVolumeSource: defaultMode optional
core.v1.ConfigMapVolumeSource: defaultMode optional
core.v1.DownwardAPIVolumeSource: defaultMode
core.v1.ProjectedVolumeSource: defaultMode
core.v1.KeyToPath: mode
core.v1.DownwardAPIVolumeFile: mode
core.v1.FCVolumeSource: lun
core.v1.ISCSIVolumeSource: initiatorName
core.v1.AzureDiskVolumeSource: cachingMode fsType readOnly kind
core.v1.CSIVolumeSource: readOnly fsType
core.v1.ConfigMapEnvSource: optional
core.v1.SecretEnvSource: optional
core.v1.ConfigMapKeySelector: optional
core.v1.SecretKeySelector: optional
core.v1.FileKeySelector: optional
core.v1.SecretProjection: optional
core.v1.ConfigMapProjection: optional
core.v1.ServiceAccountTokenProjection: expirationSeconds
core.v1.ClusterTrustBundleProjection: name signerName optional
core.v1.PodCertificateProjection: maxExpirationSeconds
core.v1.PersistentVolumeClaimSpec: storageClassName volumeMode volumeAttributesClassName
core.v1.TypedLocalObjectReference: apiGroup
core.v1.TypedObjectReference: apiGroup namespace
apps.v1.DeploymentSpec: replicas revisionHistoryLimit progressDeadlineSeconds
apps.v1.DeploymentStatus: terminatingReplicas collisionCount
apps.v1.ReplicaSetSpec: replicas
apps.v1.ReplicaSetStatus: terminatingReplicas
apps.v1.DaemonSetSpec: revisionHistoryLimit
apps.v1.DaemonSetStatus: collisionCount
batch.v1.JobSpec: parallelism completions activeDeadlineSeconds backoffLimit
    backoffLimitPerIndex maxFailedIndexes manualSelector ttlSecondsAfterFinished
    completionMode suspend podReplacementPolicy managedBy
batch.v1.JobStatus: failedIndexes ready terminating
batch.v1.PodFailurePolicyOnExitCodesRequirement: containerName
batch.v1.SuccessPolicyRule: succeededIndexes succeededCount
discovery.v1.Endpoint: hostname nodeName zone
discovery.v1.EndpointConditions: ready serving terminating
discovery.v1.EndpointPort: name protocol appProtocol port
coordination.v1.LeaseSpec: holderIdentity leaseDurationSeconds leaseTransitions strategy
    preferredHolder
"""

# Go value fields without `omitempty` that k8s-openapi nevertheless marks optional: Go's
# JSON always has them. (Fields k8s-openapi marks required are treated this way anyway.)
GO_ALWAYS = """
core.v1.Event: reportingComponent reportingInstance
"""


def parse_field_list(text):
    keys = set()
    for m in re.finditer(r"^(\S+): ((?:.|\n    )*)$", text.strip(), re.M):
        for field in m.group(2).split():
            keys.add(m.group(1) + "." + field)
    return keys


# ------------------------------------------------------------------------ generation

def short_package(proto):
    """io.k8s.api.core.v1.Pod -> core.v1; io.k8s.apimachinery.pkg.apis.meta.v1.X -> meta.v1."""
    parts = proto.split(".")
    return parts[-3] + "." + parts[-2]


def static_name(display):
    pkg, name = display.rsplit(".", 1)
    snake = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", snake)
    return (pkg.replace(".", "_") + "_" + snake).upper()


class Schema:
    def __init__(self, pb, oa):
        self.pb = pb
        self.oa = oa
        self.reachable = []
        todo = [r[2] for r in ROOTS]
        while todo:
            name = todo.pop(0)
            if name in self.reachable or name in SPECIAL:
                continue
            self.reachable.append(name)
            todo += [f["type"][1] for f in pb[name]
                     if f["type"][0] == "message" and (name, f["rust"]) not in SKIPPED]
        # JSON keys of each message: its own k8s-openapi definition's, plus those of the
        # parents that embed it inline (VolumeSource has no definition of its own).
        self.keys = {n: dict(self.definition(n)["keys"]) if self.definition(n) else {} for n in self.reachable}
        self.inline = set()
        changed = True
        while changed:
            changed = False
            for parent in self.reachable:
                for f in pb[parent]:
                    if f["type"][0] != "message" or squash(f["rust"]) in self.keys[parent]:
                        continue
                    child = f["type"][1]
                    if child in SPECIAL or (parent, f["tag"]) in self.inline:
                        continue
                    if all(squash(c["rust"]) in self.keys[parent] for c in pb[child]):
                        self.inline.add((parent, f["tag"]))
                        for c in pb[child]:
                            self.keys[child].setdefault(squash(c["rust"]), self.keys[parent][squash(c["rust"])])
                        changed = True

    def definition(self, name):
        return self.oa.get(name.lower())

    def display(self, name):
        d = self.definition(name)
        return short_package(name) + "." + (d["name"] if d else name).rsplit(".", 1)[1]

    def rust_type(self, ty):
        if ty[0] == "message":
            if ty[1] in SPECIAL:
                return "Special(%s)" % SPECIAL[ty[1]]
            return "Nested(&%s)" % static_name(self.display(ty[1]))
        return {"string": "String", "int32": "Int32", "int64": "Int64", "bool": "Bool",
                "double": "Double", "bytes": "Bytes"}[ty[0]]

    def fields(self, name, pointers, always, used):
        out = []
        for f in sorted(self.pb[name], key=lambda f: f["tag"]):
            if (name, f["rust"]) in SKIPPED:
                continue
            ty = self.rust_type(f["type"])
            if (name, f["tag"]) in self.inline:
                out.append((f["tag"], "", "One(%s)" % ty, "Inline"))
                continue
            hit = self.keys[name].get(squash(f["rust"]))
            if hit is None:
                sys.exit(f"no JSON name for {name}.{f['rust']} in k8s-openapi {OPENAPI_VERSIONS}")
            json, required, _version = hit
            key = self.display(name) + "." + json
            scalar = f["type"][0] not in ("message",) and f["label"] == "optional"
            if key in pointers:
                if not scalar:
                    sys.exit(f"GO_POINTERS names {key}, which is not a scalar field")
                used.add(key)
                presence = "Present"
            elif key in always or required:
                used.add(key)
                presence = "Always"
            elif scalar:
                presence = "OmitZero"
            else:
                presence = "Present"
            if f["type"][0] == "message" and f["label"] == "optional" and presence == "Always":
                presence = "Present"  # see Presence::Present: an absent message stays absent
            shape = {"optional": "One", "repeated": "Repeated", "map": "Map"}[f["label"]]
            out.append((f["tag"], json, "%s(%s)" % (shape, ty), presence))
        return out

    def render(self):
        pointers = parse_field_list(GO_POINTERS)
        always = parse_field_list(GO_ALWAYS)
        used = set()
        lines = [HEADER.rstrip("\n"), ""]
        lines.append("/// The objects a request body may hold: (apiVersion, kind, schema); `*` is any apiVersion.")
        lines.append("pub(crate) static KINDS: &[(&str, &str, &Message)] = &[")
        for api_version, kind, proto in ROOTS:
            lines.append('    ("%s", "%s", &%s),' % (api_version, kind, static_name(self.display(proto))))
        lines.append("];")
        for name in self.reachable:
            display = self.display(name)
            lines.append("")
            lines.append("pub(crate) static %s: Message = Message {" % static_name(display))
            lines.append('    name: "%s",' % display)
            lines.append("    fields: &[")
            for tag, json, shape, presence in self.fields(name, pointers, always, used):
                lines.append('        Field::new(%d, "%s", %s, %s),' % (tag, json, shape, presence))
            lines.append("    ],")
            lines.append("};")
        unused = (pointers | always) - used
        if unused:
            sys.exit(f"GO_POINTERS / GO_ALWAYS name fields that are not reachable: {sorted(unused)}")
        return "\n".join(lines) + "\n"


HEADER = """\
// @generated by crates/protobuf/gen/gen_schema.py -- do not edit; see gen/README.md.
//
// Field numbers and wire types are Kubernetes' (the generated.proto files of k8s.io/api
// and k8s.io/apimachinery), read from the prost code of the k8s-pb 0.9.0 crate (kube-rs,
// Apache-2.0). JSON names and required-ness come from k8s-openapi 0.29.0's deserializers;
// pointer-ness of scalar fields from the Go types (the GO_POINTERS list in the generator).

use crate::schema::Presence::*;
use crate::schema::Shape::*;
use crate::schema::Special::*;
use crate::schema::Type::*;
use crate::schema::{Field, Message};
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--k8s-pb", default=None, help="k8s-pb 0.9.0 source dir")
    ap.add_argument("--k8s-openapi", default=None, help="k8s-openapi 0.29.0 source dir")
    ap.add_argument("--out", default=os.path.join(CRATE, "src", "schema_generated.rs"))
    args = ap.parse_args()
    pb = parse_pb(args.k8s_pb or registry_dir("k8s-pb-0.9.0"))
    oa = parse_openapi(args.k8s_openapi or registry_dir("k8s-openapi-0.29.0"))
    schema = Schema(pb, oa)
    text = schema.render()
    with open(args.out, "w", encoding="utf-8") as out:
        out.write(text)
    print(f"wrote {args.out}: {len(schema.reachable)} messages", file=sys.stderr)


if __name__ == "__main__":
    main()
