//! The kubelet's image garbage collection (`pkg/kubelet/images/image_gc_manager.go`,
//! `GarbageCollect` and `freeSpace`) over the store every node agent of a host shares.
//!
//! When the store's filesystem is used at `HighThresholdPercent` (85) or more, the images no
//! container uses are removed, least recently used first (ties: first detected first), those
//! detected less than `MinAge` (2 min) ago skipped, until the usage is back at
//! `LowThresholdPercent` (80); short of that, the kubelet's "Failed to garbage collect required
//! amount of images..." error.
//!
//! What "used" means across nodes: each agent publishes the images its containers use as
//! `refs/<node>.json` in the store ([`Store::add_ref`] when it creates a container, under the
//! store's shared lock and only if the image is still there; [`Store::set_refs`] with the full
//! set before each of its collections). A collection holds the store exclusively and keeps
//! every image any node's refs name, so an image is never removed under a container of
//! another node, nor between a node's check that it exists and its container's creation.
//! A node that is gone for good leaves its refs behind, keeping its images (safe, not
//! collected): remove `refs/<node>.json` to release them. "First detected" is when the image
//! was last pulled or imported (its record's mtime); "last used" is the latest time a node's
//! refs named it. Images imported from air-gapped archives are pinned (k3s pins them; the
//! kubelet skips pinned images).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::gc::hex;
use crate::store::Store;

/// The kubelet's `ImageGCPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageGcPolicy {
    /// `--image-gc-high-threshold` (`imageGCHighThresholdPercent`, default 85); 100 disables
    /// image garbage collection, as the kubelet.
    pub high_threshold_percent: u32,
    /// `--image-gc-low-threshold` (`imageGCLowThresholdPercent`, default 80).
    pub low_threshold_percent: u32,
    /// `--image-minimum-gc-age` (`imageMinimumGCAge`, default 2m).
    pub min_age: Duration,
}

impl Default for ImageGcPolicy {
    fn default() -> Self {
        Self {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

/// The kubelet's `ImageGCPeriod`: how often the agent collects (not a kubelet flag).
pub const IMAGE_GC_PERIOD: Duration = Duration::from_secs(300);

impl ImageGcPolicy {
    /// The kubelet's checks of these flags (`ValidateKubeletConfiguration`), with its
    /// messages, aggregated as `utilerrors.NewAggregate` prints several.
    pub fn validate(&self) -> Result<(), String> {
        let (high, low) = (self.high_threshold_percent, self.low_threshold_percent);
        let mut errors = Vec::new();
        if high > 100 {
            errors.push(format!("invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) {high} must be between 0 and 100, inclusive"));
        }
        if low > 100 {
            errors.push(format!("invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be between 0 and 100, inclusive"));
        }
        if low >= high {
            errors.push(format!("invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {high}"));
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(format!("[{}]", errors.join(", "))),
        }
    }

    /// Whether collections run at all (`imageGCHighThresholdPercent: 100` disables them).
    pub fn enabled(&self) -> bool {
        self.high_threshold_percent < 100
    }
}

/// Go's `time.ParseDuration` for flags as the kubelet's (`2m`, `1h30m`, `90s`, `1.5h`,
/// `500ms`), with its error text. Hand-written: a dozen lines, and no crate spells Go's.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let (mut rest, mut total) = (s, 0f64);
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {s:?}"))?;
        let value: f64 = rest[..n].parse().map_err(|_| invalid())?;
        let unit_len = rest[n..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - n);
        let unit = &rest[n..n + unit_len];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        total += value * scale;
        rest = &rest[n + unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// The image filesystem's size and free space, as cAdvisor reports them to the kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub capacity: u64,
    pub available: u64,
}

/// One image removed to free space: the kubelet's "Removing image to free bytes".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub image_id: String,
    pub size: u64,
}

/// What one collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcOutcome {
    /// `100 - available*100/capacity`.
    pub usage_percent: i64,
    /// What had to be freed (0: under the high threshold, nothing done).
    pub amount_to_free: i64,
    pub removed: Vec<Removed>,
    /// The removed images' sizes, as the kubelet counts them.
    pub freed: i64,
}

impl GcOutcome {
    /// The kubelet's error when not enough could be freed (its `FreeDiskSpaceFailed` event and
    /// the `ImageGCFailed` one after repeated failures carry it).
    pub fn shortfall(&self) -> Option<String> {
        (self.amount_to_free > 0 && self.freed < self.amount_to_free).then(|| {
            format!(
                "Failed to garbage collect required amount of images. Attempted to free {} bytes, but only found {} bytes eligible to free.",
                self.amount_to_free, self.freed
            )
        })
    }
}

/// `refs/<node>.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct NodeRefs {
    /// Image IDs the node's containers use.
    in_use: BTreeSet<String>,
    /// Image ID → when the node last named it in use (Unix seconds).
    #[serde(default)]
    last_used: BTreeMap<String, u64>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl Store {
    fn refs_path(&self, node: &str) -> PathBuf {
        self.root().join("refs").join(format!("{node}.json"))
    }

    fn read_refs(&self, node: &str) -> NodeRefs {
        fs::read(self.refs_path(node))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write_refs(&self, node: &str, refs: &NodeRefs) -> Result<(), StoreError> {
        let dir = self.root().join("refs");
        fs::create_dir_all(&dir).map_err(StoreError::io("create", &dir))?;
        let json = serde_json::to_vec_pretty(refs).expect("refs serialise");
        self.write_atomic(&self.refs_path(node), &json)
    }

    /// Node `node` is about to create a container from `image` (an ID, repo tag or digest):
    /// it is recorded in the node's refs if the store still has it (`Ok(false)` if a
    /// collection removed it meanwhile: ensure it again). Takes the store's shared lock, so no
    /// collection runs in between. One writer per node (the node's agent serialises its calls
    /// with its [`Store::set_refs`]).
    pub fn add_ref(&self, node: &str, image: &str, now: SystemTime) -> Result<bool, StoreError> {
        let _lock = self.lock_shared()?;
        let Some(id) = self.resolve(image) else {
            return Ok(false);
        };
        let mut refs = self.read_refs(node);
        refs.in_use.insert(id.clone());
        refs.last_used.insert(id, unix(now));
        self.write_refs(node, &refs)?;
        Ok(true)
    }

    /// Node `node`'s containers use exactly `images` now (IDs, repo tags or digests).
    pub fn set_refs(
        &self,
        node: &str,
        images: &BTreeSet<String>,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let _lock = self.lock_shared()?;
        let mut refs = self.read_refs(node);
        refs.in_use = images.iter().filter_map(|i| self.resolve(i)).collect();
        for id in &refs.in_use {
            refs.last_used.insert(id.clone(), unix(now));
        }
        let present = self.record_ids();
        refs.last_used.retain(|id, _| present.contains(id));
        self.write_refs(node, &refs)
    }

    /// The store's filesystem (statvfs(2) of its root).
    pub fn fs_stats(&self) -> Result<FsStats, StoreError> {
        let st = nix::sys::statvfs::statvfs(self.root()).map_err(|e| StoreError::Io {
            op: "statvfs",
            path: self.root().to_path_buf(),
            source: e.into(),
        })?;
        let frsize = st.fragment_size() as u64;
        Ok(FsStats {
            capacity: st.blocks() as u64 * frsize,
            available: st.blocks_available() as u64 * frsize,
        })
    }

    /// The kubelet's `GarbageCollect` with `stats` of the store's filesystem at `now`: nothing
    /// under the high threshold; else images no node uses are removed (see the module) until
    /// the low threshold is reached. Blocks while pulls hold the store.
    pub fn garbage_collect(
        &self,
        policy: &ImageGcPolicy,
        stats: FsStats,
        now: SystemTime,
    ) -> Result<GcOutcome, StoreError> {
        let FsStats {
            capacity,
            mut available,
        } = stats;
        available = available.min(capacity);
        if capacity == 0 {
            return Err(StoreError::Invalid(
                "invalid capacity 0 on image filesystem".into(),
            ));
        }
        let (capacity, available) = (capacity as i64, available as i64);
        let mut outcome = GcOutcome {
            usage_percent: 100 - available * 100 / capacity,
            ..Default::default()
        };
        if outcome.usage_percent < policy.high_threshold_percent as i64 {
            return Ok(outcome);
        }
        outcome.amount_to_free =
            capacity * (100 - policy.low_threshold_percent as i64) / 100 - available;
        tracing::info!(
            usage = outcome.usage_percent,
            high_threshold = policy.high_threshold_percent,
            amount_to_free = outcome.amount_to_free,
            low_threshold = policy.low_threshold_percent,
            "Disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold"
        );
        let _lock = self.lock_exclusive()?;
        let (mut in_use, mut last_used) = (BTreeSet::new(), BTreeMap::<String, u64>::new());
        for entry in crate::gc::read_dir(&self.root().join("refs")) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(node) = name.strip_suffix(".json") else {
                continue;
            };
            let refs = self.read_refs(node);
            in_use.extend(refs.in_use);
            for (id, t) in refs.last_used {
                let e = last_used.entry(id).or_default();
                *e = (*e).max(t);
            }
        }
        // (last used, first detected, id, size) of each image no node uses.
        let mut candidates = Vec::new();
        for id in self.record_ids() {
            if in_use.contains(&id) {
                continue;
            }
            let path = self
                .root()
                .join("images")
                .join(format!("{}.json", hex(&id)));
            let detected = fs::metadata(&path)
                .and_then(|m| m.modified())
                .map(unix)
                .unwrap_or(0);
            let Some(record) = self.read_record(&id)? else {
                continue;
            };
            if record.pinned {
                tracing::debug!(image_id = %id, "Image is pinned, skipping garbage collection");
                continue;
            }
            let used = last_used.get(&id).copied().unwrap_or(0);
            candidates.push((used, detected, id, record.size));
        }
        candidates.sort();
        let now_s = unix(now);
        let mut remove = Vec::new();
        for (_, detected, id, size) in candidates {
            if outcome.freed >= outcome.amount_to_free {
                break;
            }
            if now_s.saturating_sub(detected) < policy.min_age.as_secs() {
                tracing::debug!(image_id = %id, "Image ID's age is less than the policy's minAge, not eligible for garbage collection");
                continue;
            }
            tracing::info!(image_id = %id, size, "Removing image to free bytes");
            outcome.freed += size as i64;
            outcome.removed.push(Removed {
                image_id: id.clone(),
                size,
            });
            remove.push(id);
        }
        if !remove.is_empty() {
            self.remove_and_sweep(&remove)?;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ImageRecord;

    const MB: u64 = 1 << 20;

    fn image(store: &Store, n: u8, size: u64, age: Duration, now: SystemTime) -> String {
        let id = format!("sha256:{}", format!("{n:02x}").repeat(32));
        let record = ImageRecord {
            id: id.clone(),
            size,
            ..Default::default()
        };
        store
            .write_image(record, &[format!("docker.io/library/i{n}:latest")])
            .unwrap();
        let path = store
            .root()
            .join("images")
            .join(format!("{}.json", hex(&id)));
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_modified(now - age).unwrap();
        id
    }

    fn ids(outcome: &GcOutcome) -> Vec<&str> {
        outcome
            .removed
            .iter()
            .map(|r| r.image_id.as_str())
            .collect()
    }

    /// 100 MB filesystem with `used_mb` used.
    fn stats(used_mb: u64) -> FsStats {
        FsStats {
            capacity: 100 * MB,
            available: (100 - used_mb) * MB,
        }
    }

    #[test]
    fn under_the_high_threshold_nothing_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let now = SystemTime::now();
        image(&store, 1, 10 * MB, Duration::from_secs(3600), now);
        let out = store
            .garbage_collect(&ImageGcPolicy::default(), stats(84), now)
            .unwrap();
        assert_eq!((out.usage_percent, out.amount_to_free), (84, 0));
        assert!(out.removed.is_empty());
        assert_eq!(out.shortfall(), None);
        assert_eq!(store.list().len(), 1);
    }

    #[test]
    fn frees_down_to_the_low_threshold_least_recently_used_first() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let a = image(&store, 1, 4 * MB, 3 * hour, now);
        let b = image(&store, 2, 4 * MB, 3 * hour, now);
        let c = image(&store, 3, 4 * MB, 3 * hour, now);
        // b was used an hour ago, c two hours ago, a never since detected.
        let mut refs = BTreeSet::from([b.clone()]);
        store.set_refs("node-1", &refs, now - hour).unwrap();
        refs = BTreeSet::from([c.clone()]);
        store.set_refs("node-2", &refs, now - 2 * hour).unwrap();
        store.set_refs("node-1", &BTreeSet::new(), now).unwrap();
        store.set_refs("node-2", &BTreeSet::new(), now).unwrap();
        // 87% used: 7 MB to free (to 80%) → a, then c (the least recently used).
        let out = store
            .garbage_collect(&ImageGcPolicy::default(), stats(87), now)
            .unwrap();
        assert_eq!(out.usage_percent, 87);
        assert_eq!(out.amount_to_free, (7 * MB) as i64);
        assert_eq!(ids(&out), [a.as_str(), c.as_str()]);
        assert_eq!(out.freed, (8 * MB) as i64);
        assert_eq!(out.shortfall(), None);
        let left: Vec<String> = store.list().into_iter().map(|i| i.id).collect();
        assert_eq!(left, [b]);
        assert!(store.get("i1").is_none(), "names go with the image");
    }

    #[test]
    fn images_any_node_uses_and_young_images_are_kept() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let used_by_1 = image(&store, 1, 10 * MB, hour, now);
        let used_by_2 = image(&store, 2, 10 * MB, hour, now);
        let young = image(&store, 3, 10 * MB, Duration::from_secs(60), now);
        let old = image(&store, 4, MB, hour, now);
        assert!(store.add_ref("node-1", &used_by_1, now).unwrap());
        // By name, as a container's image: the same image.
        assert!(store
            .add_ref("node-2", "docker.io/library/i2:latest", now)
            .unwrap());
        let out = store
            .garbage_collect(&ImageGcPolicy::default(), stats(95), now)
            .unwrap();
        assert_eq!(ids(&out), [old.as_str()]);
        assert_eq!(
            out.shortfall().unwrap(),
            format!(
                "Failed to garbage collect required amount of images. Attempted to free {} bytes, but only found {} bytes eligible to free.",
                15 * MB,
                MB
            )
        );
        let left: BTreeSet<String> = store.list().into_iter().map(|i| i.id).collect();
        assert_eq!(left, BTreeSet::from([used_by_1, used_by_2.clone(), young]));
        // A node that stops using an image releases it (once old enough).
        store.set_refs("node-2", &BTreeSet::new(), now).unwrap();
        let out = store
            .garbage_collect(&ImageGcPolicy::default(), stats(95), now)
            .unwrap();
        assert_eq!(ids(&out), [used_by_2.as_str()]);
        // An image removed meanwhile cannot be referenced: the agent ensures it again.
        assert!(!store.add_ref("node-2", &old, now).unwrap());
    }

    #[test]
    fn pinned_images_are_never_collected() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let now = SystemTime::now();
        let id = format!("sha256:{}", "ab".repeat(32));
        let record = ImageRecord {
            id: id.clone(),
            size: 50 * MB,
            pinned: true,
            ..Default::default()
        };
        store.write_image(record.clone(), &[]).unwrap();
        // Pulled again later (not pinned by the pull): still pinned.
        store
            .write_image(
                ImageRecord {
                    pinned: false,
                    ..record
                },
                &[],
            )
            .unwrap();
        let policy = ImageGcPolicy {
            min_age: Duration::ZERO,
            ..Default::default()
        };
        let out = store.garbage_collect(&policy, stats(99), now).unwrap();
        assert!(out.removed.is_empty());
        assert!(out.shortfall().is_some());
        assert_eq!(store.list().len(), 1);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_go_duration("2").unwrap_err(),
            "time: missing unit in duration \"2\""
        );
        assert_eq!(
            parse_go_duration("2d").unwrap_err(),
            "time: unknown unit \"d\" in duration \"2d\""
        );
    }

    #[test]
    fn policy_checks_are_the_kubelets() {
        let p = |high, low| ImageGcPolicy {
            high_threshold_percent: high,
            low_threshold_percent: low,
            min_age: Duration::ZERO,
        };
        assert_eq!(p(85, 80).validate(), Ok(()));
        assert_eq!(
            p(101, 80).validate().unwrap_err(),
            "invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100, inclusive"
        );
        assert_eq!(
            p(0, 1).validate().unwrap_err(),
            "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 1 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 0"
        );
        assert_eq!(
            p(80, 101).validate().unwrap_err(),
            "[invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 101 must be between 0 and 100, inclusive, invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) 101 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 80]"
        );
        assert!(!p(100, 80).enabled());
    }
}
