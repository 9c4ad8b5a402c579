//! Many writers at once, and writers killed mid-transaction, against one store. The workers are
//! real processes: this test binary re-executed with `--exact worker_process_entry` and the job
//! in `BERTH_ENGINE_TEST_WORKER`, so SQLite's file locking between processes is what is tested.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TempRoot, new_container};
use engine::{
    ContainerFilter, ErrorKind, EventFilter, MountKind, MountPoint, NewVolume, Paths, Store,
    Timestamp, Transition, VolumeFilter,
};
use testutil::ChildGuard;

const WORKER_ENV: &str = "BERTH_ENGINE_TEST_WORKER";
const WORKERS: usize = 20;
const ROUNDS: u32 = 8;
/// The invariants count events, so none may be pruned.
const KEEP_ALL_EVENTS: i64 = i64::MAX / 2;

/// Entry point of the worker processes; does nothing when run as an ordinary test.
#[test]
fn worker_process_entry() {
    let Ok(job) = std::env::var(WORKER_ENV) else {
        return;
    };
    let mut parts = job.splitn(3, '\n');
    let (mode, root, index) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let paths = Paths::new(format!("{root}/root"), format!("{root}/run"));
    let index: usize = index.parse().unwrap();
    let mut out = std::io::stdout().lock();
    // libtest has printed `test worker_process_entry ... ` without a newline: end that line so
    // that the markers below stand alone on theirs.
    writeln!(out).unwrap();
    match mode {
        "churn" => {
            for round in churn(&paths, index) {
                writeln!(out, "WON {round}").unwrap();
            }
            writeln!(out, "DONE").unwrap();
        }
        "hold" => {
            let store = Store::open(&paths).unwrap();
            store
                .write(|tx| {
                    tx.create_volume(&NewVolume {
                        name: Some("halfvol".into()),
                        ..NewVolume::default()
                    })?;
                    tx.create_container(volume_container(Some("half"), "halfvol"))?;
                    writeln!(out, "INSIDE").unwrap();
                    out.flush().unwrap();
                    std::thread::sleep(Duration::from_secs(60));
                    Ok(())
                })
                .unwrap();
        }
        "loop" => {
            let mut store = Store::open(&paths).unwrap();
            store.set_events_kept(KEEP_ALL_EVENTS);
            let mut first = true;
            loop {
                lifecycle(&store, index);
                if first {
                    writeln!(out, "GO").unwrap();
                    out.flush().unwrap();
                    first = false;
                }
            }
        }
        _ => panic!("unknown worker mode {mode}"),
    }
}

fn volume_container(name: Option<&str>, volume: &str) -> engine::NewContainer {
    let mut c = new_container(name);
    c.mounts = vec![MountPoint {
        kind: MountKind::Volume,
        source: volume.to_owned(),
        destination: "/data".into(),
        read_write: true,
        propagation: String::new(),
    }];
    c
}

/// One container's whole life, one transaction per step as the CLI and monitor will do it.
fn lifecycle(store: &Store, index: usize) {
    let mut c = volume_container(None, "shared");
    c.config.labels = BTreeMap::from([("worker".to_owned(), index.to_string())]);
    let c = store
        .write(|tx| {
            tx.create_volume(&NewVolume {
                name: Some("shared".into()),
                ..NewVolume::default()
            })?;
            tx.create_container(c)
        })
        .unwrap();
    let pid = i32::try_from(std::process::id()).unwrap();
    store
        .write(|tx| {
            tx.transition(
                &c.id,
                Transition::Started {
                    pid,
                    monitor_pid: pid,
                    at: Timestamp::now(),
                    by_user: true,
                },
            )
        })
        .unwrap();
    store
        .write(|tx| {
            tx.transition(
                &c.id,
                Transition::Exited {
                    exit_code: 0,
                    oom_killed: false,
                    at: Timestamp::now(),
                },
            )
        })
        .unwrap();
    let mine = ContainerFilter::parse(&[format!("label=worker={index}")]).unwrap();
    assert!(
        store
            .read(|tx| tx.list_containers(&mine))
            .unwrap()
            .iter()
            .any(|x| x.id == c.id)
    );
    store.write(|tx| tx.remove_container(&c.id)).unwrap();
}

/// A worker's share of the churn test: race the others for `contested-<round>` names, run
/// container lifecycles, keep one container. Returns the rounds it won.
fn churn(paths: &Paths, index: usize) -> Vec<u32> {
    // Every worker opens the fresh root at once: creation and migration race too.
    let mut store = Store::open(paths).unwrap();
    store.set_events_kept(KEEP_ALL_EVENTS);
    let mut won = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("contested-{round}");
        match store.write(|tx| tx.create_container(new_container(Some(&name)))) {
            Ok(_) => won.push(round),
            Err(e) if e.kind() == ErrorKind::Conflict => {}
            Err(e) => panic!("worker {index}: create {name}: {e}"),
        }
        lifecycle(&store, index);
    }
    store
        .write(|tx| tx.create_container(new_container(Some(&format!("keep-{index}")))))
        .unwrap();
    won
}

fn spawn_worker(mode: &str, root: &TempRoot, index: usize) -> ChildGuard {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "worker_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(
        WORKER_ENV,
        format!("{mode}\n{}\n{index}", root.dir.display()),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    ChildGuard::spawn(&mut cmd)
}

/// Reads the child's stdout until a line equal to `marker`.
fn wait_for_line(child: &mut ChildGuard, marker: &str) -> BufReader<std::process::ChildStdout> {
    let mut reader = BufReader::new(child.child().stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(
            reader.read_line(&mut line).unwrap(),
            0,
            "worker ended before printing {marker}"
        );
        if line.trim_end() == marker {
            return reader;
        }
    }
}

/// The invariants no interleaving or crash may break.
fn assert_consistent(root: &TempRoot) -> Store {
    // A short busy timeout: a killed writer must not leave the lock held.
    let mut store = Store::open_with(&root.paths, Duration::from_secs(2)).unwrap();
    store.set_events_kept(KEEP_ALL_EVENTS);
    assert_eq!(store.integrity_problems().unwrap(), Vec::<String>::new());
    store
        .read(|tx| {
            let containers = tx.list_containers(&ContainerFilter::default())?;
            let events = tx.events(&EventFilter::default().parse(&["type=container"])?)?;
            let count = |a: &str| events.iter().filter(|e| e.action == a).count();
            // Each record change commits with its event, or neither does.
            assert_eq!(count("create") - count("destroy"), containers.len());
            let mut names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "names are unique");
            let users: usize = containers.iter().map(|c| c.mounts.len()).sum();
            let refs: i64 = tx
                .list_volumes(&VolumeFilter::default())?
                .iter()
                .map(|v| v.ref_count)
                .sum();
            assert_eq!(users, usize::try_from(refs).unwrap());
            Ok(())
        })
        .unwrap();
    // And it still takes writes at once.
    store
        .write(|tx| tx.create_container(new_container(None)))
        .unwrap();
    store
}

fn assert_churn_result(root: &TempRoot, wins: &[u32]) {
    for round in 0..ROUNDS {
        assert_eq!(
            wins.iter().filter(|w| **w == round).count(),
            1,
            "round {round} has exactly one winner"
        );
    }
    let store = assert_consistent(root);
    let all = store
        .read(|tx| tx.list_containers(&ContainerFilter::default()))
        .unwrap();
    // contested + keep + the one assert_consistent made.
    assert_eq!(all.len(), ROUNDS as usize + WORKERS + 1);
    assert_eq!(store.read(|tx| tx.volume("shared")).unwrap().ref_count, 0);
}

#[test]
fn twenty_processes_create_and_remove_at_once() {
    let root = TempRoot::new("procs");
    let mut children: Vec<ChildGuard> = (0..WORKERS)
        .map(|i| spawn_worker("churn", &root, i))
        .collect();
    let mut wins = Vec::new();
    for child in &mut children {
        let mut done = false;
        for line in BufReader::new(child.child().stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(r) = line.strip_prefix("WON ") {
                wins.push(r.parse::<u32>().unwrap());
            }
            done |= line == "DONE";
        }
        let status = child.child().wait().unwrap();
        assert!(status.success() && done, "worker failed: {status}");
    }
    assert_churn_result(&root, &wins);
}

#[test]
fn twenty_threads_create_and_remove_at_once() {
    let root = TempRoot::new("threads");
    let wins: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|i| {
                let paths = &root.paths;
                s.spawn(move || churn(paths, i))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_churn_result(&root, &wins);
}

#[test]
fn sigkill_inside_a_transaction_leaves_nothing_of_it() {
    let root = TempRoot::new("kill-inside");
    root.open()
        .write(|tx| tx.create_container(new_container(Some("before"))))
        .unwrap();
    let mut child = spawn_worker("hold", &root, 0);
    let _reader = wait_for_line(&mut child, "INSIDE");
    // The worker holds the write lock with its changes made but not committed.
    child.child().kill().unwrap();
    child.child().wait().unwrap();

    let store = assert_consistent(&root);
    store
        .read(|tx| {
            assert_eq!(
                tx.container("half").unwrap_err().kind(),
                ErrorKind::NotFound
            );
            assert_eq!(
                tx.volume("halfvol").unwrap_err().kind(),
                ErrorKind::NotFound
            );
            assert!(tx.container("before").is_ok());
            Ok(())
        })
        .unwrap();
    // The half-done change can be redone.
    store
        .write(|tx| {
            tx.create_volume(&NewVolume {
                name: Some("halfvol".into()),
                ..NewVolume::default()
            })?;
            tx.create_container(volume_container(Some("half"), "halfvol"))
        })
        .unwrap();
}

#[test]
fn sigkill_at_random_points_of_a_write_loop_keeps_the_store_consistent() {
    let root = TempRoot::new("kill-loop");
    drop(root.open());
    for (i, delay_ms) in [0u64, 7, 23, 41, 89, 150].into_iter().enumerate() {
        let mut children: Vec<ChildGuard> = (0..3)
            .map(|w| spawn_worker("loop", &root, i * 3 + w))
            .collect();
        let _readers: Vec<_> = children
            .iter_mut()
            .map(|c| wait_for_line(c, "GO"))
            .collect();
        std::thread::sleep(Duration::from_millis(delay_ms));
        for c in &mut children {
            c.child().kill().unwrap();
            c.child().wait().unwrap();
        }
        assert_consistent(&root);
    }
}
