//! End-to-end networking: bridge networks with DNS, isolation, connect/disconnect,
//! `--internal`, published ports (TCP and UDP, from the namespace's loopback and from another
//! "host"), `-P` and `port`, the `host`/`none`/`container:` modes, IPv6, bad input and crashes.
//!
//! Every test runs berth inside a network namespace of its own (`testutil::Berth`): no bridge,
//! veth, nftables rule or sysctl touches the host's namespace, and no packet leaves it.

use std::process::Output;

use testutil::{Berth, eventually, processes_with, stdout, wait_until};
use testutil::{NetnsGuard, contest_binary, describe};

fn contest_mount() -> String {
    format!("{}:/bin/contest:ro", contest_binary().display())
}

/// `berth run --rm ARGS` and its output, whatever the exit status.
fn run(b: &Berth, args: &[&str]) -> Output {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    b.cmd(&all)
}

fn ip_on(b: &Berth, network: &str, container: &str) -> String {
    b.inspect(
        &format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}"),
        container,
    )
}

/// Starts busybox httpd serving `/etc` (so `/hostname` names the container) on port 80.
fn web(b: &Berth, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["bb", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    b.ok(&args);
}

/// A shell command fetching `url` to stdout, giving up after 5 s. (Debian's busybox 1.35 `wget`
/// crashes with `-T`, hence `timeout`.)
fn wget(url: &str) -> String {
    format!("timeout 5 wget -q -O /tmp/body {url} && cat /tmp/body")
}

/// The same from the test's namespace, with the host's busybox (the body in the scratch dir).
fn host_wget(b: &Berth, url: &str) -> String {
    let body = b.scratch.join("body");
    format!(
        "busybox timeout 5 busybox wget -q -O {0} {url} && cat {0}",
        body.display()
    )
}

/// `GET url` from the test's namespace; the body on stdout.
fn host_get(b: &Berth, url: &str) -> Output {
    b.in_ns(&["sh", "-c", &host_wget(b, url)])
}

/// `wget` from a container on `network`; the body on stdout.
fn fetch_from(b: &Berth, network: &str, url: &str) -> Output {
    run(b, &["--network", network, "bb", "sh", "-c", &wget(url)])
}

/// Creates the dual-stack network `name`.
fn dual_stack(b: &Berth, name: &str, v4: &str, v6: &str) {
    b.ok(&[
        "network", "create", "--ipv6", "--subnet", v4, "--subnet", v6, name,
    ]);
}

/// Another "host": a second namespace joined to the test's by a veth pair, `here` (with `cidr`
/// and `extra` `ip addr` arguments) on the test's side, `there` (likewise) on the other.
fn peer_host(b: &Berth, here: (&str, &str), there: (&str, &str), extra: &[&str]) -> NetnsGuard {
    let peer = NetnsGuard::new();
    let link = b.in_ns(&[
        "ip",
        "link",
        "add",
        here.0,
        "type",
        "veth",
        "peer",
        "name",
        there.0,
        "netns",
        peer.name(),
    ]);
    assert!(link.status.success(), "{}", describe(&link));
    let mut addr = vec!["ip", "addr", "add", here.1, "dev", here.0];
    addr.extend_from_slice(extra);
    for argv in [addr, vec!["ip", "link", "set", here.0, "up"]] {
        let o = b.in_ns(&argv);
        assert!(o.status.success(), "{argv:?}: {}", describe(&o));
    }
    let mut addr = vec!["ip", "addr", "add", there.1, "dev", there.0];
    addr.extend_from_slice(extra);
    peer.ok(&addr);
    peer.ok(&["ip", "link", "set", there.0, "up"]);
    peer
}

/// Field `n` (1-based, as proc(5) numbers them; n >= 3) of `/proc/<pid>/stat`.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(n - 3).map(str::to_owned)
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// The processes whose parent is `parent`.
fn children(parent: String) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat_field(*p, 4).as_deref() == Some(parent.as_str()))
        .collect()
}

#[test]
fn user_network_names_and_aliases_resolve_and_reach() {
    let Some(b) = Berth::with_busybox("net-dns") else {
        return;
    };
    b.ok(&["network", "create", "--subnet", "10.91.0.0/24", "front"]);
    web(
        &b,
        "web",
        &[
            "--network",
            "front",
            "--network-alias",
            "www",
            "-h",
            "webhost",
        ],
    );
    let cm = contest_mount();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "echo",
        "--network",
        "front",
        "--network-alias",
        "udp-echo",
        "-v",
        &cm,
        "bb",
        "contest",
        "udp-echo",
        "9000",
    ]);
    // TCP by name and by alias.
    for name in ["web", "www"] {
        let url = format!("http://{name}/hostname");
        wait_until("web answers", || {
            fetch_from(&b, "front", &url).status.success()
        });
        assert_eq!(stdout(&fetch_from(&b, "front", &url)).trim(), "webhost");
    }
    // ICMP by name.
    let ping = run(
        &b,
        &[
            "--network",
            "front",
            "bb",
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            "web",
        ],
    );
    assert!(ping.status.success(), "ping web: {}", describe(&ping));
    // UDP by alias: the name resolved through the network's DNS, then one datagram.
    let script = "ip=$(nslookup udp-echo | awk '/^Address/ {a=$2} END {print a}'); contest udp-send $ip 9000 hi";
    let udp = || {
        run(
            &b,
            &["--network", "front", "-v", &cm, "bb", "sh", "-c", script],
        )
    };
    assert!(
        eventually(|| stdout(&udp()).contains("reply=echo:hi")),
        "udp by alias: {}",
        describe(&udp())
    );
    // The address the name resolves to is the one inspect reports; /etc/hosts names itself.
    let ip = ip_on(&b, "front", "web");
    let look = run(&b, &["--network", "front", "bb", "nslookup", "web"]);
    assert!(stdout(&look).contains(&ip), "{}", describe(&look));
    let hosts = stdout(&b.ok(&["exec", "web", "cat", "/etc/hosts"]));
    assert!(hosts.contains(&format!("{ip}\twebhost")), "{hosts}");
    let resolv = stdout(&b.ok(&["exec", "web", "cat", "/etc/resolv.conf"]));
    assert!(resolv.contains("nameserver 10.91.0.1"), "{resolv}");
}

#[test]
fn networks_are_isolated_until_connected() {
    let Some(b) = Berth::with_busybox("net-iso") else {
        return;
    };
    b.ok(&["network", "create", "--subnet", "10.92.1.0/24", "one"]);
    b.ok(&["network", "create", "--subnet", "10.92.2.0/24", "two"]);
    web(&b, "web", &["--network", "one"]);
    let ip = ip_on(&b, "one", "web");
    let url = format!("http://{ip}/hostname");
    wait_until("web answers on its network", || {
        fetch_from(&b, "one", &url).status.success()
    });
    b.ok(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "two",
        "bb",
        "sleep",
        "300",
    ]);
    let denied = b.cmd(&["exec", "other", "sh", "-c", &wget(&url)]);
    assert!(
        !denied.status.success(),
        "another network reached web: {}",
        describe(&denied)
    );
    let by_name = b.cmd(&["exec", "other", "nslookup", "web"]);
    assert!(
        !stdout(&by_name).contains(&ip),
        "web's name resolved on another network"
    );
    b.ok(&["network", "connect", "--alias", "again", "one", "other"]);
    let reached = b.cmd(&["exec", "other", "sh", "-c", &wget("http://web/hostname")]);
    assert!(
        reached.status.success(),
        "after connect: {}",
        describe(&reached)
    );
    let links = stdout(&b.ok(&["exec", "other", "ip", "-o", "link"]));
    assert!(links.contains("eth1"), "{links}");
    b.ok(&["network", "disconnect", "one", "other"]);
    let links = stdout(&b.ok(&["exec", "other", "ip", "-o", "link"]));
    assert!(!links.contains("eth1"), "{links}");
    let denied = b.cmd(&["exec", "other", "sh", "-c", &wget(&url)]);
    assert!(
        !denied.status.success(),
        "after disconnect: {}",
        describe(&denied)
    );
    // The DNS server of `two` was started by other's monitor; once nobody is on `two` it ends,
    // and being nobody's child it leaves no zombie in that monitor.
    let two = stdout(&b.ok(&["network", "inspect", "-f", "{{.Id}}", "two"]))
        .trim()
        .to_owned();
    let init: u32 = b.inspect("{{.State.Pid}}", "other").parse().expect("pid");
    let monitor = stat_field(init, 4).expect("other's monitor");
    b.ok(&["network", "disconnect", "two", "other"]);
    wait_until("the DNS server of two ends", || {
        !processes_with("dns-serve")
            .iter()
            .any(|p| cmdline(*p).contains(&two))
    });
    let zombies: Vec<String> = children(monitor)
        .into_iter()
        .filter(|p| stat_field(*p, 3).as_deref() == Some("Z"))
        .map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default())
        .collect();
    assert!(
        zombies.is_empty(),
        "zombies under other's monitor: {zombies:?}"
    );
    // A network with a container cannot go; without, it can.
    let busy = b.cmd(&["network", "rm", "one"]);
    assert_eq!(busy.status.code(), Some(1), "{}", describe(&busy));
    b.ok(&["rm", "-f", "web", "other"]);
    b.ok(&["network", "rm", "one", "two"]);
    b.assert_consistent();
}

#[test]
fn internal_network_has_no_way_out() {
    let Some(b) = Berth::with_busybox("net-internal") else {
        return;
    };
    b.ok(&["network", "create", "--subnet", "10.93.1.0/24", "open"]);
    b.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.93.2.0/24",
        "closed",
    ]);
    web(&b, "web", &["--network", "open"]);
    let url = format!("http://{}/hostname", ip_on(&b, "open", "web"));
    wait_until("web answers", || {
        fetch_from(&b, "open", &url).status.success()
    });
    let routes = stdout(&run(&b, &["--network", "closed", "bb", "ip", "route"]));
    assert!(!routes.contains("default"), "{routes}");
    let out = fetch_from(&b, "closed", &url);
    assert!(
        !out.status.success(),
        "internal network got out: {}",
        describe(&out)
    );
    // Inside the internal network containers still reach each other.
    web(&b, "inner", &["--network", "closed"]);
    let inner = format!("http://{}/hostname", ip_on(&b, "closed", "inner"));
    wait_until("inner answers", || {
        fetch_from(&b, "closed", &inner).status.success()
    });
}

#[test]
fn published_port_answers_on_loopback_and_from_another_host() {
    let Some(b) = Berth::with_busybox("net-publish") else {
        return;
    };
    web(
        &b,
        "web",
        &["--network", "bridge", "-p", "8080:80", "-h", "published"],
    );
    let get = |ns: &Berth, url: &str| host_get(ns, url);
    wait_until("loopback answers", || {
        get(&b, "http://127.0.0.1:8080/hostname").status.success()
    });
    assert_eq!(
        stdout(&get(&b, "http://127.0.0.1:8080/hostname")).trim(),
        "published"
    );
    // Another host: a second namespace joined to the test's by a veth pair.
    let pid = std::process::id();
    let (here, there) = (format!("bt-{pid}a"), format!("bt-{pid}b"));
    let peer = peer_host(&b, (&here, "192.0.2.1/24"), (&there, "192.0.2.2/24"), &[]);
    let from_peer = || {
        peer.command("sh")
            .args(["-c", &host_wget(&b, "http://192.0.2.1:8080/hostname")])
            .output()
            .unwrap()
    };
    assert!(
        eventually(|| from_peer().status.success()),
        "{}",
        describe(&from_peer())
    );
    assert_eq!(stdout(&from_peer()).trim(), "published");
    // Gone with the container: the port answers no more, the rule is removed.
    b.ok(&["rm", "-f", "web"]);
    assert!(!get(&b, "http://127.0.0.1:8080/hostname").status.success());
    let rules = stdout(&b.in_ns(&["nft", "list", "chain", "inet", "berth", "publish"]));
    assert!(!rules.contains("dnat"), "{rules}");
    b.assert_consistent();
}

#[test]
fn publish_all_picks_free_ports_and_port_reports_them() {
    let Some(b) = Berth::with_busybox("net-publish-all") else {
        return;
    };
    b.ok(&["network", "create", "net"]);
    web(
        &b,
        "web",
        &[
            "--network",
            "net",
            "-P",
            "--expose",
            "80",
            "-p",
            "127.0.0.1::80/udp",
        ],
    );
    let port = stdout(&b.ok(&["port", "web", "80"]));
    let host_port = port.trim().rsplit(':').next().unwrap().to_owned();
    assert!(host_port.parse::<u16>().unwrap() >= 32768, "{port}");
    let all = stdout(&b.ok(&["port", "web"]));
    assert!(all.contains("80/tcp -> 0.0.0.0:"), "{all}");
    assert!(all.contains("80/udp -> 127.0.0.1:"), "{all}");
    let url = format!("http://127.0.0.1:{host_port}/hostname");
    wait_until("the picked port answers", || {
        host_get(&b, &url).status.success()
    });
    let ps = b.stdout(&["ps"]);
    assert!(ps.contains(&format!("0.0.0.0:{host_port}->80/tcp")), "{ps}");
    // A second container gets another port.
    web(&b, "web2", &["--network", "net", "-P", "--expose", "80"]);
    let second = stdout(&b.ok(&["port", "web2", "80"]));
    assert_ne!(second, port);
}

#[test]
fn udp_port_is_published() {
    let Some(b) = Berth::with_busybox("net-udp") else {
        return;
    };
    let cm = contest_mount();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "echo",
        "--network",
        "bridge",
        "-p",
        "5353:9000/udp",
        "-v",
        &cm,
        "bb",
        "contest",
        "udp-echo",
        "9000",
    ]);
    let contest = contest_binary().to_string_lossy().into_owned();
    wait_until("udp echo answers through the published port", || {
        stdout(&b.in_ns(&[&contest, "udp-send", "127.0.0.1", "5353", "ping"]))
            .contains("reply=echo:ping")
    });
}

#[test]
fn host_none_and_container_modes() {
    let Some(b) = Berth::with_busybox("net-modes") else {
        return;
    };
    let none = stdout(&run(&b, &["--network", "none", "bb", "ip", "-o", "link"]));
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("lo:"), "{none}");
    // Its loopback is up, as Docker's: a server on 127.0.0.1 answers inside it.
    assert!(none.contains(",UP"), "{none}");
    let local = stdout(&run(
        &b,
        &[
            "--network",
            "none",
            "bb",
            "sh",
            "-c",
            "httpd -p 127.0.0.1:80 -h /etc && wget -qO- http://127.0.0.1/hostname >/dev/null && echo served",
        ],
    ));
    assert_eq!(local.trim(), "served", "{local}");
    let dummy = format!("bt-{}d", std::process::id());
    let peer_end = format!("bt-{}e", std::process::id());
    let o = b.in_ns(&[
        "ip", "link", "add", &dummy, "type", "veth", "peer", "name", &peer_end,
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let host = stdout(&run(&b, &["--network", "host", "bb", "ip", "-o", "link"]));
    assert!(host.contains(&dummy), "{host}");
    // container: shares the other's namespace, localhost included.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "bridge",
        "-h",
        "srvhost",
        "bb",
        "httpd",
        "-f",
        "-p",
        "127.0.0.1:8000",
        "-h",
        "/etc",
    ]);
    let local = || {
        run(
            &b,
            &[
                "--network",
                "container:srv",
                "bb",
                "sh",
                "-c",
                &wget("http://127.0.0.1:8000/hostname"),
            ],
        )
    };
    wait_until("localhost is shared", || local().status.success());
    assert_eq!(stdout(&local()).trim(), "srvhost");
    let joined = stdout(&run(
        &b,
        &["--network", "container:srv", "bb", "ip", "-o", "addr"],
    ));
    assert!(joined.contains(&ip_on(&b, "bridge", "srv")), "{joined}");
}

#[test]
fn dual_stack_network_pings_over_ipv6() {
    let Some(b) = Berth::with_busybox("net-v6") else {
        return;
    };
    dual_stack(&b, "dual", "10.94.0.0/24", "fd00:94::/64");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "target",
        "--network",
        "dual",
        "bb",
        "sleep",
        "300",
    ]);
    let v6 = b.inspect(
        "{{.NetworkSettings.Networks.dual.GlobalIPv6Address}}",
        "target",
    );
    assert!(v6.starts_with("fd00:94::"), "{v6}");
    // By address, then by name through the network's DNS.
    for target in [v6.as_str(), "target"] {
        let ping = run(
            &b,
            &[
                "--network",
                "dual",
                "bb",
                "ping",
                "-6",
                "-c",
                "1",
                "-W",
                "3",
                target,
            ],
        );
        assert!(ping.status.success(), "{target}: {}", describe(&ping));
    }
}

#[test]
fn bad_input_is_one_line_and_changes_nothing() {
    let Some(b) = Berth::with_busybox("net-bad") else {
        return;
    };
    b.ok(&["network", "create", "--subnet", "10.95.0.0/16", "base"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "--network",
        "base",
        "-p",
        "8080:80",
        "bb",
        "sleep",
        "300",
    ]);
    let networks = stdout(&b.ok(&["network", "ls", "-q"]));
    let containers = b.containers();
    let cases: &[&[&str]] = &[
        &["network", "create", "--subnet", "10.95.1.0/24", "overlap"],
        &[
            "network",
            "create",
            "--subnet",
            "10.96.0.0/24",
            "--gateway",
            "10.97.0.1",
            "gw",
        ],
        &["network", "create", "--subnet", "10.96.0.1/24", "host-bits"],
        &["network", "create", "base"],
        &[
            "run",
            "-d",
            "--network",
            "base",
            "-p",
            "8080:80",
            "bb",
            "true",
        ],
        &["run", "-d", "--network", "nosuchnet", "bb", "true"],
        &[
            "run",
            "-d",
            "--network",
            "base",
            "-p",
            "80:80/sctp",
            "bb",
            "true",
        ],
        &[
            "run",
            "-d",
            "--network",
            "base",
            "-p",
            "1-3:80-81",
            "bb",
            "true",
        ],
        &[
            "run",
            "-d",
            "--network",
            "base",
            "--ip",
            "10.99.0.5",
            "bb",
            "true",
        ],
        &["network", "connect", "nosuchnet", "holder"],
    ];
    for args in cases {
        let out = b.cmd(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", describe(&out));
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("berth: "), "{args:?}: {err}");
    }
    assert_eq!(stdout(&b.ok(&["network", "ls", "-q"])), networks);
    assert_eq!(b.containers(), containers);
    b.assert_consistent();
}

/// What a container's networking can leave in the test's namespace: veths, bridge ports,
/// published-port rules.
fn network_leftovers(b: &Berth) -> String {
    let links = stdout(&b.in_ns(&["ip", "-o", "link", "show", "type", "veth"]));
    let rules = stdout(&b.in_ns(&["nft", "list", "chain", "inet", "berth", "publish"]));
    let mut out = String::new();
    if !links.trim().is_empty() {
        out.push_str(&format!("veths: {links} "));
    }
    if rules.contains("dnat") {
        out.push_str(&format!("rules: {rules}"));
    }
    out
}

#[test]
fn killed_cli_monitor_and_connect_leave_nothing_after_system_check() {
    let Some(b) = Berth::with_busybox("net-crash") else {
        return;
    };
    b.ok(&["network", "create", "--subnet", "10.98.0.0/24", "crashnet"]);
    let victim = [
        "run",
        "-d",
        "--name",
        "victim",
        "--network",
        "crashnet",
        "-p",
        "9090:80",
        "bb",
        "sleep",
        "300",
    ];
    // The CLI killed right after it recorded the container, its address and its port.
    let out = b
        .command(&victim)
        .env(CRASH_AT, "create-after-record")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    b.ok(&["system", "check"]);
    b.assert_consistent();
    // The record went (its bundle never existed) and with it the lease: the port is free.
    let id = stdout(&b.ok(&victim)).trim().to_owned();
    assert!(
        !network_leftovers(&b).is_empty(),
        "a running container has a veth and a rule"
    );
    // The monitor killed while the container runs.
    let monitors = processes_with(&id);
    assert_eq!(monitors.len(), 1, "one monitor: {monitors:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &monitors[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until("the monitor is gone", || processes_with(&id).is_empty());
    let check = b.cmd(&["system", "check"]);
    assert!(
        stdout(&check).contains("monitor is gone"),
        "{}",
        describe(&check)
    );
    // The repair killed the container; the kernel deletes its veth when it tears the network
    // namespace down, which it does asynchronously after the last process is gone.
    wait_until("the dead container's veth and rules are gone", || {
        network_leftovers(&b).is_empty()
    });
    b.assert_consistent();
    // A connect killed after it recorded the endpoint, before the veth.
    b.ok(&["rm", "-f", "victim"]);
    b.ok(&victim);
    b.ok(&["network", "create", "--subnet", "10.98.1.0/24", "second"]);
    let out = b
        .command(&["network", "connect", "second", "victim"])
        .env(CRASH_AT, "network-connect-after-record")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", describe(&out));
    let check = b.cmd(&["system", "check"]);
    assert!(
        stdout(&check).contains("no interface on it"),
        "{}",
        describe(&check)
    );
    b.assert_consistent();
    let eps = b.stdout(&["network", "inspect", "-f", "{{json .Containers}}", "second"]);
    assert_eq!(eps.trim(), "{}");
    // Re-running works, and removal leaves nothing.
    b.ok(&["network", "connect", "second", "victim"]);
    b.ok(&["rm", "-f", "victim"]);
    wait_until("the removed container's veths and rules are gone", || {
        network_leftovers(&b).is_empty()
    });
    b.assert_consistent();
}

const CRASH_AT: &str = "BERTH_TEST_CRASH_AT";

#[test]
fn network_options_files_and_prune() {
    let Some(b) = Berth::with_busybox("net-opts") else {
        return;
    };
    let bridge = format!("bt-{}o", std::process::id());
    let opt = format!("com.docker.network.bridge.name={bridge}");
    b.ok(&[
        "network",
        "create",
        "--subnet",
        "10.97.0.0/24",
        "--ip-range",
        "10.97.0.128/25",
        "--label",
        "team=net",
        "-o",
        &opt,
        "-o",
        "com.docker.network.driver.mtu=1400",
        "tuned",
    ]);
    let link = stdout(&b.in_ns(&["ip", "-o", "link", "show", &bridge]));
    assert!(link.contains("mtu 1400"), "{link}");
    let out = run(
        &b,
        &[
            "--network",
            "tuned",
            "--add-host",
            "db.example:10.97.0.9",
            "--dns-search",
            "corp.example",
            "bb",
            "sh",
            "-c",
            "ip -o addr show eth0; ip -o link show eth0; cat /etc/hosts /etc/resolv.conf",
        ],
    );
    let text = stdout(&out);
    assert!(text.contains("inet 10.97.0.128/24"), "{}", describe(&out));
    assert!(text.contains("mtu 1400"), "{text}");
    assert!(text.contains("10.97.0.9\tdb.example"), "{text}");
    assert!(text.contains("search corp.example"), "{text}");
    assert!(text.contains("nameserver 10.97.0.1"), "{text}");
    let none = stdout(&run(
        &b,
        &[
            "--network",
            "none",
            "--dns",
            "10.0.0.53",
            "bb",
            "cat",
            "/etc/resolv.conf",
        ],
    ));
    assert!(none.contains("nameserver 10.0.0.53"), "{none}");
    let label = b.stdout(&[
        "network",
        "inspect",
        "-f",
        "{{.Labels.team}} {{.Internal}} {{.Driver}}",
        "tuned",
    ]);
    assert_eq!(label.trim(), "net false bridge");
    let ls = b.stdout(&["network", "ls", "--format", "{{.Name}}"]);
    for n in ["bridge", "tuned", "host", "none"] {
        assert!(ls.lines().any(|l| l == n), "{ls}");
    }
    let pruned = b.stdout(&["network", "prune", "-f"]);
    assert!(pruned.contains("tuned"), "{pruned}");
    assert!(b.in_ns(&["ip", "link", "show", &bridge]).stdout.is_empty());
    let missing = b.cmd(&["network", "inspect", "tuned"]);
    assert_eq!(missing.status.code(), Some(1));
    b.assert_consistent();
}

#[test]
fn containers_reach_their_own_and_siblings_published_ports_through_a_host_address() {
    let Some(b) = Berth::with_busybox("net-hairpin") else {
        return;
    };
    // A host address that is not the bridge's: one end of a veth pair in the test namespace.
    let (here, there) = (testutil::unique_link_name(), testutil::unique_link_name());
    for argv in [
        vec![
            "ip", "link", "add", &here, "type", "veth", "peer", "name", &there,
        ],
        vec!["ip", "addr", "add", "198.51.100.1/24", "dev", &here],
        vec!["ip", "link", "set", &here, "up"],
        vec!["ip", "link", "set", &there, "up"],
    ] {
        let o = b.in_ns(&argv);
        assert!(o.status.success(), "{argv:?}: {}", describe(&o));
    }
    b.ok(&["network", "create", "--subnet", "10.99.0.0/24", "hairnet"]);
    web(
        &b,
        "hp",
        &["--network", "hairnet", "-p", "8080:80", "-h", "hairpin"],
    );
    web(&b, "dflt", &["-p", "8081:80", "-h", "on-default"]);
    let url = "http://198.51.100.1:8080/hostname";
    // A sibling on the same network, through the host address and through the gateway.
    wait_until("a sibling reaches the published port", || {
        fetch_from(&b, "hairnet", url).status.success()
    });
    assert_eq!(stdout(&fetch_from(&b, "hairnet", url)).trim(), "hairpin");
    let gw = stdout(&fetch_from(&b, "hairnet", "http://10.99.0.1:8080/hostname"));
    assert_eq!(gw.trim(), "hairpin");
    // The container itself, through its own published port.
    let own = b.cmd(&["exec", "hp", "sh", "-c", &wget(url)]);
    assert_eq!(stdout(&own).trim(), "hairpin", "{}", describe(&own));
    // The same on the default bridge (no name resolution there, the address is what counts).
    let dflt = fetch_from(&b, "bridge", "http://198.51.100.1:8081/hostname");
    assert_eq!(stdout(&dflt).trim(), "on-default", "{}", describe(&dflt));
    let own = b.cmd(&[
        "exec",
        "dflt",
        "sh",
        "-c",
        &wget("http://198.51.100.1:8081/hostname"),
    ]);
    assert_eq!(stdout(&own).trim(), "on-default", "{}", describe(&own));
    // Traffic between two containers of one bridge is not tracked; to the gateway it is.
    let raw = stdout(&b.in_ns(&["nft", "list", "chain", "inet", "berth", "raw"]));
    assert!(
        raw.contains("ip saddr 10.99.0.0/24 ip daddr 10.99.0.0/24 ip daddr != 10.99.0.1 notrack"),
        "{raw}"
    );
    b.ok(&["rm", "-f", "hp", "dflt"]);
    b.ok(&["network", "rm", "hairnet"]);
    b.assert_consistent();
}

#[test]
fn network_ls_filters_and_formats() {
    let Some(b) = Berth::with_busybox("net-ls") else {
        return;
    };
    b.ok(&["network", "create", "--label", "tier=front", "front"]);
    let back = b.stdout(&["network", "create", "--label", "tier=back", "back"]);
    b.ok(&[
        "create",
        "--name",
        "user",
        "--network",
        "front",
        "bb",
        "true",
    ]);
    let names = |filters: &[&str]| {
        let mut args = vec!["network", "ls", "--format", "{{.Name}}"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        let mut got: Vec<String> = b.stdout(&args).lines().map(str::to_owned).collect();
        got.sort_unstable();
        got
    };
    assert_eq!(names(&[]), ["back", "bridge", "front", "host", "none"]);
    assert_eq!(names(&["type=custom"]), ["back", "front"]);
    assert_eq!(names(&["type=builtin"]), ["bridge", "host", "none"]);
    assert_eq!(names(&["name=ron", "name=ack"]), ["back", "front"]);
    assert_eq!(names(&["id=", "label=tier=back"]), ["back"]);
    assert_eq!(names(&[&format!("id={}", &back.trim()[..10])]), ["back"]);
    assert_eq!(names(&["driver=null"]), ["none"]);
    assert_eq!(names(&["label=tier", "dangling=true"]), ["back"]);
    assert_eq!(
        names(&["dangling=false", "type=custom"]),
        ["front"],
        "a created container holds its network"
    );
    // --format fields and -q.
    let row = b.stdout(&[
        "network",
        "ls",
        "-f",
        "name=back",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{.IPv6}} {{.Labels}}",
    ]);
    assert_eq!(row, "back bridge local false false tier=back\n");
    let quiet = b.stdout(&["network", "ls", "-q", "--no-trunc", "-f", "name=back"]);
    assert_eq!(quiet.trim(), back.trim());
    // A bad filter: one line, nothing listed.
    for bad in ["colour=red", "type=other", "dangling=maybe"] {
        let out = b.cmd(&["network", "ls", "--filter", bad]);
        assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
        assert!(out.stdout.is_empty(), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("berth: ") && err.contains(bad) && err.lines().count() == 1,
            "{err}"
        );
    }
}

#[test]
fn ipv6_published_ports_answer_another_host_over_ipv6() {
    let Some(b) = Berth::with_busybox("net-pub6") else {
        return;
    };
    dual_stack(&b, "dual6", "10.93.0.0/24", "fd00:93::/64");
    // Another host on IPv6: a second namespace joined to the test's by a veth pair.
    let (here, there) = (testutil::unique_link_name(), testutil::unique_link_name());
    let peer = peer_host(
        &b,
        (&here, "fd00:92::1/64"),
        (&there, "fd00:92::2/64"),
        &["nodad"],
    );
    // Any address (both families) and one IPv6 address only.
    web(
        &b,
        "web6",
        &[
            "--network",
            "dual6",
            "-p",
            "8080:80",
            "-p",
            "[fd00:92::1]:8081:80",
            "-h",
            "six",
        ],
    );
    let from_peer = |url: &str| {
        peer.command("sh")
            .args(["-c", &host_wget(&b, url)])
            .output()
            .unwrap()
    };
    for url in [
        "http://[fd00:92::1]:8080/hostname",
        "http://[fd00:92::1]:8081/hostname",
    ] {
        assert!(
            eventually(|| from_peer(url).status.success()),
            "{url}: {}",
            describe(&from_peer(url))
        );
        assert_eq!(stdout(&from_peer(url)).trim(), "six", "{url}");
    }
    let ports = b.stdout(&["port", "web6", "80"]);
    assert_eq!(ports, "0.0.0.0:8080\n[fd00:92::1]:8081\n");
    // The IPv6 address is taken for 8081 now, and 8080 on any address.
    let taken = b.cmd(&[
        "create",
        "--network",
        "dual6",
        "-p",
        "[fd00:92::1]:8080:80",
        "bb",
    ]);
    assert_eq!(taken.status.code(), Some(125), "{}", describe(&taken));
    let err = String::from_utf8_lossy(&taken.stderr);
    assert!(err.contains("[fd00:92::1]:8080"), "{err}");
    // Refused: the IPv6 loopback (the kernel does not forward it), an IPv6 address on a network
    // without IPv6, an unbracketed IPv6 address.
    for (args, why) in [
        (
            vec!["--network", "dual6", "-p", "[::1]:8090:80"],
            "loopback",
        ),
        (vec!["-p", "[fd00:92::1]:8091:80"], "IPv6"),
        (vec!["-p", "fd00:92::1:8092:80"], "brackets"),
    ] {
        let mut all = vec!["create"];
        all.extend(args);
        all.push("bb");
        let out = b.cmd(&all);
        assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why) && err.lines().count() == 1, "{err}");
    }
    assert_eq!(b.containers().len(), 1, "nothing but web6 was created");
    b.ok(&["rm", "-f", "web6"]);
    assert!(
        !from_peer("http://[fd00:92::1]:8080/hostname")
            .status
            .success()
    );
    b.assert_consistent();
}

/// Bytes received and sent by the namespace's interface `dev`.
fn link_bytes(b: &Berth, dev: &str) -> (u64, u64) {
    let out = stdout(&b.in_ns(&["ip", "-j", "-s", "link", "show", "dev", dev]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let stat = |dir: &str| v[0]["stats64"][dir]["bytes"].as_u64().unwrap_or(0);
    (stat("rx"), stat("tx"))
}

/// The hardware address of the namespace's interface `dev`.
fn link_mac(b: &Berth, dev: &str) -> String {
    let out = stdout(&b.in_ns(&["ip", "-j", "link", "show", "dev", dev]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v[0]["address"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn frames_between_containers_of_a_network_skip_the_bridge() {
    let Some(b) = Berth::with_busybox("net-fast") else {
        return;
    };
    b.ok(&["network", "create", "--subnet", "10.97.0.0/24", "fast"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&stdout(&b.ok(&["network", "inspect", "fast"]))).unwrap_or_default();
    let bridge = inspect[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    web(&b, "web", &["--network", "fast"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "fast",
        "bb",
        "sleep",
        "300",
    ]);
    // The bridge keeps the address it was made with (the gateway's), whatever ports come.
    let gateway_mac = link_mac(&b, &bridge);
    assert_eq!(gateway_mac, "02:42:0a:61:00:01", "bridge {bridge}");
    let port = |name: &str| format!("bv{}0", &b.inspect("{{.Id}}", name)[..10]);
    let (web_port, cli_port) = (port("web"), port("cli"));
    for p in [&web_port, &cli_port] {
        let filters = stdout(&b.in_ns(&["tc", "filter", "show", "dev", p, "ingress"]));
        assert!(filters.contains("berth_fwd"), "{p}: {filters}");
    }
    b.ok(&[
        "exec",
        "web",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/etc/big",
        "bs=1024",
        "count=4096",
    ]);
    wait_until("web answers", || {
        b.cmd(&["exec", "cli", "sh", "-c", &wget("http://web/hostname")])
            .status
            .success()
    });
    let (web_rx0, _) = link_bytes(&b, &web_port);
    let (_, cli_tx0) = link_bytes(&b, &cli_port);
    let got = b.ok(&[
        "exec",
        "cli",
        "sh",
        "-c",
        &format!("{} | wc -c", wget("http://web/big")),
    ]);
    assert_eq!(stdout(&got).trim(), "4194304");
    let (web_rx1, _) = link_bytes(&b, &web_port);
    let (_, cli_tx1) = link_bytes(&b, &cli_port);
    // The 4 MiB left web through its port; the bridge did not pass them on to cli's port.
    assert!(
        web_rx1 - web_rx0 > 4_000_000,
        "web sent {}",
        web_rx1 - web_rx0
    );
    assert!(
        cli_tx1 - cli_tx0 < 500_000,
        "the bridge sent cli {}",
        cli_tx1 - cli_tx0
    );
    // Containers joining later reach and are reached, and the gateway (DNS) still answers at
    // once: its address did not move with the new ports.
    for n in ["web2", "web3", "web4"] {
        web(&b, n, &["--network", "fast"]);
    }
    assert_eq!(link_mac(&b, &bridge), gateway_mac);
    let look = b.ok(&["exec", "cli", "nslookup", "web4"]);
    assert!(stdout(&look).contains("10.97.0."), "{}", describe(&look));
    for n in ["web2", "web3", "web4"] {
        let url = format!("http://{n}/hostname");
        wait_until("a later web answers", || {
            b.cmd(&["exec", "web", "sh", "-c", &wget(&url)])
                .status
                .success()
        });
    }
    // Nothing of the path outlives the containers.
    b.ok(&["rm", "-f", "web", "web2", "web3", "web4", "cli"]);
    assert_eq!(network_leftovers(&b), "");
}
