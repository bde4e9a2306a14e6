//! A core/v1 Event recorder, as client-go's `record.EventRecorder`: events are written in the
//! background (a controller never waits on them), and a repeat of the same event on the same
//! object within the process raises `count` and `lastTimestamp` instead of adding an object —
//! which is what `kubectl describe` shows as `(x3 over 2m)`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

struct Pending {
    involved: ObjectReference,
    field_path: Option<String>,
    type_: &'static str,
    reason: String,
    message: String,
}

/// Records Events for objects; cheap to call from any controller.
pub struct Recorder {
    tx: mpsc::Sender<Pending>,
}

impl Clone for Recorder {
    fn clone(&self) -> Self {
        Recorder {
            tx: self.tx.clone(),
        }
    }
}

/// What a repeat of an event needs: the Event's name and its count so far.
type Seen = Arc<Mutex<HashMap<(String, String, String, String), (String, i32)>>>;

impl Recorder {
    pub fn new(client: Client, component: &str) -> Self {
        Self::with_host(client, component, None)
    }

    /// A recorder whose events name the host they come from (`source.host`: the kubelet's
    /// node name).
    pub fn with_host(client: Client, component: &str, host: Option<String>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(4096);
        let component = component.to_string();
        let seen: Seen = Arc::default();
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                if let Err(e) = write(&client, &component, host.as_deref(), &seen, p).await {
                    tracing::debug!(error = %e, "event not recorded");
                }
            }
        });
        Recorder { tx }
    }

    /// Record an event about `obj`. Never blocks; drops the event if the writer is far behind.
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: &'static str,
        reason: &str,
        message: String,
    ) {
        self.event_on(obj, None, type_, reason, message)
    }

    /// Record an event about a part of `obj` (`involvedObject.fieldPath`, as the kubelet's
    /// `spec.containers{nginx}`).
    pub fn event_on<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        field_path: Option<String>,
        type_: &'static str,
        reason: &str,
        message: String,
    ) {
        let m = obj.meta();
        let involved = ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            field_path: None,
        };
        let _ = self.tx.try_send(Pending {
            involved,
            field_path,
            type_,
            reason: reason.to_string(),
            message,
        });
    }
}

async fn write(
    client: &Client,
    component: &str,
    host: Option<&str>,
    seen: &Seen,
    mut p: Pending,
) -> Result<(), kube::Error> {
    let ns = p
        .involved
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    p.involved.field_path = p.field_path.take();
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    let now = jiff::Timestamp::now();
    let key = (
        format!(
            "{}{}",
            p.involved.uid.as_deref().unwrap_or_default(),
            p.involved.field_path.as_deref().unwrap_or_default()
        ),
        p.type_.to_string(),
        p.reason.clone(),
        p.message.clone(),
    );
    let prior = seen.lock().expect("events lock").get(&key).cloned();
    if let Some((name, count)) = prior {
        let patch = json!({
            "count": count + 1,
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        });
        if api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .is_ok()
        {
            seen.lock()
                .expect("events lock")
                .insert(key, (name, count + 1));
            return Ok(());
        }
    }
    let t = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
    let name = format!(
        "{}.{:x}",
        p.involved.name.as_deref().unwrap_or("unknown"),
        now.as_nanosecond()
    );
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns),
            ..Default::default()
        },
        involved_object: p.involved,
        reason: Some(p.reason),
        message: Some(p.message),
        type_: Some(p.type_.to_string()),
        source: Some(EventSource {
            component: Some(component.to_string()),
            host: host.map(str::to_string),
        }),
        first_timestamp: Some(t.clone()),
        last_timestamp: Some(t),
        count: Some(1),
        reporting_component: Some(component.to_string()),
        reporting_instance: Some(host.unwrap_or(component).to_string()),
        ..Default::default()
    };
    api.create(&PostParams::default(), &ev).await?;
    let mut s = seen.lock().expect("events lock");
    if s.len() > 4096 {
        s.clear();
    }
    s.insert(key, (name, 1));
    Ok(())
}
