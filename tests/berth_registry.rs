//! End-to-end tests of `pull`, `push`, `login`/`logout` and `run --pull` against Debian's
//! `docker-registry` (the CNCF distribution server) on 127.0.0.1, with fixtures pushed and
//! read back by skopeo (a client berth did not write), plus a scripted hostile registry
//! ([`testutil::registry::FakeRegistry`]) for broken blobs, oversized manifests, traversal
//! layers, endless and stalled bodies and a registry that dies mid-layer.

// A test target: helpers outside `#[test]` functions fail the test with `expect` too.
#![allow(clippy::expect_used)]

use std::ops::Deref;
use std::path::Path;
use std::process::Output;

use testutil::images::{Layer, sha256};
use testutil::registry::{
    Compression, FakeRegistry, LayoutEntry, OciImage, Registry, Reply, TokenServer, host_arch,
    push_layout, skopeo, tools_present, write_layout,
};
use testutil::{Berth, NetnsEntered, describe, stdout};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A registry test's berth: roots with a registry configuration that allows loopback, and the
/// test's thread moved into their network namespace meanwhile, so that the registries, token
/// servers, proxies and skopeo the test starts use the loopback berth sees (berth's commands
/// never run in the host's namespace).
struct RegBerth {
    b: Berth,
    _inside: NetnsEntered,
}

impl Deref for RegBerth {
    type Target = Berth;
    fn deref(&self) -> &Berth {
        &self.b
    }
}

impl RegBerth {
    /// Other roots, configured alike, in the same network namespace.
    fn second(&self, tag: &str) -> Berth {
        let b = self.b.sharing_netns(tag);
        b.registry_config("{}");
        b
    }
}

fn berth(tag: &str) -> Option<RegBerth> {
    if !testutil::require_root() || !tools_present() {
        return None;
    }
    let b = Berth::new(tag);
    b.registry_config("{}");
    let inside = b.netns.enter();
    Some(RegBerth { b, _inside: inside })
}

/// The uncompressed busybox rootfs tar.
fn busybox_layer(b: &Berth) -> Vec<u8> {
    let dir = b.scratch.join("bb");
    let path = testutil::images::busybox_tarball(&dir);
    std::fs::read(path).expect("read busybox tarball")
}

/// Pushes `entries` (an OCI layout built in `dir`) to `reg` as `<repo>:<name>` each.
fn push_all(reg: &Registry, dir: &Path, repo: &str, entries: &[(&str, LayoutEntry)]) {
    write_layout(dir, entries);
    for (name, entry) in entries {
        let all = matches!(entry, LayoutEntry::Index(_));
        push_layout(dir, name, &format!("{}/{repo}:{name}", reg.addr), all);
    }
}

/// What must never be left after a failed pull: ingest files, staging dirs, mounts.
fn assert_no_partial_state(b: &Berth) {
    let ingest: Vec<_> = std::fs::read_dir(b.root.join("ingest"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(ingest.is_empty(), "ingest files left: {ingest:?}");
    let staging: Vec<_> = std::fs::read_dir(b.root.join("layers"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".staging"))
                .collect()
        })
        .unwrap_or_default();
    assert!(staging.is_empty(), "staging dirs left: {staging:?}");
    assert!(b.mounts().is_empty(), "mounts left: {:?}", b.mounts());
}

/// After an interrupted pull: the verified `first` layer's blob is kept, `second`'s is not.
fn assert_kept_only(b: &Berth, first: &str, second: &str) {
    let blobs = b.root.join("blobs/sha256");
    assert!(blobs.join(&first[7..]).exists(), "verified layer kept");
    assert!(!blobs.join(&second[7..]).exists(), "unverified layer named");
}

/// Pulls `name` again: `first` is not fetched again, `second` is.
fn assert_resumed(b: &Berth, name: &str, first: &str, second: &str) {
    let out = stdout(&b.ok(&["pull", name]));
    let exists = format!("{}: Already exists", &first[7..19]);
    let pulled = format!("{}: Pull complete", &second[7..19]);
    assert!(out.contains(&exists) && out.contains(&pulled), "{out}");
}

fn blob_count(b: &Berth) -> usize {
    std::fs::read_dir(b.root.join("blobs/sha256")).map_or(0, |d| d.count())
}

#[test]
fn pull_by_tag_and_by_digest_then_run() {
    let Some(b) = berth("pull-tag") else { return };
    let reg = Registry::start("reg-pull");
    let img = OciImage::new(
        &[busybox_layer(&b)],
        Compression::Gzip,
        host_arch(),
        &["echo", "pulled by tag"],
        "tag",
    );
    push_all(
        &reg,
        &b.scratch.join("layout"),
        "bb",
        &[("1", LayoutEntry::Image(img.clone()))],
    );
    let name = format!("{}/bb:1", reg.addr);

    let out = b.ok(&["pull", &name]);
    let text = stdout(&out);
    assert!(text.starts_with("1: Pulling from bb\n"), "{text}");
    assert!(text.contains("Pull complete"), "{text}");
    assert!(
        text.contains(&format!("Digest: {}", img.digest())),
        "{text}"
    );
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {name}")),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some(name.as_str()), "{text}");
    assert_eq!(b.stdout(&["run", "--rm", &name]), "pulled by tag\n");
    assert_eq!(b.inspect("{{.Id}}", &name), sha256(&img.config));
    // Docker's RepoDigests: the digest the tag resolved to names the image too.
    let by_digest = format!("{}/bb@{}", reg.addr, img.digest());
    assert_eq!(
        b.inspect("{{json .RepoTags}} {{json .RepoDigests}}", &name),
        format!("[\"{name}\"] [\"{by_digest}\"]")
    );
    assert_eq!(
        b.stdout(&[
            "images",
            "--digests",
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}}"
        ]),
        format!("{}/bb 1 {}\n", reg.addr, img.digest())
    );

    // Again: nothing new.
    let again = stdout(&b.ok(&["pull", &name]));
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );
    assert!(!again.contains("Pull complete"), "{again}");

    // Docker's image events.
    let events = stdout(&b.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "--filter",
        "event=pull",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
    ]));
    let expect = format!("image pull {name} {}/bb\n", reg.addr);
    assert_eq!(events, expect.repeat(2), "{events}");

    // By digest into a second root, quietly.
    let b2 = b.second("pull-digest");
    let pinned = format!("{}/bb@{}", reg.addr, img.digest());
    let quiet = stdout(&b2.ok(&["pull", "-q", &pinned]));
    assert_eq!(quiet, format!("{pinned}\n"));
    assert_eq!(b2.stdout(&["run", "--rm", &pinned]), "pulled by tag\n");

    // Unknown tag and unknown repository: one clear line, exit 1.
    let missing = b.cmd(&["pull", &format!("{}/bb:nope", reg.addr)]);
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    assert!(
        stderr(&missing).contains(&format!("manifest for {}/bb:nope not found", reg.addr)),
        "{}",
        describe(&missing)
    );
    assert_eq!(
        stderr(&missing).lines().count(),
        1,
        "{}",
        describe(&missing)
    );

    // The tag was the last of its repository: its digest reference goes with it, and the image.
    let removed = stdout(&b.ok(&["rmi", &name]));
    let expect = format!("Untagged: {name}\nUntagged: {by_digest}\nDeleted: ");
    assert!(removed.starts_with(&expect), "{removed}");
    assert_eq!(b.stdout(&["images", "-q"]), "");
}

#[test]
fn index_with_several_platforms_picks_the_host_or_the_asked_platform() {
    let Some(b) = berth("pull-index") else { return };
    let reg = Registry::start("reg-index");
    let bb = busybox_layer(&b);
    let other = if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let host = OciImage::new(
        std::slice::from_ref(&bb),
        Compression::Gzip,
        host_arch(),
        &["echo", "host"],
        "host",
    );
    let foreign = OciImage::new(
        &[bb, Layer::new().file("foreign", b"1").finish()],
        Compression::Gzip,
        other,
        &["echo", "foreign"],
        "foreign",
    );
    push_all(
        &reg,
        &b.scratch.join("layout"),
        "multi",
        &[("1", LayoutEntry::Index(vec![foreign.clone(), host.clone()]))],
    );
    let name = format!("{}/multi:1", reg.addr);
    let out = stdout(&b.ok(&["pull", &name]));
    assert_eq!(b.inspect("{{.Id}}", &name), sha256(&host.config));
    assert_eq!(b.stdout(&["run", "--rm", &name]), "host\n");
    // RepoDigests names the index, what the tag points at, as Docker's does.
    let index = out
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .expect("digest line")
        .to_owned();
    assert_ne!(index, host.digest(), "{out}");
    let repo_digests = format!("[\"{}/multi@{index}\"]", reg.addr);
    assert_eq!(b.inspect("{{json .RepoDigests}}", &name), repo_digests);

    let b2 = b.second("pull-platform");
    b2.ok(&["pull", "--platform", &format!("linux/{other}"), &name]);
    assert_eq!(b2.inspect("{{.Id}}", &name), sha256(&foreign.config));
    assert_eq!(b2.inspect("{{json .RepoDigests}}", &name), repo_digests);

    let none = b2.cmd(&["pull", "--platform", "linux/s390x", &name]);
    assert_eq!(none.status.code(), Some(1), "{}", describe(&none));
    assert!(
        stderr(&none).contains("no manifest for platform linux/s390x"),
        "{}",
        describe(&none)
    );
}

#[test]
fn gzip_zstd_and_plain_layers_unpack_and_present_layers_are_skipped() {
    let Some(b) = berth("pull-compress") else {
        return;
    };
    let reg = Registry::start("reg-compress");
    let bb = busybox_layer(&b);
    let marker = |s: &str| Layer::new().file("which", s.as_bytes()).finish();
    let cat = ["cat", "/which"];
    let make = |c: Compression, tag: &str| {
        OciImage::new(&[bb.clone(), marker(tag)], c, host_arch(), &cat, tag)
    };
    let zst = make(Compression::Zstd, "zst");
    let gz = make(Compression::Gzip, "gz");
    let gz2 = make(Compression::Gzip, "gz2");
    let plain = make(Compression::None, "plain");
    push_all(
        &reg,
        &b.scratch.join("layout"),
        "c",
        &[
            ("zst", LayoutEntry::Image(zst)),
            ("gz", LayoutEntry::Image(gz.clone())),
            ("gz2", LayoutEntry::Image(gz2)),
            ("plain", LayoutEntry::Image(plain)),
        ],
    );
    for tag in ["zst", "gz", "plain"] {
        let name = format!("{}/c:{tag}", reg.addr);
        b.ok(&["pull", &name]);
        assert_eq!(b.stdout(&["run", "--rm", &name]), tag);
    }
    // gz2 shares gz's busybox blob: that layer is not fetched again.
    let shared = &sha256(&gz.layers[0].0)[7..19];
    let out = stdout(&b.ok(&["pull", &format!("{}/c:gz2", reg.addr)]));
    assert!(out.contains(&format!("{shared}: Already exists")), "{out}");
    assert_eq!(
        b.stdout(&["run", "--rm", &format!("{}/c:gz2", reg.addr)]),
        "gz2"
    );
    assert_no_partial_state(&b);
}

#[test]
fn push_of_a_committed_image_reads_back_with_skopeo_and_runs_elsewhere() {
    let Some(b) = berth("push") else { return };
    let reg = Registry::start("reg-push");
    b.import_busybox("bb");
    b.ok(&[
        "run",
        "--name",
        "committer",
        "bb",
        "sh",
        "-c",
        "echo committed > /hello",
    ]);
    let name = format!("{}/committed:1", reg.addr);
    b.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/hello\"]",
        "committer",
        &name,
    ]);
    let out = stdout(&b.ok(&["push", &name]));
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/committed]\n",
            reg.addr
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    let last = out.lines().last().expect("digest line").to_owned();
    let digest = last
        .strip_prefix("1: digest: ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();

    // skopeo reads back the same manifest (digest), config (image id) and layers.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    assert!(raw.status.success(), "{}", describe(&raw));
    assert_eq!(sha256(&raw.stdout), digest);
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).expect("manifest json");
    assert_eq!(
        manifest["config"]["digest"],
        b.inspect("{{.Id}}", &name).as_str()
    );
    let copy = b.scratch.join("copy");
    let out = skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("dir:{}", copy.display()),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let copied = std::fs::read(copy.join("manifest.json")).expect("copied manifest");
    assert_eq!(sha256(&copied), digest);
    for layer in manifest["layers"].as_array().expect("layers") {
        let d = layer["digest"].as_str().expect("layer digest");
        let bytes = std::fs::read(copy.join(&d[7..])).expect("copied layer");
        assert_eq!(sha256(&bytes), d, "layer {d} read back unchanged");
    }

    // Pushing again moves no layer; another repository of the registry mounts them.
    let again = stdout(&b.ok(&["push", &name]));
    assert!(
        again.contains("Layer already exists") && !again.contains(": Pushed"),
        "{again}"
    );
    let other = format!("{}/other:2", reg.addr);
    b.ok(&["tag", &name, &other]);
    let mounted = stdout(&b.ok(&["image", "push", &other]));
    assert!(mounted.contains("Mounted from committed"), "{mounted}");
    assert!(!mounted.contains(": Pushed"), "{mounted}");

    // Another root pulls and runs it.
    let b2 = b.second("push-pull");
    let pulled = stdout(&b2.ok(&["pull", &name]));
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    assert_eq!(b2.stdout(&["run", "--rm", &name]), "committed\n");

    // Every tag of a repository.
    let b3 = b.second("push-all-tags");
    b.ok(&["tag", &name, &format!("{}/committed:2", reg.addr)]);
    b.ok(&["push", "-q", &format!("{}/committed:2", reg.addr)]);
    b3.ok(&["image", "pull", "-a", &format!("{}/committed", reg.addr)]);
    let names = b3.stdout(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(
        names.lines().collect::<std::collections::BTreeSet<_>>(),
        [
            format!("{}/committed:1", reg.addr),
            format!("{}/committed:2", reg.addr)
        ]
        .iter()
        .map(String::as_str)
        .collect()
    );

    // A missing local image is one clear line.
    let missing = b.cmd(&["push", &format!("{}/nothing:1", reg.addr)]);
    assert_ne!(missing.status.code(), Some(0));
    assert!(
        stderr(&missing).contains("no such image"),
        "{}",
        describe(&missing)
    );
}

#[test]
fn run_and_create_pull_missing_images_unless_told_never() {
    let Some(b) = berth("run-pull") else { return };
    let reg = Registry::start("reg-run");
    let img = OciImage::new(
        &[busybox_layer(&b)],
        Compression::Gzip,
        host_arch(),
        &["echo", "on demand"],
        "r",
    );
    push_all(
        &reg,
        &b.scratch.join("layout"),
        "r",
        &[("1", LayoutEntry::Image(img))],
    );
    let name = format!("{}/r:1", reg.addr);

    let never = b.cmd(&["run", "--rm", "--pull", "never", &name]);
    assert_eq!(never.status.code(), Some(125), "{}", describe(&never));
    assert!(
        stderr(&never).contains("no such image"),
        "{}",
        describe(&never)
    );

    let out = b.ok(&["run", "--rm", &name]);
    assert_eq!(stdout(&out), "on demand\n");
    assert!(
        stderr(&out).contains(&format!("Unable to find image '{name}' locally")),
        "{}",
        describe(&out)
    );
    let id = stdout(&b.ok(&["create", "--pull", "always", &name]))
        .trim()
        .to_owned();
    assert_eq!(id.len(), 64, "{id}");
    b.ok(&["rm", &id]);

    let upper = b.cmd(&["run", "--rm", "Bad/Name"]);
    assert_eq!(upper.status.code(), Some(125), "{}", describe(&upper));
    assert_eq!(
        stderr(&upper),
        "berth: reference Bad/Name: invalid reference format: repository name must be lowercase\n"
    );
    let bad = b.cmd(&["run", "--pull", "sometimes", &name]);
    assert_eq!(bad.status.code(), Some(125), "{}", describe(&bad));
    // A registry that cannot be reached fails the run with 125 and one line.
    let gone = b.cmd(&[
        "run",
        "--rm",
        &format!("127.0.0.1:{}/x:1", testutil::registry::free_port()),
    ]);
    assert_eq!(gone.status.code(), Some(125), "{}", describe(&gone));
}

/// Exit 1 with the registry's refusal in one line.
fn assert_unauthorized(out: &Output) {
    assert_eq!(out.status.code(), Some(1), "{}", describe(out));
    assert!(stderr(out).contains("unauthorized"), "{}", describe(out));
    let errors = stderr(out)
        .lines()
        .filter(|l| l.starts_with("berth:"))
        .count();
    assert_eq!(errors, 1, "{}", describe(out));
}

/// A registry with `auth` and the busybox image imported and tagged `<registry>/<repo>:1`.
fn auth_setup(
    b: &Berth,
    tag: &str,
    auth: &testutil::registry::Auth,
    repo: &str,
) -> (Registry, String) {
    let reg = Registry::start_with(tag, auth);
    b.import_busybox("bb");
    let name = format!("{}/{repo}:1", reg.addr);
    b.ok(&["tag", "bb", &name]);
    (reg, name)
}

fn docker_config(b: &Berth) -> std::path::PathBuf {
    b.scratch.join("docker").join("config.json")
}

#[test]
fn basic_auth_login_push_pull_and_logout() {
    let Some(b) = berth("auth-basic") else { return };
    let auth = testutil::registry::Auth::Basic {
        user: "berth".into(),
        password: "s3cret".into(),
    };
    let (reg, name) = auth_setup(&b, "reg-basic", &auth, "private");

    // Without credentials, and with wrong ones: a clear refusal, nothing stored.
    let anon = b.cmd(&["push", &name]);
    assert_unauthorized(&anon);
    let wrong = b.cmd_with_input(
        &["login", "-u", "berth", "--password-stdin", &reg.addr],
        b"wrong\n",
    );
    assert_unauthorized(&wrong);
    assert!(!docker_config(&b).exists(), "wrong credentials were stored");

    let ok = b.cmd_with_input(
        &["login", "-u", "berth", "--password-stdin", &reg.addr],
        b"s3cret\n",
    );
    assert!(ok.status.success(), "{}", describe(&ok));
    assert_eq!(stdout(&ok), "Login Succeeded\n");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(docker_config(&b)).expect("config.json"))
            .expect("config json");
    assert!(config["auths"][&reg.addr]["auth"].is_string(), "{config}");
    b.ok(&["push", &name]);
    let seen = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "berth:s3cret",
        &format!("docker://{name}"),
    ]);
    assert!(seen.status.success(), "{}", describe(&seen));

    // A second root: refused until it logs in (-p warns), then pulls and runs.
    let b2 = b.second("auth-basic-2");
    let before = blob_count(&b2);
    let refused = b2.cmd(&["pull", &name]);
    assert_unauthorized(&refused);
    assert_eq!(blob_count(&b2), before);
    let login = b2.ok(&[
        "login",
        "-u",
        "berth",
        "-p",
        "s3cret",
        &format!("http://{}/", reg.addr),
    ]);
    assert!(
        stderr(&login).contains("--password-stdin"),
        "{}",
        describe(&login)
    );
    b2.ok(&["pull", &name]);
    assert_eq!(b2.stdout(&["run", "--rm", &name, "echo", "in"]), "in\n");

    let out = stdout(&b2.ok(&["logout", &reg.addr]));
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", reg.addr)
    );
    let again = stdout(&b2.ok(&["logout", &reg.addr]));
    assert_eq!(again, format!("Not logged in to {}\n", reg.addr));
    let after = b2.cmd(&["pull", &name]);
    assert_eq!(after.status.code(), Some(1), "{}", describe(&after));
}

#[test]
fn bearer_token_realm_grants_with_credentials_and_tokens_are_reused() {
    let Some(b) = berth("auth-token") else { return };
    let tokens = TokenServer::start("berth", "t0ken");
    let (reg, name) = auth_setup(&b, "reg-token", &tokens.auth(), "tok");

    let anon = b.cmd(&["push", &name]);
    assert_unauthorized(&anon);
    let wrong = b.cmd(&["login", "-u", "berth", "-p", "nope", &reg.addr]);
    assert_unauthorized(&wrong);
    assert!(!docker_config(&b).exists(), "wrong credentials were stored");

    b.ok(&["login", "-u", "berth", "-p", "t0ken", &reg.addr]);
    b.ok(&["push", &name]);

    let b2 = b.second("auth-token-2");
    b2.ok(&["login", "-u", "berth", "-p", "t0ken", &reg.addr]);
    let issued = || *tokens.issued.lock().expect("token count");
    let before = issued();
    b2.ok(&["pull", &name]);
    // One token for the manifest, config and every layer.
    assert_eq!(issued() - before, 1);
    assert_eq!(b2.stdout(&["run", "--rm", &name, "echo", "tok"]), "tok\n");
}

/// A good image served by `fake` as `good:1`, pulled and run to prove the store still works.
fn assert_good_pull_works(b: &Berth, fake: &FakeRegistry, img: &OciImage) {
    fake.serve_image("good", "1", img);
    let name = format!("{}/good:1", fake.addr);
    b.ok(&["pull", &name]);
    assert_eq!(b.stdout(&["run", "--rm", &name]), "good\n");
    b.ok(&["rmi", &name]);
}

fn assert_pull_fails(b: &Berth, name: &str, message: &str) {
    let out = b.cmd(&["pull", name]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains(message),
        "want {message:?}: {}",
        describe(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", describe(&out));
    let images = b.stdout(&["images", "-q"]);
    assert!(images.trim().is_empty(), "image recorded: {images}");
    assert_no_partial_state(b);
}

#[test]
fn hostile_registries_fail_cleanly_and_leave_the_store_usable() {
    let Some(b) = berth("hostile") else { return };
    b.registry_config(r#"{"stall-timeout": 1, "max-download-attempts": 2}"#);
    let fake = FakeRegistry::start();
    let bb = busybox_layer(&b);
    let good = OciImage::new(
        std::slice::from_ref(&bb),
        Compression::Gzip,
        host_arch(),
        &["echo", "good"],
        "good",
    );
    let img = |extra: Vec<u8>| {
        OciImage::new(
            &[bb.clone(), extra],
            Compression::Gzip,
            host_arch(),
            &["true"],
            "bad",
        )
    };

    // A blob whose bytes do not match its digest (a plain layer: no gzip checksum to trip).
    let bad = OciImage::new(
        &[bb.clone(), Layer::new().file("x", b"1").finish()],
        Compression::None,
        host_arch(),
        &["true"],
        "bad",
    );
    fake.serve_image("bad-digest", "1", &bad);
    let (layer, _) = &bad.layers[1];
    let mut flipped = layer.clone();
    // The file's content byte, right after its 512-byte header.
    flipped[512] ^= 0xff;
    fake.route(
        &format!("/v2/bad-digest/blobs/{}", sha256(layer)),
        Reply::Bytes {
            content_type: "application/octet-stream".into(),
            body: flipped,
        },
    );
    assert_pull_fails(
        &b,
        &format!("{}/bad-digest:1", fake.addr),
        "digest mismatch",
    );
    assert_eq!(blob_count(&b), 0, "rejected content is collected");
    assert_good_pull_works(&b, &fake, &good);

    // A manifest over 4 MiB.
    let mut big = good.manifest.clone();
    big.truncate(big.len() - 1);
    big.extend(std::iter::repeat_n(b' ', 5 << 20));
    big.push(b'}');
    fake.route(
        "/v2/big/manifests/1",
        Reply::Bytes {
            content_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body: big,
        },
    );
    assert_pull_fails(
        &b,
        &format!("{}/big:1", fake.addr),
        "over the 4194304-byte limit",
    );

    // A layer that climbs out through a symlink, and one whose hard link escapes.
    let escape = b.scratch.join("escaped");
    let through_link = img(Layer::new()
        .symlink("evil", &b.scratch.to_string_lossy())
        .file("evil/escaped", b"out")
        .finish());
    fake.serve_image("traversal", "1", &through_link);
    assert_pull_fails(&b, &format!("{}/traversal:1", fake.addr), "not a directory");
    assert!(!escape.exists(), "a layer wrote outside its tree");
    let link = img(Layer::new()
        .hardlink("shadow", "../../../../etc/shadow")
        .finish());
    fake.serve_image("hardlink", "1", &link);
    assert_pull_fails(
        &b,
        &format!("{}/hardlink:1", fake.addr),
        "escapes the layer",
    );
    assert_good_pull_works(&b, &fake, &good);

    // An endless body: stopped at the declared size.
    let endless = img(Layer::new().file("e", b"1").finish());
    fake.serve_image("endless", "1", &endless);
    fake.route(
        &format!("/v2/endless/blobs/{}", sha256(&endless.layers[1].0)),
        Reply::Endless,
    );
    assert_pull_fails(
        &b,
        &format!("{}/endless:1", fake.addr),
        "larger than its declared",
    );

    // A server that stops sending mid-blob: the stall timeout ends it.
    let stall = img(Layer::new().file("s", &[7u8; 100_000]).finish());
    fake.serve_image("stall", "1", &stall);
    fake.route(
        &format!("/v2/stall/blobs/{}", sha256(&stall.layers[1].0)),
        Reply::Stall {
            body: stall.layers[1].0.clone(),
            sent: 10,
        },
    );
    assert_pull_fails(&b, &format!("{}/stall:1", fake.addr), "download blob");
    assert_good_pull_works(&b, &fake, &good);
    assert_no_partial_state(&b);
}

#[test]
fn a_pull_cut_off_mid_layer_resumes_from_the_verified_layers() {
    let Some(b) = berth("resume") else { return };
    b.registry_config(r#"{"max-download-attempts": 2, "max-concurrent-downloads": 1}"#);
    let bb = busybox_layer(&b);
    let big = Layer::new().file("big", &vec![3u8; 4 << 20]).finish();
    let img = OciImage::new(
        &[bb, big],
        Compression::None,
        host_arch(),
        &["echo", "resumed"],
        "r",
    );
    let (first, second) = (sha256(&img.layers[0].0), sha256(&img.layers[1].0));
    let name;
    let addr;
    {
        let fake = FakeRegistry::start();
        fake.serve_image("r", "1", &img);
        fake.route(
            &format!("/v2/r/blobs/{second}"),
            Reply::Cut {
                body: img.layers[1].0.clone(),
                sent: 1 << 20,
            },
        );
        addr = fake.addr.clone();
        name = format!("{addr}/r:1");
        let out = b.cmd(&["pull", &name]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(
            stderr(&out).contains(&format!("download blob {second}")),
            "{}",
            describe(&out)
        );
        // The registry goes away; what was verified stays, nothing partial does.
    }
    assert_no_partial_state(&b);
    assert_kept_only(&b, &first, &second);

    let back = FakeRegistry::start_on(&addr);
    back.serve_image("r", "1", &img);
    assert_resumed(&b, &name, &first, &second);
    let fetched = back.requests.lock().expect("requests").clone();
    assert!(
        !fetched.iter().any(|r| r.contains(&first)),
        "the verified layer was fetched again: {fetched:?}"
    );
    assert_eq!(b.stdout(&["run", "--rm", &name]), "resumed\n");
}

#[test]
fn server_errors_and_resets_are_retried_within_one_pull() {
    let Some(b) = berth("retry") else { return };
    let fake = FakeRegistry::start();
    let img = OciImage::new(
        &[busybox_layer(&b)],
        Compression::Gzip,
        host_arch(),
        &["echo", "retried"],
        "retry",
    );
    fake.serve_image("flaky", "1", &img);
    let (layer, _) = &img.layers[0];
    fake.route_sequence(
        &format!("/v2/flaky/blobs/{}", sha256(layer)),
        vec![
            Reply::Status(503),
            Reply::Cut {
                body: layer.clone(),
                sent: layer.len() / 2,
            },
        ],
        Reply::Bytes {
            content_type: "application/octet-stream".into(),
            body: layer.clone(),
        },
    );
    let name = format!("{}/flaky:1", fake.addr);
    let out = stdout(&b.ok(&["pull", &name]));
    assert!(out.contains("Retrying in"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(b.stdout(&["run", "--rm", &name]), "retried\n");
}

#[test]
fn credential_helpers_from_config_json_store_and_supply_credentials() {
    let Some(b) = berth("cred-helper") else {
        return;
    };
    let auth = testutil::registry::Auth::Basic {
        user: "helped".into(),
        password: "by-helper".into(),
    };
    let (reg, name) = auth_setup(&b, "reg-helper", &auth, "helped");
    // docker-credential-berth-test: keeps the one secret it is given in a file.
    let bin = b.scratch.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let store = b.scratch.join("helper-store.json");
    let script = format!(
        "#!/bin/sh\nS={}\ncase \"$1\" in\n store) cat > \"$S\" ;;\n get) cat > /dev/null; if [ -f \"$S\" ]; then cat \"$S\"; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n erase) cat > /dev/null; rm -f \"$S\" ;;\nesac\n",
        store.display()
    );
    let helper = bin.join("docker-credential-berth-test");
    std::fs::write(&helper, script).expect("helper script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir_all(docker_config(&b).parent().expect("config dir")).expect("config dir");
    std::fs::write(docker_config(&b), r#"{"credsStore": "berth-test"}"#).expect("config.json");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let berth_cmd = |args: &[&str], input: &[u8]| {
        let mut c = b.command(args);
        c.env("PATH", &path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("spawn berth");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input).expect("stdin");
        child.wait_with_output().expect("berth")
    };

    let login = berth_cmd(
        &["login", "-u", "helped", "--password-stdin", &reg.addr],
        b"by-helper\n",
    );
    assert!(login.status.success(), "{}", describe(&login));
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&store).expect("helper got the secret"))
            .expect("helper json");
    assert_eq!(kept["Username"], "helped");
    let config = std::fs::read_to_string(docker_config(&b)).expect("config.json");
    assert!(
        !config.contains("by-helper"),
        "secret written to config.json: {config}"
    );

    let push = berth_cmd(&["push", &name], b"");
    assert!(push.status.success(), "{}", describe(&push));
    let logout = berth_cmd(&["logout", &reg.addr], b"");
    assert!(logout.status.success(), "{}", describe(&logout));
    assert!(!store.exists(), "helper erase not called");
    assert_unauthorized(&berth_cmd(&["push", &name], b""));
}

#[test]
fn docker_hub_names_are_pulled_through_a_mirror() {
    let Some(b) = berth("mirror") else { return };
    let reg = Registry::start("reg-mirror");
    let img = OciImage::new(
        &[busybox_layer(&b)],
        Compression::Gzip,
        host_arch(),
        &["echo", "mirrored"],
        "m",
    );
    push_all(
        &reg,
        &b.scratch.join("layout"),
        "library/mirrored",
        &[("1", LayoutEntry::Image(img))],
    );
    // docker.io itself is blocked: only the loopback mirror may be asked.
    b.registry_config(&format!(
        r#"{{"registry-mirrors": ["http://{}"], "blocked-registries": ["docker.io"]}}"#,
        reg.addr
    ));
    let out = stdout(&b.ok(&["pull", "mirrored:1"]));
    assert!(
        out.starts_with("1: Pulling from library/mirrored\n"),
        "{out}"
    );
    assert!(out.ends_with("docker.io/library/mirrored:1\n"), "{out}");
    assert_eq!(b.stdout(&["run", "--rm", "mirrored:1"]), "mirrored\n");
    let absent = b.cmd(&["pull", "absent"]);
    assert_eq!(absent.status.code(), Some(1), "{}", describe(&absent));
    assert!(
        stderr(&absent).contains("docker.io/library/absent:latest not found"),
        "{}",
        describe(&absent)
    );
}

#[test]
fn a_registry_killed_mid_layer_and_restarted_lets_the_pull_resume() {
    let Some(b) = berth("killed") else { return };
    b.registry_config(r#"{"max-download-attempts": 2, "max-concurrent-downloads": 1}"#);
    let mut reg = Registry::start("reg-killed");
    // Incompressible: the gzip layer stays 8 MiB, far past the cut.
    let mut noise = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open("/dev/urandom").expect("urandom"),
            8 << 20,
        ),
        &mut noise,
    )
    .expect("read urandom");
    let img = OciImage::new(
        &[
            busybox_layer(&b),
            Layer::new().file("noise", &noise).finish(),
        ],
        Compression::Gzip,
        host_arch(),
        &["echo", "survived"],
        "k",
    );
    push_all(
        &reg,
        &b.scratch.join("layout"),
        "k",
        &[("1", LayoutEntry::Image(img.clone()))],
    );
    let (first, second) = (sha256(&img.layers[0].0), sha256(&img.layers[1].0));
    let pid = reg.pid().expect("registry pid");
    let proxy = testutil::registry::CuttingProxy::start(
        &reg.addr,
        &second,
        1 << 20,
        Box::new(move || {
            // The registry this test started, killed the moment the layer is half-sent.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }),
    );
    let name = format!("{}/k:1", proxy.addr);
    let out = b.cmd(&["pull", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_no_partial_state(&b);
    assert_kept_only(&b, &first, &second);

    reg.kill();
    reg.restart();
    assert_resumed(&b, &name, &first, &second);
    assert_eq!(b.stdout(&["run", "--rm", &name]), "survived\n");
}

#[test]
fn an_insecure_registry_speaking_https_with_a_self_signed_certificate_is_pulled_from() {
    let Some(b) = berth("tls") else { return };
    let reg = Registry::start_tls("reg-tls");
    let img = OciImage::new(
        &[busybox_layer(&b)],
        Compression::Gzip,
        host_arch(),
        &["echo", "over tls"],
        "t",
    );
    push_all(
        &reg,
        &b.scratch.join("layout"),
        "t",
        &[("1", LayoutEntry::Image(img))],
    );
    // Loopback is insecure: HTTPS without verifying the certificate (as dockerd), no HTTP.
    let name = format!("{}/t:1", reg.addr);
    b.ok(&["pull", "-q", &name]);
    assert_eq!(b.stdout(&["run", "--rm", &name]), "over tls\n");
}
