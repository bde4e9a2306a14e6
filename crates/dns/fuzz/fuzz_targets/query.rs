//! The DNS query path on arbitrary bytes: parse, answer from a small fixed cluster zone, encode
//! (over UDP and TCP), as the UDP workers do per packet; the response must be well formed.
//!
//! `cd crates/dns/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run query -- -max_total_time=60`

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use svcnet_dns::handler::Handler;
use svcnet_dns::testing::{check_query, fixture_handler};

static HANDLER: OnceLock<Handler> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    check_query(HANDLER.get_or_init(fixture_handler), data);
});
