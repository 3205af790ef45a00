"""Silero VAD, a trained voice-activity detector, on synthesized English speech (torch only here).

The model: Silero VAD v6 (``pip install --no-deps silero-vad==6.2.3``; its wheel ships the
trained weights as ``silero_vad/data/silero_vad.jit``, a TorchScript model). TorchScript
modules take no Python forward hooks, so :class:`SileroVAD` writes the 16 kHz branch out as a
plain ``nn.Module`` from the scripted code (``model._model.code``) and loads the jit model's
tensors (``_model.*`` of its state dict). Per 512-sample chunk (32 ms at 16 kHz):

* the last 64 samples of the previous chunk are prepended (576 samples; zeros at the start),
  reflect-padded by 64 on the right and transformed by a fixed STFT basis (a 258 x 256
  convolution, stride 128: 4 frames, 129 magnitude bins);
* four 3-tap convolutions with ReLU (129->128 stride 1, 128->64 stride 2, 64->64 stride 2,
  64->128 stride 1) reduce it to one 128-vector;
* an LSTM cell (hidden 128) carries state from chunk to chunk; ReLU, a 128->1 projection and a
  sigmoid give the speech probability.

The 1-D convolutions are written as ``conv2d`` with a height-1 input (the same numbers), and
the LSTM cell as two ``linear`` calls, so the recorder stores every GEMM, one time step per
chunk. :func:`check_against_jit` holds the rewrite to the jit model's probabilities.

Delta encoding in the forward pass (:class:`DeltaInputs`) is the replay's
(:mod:`sparsesim.sparsity.delta`): each GEMM's input ``x_t`` is compared with its reference
``x_ref``; an element fires where ``x_t != x_ref`` and ``|x_t - x_ref| >= theta`` and only there
``x_ref`` takes ``x_t``. The layer's accumulator holds ``W . sum(sent deltas) = W . x_ref`` (the
reference starts at zero), so the delta network's GEMM computes with ``x_ref`` in place of
``x_t``. Changes are compared in float64 as :func:`~sparsesim.hardware.kernels.delta_step` does;
``x_ref`` only ever holds copies of float32 inputs, so feeding it as float32 loses nothing.

A trace captured with a threshold (:func:`capture_vad`) records the delta network's GEMM
inputs, the references: replaying it with ``delta:theta`` fires exactly the elements that fired
here (the reference sequence changes only where it fired, each time by at least ``theta``), so
the quality figures of :func:`delta_quality` and the replay's cycles come from the same masks.
A dense trace (``theta`` None, the zoo capture) replayed with ``delta:theta`` encodes the dense
model's activations instead: the first layer fires identically, deeper layers see the dense
inputs, not the ones a delta network computes.

The audio (:func:`speech_audio`): ``espeak-ng`` (Debian package ``espeak-ng``) speaks English
sentences of the built-in evaluation text (:func:`sparsesim.workloads.corpus.sentence_pairs`),
at 22,050 Hz, resampled here to 16 kHz, with a pause between sentences and a seeded noise floor
so the silence is not digital zero. Same text, espeak-ng version and seed: the same samples.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsesim.core.errors import InputError, arg_error
from sparsesim.workloads.corpus import corpus_part, sentence_pairs

SAMPLE_RATE_HZ = 16_000
CHUNK_SAMPLES = 512  # Silero VAD at 16 kHz takes 512-sample chunks (its forward refuses others)
CONTEXT_SAMPLES = 64  # `_model.context_size_samples`
SPEECH_THRESHOLD = 0.5  # silero_vad.get_speech_timestamps(threshold=0.5): its default speech decision
PACKAGE_HINT = "pip install --no-deps silero-vad==6.2.3"
ESPEAK_RATE_HZ = 22_050  # espeak-ng's output rate (its WAV header says so; checked on read)


def weights_path() -> Path:
    """The jit file in the installed ``silero-vad`` wheel; a one-line error where it is absent."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"silero_vad needs the silero-vad package: {PACKAGE_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.jit"
    if not path.is_file():
        raise InputError(f"silero_vad: {path} is missing from the installed package ({PACKAGE_HINT})")
    return path


def package_version() -> str:
    from importlib.metadata import version

    return version("silero-vad")


class SileroVAD(nn.Module):
    """Silero VAD's 16 kHz model as a plain module: ``forward(audio (B, T*512)) -> (B, T)`` probabilities.

    Each chunk is one time step; the LSTM state and the 64-sample context start at zero, as
    the jit model's do after ``reset_states()``. ``delta`` (a :class:`DeltaInputs`) makes every
    GEMM compute with its delta-encoded input.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stft = nn.Conv2d(1, 258, (1, 256), stride=(1, 128), bias=False)  # real and imaginary DFT rows
        self.stft.weight.requires_grad_(False)  # a fixed basis, not trained; a parameter so a trace stores it once
        self.encoder = nn.ModuleList(nn.Conv2d(c_in, c_out, (1, 3), stride=(1, s), padding=(0, 1))
                                     for c_in, c_out, s in ((129, 128, 1), (128, 64, 2), (64, 64, 2), (64, 128, 1)))
        self.ih = nn.Linear(128, 512)  # LSTM cell, gates in PyTorch's order i, f, g, o
        self.hh = nn.Linear(128, 512)
        self.head = nn.Linear(128, 1)
        self.delta: DeltaInputs | None = None
        self._names = {id(m): name for name, m in self.gemm_modules().items()}
        for module in self.gemm_modules().values():
            module.register_forward_pre_hook(self._encode)

    def gemm_modules(self) -> dict[str, nn.Module]:
        """The modules whose call is one recorded GEMM, by the name the trace gives their op."""
        return {name: m for name, m in self.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}

    def _encode(self, module: nn.Module, args: tuple):
        if self.delta is None:
            return None
        return (self.delta.encode(self._names[id(module)], args[0]),)

    def forward(self, audio: Tensor) -> Tensor:
        if audio.dim() != 2 or audio.shape[1] % CHUNK_SAMPLES:
            raise InputError(f"silero_vad: audio must be (batch, a multiple of {CHUNK_SAMPLES} samples), "
                             f"got {tuple(audio.shape)}")
        batch = audio.shape[0]
        context = audio.new_zeros(batch, CONTEXT_SAMPLES)
        h = c = audio.new_zeros(batch, 128)
        probs = []
        for chunk in audio.split(CHUNK_SAMPLES, dim=1):
            x = torch.cat([context, chunk], 1)
            context = x[:, -CONTEXT_SAMPLES:]
            x = F.pad(x.unsqueeze(1), (0, CONTEXT_SAMPLES), mode="reflect").unsqueeze(1)  # (B, 1, 1, 640)
            spec = self.stft(x)  # (B, 258, 1, 4)
            x = torch.sqrt(spec[:, :129] ** 2 + spec[:, 129:] ** 2)
            for conv in self.encoder:
                x = F.relu(conv(x))
            gates = self.ih(x.flatten(1)) + self.hh(h)  # (B, 128, 1, 1) -> (B, 128)
            i, f, g, o = gates.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            probs.append(torch.sigmoid(self.head(F.relu(h))))  # dropout (p=0.1) is off in inference
        return torch.cat(probs, 1)


def load_silero_vad() -> SileroVAD:
    """:class:`SileroVAD` with the trained weights of the installed package, in eval mode."""
    jit = torch.jit.load(str(weights_path()), map_location="cpu")
    state = {k[len("_model."):]: v for k, v in jit.state_dict().items() if k.startswith("_model.")}
    model = SileroVAD()
    mine = {
        "stft.weight": state["stft.forward_basis_buffer"].unsqueeze(2),
        **{f"encoder.{i}.{p}": (state[f"encoder.{i}.reparam_conv.{p}"].unsqueeze(2) if p == "weight" else
                                state[f"encoder.{i}.reparam_conv.{p}"]) for i in range(4) for p in ("weight", "bias")},
        "ih.weight": state["decoder.rnn.weight_ih"], "ih.bias": state["decoder.rnn.bias_ih"],
        "hh.weight": state["decoder.rnn.weight_hh"], "hh.bias": state["decoder.rnn.bias_hh"],
        "head.weight": state["decoder.decoder.2.weight"].squeeze(2), "head.bias": state["decoder.decoder.2.bias"],
    }
    model.load_state_dict(mine, strict=True)
    return model.eval()


def jit_probabilities(audio: np.ndarray) -> np.ndarray:
    """The packaged jit model's speech probability per chunk of ``audio`` (1-D, 16 kHz), from a reset state."""
    jit = torch.jit.load(str(weights_path()), map_location="cpu")
    jit.reset_states()
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    with torch.no_grad():
        return np.array([float(jit(x[i:i + CHUNK_SAMPLES], SAMPLE_RATE_HZ))
                         for i in range(0, x.numel() - CHUNK_SAMPLES + 1, CHUNK_SAMPLES)])


def check_against_jit(model: SileroVAD, audio: np.ndarray, threads: int = 1) -> float:
    """The largest difference between ``model``'s probabilities and the jit model's on ``audio``."""
    from sparsesim.workloads.capture.recorder import deterministic

    with deterministic(0, threads), torch.no_grad():
        mine = model(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None])[0].numpy()
    return float(np.abs(mine - jit_probabilities(audio)).max())


# ----------------------------------------------------------------------------- delta encoding
class DeltaInputs:
    """The delta encoder in front of every GEMM of one stream: references and firing counts per op.

    Keyed like the replay's state (op name and input shape), so both start from a zero
    reference for the same tensors.
    """

    def __init__(self, threshold: float) -> None:
        if not threshold >= 0:
            raise arg_error("threshold", f"must be >= 0, got {threshold!r}")
        self.threshold = float(threshold)
        self.refs: dict[tuple[str, tuple[int, ...]], Tensor] = {}
        self.fired: dict[str, int] = {}
        self.elements: dict[str, int] = {}

    def encode(self, name: str, x: Tensor) -> Tensor:
        """Fire where the change is nonzero and at least theta; return the reference the GEMM computes with."""
        x64 = x.detach().to(torch.float64)
        ref = self.refs.setdefault((name, tuple(x.shape)), torch.zeros_like(x64))
        d = x64 - ref
        fire = (d != 0) & (d.abs() >= self.threshold)
        ref = torch.where(fire, x64, ref)
        self.refs[(name, tuple(x.shape))] = ref
        self.fired[name] = self.fired.get(name, 0) + int(fire.sum())
        self.elements[name] = self.elements.get(name, 0) + x.numel()
        return ref.to(x.dtype)

    def fired_fraction(self) -> dict[str, float]:
        """Per op, the fraction of input elements sent over the whole stream (the replay's
        ``delta_fired_fraction`` averaged over the op's time steps, weighted by elements)."""
        return {name: self.fired[name] / self.elements[name] for name in self.fired}


# ----------------------------------------------------------------------------- audio
@dataclass(frozen=True, slots=True)
class SpeechAudio:
    """Synthesized speech at 16 kHz and where it came from."""

    samples: np.ndarray  # float32, 1-D, a whole number of chunks
    sentences: tuple[str, ...]
    speech: np.ndarray  # bool per chunk: espeak-ng's output (not the pause) covers part of the chunk
    espeak_version: str
    text_sha256: str  # the corpus part's
    samples_sha256: str

    @property
    def chunks(self) -> int:
        return self.samples.size // CHUNK_SAMPLES

    def head(self, chunks: int) -> SpeechAudio:
        """The first ``chunks`` chunks (a short stream for tests)."""
        samples = self.samples[:chunks * CHUNK_SAMPLES]
        return SpeechAudio(samples=samples, sentences=self.sentences, speech=self.speech[:chunks],
                           espeak_version=self.espeak_version, text_sha256=self.text_sha256,
                           samples_sha256=hashlib.sha256(samples.tobytes()).hexdigest())

    def record(self) -> dict:
        return {"source": "espeak-ng", "espeak_ng": self.espeak_version, "sentences": len(self.sentences),
                "text": "pydoc:eval", "text_sha256": self.text_sha256, "samples": int(self.samples.size),
                "sample_rate_hz": SAMPLE_RATE_HZ, "samples_sha256": self.samples_sha256}


def espeak_version() -> str:
    """``espeak-ng --version``'s first line; a one-line error where espeak-ng is absent."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise InputError("speech audio needs espeak-ng: apt-get install -y espeak-ng")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    version = out.split("Data at")[0].strip()
    if shutil.which("dpkg-query"):  # the Debian build too: its voice data can change within one upstream version
        deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "espeak-ng"], capture_output=True, text=True)
        if deb.returncode == 0 and deb.stdout.strip():
            version += f" (Debian {deb.stdout.strip()})"
    return version


def _speak(sentence: str) -> np.ndarray:
    """espeak-ng's English voice, default rate, as float samples at its own rate."""
    done = subprocess.run([shutil.which("espeak-ng"), "-v", "en", "--stdout", sentence], capture_output=True,
                          check=True)
    with wave.open(io.BytesIO(done.stdout)) as w:
        if w.getframerate() != ESPEAK_RATE_HZ or w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise InputError(f"espeak-ng wrote {w.getframerate()} Hz, {w.getsampwidth()}-byte, "
                             f"{w.getnchannels()}-channel audio; expected {ESPEAK_RATE_HZ} Hz 16-bit mono")
        # espeak-ng's WAV header gives an unknown length on a pipe: read what is there
        frames = done.stdout[44:]
    return np.frombuffer(frames[:len(frames) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0


def resample(x: np.ndarray, rate_in_hz: int, rate_out_hz: int, half_taps: int = 32) -> np.ndarray:
    """Band-limited resampling: a Kaiser-windowed sinc (beta 8.6) cut at the lower Nyquist rate.

    Each output sample at time ``n / rate_out`` is the windowed-sinc interpolation of the
    ``2 * half_taps`` nearest inputs (J. O. Smith, "Digital Audio Resampling", the bandlimited
    interpolation method), scaled by ``rate_out / rate_in`` when downsampling so the passband
    gain is 1. The fractional positions repeat every ``rate_out / gcd`` outputs, so the taps are
    computed once per phase.
    """
    ratio = min(1.0, rate_out_hz / rate_in_hz)
    g = int(np.gcd(rate_in_hz, rate_out_hz))
    up, down = rate_out_hz // g, rate_in_hz // g  # output n sits at input position n * down / up
    offsets = np.arange(-half_taps + 1, half_taps + 1)
    phase = np.arange(up)
    u = (phase * down % up / up)[:, None] - offsets[None]  # distance from each tap to the output point
    window = np.i0(8.6 * np.sqrt(np.clip(1 - (u / half_taps) ** 2, 0, None))) / np.i0(8.6)
    taps = ratio * np.sinc(ratio * u) * window  # (up, 2 * half_taps)
    n_out = x.size * up // down
    n = np.arange(n_out)
    k = (n * down // up)[:, None] + offsets[None]
    padded = np.concatenate([np.zeros(half_taps), x, np.zeros(half_taps + 1)])
    return (padded[k + half_taps] * taps[n % up]).sum(1)


def speech_audio(sentences: int = 8, *, pause_s: float = 1.0, noise_rms: float = 1e-3, seed: int = 0) -> SpeechAudio:
    """The first ``sentences`` sentences of the evaluation text spoken by espeak-ng at 16 kHz.

    Each sentence is preceded by ``pause_s`` seconds of pause (and the stream ends with one);
    ``noise_rms`` seeded Gaussian noise (1e-3 is -60 dBFS, a quiet room recorded at 16 bits:
    our choice, not a measured figure) lies under everything so the pauses are not digital
    zero. The stream is cut to a whole number of 512-sample chunks.
    """
    if isinstance(sentences, bool) or not isinstance(sentences, int) or sentences < 1:
        raise arg_error("sentences", f"must be a positive integer, got {sentences!r}")
    if not pause_s >= 0 or not noise_rms >= 0:
        raise arg_error("pause_s" if not pause_s >= 0 else "noise_rms", "must be >= 0")
    version = espeak_version()
    part = corpus_part("eval")
    chosen = [s for pair in sentence_pairs(part, limit=sentences) for s in pair][:sentences]
    if len(chosen) < sentences:
        raise arg_error("sentences", f"the evaluation text gives {len(chosen)} sentences, asked for {sentences}")
    pause = np.zeros(int(round(pause_s * SAMPLE_RATE_HZ)))
    pieces, marks = [pause], [np.zeros(pause.size, bool)]
    for sentence in chosen:
        spoken = resample(_speak(sentence), ESPEAK_RATE_HZ, SAMPLE_RATE_HZ)
        pieces += [spoken, pause]
        marks += [np.ones(spoken.size, bool), np.zeros(pause.size, bool)]
    samples = np.concatenate(pieces)
    speech = np.concatenate(marks)
    usable = samples.size // CHUNK_SAMPLES * CHUNK_SAMPLES
    noise = np.random.default_rng(seed).normal(0.0, noise_rms, usable)
    samples = (samples[:usable] + noise).astype(np.float32)
    per_chunk = speech[:usable].reshape(-1, CHUNK_SAMPLES).any(1)
    return SpeechAudio(samples=samples, sentences=tuple(chosen), speech=per_chunk, espeak_version=version,
                       text_sha256=part.sha256, samples_sha256=hashlib.sha256(samples.tobytes()).hexdigest())


# ----------------------------------------------------------------------------- quality of delta encoding
@dataclass(frozen=True, slots=True)
class DeltaQuality:
    """What delta encoding at ``threshold`` costs the VAD on one stream, against the dense model."""

    threshold: float
    chunks: int
    decision_agreement: float  # fraction of chunks whose speech decision (p >= 0.5) equals the dense model's
    prob_err_mean: float  # mean |p_delta - p_dense| over the chunks
    prob_err_max: float
    fired_fraction: float  # input elements sent over all GEMMs and chunks / all input elements
    fired_per_op: dict  # op name -> fraction sent (the replay's delta_fired_fraction, element-weighted)


def probabilities(model: SileroVAD, samples: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, dict]:
    """Speech probability per chunk, with every GEMM delta-encoded at ``threshold`` (None: dense),
    and the per-op fired fractions ({} when dense)."""
    model.delta = None if threshold is None else DeltaInputs(threshold)
    try:
        with torch.no_grad():
            p = model(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None])[0].numpy()
        fired = {} if model.delta is None else model.delta.fired_fraction()
        totals = {} if model.delta is None else (sum(model.delta.fired.values()), sum(model.delta.elements.values()))
    finally:
        model.delta = None
    return p, {"per_op": fired, "totals": totals}


def delta_quality(thresholds, samples: np.ndarray, model: SileroVAD | None = None,
                  threads: int = 1) -> list[DeltaQuality]:
    """Decision agreement and probability error of the delta network at each threshold on ``samples``.

    The delta encoding is applied in the forward pass (errors propagate through the LSTM state
    and the later layers, as they would on the accelerator); the dense model's probabilities on
    the same samples are the reference. ``threads`` intra-op threads (default 1: these small
    GEMMs slow down on more threads of a shared machine).
    """
    from sparsesim.workloads.capture.recorder import deterministic

    with deterministic(0, threads):
        return _delta_quality(thresholds, samples, model or load_silero_vad())


def _delta_quality(thresholds, samples: np.ndarray, model: SileroVAD) -> list[DeltaQuality]:
    dense, _ = probabilities(model, samples)
    out = []
    for theta in thresholds:
        p, fired = probabilities(model, samples, float(theta))
        err = np.abs(p - dense)
        sent, total = fired["totals"]
        same = (p >= SPEECH_THRESHOLD) == (dense >= SPEECH_THRESHOLD)
        out.append(DeltaQuality(threshold=float(theta), chunks=int(dense.size), decision_agreement=float(same.mean()),
                                prob_err_mean=float(err.mean()), prob_err_max=float(err.max()),
                                fired_fraction=sent / total, fired_per_op=fired["per_op"]))
    return out


# ----------------------------------------------------------------------------- capture and the zoo entry
class ChunkTask:
    """The zoo's task interface for :func:`~sparsesim.workloads.capture.stats.model_stats`: one
    sample is one 512-sample chunk (32 ms). The model is pretrained: nothing trains on this."""

    def batch(self, size: int, gen: torch.Generator) -> tuple[tuple[Tensor], None]:
        return (torch.zeros(size, CHUNK_SAMPLES),), None


def silero_vad(gen: torch.Generator):
    """The zoo factory: the module (trained weights loaded unless built on the meta device, for its shape)."""
    from sparsesim.workloads.capture.nets import Net

    if torch.empty(0).is_meta:  # model_stats builds shapes only
        return Net(SileroVAD().eval(), ChunkTask(), "adam", 0.0)
    return Net(load_silero_vad(), ChunkTask(), "adam", 0.0)


def capture_vad(out: Path | str, *, sentences: int = 4, threshold: float | None = None, dtype: str = "fp32",
                seed: int = 0, threads: int = 1, overwrite: bool = False, progress: bool = True,
                model_name: str = "silero_vad", audio: SpeechAudio | None = None) -> Path:
    """Capture Silero VAD's inference over one synthesized speech stream: one step, one time step per chunk.

    With ``threshold`` the model runs as a delta network and the trace records its GEMM inputs
    (the references; see the module docstring), so ``run --sparsity delta:THRESHOLD`` replays
    exactly the masks :func:`delta_quality` measures at that threshold. ``audio`` (default:
    :func:`speech_audio` of ``sentences`` sentences with ``seed``) is the stream.
    """
    from sparsesim.workloads.capture.recorder import capture_module, deterministic

    audio = speech_audio(sentences, seed=seed) if audio is None else audio
    with deterministic(seed, threads):
        model = load_silero_vad()
        model.delta = None if threshold is None else DeltaInputs(threshold)
        settings = {"model": model_name, "input": f"{audio.chunks} chunks of {CHUNK_SAMPLES} samples at 16 kHz",
                    "weights": f"silero-vad {package_version()} (silero_vad/data/silero_vad.jit)",
                    "audio": audio.record(), "delta_threshold": threshold, "batch": 1, "seed": seed,
                    "threads": threads, "warmup_steps": 0}
        return capture_module(model, [(torch.from_numpy(audio.samples)[None], None)], out, mode="infer",
                              dtype=dtype, sequence=True, settings=settings, overwrite=overwrite, progress=progress)
