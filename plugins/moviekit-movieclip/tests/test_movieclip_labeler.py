"""movieclip_clip with a tiny RANDOM open_clip model (plumbing, not accuracy), the contract, and offline errors."""

from __future__ import annotations

import numpy as np
import pytest

from moviekit import FrameBatch, Labels, MoviekitError, Shot, Track, Video, VideoInfo, WeightsNotFoundError, get_registry
from moviekit.backends.openclip import TINY_MODEL
from moviekit.backends.openclip import tiny_checkpoint as tiny_clip_checkpoint
from moviekit.testing import check_component, components_of
from moviekit_movieclip.hierarchy import MovieclipHierarchy
from moviekit_movieclip.labeler import MovieclipClip
from moviekit_movieclip.taxonomy import load_taxonomy

VIDEO = Video(id="v")
INFO = VideoInfo(fps=4.0, num_frames=8, duration=2.0, width=64, height=48, has_audio=False)

pytestmark = pytest.mark.filterwarnings("ignore:.*TEST-ONLY.*:UserWarning")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    from moviekit.testing import offline_env

    offline_env(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_clip_checkpoint(tmp_path_factory.mktemp("tiny_clip"))


def frames(n: int, seed: int = 0, size=(64, 48)) -> np.ndarray:
    w, h = size
    rng = np.random.default_rng(seed)
    # smooth random colour fields, so frames differ in content
    base = rng.integers(0, 256, (n, 6, 8, 3)).astype(np.uint8)
    return np.repeat(np.repeat(base, h // 6, axis=1), w // 8, axis=2)


def stream(lab: MovieclipClip, imgs: np.ndarray, fps: float = 4.0, batch: int = 3) -> Track:
    sink = lab.open(VIDEO, INFO)
    for s in range(0, len(imgs), batch):
        idx = np.arange(s, min(s + batch, len(imgs)))
        sink.frames(FrameBatch(frames=imgs[idx], indices=idx, times=idx / fps))
    return sink.close()


def shot(i: int, start: float, end: float, fps: float = 4.0) -> Shot:
    return Shot(video_id="v", index=i, start_frame=round(start * fps), end_frame=round(end * fps), start_time=start, end_time=end)


def reference_probs(ckpt, imgs: np.ndarray, prompts: list[str], scale: float = 100.0) -> np.ndarray:
    """Independent computation with open_clip's own model, transform and tokenizer."""
    import open_clip
    import torch
    from PIL import Image

    model, _, preprocess = open_clip.create_model_and_transforms(TINY_MODEL, pretrained=str(ckpt))
    model.eval()
    tok = open_clip.get_tokenizer(TINY_MODEL)
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(Image.fromarray(f)) for f in imgs]))
        txt = model.encode_text(tok(prompts))
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        return torch.softmax(scale * img.double() @ txt.double().T, dim=-1).numpy()


def test_scores_match_an_independent_computation(tiny):
    labels = list(load_taxonomy().labels)
    lab = MovieclipClip(model=TINY_MODEL, pretrained=str(tiny), device="cpu", batch=2)
    imgs = frames(8)
    track = stream(lab, imgs)
    assert track.values.shape == (8, 179)
    np.testing.assert_allclose(track.times, np.arange(8) / 4.0)

    ref = reference_probs(tiny, imgs, [f"A photo of {x}, a type of background location" for x in labels])
    np.testing.assert_allclose(track.values, ref, atol=2e-5)
    np.testing.assert_allclose(track.values.sum(axis=1), 1.0, atol=1e-5)

    shots = [shot(0, 0.0, 1.0), shot(1, 1.0, 2.0)]
    out = lab.label(VIDEO, track, shots)
    assert [x.shot_index for x in out] == [0, 1] and all(isinstance(x, Labels) for x in out)
    for lab_, rows in zip(out, (slice(0, 4), slice(4, 8))):
        expected = ref[rows].mean(axis=0)
        best = np.argsort(-expected)[:5]
        assert list(lab_.scores) == [labels[i] for i in best]
        np.testing.assert_allclose(list(lab_.scores.values()), expected[best], atol=2e-5)
        want = ([labels[best[0]]] + [labels[i] for i in best[1:] if expected[i] >= 0.1]) if expected[best[0]] >= 0.4 else []
        assert lab_.labels == want


def test_template_ensembling_and_text_cache(tiny):
    import open_clip
    import torch

    kw = dict(model=TINY_MODEL, pretrained=str(tiny), device="cpu", labels=["kitchen", "desert", "war room"])
    both = MovieclipClip(**kw, templates=["background", "People at {}, a type of location"])
    assert both.config.templates == ["A photo of {}, a type of background location", "People at {}, a type of location"]
    text = both.text_embeddings()
    assert text is both.text_embeddings()  # computed once

    model = open_clip.create_model(TINY_MODEL, pretrained=str(tiny)).eval()
    tok = open_clip.get_tokenizer(TINY_MODEL)
    with torch.no_grad():
        a = model.encode_text(tok([f"A photo of {x}, a type of background location" for x in kw["labels"]]), normalize=True).numpy()
        b = model.encode_text(tok([f"People at {x}, a type of location" for x in kw["labels"]]), normalize=True).numpy()
    mean = (a + b) / 2
    np.testing.assert_allclose(text, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-5)
    single = MovieclipClip(**kw).text_embeddings()
    np.testing.assert_allclose(single, a, atol=1e-5)
    assert not np.allclose(text, single, atol=1e-3)


def test_batching_does_not_change_scores(tiny):
    imgs = frames(5, seed=1)
    a = MovieclipClip(model=TINY_MODEL, pretrained=str(tiny), device="cpu", batch=1).frame_scores(imgs)
    b = MovieclipClip(model=TINY_MODEL, pretrained=str(tiny), device="cpu", batch=64).frame_scores(imgs)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_thresholds_top_k_and_short_shots(tiny):
    # a hand-made track: frame probabilities over 4 labels at t = 0, 0.5, 1.0
    lab = MovieclipClip(model=TINY_MODEL, pretrained=str(tiny), labels=["a", "b", "c", "d"], top_k=3)
    track = Track(
        times=np.array([0.0, 0.5, 1.0]), values=np.array([[0.5, 0.3, 0.15, 0.05], [0.3, 0.5, 0.15, 0.05], [0.1, 0.1, 0.1, 0.7]], np.float32)
    )
    long_, short, empty = lab.label(VIDEO, track, [shot(0, 0.0, 1.0), shot(1, 1.2, 1.3), shot(2, 5.0, 6.0)])
    assert long_.scores == pytest.approx({"a": 0.4, "b": 0.4, "c": 0.15})  # mean of the two frames, top 3
    assert long_.labels == ["a", "b", "c"]
    assert short.scores == pytest.approx({"d": 0.7, "a": 0.1, "b": 0.1})  # no frame inside: the nearest, 0.2 s away
    assert short.labels == ["d", "a", "b"]
    assert empty.scores == {} and empty.labels == []  # nearest frame 4 s away: more than 1 / fps
    strict = MovieclipClip(model=TINY_MODEL, pretrained=str(tiny), labels=["a", "b", "c", "d"], top1_threshold=0.5, topk_threshold=0.2)
    assert strict.label(VIDEO, track, [shot(0, 0.0, 1.0)])[0].labels == []  # top-1 0.4 < 0.5
    loose = MovieclipClip(
        model=TINY_MODEL, pretrained=str(tiny), labels=["a", "b", "c", "d"], top1_threshold=0.5, topk_threshold=0.2, require_top1=False
    )
    assert loose.label(VIDEO, track, [shot(0, 0.0, 1.0)])[0].labels == ["b"]
    nothing = lab.label(VIDEO, Track(times=np.zeros(0), values=np.zeros((0, 4), np.float32)), [shot(0, 0.0, 1.0)])
    assert nothing[0].scores == {} and nothing[0].labels == []


def test_needs_and_config_validation(tiny):
    lab = MovieclipClip(fps=2.5, batch=7)
    assert lab.needs().frames.fps == 2.5 and lab.needs().frames.batch == 7 and lab.needs().frames.size is None
    with pytest.raises(ValueError):
        MovieclipClip(templates=["no placeholder"])
    with pytest.raises(ValueError):
        MovieclipClip(templates=[])
    with pytest.raises(ValueError):
        MovieclipClip(taxonomy="x.csv", labels=["a"])
    assert len(MovieclipClip().taxonomy) == 179


def test_local_folder_and_user_taxonomy(tiny, tmp_path):
    tax = tmp_path / "tax.txt"
    tax.write_text("kitchen\ndesert\n")
    lab = MovieclipClip(model=TINY_MODEL, pretrained=str(tiny.parent), taxonomy=str(tax), device="cpu")
    track = stream(lab, frames(2))
    assert track.values.shape == (2, 2)
    assert set(lab.label(VIDEO, track, [shot(0, 0.0, 1.0)])[0].scores) == {"kitchen", "desert"}


def test_offline_without_weights_is_actionable():
    lab = MovieclipClip()  # ViT-B-32 'openai': nothing local, offline
    assert lab.weights()[0].name == "open_clip-ViT-B-32-openai"
    with pytest.raises(WeightsNotFoundError) as err:
        lab.open(VIDEO, INFO)
    msg = str(err.value)
    for part in (
        "movieclip_clip",
        "`pretrained`",
        "$MOVIEKIT_WEIGHTS/open_clip-ViT-B-32-openai",
        "MOVIEKIT_OFFLINE",
        "timm/vit_base_patch32_clip_224.openai",
    ):
        assert part in msg, part


def test_unknown_tag_or_path_and_arch(tiny):
    with pytest.raises(WeightsNotFoundError, match="neither an existing path nor a pretrained tag"):
        MovieclipClip(pretrained="no-such-tag").open(VIDEO, INFO)
    with pytest.raises(MoviekitError, match="no architecture"):
        MovieclipClip(model="ViT-Nope", pretrained=str(tiny)).open(VIDEO, INFO)


def test_registered_and_configs_documented():
    reg = get_registry()
    names = components_of("moviekit-movieclip")
    assert names == [
        "movieclip_clip", "movieclip_downstream", "movieclip_export_features", "movieclip_fc", "movieclip_frame_features", "movieclip_frames",
        "movieclip_hierarchy", "movieclip_json", "movieclip_scene_classifier", "movieclip_shot_scale",
    ]  # fmt: skip
    assert reg.get(MovieclipClip.name) is MovieclipClip and reg.get(MovieclipHierarchy.name) is MovieclipHierarchy
    for cls in (reg.get(n) for n in names):
        for field, info in cls.Config.model_fields.items():
            assert info.description, f"{cls.name}.{field} has no description"


@pytest.mark.parametrize("name", components_of("moviekit-movieclip"))
def test_contract(name, tmp_path):
    out = check_component(name, tmp_path)
    if name == "movieclip_clip":
        assert len(out) == 1 and len(out[0].scores) == 5
        assert sum(out[0].scores.values()) <= 1.0 + 1e-6


def test_through_the_core_reader_and_segmenter(tiny, tmp_path):
    from moviekit import extract_videos
    from moviekit.recipe import validate
    from moviekit.testing import write_test_video

    video = write_test_video(tmp_path / "v.mp4")  # 4 s of flat-coloured shots at 12 fps
    recipe = validate(
        {
            "dataset": {"use": "synthetic_trailers"},
            "segmenter": {"use": "scenedetect", "detector": "content"},
            "labeler": {"use": "movieclip_clip", "model": TINY_MODEL, "pretrained": str(tiny), "fps": 2, "device": "cpu"},
            "clips": {"min_clips": 0},
            "run": {"device": "cpu"},
        }
    )
    (item,) = extract_videos(recipe, [Video(id="v", path=video)], output=tmp_path / "out")
    assert item.shots and len(item.shot_labels) == len(item.shots)
    for shot_, labels in zip(item.shots, item.shot_labels):
        assert labels.shot_index == shot_.index and len(labels.scores) == 5
        assert list(labels.scores.values()) == sorted(labels.scores.values(), reverse=True)
