//! The OCI runtime configuration of a container from an image, as containerd's CRI plugin
//! writes it for the kubelet (`pkg/cri/server/container_create_linux.go`, `pkg/oci`): pure, so
//! every rule is unit-tested.
//!
//! - process arguments: [`process_args`] is containerd's `WithProcessArgs` rule — `command`
//!   replaces the image's Entrypoint and drops its Cmd; `args` alone replaces Cmd;
//! - environment: [`environment`] — `HOSTNAME`, the image's `Env`, then the container's (a later
//!   name replaces an earlier one, as `oci.WithEnv`);
//! - user: [`resolve_user`] — `runAsUser`/`runAsGroup`, else the image's `User` (`uid`, `name`,
//!   `uid:gid`, `name:group`) looked up in the image's `/etc/passwd` and `/etc/group`;
//! - namespaces: the pod's network namespace by path, a new PID, mount, IPC and UTS namespace
//!   (hostname = the pod's hostname), or the pod's by path (its pause process's: IPC and UTS
//!   always, PID with `shareProcessNamespace`); no cgroup namespace (cgroup v1 hosts);
//! - mounts: `/proc`, `/dev` (tmpfs), `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/sys` (ro),
//!   `/sys/fs/cgroup` (ro), and the pod's `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`
//!   bind-mounted as the kubelet asks (`rbind`, `rprivate`, read-write);
//! - capabilities: containerd's default set (`oci.DefaultCapabilities`), all for privileged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use svcnet_images::ImageConfig;

/// Where a container's environment starts when the image sets no PATH (containerd's
/// `defaultPath` for Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// containerd's `oci.DefaultCapabilities()` (Docker's default set).
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// containerd's `WithProcessArgs` with the CRI's command/args: `command` replaces the image's
/// Entrypoint (and drops its Cmd), `args` replaces Cmd. Errors as containerd's.
pub fn process_args(
    command: &[String],
    args: &[String],
    image: &ImageConfig,
) -> Result<Vec<String>, String> {
    let mut cmd: Vec<String> = command.to_vec();
    let mut rest: Vec<String> = args.to_vec();
    if cmd.is_empty() {
        if rest.is_empty() {
            rest = image.cmd.clone().unwrap_or_default();
        }
        let entrypoint = image.entrypoint.clone().unwrap_or_default();
        // An Entrypoint of [""] means "none" (Docker's `ENTRYPOINT []` written by some tools).
        if !(entrypoint.len() == 1 && entrypoint[0].is_empty()) {
            cmd = entrypoint;
        }
    }
    if cmd.is_empty() && rest.is_empty() {
        return Err("no command specified".to_string());
    }
    cmd.extend(rest);
    Ok(cmd)
}

/// The process environment: `HOSTNAME`, then the image's `Env` (PATH defaulted), then the
/// container's variables (Service variables, `env`, `envFrom`, already expanded); a later
/// definition of a name replaces the earlier one in place.
pub fn environment(
    hostname: &str,
    image_env: &[String],
    container_env: &[(String, String)],
) -> Vec<String> {
    let mut out: Vec<(String, String)> = vec![("HOSTNAME".to_string(), hostname.to_string())];
    let set = |k: &str, v: &str, out: &mut Vec<(String, String)>| match out
        .iter_mut()
        .find(|(n, _)| n == k)
    {
        Some(e) => e.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    if !image_env.iter().any(|e| e.starts_with("PATH=")) {
        set("PATH", DEFAULT_PATH, &mut out);
    }
    for e in image_env {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        set(k, v, &mut out);
    }
    for (k, v) in container_env {
        set(k, v, &mut out);
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The process's uid, gid and supplementary groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// The first of `layers` (searched top to bottom) that holds `path`.
fn layer_file(layers: &[PathBuf], path: &str) -> Option<String> {
    layers
        .iter()
        .rev()
        .find_map(|l| std::fs::read_to_string(l.join(path)).ok())
}

/// `name:x:uid:gid:...` lines of a passwd/group file → name → (id, gid or members).
fn parse_db(text: &str) -> BTreeMap<String, (u32, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((
                f.first()?.to_string(),
                (f.get(2)?.parse().ok()?, f.get(3)?.to_string()),
            ))
        })
        .collect()
}

/// containerd's user resolution: `runAsUser` / `runAsGroup` win; else the image's `User`
/// (`uid`, `name`, `uid:gid`, `name:group`), names looked up in the image's `/etc/passwd` and
/// `/etc/group`; the primary group is the user's; supplementary groups from `/etc/group`.
pub fn resolve_user(
    image_user: Option<&str>,
    run_as_user: Option<i64>,
    run_as_group: Option<i64>,
    layers: &[PathBuf],
) -> Result<ProcessUser, String> {
    let passwd = parse_db(&layer_file(layers, "etc/passwd").unwrap_or_default());
    let groups = parse_db(&layer_file(layers, "etc/group").unwrap_or_default());
    let (user_part, group_part) = match image_user.filter(|u| !u.is_empty()) {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Some(a.to_string()), Some(b.to_string())),
            None => (Some(u.to_string()), None),
        },
        None => (None, None),
    };
    let (uid, mut gid, name) = match (run_as_user, &user_part) {
        (Some(uid), _) => {
            let uid = uid as u32;
            let entry = passwd.iter().find(|(_, (id, _))| *id == uid);
            (
                uid,
                entry.and_then(|(_, (_, g))| g.parse().ok()).unwrap_or(0),
                entry.map(|(n, _)| n.clone()),
            )
        }
        (None, Some(u)) => match u.parse::<u32>() {
            Ok(uid) => {
                let entry = passwd.iter().find(|(_, (id, _))| *id == uid);
                (
                    uid,
                    entry.and_then(|(_, (_, g))| g.parse().ok()).unwrap_or(0),
                    entry.map(|(n, _)| n.clone()),
                )
            }
            Err(_) => {
                let (uid, g) = passwd
                    .get(u)
                    .ok_or_else(|| format!("no users found: unable to find user {u}"))?;
                (*uid, g.parse().unwrap_or(0), Some(u.clone()))
            }
        },
        (None, None) => (0, 0, Some("root".to_string())),
    };
    if let Some(g) = run_as_group {
        gid = g as u32;
    } else if let Some(g) = &group_part {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                groups
                    .get(g)
                    .ok_or_else(|| format!("no groups found: unable to find group {g}"))?
                    .0
            }
        };
    }
    let mut additional_gids: Vec<u32> = match &name {
        Some(n) => groups
            .values()
            .filter(|(_, members)| members.split(',').any(|m| m == n))
            .map(|(id, _)| *id)
            .collect(),
        None => Vec::new(),
    };
    additional_gids.retain(|g| *g != gid);
    additional_gids.insert(0, gid);
    additional_gids.dedup();
    Ok(ProcessUser {
        uid,
        gid,
        additional_gids,
    })
}

/// Resource limits enforced through the container's cgroup (`resources.limits`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// `memory.limit_in_bytes`.
    pub memory_bytes: Option<i64>,
    /// CFS quota in µs per 100 ms period (`cpu: 500m` → 50000), as the kubelet's
    /// `milliCPUToQuota`.
    pub cpu_quota: Option<i64>,
}

/// A volume in the container: a bind of `source`, or a tmpfs when `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeMount {
    pub source: Option<PathBuf>,
    pub target: PathBuf,
    pub read_only: bool,
}

/// Everything the configuration is made from.
#[derive(Clone, Debug, Default)]
pub struct SpecInput {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: ProcessUser,
    pub hostname: String,
    /// The pod's network namespace (`/run/netns/<name>`).
    pub netns_path: PathBuf,
    /// The pod's UTS and IPC namespaces to join (its pause process's); `None`: new ones.
    pub uts_path: Option<PathBuf>,
    pub ipc_path: Option<PathBuf>,
    /// The pod's PID namespace to join (`shareProcessNamespace`: its pause process's); `None`:
    /// a new one for this container.
    pub pid_path: Option<PathBuf>,
    /// The mounted root filesystem.
    pub rootfs: PathBuf,
    /// `(source on the host, target in the container)` bind mounts.
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// The pod's volumes this container mounts (`volumeMounts`).
    pub volumes: Vec<VolumeMount>,
    /// The container's cgroup, relative to the runtime's own (`svcnet/<id>/ctr`).
    pub cgroups_path: String,
    pub privileged: bool,
    /// securityContext.capabilities.add / .drop.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// Limits in the configuration itself (svcnet's shim puts them on the parent cgroup
    /// instead, [`super::cgroups`], and leaves these unset).
    pub limits: Limits,
    /// `tty`: the process gets a terminal (and `TERM=xterm`, containerd's `WithTTY`).
    pub terminal: bool,
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .expect("a complete mount")
}

/// The OCI runtime configuration (`config.json`).
pub fn build(input: &SpecInput) -> Result<Spec, oci_spec::OciSpecError> {
    let mut caps: std::collections::HashSet<Capability> = if input.privileged {
        all_capabilities().into_iter().collect()
    } else {
        DEFAULT_CAPABILITIES.into_iter().collect()
    };
    // securityContext.capabilities: drop ALL first, then add (containerd's order).
    for d in &input.cap_drop {
        if d.eq_ignore_ascii_case("ALL") {
            caps.clear();
        } else if let Some(c) = capability(d) {
            caps.remove(&c);
        }
    }
    for a in &input.cap_add {
        if a.eq_ignore_ascii_case("ALL") {
            caps.extend(all_capabilities());
        } else if let Some(c) = capability(a) {
            caps.insert(c);
        }
    }
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()?;
    let user = UserBuilder::default()
        .uid(input.user.uid)
        .gid(input.user.gid)
        .additional_gids(input.user.additional_gids.clone())
        .build()?;
    let mut env = input.env.clone();
    if input.terminal {
        env.push("TERM=xterm".into());
    }
    let process = ProcessBuilder::default()
        .terminal(input.terminal)
        .args(input.args.clone())
        .env(env)
        .cwd(if input.cwd.is_empty() {
            "/"
        } else {
            &input.cwd
        })
        .user(user)
        .capabilities(capabilities)
        .no_new_privileges(false)
        .build()?;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &[
                "nosuid",
                "noexec",
                "nodev",
                if input.privileged { "rw" } else { "ro" },
            ],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
    ];
    for (src, dst) in &input.binds {
        mounts.push(
            MountBuilder::default()
                .destination(dst)
                .typ("bind")
                .source(src)
                .options(vec![
                    "rbind".to_string(),
                    "rprivate".to_string(),
                    "rw".to_string(),
                ])
                .build()?,
        );
    }
    for v in &input.volumes {
        let rw = if v.read_only { "ro" } else { "rw" };
        mounts.push(match &v.source {
            Some(src) => MountBuilder::default()
                .destination(&v.target)
                .typ("bind")
                .source(src)
                .options(vec![
                    "rbind".to_string(),
                    "rprivate".to_string(),
                    rw.to_string(),
                ])
                .build()?,
            None => MountBuilder::default()
                .destination(&v.target)
                .typ("tmpfs")
                .source("tmpfs")
                .options(vec![
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    rw.to_string(),
                ])
                .build()?,
        });
    }
    let ns = |typ, path: Option<&Path>| {
        let mut b = LinuxNamespaceBuilder::default().typ(typ);
        if let Some(p) = path {
            b = b.path(p);
        }
        b.build()
    };
    let namespaces = vec![
        ns(LinuxNamespaceType::Pid, input.pid_path.as_deref())?,
        ns(LinuxNamespaceType::Network, Some(&input.netns_path))?,
        ns(LinuxNamespaceType::Ipc, input.ipc_path.as_deref())?,
        ns(LinuxNamespaceType::Uts, input.uts_path.as_deref())?,
        ns(LinuxNamespaceType::Mount, None)?,
    ];
    let mut resources =
        LinuxResourcesBuilder::default().devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(input.privileged)
            .access("rwm")
            .build()?]);
    if let Some(bytes) = input.limits.memory_bytes {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(bytes).build()?);
    }
    if let Some(quota) = input.limits.cpu_quota {
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota(quota)
                .period(100_000u64)
                .build()?,
        );
    }
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .cgroups_path(PathBuf::from(&input.cgroups_path));
    // containerd's default masked and read-only paths (/proc/kcore, /proc/sys, ...); a
    // privileged container has none (`WithPrivileged`).
    let d = oci_spec::runtime::Linux::default();
    let (masked, readonly) = if input.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            d.masked_paths().clone().unwrap_or_default(),
            d.readonly_paths().clone().unwrap_or_default(),
        )
    };
    linux = linux.masked_paths(masked).readonly_paths(readonly);
    SpecBuilder::default()
        .version("1.0.2-dev")
        .root(
            RootBuilder::default()
                .path(&input.rootfs)
                .readonly(false)
                .build()?,
        )
        .hostname(input.hostname.clone())
        .process(process)
        .mounts(mounts)
        .linux(linux.build()?)
        .build()
}

/// A capability by its Kubernetes (`NET_ADMIN`) or kernel (`CAP_NET_ADMIN`) name.
pub fn capability(name: &str) -> Option<Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

/// Every capability (privileged containers get all, as containerd's `WithPrivileged`).
fn all_capabilities() -> Vec<Capability> {
    const NAMES: &str = "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID \
        SETPCAP LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK \
        IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT \
        SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL \
        SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF \
        CHECKPOINT_RESTORE";
    NAMES.split_whitespace().filter_map(capability).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.map(v),
            cmd: cmd.map(v),
            ..Default::default()
        }
    }

    /// The four cases of "Define a Command and Arguments for a Container" (kubernetes.io).
    #[test]
    fn command_and_args_as_kubernetes() {
        let img = image(Some(&["/ep"]), Some(&["cmd-arg"]));
        assert_eq!(
            process_args(&[], &[], &img).unwrap(),
            v(&["/ep", "cmd-arg"])
        );
        assert_eq!(process_args(&v(&["/c"]), &[], &img).unwrap(), v(&["/c"]));
        assert_eq!(
            process_args(&[], &v(&["a"]), &img).unwrap(),
            v(&["/ep", "a"])
        );
        assert_eq!(
            process_args(&v(&["/c"]), &v(&["a"]), &img).unwrap(),
            v(&["/c", "a"])
        );
        let cmd_only = image(None, Some(&["/bin/sh"]));
        assert_eq!(process_args(&[], &[], &cmd_only).unwrap(), v(&["/bin/sh"]));
        assert_eq!(process_args(&[], &v(&["x"]), &cmd_only).unwrap(), v(&["x"]));
        assert_eq!(
            process_args(&[], &[], &image(Some(&[""]), Some(&["/x"]))).unwrap(),
            v(&["/x"])
        );
        assert_eq!(
            process_args(&[], &[], &image(None, None)).unwrap_err(),
            "no command specified"
        );
    }

    #[test]
    fn environment_order_and_overrides() {
        let env = environment(
            "web-1",
            &v(&["PATH=/img/bin", "A=image", "B=image"]),
            &[("B".into(), "pod".into()), ("C".into(), "x=y".into())],
        );
        assert_eq!(
            env,
            v(&[
                "HOSTNAME=web-1",
                "PATH=/img/bin",
                "A=image",
                "B=pod",
                "C=x=y"
            ])
        );
        assert_eq!(
            environment("h", &[], &[])[1],
            format!("PATH={DEFAULT_PATH}")
        );
    }

    #[test]
    fn users_from_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let lower = dir.path().join("l");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(
            lower.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            lower.join("etc/group"),
            "root:x:0:\nwww-data:x:33:\nweb:x:500:www-data\n",
        )
        .unwrap();
        let layers = vec![lower];
        assert_eq!(
            resolve_user(None, None, None, &layers).unwrap(),
            ProcessUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![0]
            }
        );
        let u = resolve_user(Some("www-data"), None, None, &layers).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (33, 33, vec![33, 500]));
        let u = resolve_user(Some("1000:web"), None, None, &layers).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 500));
        let u = resolve_user(Some("www-data"), Some(7), Some(8), &layers).unwrap();
        assert_eq!((u.uid, u.gid), (7, 8));
        assert_eq!(
            resolve_user(Some("nobody"), None, None, &layers).unwrap_err(),
            "no users found: unable to find user nobody"
        );
    }

    #[test]
    fn spec_has_the_pods_namespaces_and_files() {
        let input = SpecInput {
            args: v(&["nginx", "-g", "daemon off;"]),
            env: v(&["PATH=/bin"]),
            cwd: String::new(),
            hostname: "web-1".into(),
            netns_path: "/run/netns/p".into(),
            rootfs: "/data/c/rootfs".into(),
            binds: vec![("/data/p/files/hosts".into(), "/etc/hosts".into())],
            cgroups_path: "svcnet/x".into(),
            limits: Limits {
                memory_bytes: Some(64 << 20),
                cpu_quota: Some(50_000),
            },
            ..Default::default()
        };
        let spec = serde_json::to_value(build(&input).unwrap()).unwrap();
        assert_eq!(spec["hostname"], "web-1");
        assert_eq!(spec["process"]["cwd"], "/");
        assert_eq!(spec["root"]["path"], "/data/c/rootfs");
        let nss = spec["linux"]["namespaces"].as_array().unwrap();
        assert!(nss.contains(&serde_json::json!({"type": "network", "path": "/run/netns/p"})));
        assert!(nss.contains(&serde_json::json!({"type": "pid"})));
        assert!(!nss.iter().any(|n| n["type"] == "cgroup"));
        let mounts = spec["mounts"].as_array().unwrap();
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/etc/hosts" && m["type"] == "bind"));
        assert!(mounts.iter().any(|m| m["destination"] == "/dev/shm"));
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 50_000);
        let caps = spec["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap();
        assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len());
        assert!(caps.contains(&serde_json::json!("CAP_SETUID")));
        assert_eq!(spec["process"]["terminal"], false);

        // `tty: true`: a terminal, and TERM as containerd's WithTTY sets it.
        let tty = build(&SpecInput {
            terminal: true,
            ..input
        })
        .unwrap();
        let tty = serde_json::to_value(tty).unwrap();
        assert_eq!(tty["process"]["terminal"], true);
        assert_eq!(
            tty["process"]["env"],
            serde_json::json!(["PATH=/bin", "TERM=xterm"])
        );
    }

    #[test]
    fn share_process_namespace_joins_the_pods_pid_namespace() {
        let namespaces = |input: &SpecInput| {
            let spec = serde_json::to_value(build(input).unwrap()).unwrap();
            spec["linux"]["namespaces"].as_array().unwrap().clone()
        };
        let mut input = SpecInput {
            args: v(&["sh"]),
            netns_path: "/run/netns/p".into(),
            rootfs: "/r".into(),
            uts_path: Some("/proc/7/ns/uts".into()),
            ipc_path: Some("/proc/7/ns/ipc".into()),
            ..Default::default()
        };
        // Alone: a PID namespace of its own (the kubelet's default, NamespaceMode_CONTAINER).
        let own = namespaces(&input);
        assert!(own.contains(&serde_json::json!({"type": "pid"})));
        assert!(own.contains(&serde_json::json!({"type": "ipc", "path": "/proc/7/ns/ipc"})));
        // shareProcessNamespace (NamespaceMode_POD): the pause process's, by path, once.
        input.pid_path = Some("/proc/7/ns/pid_for_children".into());
        let shared = namespaces(&input);
        let pids: Vec<_> = shared.iter().filter(|n| n["type"] == "pid").collect();
        assert_eq!(
            pids,
            [&serde_json::json!({"type": "pid", "path": "/proc/7/ns/pid_for_children"})]
        );
        assert!(shared.contains(&serde_json::json!({"type": "uts", "path": "/proc/7/ns/uts"})));
    }

    #[test]
    fn privileged_and_capabilities() {
        let caps = |input: SpecInput| -> Vec<String> {
            let spec = serde_json::to_value(build(&input).unwrap()).unwrap();
            let mut v: Vec<String> = spec["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            v.sort();
            v
        };
        let added = caps(SpecInput {
            cap_add: v(&["NET_ADMIN"]),
            cap_drop: v(&["KILL"]),
            ..Default::default()
        });
        assert!(added.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!added.contains(&"CAP_KILL".to_string()));
        let only = caps(SpecInput {
            cap_add: v(&["NET_BIND_SERVICE"]),
            cap_drop: v(&["ALL"]),
            ..Default::default()
        });
        assert_eq!(only, v(&["CAP_NET_BIND_SERVICE"]));
        let all = caps(SpecInput {
            privileged: true,
            ..Default::default()
        });
        assert!(all.len() >= 40 && all.contains(&"CAP_SYS_ADMIN".to_string()));
        let spec = serde_json::to_value(
            build(&SpecInput {
                privileged: true,
                ..Default::default()
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(spec["linux"]["resources"]["devices"][0]["allow"], true);
        assert!(spec["linux"]["maskedPaths"]
            .as_array()
            .is_none_or(|a| a.is_empty()));
    }
}
