//! Invalid input through the real kubectl: every case prints Kubernetes' own message.

mod support;

use support::ApiServer;
