"""Write a small tree in a real benchmark's layout (gopro, sidd, rain13k) for the CI's end-to-end run of that task.

Run: ``python .ci/layout_tree.py SOURCE FOLDER``. The trees are the tests' (tests/layout_trees.py) at a size the tiny
params train on: 96x128 frames (64 px patches and tiles), SIDD validation and benchmark blocks of 32 px (the benchmark
blocks are the packaged split).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from layout_trees import make_gopro, make_rain13k, make_sidd  # noqa: E402

SIZE = (96, 128)
source, folder = sys.argv[1], Path(sys.argv[2])
writers = {
    "gopro": lambda: make_gopro(folder, size=SIZE),
    "sidd": lambda: make_sidd(folder, benchmark=True, size=SIZE, block=32),
    "rain13k": lambda: make_rain13k(folder, size=SIZE),
}
writers[source]()
print(f"wrote a {source} tree under {folder}")
