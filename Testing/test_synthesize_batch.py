"""scripts/synthesize_batch.py over cases simulated from real SynthSeg label maps, split with --shard."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from slicer_support import ROOT

from mrsynth.simulate import simulate

sys.path.insert(0, str(ROOT / "scripts"))
import synthesize_batch  # noqa: E402

SCRIPT = ROOT / "scripts" / "synthesize_batch.py"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from conftest import SHARED_DATA

    labels = SHARED_DATA / "synthseg_labels"
    if not labels.is_dir():
        pytest.skip(f"real test data folder {labels} is absent (it sits beside the repository in CI)")
    root = tmp_path_factory.mktemp("cohort")
    for i in (1, 2, 3):
        crop = sitk.ReadImage(str(labels / f"training_seg_0{i}.nii.gz"))[96:160, 100:148, 96:160]
        simulate(crop, "synthseg", root / f"subject{i}", seed=i)
    return root


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_shards_split_the_cohort_and_write_outputs_and_metrics(cohort, tmp_path):
    out = tmp_path / "results"
    common = ["gre-to-tse-sim", "--cases-dir", str(cohort), "--out-dir", str(out), "--reference", "TSE_HR"]
    common += ["--mask", "head_mask", "--no-flip-average"]
    rows = []
    for shard in ("0/2", "1/2"):
        result = _run(*common, "--shard", shard)
        assert result.returncode == 0, result.stderr
        index = shard.split("/")[0]
        with open(out / f"metrics-shard-{index}-of-2.csv", newline="") as handle:
            rows += list(csv.DictReader(handle))
    assert sorted(row["case"] for row in rows) == ["subject1", "subject2", "subject3"]
    assert {row["status"] for row in rows} == {"ok"} and {row["region"] for row in rows} == {"body"}
    assert all(0.5 < float(row["ssim"]) <= 1 for row in rows)
    for case in ("subject1", "subject2", "subject3"):
        hr = sitk.ReadImage(str(out / case / "hr.nrrd"))
        assert hr.GetSize() == sitk.ReadImage(str(cohort / case / "GE_aOP.nii.gz")).GetSize()
        for name in ("lr.nrrd", "re.nrrd", "dssim.nrrd", "metrics.json", "log.txt"):
            assert (out / case / name).is_file()


def test_a_failing_case_is_recorded_and_the_others_go_on(cohort, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    out = tmp_path / "results"
    result = _run("gre-to-tse-sim", str(broken), str(cohort / "subject1"), "--out-dir", str(out), "--no-flip-average")
    assert result.returncode == 1
    with open(out / "metrics.csv", newline="") as handle:
        rows = {row["case"]: row for row in csv.DictReader(handle)}
    assert rows["broken"]["status"] == "failed" and "GE_aOP" in rows["broken"]["error"]
    assert rows["subject1"]["status"] == "ok"


def test_shard_argument_and_case_lists(tmp_path):
    assert synthesize_batch.parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "x/2", "1/0"):
        with pytest.raises(Exception, match="shard"):
            synthesize_batch.parse_shard(bad)
    for name in ("c", "a", "b", "d"):
        (tmp_path / name).mkdir()
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'a'}\n\n{tmp_path / 'c'}\n")
    args = synthesize_batch.parser().parse_args(["m", "--cases-dir", str(tmp_path), "--out-dir", "o", "--shard", "1/2"])
    assert [p.name for p in synthesize_batch.list_cases(args)] == ["b", "d"]
    args = synthesize_batch.parser().parse_args(["m", "--list", str(tmp_path / "list.txt"), "--out-dir", "o"])
    assert [p.name for p in synthesize_batch.list_cases(args)] == ["a", "c"]


def test_a_conditioned_model_runs_with_its_parameters_in_bfloat16(cohort, tmp_path):
    """--param, --precision and --batch-size reach the library: the result of the same synthesize call (the
    case folder given after the options, as users write it)."""
    from mrsynth.inference import InferenceOptions
    from mrsynth.models import load_model
    from mrsynth.synthesis import synthesize

    case, out = cohort / "subject1", tmp_path / "results"
    settings = ["--inputs", "TSE_T2_HR", "--mask", "head_mask", "--param", "TR=2000", "--param", "TE=80"]
    result = _run("reparam-default-sim", "--out-dir", str(out), *settings,
                  "--precision", "bfloat16", "--batch-size", "2", "--device", "cpu", str(case))  # fmt: skip
    assert result.returncode == 0, result.stderr
    image, mask = (sitk.ReadImage(str(case / f"{name}.nii.gz")) for name in ("TSE_T2_HR", "head_mask"))
    expected = synthesize(
        load_model("reparam-default-sim"),
        [image],
        mask=mask,
        device="cpu",
        parameters={"TR": 2000, "TE": 80},
        options=InferenceOptions(batch_size=2, precision="bfloat16"),
    ).hr
    produced = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "subject1" / "hr.nrrd")))
    np.testing.assert_allclose(produced, sitk.GetArrayFromImage(expected), atol=1e-5)


@pytest.mark.parametrize(
    ("model", "settings", "message"),
    [
        ("reparam-default-sim", ["--param", "TR=2000"], "TE"),
        ("reparam-default-sim", ["--param", "TR=2000", "--param", "TE=5000"], "TE"),
        ("gre-to-tse-sim", ["--param", "TR=2000"], "TR"),
        ("gre-to-tse-sim", ["--precision", "float16", "--device", "cpu"], "float16 needs a CUDA device"),
    ],
)
def test_settings_that_fail_every_case_stop_before_the_first(cohort, tmp_path, model, settings, message):
    out = tmp_path / "results"
    result = _run(model, "--cases-dir", str(cohort), "--out-dir", str(out), *settings)
    assert result.returncode == 2
    assert message in result.stderr and "synthesize_batch:" in result.stderr
    assert not out.exists()  # nothing started, nothing half-written
