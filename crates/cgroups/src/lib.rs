//! cgroup management for berth: one [`CgroupManager`] interface with cgroup v1, v2 and hybrid back
//! ends. Knows nothing of containers beyond a cgroup path and an OCI `LinuxResources` block.
#![warn(missing_docs)]
