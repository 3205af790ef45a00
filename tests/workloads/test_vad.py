"""Silero VAD (:mod:`sparsesim.workloads.capture.vad`): the rewrite equals the packaged model, the
delta encoding in its forward is the replay's, and quality and replay see the same masks."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from sparsesim.core.errors import InputError
from sparsesim.workloads.capture import MODELS, capture_zoo

torch = pytest.importorskip("torch", reason="the VAD model needs torch")
vad = pytest.importorskip("sparsesim.workloads.capture.vad")
from sparsesim.hardware.kernels import delta_step_ref  # noqa: E402

try:
    vad.weights_path()
    HAVE_WEIGHTS = True
except InputError:
    HAVE_WEIGHTS = False
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason=f"silero-vad is not installed ({vad.PACKAGE_HINT})")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install -y espeak-ng)")


def test_resample_keeps_a_tone():
    # a 1 kHz tone is far below both Nyquist rates (8 kHz, 11.025 kHz): band-limited resampling
    # from 22,050 to 16,000 Hz must give the same tone sampled at 16 kHz; the Kaiser window
    # (beta 8.6, 64 taps) leaves errors near 1e-4, so 1e-3 away from the zero-padded ends
    t_in = np.arange(22_050) / 22_050
    out = vad.resample(np.sin(2 * np.pi * 1000 * t_in), 22_050, 16_000)
    assert out.size == 16_000  # one second in, one second out
    expected = np.sin(2 * np.pi * 1000 * np.arange(16_000) / 16_000)
    assert np.abs(out - expected)[100:-100].max() < 1e-3


def test_delta_inputs_by_hand():
    # theta 0.3 on [1, 2], [1, 2.5], [1.2, 2.5]: t0 both fire (from the zero reference),
    # t1 only the 0.5 change, t2 the 0.2 change is held back: 3 of 6 sent, reference [1, 2.5]
    enc = vad.DeltaInputs(0.3)
    seen = [enc.encode("op", torch.tensor(x)) for x in ([1.0, 2.0], [1.0, 2.5], [1.2, 2.5])]
    assert seen[2].tolist() == [1.0, 2.5]
    assert enc.fired_fraction() == {"op": 0.5}
    with pytest.raises(InputError, match="threshold"):
        vad.DeltaInputs(-1.0)


def test_delta_inputs_follow_the_replay_kernel():
    # the same sequence through the replay's reference kernel: the same fired elements, and the
    # reference the forward computes with is the kernel's running sum of sent deltas
    rng = np.random.default_rng(0)
    xs = np.cumsum(rng.standard_normal((12, 50)).astype(np.float32) * 0.1, axis=0).astype(np.float32)
    for theta in (0.0, 0.05, 0.2):
        enc, ref, acc, fired = vad.DeltaInputs(theta), np.zeros(50), np.zeros(50), 0
        for x in xs:
            used = enc.encode("op", torch.from_numpy(x)).numpy()
            d = delta_step_ref(x, ref, theta)
            acc += d
            fired += int(np.count_nonzero(d))
            assert np.array_equal(used.astype(np.float64), acc)
        assert enc.fired_fraction()["op"] == fired / xs.size
        if theta == 0.0:
            assert np.array_equal(used, xs[-1])  # theta 0 is dense


def test_zoo_entry_is_listed_and_checks_its_arguments(tmp_path):
    entry = MODELS.get("silero_vad")
    assert entry.sequence and entry.pretrained
    with pytest.raises(InputError, match="^steps: "):
        capture_zoo("silero_vad", steps=2, batch=1, out=tmp_path / "t")
    with pytest.raises(InputError, match="^nm: "):
        capture_zoo("silero_vad", batch=1, nm="2:4", out=tmp_path / "t")


@pytest.fixture(scope="module")
def audio():
    return vad.speech_audio(1)


@needs_weights
@needs_espeak
def test_rewrite_reproduces_the_packaged_jit_model(audio):
    short = audio.head(64)
    assert short.speech.any() and not short.speech.all()  # pause, then speech
    assert vad.check_against_jit(vad.load_silero_vad(), short.samples) <= 1e-5


@needs_weights
@needs_espeak
def test_speech_audio_is_deterministic(audio):
    again = vad.speech_audio(1)
    assert again.samples_sha256 == audio.samples_sha256
    assert audio.samples.dtype == np.float32 and audio.samples.size % vad.CHUNK_SAMPLES == 0


@needs_weights
@needs_espeak
def test_quality_at_theta_zero_is_the_dense_model_and_a_huge_theta_sends_nothing(audio):
    short = audio.head(160)
    q0, q_big = vad.delta_quality([0.0, 1e9], short.samples)
    assert (q0.decision_agreement, q0.prob_err_max) == (1.0, 0.0)
    assert q0.fired_fraction < 1.0  # the LSTM's first h (zeros) and unchanged pause samples do not fire
    assert q_big.fired_fraction == 0.0  # nothing ever fires: every GEMM sees a zero input


@needs_weights
@needs_espeak
@pytest.mark.parametrize("theta", [0.02])
def test_quality_and_replay_see_the_same_masks(audio, tmp_path, theta):
    from sparsesim import api

    short = audio.head(24)
    trace = vad.capture_vad(tmp_path / "vad", threshold=theta, audio=short, progress=False)
    (quality,) = vad.delta_quality([theta], short.samples)
    result = api.simulate(api.trace(trace), accel="edge32", sparsity=[f"delta:{theta}"])
    per_op: dict[str, list[float]] = {}
    for row in result.rows:
        per_op.setdefault(row["name"], []).append(row["delta_fired_fraction"])
    assert set(per_op) == set(quality.fired_per_op)
    for name, fractions in per_op.items():
        assert len(fractions) == short.chunks
        # every time step of an op has the same number of inputs: the mean is the element-weighted fraction
        assert np.mean(fractions) == pytest.approx(quality.fired_per_op[name], abs=1e-12), name


@needs_weights
@needs_espeak
def test_the_zoo_captures_the_dense_model_in_inference(audio, tmp_path, monkeypatch):
    from sparsesim.workloads.trace import load_trace

    # the zoo's default mode ("train") means inference for a pretrained entry; a short stream keeps it fast
    monkeypatch.setattr(vad, "speech_audio", lambda sentences, seed=0: audio.head(12))
    trace = load_trace(capture_zoo("silero_vad", batch=1, out=tmp_path / "vad", progress=False))
    assert trace.capture["mode"] == "infer" and trace.capture["delta_threshold"] is None
    assert trace.capture["audio"]["samples_sha256"] == audio.head(12).samples_sha256
    names = ["stft", "encoder.0", "encoder.1", "encoder.2", "encoder.3", "ih", "hh", "head"]
    assert [r.op.name for r in trace.ops] == names * 12  # one op per GEMM per chunk, in forward order
    assert [r.time_step for r in trace.ops] == [t for t in range(12) for _ in names]
