//! Endpoints and EndpointSlice validation: mirrors `ValidateEndpoints*` and
//! `validateEndpointSubsets`/`validateEndpointAddress`/`validateEndpointPort` of
//! `pkg/apis/core/validation/validation.go`, and `ValidateEndpointSlice*` of
//! `pkg/apis/discovery/validation/validation.go`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, Endpoints};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::meta::{validate_object_meta, validate_object_meta_update};
use super::names::{
    name_is_dns_subdomain, validate_dns1123_label, validate_fully_qualified_domain_name,
    validate_ip, validate_ipv4, validate_ipv6, validate_labels, validate_non_special_ip,
    validate_qualified_name, FIELD_IMMUTABLE_ERROR_MSG,
};
use super::{s, validate_port_and_protocol, validate_port_name, SUPPORTED_PORT_PROTOCOLS};
use crate::field::{Error, ErrorList, Path};

const SUPPORTED_ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
const SUPPORTED_ADDRESS_TYPES_ON_UPDATE: &[&str] = &["FQDN", "IP", "IPv4", "IPv6"];
const MAX_TOPOLOGY_LABELS: usize = 16;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 100;
const MAX_ENDPOINTS: usize = 1000;

/// `ValidateEndpointsCreate`
pub fn validate_endpoints_create(ep: &Endpoints) -> ErrorList {
    validate_endpoints(ep)
}

/// `ValidateEndpointsUpdate`
pub fn validate_endpoints_update(new: &Endpoints, old: &Endpoints) -> ErrorList {
    let mut errs =
        validate_object_meta_update(&new.metadata, &old.metadata, &Path::new("metadata"));
    errs.extend(validate_endpoints(new));
    errs
}

fn validate_endpoints(ep: &Endpoints) -> ErrorList {
    let mut errs = validate_object_meta(
        &ep.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    let path = Path::new("subsets");
    for (i, ss) in ep.subsets.iter().flatten().enumerate() {
        let p = path.index(i);
        let addrs = ss.addresses.as_deref().unwrap_or_default();
        let not_ready = ss.not_ready_addresses.as_deref().unwrap_or_default();
        if addrs.is_empty() && not_ready.is_empty() {
            errs.push(Error::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (j, a) in addrs.iter().enumerate() {
            errs.extend(validate_endpoint_address(a, &p.child("addresses").index(j)));
        }
        for (j, a) in not_ready.iter().enumerate() {
            errs.extend(validate_endpoint_address(
                a,
                &p.child("notReadyAddresses").index(j),
            ));
        }
        let ports = ss.ports.as_deref().unwrap_or_default();
        for (j, port) in ports.iter().enumerate() {
            errs.extend(validate_endpoint_port(
                port,
                ports.len() > 1,
                &p.child("ports").index(j),
            ));
        }
    }
    errs
}

fn validate_endpoint_address(a: &EndpointAddress, path: &Path) -> ErrorList {
    let mut errs = validate_ip(&a.ip, &path.child("ip"));
    let hostname = s(&a.hostname);
    if !hostname.is_empty() {
        errs.extend(validate_dns1123_label(hostname, &path.child("hostname")));
    }
    if let Some(node) = &a.node_name {
        for m in name_is_dns_subdomain(node, false) {
            errs.push(Error::invalid(&path.child("nodeName"), node, m));
        }
    }
    errs.extend(validate_non_special_ip(&a.ip, &path.child("ip")));
    errs
}

fn validate_endpoint_port(port: &EndpointPort, require_name: bool, path: &Path) -> ErrorList {
    let mut errs = validate_port_name(s(&port.name), require_name, path);
    errs.extend(validate_port_and_protocol(
        port.port,
        s(&port.protocol),
        path,
    ));
    if let Some(app) = &port.app_protocol {
        errs.extend(validate_qualified_name(app, &path.child("appProtocol")));
    }
    errs
}

/// `ValidateEndpointSliceCreate`
pub fn validate_endpointslice_create(slice: &EndpointSlice) -> ErrorList {
    validate_endpointslice(slice, SUPPORTED_ADDRESS_TYPES)
}

/// `ValidateEndpointSliceUpdate`: also accepts the deprecated `IP` type; `addressType` is
/// immutable.
pub fn validate_endpointslice_update(new: &EndpointSlice, old: &EndpointSlice) -> ErrorList {
    let mut errs = validate_endpointslice(new, SUPPORTED_ADDRESS_TYPES_ON_UPDATE);
    if new.address_type != old.address_type {
        errs.push(Error::invalid(
            &Path::new("addressType"),
            new.address_type.as_str(),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    errs
}

fn validate_endpointslice(slice: &EndpointSlice, valid_types: &[&str]) -> ErrorList {
    let mut errs = validate_object_meta(
        &slice.metadata,
        true,
        name_is_dns_subdomain,
        &Path::new("metadata"),
    );
    let at = slice.address_type.as_str();
    if at.is_empty() {
        errs.push(Error::required(&Path::new("addressType"), ""));
    } else if !valid_types.contains(&at) {
        errs.push(Error::not_supported(
            &Path::new("addressType"),
            at,
            valid_types,
        ));
    }
    errs.extend(validate_slice_endpoints(slice, &Path::new("endpoints")));
    errs.extend(validate_slice_ports(slice, &Path::new("ports")));
    errs
}

fn validate_slice_endpoints(slice: &EndpointSlice, path: &Path) -> ErrorList {
    let endpoints = &slice.endpoints;
    if endpoints.len() > MAX_ENDPOINTS {
        return vec![Error::too_many(path, endpoints.len(), MAX_ENDPOINTS)];
    }
    let mut errs = Vec::new();
    for (i, ep) in endpoints.iter().enumerate() {
        let p = path.index(i);
        let ap = p.child("addresses");
        if ep.addresses.is_empty() {
            errs.push(Error::required(&ap, "must contain at least 1 address"));
        } else if ep.addresses.len() > MAX_ADDRESSES {
            errs.push(Error::too_many(&ap, ep.addresses.len(), MAX_ADDRESSES));
        }
        for (j, addr) in ep.addresses.iter().enumerate() {
            let p = ap.index(j);
            match slice.address_type.as_str() {
                "IP" => errs.extend(validate_ip(addr, &p)),
                "IPv4" => {
                    errs.extend(validate_ipv4(addr, &p));
                    errs.extend(validate_non_special_ip(addr, &p));
                }
                "IPv6" => {
                    errs.extend(validate_ipv6(addr, &p));
                    errs.extend(validate_non_special_ip(addr, &p));
                }
                "FQDN" => errs.extend(validate_fully_qualified_domain_name(addr, &p)),
                _ => {}
            }
        }
        if let Some(node) = &ep.node_name {
            for m in name_is_dns_subdomain(node, false) {
                errs.push(Error::invalid(&p.child("nodeName"), node, m));
            }
        }
        let tp = p.child("deprecatedTopology");
        let topo = ep.deprecated_topology.as_ref();
        let n = topo.map_or(0, |t| t.len());
        if n > MAX_TOPOLOGY_LABELS {
            errs.push(Error::too_many(&tp, n, MAX_TOPOLOGY_LABELS));
        }
        errs.extend(validate_labels(topo, &tp));
        if let Some(h) = &ep.hostname {
            errs.extend(validate_dns1123_label(h, &p.child("hostname")));
        }
    }
    errs
}

fn validate_slice_ports(slice: &EndpointSlice, path: &Path) -> ErrorList {
    let ports = slice.ports.as_deref().unwrap_or_default();
    if ports.len() > MAX_PORTS {
        return vec![Error::too_many(path, ports.len(), MAX_PORTS)];
    }
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = s(&port.name);
        if !name.is_empty() {
            errs.extend(validate_dns1123_label(name, &p.child("name")));
        }
        if !names.insert(name.to_string()) {
            errs.push(Error::duplicate(&p.child("name"), name));
        }
        match &port.protocol {
            None => errs.push(Error::required(&p.child("protocol"), "")),
            Some(proto) if !SUPPORTED_PORT_PROTOCOLS.contains(&proto.as_str()) => {
                errs.push(Error::not_supported(
                    &p.child("protocol"),
                    proto.as_str(),
                    SUPPORTED_PORT_PROTOCOLS,
                ))
            }
            _ => {}
        }
        if let Some(app) = &port.app_protocol {
            errs.extend(validate_qualified_name(app, &p.child("appProtocol")));
        }
    }
    errs
}

#[cfg(test)]
mod tests;
