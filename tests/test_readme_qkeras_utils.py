"""The README's "QKeras utilities" examples run as written, and a ``print(...)`` followed by a
``# <output>`` comment prints that output. Each block runs in a fresh interpreter."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## QKeras utilities\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


BLOCKS = _blocks()


def test_section_has_an_example_per_utility():
    joined = "\n".join(BLOCKS)
    for name in ("print_qstats", "model_quantize", "QConv2DBatchnorm", "QDepthwiseConv2DBatchnorm",
                 "clone_model_and_freeze_auto_po2_scale", "analyze_accumulator(",
                 "analyze_accumulator_from_sample", "quantized_model_debug",
                 "export_hls4ml_config", "convert_folded_model_to_normal", "quantized_model_dump"):
        assert name in joined, name


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_example_runs(i, tmp_path):
    code = BLOCKS[i]
    script = tmp_path / f"example_{i}.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = code.splitlines()
    for a, b in zip(lines, lines[1:]):
        if a.startswith("print(") and b.startswith("# "):
            assert b[2:] in out.stdout.splitlines(), (b[2:], out.stdout)
