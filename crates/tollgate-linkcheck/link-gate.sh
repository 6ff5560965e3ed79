#!/usr/bin/env bash
# The Linux cross-link gate (ARCHITECTURE.md §5).
#
# Links everything of the driver except the KMDF shell (tollgate-core, tollgate-wfp-sys,
# tollgate-protocol, tollgate-control) into a kernel-mode probe image (crates/tollgate-linkprobe)
# for x86_64-pc-windows-msvc with rust-lld, in the dev and release profiles, and checks each image
# with tollgate-linkcheck: x86_64 PE32+, subsystem NATIVE, imports only from ntoskrnl.exe,
# fwpkclnt.sys, NETIO.SYS, wdfldr.sys (and no delay-load, no TLS, relocatable, NX, no W+X
# section, checksum set). Then a negative control: the same probe with a kernel32.dll and a
# fwpuclnt.dll import must FAIL the checker, naming both DLLs, or the gate itself is broken.
#
# Needs: rustup's stable toolchain with the x86_64-pc-windows-msvc target (rust-lld ships with
# it). No WDK, no MSVC, no network beyond what cargo needs. The images are never run.
#
# The linker is chosen here, on the command line of the probe's final link only (`cargo rustc --`),
# never in .cargo/config.toml: there it would also apply to the KMDF shell's real (WDK) build.
# The probe's own link arguments (/DRIVER /SUBSYSTEM:NATIVE /ENTRY:DriverEntry /NODEFAULTLIB
# /INTEGRITYCHECK /RELEASE) come from its build.rs, which sets them only when TOLLGATE_LINKPROBE=1.
#
# Output: the images are kept in $CARGO_TARGET_DIR/link-gate/ (default target/link-gate/).
set -euo pipefail
cd "$(dirname "$0")/../.."

target=x86_64-pc-windows-msvc
target_dir=${CARGO_TARGET_DIR:-target}
out_dir="$target_dir/link-gate"

step() { printf '\n--- link gate: %s\n' "$*"; }
fail() { printf 'link gate: FAILED: %s\n' "$*" >&2; exit 1; }

# ---- tools --------------------------------------------------------------------------------------
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
[ -d "$sysroot/lib/rustlib/$target/lib" ] ||
    fail "the $target standard library is not installed: rustup target add $target"

lld="$sysroot/lib/rustlib/$host/bin/rust-lld"
if [ ! -x "$lld" ]; then
    # Not a rustup toolchain, or an unusual layout: a system lld-link/rust-lld works the same.
    lld=$(command -v rust-lld || command -v lld-link || true)
fi
[ -n "$lld" ] && [ -x "$lld" ] || fail "rust-lld not found (expected $sysroot/lib/rustlib/$host/bin/rust-lld)"
echo "linker: $lld (-C linker-flavor=lld-link)"

step "build the checker (host)"
cargo build -q -p tollgate-linkcheck --bin tollgate-linkcheck
checker="$target_dir/debug/tollgate-linkcheck"

mkdir -p "$out_dir"

# build_probe PROFILE USER_IMPORTS OUTPUT: links the probe, copies the image to OUTPUT.
build_probe() {
    local profile=$1 user_imports=$2 output=$3 dir
    case $profile in dev) dir=debug ;; *) dir=$profile ;; esac
    TOLLGATE_LINKPROBE=1 TOLLGATE_LINKPROBE_USER_IMPORTS=$user_imports \
        cargo rustc -q -p tollgate-linkprobe --lib --target "$target" --profile "$profile" -- \
        -C linker="$lld" -C linker-flavor=lld-link
    cp "$target_dir/$target/$dir/tollgate_linkprobe.dll" "$output"
}

step "clippy over the probe's code (it exists only under TOLLGATE_LINKPROBE=1)"
TOLLGATE_LINKPROBE=1 cargo clippy -q -p tollgate-linkprobe --target "$target" -- -D warnings

# ---- the gate -----------------------------------------------------------------------------------
for profile in dev release; do
    image="$out_dir/tollgate-linkprobe-$profile.sys"
    step "link the probe ($profile profile) with rust-lld"
    build_probe "$profile" 0 "$image"
    step "check $image"
    "$checker" "$image" || fail "$image is not a valid kernel driver image (report above)"
done

# ---- negative control: the checker must reject a user-mode import -------------------------------
bad="$out_dir/tollgate-linkprobe-user-imports.sys"
step "negative control: the probe plus kernel32.dll!GetTickCount and fwpuclnt.dll!FwpmFreeMemory0"
build_probe release 1 "$bad"
status=0
"$checker" "$bad" > "$out_dir/user-imports.report" 2> "$out_dir/user-imports.stderr" || status=$?
sed -n '/^FAIL/,$p' "$out_dir/user-imports.report"
cat "$out_dir/user-imports.stderr"
[ "$status" -eq 1 ] || fail "the checker exited $status on an image with user-mode imports (expected 1)"
for dll in kernel32.dll fwpuclnt.dll; do
    grep -q "forbidden import DLL $dll" "$out_dir/user-imports.report" ||
        fail "the checker did not name $dll as a forbidden import"
done
echo "negative control: rejected as expected (exit 1, kernel32.dll and fwpuclnt.dll named)"

printf '\nlink gate: passed: %s and %s checked, %s rejected\n' \
    tollgate-linkprobe-dev.sys tollgate-linkprobe-release.sys "$(basename "$bad")"
