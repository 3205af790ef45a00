"""Full-size zoo models: ImageNet-size CNNs, ViT-S/16 and BERT-base, against published sizes
and against the independent shape-only layer lists of ``run --network``."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sparsesim.cli.main import main  # noqa: E402
from sparsesim.workloads.capture import MODELS, capture_zoo  # noqa: E402
from sparsesim.workloads.capture.stats import model_stats  # noqa: E402
from sparsesim.core.errors import InputError  # noqa: E402
from sparsesim.workloads.gemm import Phase  # noqa: E402
from sparsesim.workloads.networks import NETWORKS  # noqa: E402
from sparsesim.workloads.trace import load_trace  # noqa: E402


@pytest.mark.parametrize("name, options, published", [
    ("resnet18", {"image_size": 224}, 11_689_512),  # torchvision resnet18
    ("resnet50", {"image_size": 224}, 25_557_032),  # torchvision resnet50
    ("mobilenetv2", {"image_size": 224}, 3_504_872),  # torchvision mobilenet_v2
    ("vit", {}, 22_050_664),  # timm vit_small_patch16_224
    ("bert", {}, 109_482_240 + 768 * 4 + 4),  # bert-base-uncased with pooler, plus our 4-way classifier
])
def test_parameter_counts_match_the_reference_models(name, options, published):
    assert model_stats(MODELS.get(name), **options).params == published


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg16", "mobilenetv2", "vit", "bert"])
def test_torch_models_do_the_macs_of_the_shape_only_layer_lists(name):
    entry = MODELS.get(name)
    options = {"image_size": 224} if "image_size" in entry.options else {}
    macs = sum(op.gemm(Phase.FWD).macs for op in NETWORKS.get(name)(1))
    extra = 768 * 4 if name == "bert" else 0  # the zoo BERT's classifier on top of the pooler
    assert model_stats(entry, **options).macs == macs + extra


def test_resnet50_at_224_is_4_1_gmacs():
    # He et al. 2016, Table 1: 3.8e9 multiply-adds counted without the projection shortcuts;
    # torchvision's 4.09 GFLOPS (MACs) with them
    assert model_stats(MODELS.get("resnet50"), image_size=224).macs == pytest.approx(4.09e9, rel=0.005)


def test_bert_capture_keeps_fewer_layers_with_the_layer_list_shapes(tmp_path):
    out = capture_zoo("bert", out=tmp_path / "bert", mode="infer", batch=1, warmup_steps=0, layers=1,
                        progress=False)
    trace = load_trace(out)
    expected = [op for op in NETWORKS.get("bert")(1) if op.name.startswith("encoder.layer.0.")]
    got = [r.op for r in trace.ops if r.name.startswith("encoder.layer.")]
    assert got == expected
    assert trace.capture["layers"] == 1


def test_image_size_224_gives_the_imagenet_stem(tmp_path):
    out = tmp_path / "r18"
    assert main(["trace", "capture", "--model", "resnet18", "--image-size", "224", "--mode", "infer", "--batch", "1",
                 "--warmup-steps", "0", "--out", str(out), "--no-progress"]) == 0
    trace = load_trace(out)
    assert [r.op for r in trace.ops] == [op for op in NETWORKS.get("resnet18")(1)]


def test_size_options_are_checked():
    with pytest.raises(InputError, match="^image_size: "):
        capture_zoo("gru", out="unused", image_size=224)
    with pytest.raises(InputError, match="^image_size: "):
        capture_zoo("resnet18", out="unused", image_size=64)
    with pytest.raises(InputError, match="^layers: "):
        capture_zoo("bert", out="unused", layers=13)
