//! Whether the kernel has IPVS, as kube-proxy's `CanUseIPVSProxier` asks before its IPVS mode
//! starts (it refuses with "can't use the IPVS proxier: ipvs not supported by the kernel").
//! Read-only: nothing is loaded (older kube-proxy ran `modprobe ip_vs`; here a module that
//! could be loaded is reported as such).

use std::path::Path;

/// The kernel's IPVS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelIpvs {
    /// Loaded or built in (`/proc/net/ip_vs` or `/sys/module/ip_vs`).
    Present,
    /// Not loaded, but a module the kernel could load.
    Loadable,
    /// Neither: why not, in the words of the files looked at.
    Missing(String),
}

/// [`KernelIpvs`] of the running kernel.
pub fn kernel_ipvs() -> KernelIpvs {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    kernel_ipvs_at(Path::new("/"), release.trim())
}

/// [`KernelIpvs`] with `/proc`, `/sys` and `/lib/modules` under `root`, for kernel `release`.
pub fn kernel_ipvs_at(root: &Path, release: &str) -> KernelIpvs {
    if root.join("proc/net/ip_vs").exists() || root.join("sys/module/ip_vs").exists() {
        return KernelIpvs::Present;
    }
    let modules = root.join("lib/modules").join(release);
    let mentions = |file: &str| {
        std::fs::read_to_string(modules.join(file)).is_ok_and(|t| {
            t.lines()
                .any(|l| l.contains("/ip_vs.ko") || l.starts_with("ip_vs.ko"))
        })
    };
    if mentions("modules.builtin") || mentions("modules.dep") {
        return KernelIpvs::Loadable;
    }
    let why = if modules.is_dir() {
        format!("/proc/net/ip_vs is missing and kernel {release} has no ip_vs module")
    } else {
        format!(
            "/proc/net/ip_vs is missing and kernel {release} has no modules to load (no /lib/modules/{release})"
        )
    };
    KernelIpvs::Missing(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_loadable_or_missing() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        assert_eq!(
            kernel_ipvs_at(r, "6.1.0"),
            KernelIpvs::Missing(
                "/proc/net/ip_vs is missing and kernel 6.1.0 has no modules to load (no /lib/modules/6.1.0)"
                    .into()
            )
        );
        let m = r.join("lib/modules/6.1.0");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("modules.dep"), "kernel/net/foo.ko:\n").unwrap();
        assert!(
            matches!(kernel_ipvs_at(r, "6.1.0"), KernelIpvs::Missing(w) if w.ends_with("has no ip_vs module"))
        );
        std::fs::write(
            m.join("modules.dep"),
            "kernel/net/netfilter/ipvs/ip_vs.ko.xz: kernel/net/netfilter/nf_conntrack.ko.xz\n",
        )
        .unwrap();
        assert_eq!(kernel_ipvs_at(r, "6.1.0"), KernelIpvs::Loadable);
        std::fs::create_dir_all(r.join("proc/net/ip_vs")).unwrap();
        assert_eq!(kernel_ipvs_at(r, "6.1.0"), KernelIpvs::Present);
    }
}
