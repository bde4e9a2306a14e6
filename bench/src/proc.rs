//! Child processes of a bench: killed and reaped when dropped, also on errors and panics, and
//! their CPU time and memory as /proc reports them.

use std::process::{Child, Command};

/// A child process killed (and reaped) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Proc> {
        Ok(Proc(cmd.spawn()?))
    }

    /// Kill and reap it now (dropping it later does nothing more).
    pub fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Peak resident memory (`VmHWM`), MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        status_kib(self.id(), "VmHWM:") / 1024.0
    }

    /// Resident memory now (`VmRSS`), MiB.
    pub fn rss_mib(&self) -> f64 {
        status_kib(self.id(), "VmRSS:") / 1024.0
    }

    /// (user+system CPU seconds, peak RSS in MiB) from /proc.
    pub fn usage(&self) -> (f64, f64) {
        let pid = self.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command (which may hold spaces) start after the last ')'.
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| {
            rest.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 (1-based); `rest` starts at field 3. USER_HZ = 100.
        let cpu = (ticks(11) + ticks(12)) / 100.0;
        (cpu, self.peak_rss_mib())
    }
}

/// The write-family system calls a process has made (`syscw` of `/proc/<pid>/io`); 0 when
/// unreadable.
pub fn write_syscalls(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("syscw:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM:`, `VmRSS:`); 0 when unreadable.
pub fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}
