#!/usr/bin/env bash
# Re-derives the x86_64 MSVC layout of every WFP structure from the C transcription in
# layout/fwp_layout.c (with clang) and compares it with the Rust assertions in src/layout.rs; then
# checks every constant of the crate (`pub const` and `assert_value!`) against the C definitions.
#
# Needs: clang (Debian: `apt-get install clang`; any version that knows x86_64-pc-windows-msvc) and
# python3. No WDK, no Windows. Exit status 0 = everything agrees.
#
#   bash crates/tollgate-wfp-sys/layout/check.sh
#
# What is compared:
#   1. For each `assert_layout!(T { size: N, align: A, field @ offset, ... })` in src/layout.rs:
#      clang's sizeof/align of the C record and its complete list of top-level fields (names
#      compared case-insensitively, `r#` stripped), in order, with offsets. A field missing from
#      either side is an error.
#   2. Every `#[repr(C)] pub struct` in src/types.rs has an `assert_layout!` block.
#   3. Every `pub const NAME: T = VALUE;` in src/ and every `assert_value!(NAME == VALUE)` becomes
#      `_Static_assert((unsigned)(NAME) == (unsigned)(VALUE))` compiled against fwp_layout.c, so a
#      wrong value, or a Rust constant with no C transcription, fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
crate="$(dirname "$here")"
CLANG="${CLANG:-clang}"

command -v "$CLANG" >/dev/null || { echo "check.sh: clang not found (apt-get install clang)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "check.sh: python3 not found" >&2; exit 2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$CLANG" --target=x86_64-pc-windows-msvc -Xclang -fdump-record-layouts -fsyntax-only \
    "$here/fwp_layout.c" >"$tmp/dump.txt"

CRATE="$crate" TMP="$tmp" CLANG="$CLANG" python3 - <<'PY'
import os, re, subprocess, sys, glob

crate, tmp, clang = os.environ["CRATE"], os.environ["TMP"], os.environ["CLANG"]
errors = []

# ---- 1. clang's record layouts ---------------------------------------------------------------
records = {}
for block in open(f"{tmp}/dump.txt").read().split("*** Dumping AST Record Layout")[1:]:
    lines = [l for l in block.splitlines() if "|" in l]
    head = lines[0].split("|", 1)[1].strip()
    name = re.sub(r"^(struct|union) ", "", head)
    size = align = None
    fields = []
    for l in lines[1:]:
        off, rest = l.split("|", 1)
        if rest.startswith("    "):          # member of a nested record
            continue
        if rest.startswith("   "):           # top-level member: "<type> <name>"
            fields.append((rest.split()[-1], int(off.strip().split(":")[0])))
            continue
        m = re.search(r"sizeof=(\d+), align=(\d+)", rest)
        if m:
            size, align = int(m.group(1)), int(m.group(2))
    records[name] = (size, align, fields)

# Rust (windows-sys) name -> C record name, where they differ beyond C's trailing "_" tag.
c_name = {"GUID": "_GUID", "SOCKADDR": "sockaddr", "CMSGHDR": "_WSACMSGHDR",
          "IP_ADDRESS_PREFIX": "_IP_ADDRESS_PREFIX", "SCOPE_ID": "SCOPE_ID"}

layout_rs = open(f"{crate}/src/layout.rs").read()
blocks = re.findall(r"^assert_layout!\((\w+) \{(.*?)^\}\);", layout_rs, re.S | re.M)
asserted = set()
n_fields = 0
for rust, body in blocks:
    asserted.add(rust)
    cname = c_name.get(rust, rust + "_")
    if cname not in records:
        errors.append(f"{rust}: no C record '{cname}' in the clang dump (transcribe it in fwp_layout.c)")
        continue
    csize, calign, cfields = records[cname]
    size = int(re.search(r"size:\s*(\d+)", body).group(1))
    align = int(re.search(r"align:\s*(\d+)", body).group(1))
    rfields = [(f.replace("r#", ""), int(o)) for f, o in re.findall(r"([\w#]+)\s*@\s*(\d+)", body)]
    n_fields += len(rfields)
    if size != csize:
        errors.append(f"{rust}: size {size} in layout.rs, {csize} from clang")
    if align != calign:
        errors.append(f"{rust}: align {align} in layout.rs, {calign} from clang")
    cf = [(f.lower(), o) for f, o in cfields]
    rf = [(f.lower(), o) for f, o in rfields]
    if cf != rf:
        for (a, b) in zip(cf + [None] * (len(rf) - len(cf)), rf + [None] * (len(cf) - len(rf))):
            if a != b:
                errors.append(f"{rust}: field/offset differs: clang {a}, layout.rs {b}")

# ---- 2. every hand-written struct is asserted -------------------------------------------------
for s in re.findall(r"#\[repr\(C\)\]\s*(?:#\[[^\]]*\]\s*)*pub struct (\w+) \{",
                    open(f"{crate}/src/types.rs").read()):
    if s not in asserted:
        errors.append(f"{s}: declared in types.rs but has no assert_layout! block in layout.rs")

# ---- 3. constants ---------------------------------------------------------------------------
def c_expr(v):
    v = re.sub(r"\b(0x[0-9A-Fa-f_]+|\d[\d_]*)\b", lambda m: m.group(1).replace("_", ""), v)
    v = re.sub(r"\s+as\s+\w+", "", v)
    return v.strip()

consts = []
for path in sorted(glob.glob(f"{crate}/src/*.rs")):
    text = open(path).read()
    for name, value in re.findall(r"pub const (\w+):\s*[\w:]+\s*=\s*([^;]+);", text):
        consts.append((name, c_expr(value), os.path.basename(path)))
    for name, value in re.findall(r"^assert_value!\((\w+) == ([^)]+)\);", text, re.M):
        consts.append((name, c_expr(value), os.path.basename(path)))

with open(f"{tmp}/consts.c", "w") as f:
    f.write(f'#include "{crate}/layout/fwp_layout.c"\n')
    for name, value, src in consts:
        f.write(f'_Static_assert((unsigned int)({name}) == (unsigned int)({value}), '
                f'"{name} = {value} ({src}) differs from the C header");\n')
r = subprocess.run([clang, "--target=x86_64-pc-windows-msvc", "-fsyntax-only", "-ferror-limit=0",
                    f"{tmp}/consts.c"], capture_output=True, text=True)
if r.returncode != 0:
    for line in r.stderr.splitlines():
        if "error:" in line:
            errors.append("constant: " + line.split("error:", 1)[1].strip())

print(f"layout: {len(blocks)} records, {n_fields} field offsets compared with clang "
      f"(x86_64-pc-windows-msvc); constants: {len(consts)} values compared with the C definitions")
if errors:
    print(f"FAILED: {len(errors)} mismatch(es):")
    for e in errors:
        print("  " + e)
    sys.exit(1)
print("OK")
PY
