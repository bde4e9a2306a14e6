//! TODO(helper): the endpoints controller.

use std::sync::Arc;

use crate::Context;

pub async fn run(ctx: Arc<Context>) {
    let _ = ctx;
}
