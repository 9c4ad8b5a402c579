use super::*;
use crate::media::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX};
use serde_json::json;

fn digest(n: u8) -> String {
    Digest::of(&[n]).to_string()
}

fn index_json(media_type: &str) -> Vec<u8> {
    let entry = |n: u8, arch: &str, variant: Option<&str>| {
        let mut platform = json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = json!(v);
        }
        json!({
            "mediaType": DOCKER_MANIFEST,
            "digest": digest(n),
            "size": 100,
            "platform": platform,
        })
    };
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": digest(9), "size": 5,
             "platform": {"os": "unknown", "architecture": "unknown"}},
            entry(1, "arm", Some("v7")),
            entry(2, "arm64", None),
            entry(3, "amd64", None),
            entry(4, "s390x", None),
        ]
    }))
    .unwrap()
}

#[test]
fn platform_is_picked_from_an_index_and_a_manifest_list() {
    for mt in [OCI_INDEX, DOCKER_MANIFEST_LIST] {
        let Manifest::Index(index) = parse_manifest(&index_json(mt), None).unwrap() else {
            panic!("not an index");
        };
        let pick = |p: &str| {
            select_platform(&index, &Platform::parse(p).unwrap())
                .map(|d| descriptor_digest(d).unwrap().to_string())
        };
        assert_eq!(pick("linux/amd64").unwrap(), digest(3));
        assert_eq!(pick("linux/arm64/v8").unwrap(), digest(2));
        assert_eq!(pick("linux/arm/v7").unwrap(), digest(1));
        let err = pick("linux/riscv64").unwrap_err().to_string();
        assert!(
            err.contains("linux/riscv64") && err.contains("linux/s390x"),
            "{err}"
        );
        assert!(pick("linux/arm/v6").is_err());
    }
    assert_eq!(Platform::host().to_string(), "linux/amd64");
}

#[test]
fn docker_schema2_manifest_parses() {
    let m = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": 10, "digest": digest(1)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 20, "digest": digest(2)}]
    });
    let Manifest::Image(m) = parse_manifest(&serde_json::to_vec(&m).unwrap(), None).unwrap() else {
        panic!("not an image manifest");
    };
    assert_eq!(m.layers().len(), 1);
    assert_eq!(
        descriptor_digest(m.config()).unwrap().to_string(),
        digest(1)
    );
}

#[test]
fn shape_decides_without_a_media_type_and_schema1_is_refused() {
    let idx = json!({"schemaVersion": 2, "manifests": []});
    assert!(matches!(
        parse_manifest(&serde_json::to_vec(&idx).unwrap(), None).unwrap(),
        Manifest::Index(_)
    ));
    let s1 = json!({"schemaVersion": 1, "fsLayers": []});
    assert!(matches!(
        parse_manifest(&serde_json::to_vec(&s1).unwrap(), None),
        Err(ManifestError::Schema1)
    ));
    assert!(matches!(
        parse_manifest(b"{\"schemaVersion\":2}", Some("text/plain")),
        Err(ManifestError::UnsupportedMediaType { .. })
    ));
}

#[test]
fn oversized_manifest_is_refused_before_parsing() {
    let big = vec![b' '; (MAX_MANIFEST_SIZE + 1) as usize];
    assert!(matches!(
        parse_manifest(&big, None),
        Err(ManifestError::TooLarge { .. })
    ));
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[test]
fn entrypoint_of_the_wrong_type_is_named() {
    let cfg = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": "/bin/sh -c true"},
        "rootfs": {"type": "layers", "diff_ids": []}
    });
    let err = parse_config(&serde_json::to_vec(&cfg).unwrap()).unwrap_err();
    let line = chain(&err);
    assert!(
        line.starts_with("image config: field config.Entrypoint: invalid type: string"),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

#[test]
fn diff_ids_are_validated() {
    let cfg = json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(1), "sha256:nope"]}
    });
    let cfg = parse_config(&serde_json::to_vec(&cfg).unwrap()).unwrap();
    assert!(matches!(diff_ids(&cfg), Err(ManifestError::Digest { .. })));
}
