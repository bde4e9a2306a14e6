#![allow(dead_code)]
pub mod defaults {
    pub mod service {
        use k8s_openapi::api::core::v1::Service;
        pub fn default_service(_: &mut Service) {}
        pub fn init_ip_families(_: &mut Service, _: &[&str]) {}
        pub fn patch_allocated_values(_: &mut Service, _: &Service) {}
        pub fn drop_type_dependent_fields(_: &mut Service, _: &Service) {}
    }
    pub mod core {
        use k8s_openapi::api::core::v1::*;
        pub fn default_endpoints(_: &mut Endpoints) {}
        pub fn default_pod(_: &mut Pod) {}
        pub fn default_node(_: &mut Node) {}
        pub fn default_namespace(_: &mut Namespace) {}
    }
    pub mod discovery {
        pub fn default_endpointslice(_: &mut k8s_openapi::api::discovery::v1::EndpointSlice) {}
    }
    pub mod apps {
        use k8s_openapi::api::apps::v1::*;
        pub fn default_deployment(_: &mut Deployment) {}
        pub fn default_replicaset(_: &mut ReplicaSet) {}
    }
}
pub mod validation {
    use svcnet_api::field::ErrorList;
    pub mod service {
        use super::*;
        use k8s_openapi::api::core::v1::Service;
        pub fn validate_create(_: &Service) -> ErrorList {
            vec![]
        }
        pub fn validate_update(_: &Service, _: &Service) -> ErrorList {
            vec![]
        }
        pub fn validate_status_update(_: &Service, _: &Service) -> ErrorList {
            vec![]
        }
    }
    pub mod pod {
        use super::*;
        use k8s_openapi::api::core::v1::Pod;
        pub fn validate_create(_: &Pod) -> ErrorList {
            vec![]
        }
        pub fn validate_update(_: &Pod, _: &Pod) -> ErrorList {
            vec![]
        }
        pub fn validate_status_update(_: &Pod, _: &Pod) -> ErrorList {
            vec![]
        }
    }
    pub mod node {
        use super::*;
        use k8s_openapi::api::core::v1::Node;
        pub fn validate_create(_: &Node) -> ErrorList {
            vec![]
        }
        pub fn validate_update(_: &Node, _: &Node) -> ErrorList {
            vec![]
        }
        pub fn validate_status_update(_: &Node, _: &Node) -> ErrorList {
            vec![]
        }
    }
    pub mod namespace {
        use super::*;
        use k8s_openapi::api::core::v1::Namespace;
        pub fn validate_create(_: &Namespace) -> ErrorList {
            vec![]
        }
        pub fn validate_update(_: &Namespace, _: &Namespace) -> ErrorList {
            vec![]
        }
        pub fn validate_status_update(_: &Namespace, _: &Namespace) -> ErrorList {
            vec![]
        }
    }
    pub mod event {
        use super::*;
        use k8s_openapi::api::core::v1::Event;
        pub fn validate_create(_: &Event) -> ErrorList {
            vec![]
        }
        pub fn validate_update(_: &Event, _: &Event) -> ErrorList {
            vec![]
        }
    }
    pub mod endpoints {
        use super::*;
        use k8s_openapi::api::core::v1::Endpoints;
        use k8s_openapi::api::discovery::v1::EndpointSlice;
        pub fn validate_endpoints_create(_: &Endpoints) -> ErrorList {
            vec![]
        }
        pub fn validate_endpoints_update(_: &Endpoints, _: &Endpoints) -> ErrorList {
            vec![]
        }
        pub fn validate_endpointslice_create(_: &EndpointSlice) -> ErrorList {
            vec![]
        }
        pub fn validate_endpointslice_update(_: &EndpointSlice, _: &EndpointSlice) -> ErrorList {
            vec![]
        }
    }
    pub mod apps {
        use super::*;
        use k8s_openapi::api::apps::v1::*;
        pub fn validate_deployment_create(_: &Deployment) -> ErrorList {
            vec![]
        }
        pub fn validate_deployment_update(_: &Deployment, _: &Deployment) -> ErrorList {
            vec![]
        }
        pub fn validate_deployment_status_update(_: &Deployment, _: &Deployment) -> ErrorList {
            vec![]
        }
        pub fn validate_replicaset_create(_: &ReplicaSet) -> ErrorList {
            vec![]
        }
        pub fn validate_replicaset_update(_: &ReplicaSet, _: &ReplicaSet) -> ErrorList {
            vec![]
        }
        pub fn validate_replicaset_status_update(_: &ReplicaSet, _: &ReplicaSet) -> ErrorList {
            vec![]
        }
    }
}
