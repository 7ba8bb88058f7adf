"""Write the Slicer modules' sample volumes (simulated from the bundled BrainWeb phantom) and their SHA256.

    python scripts/make_sample_data.py OUT_DIR

Upload the files as release assets at ``MRSynthSlicerLib.sampledata.SAMPLE_URL``; the printed SHA256
must equal ``SAMPLE_SHA256`` there (Slicer's SampleData checks every download against them).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrsynth.models import sha256_of  # noqa: E402
from MRSynthSlicerLib.sampledata import SAMPLE_SHA256, make_sample  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    changed = 0
    for name, path in make_sample(argv[0]).items():
        digest = sha256_of(path)
        same = SAMPLE_SHA256.get(name) == digest
        changed += not same
        print(f"{path}  {digest}  {'matches' if same else 'DIFFERS from'} sampledata.SAMPLE_SHA256")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
