"""Training the downsampling kernel with the network frozen (paper 000, section II.E.6), and its command.

After the network is trained, the 1x1x4 kernel that turns sTSE_HR into sTSE_LR is fitted on its own:
offset fixed (0 in the paper; any of the four patch configurations here, for section IV.C), no flips,
no random offsets, Adam at learning rate 1e-4 without weight decay, starting from [1/2, 1/2, 0, 0],
L1 against the thick target. Because the network is frozen, its outputs on a fixed set of training
patches are computed once and the four weights are fitted to them: the same optimisation as running
the network every step, at a fraction of the cost. The result is stored in the checkpoint
(``trained_lr_kernels``) and used at inference on request (``mrsynth synthesize --lr-kernels``).

With the network frozen, that L1 fit is a convex problem in four unknowns, and ``exact_kernel`` solves
it to its minimum. The paper's Adam at 1e-4 on mini-batches need not get there: neighbouring slices of
an sTSE_HR are strongly correlated, so moving weight from one to the next barely changes the loss, and
the noisy mini-batch gradients leave the kernel wherever the step count runs out along that valley
(docs/experiments.md: 10000 steps stopped at SAD 0.146 from the slice profile where the optimum of the
same patches is 0.096). ``mrsynth train-kernel`` therefore solves exactly by default, and keeps the
paper's optimiser as ``--solver adam``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import LoadedModel, read_checkpoint, save_checkpoint
from .data import Case, PatchSampler
from .errors import MRSynthError
from .highlow import downsample_lr, estimate_pair_start

INITIAL_KERNEL = (0.5, 0.5, 0.0, 0.0)
SOLVERS = ("exact", "adam")


def frozen_outputs(
    model: LoadedModel, cases: Sequence[Case], offset: int, patches: int, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """sTSE_HR of ``patches`` training patches at LR offset ``offset`` and their thick targets."""
    info = model.info
    pair_start = int(np.bincount([estimate_pair_start(c.inputs[-1], c.target, c.mask) for c in cases]).argmax())
    sampler = PatchSampler(
        list(cases), tuple(info.patch), pair_start, np.random.default_rng(seed), False, fixed_offset=offset
    )
    network = model.network.to(device).eval()
    outputs, targets = [], []
    with torch.inference_mode():
        for _ in range(patches):
            x, y, _ = sampler.draw(1)
            outputs.append(network(torch.from_numpy(x).to(device)).float())
            targets.append(torch.from_numpy(y).to(device))
    return torch.cat(outputs), torch.cat(targets)


def fit_kernel(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    initial: Sequence[float] = INITIAL_KERNEL,
    iterations: int = 3000,
    batch_size: int = 16,
    learning_rate: float = 1e-4,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[float, ...]:
    """Adam on the kernel alone: L1 between ``downsample_lr(outputs, kernel)`` and ``targets``."""
    if outputs.shape[0] != targets.shape[0] or outputs.shape[0] == 0:
        raise MRSynthError("kernel fitting needs as many (at least one) network outputs as targets")
    kernel = torch.tensor(initial, dtype=outputs.dtype, device=outputs.device, requires_grad=True)
    optimizer = torch.optim.Adam([kernel], lr=learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    for step in range(1, iterations + 1):
        pick = torch.randint(0, outputs.shape[0], (min(batch_size, outputs.shape[0]),), generator=generator)
        loss = torch.nn.functional.l1_loss(downsample_lr(outputs[pick], kernel), targets[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(step, iterations, loss.item())
    return tuple(float(w) for w in kernel.detach().cpu())


def exact_kernel(
    outputs: torch.Tensor, targets: torch.Tensor, *, tolerance: float = 1e-7, max_iterations: int = 200
) -> tuple[float, ...]:
    """The kernel that minimises L1 between ``downsample_lr(outputs, kernel)`` and ``targets``, exactly.

    Iteratively reweighted least squares: each pass solves a weighted least-squares problem whose
    weights 1 / |residual| make its objective the L1 loss at the current kernel; it starts from the
    least-squares kernel and stops once no weight moves by more than ``tolerance``. Residuals are
    floored at 1e-6 of the targets' mean magnitude, so exact fits do not divide by zero. This is median
    regression on four columns; statsmodels' QuantReg iterates the same way, and these lines spare the
    project that dependency (scipy's linear programs would need two variables per voxel).
    """
    factor = len(INITIAL_KERNEL)
    if outputs.shape[0] != targets.shape[0] or outputs.shape[0] == 0:
        raise MRSynthError("kernel fitting needs as many (at least one) network outputs as targets")
    if outputs.shape[-1] != factor * targets.shape[-1]:
        raise MRSynthError(f"network outputs need {factor} LR slices per target slice for a {factor}-tap kernel")
    design = outputs.detach().double().cpu().unfold(-1, factor, factor).reshape(-1, factor)
    observed = targets.detach().double().cpu().reshape(-1)
    floor = 1e-6 * float(observed.abs().mean()) + 1e-12

    def weighted_solve(weight: torch.Tensor) -> torch.Tensor:  # normal equations: a 4x4 system in float64
        weighted = design * weight[:, None]
        return torch.linalg.solve(weighted.T @ design, weighted.T @ observed)

    kernel = weighted_solve(torch.ones_like(observed))
    for _ in range(max_iterations):
        updated = weighted_solve((design @ kernel - observed).abs().clamp_min(floor).reciprocal())
        moved = float((updated - kernel).abs().max())
        kernel = updated
        if moved < tolerance:
            break
    return tuple(float(w) for w in kernel)


def add_train_kernel_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train-kernel",
        help="fit a High-to-low model's downsampling kernel with the network frozen (paper 000, II.E.6)",
        description="Fit the 1x1x4 kernel that makes sTSE_LR from sTSE_HR on training cases, with the network "
        "frozen, and write a copy of the model that carries it (use it with 'mrsynth synthesize --lr-kernels "
        "trained'). Run once per --offset for the four patch configurations (--lr-kernels four).",
    )
    parser.add_argument("model", help="a High-to-low model: registered name (e.g. gre-to-tse-sim) or checkpoint file")
    parser.add_argument("cases", nargs="+", help="training case folders (as 'mrsynth simulate' or 'prepare' write)")
    parser.add_argument("--output", required=True, help="the model with its trained kernel (may equal MODEL)")
    parser.add_argument("--offset", type=int, default=0, choices=(-1, 0, 1, 2), help="LR offset (default: 0)")
    parser.add_argument("--patches", type=int, default=64, help="training patches the kernel is fitted on")
    parser.add_argument(
        "--solver",
        choices=SOLVERS,
        default="exact",
        help="exact: the L1 minimum itself (seconds); adam: the paper's optimiser, which can stop short of it "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=10000,
        help="--solver adam: Adam steps; at learning rate 1e-4 a weight moves at most ~1e-4 per step, so going "
        "from [1/2, 1/2, 0, 0] to a [1/6, 1/3, 1/3, 1/6] profile takes several thousand (default: %(default)s)",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=1e-4, help="--solver adam (default: %(default)s, as the paper)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run_train_kernel)


def run_train_kernel(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .checkpoint import load_checkpoint
    from .files import check_output_path
    from .inference import resolve_device
    from .models import resolve

    output = check_output_path(args.output)
    device = resolve_device(args.device)
    source = resolve(args.model)
    model = load_checkpoint(source)
    info = model.info
    if info.approach != "high-to-low":
        raise MRSynthError(f"model {info.name} is a {info.approach} model: only High-to-low models have a kernel")
    if args.patches < 1 or args.iterations < 1:
        raise MRSynthError("--patches and --iterations must be at least 1")
    data = info.training.get("config", {}).get("data", {})  # the names the model was trained with
    target, mask = data.get("target", "TSE_thick"), data.get("mask", "head_mask")
    cases = [Case.load(Path(d), info.inputs, target, mask, info.patch) for d in args.cases]
    outputs, targets = frozen_outputs(model, cases, args.offset, args.patches, args.seed, device)
    if args.solver == "exact":
        kernel = exact_kernel(outputs, targets)
    else:
        with tqdm(total=args.iterations, desc=f"fitting the offset-{args.offset} kernel", unit="step") as bar:

            def progress(step: int, total: int, loss: float) -> None:
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update(1)

            kernel = fit_kernel(
                outputs,
                targets,
                iterations=args.iterations,
                learning_rate=args.learning_rate,
                seed=args.seed,
                progress=progress,
            )
    info.trained_lr_kernels = {**info.trained_lr_kernels, str(args.offset): list(kernel)}
    extra = read_checkpoint(source).get("extra")
    save_checkpoint(output, model.network.cpu(), info, extra)
    print(f"kernel at offset {args.offset}: [{', '.join(f'{w:.4f}' for w in kernel)}] (sum {sum(kernel):.4f})")
    print(f"wrote {output}")
    return 0
