"""Why a model decided: joint x time importance of a skeleton clip, and how alike two feature spaces are.

Attribution of one decision (x: preprocessed clips (N, C, T, V, M) as every runtime takes them):

    gradcam(model, x)               Grad-CAM on a stage's feature map (the last by default): (N, T_stage, V)
    integrated_gradients(model, x)  integrated gradients on the input against the same clip held still (every
                                    joint at its mean position): what the motion contributed, (N, T, V)
    attention_importance(model, x)  the last linear-attention block: the attention each frame receives times its
                                    value's norm, (N, T_stage, V); None for the Lite variants (no attention)
    occlusion(predict, x)           any runtime that can only predict (ONNX, LiteRT, TensorRT): what holding one
                                    joint still (and moving it alone) does to the target's log-probability, (N, V)

Every map is non-negative; `joint_scores` sums one over time and scales it to [0, 1]. The gradient methods need
the PyTorch model (torch is imported inside them: an edge device running an exported model needs no torch).
`DecisionExplainer` picks one per runtime for the edge overlay (`python -m edge.run --explain`).

Feature space (numpy): `linear_cka` and `knn_agreement` say how alike two models' feature geometries are over the
same clips, `knn_accuracy` how well one separates the classes, `tsne` / `pca` draw it in 2-D.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from core.evaluation import torch_predict_fn
from core.mapping import mapping_matrix

GRADIENT_METHODS = ("gradcam", "integrated_gradients", "attention")
METHODS = (*GRADIENT_METHODS, "occlusion")
PredictFn = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------------------
# Attribution through the PyTorch model


def _as_tensor(x: Any):
    import torch
    return x.detach().float() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, np.float32))


def _targets(logits, target: int | np.ndarray | list[int] | None):
    import torch
    if target is None:
        return logits.argmax(dim=1)
    return torch.as_tensor(np.broadcast_to(np.asarray(target), (logits.shape[0],)).copy(), dtype=torch.long)


def _check_eval(model: Any) -> None:
    if model.training:
        raise ValueError("attribution needs the model in eval mode (BatchNorm statistics, no dropout): call "
                         "model.eval() first")


def gradcam(model: Any, x: Any, target: int | np.ndarray | None = None, stage: int = -1) -> np.ndarray:
    """Grad-CAM over joints and time: relu(sum_c w_c A_c) of stage `stage`'s feature map A (C, T_s, V), w_c the
    target logit's gradient averaged over (T_s, V). On the last stage of a global-average-pooling head this is
    exactly CAM. Persons are summed. Returns (N, T_s, V) float32, non-negative."""
    import torch
    _check_eval(model)
    x = _as_tensor(x)
    n, m = x.shape[0], x.shape[-1]
    with torch.enable_grad():
        final, (feat,) = model.forward_intermediates(x, indices=[stage])
        logits = model.forward_head(final)
        chosen = _targets(logits, target)
        score = logits.gather(1, chosen[:, None]).sum()
        (grad,) = torch.autograd.grad(score, feat)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (N*M, C, 1, 1)
    cam = torch.relu((weights * feat.detach()).sum(dim=1))  # (N*M, T_s, V)
    return cam.reshape(n, m, *cam.shape[1:]).sum(dim=1).numpy().astype(np.float32)


def still_baseline(x: np.ndarray) -> np.ndarray:
    """x (N, C, T, V, M) with every joint held at its mean position over the clip: the same body, no motion."""
    x = np.asarray(x, dtype=np.float32)
    return np.broadcast_to(x.mean(axis=2, keepdims=True), x.shape).copy()


def integrated_gradients(model: Any, x: Any, target: int | np.ndarray | None = None, steps: int = 16,
                         baseline: str = "still", signed: bool = False) -> np.ndarray:
    """Integrated gradients of the target logit on the input, |attribution| summed over channels and persons:
    (N, T, V) float32 (signed=True: the raw attribution (N, C, T, V, M), which sums to f(x) - f(baseline)).
    baseline 'still' (each joint at its mean position: attributes the motion) or 'zero' (every joint at the
    body centre: attributes the pose too, biased towards joints far from the centre). Midpoint rule with
    `steps` points, all of a clip's steps in one batch."""
    import torch
    _check_eval(model)
    x = _as_tensor(x)
    if baseline == "still":
        base = torch.from_numpy(still_baseline(x.numpy()))
    elif baseline == "zero":
        base = torch.zeros_like(x)
    else:
        raise ValueError(f"unknown integrated-gradients baseline {baseline!r}; choose 'still' or 'zero'")
    alphas = ((torch.arange(steps, dtype=torch.float32) + 0.5) / steps).view(-1, 1, 1, 1, 1)
    out = []
    for i in range(x.shape[0]):
        delta = x[i] - base[i]
        path = (base[i] + alphas * delta).requires_grad_(True)  # (steps, C, T, V, M)
        with torch.enable_grad():
            if target is None:  # the clip rides in the same batch: its logits pick the target, one forward
                logits = model(torch.cat([path, x[i:i + 1]]))
                chosen = int(logits[-1].detach().argmax())
            else:
                logits = model(path)
                chosen = int(np.broadcast_to(np.asarray(target), (x.shape[0],))[i])
            (grad,) = torch.autograd.grad(logits[:steps, chosen].sum(), path)
        attr = delta * grad.mean(dim=0)  # (C, T, V, M)
        out.append(attr if signed else attr.abs().sum(dim=(0, 3)))
    return torch.stack(out).numpy().astype(np.float32)


def last_attention_module(model: Any) -> Any | None:
    """The linear-attention module of the model's deepest block that has one (None for the Lite variants)."""
    found = None
    for stage in model.stages:
        for block in stage.blocks:
            if getattr(block, "attention", None) is not None:
                found = block.attention
    return found


def attention_importance(model: Any, x: Any) -> np.ndarray | None:
    """The last linear-attention block read as importance: for every joint and key frame s, the attention s
    receives (mean over query frames) times the norm of its value, summed over heads (attention weights alone
    sum to 1 per joint, so the value norm is what compares joints). (N, T_s, V) float32; None without attention."""
    import torch
    attention = last_attention_module(model)
    if attention is None:
        return None
    captured: list = []
    handle = attention.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            model(_as_tensor(x))
            weights, values = attention.attention_weights(captured[-1])  # (N*M, V, h, T, T), (N*M, V, h, dv, T)
    finally:
        handle.remove()
    received = weights.mean(dim=3)  # (N*M, V, h, T_key)
    score = (received * values.norm(dim=3)).sum(dim=2)  # (N*M, V, T)
    n, m = _as_tensor(x).shape[0], _as_tensor(x).shape[-1]
    score = score.transpose(1, 2).reshape(n, m, score.shape[2], score.shape[1]).sum(dim=1)
    return score.numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Attribution through any runtime


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


OCCLUSION_MODES = ("remove", "keep", "both")


def occlusion(predict: PredictFn, x: np.ndarray, target: int | np.ndarray | None = None, mode: str = "both"
              ) -> np.ndarray:
    """Per joint, what its motion does to the target's log-probability, through predictions alone (so it runs
    through ONNX Runtime, LiteRT or TensorRT), clipped at 0: (N, V) float32.
    remove: the drop when that joint alone is held at its mean position (V + 1 clips per decision);
    keep: the gain when only that joint moves and every other is held still (V + 1 clips);
    both: their mean, the two end points of a Shapley value's permutations (2 V + 2 clips). One predict call per
    clip."""
    if mode not in OCCLUSION_MODES:
        raise ValueError(f"unknown occlusion mode {mode!r}; choose from {', '.join(OCCLUSION_MODES)}")
    x = np.asarray(x, dtype=np.float32)
    n, _, _, v, _ = x.shape
    still = np.broadcast_to(x.mean(axis=2, keepdims=True), x.shape)
    out = np.zeros((n, v), np.float32)
    for i in range(n):
        rows = [x[i]] + ([still[i]] if mode != "remove" else [])  # the clip itself (and held still)
        if mode in ("remove", "both"):
            for j in range(v):
                r = x[i].copy()
                r[:, :, j] = still[i, :, :, j]
                rows.append(r)
        if mode in ("keep", "both"):
            for j in range(v):
                r = still[i].copy()
                r[:, :, j] = x[i, :, :, j]
                rows.append(r)
        logp = log_softmax(predict(np.stack(rows)))
        t = int(logp[0].argmax()) if target is None else int(np.broadcast_to(np.asarray(target), (n,))[i])
        effects = []
        if mode in ("remove", "both"):
            first = 1 if mode == "remove" else 2
            effects.append(logp[0, t] - logp[first:first + v, t])
        if mode in ("keep", "both"):
            effects.append(logp[-v:, t] - logp[1, t])
        out[i] = np.clip(np.mean(effects, axis=0), 0.0, None)
    return out


# ---------------------------------------------------------------------------------------------
# Maps -> what is drawn


def joint_scores(importance: np.ndarray) -> np.ndarray:
    """(N, T, V) maps summed over time, or (N, V) scores as they are, scaled so each clip's top joint is 1."""
    s = np.asarray(importance, dtype=np.float64)
    if s.ndim == 3:
        s = s.sum(axis=1)
    if s.ndim != 2:
        raise ValueError(f"importance must be (N, T, V) or (N, V), got shape {s.shape}")
    top = s.max(axis=1, keepdims=True)
    return (s / np.where(top > 0, top, 1.0)).astype(np.float32)


def frames_to_input(importance: np.ndarray, frames: int) -> np.ndarray:
    """(..., T_s, V) on a stage's time grid -> (..., frames, V) on the input's (each stage frame covers
    frames / T_s input frames; strided stages keep every k-th frame)."""
    s = np.asarray(importance)
    t = s.shape[-2]
    idx = np.minimum((np.arange(frames) * t) // frames, t - 1)
    return s[..., idx, :]


def importance_map(model: Any, x: Any, method: str, target: int | np.ndarray | None = None, **kwargs: Any
                   ) -> np.ndarray | None:
    """One method by name on the PyTorch model: (N, T, V) on the input's time grid (occlusion: (N, V));
    None for 'attention' on a model without attention."""
    frames = _as_tensor(x).shape[2]
    if method == "gradcam":
        return frames_to_input(gradcam(model, x, target, **kwargs), frames)
    if method == "integrated_gradients":
        return integrated_gradients(model, x, target, **kwargs)
    if method == "attention":
        att = attention_importance(model, x)
        return None if att is None else frames_to_input(att, frames)
    if method == "occlusion":
        return occlusion(torch_predict_fn(model), _as_tensor(x).numpy(), target, **kwargs)
    raise ValueError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)}")


def scores_in_layout(scores: np.ndarray, layout: str, target: str) -> np.ndarray:
    """(V,) joint scores of `layout` -> (V_target,) for a skeleton of layout `target` (the edge overlay draws the
    pose estimator's): each target joint takes the largest score of the model joints built from it (core.mapping);
    joints the model does not use get 0."""
    scores = np.asarray(scores, dtype=np.float32)
    if layout == target:
        return scores
    used = mapping_matrix(target, layout) > 0  # (V_layout, V_target): which target joints build each model joint
    return np.where(used, scores[:, None], 0.0).max(axis=0).astype(np.float32)


# one step (the gradient half-way between the clip held still and the clip, times the motion) ranked the moving
# joints as well as 16 steps in benchmarks.explain_check (mean AUC 0.98 / 0.96 vs 0.98 / 0.95, full / Lite), for
# one forward and backward pass per decision
EDGE_IG_STEPS = 1


class DecisionExplainer:
    """Joint importance of one decision for the edge overlay: `explainer(x)` -> (V,) in [0, 1] for one
    preprocessed window x (1, C, T, V, M).

    method 'auto': integrated gradients (EDGE_IG_STEPS steps) when a PyTorch model is at hand, the
    runtime's own (a .pt) or `checkpoint` (the .pt an exported model was converted from: the gradients come from
    it, the decision from the runtime); otherwise occlusion through the runtime (2 V + 2 predictions), which
    needs no gradients but points at the moving joints far less reliably (benchmarks.explain_check). `threads`:
    torch threads for the gradient pass (the edge loop's --threads)."""

    def __init__(self, runtime: Any, method: str = "auto", checkpoint: str | None = None,
                 steps: int = EDGE_IG_STEPS, threads: int | None = 1):
        model = getattr(runtime, "model", None)
        if checkpoint is not None:
            from core.checkpoint import input_spec, load_model
            model, ckpt = load_model(checkpoint)
            spec, theirs = input_spec(ckpt), runtime.spec
            if (list(ckpt["class_names"]) != list(runtime.class_names) or spec.layout != theirs.layout
                    or spec.frames != theirs.frames):
                raise ValueError(f"{checkpoint}: its classes, layout or frames differ from the model's; give the "
                                 "checkpoint the model was exported from")
        if method == "auto":
            method = "integrated_gradients" if model is not None else "occlusion"
        if method not in METHODS:
            raise ValueError(f"unknown attribution method {method!r}; choose from auto, {', '.join(METHODS)}")
        if method in GRADIENT_METHODS and model is None:
            raise ValueError(f"attribution {method!r} needs gradients, which the {getattr(runtime, 'name', '')} "
                             "runtime cannot give: pass the .pt checkpoint it was exported from, or use occlusion")
        if method == "attention" and last_attention_module(model) is None:
            raise ValueError("this model has no attention (a Lite variant): use integrated_gradients or gradcam")
        self.runtime, self.model, self.method, self.steps, self.threads = runtime, model, method, steps, threads

    def describe(self) -> str:
        """One line for the user: what explains each decision, and the caveat of occlusion."""
        if self.method == "occlusion":
            return (f"occlusion through {getattr(self.runtime, 'name', 'the runtime')} ({2 * self._joints() + 2} "
                    "predictions per decision; it points at the moving joints less reliably than integrated "
                    "gradients: give the .pt checkpoint with --explain-ckpt)")
        steps = f", {self.steps} step{'s' if self.steps != 1 else ''}" if self.method == "integrated_gradients" else ""
        return f"{self.method}{steps} through the PyTorch model on every decision"

    def _joints(self) -> int:
        shape = getattr(self.runtime, "input_shape", None)
        return int(shape[3]) if shape else 0

    def __call__(self, x: np.ndarray, target: int | None = None) -> np.ndarray:
        """x (1, C, T, V, M); target: the class to explain (the decision's), None for the window's top class."""
        x = np.asarray(x, dtype=np.float32)
        if self.method == "occlusion":
            scores = occlusion(self.runtime.predict, x, target)
        else:
            scores = self._gradients(x, target)
        return joint_scores(scores)[0]

    def _gradients(self, x: np.ndarray, target: int | None) -> np.ndarray:
        """The gradient method on the runtime's thread budget, with denormals flushed, as TorchRuntime does (next
        to MediaPipe, torch's default threads made one decision's attribution 100x slower)."""
        import torch
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        torch.set_flush_denormal(True)
        try:
            options = {"steps": self.steps} if self.method == "integrated_gradients" else {}
            return importance_map(self.model, x, self.method, target, **options)
        finally:
            torch.set_flush_denormal(False)
            torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# Feature space


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x - x.mean(axis=0, keepdims=True)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment of two feature matrices over the same N samples, (N, D1) and (N, D2):
    1 when one is a rotation and scaling of the other, near 0 for unrelated features (Kornblith et al., 2019)."""
    x, y = _centred(x), _centred(y)
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same samples in both: {len(x)} != {len(y)} rows")
    cross = np.linalg.norm(y.T @ x) ** 2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norm) if norm > 0 else 0.0


def _neighbours(x: np.ndarray, k: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sq = (x * x).sum(axis=1)
    dist = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
    np.fill_diagonal(dist, np.inf)
    return np.argsort(dist, axis=1, kind="stable")[:, :k]


def knn_agreement(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each sample's k nearest neighbours (Euclidean) shared by feature spaces x and y
    (chance: k / (N - 1))."""
    if len(x) != len(y):
        raise ValueError(f"k-NN agreement needs the same samples in both: {len(x)} != {len(y)} rows")
    k = min(k, len(x) - 1)
    a, b = _neighbours(x, k), _neighbours(y, k)
    return float(np.mean([len(np.intersect1d(a[i], b[i])) / k for i in range(len(a))]))


def knn_accuracy(x: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Leave-one-out k-NN classification accuracy in a feature space (majority vote, ties to the nearest)."""
    labels = np.asarray(labels)
    k = min(k, len(x) - 1)
    nn = labels[_neighbours(x, k)]
    correct = 0
    for i, row in enumerate(nn):
        counts = np.bincount(row, minlength=labels.max() + 1)
        best = np.flatnonzero(counts == counts.max())
        vote = next(c for c in row if c in best)  # ties: the nearest of the tied classes
        correct += int(vote == labels[i])
    return correct / len(labels)


def pca(x: np.ndarray, dims: int = 2) -> np.ndarray:
    """(N, D) -> (N, dims) principal components (signs fixed: the largest loading of each is positive)."""
    x = _centred(x)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:dims] * np.sign(vt[:dims][np.arange(min(dims, len(vt))), np.abs(vt[:dims]).argmax(axis=1)])[:, None]
    return (x @ vt.T).astype(np.float32)


def _affinities(dist: np.ndarray, perplexity: float, tol: float = 1e-5, tries: int = 100) -> np.ndarray:
    """Row-wise Gaussian affinities whose entropy matches log(perplexity): a bisection on every row's precision
    at once."""
    d = np.asarray(dist, dtype=np.float64).copy()
    np.fill_diagonal(d, np.inf)
    d -= d.min(axis=1, keepdims=True)
    finite = np.where(np.isfinite(d), d, 0.0)
    target = np.log(perplexity)
    n = len(d)
    beta, lo, hi = np.ones(n), np.zeros(n), np.full(n, np.inf)
    for _ in range(tries):
        w = np.exp(-d * beta[:, None])  # the diagonal is exp(-inf) = 0
        total = w.sum(axis=1)
        excess = np.log(total) + beta * (finite * w).sum(axis=1) / total - target
        if np.abs(excess).max() < tol:
            break
        sharpen = excess > 0  # entropy too high: a larger precision
        lo, hi = np.where(sharpen, beta, lo), np.where(sharpen, hi, beta)
        beta = np.where(sharpen, np.where(np.isinf(hi), 2 * beta, (beta + hi) / 2), (beta + lo) / 2)
    return w / total[:, None]


def tsne(x: np.ndarray, perplexity: float = 30.0, iterations: int = 750, seed: int = 0) -> np.ndarray:
    """Exact t-SNE to 2-D (van der Maaten & Hinton, 2008) in numpy, deterministic for a seed: PCA start, early
    exaggeration 12 for 250 steps, momentum 0.5 -> 0.8, adaptive gains, learning rate max(N / 48, 50).
    O(N^2) memory and time per step: meant for a test split (hundreds to a few thousand clips)."""
    x = _centred(x)
    n = len(x)
    if n < 4:
        return pca(x, 2)
    perplexity = min(perplexity, (n - 1) / 3)
    sq = (x * x).sum(axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    dist /= dist[dist > 0].mean() if (dist > 0).any() else 1.0
    p = _affinities(dist, perplexity)
    p = np.maximum((p + p.T) / (2 * n), 1e-12)
    y = pca(x, 2).astype(np.float64)
    y = y / (y[:, 0].std() or 1.0) * 1e-4 + np.random.default_rng(seed).normal(0, 1e-8, y.shape)
    velocity, gains = np.zeros_like(y), np.ones_like(y)
    rate = max(n / 48.0, 50.0)
    for step in range(iterations):
        exaggeration, momentum = (12.0, 0.5) if step < 250 else (1.0, 0.8)
        sq_y = (y * y).sum(axis=1)
        q_num = 1.0 / (1.0 + sq_y[:, None] + sq_y[None, :] - 2.0 * y @ y.T)
        np.fill_diagonal(q_num, 0.0)
        q = np.maximum(q_num / q_num.sum(), 1e-12)
        w = (exaggeration * p - q) * q_num
        grad = 4.0 * (w.sum(axis=1)[:, None] * y - w @ y)
        gains = np.where(np.sign(grad) != np.sign(velocity), gains + 0.2, gains * 0.8).clip(0.01)
        velocity = momentum * velocity - rate * gains * grad
        y = y + velocity
        y -= y.mean(axis=0)
    return y.astype(np.float32)
