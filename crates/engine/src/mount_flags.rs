//! Docker's mount flags parsed and checked with Docker's rules and words: `--mount` CSV values
//! (the docker CLI's parser), `-v` values (the daemon's Linux parser), `--tmpfs` options, and
//! [`plan`], which turns a container's `Config`/`HostConfig` into the list of its mounts before
//! anything is recorded.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use crate::config::{BindOptions, Config, HostConfig, Mount, TmpfsOptions, VolumeOptions};
use crate::containers::MountKind;
use crate::error::Result;
use crate::mounts::{MountConfigReason, MountError, Planned};

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// Parses one `--mount` value (`type=bind,source=/a,target=/b,readonly,...`) into Docker's
/// `Mount` as the docker CLI does; the type-specific checks come when the container is created.
pub fn parse_mount_flag(value: &str) -> std::result::Result<Mount, MountError> {
    let mut m = Mount::default();
    let mut bind = BindOptions::default();
    let mut volume = VolumeOptions::default();
    let mut tmpfs = TmpfsOptions::default();
    let (mut has_bind, mut has_volume, mut has_tmpfs) = (false, false, false);
    for field in value.split(',').filter(|f| !f.is_empty()) {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let boolean = |v: Option<&str>| match v {
            None | Some("1" | "true" | "True" | "TRUE") => Ok(true),
            Some("0" | "false" | "False" | "FALSE") => Ok(false),
            Some(other) => Err(MountError::Value {
                key: key.clone(),
                value: other.to_owned(),
            }),
        };
        let need = |v: Option<&str>| {
            v.map(str::to_owned).ok_or_else(|| MountError::Field {
                field: field.to_owned(),
            })
        };
        match key.as_str() {
            "readonly" | "ro" => m.read_only = boolean(val)?,
            "volume-nocopy" => {
                volume.no_copy = boolean(val)?;
                has_volume = true;
            }
            "type" => m.kind = need(val)?,
            "source" | "src" => m.source = need(val)?,
            "target" | "dst" | "destination" => m.target = need(val)?,
            "consistency" => {
                need(val)?;
            }
            "bind-propagation" => {
                bind.propagation = need(val)?;
                has_bind = true;
            }
            "volume-label" => {
                let v = need(val)?;
                let (k, v) = v.split_once('=').unwrap_or((&v, ""));
                volume.labels.insert(k.to_owned(), v.to_owned());
                has_volume = true;
            }
            "volume-driver" => {
                let v = need(val)?;
                if v != crate::volumes::LOCAL_DRIVER {
                    return Err(MountError::Value { key, value: v });
                }
                has_volume = true;
            }
            "tmpfs-size" => {
                let v = need(val)?;
                tmpfs.size_bytes = parse_size(&v).ok_or(MountError::Value {
                    key: key.clone(),
                    value: v,
                })?;
                has_tmpfs = true;
            }
            "tmpfs-mode" => {
                let v = need(val)?;
                tmpfs.mode = u32::from_str_radix(&v, 8).map_err(|_| MountError::Value {
                    key: key.clone(),
                    value: v,
                })?;
                has_tmpfs = true;
            }
            _ => {
                return Err(MountError::UnexpectedKey {
                    key,
                    field: field.to_owned(),
                });
            }
        }
    }
    if m.kind.is_empty() {
        return Err(MountError::TypeRequired);
    }
    if m.target.is_empty() {
        return Err(MountError::TargetRequired);
    }
    let mix = |prefix| MountError::Mix {
        prefix,
        kind: m.kind.clone(),
    };
    if has_bind {
        if m.kind != "bind" {
            return Err(mix("bind"));
        }
        m.bind_options = Some(bind);
    }
    if has_volume {
        if m.kind != "volume" {
            return Err(mix("volume"));
        }
        m.volume_options = Some(volume);
    }
    if has_tmpfs {
        if m.kind != "tmpfs" {
            return Err(mix("tmpfs"));
        }
        m.tmpfs_options = Some(tmpfs);
    }
    Ok(m)
}

/// Docker's `RAMInBytes`: a number with an optional binary unit (`b`, `k`, `m`, `g`, `t`, `p`,
/// with an optional trailing `b`/`ib`), case-insensitive.
fn parse_size(s: &str) -> Option<i64> {
    let lower = s.trim().to_ascii_lowercase();
    let end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(end);
    let n: f64 = num.parse().ok()?;
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0_f64.powi(4),
        "p" => 1024.0_f64.powi(5),
        _ => return None,
    };
    let bytes = n * mult;
    // Sizes are far below 2^53: the conversion is exact enough, and negative input never parses.
    #[allow(clippy::cast_possible_truncation)]
    (bytes.is_finite() && (0.0..9.0e18).contains(&bytes)).then_some(bytes as i64)
}

/// `/a/./b/` -> `/a/b`, for comparing destinations.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

fn destination(path: &str) -> std::result::Result<String, MountError> {
    if !path.starts_with('/') {
        return Err(MountError::NotAbsolute {
            path: path.to_owned(),
        });
    }
    let d = clean(path);
    if d == "/" {
        return Err(MountError::RootDestination);
    }
    Ok(d)
}

fn is_volume_name(s: &str) -> bool {
    crate::id::validate_name("volume", s).is_ok() && !s.starts_with('/')
}

/// Whether every comma-separated part of a `-v` mode is known, with at most one of each kind.
fn valid_mode(mode: &str) -> bool {
    let (mut rw, mut label, mut prop, mut copy, mut consistency) = (0, 0, 0, 0, 0);
    for part in mode.split(',') {
        match part {
            "rw" | "ro" => rw += 1,
            "z" | "Z" => label += 1,
            "nocopy" => copy += 1,
            "consistent" | "cached" | "delegated" => consistency += 1,
            p if PROPAGATIONS.contains(&p) => prop += 1,
            _ => return false,
        }
    }
    rw <= 1 && label <= 1 && prop <= 1 && copy <= 1 && consistency <= 1
}

/// Parses one `-v` (`HostConfig.Binds`) value with Docker's Linux rules.
fn parse_bind(spec: &str) -> std::result::Result<Planned, MountError> {
    let bad = || MountError::Spec {
        spec: spec.to_owned(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, dest, mode) = match parts.as_slice() {
        [d] => (None, *d, ""),
        [a, b] if valid_mode(b) && !b.starts_with('/') => (None, *a, *b),
        [s, d] => (Some(*s), *d, ""),
        [s, d, m] => (Some(*s), *d, *m),
        _ => return Err(bad()),
    };
    if dest.is_empty() || source.is_some_and(str::is_empty) {
        return Err(bad());
    }
    if !mode.is_empty() && !valid_mode(mode) {
        return Err(MountError::Mode {
            mode: mode.to_owned(),
        });
    }
    let destination = destination(dest)?;
    let modes: Vec<&str> = mode.split(',').filter(|m| !m.is_empty()).collect();
    let read_write = !modes.contains(&"ro");
    let nocopy = modes.contains(&"nocopy");
    let propagation = modes
        .iter()
        .find(|m| PROPAGATIONS.contains(m))
        .map(|p| (*p).to_owned());
    let mut p = Planned {
        kind: MountKind::Volume,
        source: None,
        destination,
        read_write,
        propagation: String::new(),
        mode: mode.to_owned(),
        copy: !nocopy,
        create_source: false,
        tmpfs: Vec::new(),
        labels: BTreeMap::new(),
    };
    match source {
        Some(s) if s.starts_with('/') => {
            if nocopy {
                return Err(MountError::Mode {
                    mode: mode.to_owned(),
                });
            }
            p.kind = MountKind::Bind;
            p.source = Some(clean(s));
            p.propagation = propagation.unwrap_or_else(|| "rprivate".to_owned());
            p.copy = false;
            p.create_source = true;
        }
        Some(s) if is_volume_name(s) => {
            if propagation.is_some() {
                return Err(MountError::Mode {
                    mode: mode.to_owned(),
                });
            }
            p.source = Some(s.to_owned());
            if p.mode.is_empty() {
                "z".clone_into(&mut p.mode);
            }
        }
        Some(s) => return Err(MountError::VolumeName { name: s.to_owned() }),
        None => {}
    }
    Ok(p)
}

/// Checks one `--mount` (`HostConfig.Mounts`) as Docker's daemon does.
fn check_mount(m: &Mount) -> std::result::Result<Planned, MountError> {
    let cfg = |reason| MountError::Config {
        kind: m.kind.clone(),
        reason,
    };
    if !matches!(m.kind.as_str(), "bind" | "volume" | "tmpfs") {
        return Err(cfg(MountConfigReason::UnknownType));
    }
    if m.target.is_empty() {
        return Err(cfg(MountConfigReason::TargetEmpty));
    }
    if !m.target.starts_with('/') {
        return Err(cfg(MountConfigReason::NotAbsolute {
            path: m.target.clone(),
        }));
    }
    let destination = destination(&m.target)?;
    let mut p = Planned {
        kind: MountKind::Bind,
        source: None,
        destination,
        read_write: !m.read_only,
        propagation: String::new(),
        mode: String::new(),
        copy: false,
        create_source: false,
        tmpfs: Vec::new(),
        labels: BTreeMap::new(),
    };
    // Options of another type (Docker checks them first, in this order).
    let others = [
        ("bind", "BindOptions", m.bind_options.is_some()),
        ("volume", "VolumeOptions", m.volume_options.is_some()),
        ("tmpfs", "TmpfsOptions", m.tmpfs_options.is_some()),
    ];
    if let Some((_, field, _)) = others.iter().find(|(k, _, set)| *set && *k != m.kind) {
        return Err(cfg(MountConfigReason::Options { field }));
    }
    match m.kind.as_str() {
        "bind" => {
            if m.source.is_empty() {
                return Err(cfg(MountConfigReason::SourceEmpty));
            }
            if !m.source.starts_with('/') {
                return Err(cfg(MountConfigReason::NotAbsolute {
                    path: m.source.clone(),
                }));
            }
            if std::fs::symlink_metadata(&m.source).is_err() {
                return Err(cfg(MountConfigReason::SourceMissing {
                    path: m.source.clone(),
                }));
            }
            let prop = m
                .bind_options
                .as_ref()
                .map(|b| b.propagation.clone())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "rprivate".to_owned());
            if !PROPAGATIONS.contains(&prop.as_str()) {
                return Err(MountError::Value {
                    key: "bind-propagation".into(),
                    value: prop,
                });
            }
            p.source = Some(clean(&m.source));
            p.propagation = prop;
        }
        "volume" => {
            p.kind = MountKind::Volume;
            if m.source.is_empty() {
                if m.read_only {
                    return Err(cfg(MountConfigReason::ReadonlyAnonymous));
                }
            } else if !is_volume_name(&m.source) {
                return Err(cfg(MountConfigReason::VolumeName {
                    name: m.source.clone(),
                }));
            } else {
                p.source = Some(m.source.clone());
            }
            let opts = m.volume_options.clone().unwrap_or_default();
            p.copy = !opts.no_copy;
            p.labels = opts.labels;
        }
        _ => {
            if !m.source.is_empty() {
                return Err(cfg(MountConfigReason::SourceSet));
            }
            p.kind = MountKind::Tmpfs;
            let mut opts = Vec::new();
            if let Some(t) = &m.tmpfs_options {
                if t.size_bytes > 0 {
                    opts.push(format!("size={}", t.size_bytes));
                }
                if t.mode != 0 {
                    opts.push(format!("mode={:o}", t.mode));
                }
            }
            if m.read_only {
                opts.push("ro".to_owned());
            }
            p.tmpfs = tmpfs_options(&opts.join(","))?;
        }
    }
    Ok(p)
}

/// Docker's tmpfs options: `noexec,nosuid,nodev` and the user's on top (a later flag or key
/// wins: `exec` undoes `noexec`, the last `size=` counts).
pub(crate) fn tmpfs_options(user: &str) -> std::result::Result<Vec<String>, MountError> {
    const FLAGS: [(&str, &str); 9] = [
        ("exec", "noexec"),
        ("suid", "nosuid"),
        ("dev", "nodev"),
        ("rw", "ro"),
        ("atime", "noatime"),
        ("diratime", "nodiratime"),
        ("async", "sync"),
        ("strictatime", "nostrictatime"),
        ("relatime", "norelatime"),
    ];
    const KEYS: [&str; 5] = ["size", "mode", "uid", "gid", "nr_inodes"];
    let mut out: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
    for opt in user.split(',').filter(|o| !o.is_empty()) {
        if let Some((key, _)) = opt.split_once('=') {
            if !KEYS.contains(&key) {
                return Err(MountError::TmpfsOption {
                    option: opt.to_owned(),
                });
            }
            out.retain(|o| o.split_once('=').is_none_or(|(k, _)| k != key));
            out.push(opt.to_owned());
            continue;
        }
        let Some((a, b)) = FLAGS.iter().find(|(a, b)| opt == *a || opt == *b) else {
            return Err(MountError::TmpfsOption {
                option: opt.to_owned(),
            });
        };
        out.retain(|o| o != a && o != b);
        out.push(opt.to_owned());
    }
    Ok(out)
}

/// Every mount of a container with these configs, checked, in mount order (parents before
/// children). Nothing is created; bind sources of `--mount` must exist.
///
/// Errors: [`MountError`] in Docker's words, as an `InvalidArgument`.
pub(crate) fn plan(config: &Config, host: &HostConfig) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    let push = |p: Planned, out: &mut Vec<Planned>| {
        if out.iter().any(|o| o.destination == p.destination) {
            return Err(MountError::Duplicate {
                destination: p.destination,
            });
        }
        out.push(p);
        Ok(())
    };
    for b in &host.binds {
        push(parse_bind(b)?, &mut out)?;
    }
    for m in &host.mounts {
        push(check_mount(m)?, &mut out)?;
    }
    for (path, opts) in &host.tmpfs {
        let p = Planned {
            kind: MountKind::Tmpfs,
            source: None,
            destination: destination(path)?,
            read_write: !opts.split(',').any(|o| o == "ro"),
            propagation: String::new(),
            mode: String::new(),
            copy: false,
            create_source: false,
            tmpfs: tmpfs_options(opts)?,
            labels: BTreeMap::new(),
        };
        push(p, &mut out)?;
    }
    // The image's VOLUMEs and `-v /path`: anonymous volumes where nothing else is mounted.
    for path in config.volumes.keys() {
        let d = destination(path)?;
        if out.iter().any(|o| o.destination == d) {
            continue;
        }
        out.push(Planned {
            kind: MountKind::Volume,
            source: None,
            destination: d,
            read_write: true,
            propagation: String::new(),
            mode: String::new(),
            copy: true,
            create_source: false,
            tmpfs: Vec::new(),
            labels: BTreeMap::new(),
        });
    }
    out.sort_by_key(|p| Path::new(&p.destination).components().count());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(spec: &str) -> std::result::Result<Planned, MountError> {
        parse_bind(spec)
    }

    #[test]
    fn binds_volumes_and_anonymous_from_dash_v() {
        let p = bind("/tmp:/data:ro").unwrap();
        assert_eq!(p.kind, MountKind::Bind);
        assert_eq!(
            (p.source.as_deref(), p.destination.as_str()),
            (Some("/tmp"), "/data")
        );
        assert!(!p.read_write);
        assert_eq!(p.propagation, "rprivate");
        let p = bind("/tmp:/data:rw,rshared").unwrap();
        assert_eq!(p.propagation, "rshared");
        let p = bind("vol:/data").unwrap();
        assert_eq!(
            (p.kind, p.source.as_deref(), p.mode.as_str()),
            (MountKind::Volume, Some("vol"), "z")
        );
        assert!(p.copy);
        assert!(!bind("vol:/data:nocopy").unwrap().copy);
        let p = bind("/data").unwrap();
        assert_eq!((p.kind, p.source), (MountKind::Volume, None));
        let p = bind("/data:ro").unwrap();
        assert_eq!((p.source, p.read_write), (None, false));
    }

    #[test]
    fn bad_dash_v_values_use_dockers_words() {
        let err = |s| bind(s).unwrap_err().to_string();
        assert!(err("rel/dir:/x").starts_with("create rel/dir: \"rel/dir\" includes invalid"));
        assert!(err("./dir:/x").contains("use absolute path"));
        assert_eq!(
            err("/a:rel"),
            "invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(err("/a:/b:bogus"), "invalid mode: bogus");
        assert_eq!(err("/a:/b:ro,rw"), "invalid mode: ro,rw");
        assert_eq!(
            err("/a:/b:c:d"),
            "invalid volume specification: '/a:/b:c:d'"
        );
        assert_eq!(
            err("/a:/"),
            "invalid specification: destination can't be '/'"
        );
        assert_eq!(err("vol:/b:rshared"), "invalid mode: rshared");
    }

    #[test]
    fn mount_flags_parse_like_the_docker_cli() {
        let m =
            parse_mount_flag("type=bind,src=/tmp,dst=/x,readonly,bind-propagation=rslave").unwrap();
        assert_eq!(
            (m.kind.as_str(), m.source.as_str(), m.target.as_str()),
            ("bind", "/tmp", "/x")
        );
        assert!(m.read_only);
        assert_eq!(m.bind_options.unwrap().propagation, "rslave");
        let m = parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        let t = m.tmpfs_options.unwrap();
        assert_eq!((t.size_bytes, t.mode), (64 << 20, 0o1770));
        let m = parse_mount_flag("type=volume,target=/v,volume-nocopy,volume-label=a=b").unwrap();
        assert!(m.volume_options.as_ref().unwrap().no_copy);
        let err = |s| parse_mount_flag(s).unwrap_err().to_string();
        assert_eq!(err("target=/x"), "type is required");
        assert_eq!(err("type=bind"), "target is required");
        assert_eq!(
            err("type=bind,target=/x,bogus=1"),
            "unexpected key 'bogus' in 'bogus=1'"
        );
        assert_eq!(
            err("type=bind,target"),
            "invalid field 'target' must be a key=value pair"
        );
        assert_eq!(
            err("type=bind,target=/x,volume-nocopy"),
            "cannot mix 'volume-*' options with mount type 'bind'"
        );
        assert_eq!(
            err("type=volume,target=/x,readonly=maybe"),
            "invalid value for readonly: maybe"
        );
    }

    #[test]
    fn mount_config_checks_use_dockers_words() {
        let check = |s| check_mount(&parse_mount_flag(s).unwrap()).map_err(|e| e.to_string());
        assert_eq!(
            check("type=bogus,target=/x").unwrap_err(),
            "invalid mount config for type \"bogus\": mount type unknown"
        );
        assert_eq!(
            check("type=bind,target=/x").unwrap_err(),
            "invalid mount config for type \"bind\": field Source must not be empty"
        );
        assert_eq!(
            check("type=bind,source=/no/such/berth/dir,target=/x").unwrap_err(),
            "invalid mount config for type \"bind\": bind source path does not exist: /no/such/berth/dir"
        );
        assert_eq!(
            check("type=tmpfs,source=a,target=/x").unwrap_err(),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        assert_eq!(
            check("type=volume,target=/x,readonly").unwrap_err(),
            "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes"
        );
        // What an API client could send: options of another type.
        let m = Mount {
            kind: "bind".into(),
            source: "/tmp".into(),
            target: "/x".into(),
            volume_options: Some(VolumeOptions::default()),
            ..Mount::default()
        };
        assert_eq!(
            check_mount(&m).unwrap_err().to_string(),
            "invalid mount config for type \"bind\": field VolumeOptions must not be specified"
        );
        let p = check("type=tmpfs,target=/t,tmpfs-size=1m").unwrap();
        assert_eq!(p.tmpfs, ["noexec", "nosuid", "nodev", "size=1048576"]);
    }

    #[test]
    fn tmpfs_options_merge_over_docker_defaults() {
        assert_eq!(
            tmpfs_options("exec,size=1m,size=2m").unwrap(),
            ["nosuid", "nodev", "exec", "size=2m"]
        );
        assert!(tmpfs_options("bogus").is_err());
        assert!(tmpfs_options("x=1").is_err());
    }

    #[test]
    fn plan_orders_parents_first_and_refuses_duplicates() {
        let mut config = Config::default();
        config
            .volumes
            .insert("/data".into(), crate::config::Empty {});
        config
            .volumes
            .insert("/img".into(), crate::config::Empty {});
        let host = HostConfig {
            binds: vec!["/tmp:/a/b/c".into(), "vol:/data".into()],
            tmpfs: BTreeMap::from([("/a".to_owned(), "size=1m".to_owned())]),
            ..HostConfig::default()
        };
        let p = plan(&config, &host).unwrap();
        let dests: Vec<&str> = p.iter().map(|p| p.destination.as_str()).collect();
        assert_eq!(dests, ["/data", "/a", "/img", "/a/b/c"]);
        assert_eq!(
            p[0].source.as_deref(),
            Some("vol"),
            "-v wins over the image's VOLUME"
        );
        let host = HostConfig {
            binds: vec!["/tmp:/x".into(), "/tmp:/x/".into()],
            ..HostConfig::default()
        };
        assert_eq!(
            plan(&Config::default(), &host).unwrap_err().to_string(),
            "Duplicate mount point: /x"
        );
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("10kb"), Some(10 << 10));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("-1"), None);
    }
}
