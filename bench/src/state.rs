//! Synthetic proxy states for the proxy benches: Services of one TCP port each, with ready
//! endpoints, built straight into the proxy's model (no API objects).

use std::net::{IpAddr, Ipv4Addr};

use svcnet_proxy::model::{Endpoint, Protocol, ServicePort, ServicePortName, State};

/// The address `n` after `base` (for numbering ClusterIPs and endpoints).
pub fn nth(base: Ipv4Addr, n: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + n as u32)
}

/// A ready, serving endpoint on `node`.
pub fn ready_endpoint(ip: Ipv4Addr, port: u16, node: &str) -> Endpoint {
    Endpoint {
        ip: IpAddr::V4(ip),
        port,
        ready: true,
        serving: true,
        terminating: false,
        node_name: Some(node.to_string()),
        zone: None,
        hint_zones: None,
    }
}

/// Add Service `namespace/name` (ClusterIP `vip`, TCP port 80, unnamed) with `endpoints`.
pub fn add_service(
    st: &mut State,
    namespace: &str,
    name: &str,
    vip: Ipv4Addr,
    endpoints: Vec<Endpoint>,
) {
    let id = ServicePortName {
        namespace: namespace.into(),
        name: name.into(),
        port: String::new(),
        protocol: Protocol::Tcp,
    };
    st.endpoints.insert(id.clone(), endpoints);
    st.services
        .insert(id.clone(), ServicePort::new(id, IpAddr::V4(vip), 80));
}
