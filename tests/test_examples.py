"""The example scripts run: QKeras's README network unchanged, and the main job's smoke mode."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))


def _have_data():
    from qnn_ext.datasets import fashion_mnist
    try:
        fashion_mnist.load_data()
        return True
    except FileNotFoundError:
        return False


needs_data = pytest.mark.skipif(
    not _have_data(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist; CI installs it)")


@needs_data
def test_qkeras_readme_example_runs_and_learns():
    import qkeras_readme_example as ex
    import qnn_ext
    qnn_ext.utils.set_random_seed(0)
    model, acc = ex.main(["--samples", "2048", "--epochs", "1", "--verbose", "0"])
    names = [type(l).__name__ for l in model.layers]
    assert names[1:4] == ["QConv2D", "QActivation", "QSeparableConv2D"]
    assert str(model.get_layer("first_conv2d").kernel_quantizer_internal) == "stochastic_ternary(alpha='auto_po2')"
    assert acc > 0.5  # 10 classes: chance is 0.1


@needs_data
def test_main_job_quick_writes_results(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(HERE, "..", "python", "train_fashion_mnist.py"),
                          "--quick", "--settings", "float", "binary", "--epochs", "1",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    import json
    res = json.loads((tmp_path / "fashion_mnist.json").read_text())
    assert [s["name"] for s in res["settings"]] == ["float", "binary"]
    for s in res["settings"]:
        deployed = {"integer"} if s["name"] == "binary" else set()  # the integer model report
        assert set(s) == {"name", "weight_bits", "activation_bits", "test_accuracy",
                          "seconds_per_epoch", "weight_memory_bits"} | deployed
        assert 0.5 < s["test_accuracy"] <= 1.0
    integer = res["settings"][1]["integer"]
    assert integer["accuracy"] == res["settings"][1]["test_accuracy"]
    assert integer["class_agreement"] == 1.0 and integer["max_abs_output_diff"] == 0.0
    assert res["settings"][1]["weight_memory_bits"] < res["settings"][0]["weight_memory_bits"] / 10
    assert "isa" in res["build_info"] and res["total_seconds"] > 0
