//! TODO(helper): a core/v1 Event recorder (kubectl describe shows these).

use kube::Client;

pub struct Recorder {
    #[allow(dead_code)]
    client: Client,
    #[allow(dead_code)]
    component: String,
}

impl Recorder {
    pub fn new(client: Client, component: &str) -> Self {
        Recorder {
            client,
            component: component.to_string(),
        }
    }
}
