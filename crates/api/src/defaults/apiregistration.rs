//! apiregistration.k8s.io/v1 defaults (kube-aggregator's `SetDefaults_ServiceReference`): a
//! Service reference's port is 443.

use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;

pub fn default_api_service(s: &mut APIService) {
    if let Some(svc) = s.spec.as_mut().and_then(|spec| spec.service.as_mut()) {
        svc.port.get_or_insert(443);
    }
}
