//! A container sends arbitrary datagrams to its network's DNS server: parsing one must never
//! panic, and an answer must echo the question it parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(q) = net::dns::parse_query(data) {
        let addrs = ["10.1.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let a = net::dns::answer(data, &q, &addrs);
        assert_eq!(a[..2], data[..2]);
        let _ = net::dns::servfail(data, &q);
    }
});
