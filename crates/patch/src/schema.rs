//! Strategic-merge metadata (patchStrategy / patchMergeKey) of the kinds svcnet serves.

/// The merge metadata of one type.
pub struct Type {
    _private: (),
}

/// The root type of `apiVersion`/`kind`, e.g. ("v1", "Service"), ("apps/v1", "Deployment"),
/// ("autoscaling/v1", "Scale").
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static Type> {
    let _ = (api_version, kind);
    unimplemented!()
}
