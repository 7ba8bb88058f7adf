"""The inference engine against MONAI and TorchIO, side by side in one run, on a real-sized head.

Same network (the bundled default model), same input, same patch, stride and batch size, float32:

* mrsynth ``sliding_window`` (Gaussian, sigma = patch / 6), with and without the channels-last layout,
  and compiled (``--compile``: ``torch.compile`` with frozen weights; compiled once before the timed
  rounds, the compilation time printed on its own);
* MONAI ``sliding_window_inference`` (mode gaussian) given the same Gaussian as ``roi_weight_map`` and
  overlaps that put its windows exactly where ours are, so outputs must agree to 1e-5;
* TorchIO ``GridSampler`` + ``GridAggregator`` (hann), whose window differs, so only closeness is shown;
* mrsynth full-context (the ``fast`` preset) against the paper's stride, and background skipping on a
  real skull-stripped head in a wide field of view (``--skip-volume``; default the 240 x 240 x 155 T1
  of TCGA-DU-7294 in ../shared/data/tcga_brats_space, its brain mask = voxels above 0).

The volume is the BrainWeb phantom simulated by ``mrsynth.simulate`` (181 x 217 x 181 at 1 mm); on a
CPU the sliding methods take minutes each, so by default a central crop is used there (``--crop``).
Times are medians over ``--repeats`` interleaved rounds. Peak memory is measured per method in a fresh
child process (peak RSS on CPU, peak allocated CUDA memory on GPU).

    pip install -e .[bench]
    python scripts/bench_inference.py [--device cpu|cuda] [--crop SI AP LR | --full] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mrsynth.inference import InferenceOptions, full_context, resolve_device, sliding_window
from mrsynth.masks import body_mask, normalise_p99
from mrsynth.models import load_model
from mrsynth.simulate import bundled_phantom, simulate
from mrsynth.tiling import gaussian_weights
from mrsynth.volume_io import to_paper

CPU_CROP = (80, 96, 80)
CPU_SKIP_STRIDE = (28, 28, 16)
METHODS = ("mrsynth", "mrsynth-compiled", "mrsynth-contiguous", "monai", "torchio", "full-context")
DEFAULT_SKIP_VOLUME = Path(__file__).resolve().parents[2] / "shared/data/tcga_brats_space/TCGA-DU-7294_t1.nii.gz"


def head_volume() -> tuple[np.ndarray, np.ndarray]:
    """The simulated GE pair of the BrainWeb phantom, normalised as synthesis does, and its body mask."""
    sim = simulate(bundled_phantom(), "brainweb", seed=2026)
    arrays = [to_paper(sim[name]) for name in ("GE_aOP", "GE_aIP")]
    mask = body_mask(arrays[-1])
    return np.stack([normalise_p99(a, mask)[0] for a in arrays]).astype(np.float32), mask


def wide_head(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A real skull-stripped scan in its wide field of view, given to the two-input model as both
    inputs (the skipping measurement is about cost and about nothing changing inside the mask, not
    about the output's contrast), normalised as synthesis does; its brain mask is the voxels above 0."""
    from mrsynth.volume_io import read_volume

    array = to_paper(read_volume(path))
    mask = array > 0
    normalised = normalise_p99(array, mask)[0].astype(np.float32)
    return np.stack([normalised, normalised]), mask


def central_crop(x: np.ndarray, mask: np.ndarray, crop: tuple[int, int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    if crop is not None:
        starts = [(n - c) // 2 for n, c in zip(x.shape[1:], crop, strict=True)]
        box = tuple(slice(s, s + c) for s, c in zip(starts, crop, strict=True))
        x, mask = x[(slice(None), *box)], mask[box]
    return np.ascontiguousarray(x), mask


def runners(x: np.ndarray, mask: np.ndarray, network: torch.nn.Module, patch, stride, batch, device) -> dict:
    """One callable per method; each returns the HR output as a numpy array [C, SI, AP, LR].

    Every method gets its own copy of the network as loaded: the engine converts the network it is
    given to the channels-last layout in place, and the peers must not run on weights it converted
    (oneDNN then takes the channels-last path for them too).
    """
    reports: list = []
    copies = {name: copy.deepcopy(network) for name in METHODS}

    def ours(channels_last: bool = True, compile: bool = False) -> np.ndarray:
        options = InferenceOptions(mode="sliding", batch_size=batch, channels_last=channels_last, compile=compile)
        name = "mrsynth-compiled" if compile else ("mrsynth" if channels_last else "mrsynth-contiguous")
        hr, _, report = sliding_window(x, copies[name], patch, stride, options=options, device=device)
        if channels_last and not compile:
            reports.append(report)
        elif compile and not report.compiled:
            raise RuntimeError("torch.compile failed here (see the warning): the compiled row cannot be measured")
        return hr

    def monai() -> np.ndarray:
        from monai.inferers import sliding_window_inference

        overlap = [1 - (s + 0.5) / p for s, p in zip(stride, patch, strict=True)]  # int(p * (1 - o)) == s
        weights = torch.from_numpy(gaussian_weights(patch)).to(device)
        with torch.inference_mode():
            out = sliding_window_inference(
                torch.from_numpy(x)[None].to(device),
                patch,
                batch,
                copies["monai"],
                overlap=overlap,
                mode="gaussian",
                roi_weight_map=weights,
            )
        return out[0].cpu().numpy()

    def torchio() -> np.ndarray:
        import torchio as tio

        subject = tio.Subject(image=tio.ScalarImage(tensor=torch.from_numpy(x)))
        overlap = [p - s for p, s in zip(patch, stride, strict=True)]
        sampler = tio.inference.GridSampler(subject, patch, overlap)
        aggregator = tio.inference.GridAggregator(sampler, overlap_mode="hann")
        loader = torch.utils.data.DataLoader(sampler, batch_size=batch)
        with torch.inference_mode():
            for item in loader:
                aggregator.add_batch(copies["torchio"](item["image"][tio.DATA].to(device)), item[tio.LOCATION])
        return aggregator.get_output_tensor().cpu().numpy()

    def fast() -> np.ndarray:
        return full_context(x, copies["full-context"], device=device).hr

    return {
        "mrsynth": ours,
        "mrsynth-compiled": lambda: ours(compile=True),
        "mrsynth-contiguous": lambda: ours(channels_last=False),
        "monai": monai,
        "torchio": torchio,
        "full-context": fast,
    }, reports


def peak_memory(method: str, argv: list[str], volume: Path) -> float:
    """Peak memory (MB) of one run of ``method`` in a fresh process, above what loading took."""
    command = [sys.executable, __file__, *argv, "--child", method, "--volume", str(volume)]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{method} child failed: {out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"])


def _rss_mb() -> float:
    """This process's peak resident memory (VmHWM, Linux). Unlike getrusage's ru_maxrss it starts
    afresh after exec, so a child does not inherit the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory needs Linux (use --no-memory)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--crop", nargs=3, type=int, metavar=("SI", "AP", "LR"), help=f"CPU default {CPU_CROP}")
    parser.add_argument("--full", action="store_true", help="the whole 181 x 217 x 181 volume (GPU default)")
    parser.add_argument("--stride", nargs=3, type=int, default=(18, 18, 4), metavar=("SI", "AP", "LR"))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-method peak memory runs")
    parser.add_argument(
        "--skip-stride",
        nargs=3,
        type=int,
        metavar=("SI", "AP", "LR"),
        help="background skipping "
        f"on the whole head at this stride (default: --stride on GPU, {CPU_SKIP_STRIDE} on CPU)",
    )
    parser.add_argument(
        "--skip-volume",
        type=Path,
        default=DEFAULT_SKIP_VOLUME,
        help="a real skull-stripped scan for background skipping (default: %(default)s; the simulated "
        "BrainWeb head when it is absent)",
    )
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--volume", help=argparse.SUPPRESS)
    args = parser.parse_args()

    device = resolve_device(args.device)
    crop = None if args.full or (device.type == "cuda" and args.crop is None) else tuple(args.crop or CPU_CROP)
    model = load_model("gre-to-tse-sim", device=device)
    network = model.network.eval()
    patch, stride = tuple(model.info.patch), tuple(args.stride)
    if args.child:  # a fresh process for one method's peak memory, with the peers already imported
        import monai.inferers  # noqa: F401
        import torchio  # noqa: F401

        saved = np.load(args.volume)
        methods, _ = runners(saved["x"], saved["mask"], network, patch, stride, args.batch_size, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            methods[args.child]()
            peak = (torch.cuda.max_memory_allocated(device) - base) / 1e6
        else:
            base = _rss_mb()
            methods[args.child]()
            peak = _rss_mb() - base
        print(json.dumps({"peak_mb": peak}))
        return

    head, head_mask = head_volume()
    x, mask = central_crop(head, head_mask, crop)
    methods, reports = runners(x, mask, network, patch, stride, args.batch_size, device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"volume {x.shape[1:]} (SI, AP, LR){' central crop' if crop else ''}, patch {patch}, stride {stride}, ", end=""
    )
    print(f"batch {args.batch_size}, float32, median of {args.repeats} interleaved rounds")
    ours = methods["mrsynth"]()
    start = time.perf_counter()
    outputs = {"mrsynth-compiled": methods["mrsynth-compiled"]()}
    compile_s = time.perf_counter() - start
    outputs |= {name: methods[name]() for name in ("monai", "torchio")}
    inside = np.broadcast_to(mask, ours.shape)
    print(f"max |mrsynth - MONAI| = {np.abs(ours - outputs['monai']).max():.2e} (must be <= 1e-5)")
    compiled_error = np.abs(outputs["mrsynth-compiled"] - outputs["monai"]).max()
    print(f"max |mrsynth compiled - MONAI| = {compiled_error:.2e} (must be <= 1e-5)")
    print(f"first compiled run, compilation included: {compile_s:.1f} s")
    torchio_error = np.abs(ours - outputs["torchio"])[inside].mean()
    scale = np.abs(ours[inside]).mean()
    print(f"TorchIO (hann window): mean |difference| inside the head {torchio_error:.4f} ({torchio_error / scale:.2%})")

    times: dict[str, list[float]] = {name: [] for name in METHODS}
    reports.clear()
    for _ in range(args.repeats):
        for name in METHODS:
            start = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}
    network_s = statistics.median(r.network_seconds for r in reports)
    overhead_s = statistics.median(r.overhead_seconds for r in reports)
    memory = {}
    if not args.no_memory:
        argv = ["--device", str(device), "--stride", *map(str, stride), "--batch-size", str(args.batch_size)]
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "volume.npz", x=x, mask=mask)
            memory = {name: peak_memory(name, argv, Path(tmp) / "volume.npz") for name in METHODS}

    print()
    print("| method | median s | ratio to mrsynth sliding | peak memory MB |")
    print("|---|---|---|---|")
    labels = {
        "mrsynth": "mrsynth sliding",
        "mrsynth-compiled": "mrsynth sliding, compiled",
        "mrsynth-contiguous": "mrsynth sliding, channels-last off",
        "monai": "MONAI sliding_window_inference",
        "torchio": "TorchIO GridSampler/GridAggregator",
        "full-context": "mrsynth full-context (fast preset)",
    }
    for name in METHODS:
        mem = f"{memory[name]:.0f}" if name in memory else "-"
        print(f"| {labels[name]} | {median[name]:.2f} | {median[name] / median['mrsynth']:.2f} | {mem} |")
    print()
    print(f"MONAI / mrsynth: {median['monai'] / median['mrsynth']:.2f}x")
    print(f"MONAI / mrsynth compiled: {median['monai'] / median['mrsynth-compiled']:.2f}x")
    print(f"TorchIO / mrsynth: {median['torchio'] / median['mrsynth']:.2f}x")
    print(f"paper stride / full-context: {median['mrsynth'] / median['full-context']:.1f}x")
    print(f"fusion overhead: {overhead_s:.2f} s over {network_s:.2f} s in the network ({overhead_s / network_s:.1%})")
    skip_stride = tuple(args.skip_stride or (stride if device.type == "cuda" else CPU_SKIP_STRIDE))
    if args.skip_volume.exists():
        head, head_mask = wide_head(args.skip_volume)
        where = args.skip_volume.name
    else:
        where = "the simulated BrainWeb head (no --skip-volume found)"
    print(f"background skipping on {where}: {head.shape[1:]}, {head_mask.mean():.0%} of voxels inside the mask")
    skip_times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for skip in (False, True):
            options = InferenceOptions(mode="sliding", batch_size=args.batch_size, skip_background=skip)
            start = time.perf_counter()
            hr, _, report = sliding_window(
                head, network, patch, skip_stride, options=options, mask=head_mask, device=device
            )
            skip_times[skip].append(time.perf_counter() - start)
            if skip:
                skipped, total, kept = report.skipped, report.total, hr
            else:
                every = hr
    inside_head = np.broadcast_to(head_mask, every.shape)
    print(
        f"background skipping at stride {skip_stride}: {skipped} of {total} windows "
        f"skipped, {statistics.median(skip_times[False]) / statistics.median(skip_times[True]):.2f}x faster, "
        f"max |difference| inside the head {np.abs(every - kept)[inside_head].max():.1e}"
    )


if __name__ == "__main__":
    main()
