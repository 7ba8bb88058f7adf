"""Evaluate the re-parameterisation models on the held-out BrainWeb phantom (paper 001, section 4.2, Table 2).

The phantom's tissue maps (never seen in training, which used SynthSeg subjects) give, through the
training simulator (``mrsynth.reparam_data``): a noisy input at TR 4.5 s / TE 50 ms (and, for
Param-to-Param, at other input settings: ``--other-inputs``, by default TR 2 s / TE 20 ms) and the
noise-free truth at every target TR/TE of a grid.
Every model runs through ``mrsynth.synthesis.synthesize`` as a user's would (body-mask p99
normalisation, flip averaging; the output is in units of its own 99th percentile inside the body)
on 24 axial slices evenly spaced over the middle 70 % of the head (the paper used 24 slices per
volume). The truth is divided by its 99th percentile inside the head. Scored inside the head: PSNR
(data range = the truth's range inside the head) and MAE on the paper's 0-255 scale (the truth's
range inside the head = 255).

Rows: both models; the trivial baseline (the input under the best global linear map a x + b,
fitted by least squares on the truth inside the head: what rescaling alone can do); the ceiling,
an actual acquisition at the target TR/TE (the signal equation on the true tissue maps, with the
same Rician noise as the input, SNR 30, on the truth's scale, so that only the noise differs;
without noise it would equal the truth exactly, PSNR inf).

    PYTHONPATH=. python scripts/eval_reparam.py --out runs/reparam_eval --doc docs/other-systems.md

``--doc`` puts the table between the document's reparam-table markers and writes every number,
``reparam_eval.json``, into the document's folder beside it, so the two cannot drift apart.
``--subject`` scores a SynthSeg label map the same way instead (the validation subjects 14 and 15:
how to choose between models without looking at the phantom).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mrsynth.files import atomic_path
from mrsynth.masks import normalise_p99
from mrsynth.metrics import mae, psnr
from mrsynth.models import load_model
from mrsynth.reparam_data import DEFAULT_INPUT, Anatomy, acquire, grid_settings, noise_free, tissue_signals
from mrsynth.simulate import bundled_phantom, load_spec
from mrsynth.synthesis import synthesize

TRS = (1500.0, 3000.0, 6000.0, 9000.0)
TES = (20.0, 50.0, 100.0, 200.0, 500.0)
START, END = "<!-- reparam-table:start -->", "<!-- reparam-table:end -->"


def image(array: np.ndarray) -> sitk.Image:
    """A paper-order [SI, AP, LR] stack as a 1 mm image (identity direction: numpy order is paper order)."""
    result = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    result.SetSpacing((1.0, 1.0, 1.0))
    return result


def scores(pred: np.ndarray, truth: np.ndarray, head: np.ndarray) -> dict[str, float]:
    span = float(truth[head].max() - truth[head].min())
    return {"psnr": psnr(pred, truth, head), "mae": mae(pred, truth, head) * 255.0 / span}


def linear_baseline(x: np.ndarray, truth: np.ndarray, head: np.ndarray) -> np.ndarray:
    """The best global map a x + b of the input onto the truth (least squares inside the head)."""
    a, b = np.polyfit(x[head].astype(np.float64), truth[head].astype(np.float64), 1)
    return (a * x + b).astype(np.float32)


def run_model(model, x: np.ndarray, values: dict[str, float]) -> np.ndarray:
    return sitk.GetArrayFromImage(synthesize(model, [image(x)], parameters=values).hr)


def test_anatomy(subject: str = "brainweb") -> Anatomy:
    """24 axial slices of ``subject``: a SynthSeg label map, or ``brainweb``, the test phantom."""
    if subject == "brainweb":
        return Anatomy.from_labels("brainweb", bundled_phantom(), "brainweb", slices=24)
    return Anatomy.from_file(subject, "synthseg", 24)


def acquire_inputs(
    anatomy: Anatomy, sources: list[dict[str, float]], rng: np.random.Generator, spec: dict
) -> list[np.ndarray]:
    """The noisy input at each of ``sources``, acquired in that order from ``rng`` (so each keeps its noise
    whatever follows it)."""
    psf = float(spec["acquisition"]["psf_sigma_voxels"])
    signals = [tissue_signals(**_lower(source), spec=spec) for source in sources]
    return [acquire(noise_free(anatomy.tissues, signal, psf), anatomy.head, rng) for signal in signals]


def evaluate(
    default_model: str, param_model: str, seed: int, others: list[dict[str, float]], subject: str = "brainweb"
) -> dict:
    spec = load_spec()
    psf = float(spec["acquisition"]["psf_sigma_voxels"])
    anatomy = test_anatomy(subject)
    head = anatomy.head
    rng = np.random.default_rng(seed)
    sources = [DEFAULT_INPUT, *others]
    inputs = acquire_inputs(anatomy, sources, rng, spec)
    d2p, p2p = load_model(default_model), load_model(param_model)
    rows = []
    for target in grid_settings(TRS, TES):
        clean = noise_free(anatomy.tissues, tissue_signals(target["TR"], target["TE"], spec), psf)
        truth, scale = normalise_p99(clean, head)
        started = time.perf_counter()
        outputs = {"Default-to-Param": run_model(d2p, inputs[0], target)}
        for source, x in zip(sources, inputs, strict=True):
            outputs[p2p_name(source)] = run_model(p2p, x, _p2p(source, target))
        for source, x in zip(sources, inputs, strict=True):
            outputs[baseline_name(source)] = linear_baseline(x, truth, head)
        outputs[CEILING] = acquire(clean, head, rng) / scale
        row = {"TR": target["TR"], "TE": target["TE"], "seconds": time.perf_counter() - started}
        row.update({name: scores(pred, truth, head) for name, pred in outputs.items()})
        rows.append(row)
        print(
            f"TR {target['TR']:g} TE {target['TE']:g}: "
            + ", ".join(f"{k} {v['psnr']:.2f}" for k, v in row.items() if isinstance(v, dict))
        )
    return {
        "rows": rows,
        "default_model": default_model,
        "param_model": param_model,
        "seed": seed,
        "subject": subject,
        "slices": 24,
        "inputs": sources,
    }


def p2p_name(source: dict[str, float]) -> str:
    if source == DEFAULT_INPUT:
        return "Param-to-Param (same input)"
    return f"Param-to-Param (input TR {source['TR'] / 1000:g} s, TE {source['TE']:g} ms)"


def baseline_name(source: dict[str, float]) -> str:
    if source == DEFAULT_INPUT:
        return "baseline: input rescaled"
    return f"baseline: input TR {source['TR'] / 1000:g} s, TE {source['TE']:g} ms rescaled"


def _lower(values: dict[str, float]) -> dict[str, float]:
    return {"tr": values["TR"], "te": values["TE"]}


def _p2p(source: dict[str, float], target: dict[str, float]) -> dict[str, float]:
    return {"input_TR": source["TR"], "input_TE": source["TE"], "TR": target["TR"], "TE": target["TE"]}


CEILING = "ceiling: acquisition at target"


def short_name(prefix: str, source: dict[str, float]) -> str:
    """``prefix`` for the TR 4.5 s / TE 50 ms input, ``prefix TR/TE`` (s/ms) for any other."""
    return prefix if source == DEFAULT_INPUT else f"{prefix} {source['TR'] / 1000:g}/{source['TE']:g}"


def markdown(result: dict) -> str:
    rows, sources = result["rows"], result["inputs"]
    methods = {"Default-to-Param": ("D2P", baseline_name(DEFAULT_INPUT))}
    methods |= {p2p_name(s): (short_name("P2P", s), baseline_name(s)) for s in sources}
    methods |= {baseline_name(s): (short_name("base", s), None) for s in sources}
    methods[CEILING] = ("ceiling", None)
    lines = [
        "| Method | Mean PSNR (dB) | Std. PSNR | Mean MAE (0-255) | Std. MAE | Beats its baseline (PSNR) |",
        "|---|---|---|---|---|---|",
    ]
    for method, (_, baseline) in methods.items():
        p = np.array([r[method]["psnr"] for r in rows])
        m = np.array([r[method]["mae"] for r in rows])
        wins = ""
        if baseline:
            won = sum(r[method]["psnr"] > r[baseline]["psnr"] for r in rows)
            wins = f"{won} of {len(rows)}"
        lines.append(f"| {method} | {p.mean():.2f} | {p.std():.2f} | {m.mean():.2f} | {m.std():.2f} | {wins} |")
    legend = ", ".join(f"{short} = {method}" for method, (short, _) in methods.items())
    lines += ["", f"PSNR (dB) per target setting ({legend}):", ""]
    lines.append("| TR (ms) | TE (ms) | " + " | ".join(short for short, _ in methods.values()) + " |")
    lines.append("|---|---|" + "---|" * len(methods))
    for r in rows:
        lines.append(f"| {r['TR']:g} | {r['TE']:g} | " + " | ".join(f"{r[m]['psnr']:.2f}" for m in methods) + " |")
    return "\n".join(lines)


def write_doc(path: Path, table: str, result: dict) -> None:
    """The table between the document's markers, and every number in ``reparam_eval.json`` beside it."""
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} markers: add them to the re-parameterisation section")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    write_text(path.with_name("reparam_eval.json"), json.dumps(result, indent=1) + "\n")
    write_text(path, f"{head}{START}\n{table}\n{END}{tail}")


def write_text(path: Path, text: str) -> None:
    """Write through a temporary file, so that an interrupted run leaves the old file whole."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def setting(text: str) -> dict[str, float]:
    try:
        tr, te = (float(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"--other-inputs takes TR,TE in ms, e.g. 2000,20, not {text!r}") from None
    return {"TR": tr, "TE": te}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--default-model", default="reparam-default-sim")
    parser.add_argument("--param-model", default="reparam-param-sim")
    parser.add_argument("--out", required=True, help="folder for reparam_eval.json and table.md")
    parser.add_argument("--doc", help="Markdown file whose reparam-table markers get the table")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--subject",
        default="brainweb",
        help="brainweb (the held-out phantom, the default) or a SynthSeg label map, e.g. a validation subject to "
        "choose between models on",
    )
    parser.add_argument(
        "--other-inputs",
        nargs="+",
        default=["2000,20"],
        metavar="TR,TE",
        help="input settings (ms) besides TR 4.5 s / TE 50 ms for Param-to-Param (default: 2000,20)",
    )
    args = parser.parse_args()
    if args.doc and args.subject != "brainweb":
        parser.error("--doc holds the phantom's table: leave --subject out")
    others = [setting(text) for text in args.other_inputs]
    result = evaluate(args.default_model, args.param_model, args.seed, others, args.subject)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "reparam_eval.json", json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    write_text(out / "table.md", table + "\n")
    print(table)
    if args.doc:
        write_doc(Path(args.doc), table, result)


if __name__ == "__main__":
    main()
