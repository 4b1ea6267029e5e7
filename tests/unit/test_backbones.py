"""The backbone registry: specs, preprocessing inside the model, weight sources and their errors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tlcore import backbones
from tlcore.backbones import BACKBONES, create_backbone, get_spec, weights_filename
from tlcore.errors import ConfigError, ModelFileError, WeightsError
from tlcore.model import preprocessing_layer
from tlcore.tf_env import keras

REQUIRED = ["vgg16", "vgg19", "resnet50", "resnet50v2", "inceptionv3", "xception", "mobilenet_025", "mobilenet_050",
            "mobilenet_075", "mobilenet_100", "mobilenetv2", "mobilenetv3small", "mobilenetv3large", "efficientnetb0",
            "efficientnetb1", "efficientnetb2", "efficientnetb3", "efficientnetv2b0", "densenet121", "convnexttiny"]


def test_registry_has_every_required_backbone_with_full_specs():
    assert set(REQUIRED) <= set(BACKBONES)
    assert backbones.DEFAULT_BACKBONE == "mobilenet_025"
    for spec in BACKBONES.values():
        assert callable(spec.constructor) and callable(spec.preprocess_input)
        assert spec.preprocess_mode in ("tf", "torch", "caffe", "none")
        assert spec.min_size <= spec.default_size and spec.params > 0 and spec.feature_size > 0
        assert 40 < spec.top1 < 90 and spec.weights_file.endswith(".h5")


@pytest.mark.parametrize("name, error", [
    ("mobilenet", "Unknown backbone 'mobilenet'"),
    ("", "Unknown backbone ''"),
    ("VGG16", "Choose one of: mobilenet_025"),
])
def test_unknown_backbone_lists_the_valid_names(name, error):
    with pytest.raises(ConfigError, match=error) as info:
        get_spec(name)
    assert "vgg16" in str(info.value) and "convnexttiny" in str(info.value)


@pytest.mark.parametrize("name", ["mobilenet_025", "mobilenetv3small", "efficientnetb0", "densenet121", "resnet50v2"])
def test_built_backbone_matches_its_spec(name):
    spec = get_spec(name)
    model = create_backbone(name, "none", spec.default_size)
    assert model.count_params() == spec.params
    assert model.output_shape[-1] == spec.feature_size


@pytest.mark.parametrize("name", ["mobilenet_025", "resnet50", "densenet121", "mobilenetv3small"])
def test_in_model_preprocessing_equals_keras_preprocess_input(name):
    spec = get_spec(name)
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    layer = preprocessing_layer(spec)
    got = x if layer is None else np.asarray(layer(x))
    want = np.asarray(spec.preprocess_input(x.copy()))
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("name, size, error", [
    ("inceptionv3", 64, "at least 75×75"),
    ("xception", 32, "at least 71×71"),
    ("mobilenet_025", 8, "at least 32×32"),
])
def test_input_below_the_minimum_is_refused(name, size, error):
    with pytest.raises(ConfigError, match=error):
        create_backbone(name, "none", size)


@pytest.mark.parametrize("name, size, filename", [
    ("mobilenet_025", 224, "mobilenet_2_5_224_tf_no_top.h5"),
    ("mobilenet_050", 160, "mobilenet_5_0_160_tf_no_top.h5"),
    ("mobilenet_100", 96, "mobilenet_1_0_224_tf_no_top.h5"),
    ("mobilenetv2", 224, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
    ("efficientnetv2b0", None, "efficientnetv2-b0_notop.h5"),
    ("vgg16", None, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
])
def test_weights_filename_is_keras_cache_name(name, size, filename):
    assert weights_filename(name, size) == filename


def test_uncached_imagenet_weights_fail_fast_naming_file_and_folder():
    with pytest.raises(WeightsError) as info:
        create_backbone("mobilenet_050", "imagenet", 128)
    message = str(info.value)
    assert "mobilenet_5_0_128_tf_no_top.h5" in message
    assert str(Path(os.environ["KERAS_HOME"]) / "models") in message
    assert "random initialisation" in message


def test_cached_imagenet_weights_load_from_keras_home(imagenet_mobilenet):
    model = create_backbone("mobilenet_025", "imagenet")
    assert backbones.weights_cached("mobilenet_025")
    assert model.count_params() == 218_544
    assert float(np.abs(model.get_layer("conv1").get_weights()[0]).sum()) > 1.0


def test_user_weights_file_loads_and_wrong_architecture_is_refused(tmp_path):
    source = create_backbone("mobilenet_025", "none", 32)
    path = tmp_path / "mine.weights.h5"
    source.save_weights(path)
    loaded = create_backbone("mobilenet_025", str(path), 32)
    np.testing.assert_allclose(loaded.get_weights()[0], source.get_weights()[0])
    with pytest.raises(ModelFileError, match="does not fit MobileNet α=0.5"):
        create_backbone("mobilenet_050", str(path), 32)
    with pytest.raises(ModelFileError, match="not a weights file"):
        (tmp_path / "w.txt").write_text("x")
        create_backbone("mobilenet_025", str(tmp_path / "w.txt"), 32)


def test_custom_keras_backbone_loads_and_lambda_is_refused(tmp_path):
    inputs = keras.Input((32, 32, 3))
    ok = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    ok.save(tmp_path / "ok.keras")
    assert backbones.load_custom_backbone(tmp_path / "ok.keras").output_shape[-1] == 4
    bad = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    bad.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError, match="Lambda"):
        backbones.load_custom_backbone(tmp_path / "lambda.keras")
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="could not be read"):
        backbones.load_custom_backbone(tmp_path / "broken.keras")


# -- the shipped default weights (copied into an empty Keras cache at first use) ------------------------------
SHA = backbones.SHIPPED_WEIGHTS["mobilenet_2_5_224_tf_no_top.h5"]


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shipped_weights_are_in_the_repo_with_their_license():
    shipped = backbones.SHIPPED_DIR / "mobilenet_2_5_224_tf_no_top.h5"
    assert shipped.stat().st_size == 2_108_140 and _sha(shipped) == SHA
    notice = (backbones.SHIPPED_DIR / "NOTICE.md").read_text(encoding="utf-8")
    assert "Apache License, Version 2.0" in notice and "keras-team/keras-applications" in notice
    assert "Copyright The Keras Authors" in notice
    assert "TERMS AND CONDITIONS" in (backbones.SHIPPED_DIR / "LICENSE-APACHE-2.0.txt").read_text(encoding="utf-8")
    ignored = __import__("subprocess").run(["git", "check-ignore", "-q", str(shipped)], cwd=backbones.SHIPPED_DIR)
    assert ignored.returncode == 1   # git does not ignore it: it ships with every clone


def test_empty_keras_home_gets_the_shipped_copy_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    cached = tmp_path / "kh" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
    rows = {r["name"]: r for r in backbones.backbone_table()}
    assert rows["mobilenet_025"]["ImageNet weights cached"] and backbones.weights_cached("mobilenet_025")
    assert not rows["mobilenet_050"]["ImageNet weights cached"] and not cached.exists()   # nothing copied yet
    assert backbones.install_shipped_weights("mobilenet_025") is True
    assert _sha(cached) == SHA and os.listdir(cached.parent) == [cached.name]
    assert backbones.install_shipped_weights("mobilenet_025") is True                   # already there: no-op
    assert backbones.install_shipped_weights("mobilenet_050") is False                  # none ships for it
    assert backbones.install_shipped_weights("mobilenet_025", 160) is False             # another file name


def test_damaged_cached_copy_is_replaced_by_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    cached = tmp_path / "kh" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a download")
    assert backbones.install_shipped_weights("mobilenet_025") and _sha(cached) == SHA


def test_damaged_shipped_file_gives_a_plain_sentence_and_copies_nothing(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "mobilenet_2_5_224_tf_no_top.h5").write_bytes(b"\0" * 1000)
    monkeypatch.setattr(backbones, "SHIPPED_DIR", shipped)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert not backbones.weights_cached("mobilenet_025")
    with pytest.raises(WeightsError) as info:
        create_backbone("mobilenet_025", "imagenet")
    message = str(info.value)
    assert message.startswith("The ImageNet weights of MobileNet α=0.25 that come with the studio are damaged")
    assert "reinstall the studio" in message and "random initialisation" in message and "\n" not in message
    assert not (tmp_path / "kh" / "models" / "mobilenet_2_5_224_tf_no_top.h5").exists()
    assert not list((tmp_path / "kh").rglob("*.part"))


def test_copy_that_changes_on_the_way_is_refused(tmp_path, monkeypatch):
    """The sha256 is checked after copying too: a copy that differs never replaces the cache file."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    real = backbones._sha256
    monkeypatch.setattr(backbones, "_sha256", lambda p: "0" * 64 if p.name.endswith(".part") else real(p))
    with pytest.raises(WeightsError, match="damaged"):
        backbones.install_shipped_weights("mobilenet_025")
    assert os.listdir(tmp_path / "kh" / "models") == []


def test_unwritable_keras_home_gives_a_plain_sentence(tmp_path, monkeypatch):
    (tmp_path / "kh").write_text("a file, not a folder")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    with pytest.raises(WeightsError, match="could not be copied into Keras's cache .*KERAS_HOME to a writable"):
        backbones.install_shipped_weights("mobilenet_025")


def test_other_backbones_keep_the_fast_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    with pytest.raises(WeightsError, match="not cached and this machine is offline"):
        create_backbone("mobilenet_050", "imagenet", 128)
