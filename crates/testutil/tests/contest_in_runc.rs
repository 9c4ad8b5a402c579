//! contest's probes report what a runc container sees; needs root.

use serde_json::json;
use std::collections::BTreeMap;
use std::process::Output;
use testutil::{Bundle, Runtime, describe, parse_kv, unique_name};

/// Runs `/bin/contest <args>` in a fresh busybox bundle under runc, after `edit`.
fn contest(rt: &Runtime, args: &[&str], edit: impl FnOnce(&mut serde_json::Value)) -> Output {
    let mut argv = vec!["/bin/contest"];
    argv.extend_from_slice(args);
    let mut bundle = Bundle::busybox(&argv);
    bundle.edit(edit);
    let id = unique_name("contest");
    let _guard = rt.guard(&id);
    rt.run(&bundle, &id)
}

fn kv(out: &Output) -> BTreeMap<String, String> {
    parse_kv(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn probes_report_the_container_view() {
    if !testutil::require_root() {
        return;
    }
    let rt = Runtime::new("runc");

    let out = contest(&rt, &["stat", "/dev/null"], |_| {});
    assert!(out.status.success(), "{}", describe(&out));
    let st = kv(&out);
    assert_eq!(
        (st["type"].as_str(), st["rdev"].as_str()),
        ("char", "1:3"),
        "{st:?}"
    );

    // The root is read-only in runc's default spec.
    let out = contest(&rt, &["write", "/etc/berth", "x"], |_| {});
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_eq!(kv(&out)["errname"], "EROFS");

    let out = contest(&rt, &["syscall", "sethostname", "inside"], |_| {});
    assert_eq!(
        kv(&out).get("errname").map(String::as_str),
        Some("EPERM"),
        "{}",
        describe(&out)
    );

    let out = contest(&rt, &["forks", "20"], |s| {
        s["linux"]["resources"]["pids"] = json!({ "limit": 5 });
    });
    assert!(out.status.success(), "{}", describe(&out));
    let f = kv(&out);
    assert_eq!(f["errname"], "EAGAIN", "{f:?}");
    assert!(f["forked"].parse::<u32>().is_ok_and(|n| n < 5), "{f:?}");

    let out = contest(&rt, &["info"], |s| {
        s["process"]["user"] = json!({ "uid": 1000, "gid": 1000, "additionalGids": [5] });
        s["process"]["oomScoreAdj"] = json!(100);
    });
    assert!(out.status.success(), "{}", describe(&out));
    let info = kv(&out);
    assert_eq!(
        (info["uid"].as_str(), info["fsuid"].as_str()),
        ("1000", "1000")
    );
    assert_eq!(info["groups"], "5");
    assert_eq!(info["oom_score_adj"], "100");

    let out = contest(&rt, &["exit", "7"], |_| {});
    assert_eq!(out.status.code(), Some(7), "{}", describe(&out));
}
