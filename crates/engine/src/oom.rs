//! Whether the kernel's OOM killer struck a container: read from its memory cgroup's event
//! counters (v1 `memory.oom_control` `oom_kill`, v2 `memory.events` `oom_kill`) through the
//! runtime, so the monitor calls it at exit, before the cgroup is removed.

use crate::containers::Container;
use crate::engine::runtime_root;
use crate::store::Paths;

/// `State.OOMKilled`: true when any process of `c` was killed for lack of memory. A cgroup
/// that cannot be read (already gone, no memory controller) counts as no OOM kill.
#[must_use]
pub(crate) fn oom_killed(paths: &Paths, c: &Container) -> bool {
    runtime::container::oom_kills(&runtime_root(paths), c.id.as_str()).is_ok_and(|n| n > 0)
}
