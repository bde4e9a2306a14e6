//! discovery.k8s.io/v1 defaulting: mirrors `SetDefaults_EndpointPort` of
//! `pkg/apis/discovery/v1/defaults.go` (port `name: ""`, `protocol: TCP`).

use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Every port gets `name: ""` and `protocol: TCP` when unset.
pub fn default_endpointslice(slice: &mut EndpointSlice) {
    for p in slice.ports.iter_mut().flatten() {
        if p.name.is_none() {
            p.name = Some(String::new());
        }
        if p.protocol.is_none() {
            p.protocol = Some("TCP".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_get_name_and_protocol() {
        let mut s: EndpointSlice =
            serde_json::from_value(json!({"addressType": "IPv4", "endpoints": [],
            "ports": [{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}))
            .unwrap();
        default_endpointslice(&mut s);
        assert_eq!(
            serde_json::to_value(&s.ports).unwrap(),
            json!([{"name": "", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}])
        );
    }
}
