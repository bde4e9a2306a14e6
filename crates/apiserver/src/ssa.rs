//! Server-side apply and managedFields for the REST handlers: each kind's merge schema for
//! [`svcnet_ssa`], and kube-apiserver's FieldManager calls (`UpdateNoErrors` on create, update
//! and non-apply patch; `Apply` for `application/apply-patch+yaml`).
//!
//! The schema comes from the strategic-merge schema (`svcnet_patch::schema`), as
//! structured-merge-diff's list types follow the same Go tags: `patchStrategy:"merge"` with a
//! `patchMergeKey` is `x-kubernetes-list-type: map` keyed by it (Service ports by port and
//! protocol, the discriminator), without a key a set; untagged lists are atomic, as SMD
//! defaults them. OpenAPI schemas with the real extensions can replace it.

use serde_json::{json, Value};
use svcnet_patch::schema::{self as smp, Strategy};
use svcnet_ssa::{FieldManager, ListType, MapType, PathElement, Set, Type};

use crate::registry::Part;

/// The SSA type of a strategic-merge type.
fn convert(t: &smp::Type) -> Type {
    Type::object(t.fields.iter().map(|f| (f.name, convert_field(f))))
}

fn convert_field(f: &smp::Field) -> Type {
    let inner = convert(f.ty);
    match (f.strategy, f.merge_key) {
        (Strategy::Merge, Some(key)) => {
            let mut keys = vec![key];
            let mut ty = Type::list_map(&[], inner);
            if let Some(d) = f.discriminator {
                keys.push(d.field);
                ty = ty.key_default(d.field, json!(d.default));
            }
            ty.list = ListType::Map(keys.iter().map(|k| k.to_string()).collect());
            ty
        }
        (Strategy::Merge, None) => Type::set(),
        (Strategy::Replace, _) => Type {
            map: MapType::Atomic,
            ..inner
        },
        (Strategy::Default, _) => inner,
    }
}

/// The SSA schema of `apiVersion`/`kind`; kinds without one are deduced (atomic lists).
pub fn schema(api_version: &str, kind: &str) -> Type {
    smp::lookup(api_version, kind)
        .map(convert)
        .unwrap_or_default()
}

fn subresource(part: Part) -> Option<&'static str> {
    match part {
        Part::Main => Some(""),
        Part::Status => Some("status"),
        _ => None,
    }
}

/// The fields a manager of `part` never owns: apimachinery's reset fields (`status` on the
/// main resource of a kind with a status subresource, `spec` on `/status`).
fn ignored(part: Part, has_status: bool) -> Option<Set> {
    let field = match part {
        Part::Main if has_status => "status",
        Part::Status => "spec",
        _ => return None,
    };
    let mut s = Set::new();
    s.insert(&[PathElement::field(field)]);
    Some(s)
}

/// Records `manager`'s Update of `live` (`None` on create) into `new`'s managedFields.
pub fn record_update(
    info: &crate::resources::ResourceInfo,
    part: Part,
    live: Option<&Value>,
    new: &mut Value,
    manager: &str,
) {
    if subresource(part).is_none() {
        return;
    }
    with_field_manager(info, part, |fm| {
        fm.update(live, new, manager, &crate::objmeta::now_rfc3339())
    })
}

/// Runs `f` with the FieldManager of `info` at `part`.
fn with_field_manager<T>(
    info: &crate::resources::ResourceInfo,
    part: Part,
    f: impl FnOnce(FieldManager<'_>) -> T,
) -> T {
    let api_version = info.api_version();
    let ty = schema(&api_version, info.kind);
    let ign = ignored(part, info.has_status());
    f(FieldManager {
        ty: &ty,
        api_version: &api_version,
        subresource: subresource(part).unwrap_or(""),
        ignored: ign.as_ref(),
    })
}

/// Applies `config` for `manager` over `live` (`None`: not yet created).
pub fn apply(
    info: &crate::resources::ResourceInfo,
    part: Part,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, svcnet_ssa::ApplyError> {
    with_field_manager(info, part, |fm| {
        fm.apply(live, config, manager, force, &crate::objmeta::now_rfc3339())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ports_are_keyed_by_port_and_protocol() {
        let t = schema("v1", "Service");
        let ports = t.field("spec").field("ports");
        assert_eq!(
            ports.list,
            ListType::Map(vec!["port".into(), "protocol".into()])
        );
        assert_eq!(ports.key_defaults["protocol"], json!("TCP"));
        let d = schema("apps/v1", "Deployment");
        let c = d
            .field("spec")
            .field("template")
            .field("spec")
            .field("containers");
        assert_eq!(c.list, ListType::Map(vec!["name".into()]));
        assert_eq!(
            c.elements().field("env").list,
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(c.elements().field("args").list, ListType::Atomic);
        assert_eq!(d.field("metadata").field("finalizers").list, ListType::Set);
    }
}
