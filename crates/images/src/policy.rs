//! `imagePullPolicy` as Kubernetes defaults it and the kubelet applies it, and the kubelet's
//! messages around image pulls.
//!
//! Upstream: `SetDefaults_Container` (pkg/apis/core/v1/defaults.go) for the default;
//! `shouldPullImage` and `EnsureImageExists` (pkg/kubelet/images/image_manager.go) for the
//! decision and the event texts; `ErrImageNeverPull` (pkg/kubelet/images/types.go).

use std::time::Duration;

use crate::reference::{parse_image_name, DEFAULT_TAG};

/// `v1.PullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The API's spelling (`Always`, `IfNotPresent`, `Never`).
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }

    /// Reads the API's spelling; an empty or absent policy is defaulted from the image with
    /// [`default_pull_policy`], as the API server does before the kubelet sees the pod.
    pub fn from_api(policy: Option<&str>, image: &str) -> Option<Self> {
        match policy.unwrap_or("") {
            "" => Some(default_pull_policy(image)),
            "Always" => Some(PullPolicy::Always),
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }

    /// The kubelet's `shouldPullImage`.
    pub fn should_pull(self, present: bool) -> bool {
        match self {
            PullPolicy::Never => false,
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present,
        }
    }
}

/// The API server's default for `imagePullPolicy` (`SetDefaults_Container`): `Always` when the
/// tag is `latest` — written or implied by a reference without tag and digest — else
/// `IfNotPresent` (also for a reference that does not parse: validation reports that).
///
/// The API server's pod defaulting (crates/api) must apply this same rule.
pub fn default_pull_policy(image: &str) -> PullPolicy {
    match parse_image_name(image) {
        Ok((_, tag, _)) if tag == DEFAULT_TAG => PullPolicy::Always,
        _ => PullPolicy::IfNotPresent,
    }
}

/// The kubelet's waiting reasons and event reasons around images (pkg/kubelet/images/types.go,
/// pkg/kubelet/events/event.go).
pub mod reasons {
    /// Waiting reason after a failed pull.
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    /// Waiting reason while a failed pull backs off.
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    /// Waiting reason when the image is absent and the policy is `Never`.
    pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
    /// Waiting reason when the image name does not parse.
    pub const INVALID_IMAGE_NAME: &str = "InvalidImageName";
    /// Event reasons.
    pub const PULLING: &str = "Pulling";
    pub const PULLED: &str = "Pulled";
    pub const FAILED: &str = "Failed";
    pub const BACK_OFF: &str = "BackOff";
    pub const INSPECT_FAILED: &str = "InspectFailed";
    pub const ERR_IMAGE_NEVER_PULL_EVENT: &str = "ErrImageNeverPull";
}

/// The kubelet's event messages (`EnsureImageExists`).
pub mod messages {
    use super::*;

    /// `Pulling` event.
    pub fn pulling(image: &str) -> String {
        format!("Pulling image {image:?}")
    }

    /// `Pulled` event after a pull: `Successfully pulled image "nginx" in 1.2s (1.3s including
    /// waiting). Image size: 123 bytes.`
    pub fn pulled(
        image: &str,
        pulling: Duration,
        including_waiting: Duration,
        size: u64,
    ) -> String {
        format!(
            "Successfully pulled image {image:?} in {} ({} including waiting). Image size: {size} bytes.",
            go_duration(pulling),
            go_duration(including_waiting)
        )
    }

    /// `Pulled` event when no pull was needed.
    pub fn already_present(image: &str) -> String {
        format!("Container image {image:?} already present on machine")
    }

    /// `ErrImageNeverPull` event and waiting message.
    pub fn never_pull(image: &str) -> String {
        format!("Container image {image:?} is not present with pull policy of Never")
    }

    /// `Failed` event after a failed pull (`err` is the runtime's, e.g.
    /// [`crate::PullError::cri_message`]).
    pub fn failed_to_pull(image: &str, err: &str) -> String {
        format!("Failed to pull image {image:?}: {err}")
    }

    /// `InspectFailed` event for a name that does not parse.
    pub fn invalid_image_name(image: &str, err: &crate::reference::ImageNameError) -> String {
        format!("Failed to apply default image tag {image:?}: {err}")
    }

    /// `BackOff` event while a pull backs off.
    pub fn back_off(image: &str) -> String {
        format!("Back-off pulling image {image:?}")
    }

    /// Go's `time.Duration.String()` rounded as the kubelet rounds (to milliseconds).
    pub fn go_duration(d: Duration) -> String {
        let ms = d.as_millis();
        if ms == 0 {
            return format!("{}ms", d.as_micros() as f64 / 1000.0);
        }
        if ms < 1000 {
            return format!("{ms}ms");
        }
        let total_s = ms / 1000;
        let frac = ms % 1000;
        let (h, m, s) = (total_s / 3600, (total_s / 60) % 60, total_s % 60);
        let secs = if frac == 0 {
            format!("{s}s")
        } else {
            format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
        };
        match (h, m) {
            (0, 0) => secs,
            (0, m) => format!("{m}m{secs}"),
            (h, m) => format!("{h}h{m}m{secs}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_as_the_api_server() {
        assert_eq!(default_pull_policy("nginx"), PullPolicy::Always);
        assert_eq!(default_pull_policy("nginx:latest"), PullPolicy::Always);
        assert_eq!(default_pull_policy("nginx:1.27"), PullPolicy::IfNotPresent);
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            default_pull_policy(&format!("nginx@{d}")),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            default_pull_policy(&format!("nginx:latest@{d}")),
            PullPolicy::Always
        );
        assert_eq!(default_pull_policy("NOT VALID"), PullPolicy::IfNotPresent);
        assert_eq!(
            PullPolicy::from_api(None, "nginx"),
            Some(PullPolicy::Always)
        );
        assert_eq!(
            PullPolicy::from_api(Some("Never"), "nginx"),
            Some(PullPolicy::Never)
        );
    }

    #[test]
    fn kubelet_messages() {
        assert_eq!(
            messages::never_pull("x"),
            "Container image \"x\" is not present with pull policy of Never"
        );
        assert_eq!(
            messages::pulled(
                "nginx",
                Duration::from_millis(1234),
                Duration::from_millis(61_500),
                42
            ),
            "Successfully pulled image \"nginx\" in 1.234s (1m1.5s including waiting). \
             Image size: 42 bytes."
        );
        assert!(PullPolicy::IfNotPresent.should_pull(false));
        assert!(!PullPolicy::IfNotPresent.should_pull(true));
        assert!(!PullPolicy::Never.should_pull(false));
    }
}
