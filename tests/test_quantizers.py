"""Tests of the quantizers: straight-through gradients, code <-> latent round trips, codebook learning,
residual VQ and quantizer dropout, masking, and float32 math for low-precision inputs."""

from __future__ import annotations

import copy

import pytest
import torch

from vqaudio.errors import ConfigError
from vqaudio.quantizers import (
    BaseQuantizer,
    IdentityQuantizer,
    ResidualVectorQuantizer,
    RVQConfig,
    VectorQuantizer,
    VQConfig,
    kmeans,
)
from vqaudio.quantizers.vq import smallest

DIM = 8


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _vq(**kwargs: object) -> VectorQuantizer:
    settings: dict[str, object] = {"dim": DIM, "codebook_size": 16, "kmeans_init": False, **kwargs}
    return VectorQuantizer(VQConfig(**settings))  # type: ignore[arg-type]


def _rvq(
    num_codebooks: int = 4, dropout: float = 0.0, dropout_weights: tuple[float, ...] = (), **kwargs: object
) -> ResidualVectorQuantizer:
    settings: dict[str, object] = {"dim": DIM, "codebook_size": 16, "kmeans_init": False, **kwargs}
    vq = VQConfig(**settings)  # type: ignore[arg-type]
    config = RVQConfig(vq=vq, num_codebooks=num_codebooks, dropout=dropout, dropout_weights=dropout_weights)
    return ResidualVectorQuantizer(config)


def _trained(q: BaseQuantizer, steps: int = 3) -> BaseQuantizer:
    """A few training forwards on unit-Gaussian latents ``[4, DIM, 64]`` so codebooks fit the data."""
    torch.manual_seed(0)
    q.train()
    for step in range(steps):
        q(_randn(4, DIM, 64, seed=100 + step))
    return q.eval()


def _blobs(n_per_blob: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Four tight, well separated clusters: centres ``[4, DIM]`` and latents ``[1, DIM, 4 * n_per_blob]``."""
    centres = 10.0 * torch.eye(DIM)[:4]
    points = centres[:, None, :] + 0.1 * _randn(4, n_per_blob, DIM, seed=1)  # [4, N, DIM]
    return centres, points.reshape(-1, DIM).T[None].contiguous()


# --- straight-through gradients ----------------------------------------------------------------------------


@pytest.mark.parametrize("ema", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_vq_straight_through_gradient_is_identity(ema: bool, training: bool) -> None:
    vq = _vq(ema=ema).train(training)
    x = _randn(2, DIM, 10).requires_grad_()
    vq(x).quantized.sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, torch.ones_like(x))


@pytest.mark.parametrize("training", [True, False])
def test_rvq_straight_through_gradient_is_identity(training: bool) -> None:
    rvq = _rvq(num_codebooks=4).train(training)
    x = _randn(2, DIM, 10).requires_grad_()
    rvq(x).quantized.sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad, torch.ones_like(x))


def test_rvq_gradient_reaches_the_input() -> None:
    """Whatever the scale, the straight-through path must carry a non-zero, uniform gradient."""
    rvq = _rvq(num_codebooks=3).train()
    x = _randn(2, DIM, 10).requires_grad_()
    rvq(x).quantized.sum().backward()
    assert x.grad is not None
    assert (x.grad > 0).all()
    assert torch.equal(x.grad, torch.full_like(x, float(x.grad.flatten()[0])))


# --- code <-> latent round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("ema", [True, False])
def test_vq_decode_of_encode_equals_forward(ema: bool) -> None:
    vq = _trained(_vq(ema=ema, kmeans_init=True))
    x = _randn(3, DIM, 50, seed=5)
    with torch.no_grad():
        out = vq(x)
        codes = vq.encode(x)
    assert codes.shape == (3, 1, 50) and codes.dtype == torch.int64
    assert torch.equal(codes, out.codes)
    assert torch.allclose(vq.decode(codes), out.quantized, atol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_rvq_decode_of_encode_equals_forward_for_every_prefix(n: int) -> None:
    rvq = _trained(_rvq(num_codebooks=4, kmeans_init=True))
    x = _randn(3, DIM, 50, seed=5)
    with torch.no_grad():
        out = rvq(x, n_codebooks=n)
        codes = rvq.encode(x, n_codebooks=n)
        assert codes.shape == (3, n, 50)
        assert torch.equal(codes, out.codes)
        assert torch.allclose(rvq.decode(codes), out.quantized, atol=1e-5)
        # A prefix of the full codes decodes to the same latents as encoding with fewer codebooks.
        assert torch.equal(rvq.encode(x)[:, :n], codes)


def test_rvq_rejects_bad_number_of_codebooks() -> None:
    rvq = _rvq(num_codebooks=3)
    x = _randn(1, DIM, 4)
    for n in (0, 4):
        with pytest.raises(ValueError, match="n_codebooks"):
            rvq.encode(x, n_codebooks=n)
    with pytest.raises(ValueError):
        rvq.decode(torch.zeros(1, 4, 4, dtype=torch.long))


# --- codebook learning ---------------------------------------------------------------------------------------


def test_ema_moves_codewords_toward_their_assigned_vectors() -> None:
    vq = _vq(ema=True, decay=0.9, dead_threshold=0.0).train()
    vq.codebook.copy_(_randn(16, DIM, seed=3))
    vq.embed_sum.copy_(vq.codebook)
    before = vq.codebook.clone()
    x = _randn(4, DIM, 64, seed=4)
    codes = vq(x).codes.flatten()
    flat = x.transpose(1, 2).reshape(-1, DIM)
    used = codes.unique()
    assert len(used) > 4
    for c in used.tolist():
        mean = flat[codes == c].mean(dim=0)
        assert torch.linalg.norm(vq.codebook[c] - mean) < torch.linalg.norm(before[c] - mean)


def test_ema_vq_has_no_codebook_loss() -> None:
    out = _vq(ema=True).train()(_randn(2, DIM, 10))
    assert float(out.codebook_loss) == 0.0
    assert float(out.commitment_loss) > 0.0


def test_gradient_vq_codebook_loss_trains_the_embedding() -> None:
    vq = _vq(ema=False).train()
    x = _randn(2, DIM, 10).requires_grad_()
    out = vq(x)
    assert float(out.codebook_loss.detach()) > 0.0
    out.codebook_loss.backward()
    assert vq.embedding.grad is not None and vq.embedding.grad.abs().sum() > 0
    # The codebook loss holds the encoder output fixed (stop-gradient on z_e).
    assert x.grad is None or float(x.grad.abs().sum()) == 0.0


def test_gradient_vq_commitment_loss_trains_only_the_encoder() -> None:
    vq = _vq(ema=False, beta=0.25).train()
    x = _randn(2, DIM, 10).requires_grad_()
    vq(x).commitment_loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert vq.embedding.grad is None or float(vq.embedding.grad.abs().sum()) == 0.0


def test_kmeans_init_places_codewords_on_clusters() -> None:
    centres, x = _blobs()
    vq = _vq(codebook_size=4, kmeans_init=True, dead_threshold=0.0)
    assert not bool(vq.initialized)
    torch.manual_seed(0)  # k-means draws its seeds from the global generator
    vq.train()(x)
    assert bool(vq.initialized)
    distance = torch.cdist(centres, vq.codebook).min(dim=1).values  # nearest codeword to each blob
    assert (distance < 0.5).all(), distance


def test_kmeans_init_finds_every_cluster_for_any_seed() -> None:
    centres, x = _blobs()
    failures = []
    for seed in range(10):
        vq = _vq(codebook_size=4, kmeans_init=True, dead_threshold=0.0)
        torch.manual_seed(seed)
        vq.train()(x)
        if (torch.cdist(centres, vq.codebook).min(dim=1).values > 0.5).any():
            failures.append(seed)
    assert failures == []


def test_kmeans_iterations_reduce_distortion() -> None:
    _, x = _blobs()
    samples = x[0].T

    def distortion(centroids: torch.Tensor) -> float:
        return float(torch.cdist(samples, centroids).min(dim=1).values.pow(2).mean())

    seeds_only = kmeans(samples, 8, 0, generator=torch.Generator().manual_seed(0))
    refined = kmeans(samples, 8, 10, generator=torch.Generator().manual_seed(0))
    assert refined.shape == (8, DIM)
    assert distortion(refined) < distortion(seeds_only)
    assert torch.allclose(kmeans(samples, 1, 3), samples.mean(dim=0, keepdim=True), atol=1e-5)


@pytest.mark.parametrize("ema", [True, False])
def test_dead_codes_are_restarted_on_data(ema: bool) -> None:
    vq = _vq(ema=ema, codebook_size=32, dead_threshold=0.5).train()
    dead = torch.arange(8)
    with torch.no_grad():
        far = torch.full((8, DIM), 1000.0)
        vq.codebook[dead] = far
        vq.embed_sum[dead] = far
        vq.cluster_size[dead] = 0.0
        if not ema:
            vq.embedding[dead] = far
    x = _randn(4, DIM, 64, seed=2)
    vq(x)
    flat = x.transpose(1, 2).reshape(-1, DIM)
    # Each revived codeword is one of the batch's vectors (a random recent encoder output).
    revived = vq._weights()[dead].detach()
    assert (revived[:, None, :] == flat[None, :, :]).all(dim=2).any(dim=1).all()
    assert (vq.cluster_size[dead] >= 0.5).all()
    # Live codes are left where the update put them, not restarted.
    assert (vq._weights()[8:].abs() < 100).all()


def test_rvq_residual_error_falls_with_each_codebook() -> None:
    rvq = _trained(_rvq(num_codebooks=6, kmeans_init=True), steps=5)
    x = _randn(4, DIM, 128, seed=9)
    with torch.no_grad():
        errors = [float((rvq.decode(rvq.encode(x, n)) - x).pow(2).mean()) for n in range(1, 7)]
    assert all(later <= earlier for earlier, later in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 0.5 * errors[0], errors


# --- beam search ---------------------------------------------------------------------------------------


def _residual_energy(rvq: ResidualVectorQuantizer, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``[B, F]`` squared distance between each latent frame and the sum of its codewords."""
    return (rvq.decode(codes) - x).pow(2).sum(1)


def test_rvq_beam_one_is_greedy() -> None:
    rvq = _trained(_rvq(num_codebooks=4, kmeans_init=True))
    x = _randn(3, DIM, 50, seed=11)
    assert torch.equal(rvq.encode(x, 3, beam=1), rvq.encode(x, 3))


@pytest.mark.parametrize("n", [2, 3])
def test_rvq_full_beam_finds_the_exhaustive_optimum(n: int) -> None:
    """A beam as wide as every partial sequence is an exhaustive search: compare with all K**n sequences."""
    rvq = _trained(_rvq(num_codebooks=3, codebook_size=4, kmeans_init=True))
    x = _randn(2, DIM, 40, seed=12)
    with torch.no_grad():
        found = rvq.encode(x, n, beam=4 ** (n - 1))
        grid = torch.cartesian_prod(*[torch.arange(4)] * n).reshape(-1, n)  # [4**n, n]
        sums = sum(rvq.layers[k].codewords()[grid[:, k]] for k in range(n))  # [4**n, DIM]
        flat = x.transpose(1, 2).reshape(-1, DIM)
        best = torch.cdist(flat, sums).pow(2).min(1).values.reshape(2, 40)
        greedy = _residual_energy(rvq, x, rvq.encode(x, n))
    assert torch.allclose(_residual_energy(rvq, x, found), best, rtol=1e-4, atol=1e-5)
    # The test means something only if greedy misses the optimum on some frames.
    assert (greedy > best + 1e-4).any()


@pytest.mark.parametrize(("rows", "cols"), [(6, 1024), (3, 8192), (4, 100), (5, 512), (2, 65)])
@pytest.mark.parametrize("k", [1, 2, 8])
def test_smallest_is_topk(rows: int, cols: int, k: int) -> None:
    """The block search returns what ``topk`` returns, in the same order, whether it runs (whole blocks, more
    blocks than ``k``) or falls back."""
    dist = _randn(rows, cols, seed=cols + k)
    assert torch.equal(smallest(dist, k), dist.topk(k, dim=1, largest=False).indices)


def test_smallest_breaks_ties_like_argmin() -> None:
    """For one entry, ties go to the first column, as ``argmin``'s do: across blocks and inside one."""
    dist = _randn(3, 1024, seed=3).abs() + 1
    dist[0, [700, 900, 200]] = 0.0  # three blocks hold the minimum
    dist[1, [131, 129, 130]] = -1.0  # one block holds it three times
    dist[2] = 5.0  # every entry ties
    assert smallest(dist, 1)[:, 0].tolist() == [200, 129, 0] == dist.argmin(1).tolist()


def _reference_beam(books: list[torch.Tensor], frames: torch.Tensor, beam: int) -> torch.Tensor:
    """The residual energy a textbook beam search reaches on each frame, in float64: ``[F, D]`` -> ``[F]``.
    After each codebook, list every extension of every kept sequence, rank them by exact distance, keep the
    best ``beam``."""
    out = []
    for frame in frames.double():
        kept = frame[None]  # [b, D] residuals
        for book in books:
            grown = (kept[:, None, :] - book.double()[None]).reshape(-1, frame.shape[0])
            kept = grown[grown.pow(2).sum(1).argsort()[:beam]]
        out.append(kept[0].pow(2).sum())
    return torch.stack(out)


# 16 entries: fewer columns than one block of the ranking's search, so it ranks with topk; 256: by blocks.
@pytest.mark.parametrize(("books", "size", "seed"), [(4, 16, 16), (3, 256, 17)])
def test_rvq_narrow_beam_matches_a_reference_search(books: int, size: int, seed: int) -> None:
    """Where the beam is narrower than a codebook (which sequences are dropped matters), the search reaches
    what a plain float64 beam search reaches, frame by frame."""
    rvq = _trained(_rvq(num_codebooks=books, codebook_size=size, kmeans_init=True))
    x = _randn(1, DIM, 40, seed=seed)
    with torch.no_grad():
        found = _residual_energy(rvq, x, rvq.encode(x, books, beam=3))[0]
        greedy = _residual_energy(rvq, x, rvq.encode(x, books))[0]
    reference = _reference_beam([layer.codewords() for layer in rvq.layers], x[0].T, 3)
    assert torch.allclose(found.double(), reference, rtol=1e-5, atol=1e-6)
    assert (greedy.double() > reference + 1e-4).any()  # the beam changes the outcome on these frames


def test_rvq_wider_beam_comes_closer_to_the_latent() -> None:
    rvq = _trained(_rvq(num_codebooks=4, kmeans_init=True), steps=5)
    x = _randn(4, DIM, 128, seed=13)
    with torch.no_grad():
        errors = [float(_residual_energy(rvq, x, rvq.encode(x, 4, beam=b)).mean()) for b in (1, 2, 8, 32)]
    assert all(later <= earlier for earlier, later in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 0.95 * errors[0], errors


def test_rvq_beam_search_treats_frames_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunking the frames inside the search, batching and splitting the input give the same codes."""
    rvq = _trained(_rvq(num_codebooks=4, kmeans_init=True))
    x = _randn(2, DIM, 300, seed=14)
    whole = rvq.encode(x, 4, beam=8)
    parts = torch.cat([rvq.encode(x[i : i + 1, :, a : a + 100], 4, beam=8) for i in range(2) for a in (0, 100, 200)])
    assert torch.equal(whole, parts.reshape(2, 3, 4, 100).permute(0, 2, 1, 3).reshape(2, 4, 300))
    # The search's own chunking: tables of 7 frames (7 x 8 x 16 entries) at a time.
    import vqaudio.quantizers.rvq as rvq_module

    monkeypatch.setattr(rvq_module, "BEAM_TABLE_ENTRIES", 7 * 8 * 16)
    chunked = rvq.encode(x, 4, beam=8)
    assert chunked.is_contiguous() and torch.equal(chunked, whole)


def test_rvq_beam_search_is_float32_for_bfloat16_input_and_rejects_zero() -> None:
    rvq = _trained(_rvq(num_codebooks=4, kmeans_init=True))
    x16 = _randn(2, DIM, 60, seed=15).bfloat16()
    assert torch.equal(rvq.encode(x16, 3, beam=4), rvq.encode(x16.float(), 3, beam=4))
    with pytest.raises(ValueError, match="beam"):
        rvq.encode(x16, 3, beam=0)


def test_beam_changes_nothing_for_one_codebook() -> None:
    vq = _trained(_vq(kmeans_init=True))
    rvq = _trained(_rvq(num_codebooks=4, kmeans_init=True))
    x = _randn(2, DIM, 60, seed=16)
    assert torch.equal(vq.encode(x, beam=8), vq.encode(x))
    assert torch.equal(rvq.encode(x, 1, beam=8), rvq.encode(x, 1))


# --- quantizer dropout -----------------------------------------------------------------------------------


def test_quantizer_dropout_draws_different_numbers_of_codebooks_in_training() -> None:
    rvq = _rvq(num_codebooks=4, dropout=1.0).train()
    x = _randn(2, DIM, 8)
    used = {rvq(x).codes.shape[1] for _ in range(30)}
    assert len(used) >= 3 and used <= {1, 2, 3, 4}


def test_no_quantizer_dropout_in_eval_or_when_n_is_given() -> None:
    rvq = _rvq(num_codebooks=4, dropout=1.0)
    x = _randn(2, DIM, 8)
    rvq.eval()
    assert {rvq(x).codes.shape[1] for _ in range(20)} == {4}
    rvq.train()
    assert {rvq(x, n_codebooks=2).codes.shape[1] for _ in range(20)} == {2}
    assert {_rvq(num_codebooks=4, dropout=0.0).train()(x).codes.shape[1] for _ in range(5)} == {4}


def test_dropout_weights_set_the_odds_of_each_codebook_count() -> None:
    x = _randn(2, DIM, 8)
    only_three = _rvq(num_codebooks=4, dropout=1.0, dropout_weights=(0, 0, 1, 0)).train()
    assert {only_three(x).codes.shape[1] for _ in range(20)} == {3}
    skewed = _rvq(num_codebooks=4, dropout=1.0, dropout_weights=(1, 0, 8, 1)).train()
    counts = [skewed(x).codes.shape[1] for _ in range(200)]
    assert 2 not in counts and counts.count(3) > 120 and {1, 4} <= set(counts)
    # Without weights the draws are the uniform ones of the generator, as before the option existed.
    uniform = _rvq(num_codebooks=4, dropout=1.0).train()
    replay = torch.Generator().manual_seed(0)
    for _ in range(10):
        torch.rand((), generator=replay)
        want = int(torch.randint(1, 5, (), generator=replay))
        assert uniform(x).codes.shape[1] == want


@pytest.mark.parametrize(
    "weights", [(1.0, 1.0), (0.0, 0.0, 0.0, 0.0), (1.0, -1.0, 1.0, 1.0), (1.0, float("nan"), 1, 1), (1, True, 1, 1), 5]
)
def test_bad_dropout_weights_are_refused(weights: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError, match="dropout_weights"):
        RVQConfig(num_codebooks=4, dropout_weights=weights)


# --- masking ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [_vq, _rvq], ids=["vq", "rvq"])
def test_masked_frames_do_not_change_eval_codes(make: object) -> None:
    q = _trained(make(kmeans_init=True))  # type: ignore[operator]
    x = _randn(2, DIM, 20, seed=3)
    padded = torch.cat([x, 100 * _randn(2, DIM, 7, seed=4)], dim=2)
    mask = torch.cat([torch.ones(2, 1, 20), torch.zeros(2, 1, 7)], dim=2)
    with torch.no_grad():
        assert torch.equal(q(padded, mask).codes[..., :20], q(x).codes)


@pytest.mark.parametrize("ema", [True, False])
def test_masked_frames_are_ignored_by_training_updates(ema: bool) -> None:
    """Garbage in padded frames must not reach k-means init, EMA statistics, restarts or the losses."""
    torch.manual_seed(0)
    alone = _vq(ema=ema, kmeans_init=True, dead_threshold=0.5).train()
    padded_vq = copy.deepcopy(alone)
    for step in range(3):
        x = _randn(2, DIM, 40, seed=step)
        padded = torch.cat([x, 100 * _randn(2, DIM, 9, seed=50 + step)], dim=2)
        mask = torch.cat([torch.ones(2, 1, 40), torch.zeros(2, 1, 9)], dim=2)
        torch.manual_seed(step)
        a = alone(x)
        torch.manual_seed(step)
        b = padded_vq(padded, mask)
        assert torch.equal(b.codes[..., :40], a.codes)
        assert torch.allclose(b.commitment_loss, a.commitment_loss)
        assert torch.allclose(b.codebook_loss, a.codebook_loss)
        assert torch.allclose(b.perplexity, a.perplexity)
        assert torch.allclose(b.quantized[..., :40], a.quantized)
    assert torch.allclose(padded_vq.codebook, alone.codebook, atol=1e-6)
    assert torch.allclose(padded_vq.cluster_size, alone.cluster_size, atol=1e-6)


# --- perplexity ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_perplexity_is_between_one_and_codebook_size(training: bool) -> None:
    rvq = _rvq(num_codebooks=3, kmeans_init=True).train(training)
    out = rvq(_randn(4, DIM, 64))
    assert out.perplexity.shape == (3,)
    assert ((out.perplexity >= 1.0 - 1e-5) & (out.perplexity <= 16 + 1e-4)).all()


def test_perplexity_extremes() -> None:
    vq = _vq().eval()
    one_code = vq.codebook[3][None, :, None].expand(2, DIM, 10)
    assert float(vq(one_code).perplexity) == pytest.approx(1.0)
    every_code = vq.codebook.T[None]  # each codeword exactly once
    assert float(vq(every_code).perplexity) == pytest.approx(16.0, rel=1e-4)


# --- identity quantizer --------------------------------------------------------------------------------


def test_identity_quantizer_passes_latents_through() -> None:
    q = IdentityQuantizer(DIM)
    assert q.dim == DIM and q.num_codebooks == 1
    x = _randn(2, DIM, 5).requires_grad_()
    out = q(x)
    assert torch.equal(out.quantized, x)
    assert float(out.loss) == 0.0
    out.quantized.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.ones_like(x))
    assert torch.equal(q.decode(q.encode(x)), x)


# --- precision -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ema", [True, False])
def test_vq_math_is_float32_for_bfloat16_input(ema: bool) -> None:
    vq = _trained(_vq(ema=ema, kmeans_init=True))
    x16 = _randn(8, DIM, 500, seed=6).bfloat16()
    with torch.no_grad():
        out16, out32 = vq(x16), vq(x16.float())
    assert out16.quantized.dtype == torch.bfloat16
    assert torch.equal(out16.codes, out32.codes)
    assert torch.equal(vq.encode(x16), vq.encode(x16.float()))


def test_rvq_encode_is_float32_for_bfloat16_input() -> None:
    rvq = _trained(_rvq(num_codebooks=4, kmeans_init=True))
    x16 = _randn(8, DIM, 500, seed=6).bfloat16()
    assert torch.equal(rvq.encode(x16), rvq.encode(x16.float()))
    with torch.no_grad():
        assert rvq(x16).quantized.dtype == torch.bfloat16


def test_rvq_forward_codes_are_float32_for_bfloat16_input() -> None:
    rvq = _trained(_rvq(num_codebooks=4, kmeans_init=True))
    x16 = _randn(8, DIM, 500, seed=6).bfloat16()
    with torch.no_grad():
        assert torch.equal(rvq(x16).codes, rvq(x16.float()).codes)


# --- configuration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"dim": 0}, {"codebook_size": 1}, {"decay": 0.0}, {"decay": 1.0}, {"beta": -1.0}, {"dead_threshold": -1.0}],
)
def test_vq_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        VQConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"num_codebooks": 0}, {"dropout": -0.1}, {"dropout": 1.5}])
def test_rvq_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RVQConfig(**kwargs)  # type: ignore[arg-type]
