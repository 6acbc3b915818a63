#!/usr/bin/env bash
# Build the one-folder desktop bundle in a fresh virtual environment and prove it works:
# the smoke test exits 0, and `studio generate` from the bundle writes a clip that an independent
# decoder (PyAV, installed after the build so it stays out of the bundle) reads back with the demo
# model's 17 frames.
#   packaging/check-bundle.sh          (CI runs it before the tests; ~6 min on 2 cores)
# Everything it makes goes to build/ and dist/ (git-ignored) and a temporary folder, which is
# removed.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$SECONDS

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q torch==2.13.0            # the local CPU build (see .ci/run)
"$work/venv/bin/pip" install -q . pyinstaller
echo "bundle: environment ready after $((SECONDS - started)) s"
"$work/venv/bin/pyinstaller" --noconfirm --clean --log-level WARN packaging/studio.spec
echo "bundle: built after $((SECONDS - started)) s ($(du -sh dist/FlowStudio | cut -f1))"

export QT_QPA_PLATFORM=offscreen STUDIO_HOME="$work/home"
dist/FlowStudio/studio --smoke-test
dist/FlowStudio/studio generate --prompt "a red circle moving right on a blue background" \
    --seed 1 --out "$work/clip.mp4"
"$work/venv/bin/pip" install -q av
"$work/venv/bin/python" - "$work/clip.mp4" <<'PY'
import sys

import av

with av.open(sys.argv[1]) as container:
    frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
assert len(frames) == 17 and frames[0].shape == (128, 128, 3), (len(frames), frames[0].shape)
print(f"bundle: the clip decodes to {len(frames)} frames of {frames[0].shape[1]}×{frames[0].shape[0]}")
PY
echo "bundle: checked in $((SECONDS - started)) s"
