//! Against the kernel, in a scratch network namespace: elements sent by a [`Batch`] read back
//! through `nft` exactly as nft's own script would have written them, a refused batch changes
//! nothing, and [`Socket::objects`] lists what the table holds.

use std::process::Command;

use svcnet_netns::testing::ScratchNetns;
use svcnet_nfnetlink::{encode, Batch, Data, Socket, Verdict, FAMILY_IPV4, SET_ANONYMOUS};

/// A scratch namespace (deleted when the test ends) and what the tests do in it.
struct Scratch(ScratchNetns);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        Scratch(ScratchNetns::new(&format!("nfnl-{tag}")).expect("create netns (needs root)"))
    }

    fn nft(&self, script: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", self.0.name(), "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(script.as_bytes())?;
                c.wait_with_output()
            })
            .expect("run nft");
        assert!(
            out.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn list(&self, what: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", self.0.name(), "nft", "list"])
            .args(what.split(' '))
            .output()
            .expect("nft list");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `f` with a socket opened inside the namespace.
    fn with_socket<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Socket) -> R + Send + 'static,
    ) -> R {
        self.0
            .run(move || f(&mut Socket::open().expect("netlink socket")))
            .unwrap()
    }
}

const TABLE: &str = "table ip t {
	map ids {
		type ipv4_addr . inet_proto . inet_service : mark
	}
	map routes {
		type inet_proto . inet_service : verdict
	}
	map eps {
		typeof ct mark . numgen inc mod 1 : ip daddr . tcp dport
	}
	set pairs {
		type ipv4_addr . ipv4_addr
	}
	chain c1 {
	}
	chain c2 {
		ip saddr { 10.0.0.1, 10.0.0.2 } drop
	}
}
";

fn key3(ip: [u8; 4], proto: u8, port: u16) -> Vec<u8> {
    let mut k = Vec::new();
    encode::ipv4(&mut k, ip.into());
    encode::proto(&mut k, proto);
    encode::port(&mut k, port);
    k
}

#[test]
fn elements_read_back_as_nft_writes_them() {
    let ns = Scratch::new("rb");
    ns.nft(TABLE);
    // The same elements through nft, into a twin table, for comparison.
    ns.nft(&TABLE.replace("table ip t", "table ip u"));
    ns.nft(
        "add element ip u ids { 10.96.0.1 . tcp . 80 : 7, 10.96.0.2 . udp . 53 : 4096 }
add element ip u routes { tcp . 30002 comment \"shield/the-bus\" : goto c1, udp . 30003 : jump c2, sctp . 9 : drop, tcp . 1 : accept }
add element ip u eps { 7 . 0 comment \"ns/svc:https\" : 10.244.1.2 . 8080, 7 . 1 comment \"ns/svc:https\" : 10.244.2.3 . 443 }
add element ip u pairs { 10.244.1.2 . 10.244.1.2 }
",
    );
    ns.with_socket(|s| {
        let mut b = Batch::new(FAMILY_IPV4, "t");
        let mark = |v: u32| {
            let mut d = Vec::new();
            encode::host32(&mut d, v);
            d
        };
        let (m7, m4096) = (mark(7), mark(4096));
        b.add_element(
            "ids",
            &key3([10, 96, 0, 1], 6, 80),
            Some(Data::Value(&m7)),
            None,
        );
        b.add_element(
            "ids",
            &key3([10, 96, 0, 2], 17, 53),
            Some(Data::Value(&m4096)),
            None,
        );
        let key2 = |proto: u8, port: u16| {
            let mut k = Vec::new();
            encode::proto(&mut k, proto);
            encode::port(&mut k, port);
            k
        };
        b.add_element(
            "routes",
            &key2(6, 30002),
            Some(Data::Verdict(Verdict::Goto("c1"))),
            Some("shield/the-bus"),
        );
        b.add_element(
            "routes",
            &key2(17, 30003),
            Some(Data::Verdict(Verdict::Jump("c2"))),
            None,
        );
        b.add_element(
            "routes",
            &key2(132, 9),
            Some(Data::Verdict(Verdict::Drop)),
            None,
        );
        b.add_element(
            "routes",
            &key2(6, 1),
            Some(Data::Verdict(Verdict::Accept)),
            None,
        );
        for (i, (ip, port)) in [([10, 244, 1, 2], 8080), ([10, 244, 2, 3], 443)]
            .into_iter()
            .enumerate()
        {
            let mut k = Vec::new();
            encode::host32(&mut k, 7);
            encode::host32(&mut k, i as u32);
            let mut d = Vec::new();
            encode::ipv4(&mut d, ip.into());
            encode::port(&mut d, port);
            b.add_element("eps", &k, Some(Data::Value(&d)), Some("ns/svc:https"));
        }
        let mut k = Vec::new();
        encode::ipv4(&mut k, [10, 244, 1, 2].into());
        encode::ipv4(&mut k, [10, 244, 1, 2].into());
        b.add_element("pairs", &k, None, None);
        s.commit(&b.finish()).expect("commit");
    });
    let ours = ns.list("table ip t");
    let theirs = ns.list("table ip u").replace("table ip u", "table ip t");
    assert_eq!(ours, theirs);
    assert!(ours.contains("udp . 30003 : jump c2"), "{ours}");
    // Comments as nft writes them (libnftnl's user data), so `nft list` shows them.
    assert!(
        ours.contains("tcp . 30002 comment \"shield/the-bus\" : goto c1"),
        "{ours}"
    );
}

#[test]
fn flush_and_refill_is_one_transaction() {
    let ns = Scratch::new("tx");
    ns.nft(TABLE);
    ns.nft("add element ip t pairs { 1.1.1.1 . 2.2.2.2 }");
    let pair = |a: [u8; 4], b: [u8; 4]| {
        let mut k = Vec::new();
        encode::ipv4(&mut k, a.into());
        encode::ipv4(&mut k, b.into());
        k
    };
    // Refused: an element for a set that does not exist. The flush must not have happened.
    let err = ns.with_socket(move |s| {
        let mut b = Batch::new(FAMILY_IPV4, "t");
        b.flush_set("pairs");
        b.add_element("pairs", &pair([3, 3, 3, 3], [4, 4, 4, 4]), None, None);
        b.add_element("missing", &[0, 0, 0, 0], None, None);
        s.commit(&b.finish()).unwrap_err().to_string()
    });
    assert!(err.contains("missing"), "{err}");
    let before = ns.list("set ip t pairs");
    assert!(before.contains("1.1.1.1 . 2.2.2.2"), "{before}");
    assert!(!before.contains("3.3.3.3"), "{before}");
    // Accepted: many elements (several messages), replacing the old one.
    ns.with_socket(move |s| {
        let mut b = Batch::new(FAMILY_IPV4, "t");
        b.flush_set("pairs");
        for i in 0..20_000u32 {
            let [_, x, y, z] = i.to_be_bytes();
            b.add_element("pairs", &pair([10, x, y, z], [10, x, y, z]), None, None);
        }
        assert!(b.len() > 64 * 1024);
        let f = b.finish();
        s.commit(&f).expect("commit");
        // A finished batch can be sent again (a retry): the same elements, still one each.
        s.commit(&f).expect("commit again");
    });
    let after = ns.list("set ip t pairs");
    assert!(!after.contains("1.1.1.1"), "flushed");
    // Every element, and the type line, has one " . ".
    assert_eq!(after.matches(" . ").count(), 20_000 + 1);
}

#[test]
fn objects_lists_chains_and_sets() {
    let ns = Scratch::new("obj");
    assert_eq!(
        ns.with_socket(|s| s.objects(FAMILY_IPV4, "t").unwrap()),
        Default::default(),
        "no table: nothing"
    );
    ns.nft(TABLE);
    ns.nft("table ip other {\n\tchain x {\n\t}\n}\nadd map ip t big { type ipv4_addr : mark; size 65536; }\n");
    let o = ns.with_socket(|s| s.objects(FAMILY_IPV4, "t").unwrap());
    assert_eq!(o.chains, ["c1", "c2"]);
    let named: Vec<&str> = o
        .sets
        .iter()
        .filter(|s| s.flags & SET_ANONYMOUS == 0)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(named, ["big", "eps", "ids", "pairs", "routes"]);
    assert!(
        o.sets.iter().any(|s| s.flags & SET_ANONYMOUS != 0),
        "c2's {{ .. }}"
    );
    let ids = o.sets.iter().find(|s| s.name == "ids").unwrap();
    assert_eq!((ids.key_len, ids.data_len), (12, 4));
    let big = o.sets.iter().find(|s| s.name == "big").unwrap();
    assert_eq!(big.size, Some(65536));
}
