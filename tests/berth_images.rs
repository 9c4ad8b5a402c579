//! End-to-end tests of berth's image verbs: `images`/`image ls`, `image inspect`, `history`,
//! `tag`, `rmi`, `image prune`, `import -c/-m`, `save`/`load` (round trip, skopeo reading the
//! archive, synthetic multi-layer archives of three styles), `commit`, hostile archives and
//! tarballs (one-line error, exit 125, nothing written outside the store, nothing left in it),
//! and the Debian minbase fixture. Each test has its own `berth-test-` roots (Drop cleans up).

// A test target: helpers outside `#[test]` functions fail the test with `expect` too.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use testutil::images::{ArchiveImage, ArchiveMembers, ArchiveStyle, Layer, hex, multilayer_layers};
use testutil::{Berth, describe, stdout, wait_until};

/// The busybox rootfs tarball in the test's scratch dir, built once per test.
fn busybox_tarball(b: &Berth) -> PathBuf {
    let tarball = b.scratch.join("busybox.tar");
    if tarball.exists() {
        return tarball;
    }
    testutil::images::busybox_tarball(&b.scratch)
}

/// `berth import [extra...] busybox.tar name`; returns the image id.
fn import_busybox(b: &Berth, name: &str, extra: &[&str]) -> String {
    let tarball = busybox_tarball(b);
    let mut args = vec!["import"];
    args.extend_from_slice(extra);
    args.push(tarball.to_str().expect("utf-8 path"));
    args.push(name);
    b.stdout(&args).trim().to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Names in a directory (empty when it does not exist).
fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Blobs, layers and ingest files: what a failed write must leave as it found it.
fn store_state(b: &Berth) -> [BTreeSet<String>; 3] {
    [
        names(&b.root.join("blobs/sha256")),
        names(&b.root.join("layers")),
        names(&b.root.join("ingest")),
    ]
}

/// Asserts Docker's failure shape: exit 125 and one `berth: ...` line naming `needle`.
fn assert_fails(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(125), "{}", describe(out));
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("berth: "), "{err}");
    assert!(err.contains(needle), "error names {needle:?}: {err}");
}

fn inspect(b: &Berth, image: &str) -> Value {
    let v: Value = serde_json::from_str(&b.stdout(&["image", "inspect", image])).expect("json");
    v[0].clone()
}

/// Member paths of a tar (gzip or not) given as bytes.
fn tar_members(bytes: &[u8]) -> Vec<String> {
    let plain: Box<dyn std::io::Read + '_> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut ar = tar::Archive::new(plain);
    ar.entries()
        .expect("tar entries")
        .map(|e| {
            let e = e.expect("tar entry");
            String::from_utf8_lossy(&e.path_bytes()).into_owned()
        })
        .collect()
}

#[test]
fn list_tag_inspect_history_and_rmi_follow_docker() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("img-verbs");
    let id = import_busybox(
        &b,
        "bb:1",
        &["-c", "LABEL team=infra", "-m", "first import"],
    );
    let short = &id[7..19];
    b.ok(&["tag", "bb:1", "bb:2"]);
    b.ok(&["image", "tag", short, "other/x:y"]);
    assert_fails(&b.cmd(&["tag", "bb:1", "Upper:1"]), "Upper:1");

    let table = b.stdout(&["images"]);
    let mut lines = table.lines();
    let header = lines.next().expect("header");
    assert!(header.starts_with("REPOSITORY"), "{header}");
    assert_eq!(lines.filter(|l| l.contains(short)).count(), 3, "{table}");
    let refs = b.stdout(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    let refs: BTreeSet<&str> = refs.lines().collect();
    assert_eq!(refs, BTreeSet::from(["bb:1", "bb:2", "other/x:y"]));
    assert_eq!(
        b.stdout(&["images", "--filter", "reference=bb", "-q"])
            .trim(),
        short
    );
    assert_eq!(b.stdout(&["images", "bb:2", "--format", "{{.Tag}}"]), "2\n");
    assert_eq!(
        b.stdout(&["images", "-f", "label=team=infra", "-q", "--no-trunc"])
            .trim(),
        id
    );
    assert_eq!(b.stdout(&["images", "-f", "label=team=other", "-q"]), "");
    assert_eq!(b.stdout(&["images", "-f", "dangling=true", "-q"]), "");
    let digests = b.stdout(&["images", "--digests"]);
    assert!(
        digests.lines().next().expect("header").contains("DIGEST"),
        "{digests}"
    );
    let table_fmt = b.stdout(&["images", "--format", "table {{.ID}}\\t{{.Tag}}"]);
    assert!(table_fmt.starts_with("IMAGE ID"), "{table_fmt}");
    for line in b.stdout(&["images", "--format", "json"]).lines() {
        let row: Value = serde_json::from_str(line).expect("json line");
        assert_eq!(row["ID"], short);
    }
    let bad = b.cmd(&["images", "--filter", "colour=red"]);
    assert_fails(&bad, "filter");

    let img = inspect(&b, "bb:1");
    assert_eq!(img["Id"], id.as_str());
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["Comment"], "first import");
    assert_eq!(img["Config"]["Labels"]["team"], "infra");
    assert_eq!(img["RootFS"]["Layers"].as_array().map(Vec::len), Some(1));
    let tags: BTreeSet<&str> = img["RepoTags"]
        .as_array()
        .expect("RepoTags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(tags, BTreeSet::from(["bb:1", "bb:2", "other/x:y"]));
    assert_eq!(
        b.stdout(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}} {{.Config.Labels.team}}",
            "bb:2"
        ]),
        format!("{id} infra\n")
    );

    let history = b.stdout(&["history", "bb:1"]);
    let mut hl = history.lines();
    assert!(hl.next().expect("header").starts_with("IMAGE"), "{history}");
    let row = hl.next().expect("row");
    assert!(
        row.starts_with(short) && row.contains("first import"),
        "{row}"
    );
    assert_eq!(
        b.stdout(&["history", "-q", "--no-trunc", "bb:1"]).trim(),
        id
    );

    // By name with other names left: untag only.
    assert_eq!(b.stdout(&["rmi", "bb:2"]), "Untagged: bb:2\n");
    // By id with several names: Docker wants -f.
    let refused = b.cmd(&["rmi", short]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        stderr(&refused).contains("multiple repositories"),
        "{}",
        stderr(&refused)
    );
    let missing = b.cmd(&["rmi", "nope:1"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no such image"),
        "{}",
        stderr(&missing)
    );
    let removed = b.stdout(&["rmi", "-f", short]);
    assert!(
        removed.contains("Untagged: bb:1") && removed.contains("Untagged: other/x:y"),
        "{removed}"
    );
    assert!(removed.contains(&format!("Deleted: {id}")), "{removed}");
    assert_eq!(b.stdout(&["images", "-q"]), "");
    let [blobs, layers, _] = store_state(&b);
    assert!(blobs.is_empty(), "blobs collected: {blobs:?}");
    assert!(layers.is_empty(), "layers collected: {layers:?}");
}

#[test]
fn import_change_and_message_configure_the_image() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("img-import");
    import_busybox(
        &b,
        "conf:1",
        &[
            "-c",
            "ENV GREETING=\"hello world\"",
            "-c",
            r#"CMD ["sh", "-c", "echo $GREETING from $(pwd) as $(id -u)"]"#,
            "--change",
            "WORKDIR /tmp",
            "-c",
            "EXPOSE 8080/udp 80",
            "-c",
            "USER 1000",
            "-c",
            "STOPSIGNAL SIGINT",
            "-c",
            "VOLUME /data",
            "-m",
            "configured",
        ],
    );
    assert_eq!(
        b.stdout(&["run", "--rm", "conf:1"]),
        "hello world from /tmp as 1000\n"
    );
    let img = inspect(&b, "conf:1");
    let cfg = &img["Config"];
    assert_eq!(cfg["ExposedPorts"]["80/tcp"], serde_json::json!({}));
    assert_eq!(cfg["ExposedPorts"]["8080/udp"], serde_json::json!({}));
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(cfg["User"], "1000");
    assert_eq!(cfg["Volumes"]["/data"], serde_json::json!({}));
    assert_eq!(img["Comment"], "configured");

    // A compressed rootfs tarball imports too (kept compressed; DiffID of the plain tar).
    let tarball = busybox_tarball(&b);
    let plain = fs::read(&tarball).expect("read tarball");
    let gz = testutil::images::gzip(&plain);
    let out = b.cmd_with_input(&["import", "-", "gz:1"], &gz);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(b.stdout(&["run", "--rm", "gz:1", "echo", "gz"]), "gz\n");
    assert_eq!(
        b.stdout(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", "gz:1"]),
        format!("[\"sha256:{}\"]\n", hex(&plain))
    );

    let zst = b.scratch.join("busybox.tar.zst");
    let zstd = Command::new("zstd")
        .arg("-q")
        .arg(&tarball)
        .arg("-o")
        .arg(&zst)
        .status();
    if zstd.is_ok_and(|s| s.success()) {
        b.ok(&["import", zst.to_str().expect("utf-8"), "zst:1"]);
        assert_eq!(b.stdout(&["run", "--rm", "zst:1", "echo", "zst"]), "zst\n");
    } else {
        eprintln!("zstd not installed: zstd import not checked");
    }

    let before = store_state(&b);
    let bad = b.cmd(&[
        "import",
        "-c",
        "RUN rm -rf /",
        tarball.to_str().expect("utf-8"),
        "bad:1",
    ]);
    assert_fails(&bad, "RUN rm -rf /");
    let bad = b.cmd(&[
        "import",
        "-c",
        "EXPOSE http",
        tarball.to_str().expect("utf-8"),
    ]);
    assert_fails(&bad, "EXPOSE http");
    assert_eq!(store_state(&b), before, "a refused import writes nothing");
}

#[test]
fn save_rmi_load_run_round_trip_and_skopeo_reads_the_archive() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("img-save");
    let id = import_busybox(&b, "bb:1", &["-c", "CMD [\"echo\", \"from saved\"]"]);
    b.ok(&["tag", "bb:1", "bb:2"]);
    let archive = b.scratch.join("saved.tar");
    let archive_s = archive.to_str().expect("utf-8");
    b.ok(&["save", "-o", archive_s, "bb:1", "bb:2"]);
    let bytes = fs::read(&archive).expect("read archive");
    let members = tar_members(&bytes);
    for m in ["index.json", "oci-layout", "manifest.json", "repositories"] {
        assert!(members.iter().any(|p| p == m), "{m} in {members:?}");
    }
    let skopeo = Path::new("/usr/bin/skopeo");
    if skopeo.exists() {
        // Two images: the OCI side is picked by its `org.opencontainers.image.ref.name` (the tag).
        for transport in [
            format!("docker-archive:{archive_s}"),
            format!("oci-archive:{archive_s}:1"),
        ] {
            let out = Command::new(skopeo)
                .arg("inspect")
                .arg(&transport)
                .output()
                .expect("run skopeo");
            assert!(
                out.status.success(),
                "skopeo {transport}: {}",
                describe(&out)
            );
            let v: Value = serde_json::from_slice(&out.stdout).expect("skopeo json");
            assert_eq!(v["Os"], "linux", "{transport}: {v}");
            assert_eq!(
                v["Layers"].as_array().map(Vec::len),
                Some(1),
                "{transport}: {v}"
            );
        }
        // The docker-archive names are what `docker load` would show.
        let out = Command::new(skopeo)
            .args(["inspect", "--config"])
            .arg(format!("docker-archive:{archive_s}:bb:2"))
            .output()
            .expect("run skopeo");
        assert!(out.status.success(), "skopeo by name: {}", describe(&out));
    } else {
        eprintln!("skopeo not installed: docker-archive compatibility not cross-checked");
    }

    b.ok(&["rmi", "bb:1", "bb:2"]);
    assert_eq!(b.stdout(&["images", "-q"]), "");
    let loaded = b.stdout(&["load", "-i", archive_s]);
    let loaded: BTreeSet<&str> = loaded.lines().collect();
    assert_eq!(
        loaded,
        BTreeSet::from(["Loaded image: bb:1", "Loaded image: bb:2"])
    );
    assert_eq!(
        b.stdout(&["images", "-q", "--no-trunc"]).trim(),
        id,
        "same id after the round trip"
    );
    assert_eq!(b.stdout(&["run", "--rm", "bb:2"]), "from saved\n");

    // stdout → stdin, into a second store.
    let out = b.ok(&["save", "bb:1"]);
    assert_eq!(out.stdout, bytes_of_single_save(&b, "bb:1"));
    let other = Berth::new("img-save-2");
    let res = other.cmd_with_input(&["load"], &out.stdout);
    assert!(res.status.success(), "{}", describe(&res));
    assert_eq!(stdout(&res), "Loaded image: bb:1\n");
    assert_eq!(other.stdout(&["run", "--rm", "bb:1", "echo", "ok"]), "ok\n");
    // Loading over a name another image holds moves the name, as Docker says.
    let moved = import_busybox(&other, "bb:1", &["-c", "ENV MOVED=1"]);
    let res = other.cmd_with_input(&["load"], &out.stdout);
    assert_eq!(
        stdout(&res),
        format!(
            "The image bb:1 already exists, renaming the old one with ID {moved} to empty string\nLoaded image: bb:1\n"
        ),
        "{}",
        describe(&res)
    );
    // Saved by id: no names; load prints the id.
    let by_id = other.ok(&["save", &id[7..19]]);
    let third = Berth::new("img-save-3");
    let res = third.cmd_with_input(&["load"], &by_id.stdout);
    assert_eq!(
        stdout(&res),
        format!("Loaded image ID: {id}\n"),
        "{}",
        describe(&res)
    );
}

/// `berth save -o FILE image` read back: saves are deterministic.
fn bytes_of_single_save(b: &Berth, image: &str) -> Vec<u8> {
    let path = b.scratch.join("single.tar");
    b.ok(&["save", "-o", path.to_str().expect("utf-8"), image]);
    fs::read(path).expect("read single save")
}

#[test]
fn load_reads_three_archive_styles_with_whiteouts_opaque_dirs_and_links() {
    if !testutil::require_root() {
        return;
    }
    let busybox = fs::read(testutil::HOST_BUSYBOX).expect("read busybox");
    let script = "cd /etc; busybox test -e a || echo a-gone; busybox cat a2 b; \
                  busybox ls /opaque /keep; busybox readlink link; \
                  [ $(busybox stat -c %i c) = $(busybox stat -c %i c-link) ] && echo linked";
    let expected = "a-gone\na2\nb\n/keep:\nx\n\n/opaque:\nnew\nb\nlinked\n";
    for style in [
        ArchiveStyle::Docker25,
        ArchiveStyle::DockerLegacy,
        ArchiveStyle::Oci,
    ] {
        let b = Berth::new("img-styles");
        let mut img = ArchiveImage::new("multi:1", multilayer_layers(&busybox), &["/bin/sh"]);
        img.gzip = style != ArchiveStyle::DockerLegacy;
        let archive = ArchiveMembers::of(&[img], style).tar();
        let out = b.cmd_with_input(&["load"], &archive);
        assert!(out.status.success(), "{style:?}: {}", describe(&out));
        assert_eq!(stdout(&out), "Loaded image: multi:1\n", "{style:?}");
        let got = b.stdout(&["run", "--rm", "multi:1", "/bin/sh", "-c", script]);
        assert_eq!(got, expected, "{style:?}");
        let history = b.stdout(&["history", "-q", "multi:1"]);
        assert_eq!(history.lines().count(), 3, "{style:?}: {history}");
        assert_eq!(
            inspect(&b, "multi:1")["RootFS"]["Layers"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
    }
}

#[test]
fn commit_captures_changes_of_stopped_and_running_containers() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("img-commit");
    import_busybox(&b, "bb", &[]);
    b.ok(&[
        "run",
        "--name",
        "c1",
        "bb",
        "sh",
        "-c",
        "echo new > /etc/new; rm /etc/group; mkdir -p /data/sub; echo x > /data/sub/f; \
         rm -rf /home; mkdir /home; echo fresh > /home/only",
    ]);
    let id = b
        .stdout(&[
            "commit",
            "-m",
            "my change",
            "-a",
            "Ann <ann@example.org>",
            "-c",
            r#"CMD ["cat", "/etc/new"]"#,
            "c1",
            "snap:1",
        ])
        .trim()
        .to_owned();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(b.stdout(&["run", "--rm", "snap:1"]), "new\n");
    assert_eq!(
        b.stdout(&[
            "run",
            "--rm",
            "snap:1",
            "sh",
            "-c",
            "test ! -e /etc/group && ls /home && cat /data/sub/f"
        ]),
        "only\nx\n",
        "deleted files stay deleted and the opaque /home hides the old one"
    );
    let img = inspect(&b, "snap:1");
    assert_eq!(img["Author"], "Ann <ann@example.org>");
    assert_eq!(img["Comment"], "my change");
    assert_eq!(img["RootFS"]["Layers"].as_array().map(Vec::len), Some(2));
    let history = b.stdout(&["history", "--no-trunc", "snap:1"]);
    assert!(
        history
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("my change")),
        "{history}"
    );
    let sizes = b.stdout(&["history", "-H=false", "--format", "{{.Size}}", "snap:1"]);
    let top: i64 = sizes
        .lines()
        .next()
        .and_then(|l| l.parse().ok())
        .expect("size");
    assert!(top >= 12, "the committed layer's files count: {sizes}");

    // The new layer is in the image-spec form: AUFS whiteouts, an opaque marker.
    let archive = b.scratch.join("snap.tar");
    b.ok(&["save", "-o", archive.to_str().expect("utf-8"), "snap:1"]);
    let manifest: Value =
        serde_json::from_slice(&member(&fs::read(&archive).expect("read"), "manifest.json"))
            .expect("manifest.json");
    let top = manifest[0]["Layers"][1]
        .as_str()
        .expect("top layer path")
        .to_owned();
    let layer = member(&fs::read(&archive).expect("read"), &top);
    let entries = tar_members(&layer);
    for want in [
        "etc/.wh.group",
        "home/.wh..wh..opq",
        "data/sub/f",
        "etc/new",
    ] {
        assert!(entries.iter().any(|e| e == want), "{want} in {entries:?}");
    }

    // A running container, paused while committed (the default) and after without pausing.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "c2",
        "bb",
        "sh",
        "-c",
        "echo live > /live; exec sleep 1000",
    ]);
    let cid = b
        .stdout(&["inspect", "-f", "{{.Id}}", "c2"])
        .trim()
        .to_owned();
    let upper = b.root.join("containers").join(&cid).join("upper/live");
    wait_until("the container wrote /live", || upper.exists());
    b.ok(&["commit", "c2", "live:1"]);
    assert_eq!(
        b.stdout(&["inspect", "-f", "{{.State.Status}}", "c2"])
            .trim(),
        "running",
        "resumed after the commit"
    );
    b.ok(&["commit", "--pause=false", "c2", "live:2"]);
    assert_eq!(
        b.stdout(&["run", "--rm", "live:1", "cat", "/live"]),
        "live\n"
    );
    assert_eq!(
        b.stdout(&["run", "--rm", "live:2", "cat", "/live"]),
        "live\n"
    );

    let missing = b.cmd(&["commit", "no-such-container"]);
    assert_fails(&missing, "no-such-container");
}

/// The bytes of one member of a tar.
fn member(archive: &[u8], path: &str) -> Vec<u8> {
    let mut ar = tar::Archive::new(archive);
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.path_bytes().as_ref() == path.as_bytes() {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut out).expect("read member");
            return out;
        }
    }
    panic!("no member {path}");
}

#[test]
fn image_prune_removes_dangling_then_unused_images() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("img-prune");
    let first = import_busybox(&b, "bb:1", &[]);
    // The same name on a new image leaves the first one dangling.
    let second = import_busybox(&b, "bb:1", &["-c", "ENV X=1"]);
    assert_ne!(first, second);
    assert_eq!(
        b.stdout(&["images", "-f", "dangling=true", "-q", "--no-trunc"])
            .trim(),
        first
    );
    assert_eq!(
        b.stdout(&["images", "-f", "before=bb:1", "-q", "--no-trunc"])
            .trim(),
        first
    );
    assert_eq!(
        b.stdout(&[
            "images",
            "-f",
            &format!("since={first}"),
            "-q",
            "--no-trunc"
        ])
        .trim(),
        second
    );
    let declined = b.cmd_with_input(&["image", "prune"], b"n\n");
    assert!(
        stdout(&declined).contains("WARNING!"),
        "{}",
        describe(&declined)
    );
    assert_eq!(
        b.stdout(&["images", "-q"]).lines().count(),
        2,
        "declined: nothing removed"
    );
    let pruned = b.stdout(&["image", "prune", "-f"]);
    assert!(pruned.contains(&format!("deleted: {first}")), "{pruned}");
    assert!(pruned.contains("Total reclaimed space:"), "{pruned}");
    assert_eq!(b.stdout(&["images", "-q", "--no-trunc"]).trim(), second);

    b.ok(&["run", "--name", "user", "bb:1", "true"]);
    let third = import_busybox(&b, "other:1", &["-c", "ENV Y=2"]);
    let pruned = b.stdout(&["image", "prune", "-a", "-f"]);
    assert!(pruned.contains(&format!("deleted: {third}")), "{pruned}");
    assert!(
        !pruned.contains(&second),
        "an image with a container stays: {pruned}"
    );
    let refused = b.cmd(&["rmi", "bb:1"]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        stderr(&refused).contains("container"),
        "{}",
        stderr(&refused)
    );
    // Forced: the name goes, the data stays while the container exists.
    b.ok(&["rmi", "-f", "bb:1"]);
    let [_, layers, _] = store_state(&b);
    assert!(
        !layers.is_empty(),
        "a container's image data stays after rmi -f"
    );
    b.ok(&["rm", "user"]);
    b.ok(&["image", "prune", "-a", "-f"]);
    let [blobs, layers, ingest] = store_state(&b);
    assert!(
        blobs.is_empty() && layers.is_empty() && ingest.is_empty(),
        "no blob, layer, staging dir or ingest file left: {blobs:?} {layers:?} {ingest:?}"
    );
}

/// A Docker 25 archive of one image with `layers` (gzip) and `config` as its `config` object.
fn archive_of(layers: Vec<Vec<u8>>, config: Value) -> ArchiveMembers {
    let mut img = ArchiveImage::new("hostile:1", layers, &["true"]);
    img.config = config;
    ArchiveMembers::of(&[img], ArchiveStyle::Docker25)
}

#[test]
fn hostile_archives_and_tarballs_fail_cleanly_and_write_nothing_outside_the_store() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("img-hostile");
    let good = import_busybox(&b, "bb:1", &[]);
    let canary = b.scratch.join("canary");
    fs::create_dir_all(&canary).expect("canary dir");
    fs::write(canary.join("keep"), "safe\n").expect("canary file");
    let canary_s = canary.to_str().expect("utf-8").to_owned();
    let climb = format!("{}{}", "../".repeat(12), canary_s.trim_start_matches('/'));
    let before = store_state(&b);

    let symlink_escape = Layer::new()
        .symlink("esc", &canary_s)
        .file("esc/pwned", b"owned\n")
        .finish();
    let hardlink_climb = Layer::new()
        .file("a", b"a")
        .hardlink("hl", &format!("{climb}/keep"))
        .finish();
    let hardlink_absolute = Layer::new()
        .hardlink("hl", &format!("{canary_s}/keep"))
        .finish();
    let ok_layer = Layer::new().file("f", b"f\n").finish();

    let mut cases: Vec<(&str, &str, Vec<u8>, String)> = vec![
        (
            "import",
            "absolute symlink",
            symlink_escape.clone(),
            "esc/pwned".into(),
        ),
        (
            "import",
            "hard link climbing out",
            hardlink_climb.clone(),
            "escapes the layer".into(),
        ),
        (
            "import",
            "absolute hard link",
            hardlink_absolute.clone(),
            "hard link".into(),
        ),
        (
            "load",
            "absolute symlink",
            archive_of(vec![symlink_escape], Value::Null).tar(),
            "esc/pwned".into(),
        ),
        (
            "load",
            "hard link climbing out",
            archive_of(vec![hardlink_climb], Value::Null).tar(),
            "escapes the layer".into(),
        ),
        (
            "load",
            "absolute hard link",
            archive_of(vec![hardlink_absolute], Value::Null).tar(),
            "hard link".into(),
        ),
        (
            "load",
            "not an archive",
            b"this is not a tar archive at all, just text\n".repeat(20),
            "archive".into(),
        ),
        (
            "import",
            "not a tarball",
            b"garbage ".repeat(100),
            "layer".into(),
        ),
    ];

    // A manifest, then a config, whose bytes do not match their digest names.
    for (what, pick) in [("manifest", 2usize), ("config", 0usize)] {
        let mut m = archive_of(vec![ok_layer.clone()], serde_json::json!({"Cmd": ["true"]}));
        let blobs = m.paths("blobs/sha256/");
        // Members are pushed config, layers, manifest.
        let path = blobs[pick].clone();
        m.get_mut(&path).extend_from_slice(b" ");
        cases.push(("load", what, m.tar(), path));
    }
    // Bad Entrypoint / Cmd types in the config.
    cases.push((
        "load",
        "string Entrypoint",
        archive_of(
            vec![ok_layer.clone()],
            serde_json::json!({"Entrypoint": "/bin/sh -c true"}),
        )
        .tar(),
        "config.Entrypoint".into(),
    ));
    cases.push((
        "load",
        "numeric Cmd",
        archive_of(vec![ok_layer.clone()], serde_json::json!({"Cmd": 42})).tar(),
        "config.Cmd".into(),
    ));
    // A truncated layer (legacy archives name layers without a digest, so only the DiffID
    // and the tar reader can catch it), and an archive cut short.
    let mut legacy = ArchiveImage::new(
        "hostile:1",
        vec![Layer::new().file("big", &[7u8; 8192]).finish()],
        &["true"],
    );
    legacy.gzip = true;
    let mut m = ArchiveMembers::of(&[legacy], ArchiveStyle::DockerLegacy);
    let layer_path = m
        .paths("")
        .into_iter()
        .find(|p| p.ends_with("layer.tar"))
        .expect("layer");
    let layer = m.get_mut(&layer_path);
    let half = layer.len() / 2;
    layer.truncate(half);
    cases.push(("load", "truncated layer", m.tar(), "layer".into()));
    let full = archive_of(vec![ok_layer], serde_json::json!({"Cmd": ["true"]})).tar();
    cases.push((
        "load",
        "truncated archive",
        full[..full.len() / 2].to_vec(),
        "archive".into(),
    ));

    for (verb, what, bytes, needle) in &cases {
        let args: Vec<&str> = match *verb {
            "import" => vec!["import", "-", "hostile:1"],
            _ => vec!["load"],
        };
        let out = b.cmd_with_input(&args, bytes);
        eprintln!("{verb} {what}: {}", stderr(&out).trim());
        assert_fails(&out, needle);
        assert_eq!(
            names(&canary),
            BTreeSet::from(["keep".to_owned()]),
            "{verb} {what}: canary dir"
        );
        assert_eq!(
            fs::read_to_string(canary.join("keep")).expect("canary"),
            "safe\n",
            "{verb} {what}"
        );
        assert_eq!(
            store_state(&b),
            before,
            "{verb} {what}: nothing left in the store"
        );
        assert_eq!(
            b.stdout(&["images", "-q", "--no-trunc"]).trim(),
            good,
            "{verb} {what}: no image recorded"
        );
    }

    // `..` entries are contained (Docker's and containerd's behaviour): the file lands inside
    // the layer at the path it names, never outside.
    let dotdot = Layer::new()
        .file(&format!("{climb}/pwned"), b"owned\n")
        .finish();
    let out = b.cmd_with_input(&["import", "-", "dotdot:1"], &dotdot);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        names(&canary),
        BTreeSet::from(["keep".to_owned()]),
        "dotdot: canary dir"
    );
    let layers: Vec<PathBuf> = names(&b.root.join("layers"))
        .iter()
        .map(|l| b.root.join("layers").join(l).join("diff"))
        .filter(|d| {
            d.join(canary_s.trim_start_matches('/'))
                .join("pwned")
                .exists()
        })
        .collect();
    assert_eq!(layers.len(), 1, "the .. entry was contained in its layer");
    let digest_hex = hex(&dotdot);
    assert!(
        b.stdout(&[
            "image",
            "inspect",
            "-f",
            "{{json .RootFS.Layers}}",
            "dotdot:1"
        ])
        .contains(&digest_hex),
        "layer DiffID is the tarball's digest"
    );
}

#[test]
fn debian_minbase_image_runs() {
    if !testutil::require_root() {
        return;
    }
    let tarball = match testutil::debian_minbase() {
        Ok(t) => t,
        Err(reason) => {
            eprintln!("skipped: Debian minbase fixture unavailable: {reason}");
            return;
        }
    };
    let b = Berth::new("img-debian");
    b.ok(&["import", tarball.to_str().expect("utf-8"), "debian"]);
    let version = b.stdout(&["run", "--rm", "debian", "cat", "/etc/debian_version"]);
    assert!(
        version
            .trim()
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit()),
        "{version}"
    );
    assert_eq!(
        b.stdout(&[
            "run",
            "--rm",
            "debian",
            "sh",
            "-c",
            "dpkg-query -W -f '${Package}\\n' dpkg"
        ]),
        "dpkg\n"
    );
}

#[test]
fn concurrent_loads_removals_and_prunes_keep_the_store_consistent() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("img-concurrent");
    let busybox = fs::read(testutil::HOST_BUSYBOX).expect("read busybox");
    let img = ArchiveImage::new("multi:1", multilayer_layers(&busybox), &["/bin/sh"]);
    let archive = ArchiveMembers::of(&[img], ArchiveStyle::Docker25).tar();
    std::thread::scope(|s| {
        let loaders: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..3 {
                        let out = b.cmd_with_input(&["load", "-q"], &archive);
                        assert!(out.status.success(), "{}", describe(&out));
                    }
                })
            })
            .collect();
        s.spawn(|| {
            for _ in 0..6 {
                // Either may find nothing to do; neither may break a load.
                let _ = b.cmd(&["rmi", "-f", "multi:1"]);
                b.ok(&["image", "prune", "-a", "-f"]);
            }
        });
        for l in loaders {
            l.join().expect("loader thread");
        }
    });
    let out = b.cmd_with_input(&["load", "-q"], &archive);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        b.stdout(&[
            "run",
            "--rm",
            "multi:1",
            "/bin/sh",
            "-c",
            "busybox cat /etc/b"
        ]),
        "b\n"
    );
    b.ok(&["rmi", "multi:1"]);
    let [blobs, layers, ingest] = store_state(&b);
    assert!(
        blobs.is_empty() && layers.is_empty() && ingest.is_empty(),
        "{blobs:?} {layers:?} {ingest:?}"
    );
    assert!(
        names(&b.root.join("layers"))
            .iter()
            .all(|n| !n.starts_with(".staging")),
        "no staging dirs left"
    );
}

#[test]
fn a_load_killed_midway_leaves_only_what_the_next_collection_removes() {
    if !testutil::require_root() {
        return;
    }
    let b = Berth::new("img-killed");
    let busybox = fs::read(testutil::HOST_BUSYBOX).expect("read busybox");
    let mut img = ArchiveImage::new("multi:1", multilayer_layers(&busybox), &["/bin/sh"]);
    img.gzip = false;
    let archive = ArchiveMembers::of(&[img], ArchiveStyle::Docker25).tar();
    let mut child = b
        .command(&["load"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn berth load");
    let mut stdin = child.stdin.take().expect("stdin");
    // The config (first member) and part of the busybox layer: one blob committed, one in ingest.
    std::io::Write::write_all(&mut stdin, &archive[..archive.len() / 2]).expect("write half");
    let root = b.root.clone();
    wait_until("a blob committed and another being ingested", || {
        !names(&root.join("blobs/sha256")).is_empty() && !names(&root.join("ingest")).is_empty()
    });
    child.kill().expect("SIGKILL berth load");
    child.wait().expect("reap berth load");
    drop(stdin);
    assert_eq!(b.stdout(&["images", "-q"]), "", "nothing recorded");
    b.ok(&["image", "prune", "-f"]);
    let [blobs, layers, ingest] = store_state(&b);
    assert!(
        blobs.is_empty() && layers.is_empty() && ingest.is_empty(),
        "collected: {blobs:?} {layers:?} {ingest:?}"
    );
}
