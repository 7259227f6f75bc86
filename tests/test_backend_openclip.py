"""The open_clip backend (moviekit.backends.openclip): names, weights specs, loading, and the test-only tiny model."""

import subprocess
import sys

import numpy as np
import pytest

from moviekit import MoviekitError, WeightsNotFoundError
from moviekit.backends import openclip

open_clip = pytest.importorskip("open_clip")


def test_importing_moviekit_does_not_import_open_clip():
    code = "import sys, moviekit, moviekit.backends.openclip; print('open_clip' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_weights_spec_of_a_tag_and_of_a_path(tmp_path):
    spec, tag_cfg = openclip.weights_spec("ViT-B-32", "openai", "weights")
    assert spec.name == "open_clip-ViT-B-32-openai" and spec.config_key == "weights" and spec.hub
    assert tag_cfg == open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    f = tmp_path / "ckpt.pt"
    f.write_bytes(b"")
    spec, tag_cfg = openclip.weights_spec("ViT-B-32", str(f))
    assert spec.path == str(f) and spec.hub is None and tag_cfg == {}


def test_sizes_come_from_the_architecture_config():
    cfg = open_clip.get_model_config("ViT-B-16")
    assert openclip.embed_dim("ViT-B-16") == cfg["embed_dim"] == 512
    assert openclip.image_size("ViT-B-16") == (224, 224)
    with pytest.raises(MoviekitError, match="no architecture 'nope'"):
        openclip.embed_dim("nope")


def test_tiny_model_is_labelled_and_registered_when_named():
    assert openclip.is_test_only(openclip.TINY_MODEL) and not openclip.is_test_only("ViT-B-32")
    assert openclip.image_size(openclip.TINY_MODEL) == (32, 32) and openclip.embed_dim(openclip.TINY_MODEL) == 16


def test_load_tiny_matches_open_clip_built_directly(tmp_path):
    import torch

    ckpt = openclip.tiny_checkpoint(tmp_path, seed=3)
    assert openclip.tiny_checkpoint(tmp_path, seed=3) == ckpt  # written once
    with pytest.warns(UserWarning, match="TEST-ONLY"):
        clip = openclip.load("my_component", "pretrained", openclip.TINY_MODEL, str(ckpt), torch.device("cpu"))
    assert clip.checkpoint == ckpt and clip.dim == 16 and clip.image_size == (32, 32)
    ref = open_clip.create_model(openclip.TINY_MODEL, pretrained=str(ckpt)).eval()
    assert tuple(ref.visual.preprocess_cfg["mean"]) == clip.mean and tuple(ref.visual.preprocess_cfg["std"]) == clip.std
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(clip.encode_images(x).numpy(), ref.encode_image(x, normalize=True).numpy(), rtol=1e-5, atol=1e-6)
        text = clip.tokenizer(["a kitchen"])
        np.testing.assert_allclose(clip.model.encode_text(text).numpy(), ref.encode_text(text).numpy(), rtol=1e-5, atol=1e-6)
    other = openclip.tiny_checkpoint(tmp_path / "other", seed=4)
    a, b = torch.load(ckpt, weights_only=True), torch.load(other, weights_only=True)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the seed matters


@pytest.mark.filterwarnings("ignore:.*TEST-ONLY.*:UserWarning")
def test_load_errors_name_component_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVIEKIT_OFFLINE", "1")
    monkeypatch.setenv("MOVIEKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(MoviekitError, match="my_component.*`weights` is required"):
        openclip.load("my_component", "weights", "ViT-B-32", None, "cpu")
    with pytest.raises(WeightsNotFoundError) as err:
        openclip.load("my_component", "weights", "ViT-B-32", "openai", "cpu")
    assert "my_component" in str(err.value) and "`weights`" in str(err.value) and "open_clip-ViT-B-32-openai" in str(err.value)
    bad = tmp_path / "bad.pt"
    import torch

    torch.save({"nothing": torch.zeros(1)}, bad)
    with pytest.raises(MoviekitError, match="could not be loaded into open_clip"):
        openclip.load("my_component", "weights", openclip.TINY_MODEL, str(bad), "cpu")
