#!/usr/bin/env bash
# Run the OCI runtime-tools validation programs against one OCI runtime.
#
#   run.sh [options] SUITE_DIR RUNTIME [NAME]
#
# SUITE_DIR  an already-built opencontainers/runtime-tools checkout
#            (`make runtimetest validation-executables` done; see README.md)
# RUNTIME    the runtime binary (runc, crun, berth-runtime, or a wrapper script
#            that passes its arguments through)
# NAME       label for results and scratch names (default: basename of RUNTIME)
#
# options:
#   -t SECONDS      per-program timeout (default 120)
#   -o DIR          results directory (default ./oci-validation-results-NAME)
#   -p REGEX        only run programs whose name matches REGEX (grep -E)
#   --hide-cgroup2  run every runtime call in a private mount namespace with
#                   /sys/fs/cgroup/unified unmounted (crun refuses hybrid hosts)
#
# Every runtime call gets `--root /run/berth-test-ocival-NAME-PID`, so the host's
# default state dirs (/run/runc, /run/crun) are never touched. The programs make
# their bundles under a private TMPDIR. After each program the runner force-deletes
# whatever containers are left, kills processes the program left in its session,
# unmounts anything left under its TMPDIR, and removes the cgroups the suite names
# (`cgrouptest`, `testdir`) if they did not exist before the run.
#
# Output: DIR/results.txt with one `name pass|fail|timeout` line per program,
# DIR/NAME.tap, DIR/NAME.stderr and DIR/NAME.rc (exit status) per program, and
# `passed N of M` on stdout. A program passes as it would under node-tap, the
# harness upstream's `make localvalidation` uses (see tap_verdict below).
set -euo pipefail

timeout_s=120
outdir=
only=
hide_cgroup2=0

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
	case "$1" in
	-t) timeout_s=$2; shift 2 ;;
	-o) outdir=$2; shift 2 ;;
	-p) only=$2; shift 2 ;;
	--hide-cgroup2) hide_cgroup2=1; shift ;;
	-h|--help) usage 0 ;;
	--) shift; break ;;
	-*) echo "run.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 2 ] && [ $# -le 3 ] || usage

suite=$(cd "$1" && pwd)
runtime=$2
name=${3:-$(basename "$runtime")}

if [ "$(id -u)" != 0 ]; then
	echo "run.sh: the validation programs need root" >&2
	exit 1
fi
if ! runtime=$(command -v "$runtime"); then
	echo "run.sh: runtime $2 not found" >&2
	exit 1
fi
runtime=$(readlink -f "$runtime")
for f in runtimetest "rootfs-amd64.tar.gz"; do
	if [ ! -e "$suite/$f" ]; then
		echo "run.sh: $suite/$f missing; build the suite first (see README.md)" >&2
		exit 1
	fi
done
mapfile -t programs < <(cd "$suite" && find validation -mindepth 2 -maxdepth 2 -name '*.t' -type f | sort)
if [ -n "$only" ]; then
	mapfile -t programs < <(printf '%s\n' "${programs[@]}" | grep -E -- "$only" || true)
fi
if [ ${#programs[@]} -eq 0 ]; then
	echo "run.sh: no validation programs (*.t) in $suite/validation; build them first" >&2
	exit 1
fi

outdir=${outdir:-$PWD/oci-validation-results-$name}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

# The pid right after the prefix, as testutil names things: its janitor (in tests running in
# parallel) then sees a live owner and leaves this run alone.
tag=berth-test-$$-ocival-$name
state=/run/$tag
scratch=$(mktemp -d "/tmp/$tag.XXXXXX")
tmp=$scratch/tmp
mkdir -p "$state" "$tmp"
chmod 0755 "$scratch"

# The wrapper the programs see as RUNTIME: adds our --root and, if asked, hides cgroup2.
wrapper=$scratch/runtime
if [ "$hide_cgroup2" = 1 ]; then
	cat >"$wrapper" <<EOF
#!/bin/sh
exec unshare --mount --propagation slave sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "\$0" "\$@"' '$runtime' --root '$state' "\$@"
EOF
else
	cat >"$wrapper" <<EOF
#!/bin/sh
exec '$runtime' --root '$state' "\$@"
EOF
fi
chmod 0755 "$wrapper"

# Cgroup directories the suite names (cgroups.AbsCgroupPath = /cgrouptest,
# RelCgroupPath = testdir/cgrouptest/container, relative to the runtime's own
# cgroup). Remember which exist now so only ours are removed.
own_cgroup_dirs() {
	local line ctrl path mnt
	for mnt in /sys/fs/cgroup/*/; do
		mnt=${mnt%/}
		[ -d "$mnt" ] || continue
		echo "$mnt/cgrouptest"
		echo "$mnt/testdir"
	done
	while IFS= read -r line; do
		ctrl=${line#*:}; ctrl=${ctrl%%:*}; path=${line#*:*:}
		[ "$path" != / ] || continue
		if [ -z "$ctrl" ]; then
			# cgroup2 line (0::/path); on a hybrid host it is mounted at unified/
			for mnt in /sys/fs/cgroup/unified /sys/fs/cgroup; do
				[ -e "$mnt/cgroup.controllers" ] && echo "$mnt$path/testdir"
			done
			continue
		fi
		ctrl=${ctrl#name=}
		for mnt in /sys/fs/cgroup/*; do
			case ",$(basename "$mnt")," in *",$ctrl,"*)
				echo "$mnt$path/testdir" ;;
			esac
		done
	done </proc/self/cgroup
}
mapfile -t cgroup_watch < <(own_cgroup_dirs | sort -u)
preexisting=()
for d in "${cgroup_watch[@]}"; do
	[ -e "$d" ] && preexisting+=("$d")
done
if [ ${#preexisting[@]} -gt 0 ]; then
	echo "run.sh: note: these cgroups exist already and will be left alone: ${preexisting[*]}" >&2
fi

remove_cgroup_tree() {
	# Depth-first rmdir; a cgroup still holding tasks is reported, not killed.
	local d=$1 sub
	[ -d "$d" ] || return 0
	for sub in "$d"/*/; do
		[ -d "$sub" ] && remove_cgroup_tree "${sub%/}"
	done
	rmdir "$d" 2>/dev/null || echo "run.sh: warning: cannot remove cgroup $d" >&2
}

cleanup_program() {
	local sid=${1:-} ids id pid mp d p
	# Containers the program left behind.
	ids=$( { "$wrapper" list -q 2>/dev/null || true; ls -1 "$state" 2>/dev/null || true; } | sort -u)
	for id in $ids; do
		[ -d "$state/$id" ] || [ -f "$state/$id" ] || "$wrapper" state "$id" >/dev/null 2>&1 || continue
		"$wrapper" delete --force "$id" >/dev/null 2>&1 || true
	done
	# Processes left in the program's session (e.g. `unshare ... sleep 10000`).
	if [ -n "$sid" ]; then
		for pid in $(ps -e -o pid=,sid= | awk -v s="$sid" '$2 == s { print $1 }'); do
			kill -KILL "$pid" 2>/dev/null || true
		done
	fi
	# Mounts that leaked into our namespace under the scratch dir (deepest first).
	while read -r mp; do
		umount -l "$mp" 2>/dev/null || true
	done < <(awk -v p="$scratch/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	# Bundles of killed programs.
	find "$tmp" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} + 2>/dev/null || true
	# Cgroups the suite made and the runtime did not remove.
	for d in "${cgroup_watch[@]}"; do
		for p in "${preexisting[@]}"; do [ "$p" = "$d" ] && continue 2; done
		remove_cgroup_tree "$d"
	done
}

cleanup_all() {
	cleanup_program ""
	# Anything a runtime keeps beside the container dirs (runc: nothing; crun: locks).
	"$wrapper" list -q 2>/dev/null | while read -r id; do
		"$wrapper" delete --force "$id" >/dev/null 2>&1 || true
	done
	rm -rf --one-file-system "$state" "$scratch"
}
trap cleanup_all EXIT
trap 'exit 130' INT TERM

# TAP verdict as node-tap (upstream's harness, `make localvalidation`) gives it:
# exit status 0, no `not ok` line unless marked `# TODO`, no `Bail out!`, and if
# plans were printed, as many test lines as they add up to (linux_cgroups_cpus
# prints two TAP streams). Empty output with exit 0 passes: that is how the
# *_fail programs (process_rlimits_fail, process_capabilities_fail) report that
# the runtime rightly refused the config.
tap_verdict() {
	local file=$1 rc=$2
	[ "$rc" = 0 ] || { echo fail; return; }
	awk '
		/^1\.\.[0-9]+/ { planned += substr($1, 4) + 0; have_plan = 1; next }
		/^not ok/ { n++; if ($0 !~ /#[ \t]*[Tt][Oo][Dd][Oo]/) bad++; next }
		/^ok/ { n++; next }
		/^Bail out!/ { bad++ }
		END { print (!bad && (!have_plan || n == planned)) ? "pass" : "fail" }
	' "$file"
}

results=$outdir/results.txt
: >"$results"
passed=0
total=0
echo "runtime $name ($runtime), ${#programs[@]} programs, timeout ${timeout_s}s, state $state" >&2
for prog in "${programs[@]}"; do
	base=$(basename "$prog" .t)
	tap=$outdir/$base.tap
	err=$outdir/$base.stderr
	# setsid: the program and its helpers share a session we can sweep afterwards;
	# timeout signals its whole process group when it fires.
	set +e
	(cd "$suite" && RUNTIME=$wrapper TMPDIR=$tmp exec setsid timeout -k 10 "$timeout_s" "./$prog") \
		>"$tap" 2>"$err" </dev/null &
	pid=$!
	wait "$pid"
	rc=$?
	set -e
	cleanup_program "$pid"
	echo "$rc" >"$outdir/$base.rc"
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		verdict=timeout
	else
		verdict=$(tap_verdict "$tap" "$rc")
	fi
	total=$((total + 1))
	[ "$verdict" = pass ] && passed=$((passed + 1))
	printf '%s %s\n' "$base" "$verdict" >>"$results"
	printf '%-40s %s (exit %s)\n' "$base" "$verdict" "$rc" >&2
done
echo "results in $results" >&2
echo "passed $passed of $total"
