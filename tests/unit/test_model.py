"""Backbone → head → model, and the freeze helpers."""
from __future__ import annotations

import numpy as np
import pytest

from tlcore.backbones import create_backbone, get_spec
from tlcore.errors import ConfigError
from tlcore.model import (FreezeConfig, HeadConfig, build_model, feature_model, freeze, get_backbone, list_layers,
                          param_counts)
from tlcore.tf_env import keras


@pytest.fixture(scope="module")
def vgg():
    return create_backbone("vgg16", "none", 32)


def _params(model, names):
    return sum(model.get_layer(n).count_params() for n in names)


BLOCK1 = ["block1_conv1", "block1_conv2"]
BLOCK12 = BLOCK1 + ["block2_conv1", "block2_conv2"]
TOP2 = ["block5_conv3"]  # the top two layers are block5_conv3 and block5_pool


@pytest.mark.parametrize("cfg, frozen_names", [
    (FreezeConfig("all"), "all"),
    (FreezeConfig("none"), []),
    (FreezeConfig("first_n", n=4), BLOCK1),
    (FreezeConfig("up_to", layer="block2"), BLOCK12),
    (FreezeConfig("up_to", layer="block1_conv2"), BLOCK1),
    (FreezeConfig("all_but_top", n=2), "all_but_top2"),
])
def test_freeze_counts(vgg, cfg, frozen_names):
    total = vgg.count_params()
    summary = freeze(vgg, cfg)
    if frozen_names == "all":
        frozen = total
    elif frozen_names == "all_but_top2":
        frozen = total - _params(vgg, TOP2)
    else:
        frozen = _params(vgg, frozen_names)
    assert summary.frozen_params == frozen
    assert summary.trainable_params == total - frozen
    assert summary.trainable_params == sum(int(np.prod(w.shape)) for w in vgg.trainable_weights)


@pytest.mark.parametrize("cfg, error", [
    (FreezeConfig("up_to", layer="block9"), "no layer or block named 'block9'"),
    (FreezeConfig("sideways"), "Unknown freeze mode 'sideways'"),
])
def test_freeze_failures_name_the_fix(vgg, cfg, error):
    with pytest.raises(ConfigError, match=error):
        freeze(vgg, cfg)


def test_batchnorm_stays_frozen_when_unfrozen():
    base = create_backbone("mobilenet_025", "none", 32)
    freeze(base, FreezeConfig("none"))
    bns = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and not any(layer.trainable for layer in bns)
    convs = [layer for layer in base.layers if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    assert all(layer.trainable for layer in convs)
    freeze(base, FreezeConfig("none"), keep_bn_frozen=False)
    assert all(layer.trainable for layer in bns)


def test_list_layers_reports_blocks_params_and_trainable(vgg):
    freeze(vgg, FreezeConfig("up_to", layer="block3"))
    infos = list_layers(vgg)
    assert [i.block for i in infos if i.name == "block4_conv1"] == ["block4"]
    assert sum(i.params for i in infos) == vgg.count_params()
    assert not next(i for i in infos if i.name == "block3_conv3").trainable
    assert next(i for i in infos if i.name == "block4_conv1").trainable
    mobile = list_layers(create_backbone("mobilenet_025", "none", 32))
    assert {"stem", "block 1", "block 13"} <= {i.block for i in mobile}


@pytest.mark.parametrize("head, n_dense", [(HeadConfig(16, 0.2, True), 2), (HeadConfig(enabled=False), 1)])
def test_model_takes_raw_pixels_of_any_size(head, n_dense):
    spec = get_spec("mobilenet_025")
    model = build_model(create_backbone("mobilenet_025", "none", 32), spec, 4, head, 32)
    for shape in [(2, 32, 32, 3), (1, 50, 70, 3)]:
        out = model.predict(np.random.uniform(0, 255, shape).astype("float32"), verbose=0)
        assert out.shape == (shape[0], 4)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert sum(isinstance(layer, keras.layers.Dense) for layer in model.get_layer("head").layers) == n_dense
    assert get_backbone(model).name == "backbone"
    assert feature_model(model).output_shape == (None, spec.feature_size)


def test_saved_model_reloads_in_safe_mode_with_equal_outputs(tmp_path):
    model = build_model(create_backbone("resnet50v2", "none", 32), get_spec("resnet50v2"), 3, HeadConfig(8), 32)
    freeze(get_backbone(model), FreezeConfig("all"))
    trainable, frozen = param_counts(model)
    assert trainable == 2048 * 8 + 8 + 8 * 3 + 3
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(1).uniform(0, 255, (2, 40, 40, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), again.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("cfg, frozen", [
    (FreezeConfig("none"), lambda total: 0),                       # "Train every layer": nothing frozen by choice
    (FreezeConfig("all"), lambda total: total),
    (FreezeConfig("all_but_top", n=20), lambda total: total - 20),  # as the slider counts
    (FreezeConfig("first_n", n=7), lambda total: 7),
])
def test_frozen_layer_count_matches_the_choice(cfg, frozen):
    """Issue 9: "Train every layer" showed "Frozen layers 59 of 86" (ReLUs and BatchNorm counted as frozen)."""
    from tlcore.model import layer_status

    base = create_backbone("mobilenet_025", "none", 32)
    summary = freeze(base, cfg)
    total = len(base.layers)
    assert (summary.frozen_layers, summary.total_layers) == (frozen(total), total)
    bns = [i for i, layer in enumerate(base.layers) if isinstance(layer, keras.layers.BatchNormalization)]
    assert summary.batchnorm_kept == (0 if cfg.mode == "all" else sum(i >= summary.frozen_layers for i in bns))
    moving = [layer for layer in base.layers if layer.trainable and layer.trainable_weights]
    assert summary.trainable_layers == len(moving)
    statuses = {layer_status(info, summary.frozen_layers) for info in list_layers(base)}
    if cfg.mode == "none":
        assert statuses == {"trains", "no weights", "frozen (BatchNorm, inference mode)"}
    if cfg.mode == "all":
        assert "trains" not in statuses and "frozen (BatchNorm, inference mode)" not in statuses
