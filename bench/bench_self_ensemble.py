"""Does a geometric self-ensemble lift the network's scores on a demo's test fields?

The self-ensemble (Lim et al., EDSR, 2017) runs the network on the 8 flips and 90-degree
rotations of the input, undoes each on the output and averages them: 8 times the inference
cost. Printed per ensemble size (1, 2 = identity + mirror, 8), against the 100x target and the
noise-free truth: mean SSIM / PSNR and the per-field SSIM gain over the single pass.

    python bench/bench_self_ensemble.py /tmp/demo9 model/reference
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from app.demo import demo_truth
from model.inference.engine import Enhancer
from model.store import load_model
from model.training.evaluate import prepare_evaluation
from model.training.metrics import ssim_psnr

#: (rotations by 90 degrees, mirror) of each ensemble size.
TRANSFORMS = {
    1: [(0, False)],
    2: [(0, False), (0, True)],
    8: [(k, m) for k in range(4) for m in (False, True)],
}


def ensemble(enhancer: Enhancer, image: np.ndarray, size: int) -> np.ndarray:
    """Mean of the network's outputs over the transforms of *size*, each undone."""
    outs = []
    for k, mirror in TRANSFORMS[size]:
        x = np.rot90(image, k, axes=(0, 1))
        x = x[:, ::-1] if mirror else x
        y = enhancer.enhance(np.ascontiguousarray(x))
        y = y[:, ::-1] if mirror else y
        outs.append(np.rot90(y, -k, axes=(0, 1)))
    return np.mean(outs, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="a `deepscope demo --out` directory")
    parser.add_argument("model", type=Path, help="model directory")
    args = parser.parse_args()
    d = args.demo
    truth = demo_truth(d)
    fields = prepare_evaluation(d / "pairs", regions=0, truth=truth)
    white = fields.pairset.max_value
    net, cfg = load_model(args.model, expect_scale=fields.pairset.scale)
    enhancer = Enhancer(net, cfg, device="cpu", precision="fp32")
    scores: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for f in fields.fields:
        for size in TRANSFORMS:
            out = ensemble(enhancer, f.lr, size)
            for ref, image in f.refs.items():
                scores.setdefault((size, ref), []).append(ssim_psnr(out, image, white))
    result = {}
    for (size, ref), values in scores.items():
        a, single = np.array(values), np.array(scores[(1, ref)])
        gain = a[:, 0] - single[:, 0]
        result[f"x{size} vs {ref}"] = {
            "fields": len(a),
            "ssim": round(float(a[:, 0].mean()), 5),
            "psnr": round(float(a[:, 1].mean()), 3),
            "ssim_gain": [round(float(v), 5) for v in (gain.mean(), gain.min(), gain.max())],
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
