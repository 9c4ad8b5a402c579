//! End-to-end tests of berth's storage verbs through the `berth` binary: `-v`, `--mount`,
//! `--tmpfs`, `--read-only`, `volume create|ls|inspect|rm|prune`, `rm -v`, volume copy-up,
//! `cp` both ways (running and stopped containers, hostile symlinks, tar streams), `diff` and
//! `export`. Every test ends by checking that no mount of its roots is left.

// A test target: helpers outside `#[test]` functions fail the test with `expect` too.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use testutil::{Berth, describe, stdout, wait_until};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failure of berth itself: exit 125 and one `berth: ...` line.
fn assert_refused(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(125), "{}", describe(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("berth: "), "{err}");
    assert!(err.contains(needle), "{needle:?} in {err}");
}

/// No mount of the test's roots is left, and `system check` finds nothing to repair.
fn assert_no_mounts(b: &Berth) {
    assert!(b.mounts().is_empty(), "mounts left: {:?}", b.mounts());
    b.assert_consistent();
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `berth inspect -f '{{json .Mounts}}'`, parsed.
fn mounts_of(b: &Berth, container: &str) -> Vec<serde_json::Value> {
    let out = b.ok(&["inspect", "-f", "{{json .Mounts}}", container]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .expect("Mounts JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn bind_mounts_read_write_and_read_only_and_tmpfs_with_size() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-bind");
    b.import_busybox("bb");
    let host = b.scratch.join("host");
    std::fs::create_dir(&host).expect("mkdir");
    std::fs::write(host.join("in"), "from host\n").expect("write");
    let rw = format!("{}:/rw", path_str(&host));
    let ro = format!("{}:/ro:ro", path_str(&host));
    let out = b.cmd(&[
        "run",
        "--rm",
        "-v",
        &rw,
        "-v",
        &ro,
        "--tmpfs",
        "/scratch:size=1m",
        "bb",
        "sh",
        "-c",
        "cat /rw/in; echo made > /rw/out; echo x 2>/dev/null > /ro/y || echo ro-refused; \
         grep ' /scratch ' /proc/mounts",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.starts_with("from host\nro-refused\n"), "{text}");
    assert!(
        text.contains("tmpfs /scratch tmpfs") && text.contains("size=1024k"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(host.join("out")).expect("out"),
        "made\n"
    );
    assert!(!host.join("y").exists());

    // The errno of the refused write is EROFS.
    let out = b.cmd(&["run", "--rm", "-v", &ro, "bb", "touch", "/ro/z"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        describe(&out)
    );

    // --mount type=tmpfs with size and mode, --mount type=bind,readonly; -v makes a missing
    // host directory.
    let made = b.scratch.join("made-by-v");
    let v = format!("{}:/m", path_str(&made));
    let mnt = format!("type=bind,source={},target=/b,readonly", path_str(&host));
    let out = b.ok(&[
        "run",
        "--name",
        "keep",
        "-v",
        &v,
        "--mount",
        &mnt,
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=2m,tmpfs-mode=1770",
        "bb",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts; stat -c %a /t; cat /b/in",
    ]);
    let text = stdout(&out);
    assert!(text.contains("size=2048k"), "{text}");
    assert!(text.contains("\n1770\nfrom host\n"), "{text}");
    assert!(made.is_dir(), "-v created the host directory");
    let mounts = mounts_of(&b, "keep");
    let b_mount = mounts
        .iter()
        .find(|m| m["Destination"] == "/b")
        .expect("/b in Mounts");
    assert_eq!(b_mount["Type"], "bind");
    assert_eq!(b_mount["RW"], false);
    assert_eq!(b_mount["Source"], path_str(&host));
    assert_eq!(b_mount["Propagation"], "rprivate");
    assert!(
        mounts
            .iter()
            .any(|m| m["Destination"] == "/t" && m["Type"] == "tmpfs")
    );
    b.ok(&["rm", "keep"]);
    assert_no_mounts(&b);
}

#[test]
fn read_only_root_refuses_writes_but_a_tmpfs_tmp_works() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-ro");
    b.import_busybox("bb");
    let out = b.ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "bb",
        "sh",
        "-c",
        "touch /root-file 2>&1 || echo refused; echo ok > /tmp/f && cat /tmp/f",
    ]);
    let text = stdout(&out);
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(text.ends_with("refused\nok\n"), "{text}");
    assert_no_mounts(&b);
}

#[test]
fn named_volumes_survive_rm_anonymous_ones_go_with_rm_v() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-vol");
    b.import_busybox("bb");
    b.ok(&[
        "run",
        "--name",
        "ww",
        "-v",
        "keepme:/data",
        "-v",
        "/anon",
        "bb",
        "sh",
        "-c",
        "echo persisted > /data/f; echo a > /anon/f",
    ]);
    let mounts = mounts_of(&b, "ww");
    let anon = mounts
        .iter()
        .find(|m| m["Destination"] == "/anon")
        .and_then(|m| m["Name"].as_str())
        .expect("anonymous volume in Mounts")
        .to_owned();
    assert_eq!(
        anon.len(),
        64,
        "anonymous volumes are named by 64 hex: {anon}"
    );
    let named = mounts
        .iter()
        .find(|m| m["Destination"] == "/data")
        .expect("/data in Mounts");
    assert_eq!(
        (&named["Type"], &named["Name"]),
        (&"volume".into(), &"keepme".into())
    );

    // In use: refused, and the data stays.
    let out = b.cmd(&["volume", "rm", "keepme"]);
    assert_refused(&out, "keepme");
    b.ok(&["rm", "-v", "ww"]);
    let ls = stdout(&b.ok(&["volume", "ls", "-q"]));
    assert_eq!(ls, "keepme\n", "rm -v removed the anonymous volume only");
    assert!(!b.root.join("volumes").join(&anon).exists());

    // --rm removes the anonymous volumes it made, like rm -v.
    b.ok(&["run", "--rm", "-v", "/scratch", "bb", "touch", "/scratch/x"]);
    assert_eq!(stdout(&b.ok(&["volume", "ls", "-q"])), "keepme\n");

    // --volumes-from: the same volumes, the mode overridden with :ro.
    b.ok(&["run", "--name", "src", "-v", "keepme:/data", "bb", "true"]);
    let out = b.cmd(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        "bb",
        "sh",
        "-c",
        "cat /data/f; touch /data/g 2>/dev/null || echo refused",
    ]);
    assert_eq!(stdout(&out), "persisted\nrefused\n", "{}", describe(&out));
    b.ok(&["rm", "src"]);

    // A second container sees the data.
    let out = b.ok(&[
        "run",
        "--rm",
        "-v",
        "keepme:/again",
        "bb",
        "cat",
        "/again/f",
    ]);
    assert_eq!(stdout(&out), "persisted\n");
    let v = stdout(&b.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{.Mountpoint}}",
        "keepme",
    ]));
    let data = b.root.join("volumes/keepme/_data");
    assert_eq!(v.trim(), format!("keepme local {}", data.display()));
    assert_eq!(
        std::fs::read_to_string(data.join("f")).expect("f"),
        "persisted\n"
    );

    // volume verbs: create with a label, filters, prune.
    assert_eq!(
        stdout(&b.ok(&["volume", "create", "--label", "team=a", "labelled"])),
        "labelled\n"
    );
    let ls = stdout(&b.ok(&["volume", "ls", "-q", "--filter", "label=team=a"]));
    assert_eq!(ls, "labelled\n");
    let ls = stdout(&b.ok(&["volume", "ls"]));
    assert!(
        ls.starts_with("DRIVER    VOLUME NAME\nlocal     keepme\nlocal     labelled\n"),
        "{ls}"
    );
    let ls = stdout(&b.ok(&[
        "volume",
        "ls",
        "--format",
        "{{.Name}}={{.Labels}}",
        "-f",
        "dangling=true",
    ]));
    assert_eq!(ls, "keepme=\nlabelled=team=a\n");
    let out = b.ok(&["volume", "prune", "-f"]);
    assert_eq!(
        stdout(&out),
        "Total reclaimed space: 0B\n",
        "named volumes stay without -a"
    );
    let out = b.ok(&["volume", "prune", "-f", "-a", "--filter", "label=team=a"]);
    assert!(
        stdout(&out).starts_with("Deleted Volumes:\nlabelled\n"),
        "{}",
        describe(&out)
    );
    b.ok(&["volume", "rm", "keepme"]);
    assert_eq!(stdout(&b.ok(&["volume", "ls", "-q"])), "");
    assert!(!b.root.join("volumes/keepme").exists());
    b.ok(&["volume", "rm", "-f", "never-existed"]);
    assert_refused(&b.cmd(&["volume", "rm", "never-existed"]), "no such volume");
    assert_no_mounts(&b);
}

#[test]
fn volume_create_options_mount_a_device_or_a_directory() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-volopt");
    b.import_busybox("bb");
    let dir = b.scratch.join("device-dir");
    std::fs::create_dir(&dir).expect("mkdir");
    let device = format!("device={}", path_str(&dir));
    b.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "bound",
    ]);
    b.ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=2m",
        "small",
    ]);
    let out = b.ok(&[
        "run",
        "--rm",
        "-v",
        "bound:/b",
        "-v",
        "small:/s",
        "bb",
        "sh",
        "-c",
        "echo through > /b/f; grep ' /s ' /proc/mounts",
    ]);
    assert!(stdout(&out).starts_with("tmpfs /s tmpfs") && stdout(&out).contains("size=2048k"));
    assert_eq!(
        std::fs::read_to_string(dir.join("f")).expect("f"),
        "through\n"
    );
    let opts = stdout(&b.ok(&["volume", "inspect", "-f", "{{json .Options}}", "small"]));
    assert_eq!(
        opts.trim(),
        r#"{"device":"tmpfs","o":"size=2m","type":"tmpfs"}"#
    );
    assert_refused(
        &b.cmd(&["volume", "create", "-o", "bogus=1", "x1"]),
        "invalid option key: \"bogus\"",
    );
    assert_refused(
        &b.cmd(&["volume", "create", "-o", "type=tmpfs", "x2"]),
        "missing device in volume options",
    );
    b.ok(&["volume", "rm", "bound", "small"]);
    assert_eq!(stdout(&b.ok(&["volume", "ls", "-q"])), "");
    assert_no_mounts(&b);
}

#[test]
fn a_new_volume_gets_the_image_content_unless_nocopy() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-copyup");
    b.import_busybox("bb");
    let out = b.ok(&[
        "run",
        "--rm",
        "-v",
        "etcvol:/etc",
        "bb",
        "cat",
        "/etc/passwd",
    ]);
    assert!(stdout(&out).starts_with("root:x:0:0"), "{}", describe(&out));
    let passwd = b.root.join("volumes/etcvol/_data/passwd");
    assert!(passwd.is_file(), "copied into the volume directory");
    // A volume that has content is not filled again.
    std::fs::remove_file(&passwd).expect("rm");
    b.ok(&["run", "--rm", "-v", "etcvol:/etc", "bb", "true"]);
    assert!(!passwd.exists(), "only an empty volume is filled");

    let out = b.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=bare,target=/etc,volume-nocopy",
        "bb",
        "ls",
        "-A",
        "/etc",
    ]);
    assert!(
        !stdout(&out).contains("passwd"),
        "nocopy: {}",
        describe(&out)
    );
    b.ok(&["volume", "rm", "etcvol", "bare"]);
    assert_no_mounts(&b);
}

/// Runs `berth` with `input` on stdin.
fn with_stdin(b: &Berth, args: &[&str], input: &[u8]) -> Output {
    let mut c = b.command(args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn berth");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("wait berth")
}

#[test]
fn cp_both_ways_on_running_and_stopped_containers_stays_inside() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-cp");
    b.import_busybox("bb");
    let marker = testutil::unique_name("cp-escape");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "bb",
        "sh",
        "-c",
        "ln -s / /escape; ln -s ../../../etc /x; mkdir -p /d/sub; echo deep > /d/sub/f; \
         echo top > /d/t; touch /ready; exec sleep 60",
    ]);
    wait_until("the container's setup", || {
        b.cmd(&["exec", "cc", "test", "-e", "/ready"])
            .status
            .success()
    });
    let file = b.scratch.join("in.txt");
    std::fs::write(&file, "into the container\n").expect("write");
    let f = path_str(&file);

    b.ok(&["cp", f, "cc:/escape/etc/"]);
    b.ok(&["cp", f, "cc:/x/"]);
    // Through `/escape -> /` and `/x -> ../../../etc`: the container's /etc, not the host's.
    assert!(!Path::new("/etc/in.txt").exists(), "cp wrote on the host");
    let out = b.ok(&["exec", "cc", "cat", "/etc/in.txt"]);
    assert_eq!(stdout(&out), "into the container\n");
    // Reading through the hostile links reads the container's files.
    let got = b.scratch.join("passwd-out");
    b.ok(&["cp", "cc:/escape/etc/passwd", path_str(&got)]);
    assert!(
        std::fs::read_to_string(&got)
            .expect("read")
            .starts_with("root:x:0:0:root:/root:/bin/sh\nuser:x:1000")
    );
    let got = b.scratch.join("via-x");
    b.ok(&["cp", "cc:/x/../../../../etc/in.txt", path_str(&got)]);
    assert_eq!(
        std::fs::read_to_string(&got).expect("read"),
        "into the container\n"
    );

    // Directory semantics: into a missing name, into an existing dir, `dir/.`.
    let out_dir = b.scratch.join("outdir");
    b.ok(&["cp", "cc:/d", path_str(&out_dir)]);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("sub/f")).expect("f"),
        "deep\n"
    );
    b.ok(&["cp", "cc:/d", path_str(&out_dir)]);
    assert!(
        out_dir.join("d/t").is_file(),
        "an existing directory receives d/"
    );
    let contents = b.scratch.join("contents");
    std::fs::create_dir(&contents).expect("mkdir");
    b.ok(&["cp", "cc:/d/.", path_str(&contents)]);
    assert!(contents.join("t").is_file() && !contents.join("d").exists());
    let out = b.cmd(&["cp", "cc:/d", f]);
    assert_refused(&out, "onto a file");
    let out = b.cmd(&["cp", "cc:/no/such/file", path_str(&b.scratch)]);
    assert_refused(&out, "/no/such/file");

    // A host directory whose name is a hostile link target in the container.
    let host_dir = b.scratch.join(&marker);
    std::fs::create_dir(&host_dir).expect("mkdir");
    std::fs::write(host_dir.join("inner"), "dir copy\n").expect("write");
    b.ok(&["cp", path_str(&host_dir), "cc:/escape/"]);
    let out = b.ok(&["exec", "cc", "cat", &format!("/{marker}/inner")]);
    assert_eq!(stdout(&out), "dir copy\n");
    assert!(
        !Path::new("/").join(&marker).exists(),
        "cp wrote on the host"
    );

    // Stopped: the rootfs is mounted for the copy only.
    b.ok(&["stop", "-t", "0", "cc"]);
    assert_no_mounts(&b);
    b.ok(&["cp", f, "cc:/escape/stopped.txt"]);
    assert_no_mounts(&b);
    let got = b.scratch.join("stopped-out");
    b.ok(&["cp", "cc:/x/../stopped.txt", path_str(&got)]);
    assert_eq!(
        std::fs::read_to_string(&got).expect("read"),
        "into the container\n"
    );
    assert!(!Path::new("/stopped.txt").exists());
    assert_refused(
        &b.cmd(&["cp", f, "no-such-container:/x"]),
        "no-such-container",
    );
    b.ok(&["rm", "-f", "cc"]);
    assert_no_mounts(&b);
}

#[test]
fn cp_into_a_stopped_container_reaches_its_volumes_and_respects_read_only() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-cpvol");
    b.import_busybox("bb");
    let host = b.scratch.join("bound");
    std::fs::create_dir(&host).expect("mkdir");
    let bind = format!("{}:/bound", path_str(&host));
    b.ok(&[
        "run",
        "--name",
        "stopped",
        "-v",
        "cpvol:/data",
        "-v",
        &bind,
        "-v",
        "rovol:/ro:ro",
        "bb",
        "true",
    ]);
    let file = b.scratch.join("f.txt");
    std::fs::write(&file, "to the volume\n").expect("write");
    let f = path_str(&file);
    b.ok(&["cp", f, "stopped:/data/"]);
    b.ok(&["cp", f, "stopped:/bound/"]);
    assert_no_mounts(&b);
    let in_volume = b.root.join("volumes/cpvol/_data/f.txt");
    assert_eq!(
        std::fs::read_to_string(&in_volume).expect("in volume"),
        "to the volume\n"
    );
    assert!(host.join("f.txt").is_file(), "into the bind source");
    let out = b.ok(&["cp", "stopped:/data/f.txt", "-"]);
    assert_eq!(tar_list(&out.stdout), ["f.txt"]);
    assert_refused(
        &b.cmd(&["cp", f, "stopped:/ro/"]),
        "mounted volume is marked read-only",
    );

    b.ok(&["run", "--name", "rofs", "--read-only", "bb", "true"]);
    assert_refused(
        &b.cmd(&["cp", f, "rofs:/"]),
        "container rootfs is marked read-only",
    );
    b.ok(&["rm", "-v", "stopped", "rofs"]);
    b.ok(&["volume", "rm", "cpvol", "rovol"]);
    assert_no_mounts(&b);
}

#[test]
fn cp_dash_streams_tar_in_and_out() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-cptar");
    b.import_busybox("bb");
    b.ok(&[
        "run",
        "--name",
        "cc",
        "bb",
        "sh",
        "-c",
        "mkdir /out; echo one > /out/a; ln -s a /out/l",
    ]);
    let out = b.ok(&["cp", "cc:/out", "-"]);
    let listing = tar_list(&out.stdout);
    assert_eq!(listing, ["out/", "out/a", "out/l"], "{}", describe(&out));

    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(4);
    builder
        .append_data(&mut h, "streamed/new", &b"new\n"[..])
        .expect("append");
    // The tar crate refuses to write `..` names: patch it into the header.
    let mut h = tar::Header::new_old();
    h.set_mode(0o644);
    h.set_size(3);
    h.as_old_mut().name[..13].copy_from_slice(b"../../escaped");
    h.set_cksum();
    builder.append(&h, &b"up\n"[..]).expect("append");
    let archive = builder.into_inner().expect("tar");
    let out = with_stdin(&b, &["cp", "-", "cc:/out"], &archive);
    assert!(out.status.success(), "{}", describe(&out));
    let out = b.ok(&["cp", "cc:/out/.", "-"]);
    let listing = tar_list(&out.stdout);
    assert!(
        listing.contains(&"escaped".to_owned()),
        "contained in /out: {listing:?}"
    );
    assert!(listing.contains(&"streamed/new".to_owned()), "{listing:?}");
    let out = with_stdin(&b, &["cp", "-", "cc:/out/a"], &archive);
    assert_refused(&out, "not a directory");
    assert_no_mounts(&b);
}

/// Entry names of a tar stream, by the system's tar.
fn tar_list(archive: &[u8]) -> Vec<String> {
    let mut child = Command::new("tar")
        .arg("-t")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tar");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, archive).expect("write tar");
    drop(stdin);
    let out = child.wait_with_output().expect("tar");
    assert!(out.status.success(), "tar -t: {}", describe(&out));
    let mut names: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    names.sort();
    names
}

#[test]
fn diff_lists_changes_and_export_the_whole_tree() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-diff");
    b.import_busybox("bb");
    b.ok(&[
        "run", "--name", "cc", "bb", "sh", "-c",
        "echo new > /added; echo more >> /etc/passwd; rm /etc/group; mkdir /newdir; touch /newdir/f",
    ]);
    let out = b.ok(&["diff", "cc"]);
    assert_eq!(
        stdout(&out),
        "A /added\nC /etc\nD /etc/group\nC /etc/passwd\nA /newdir\nA /newdir/f\n",
        "{}",
        describe(&out)
    );
    // The mount points the runtime needs (/proc, /etc/hosts...) are not the container's
    // changes (they come from the image's init layer), as under Docker.
    b.ok(&["run", "--name", "quiet", "bb", "mkdir", "/only"]);
    assert_eq!(stdout(&b.ok(&["diff", "quiet"])), "A /only\n");
    b.ok(&["rm", "quiet"]);
    let out = b.ok(&["export", "cc"]);
    let listing = tar_list(&out.stdout);
    for want in ["added", "bin/busybox", "etc/passwd", "newdir/f"] {
        assert!(listing.iter().any(|n| n == want), "{want} in {listing:?}");
    }
    assert!(
        !listing.iter().any(|n| n == "etc/group"),
        "deleted file exported"
    );
    let file = b.scratch.join("c.tar");
    b.ok(&["export", "-o", path_str(&file), "cc"]);
    let listing = tar_list(&std::fs::read(&file).expect("read export"));
    assert!(listing.iter().any(|n| n == "added"));

    // Running too: export sees the merged tree.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "rr",
        "bb",
        "sh",
        "-c",
        "echo live > /live; exec sleep 60",
    ]);
    wait_until("the running container's file in export", || {
        tar_list(&b.ok(&["export", "rr"]).stdout)
            .iter()
            .any(|n| n == "live")
    });
    b.ok(&["rm", "-f", "rr", "cc"]);
    assert_no_mounts(&b);
}

#[test]
fn bad_mount_input_is_one_line_exit_125_and_leaves_nothing() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-bad");
    b.import_busybox("bb");
    let cases: [(&[&str], &str); 6] = [
        (
            &["-v", "rel/dir:/x"],
            "includes invalid characters for a local volume name",
        ),
        (&["-v", "/tmp:rel"], "mount path must be absolute"),
        (
            &["--mount", "type=bogus,target=/x"],
            "invalid mount config for type \"bogus\": mount type unknown",
        ),
        (
            &["--mount", "type=bind,source=/no/such/berth/dir,target=/x"],
            "bind source path does not exist",
        ),
        (
            &["--mount", "target=/x"],
            "invalid argument \"target=/x\" for \"--mount\" flag: type is required",
        ),
        (
            &["-v", "/tmp:/x", "-v", "/tmp:/x"],
            "Duplicate mount point: /x",
        ),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["bb", "true"]);
        assert_refused(&b.cmd(&args), needle);
    }
    assert_refused(
        &b.cmd(&["cp", "/etc/hostname", "nope:/x"]),
        "no such container: nope",
    );
    assert_refused(&b.cmd(&["diff", "nope"]), "no such container: nope");
    assert_refused(&b.cmd(&["export", "nope"]), "no such container: nope");
    assert_eq!(
        stdout(&b.ok(&["ps", "-aq"])),
        "",
        "no container was recorded"
    );
    assert_eq!(
        stdout(&b.ok(&["volume", "ls", "-q"])),
        "",
        "no volume was made"
    );
    assert_no_mounts(&b);
}

/// The overlay options of the mount on a running container's rootfs.
fn rootfs_mount_options(b: &Berth, name: &str) -> String {
    let id = b.inspect("{{.Id}}", name);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .find(|l| l.contains(&id) && l.contains(" - overlay "))
        .unwrap_or_else(|| panic!("no overlay mount of {id}"))
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn an_rm_container_writes_volatile_and_survives_restart() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("st-volatile");
    b.import_busybox("bb");
    b.ok(&["run", "-d", "--rm", "--name", "gone", "bb", "sleep", "60"]);
    b.ok(&["run", "-d", "--name", "kept", "bb", "sleep", "60"]);
    // Shown as `volatile` before Linux 6.6, `fsync=volatile` since.
    let volatile = |opts: &str| {
        opts.split(',')
            .any(|o| o == "volatile" || o == "fsync=volatile")
    };
    let gone = rootfs_mount_options(&b, "gone");
    assert!(volatile(&gone), "{gone}");
    let kept = rootfs_mount_options(&b, "kept");
    assert!(!volatile(&kept), "{kept}");
    // Docker's restart keeps an `--rm` container, and the kernel mounts its volatile upper
    // again (its marker cleared): what the container wrote is still there.
    b.ok(&["exec", "gone", "sh", "-c", "echo kept > /written"]);
    b.ok(&["restart", "-t", "0", "gone"]);
    assert_eq!(
        stdout(&b.ok(&["exec", "gone", "cat", "/written"])),
        "kept\n"
    );
    assert_eq!(b.inspect("{{.HostConfig.AutoRemove}}", "gone"), "true");
    // `rm -f` of a running `--rm` container races its monitor's removal: both end well.
    b.ok(&["rm", "-f", "gone", "kept"]);
    assert!(b.containers().is_empty(), "{:?}", b.containers());
    assert_no_mounts(&b);
}
