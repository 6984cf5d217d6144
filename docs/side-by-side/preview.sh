#!/usr/bin/env bash
# Retake docs/side-by-side/preview.png: train.html's column titles, then the page from the
# train_step heading down, 1366x600, in 128 colours (~55 KB). Needs chromium (Debian:
# apt-get install chromium) and Pillow (installed with matplotlib). Run from anywhere:
#   bash docs/side-by-side/preview.sh [python]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${1:-python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
shoot() { chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "$@" 2>/dev/null; }

# Where the column titles and the train_step heading sit on the page (CSS pixels from the top).
probe="<script>const t = document.querySelector('thead th').getBoundingClientRect();
const h = document.getElementById('train_step').getBoundingClientRect();
document.body.dataset.at = [t.top, t.bottom, h.top].map((y) => Math.round(y + scrollY)).join(',');
</script></body>"
sed "s|</body>|${probe//$'\n'/ }|" "$here/train.html" > "$tmp/probe.html"
at="$(shoot --window-size=1366,768 --dump-dom "file://$tmp/probe.html" | grep -o 'data-at="[0-9,]*"' | tr -dc '0-9,')"

# A window tall enough to hold the whole stretch, then crop and stack with Pillow.
shoot --window-size=1366,6000 --screenshot="$tmp/full.png" "file://$here/train.html" >/dev/null
"$python" - "$tmp/full.png" "$here/preview.png" "$at" <<'EOF'
import sys
from PIL import Image

full, out, at = sys.argv[1], sys.argv[2], [int(v) for v in sys.argv[3].split(",")]
(top, bottom, heading), (width, height) = at, (1366, 600)
im = Image.open(full).convert("RGB")
page = Image.new("RGB", (width, height), "white")
page.paste(im.crop((0, top, width, bottom)), (0, 0))
page.paste(im.crop((0, heading, width, heading + height - (bottom - top))), (0, bottom - top))
page.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
    out, optimize=True
)
print(out)
EOF
