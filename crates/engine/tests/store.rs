//! The state store on a real temporary root: containers, images, volumes, events, check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{TempRoot, new_container};
use engine::{
    ContainerFilter, Digest, ErrorKind, EventFilter, EventType, MountKind, MountPoint, NewImage,
    NewVolume, Problem, Status, Store, Timestamp, Transition, VolumeFilter,
};

fn started(pid: i32) -> Transition {
    Transition::Started {
        pid,
        monitor_pid: pid,
        at: Timestamp::now(),
        by_user: true,
    }
}

fn exited(code: i64) -> Transition {
    Transition::Exited {
        exit_code: code,
        oom_killed: false,
        at: Timestamp::now(),
    }
}

fn digest(c: char) -> Digest {
    Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
}

#[test]
fn open_creates_a_private_root_and_reopens() {
    let root = TempRoot::new("open");
    let store = root.open();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root.paths.root), 0o700);
    assert_eq!(mode(&root.paths.db()), 0o600);
    let id = store
        .write(|tx| tx.create_container(new_container(Some("web"))))
        .unwrap()
        .id;
    drop(store);
    let store = root.open();
    assert_eq!(store.read(|tx| tx.container("web")).unwrap().id, id);
    assert!(root.paths.root.join("berth.db-wal").exists(), "WAL mode");
}

#[test]
fn container_names_ids_and_prefixes() {
    let root = TempRoot::new("names");
    let store = root.open();
    let web = store
        .write(|tx| tx.create_container(new_container(Some("/web"))))
        .unwrap();
    assert_eq!(web.name, "web");
    assert_eq!(web.state.status, Status::Created);
    assert_eq!(
        web.bundle,
        root.paths.root.join("containers").join(web.id.as_str())
    );
    assert_eq!(
        web.run_dir,
        root.paths.run_root.join("containers").join(web.id.as_str())
    );

    let e = store
        .write(|tx| tx.create_container(new_container(Some("web"))))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("\"web\" is already in use"), "{e}");
    let e = store
        .write(|tx| tx.create_container(new_container(Some("bad name"))))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    let auto = store
        .write(|tx| tx.create_container(new_container(None)))
        .unwrap();
    assert!(auto.name.contains('_'), "{}", auto.name);

    store
        .read(|tx| {
            assert_eq!(tx.container(web.id.as_str())?.id, web.id);
            assert_eq!(tx.container("/web")?.id, web.id);
            assert_eq!(tx.container(web.id.short())?.id, web.id);
            assert_eq!(
                tx.container("nope").unwrap_err().kind(),
                ErrorKind::NotFound
            );
            assert_eq!(tx.container("").unwrap_err().kind(), ErrorKind::NotFound);
            Ok(())
        })
        .unwrap();

    // Create until two ids share their first hex digit: that digit is an ambiguous prefix.
    let mut ids = vec![web.id.clone(), auto.id.clone()];
    let shared = loop {
        let c = store
            .write(|tx| tx.create_container(new_container(None)))
            .unwrap();
        let first = c.id.as_str()[..1].to_owned();
        if ids.iter().any(|i| i.as_str().starts_with(&first)) {
            break first;
        }
        ids.push(c.id);
    };
    let e = store.read(|tx| tx.container(&shared)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(
        e.to_string()
            .starts_with("multiple containers found with provided prefix"),
        "{e}"
    );

    // A name wins over an id prefix, as in Docker.
    let prefix_name = &auto.id.as_str()[..4];
    let named = store
        .write(|tx| tx.create_container(new_container(Some(prefix_name))))
        .unwrap();
    assert_eq!(
        store.read(|tx| tx.container(prefix_name)).unwrap().id,
        named.id
    );
}

#[test]
fn state_transitions_persist_and_are_checked() {
    let root = TempRoot::new("states");
    let store = root.open();
    let c = store
        .write(|tx| tx.create_container(new_container(Some("app"))))
        .unwrap();
    let e = store
        .write(|tx| tx.transition(&c.id, Transition::Paused))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);

    store
        .write(|tx| tx.transition(&c.id, started(4242)))
        .unwrap();
    let e = store.write(|tx| tx.remove_container(&c.id)).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Conflict,
        "running containers are not removed"
    );
    store
        .write(|tx| tx.transition(&c.id, Transition::StopRequested))
        .unwrap();
    store
        .write(|tx| {
            tx.transition(
                &c.id,
                Transition::Exited {
                    exit_code: 137,
                    oom_killed: true,
                    at: Timestamp(7),
                },
            )
        })
        .unwrap();
    let got = root.open().read(|tx| tx.container("app")).unwrap();
    assert_eq!(got.state.status, Status::Exited);
    assert_eq!(got.state.exit_code, Some(137));
    assert!(got.state.oom_killed && got.state.stopped_by_user);
    assert_eq!(got.state.finished_at, Some(Timestamp(7)));
    // The monitor that recorded the exit still cleans up: its pid stays for waiters.
    assert_eq!((got.state.pid, got.state.monitor_pid), (None, Some(4242)));

    let actions: Vec<String> = store
        .read(|tx| tx.events(&EventFilter::default().parse(&["container=app"])?))
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["create", "start", "oom", "die"]);
    let die = store
        .read(|tx| tx.events(&EventFilter::default().parse(&["event=die"])?))
        .unwrap();
    assert_eq!(die[0].attributes["exitCode"], "137");
    assert_eq!(die[0].attributes["name"], "app");

    let removed = store.write(|tx| tx.remove_container(&c.id)).unwrap();
    assert_eq!(removed.id, c.id);
    assert_eq!(
        store.read(|tx| tx.container("app")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn list_filters_rename_and_update() {
    let root = TempRoot::new("list");
    let store = root.open();
    let mut a = new_container(Some("alpha"));
    a.config.labels = BTreeMap::from([("tier".into(), "front".into())]);
    let a = store.write(|tx| tx.create_container(a)).unwrap();
    let b = store
        .write(|tx| tx.create_container(new_container(Some("beta"))))
        .unwrap();
    store.write(|tx| tx.transition(&b.id, started(1))).unwrap();

    let names = |filters: &[&str]| -> Vec<String> {
        let f = ContainerFilter::parse(filters).unwrap();
        store
            .read(|tx| tx.list_containers(&f))
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(names(&[]), ["beta", "alpha"], "newest first");
    assert_eq!(names(&["status=running"]), ["beta"]);
    assert_eq!(names(&["label=tier=front"]), ["alpha"]);
    assert_eq!(names(&["name=lph"]), ["alpha"]);
    assert_eq!(names(&["id=".to_owned().as_str()]), ["beta", "alpha"]);
    assert_eq!(
        names(&[format!("id={}", &a.id.as_str()[..10]).as_str()]),
        ["alpha"]
    );
    assert_eq!(names(&["ancestor=busybox"]).len(), 2);

    let renamed = store
        .write(|tx| tx.rename_container("alpha", "gamma"))
        .unwrap();
    assert_eq!(renamed.id, a.id);
    let e = store
        .write(|tx| tx.rename_container("gamma", "beta"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let ev = store
        .read(|tx| tx.events(&EventFilter::default().parse(&["event=rename"])?))
        .unwrap();
    assert_eq!(ev[0].attributes["oldName"], "alpha");
    assert_eq!(ev[0].attributes["name"], "gamma");

    let mut hc = renamed.host_config.clone();
    hc.memory = 64 << 20;
    hc.restart_policy = engine::RestartPolicy::parse("on-failure:3").unwrap();
    let updated = store.write(|tx| tx.update_host_config(&a.id, &hc)).unwrap();
    assert_eq!(updated.host_config, hc);
    assert_eq!(
        root.open()
            .read(|tx| tx.container("gamma"))
            .unwrap()
            .host_config,
        hc
    );
}

#[test]
fn images_tags_and_removal_rules() {
    let root = TempRoot::new("images");
    let store = root.open();
    let img = |d: char, c: char| NewImage {
        digest: digest(d),
        config_digest: digest(c),
        size: 100,
        created: Some(Timestamp(1)),
        labels: BTreeMap::new(),
    };
    store
        .write(|tx| {
            tx.add_image(&img('a', 'b'))?;
            tx.add_image(&img('a', 'b'))?; // idempotent
            tx.tag_image(&digest('a'), "busybox")?;
            tx.tag_image(&digest('a'), "busybox:musl")?;
            tx.add_image(&img('c', 'd'))?;
            Ok(())
        })
        .unwrap();
    store
        .read(|tx| {
            assert_eq!(tx.resolve_image("busybox")?.digest, digest('a'));
            assert_eq!(
                tx.resolve_image("busybox:latest")?.names,
                ["busybox:latest", "busybox:musl"]
            );
            assert_eq!(tx.resolve_image("bbbb")?.digest, digest('a'), "id prefix");
            assert_eq!(tx.resolve_image(digest('c').as_str())?.digest, digest('c'));
            assert_eq!(
                tx.resolve_image("alpine").unwrap_err().kind(),
                ErrorKind::NotFound
            );
            assert_eq!(tx.list_images()?.len(), 2);
            Ok(())
        })
        .unwrap();

    // Retagging moves the reference.
    let before = store
        .write(|tx| tx.tag_image(&digest('c'), "busybox:musl"))
        .unwrap();
    assert_eq!(before, Some(digest('a')));
    assert_eq!(
        store
            .read(|tx| tx.resolve_image("busybox:musl"))
            .unwrap()
            .digest,
        digest('c')
    );

    // By id with two references: must force.
    store
        .write(|tx| tx.tag_image(&digest('a'), "other"))
        .unwrap();
    let e = store
        .write(|tx| tx.remove_image("bbbbbbbbbbbb", false))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    // By name while others remain: untag only.
    let r = store.write(|tx| tx.remove_image("other", false)).unwrap();
    assert_eq!(
        (r.untagged.as_slice(), r.deleted.is_none()),
        (&["other:latest".to_owned()][..], true)
    );

    // Used by a container: refused, forced only when the container is not running.
    let mut nc = new_container(Some("user"));
    nc.image_digest = Some(digest('a'));
    let c = store.write(|tx| tx.create_container(nc)).unwrap();
    let e = store
        .write(|tx| tx.remove_image("busybox", false))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    store.write(|tx| tx.transition(&c.id, started(1))).unwrap();
    let e = store
        .write(|tx| tx.remove_image(digest('a').as_str(), true))
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Conflict,
        "a running container's image is never deleted"
    );
    store.write(|tx| tx.transition(&c.id, exited(0))).unwrap();
    let r = store.write(|tx| tx.remove_image("busybox", true)).unwrap();
    assert_eq!(r.deleted.map(|i| i.digest), Some(digest('a')));
    assert!(store.check().unwrap().contains(&Problem::ImageMissing {
        id: c.id.clone(),
        digest: digest('a')
    }));

    let actions: Vec<String> = store
        .read(|tx| tx.events(&EventFilter::default().parse(&["type=image"])?))
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["tag", "tag", "tag", "tag", "untag", "untag", "delete"]
    );
}

#[test]
fn volumes_are_refcounted_by_container_mounts() {
    let root = TempRoot::new("volumes");
    let store = root.open();
    let mut nc = new_container(Some("db"));
    nc.mounts = vec![MountPoint {
        kind: MountKind::Volume,
        source: "data".into(),
        destination: "/var/lib/data".into(),
        read_write: true,
        propagation: String::new(),
    }];
    // The mount's volume must exist: create both in one transaction.
    let e = store
        .write(|tx| tx.create_container(nc.clone()))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let c = store
        .write(|tx| {
            let v = tx.create_volume(&NewVolume {
                name: Some("data".into()),
                ..NewVolume::default()
            })?;
            assert_eq!(v.mountpoint, root.paths.root.join("volumes/data/_data"));
            tx.create_container(nc)
        })
        .unwrap();
    assert_eq!(c.mounts.len(), 1);
    let anon = store
        .write(|tx| tx.create_volume(&NewVolume::default()))
        .unwrap();
    assert!(anon.anonymous && anon.name.len() == 64);
    let again = store.write(|tx| {
        tx.create_volume(&NewVolume {
            name: Some("data".into()),
            ..NewVolume::default()
        })
    });
    assert_eq!(
        again.unwrap().ref_count,
        1,
        "create of an existing name returns it"
    );

    let e = store.write(|tx| tx.remove_volume("data")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains(c.id.short()), "{e}");
    let dangling = VolumeFilter::parse(&["dangling=true"]).unwrap();
    let names: Vec<String> = store
        .read(|tx| tx.list_volumes(&dangling))
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, std::slice::from_ref(&anon.name));

    // Prune takes anonymous unused volumes only, unless all.
    let pruned = store
        .write(|tx| tx.prune_volumes(&VolumeFilter::default(), false))
        .unwrap();
    assert_eq!(
        pruned.into_iter().map(|v| v.name).collect::<Vec<_>>(),
        [anon.name]
    );
    store.write(|tx| tx.remove_container(&c.id)).unwrap();
    assert_eq!(store.read(|tx| tx.volume("data")).unwrap().ref_count, 0);
    let pruned = store
        .write(|tx| tx.prune_volumes(&VolumeFilter::default(), true))
        .unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!(
        store.read(|tx| tx.volume("data")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn a_failed_closure_rolls_everything_back() {
    let root = TempRoot::new("rollback");
    let store = root.open();
    let e = store
        .write(|tx| {
            tx.create_container(new_container(Some("first")))?;
            tx.create_volume(&NewVolume {
                name: Some("v1".into()),
                ..NewVolume::default()
            })?;
            tx.create_container(new_container(Some("first")))
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    store
        .read(|tx| {
            assert!(tx.list_containers(&ContainerFilter::default())?.is_empty());
            assert!(tx.list_volumes(&VolumeFilter::default())?.is_empty());
            assert!(tx.events(&EventFilter::default())?.is_empty());
            Ok(())
        })
        .unwrap();
}

#[test]
fn events_query_by_time_and_seq_and_are_pruned() {
    let root = TempRoot::new("events");
    let mut store = root.open();
    store.set_events_kept(5);
    let t0 = Timestamp::now();
    for i in 0..8 {
        store
            .write(|tx| {
                tx.append_event(
                    EventType::Volume,
                    "create",
                    &format!("v{i}"),
                    &BTreeMap::new(),
                )
            })
            .unwrap();
    }
    let all = store.read(|tx| tx.events(&EventFilter::default())).unwrap();
    assert_eq!(
        all.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(),
        ["v3", "v4", "v5", "v6", "v7"]
    );
    assert!(
        all.windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].time <= w[1].time)
    );
    let after = EventFilter {
        after: Some(all[3].seq),
        ..EventFilter::default()
    };
    assert_eq!(store.read(|tx| tx.events(&after)).unwrap().len(), 1);
    let until = EventFilter {
        since: Some(t0),
        until: Some(all[1].time),
        ..EventFilter::default()
    };
    assert!(store.read(|tx| tx.events(&until)).unwrap().len() >= 2);
    let n = store
        .write(|tx| tx.prune_events(Timestamp(all[2].time.0)))
        .unwrap();
    assert!(n >= 2);
}

#[test]
fn check_reports_what_a_crash_can_leave() {
    let root = TempRoot::new("check");
    let store = root.open();
    assert_eq!(store.check().unwrap(), []);
    let with_dir = store
        .write(|tx| tx.create_container(new_container(Some("fine"))))
        .unwrap();
    std::fs::create_dir_all(&with_dir.bundle).unwrap();
    let no_dir = store
        .write(|tx| tx.create_container(new_container(Some("nodir"))))
        .unwrap();
    let orphan = root.paths.root.join("containers").join("f".repeat(64));
    std::fs::create_dir_all(&orphan).unwrap();

    // A "running" container whose process and monitor are gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = i32::try_from(child.id()).unwrap();
    child.wait().unwrap();
    store
        .write(|tx| tx.transition(&with_dir.id, started(dead_pid)))
        .unwrap();

    let v = store
        .write(|tx| {
            tx.create_volume(&NewVolume {
                name: Some("gone".into()),
                ..NewVolume::default()
            })
        })
        .unwrap();
    let stray = root.paths.root.join("volumes/stray");
    std::fs::create_dir_all(&stray).unwrap();

    let mut problems = store.check().unwrap();
    problems.sort_by_key(|p| format!("{p:?}"));
    let mut want = vec![
        Problem::BundleMissing {
            id: no_dir.id.clone(),
            path: no_dir.bundle.clone(),
        },
        Problem::OrphanBundle { path: orphan },
        Problem::ProcessGone {
            id: with_dir.id.clone(),
            status: Status::Running,
            pid: Some(dead_pid),
            monitor_pid: Some(dead_pid),
        },
        Problem::VolumeDirMissing {
            name: "gone".into(),
            path: v.mountpoint.clone(),
        },
        Problem::OrphanVolumeDir { path: stray },
    ];
    want.sort_by_key(|p| format!("{p:?}"));
    assert_eq!(problems, want);
    let json = serde_json::to_value(&problems[0]).unwrap();
    assert!(json["problem"].is_string(), "{json}");

    // A live process is not reported.
    store
        .write(|tx| tx.transition(&with_dir.id, exited(0)))
        .unwrap();
    store
        .write(|tx| {
            tx.transition(
                &with_dir.id,
                started(i32::try_from(std::process::id()).unwrap()),
            )
        })
        .unwrap();
    assert!(
        !store
            .check()
            .unwrap()
            .iter()
            .any(|p| matches!(p, Problem::ProcessGone { .. }))
    );
}

#[test]
fn a_busy_writer_times_out_as_unavailable() {
    let root = TempRoot::new("busy");
    let holder = root.open();
    let waiter = Store::open_with(&root.paths, Duration::from_millis(200)).unwrap();
    let (tx_ready, rx_ready) = std::sync::mpsc::channel();
    let (tx_done, rx_done) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        holder
            .write(|_| {
                tx_ready.send(()).unwrap();
                rx_done.recv().unwrap();
                Ok(())
            })
            .unwrap();
    });
    rx_ready.recv().unwrap();
    let e = waiter
        .write(|tx| tx.create_container(new_container(Some("late"))))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    // Readers, and opening the store, are not blocked by the writer.
    assert!(
        waiter
            .read(|tx| tx.list_containers(&ContainerFilter::default()))
            .unwrap()
            .is_empty()
    );
    let reader = Store::open_with(&root.paths, Duration::from_millis(200)).unwrap();
    assert!(reader.read(|tx| tx.list_images()).unwrap().is_empty());
    tx_done.send(()).unwrap();
    thread.join().unwrap();
    waiter
        .write(|tx| tx.create_container(new_container(Some("late"))))
        .unwrap();
}
