//! Process attributes: hostname and domainname, sysctls, rlimits, capabilities, no_new_privs,
//! oomScoreAdj, umask, user and groups, LSM labels, personality, I/O priority, scheduler.

use serde_json::json;

use super::common::{bundle, cap_mask, contest_any, create_fails, info, run_ok};

#[test]
fn hostname_and_domainname() {
    if !testutil::require_root() {
        return;
    }
    let kv = info(|s| {
        s["hostname"] = json!("berth-host");
        s["domainname"] = json!("berth.example");
    });
    assert_eq!(kv["hostname"], "berth-host");
    assert_eq!(kv["domainname"], "berth.example");
    // The host's names are untouched.
    let host = rustix::system::uname();
    assert_ne!(host.nodename().to_bytes(), b"berth-host");
}

#[test]
fn namespaced_sysctls_are_set_inside() {
    if !testutil::require_root() {
        return;
    }
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let out = sh(
        "for k in net.ipv4.ip_forward net.ipv4.ping_group_range kernel.shmmni fs.mqueue.msg_max; do \
         /bin/contest sysctl $k; done",
        |s| {
            s["linux"]["sysctl"] = json!({
                "net.ipv4.ip_forward": "1",
                "net.ipv4.ping_group_range": "0 2147483647",
                "kernel.shmmni": "1234",
                "fs.mqueue.msg_max": "77",
            });
        },
    );
    let kv = testutil::parse_kv(&out);
    assert_eq!(kv["net.ipv4.ip_forward"], "1");
    assert_eq!(kv["net.ipv4.ping_group_range"], "0\t2147483647");
    assert_eq!(kv["kernel.shmmni"], "1234");
    assert_eq!(kv["fs.mqueue.msg_max"], "77");
    // The host's network namespace did not change.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default(),
        host_forward
    );
}

fn sh(script: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    super::common::sh(script, edit)
}

#[test]
fn a_non_namespaced_sysctl_is_refused_at_create() {
    if !testutil::require_root() {
        return;
    }
    let b = bundle(&["/bin/true"], |s| {
        s["linux"]["sysctl"] = json!({ "vm.swappiness": "10" });
    });
    let err = create_fails(&b, "linux.sysctl.vm.swappiness");
    assert!(err.contains("not a namespaced sysctl"), "{err}");
}

#[test]
fn a_sysctl_without_its_namespace_is_refused_at_create() {
    if !testutil::require_root() {
        return;
    }
    let b = bundle(&["/bin/true"], |s| {
        s["linux"]["namespaces"] = json!([{ "type": "pid" }, { "type": "mount" }]);
        s["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1" });
    });
    let err = create_fails(&b, "linux.sysctl.net.ipv4.ip_forward");
    assert!(err.contains("needs a net namespace"), "{err}");
}

#[test]
fn rlimits_are_set() {
    if !testutil::require_root() {
        return;
    }
    let kv = info(|s| {
        s["process"]["rlimits"] = json!([
            { "type": "RLIMIT_NOFILE", "soft": 100, "hard": 200 },
            { "type": "RLIMIT_CORE", "soft": 0, "hard": 0 },
            { "type": "RLIMIT_NPROC", "soft": 300, "hard": 400 },
            { "type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192 },
        ]);
    });
    assert_eq!(kv["rlimit.NOFILE"], "100:200");
    assert_eq!(kv["rlimit.CORE"], "0:0");
    assert_eq!(kv["rlimit.NPROC"], "300:400");
    assert_eq!(kv["rlimit.MSGQUEUE"], "4096:8192");
}

#[test]
fn an_rlimit_above_the_hard_limit_is_refused_naming_it() {
    if !testutil::require_root() {
        return;
    }
    // This machine's root lacks CAP_SYS_RESOURCE, so no hard limit can be raised.
    let cur = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let Some(hard) = cur.maximum else {
        eprintln!("skipped: RLIMIT_NOFILE is unlimited here");
        return;
    };
    let has_sys_resource = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|m| m & (1 << 24) != 0);
    if has_sys_resource {
        eprintln!("skipped: this process may raise hard limits");
        return;
    }
    let b = bundle(&["/bin/true"], |s| {
        s["process"]["rlimits"] =
            json!([{ "type": "RLIMIT_NOFILE", "soft": 10, "hard": hard + 1 }]);
    });
    let err = create_fails(&b, "process.rlimits[0]");
    assert!(err.contains("RLIMIT_NOFILE"), "{err}");
    assert!(err.contains("CAP_SYS_RESOURCE"), "{err}");
}

// Capability numbers (linux/capability.h).
const CHOWN: u32 = 0;
const KILL: u32 = 5;
const SETUID: u32 = 7;
const NET_BIND_SERVICE: u32 = 10;
const AUDIT_WRITE: u32 = 29;

#[test]
fn capabilities_all_five_sets_as_configured() {
    if !testutil::require_root() {
        return;
    }
    // A non-root user, so that execve keeps the sets as they are (for root the kernel makes
    // permitted and effective the bounding set): permitted = effective = ambient.
    let kv = info(|s| {
        s["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
        s["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_AUDIT_WRITE"],
            "inheritable": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        });
    });
    assert_eq!(
        kv["cap.bnd"],
        cap_mask(&[CHOWN, KILL, NET_BIND_SERVICE, SETUID, AUDIT_WRITE])
    );
    assert_eq!(kv["cap.inh"], cap_mask(&[CHOWN, KILL, NET_BIND_SERVICE]));
    assert_eq!(kv["cap.prm"], cap_mask(&[KILL, NET_BIND_SERVICE]));
    assert_eq!(kv["cap.eff"], cap_mask(&[KILL, NET_BIND_SERVICE]));
    assert_eq!(kv["cap.amb"], cap_mask(&[KILL, NET_BIND_SERVICE]));
    assert_eq!(kv["uid"], "1000");
}

#[test]
fn capabilities_of_root_and_inheritable_empty_unless_asked() {
    if !testutil::require_root() {
        return;
    }
    // runc's default: three capabilities in bounding, permitted, effective and ambient, none
    // inheritable. The kernel raises an ambient capability only when it is also inheritable, so
    // ambient stays empty, as with runc.
    let kv = info(|_| {});
    let three = cap_mask(&[KILL, NET_BIND_SERVICE, AUDIT_WRITE]);
    for set in ["cap.bnd", "cap.prm", "cap.eff"] {
        assert_eq!(kv[set], three, "{set}");
    }
    assert_eq!(kv["cap.inh"], cap_mask(&[]));
    assert_eq!(kv["cap.amb"], cap_mask(&[]));
    // Asked for, inheritable and ambient are set (root: permitted and effective follow
    // bounding through execve).
    let kv = info(|s| {
        s["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
    });
    assert_eq!(kv["cap.inh"], cap_mask(&[KILL]));
    assert_eq!(kv["cap.amb"], cap_mask(&[KILL]));
    assert_eq!(kv["cap.eff"], three);
    // Without the capability, the kernel refuses what it guards.
    let kv = contest_any(&["syscall", "sethostname"], |_| {});
    assert_eq!(
        kv.get("errname").map(String::as_str),
        Some("EPERM"),
        "{kv:?}"
    );
}

#[test]
fn no_new_privileges() {
    if !testutil::require_root() {
        return;
    }
    assert_eq!(info(|_| {})["no_new_privs"], "1");
    let kv = info(|s| s["process"]["noNewPrivileges"] = json!(false));
    assert_eq!(kv["no_new_privs"], "0");
}

#[test]
fn oom_score_adj_positive_is_set() {
    if !testutil::require_root() {
        return;
    }
    let kv = info(|s| s["process"]["oomScoreAdj"] = json!(500));
    assert_eq!(kv["oom_score_adj"], "500");
}

#[test]
fn oom_score_adj_below_the_runtimes_needs_cap_sys_resource() {
    if !testutil::require_root() {
        return;
    }
    let mine: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let b = bundle(&["/bin/true"], |s| {
        s["process"]["oomScoreAdj"] = json!(mine - 500);
    });
    let (rt, id, _guard) = super::common::runtime("oom");
    let out = rt.run(&b, &id);
    if out.status.success() {
        // A runtime holding CAP_SYS_RESOURCE may lower it.
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("process.oomScoreAdj"), "{err}");
    assert!(!rt.root.join(&id).exists());
}

#[test]
fn umask() {
    if !testutil::require_root() {
        return;
    }
    let kv = info(|s| s["process"]["user"]["umask"] = json!(0o027));
    assert_eq!(kv["umask"], "0027");
    // runc's default when none is given.
    assert_eq!(info(|_| {})["umask"], "0022");
}

#[test]
fn user_uid_gid_and_additional_gids() {
    if !testutil::require_root() {
        return;
    }
    let kv = info(|s| {
        s["process"]["user"] = json!({ "uid": 1000, "gid": 1001, "additionalGids": [5, 65534] });
    });
    for k in ["uid", "euid", "suid", "fsuid"] {
        assert_eq!(kv[k], "1000", "{k}");
    }
    for k in ["gid", "egid", "sgid", "fsgid"] {
        assert_eq!(kv[k], "1001", "{k}");
    }
    let mut groups: Vec<&str> = kv["groups"].split(',').collect();
    groups.sort_unstable();
    assert_eq!(groups, ["5", "65534"]);
    // HOME comes from the container's /etc/passwd.
    assert_eq!(kv["env.HOME"], "/home/user");
}

#[test]
fn apparmor_and_selinux_labels_are_refused_without_the_lsm() {
    if !testutil::require_root() {
        return;
    }
    let lsms = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    if !lsms.contains("apparmor") {
        let b = bundle(&["/bin/true"], |s| {
            s["process"]["apparmorProfile"] = json!("berth-test-profile");
        });
        let err = create_fails(&b, "process.apparmorProfile");
        assert!(err.contains("AppArmor is not enabled"), "{err}");
    }
    if !lsms.contains("selinux") {
        let b = bundle(&["/bin/true"], |s| {
            s["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
        });
        let err = create_fails(&b, "process.selinuxLabel");
        assert!(err.contains("SELinux is not enabled"), "{err}");
    }
}

#[test]
fn personality_linux32() {
    if !testutil::require_root() {
        return;
    }
    let out = run_ok(
        &bundle(&["/bin/sh", "-c", "uname -m; /bin/contest info"], |s| {
            s["linux"]["personality"] = json!({ "domain": "LINUX32" });
        }),
        "pers",
    );
    assert_eq!(out.lines().next(), Some("i686"), "{out}");
    assert_eq!(testutil::parse_kv(&out)["personality"], "0x8");
    assert_eq!(info(|_| {})["personality"], "0x0");
}

#[test]
fn io_priority() {
    if !testutil::require_root() {
        return;
    }
    let kv = info(|s| {
        s["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_BE", "priority": 6 });
    });
    assert_eq!(
        (kv["ioprio.class"].as_str(), kv["ioprio.data"].as_str()),
        ("2", "6")
    );
    let kv = info(|s| {
        s["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_IDLE", "priority": 0 });
    });
    assert_eq!(kv["ioprio.class"], "3");
}

#[test]
fn scheduler_batch_and_idle() {
    if !testutil::require_root() {
        return;
    }
    let out = sh(
        "/bin/contest info; echo nice=$(cut -d' ' -f19 /proc/self/stat)",
        |s| {
            s["process"]["scheduler"] = json!({ "policy": "SCHED_BATCH", "nice": 7 });
        },
    );
    let kv = testutil::parse_kv(&out);
    assert_eq!(kv["sched.policy"], "SCHED_BATCH");
    // cut runs as a child of sh and inherits the niceness.
    assert_eq!(kv["nice"], "7");
    let kv = info(|s| {
        s["process"]["scheduler"] =
            json!({ "policy": "SCHED_IDLE", "flags": ["SCHED_FLAG_RESET_ON_FORK"] });
    });
    assert_eq!(kv["sched.policy"], "SCHED_IDLE");
    assert_eq!(kv["sched.reset_on_fork"], "1");
}
