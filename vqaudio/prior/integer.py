"""The token prior in exact integer arithmetic: the same probabilities, to the bit, on every CPU.

Entropy coding fails if the decoder's probabilities differ from the encoder's by one quantization step, and
float32 networks do differ between CPUs (vector widths change the order of the sums). Here every weight is
rounded once to a fixed-point integer (``round(w * 2**W_BITS)``: a product by a power of two and a rounding,
exact in IEEE arithmetic everywhere), activations are integers in units of ``2**-A_BITS``, products are summed
in int64 (exact: the widest sum here stays below 2**50) and brought back to activation units by an arithmetic
right shift (a floor). The non-linearities are ReLU, the final exponential and, in a recurrent (GRU) context,
sigmoid and tanh: tables of integers computed once with Python's ``decimal`` module (correctly rounded, so the
same tables everywhere); sigmoid and tanh are read between their entries by integer linear interpolation.

The integer products run as float64 matrix products (BLAS, 17 times faster than numpy's integer ones): every
product and partial sum is an integer below 2**53, which float64 holds exactly, so the result is exact in any
summation order and with or without fused multiply-adds. :class:`ExactMatrix` checks that bound on every call
and falls back to int64 arithmetic if an input ever exceeded it.

The engine runs one frame at a time with a state per layer (the conv stack's past inputs, or the GRU's hidden
vectors), as decoding must; encoding runs the same integer steps, all frames' input products at once, so the
two cannot disagree. ``frame_probs`` gives each codebook's integer frequencies, which
:mod:`vqaudio.compress` hands to the range coder and :mod:`vqaudio.prior.sample` samples from.
"""

from __future__ import annotations

import decimal
import functools

import numpy as np
import torch

from vqaudio.prior.model import TokenPrior

A_BITS = 12  # activations: integers in units of 2**-12
W_BITS = 14  # weights: integers in units of 2**-14
LOGIT_STEP_BITS = 6  # the exponential's table is indexed by logit differences in units of 2**-6 nats
LOGIT_RANGE = 24  # logits more than 24 nats below the largest get the smallest frequency
FREQ_BITS = 24  # frequencies of exp(0) = 2**24; every symbol gets at least 1
CURVE_STEP_BITS = 6  # sigmoid and tanh tabulated every 2**-6, interpolated between (error below 2**-A_BITS)
CURVE_RANGE = 16  # and constant beyond +-16, where both are within 2**-20 of their limits


@functools.lru_cache(maxsize=1)
def exp_table() -> np.ndarray:
    """``round(2**FREQ_BITS * exp(-i / 2**LOGIT_STEP_BITS))`` for ``i`` in ``0 .. LOGIT_RANGE * 2**LOGIT_STEP_BITS``,
    at least 1, as int64; from ``decimal`` (correctly rounded), not the platform's ``exp``."""
    ctx = decimal.Context(prec=40)
    n = LOGIT_RANGE << LOGIT_STEP_BITS
    step = ctx.divide(decimal.Decimal(-1), decimal.Decimal(1 << LOGIT_STEP_BITS))
    scale = decimal.Decimal(1 << FREQ_BITS)
    values = [
        int(ctx.multiply(scale, ctx.exp(ctx.multiply(step, decimal.Decimal(i)))).to_integral_value())
        for i in range(n + 1)
    ]
    return np.maximum(np.array(values, dtype=np.int64), 1)


@functools.lru_cache(maxsize=2)
def curve_table(name: str) -> np.ndarray:
    """``round(2**A_BITS * f(-CURVE_RANGE + i / 2**CURVE_STEP_BITS))`` for ``f`` sigmoid or tanh, as int64, from
    ``decimal`` (the same integers on every machine)."""
    ctx = decimal.Context(prec=40)
    one, scale = decimal.Decimal(1), decimal.Decimal(1 << A_BITS)
    values = []
    for i in range(2 * CURVE_RANGE * (1 << CURVE_STEP_BITS) + 1):
        v = ctx.divide(decimal.Decimal(i - CURVE_RANGE * (1 << CURVE_STEP_BITS)), decimal.Decimal(1 << CURVE_STEP_BITS))
        if name == "sigmoid":
            y = ctx.divide(one, ctx.add(one, ctx.exp(-v)))
        else:
            e = ctx.exp(ctx.multiply(decimal.Decimal(2), v))
            y = ctx.divide(ctx.subtract(e, one), ctx.add(e, one))
        values.append(int(ctx.multiply(scale, y).to_integral_value()))
    return np.array(values, dtype=np.int64)


def curve(name: str, x: np.ndarray) -> np.ndarray:
    """Sigmoid or tanh of integers ``x`` in units of ``2**-A_BITS``, in the same units, by integer interpolation
    between the entries of :func:`curve_table` (exact integer steps: the same result everywhere)."""
    table = curve_table(name)
    shift = A_BITS - CURVE_STEP_BITS
    u = np.clip(x + (CURVE_RANGE << A_BITS), 0, (2 * CURVE_RANGE << A_BITS) - 1)
    i, frac = u >> shift, u & ((1 << shift) - 1)
    return table[i] + (((table[i + 1] - table[i]) * frac) >> shift)


def _fixed(t: torch.Tensor, bits: int) -> np.ndarray:
    """A float tensor in fixed point: ``round(t * 2**bits)`` as int64 (exact for float32 inputs)."""
    return np.round(t.detach().to(torch.float64).numpy() * float(1 << bits)).astype(np.int64)


class ExactMatrix:
    """An integer matrix ``[N, M]``, multiplied exactly by integer rows (see the module docstring)."""

    def __init__(self, w: np.ndarray) -> None:
        self.w = w
        self.w_float = w.astype(np.float64)
        # The largest |sum| a row of |x| <= 1 can produce: a column's absolute sum.
        self.gain = int(np.abs(w).sum(axis=0).max()) if w.size else 0

    def times(self, x: np.ndarray) -> np.ndarray:
        """``x @ w`` for an integer row or rows ``x``, exactly."""
        if int(np.abs(x).max(initial=0)) * self.gain < 1 << 53:
            return (x.astype(np.float64) @ self.w_float).astype(np.int64)
        return x @ self.w  # beyond float64's exact integers: exact, slower


def frequencies(logits: np.ndarray) -> np.ndarray:
    """Integer logits ``[..., V]`` in units of ``2**-A_BITS`` -> integer frequencies ``[..., V]`` (all >= 1)."""
    table = exp_table()
    gap = (logits.max(axis=-1, keepdims=True) - logits) >> (A_BITS - LOGIT_STEP_BITS)
    return table[np.minimum(gap, table.shape[0] - 1)]


class ConvContext:
    """The dilated conv stack of a conv-context prior, in fixed point. Its memory is each layer's past
    (ReLU'd) inputs, as many as that layer's taps reach back."""

    def __init__(self, model: TokenPrior) -> None:
        c = model.config
        self.dim = c.dim
        # Conv weights [out, in, k] -> [k * in, out]: the taps' inputs side by side make one product.
        self.w = [
            ExactMatrix(_fixed(conv.weight.permute(2, 1, 0).reshape(-1, conv.out_channels), W_BITS))
            for conv in model.convs
        ]
        self.b = [_fixed(conv.bias, A_BITS + W_BITS) for conv in model.convs]  # type: ignore[arg-type]
        self.taps = [[(c.kernel_size - 1 - j) * d for j in range(c.kernel_size)] for d in c.dilations]

    def start(self) -> list[np.ndarray]:
        return [np.zeros((1 + max(taps), self.dim), dtype=np.int64) for taps in self.taps]

    def step(self, memory: list[np.ndarray], x: np.ndarray) -> np.ndarray:
        """One frame's input ``[D]`` -> its context ``[D]``, moving ``memory`` on by that frame."""
        h = x
        for layer, hist in enumerate(memory):
            hist[:-1] = hist[1:]
            hist[-1] = np.maximum(h, 0)
            taps = np.concatenate([hist[-1 - back] for back in self.taps[layer]])
            h = h + ((self.w[layer].times(taps) + self.b[layer]) >> W_BITS)
        return h

    def run(self, x: np.ndarray) -> np.ndarray:
        """Inputs ``[F, D]`` from a fresh start -> contexts ``[F, D]``, equal to :meth:`step` frame by frame."""
        f = x.shape[0]
        h = x
        for layer, taps in enumerate(self.taps):
            pad = np.concatenate([np.zeros((max(taps), self.dim), dtype=np.int64), np.maximum(h, 0)])
            stacked = np.concatenate([pad[max(taps) - back : max(taps) - back + f] for back in taps], axis=1)
            h = h + ((self.w[layer].times(stacked) + self.b[layer]) >> W_BITS)
        return h


class GruContext:
    """The GRU of a gru-context prior, in fixed point (PyTorch's gate order r, z, n). Its memory is each
    layer's hidden vector, which stays within (-1, 1): a blend of tanh outputs."""

    def __init__(self, model: TokenPrior) -> None:
        gru = model.gru
        assert gru is not None
        self.dim = model.config.dim
        self.layers = [
            (
                ExactMatrix(_fixed(getattr(gru, f"weight_ih_l{i}").T, W_BITS)),
                _fixed(getattr(gru, f"bias_ih_l{i}"), A_BITS + W_BITS),
                ExactMatrix(_fixed(getattr(gru, f"weight_hh_l{i}").T, W_BITS)),
                _fixed(getattr(gru, f"bias_hh_l{i}"), A_BITS + W_BITS),
            )
            for i in range(gru.num_layers)
        ]

    def start(self) -> list[np.ndarray]:
        return [np.zeros(self.dim, dtype=np.int64) for _ in self.layers]

    def _cell(self, layer: int, gi: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Input projection ``gi`` ``[3D]`` (already in activation units) and hidden ``h`` ``[D]`` -> next hidden."""
        _, _, w_hh, b_hh = self.layers[layer]
        gh = (w_hh.times(h) + b_hh) >> W_BITS
        d = self.dim
        r = curve("sigmoid", gi[:d] + gh[:d])
        z = curve("sigmoid", gi[d : 2 * d] + gh[d : 2 * d])
        n = curve("tanh", gi[2 * d :] + ((r * gh[2 * d :]) >> A_BITS))
        return n + ((z * (h - n)) >> A_BITS)

    def _project(self, layer: int, x: np.ndarray) -> np.ndarray:
        w_ih, b_ih, _, _ = self.layers[layer]
        return (w_ih.times(x) + b_ih) >> W_BITS

    def step(self, memory: list[np.ndarray], x: np.ndarray) -> np.ndarray:
        h = x
        for layer in range(len(self.layers)):
            memory[layer] = h = self._cell(layer, self._project(layer, h), memory[layer])
        return h

    def run(self, x: np.ndarray) -> np.ndarray:
        h = x
        for layer in range(len(self.layers)):
            gi = self._project(layer, h)  # every frame's input product at once: exact, so the same as one by one
            state = np.zeros(self.dim, dtype=np.int64)
            out = np.empty((x.shape[0], self.dim), dtype=np.int64)
            for t in range(x.shape[0]):
                out[t] = state = self._cell(layer, gi[t], state)
            h = out
        return h


class IntegerPrior:
    """A :class:`TokenPrior`'s weights in fixed point, evaluated frame by frame.

    Use :meth:`start` for a fresh state, then for each frame :meth:`frame_freqs` (codebook by codebook,
    each needing the frame's earlier codes) and :meth:`push` with the frame's codes.
    """

    def __init__(self, model: TokenPrior) -> None:
        c = model.config
        self.config = c
        self.context_engine: ConvContext | GruContext = ConvContext(model) if c.context == "conv" else GruContext(model)
        self.frame_embed = [_fixed(t.weight, A_BITS) for t in model.frame_embed]
        self.within_embed = [_fixed(t.weight, A_BITS) for t in model.within_embed]
        self.hidden_w = [ExactMatrix(_fixed(lin.weight.T, W_BITS)) for lin in model.hidden]
        self.hidden_b = [_fixed(lin.bias, A_BITS + W_BITS) for lin in model.hidden]
        self.out_w = [ExactMatrix(_fixed(lin.weight.T, W_BITS)) for lin in model.out]
        self.out_b = [_fixed(lin.bias, A_BITS + W_BITS) for lin in model.out]

    def start(self) -> PriorState:
        """The state before the first frame: the context's memory empty, the first frame's input zero."""
        return PriorState(
            memory=self.context_engine.start(), next_input=np.zeros(self.config.dim, dtype=np.int64), context=None
        )

    def _context(self, state: PriorState) -> np.ndarray:
        """The context vector of the coming frame (computed once per frame)."""
        if state.context is None:
            state.context = self.context_engine.step(state.memory, state.next_input)
        return state.context

    def logits(self, state: PriorState, k: int, frame_codes: np.ndarray) -> np.ndarray:
        """Integer logits ``[V]`` of codebook ``k`` of the coming frame, given its codes ``frame_codes[:k]``."""
        return self._head(self._context(state), k, frame_codes)

    def _head(self, context: np.ndarray, k: int, codes: np.ndarray) -> np.ndarray:
        """Logits ``[..., V]`` of codebook ``k`` from contexts ``[..., D]`` and those frames' codes ``[>=k, ...]``."""
        z = context.copy()
        for j in range(k):
            z += self.within_embed[j][codes[j]]
        a = ((self.hidden_w[k].times(np.maximum(z, 0)) + self.hidden_b[k]) >> W_BITS).clip(min=0)
        return (self.out_w[k].times(a) + self.out_b[k]) >> W_BITS

    def all_logits(self, codes: np.ndarray) -> np.ndarray:
        """Integer logits ``[K, F, V]`` of every code of ``codes`` ``[K, F]`` given what precedes it, the context's
        products for all frames at once. Equal, integer for integer, to running :meth:`logits` and :meth:`push`
        frame by frame: each sum is exact, so the order the frames are taken in cannot change it (a test checks
        it too)."""
        c = self.config
        x = np.zeros((codes.shape[1], c.dim), dtype=np.int64)
        for k in range(c.num_codebooks):
            x += self.frame_embed[k][codes[k]]
        shifted = np.concatenate([np.zeros((1, c.dim), dtype=np.int64), x[:-1]])  # frame t sees frames < t
        h = self.context_engine.run(shifted)
        return np.stack([self._head(h, k, codes) for k in range(c.num_codebooks)])

    def frame_freqs(self, state: PriorState, k: int, frame_codes: np.ndarray) -> np.ndarray:
        """Integer frequencies ``[V]`` (all >= 1) of codebook ``k`` of the coming frame."""
        return frequencies(self.logits(state, k, frame_codes))

    def push(self, state: PriorState, frame_codes: np.ndarray) -> None:
        """Move ``state`` past a frame whose codes ``[K]`` are now known (a prompt's frames need no logits first)."""
        self._context(state)  # the frame's own input enters the context's memory before the next one replaces it
        total = np.zeros(self.config.dim, dtype=np.int64)
        for k in range(self.config.num_codebooks):
            total += self.frame_embed[k][int(frame_codes[k])]
        state.next_input = total
        state.context = None


class PriorState:
    """The context's memory, the coming frame's input, and its context once computed."""

    def __init__(self, memory: list[np.ndarray], next_input: np.ndarray, context: np.ndarray | None) -> None:
        self.memory = memory
        self.next_input = next_input
        self.context = context
