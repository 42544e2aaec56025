"""Local adaptation at prediction time (MbPA++, de Masson d'Autume et al. 2019).

For each test example: fetch its K nearest memories, take a few gradient steps from the
current weights on them (an L2 pull keeps the adapted weights near the originals), predict,
and throw the adapted weights away. Examples are adapted in parallel with ``torch.func.vmap``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap


def adapted_logits(model, store, x: torch.Tensor, keys: np.ndarray, cfg) -> torch.Tensor:
    res = store.search(keys, cfg.adapt_k)
    ids = np.where(res.ids >= 0, res.ids, res.ids[:, :1])  # pad short rows with the nearest
    flat = np.unique(ids)
    batch = store.fetch(flat)
    row = np.searchsorted(flat, ids)
    device = x.device
    row = torch.from_numpy(row).to(device)
    mem_x = torch.from_numpy(np.ascontiguousarray(batch.values)).to(device)[row]
    mem_y = torch.from_numpy(batch.labels).to(device)[row]
    base = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b for n, b in model.named_buffers()}

    def loss(params, xs, ys):
        logits = functional_call(model, {**params, **buffers}, (xs,))
        pull = sum(((params[n] - base[n]) ** 2).sum() for n in params)
        return F.cross_entropy(logits, ys) + 0.5 * cfg.adapt_l2 * pull

    def adapt_one(xq, xs, ys):
        params = base
        for _ in range(cfg.adapt_steps):
            g = grad(loss)(params, xs, ys)
            params = {n: params[n] - cfg.adapt_lr * g[n] for n in params}
        return functional_call(model, {**params, **buffers}, (xq.unsqueeze(0),))[0]

    with torch.no_grad():
        return torch.cat(
            [
                vmap(adapt_one)(xc, mc, yc)
                for xc, mc, yc in zip(x.split(64), mem_x.split(64), mem_y.split(64))
            ]
        )
