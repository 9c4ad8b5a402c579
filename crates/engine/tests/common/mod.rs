//! Shared helpers of the engine's integration tests: a temporary root removed on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use engine::{Config, NewContainer, Paths, Store};

/// A temporary `--root` and `--run-root` named `berth-test-<pid>-<n>-<tag>`, removed on drop.
pub(crate) struct TempRoot {
    pub(crate) dir: PathBuf,
    pub(crate) paths: Paths,
}

impl TempRoot {
    pub(crate) fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(testutil::unique_name(tag));
        let paths = Paths::new(dir.join("root"), dir.join("run"));
        Self { dir, paths }
    }

    pub(crate) fn open(&self) -> Store {
        Store::open(&self.paths).unwrap()
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A container named `name` (or a generated name) from `busybox`.
pub(crate) fn new_container(name: Option<&str>) -> NewContainer {
    NewContainer {
        name: name.map(str::to_owned),
        image: "busybox".to_owned(),
        config: Config {
            image: "busybox".into(),
            cmd: Some(vec!["true".into()]),
            ..Config::default()
        },
        ..NewContainer::default()
    }
}
