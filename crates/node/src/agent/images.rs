//! A container's image as the kubelet's image manager handles it (`pkg/kubelet/images/
//! image_manager.go`, `EnsureImageExists`): the pull policy decides, a pull runs in the
//! background while the container shows `ContainerCreating`, a failure shows `ErrImagePull`
//! and starts a back-off (10 s doubling to 300 s, the kubelet's `backOffPeriod` and
//! `MaxContainerBackOff`) during which the container shows `ImagePullBackOff`; each step is an
//! Event with the kubelet's reason and message.

use std::time::{Duration, Instant};

use svcnet_images::policy::{messages, reasons};
use svcnet_images::{Ensured, Image, Keyring, PullError, PullPolicy, Puller};
use tokio::task::JoinHandle;

/// The kubelet's image pull back-off: `flowcontrol.NewBackOff(backOffPeriod, MaxContainerBackOff)`.
pub const PULL_BACKOFF_START: Duration = Duration::from_secs(10);
pub const PULL_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long `ErrImagePull` shows before the next attempt reports the back-off (the kubelet's
/// pod worker re-syncs a failed pod after its `backOffPeriod`; shorter here, so a client sees
/// `ImagePullBackOff` soon, as on a kubelet whose pod is re-synced by other changes).
pub const ERR_SHOWN: Duration = Duration::from_secs(2);

/// An event the worker records on the pod (`spec.containers{name}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

fn normal(reason: &'static str, message: String) -> ImageEvent {
    ImageEvent {
        warning: false,
        reason,
        message,
    }
}

fn warning(reason: &'static str, message: String) -> ImageEvent {
    ImageEvent {
        warning: true,
        reason,
        message,
    }
}

/// What a container's image is doing.
pub enum Step {
    /// Ready to create the container from it.
    Ready(Box<Image>),
    /// A pull is running (or was just started): `ContainerCreating`.
    Pulling,
    /// Not now: the waiting reason and message; retry at `retry`.
    Waiting {
        reason: &'static str,
        message: String,
        retry: Instant,
    },
}

/// The credentials of a pod's `imagePullSecrets`, as the kubelet's `getPullSecretsForPod` and
/// `credentialprovider/secrets.MakeDockerKeyring`: a `kubernetes.io/dockerconfigjson` Secret's
/// `.dockerconfigjson`, a `kubernetes.io/dockercfg` Secret's `.dockercfg`; other Secrets add
/// nothing. With the message of the kubelet's `FailedToRetrieveImagePullSecret` Warning when
/// some are missing (the pull is tried anyway).
pub fn pull_keyring(
    pod: &k8s_openapi::api::core::v1::Pod,
    objects: &dyn crate::objects::Objects,
) -> (Keyring, Option<String>) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut keyring = Keyring::empty();
    let mut missing = Vec::new();
    let refs = pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten());
    // Empty names pass validation (issue 99454); the kubelet skips them silently.
    for name in refs.map(|r| r.name.as_str()).filter(|n| !n.is_empty()) {
        let Some(secret) = objects.secret(ns, name) else {
            missing.push(name);
            continue;
        };
        let key = match secret.type_.as_deref() {
            Some("kubernetes.io/dockerconfigjson") => ".dockerconfigjson",
            Some("kubernetes.io/dockercfg") => ".dockercfg",
            _ => continue,
        };
        let data = secret.data.as_ref().and_then(|d| d.get(key));
        if let Some(bytes) = data.filter(|b| !b.0.is_empty()) {
            if let Err(e) = keyring.add_docker_config_json(&bytes.0) {
                tracing::warn!(secret = name, error = %e, "an unreadable image pull secret");
            }
        }
    }
    let warning = (!missing.is_empty()).then(|| {
        format!(
            "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
            missing.join(", ")
        )
    });
    (keyring, warning)
}

/// The image state of one container.
#[derive(Default)]
pub struct ImageState {
    pull: Option<(JoinHandle<Result<Ensured, PullError>>, Instant)>,
    backoff: Duration,
    backoff_until: Option<Instant>,
    /// The image was ensured for the current start (cleared when the container starts).
    ready: Option<Image>,
}

impl ImageState {
    /// The kubelet's `EnsureImageExists` for one attempt to start the container, with the
    /// credentials of the pod's `imagePullSecrets` ([`pull_keyring`]); `events` gets what to
    /// record.
    pub fn ensure(
        &mut self,
        puller: &Puller,
        image: &str,
        policy: Option<&str>,
        keyring: Keyring,
        events: &mut Vec<ImageEvent>,
    ) -> Step {
        if let Some(img) = self.ready.take() {
            return Step::Ready(Box::new(img));
        }
        let now = Instant::now();
        if let Some((handle, started)) = &self.pull {
            if !handle.is_finished() {
                return Step::Pulling;
            }
            let started = *started;
            let (handle, _) = self.pull.take().expect("checked");
            let result = match futures::FutureExt::now_or_never(handle) {
                Some(Ok(r)) => r,
                Some(Err(e)) => Err(PullError::Resolve {
                    reference: image.to_string(),
                    cause: format!("pull task failed: {e}"),
                }),
                None => unreachable!("the pull task has finished"),
            };
            return match result {
                Ok(ensured) => {
                    let waited = started.elapsed();
                    events.push(normal(
                        reasons::PULLED,
                        messages::pulled(
                            image,
                            ensured.pulled_in.unwrap_or(waited),
                            waited,
                            ensured.image.size,
                        ),
                    ));
                    self.backoff = Duration::ZERO;
                    self.backoff_until = None;
                    Step::Ready(Box::new(ensured.image))
                }
                Err(e) => self.failed(image, e, events),
            };
        }
        let Some(policy) = PullPolicy::from_api(policy, image) else {
            let message = format!("unknown imagePullPolicy {policy:?}");
            events.push(warning(reasons::FAILED, format!("Error: {message}")));
            return Step::Waiting {
                reason: "CreateContainerConfigError",
                message,
                retry: now + PULL_BACKOFF_START,
            };
        };
        let with_tag = match svcnet_images::reference::apply_default_image_tag(image) {
            Ok(t) => t,
            Err(e) => {
                let msg = messages::invalid_image_name(image, &e);
                events.push(warning(reasons::INSPECT_FAILED, msg.clone()));
                return Step::Waiting {
                    reason: reasons::INVALID_IMAGE_NAME,
                    message: msg,
                    retry: now + PULL_BACKOFF_START,
                };
            }
        };
        let present = puller.store().get(&with_tag);
        if !policy.should_pull(present.is_some()) {
            return match present {
                Some(img) => {
                    events.push(normal(reasons::PULLED, messages::already_present(image)));
                    Step::Ready(Box::new(img))
                }
                None => {
                    let msg = messages::never_pull(image);
                    events.push(warning(reasons::ERR_IMAGE_NEVER_PULL_EVENT, msg.clone()));
                    Step::Waiting {
                        reason: reasons::ERR_IMAGE_NEVER_PULL,
                        message: msg,
                        retry: now + PULL_BACKOFF_START,
                    }
                }
            };
        }
        if let Some(until) = self.backoff_until.filter(|u| now < *u) {
            let msg = messages::back_off(image);
            events.push(normal(reasons::BACK_OFF, msg.clone()));
            events.push(warning(
                reasons::FAILED,
                "Error: ImagePullBackOff".to_string(),
            ));
            return Step::Waiting {
                reason: reasons::IMAGE_PULL_BACK_OFF,
                message: msg,
                retry: until,
            };
        }
        events.push(normal(reasons::PULLING, messages::pulling(image)));
        let (p, img) = (puller.clone(), image.to_string());
        let handle =
            tokio::spawn(async move { p.ensure(&img, PullPolicy::Always, &keyring).await });
        self.pull = Some((handle, now));
        Step::Pulling
    }

    fn failed(&mut self, image: &str, e: PullError, events: &mut Vec<ImageEvent>) -> Step {
        let msg = e.cri_message();
        events.push(warning(
            reasons::FAILED,
            messages::failed_to_pull(image, &msg),
        ));
        let reason = e.waiting_reason();
        events.push(warning(reasons::FAILED, format!("Error: {reason}")));
        self.backoff = if self.backoff.is_zero() {
            PULL_BACKOFF_START
        } else {
            (self.backoff * 2).min(PULL_BACKOFF_MAX)
        };
        let now = Instant::now();
        self.backoff_until = Some(now + self.backoff);
        Step::Waiting {
            reason,
            message: msg,
            retry: now + ERR_SHOWN.min(self.backoff),
        }
    }

    /// A pull is under way (its outcome not yet taken by [`ImageState::ensure`]).
    pub fn pulling(&self) -> bool {
        self.pull.is_some()
    }

    /// Stops a running pull (the pod is going away).
    pub fn abort(&mut self) {
        if let Some((h, _)) = self.pull.take() {
            h.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::Fixed;
    use serde_json::json;

    #[test]
    fn pull_secrets_feed_the_keyring() {
        let auths = r#"{"auths":{"127.0.0.1:5000":{"username":"u","password":"p"}}}"#;
        let objects = Fixed {
            secrets: vec![
                serde_json::from_value(json!({
                    "metadata": {"namespace": "default", "name": "regcred"},
                    "type": "kubernetes.io/dockerconfigjson",
                    "data": {".dockerconfigjson": k8s_openapi::ByteString(auths.into())},
                }))
                .unwrap(),
                serde_json::from_value(json!({
                    "metadata": {"namespace": "default", "name": "opaque"},
                    "data": {".dockerconfigjson": k8s_openapi::ByteString(auths.into())},
                }))
                .unwrap(),
            ],
            ..Default::default()
        };
        let pod = |secrets: &[&str]| -> k8s_openapi::api::core::v1::Pod {
            let refs: Vec<_> = secrets.iter().map(|n| json!({"name": n})).collect();
            serde_json::from_value(json!({"metadata": {"namespace": "default"},
                "spec": {"containers": [], "imagePullSecrets": refs}}))
            .unwrap()
        };
        let image = svcnet_images::Reference::parse_docker_ref("127.0.0.1:5000/app").unwrap();
        let (keyring, warning) = pull_keyring(&pod(&["regcred", "", "gone", "other"]), &objects);
        assert!(keyring.lookup(&image).is_some());
        assert_eq!(
            warning.as_deref(),
            Some("Unable to retrieve some image pull secrets (gone, other); attempting to pull the image may not succeed.")
        );
        // Only the dockerconfigjson type counts, as MakeDockerKeyring reads it.
        let (keyring, warning) = pull_keyring(&pod(&["opaque"]), &objects);
        assert!(keyring.lookup(&image).is_none() && warning.is_none());
    }
}
